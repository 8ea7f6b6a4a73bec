"""`flask stats robustness|agreement --round 2024 --category unit|activity [--json] [--resamples N] [--seed S]`:
the figures of the deliberation page's 稳健性 panel, computed now (the cache is neither read nor written,
so the command always shows the present data)."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from app.core.errors import UserError

stats_cli = AppGroup("stats", help="排名稳健性与专家评分一致性。")

_CATEGORY = click.Choice(["unit", "activity"])


def _options(fn):
    fn = click.option("--json", "as_json", is_flag=True, help="输出 JSON")(fn)
    fn = click.option("--seed", type=int, default=None, help="随机种子（默认固定值，可复现）")(fn)
    fn = click.option("--resamples", type=click.IntRange(10, 100_000), default=None, help="重抽样次数（默认 1000）")(fn)
    fn = click.option("--method", type=click.Choice(["mean", "trimmed", "median", "zscore"]), default=None,
                      help="排名方法（默认：批次设定的方法）")(fn)
    fn = click.option("--category", type=_CATEGORY, required=True, help="unit（优秀组织单位）或 activity（优秀活动）")(fn)
    fn = click.option("--round", "year", type=int, default=None, help="批次年份（默认：最新批次）")(fn)
    return fn


def _build(year, category, method, resamples, seed) -> dict:
    from app.rounds import phases as rounds
    from app.stats import report

    try:
        rnd = rounds.by_year(year) if year else rounds.require_current_round()
        return report.build(rnd.id, category, method=method, resamples=resamples, seed=seed)
    except UserError as e:
        raise click.ClickException(e.message) from None


def _f(x) -> str:
    return "—" if x is None else f"{x:.2f}"


@stats_cli.command("robustness")
@_options
def robustness_command(year, category, method, resamples, seed, as_json):
    """每个推荐对象位于分数线以上的比例、排名区间、稳健性标签，以及方法敏感性。"""
    data = _build(year, category, method, resamples, seed)
    if as_json:
        click.echo(json.dumps({k: data[k] for k in ("round_id", "category", "method", "version", "resamples", "seed",
                                                    "slots", "computed_at", "thresholds", "counts", "places",
                                                    "sensitivity")}, ensure_ascii=False))
        return
    click.echo(f"方法：{data['method_label']}；推荐名额 {data['slots']}；重抽样 {data['resamples']} 次（种子 {data['seed']}）；"
               f"排名版本 {data['version']}")
    click.echo(data["thresholds_text"])
    c = data["counts"]
    click.echo(f"稳定入选 {c['in']}，临界 {c['edge']}，稳定落选 {c['out']}，无评分 {c['none']}")
    rows = sorted(data["places"].values(), key=lambda p: (p["rank"] is None, p["rank"] or 0))
    for p in rows:
        share = "—" if p["share"] is None else f"{p['share']:.0%}"
        interval = "—" if p["rank_lo"] is None else f"{p['rank_lo']}–{p['rank_hi']}"
        movers = "，".join(f"去掉{m['reviewer_name']}→{'线内' if m['to'] == 'in' else '线外'}" for m in p["movers"])
        click.echo(f"{p['rank'] or '—':>5}  {share:>5}  {interval:>11}  "
                   f"{_label(p)}  {p['title']}{('  ' + movers) if movers else ''}")
    changed = data["sensitivity"]["changed"]
    click.echo(f"方法敏感性：{len(changed)} 个推荐对象在不同方法下位于分数线两侧")
    for r in changed:
        sides = " ".join(f"{m['label']}:{'线内' if r['sides'][m['code']] else '线外'}" for m in data["sensitivity"]["methods"])
        click.echo(f"  {r['title']}  {sides}")


def _label(p: dict) -> str:
    from app.stats.robustness import LABELS

    return LABELS[p["label"]]


@stats_cli.command("agreement")
@_options
def agreement_command(year, category, method, resamples, seed, as_json):
    """专家评分一致性：ICC(1/2/3, 1/k)、Krippendorff α（等距）、Kendall W，总分与各指标。"""
    data = _build(year, category, method, 10 if resamples is None else resamples, seed)
    if as_json:
        click.echo(json.dumps({k: data[k] for k in ("round_id", "category", "version", "computed_at", "agreement",
                                                    "agreement_text", "bands_text")}, ensure_ascii=False))
        return
    click.echo(data["agreement_text"])
    click.echo(data["bands_text"])
    for row in data["agreement"]:
        i = row["icc"] or {}
        click.echo(f"{row['name']}：专家 {row['reviewers']}，推荐对象 {row['nominations']}（全部专家均评 {row['complete']}），"
                   f"ICC(1,1) {_f(i.get('icc1_1'))} ICC(2,1) {_f(i.get('icc2_1'))} ICC(3,1) {_f(i.get('icc3_1'))} "
                   f"ICC(1,k) {_f(i.get('icc1_k'))} ICC(2,k) {_f(i.get('icc2_k'))} ICC(3,k) {_f(i.get('icc3_k'))} "
                   f"α {_f(row['alpha'])}（{row['alpha_band']}） W {_f(row['kendall_w'])}")
