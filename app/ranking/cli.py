"""`flask ranking verify [--round 2024] [--fix]`: recompute every sheet's total and number of values
from its scores and report where the stored figures (review_sheets.total / n_values, which the ranking
aggregates) differ; then compare every kept live ranking (app/ranking/upkeep.py) with a computation
from the scores. Exit status 1 when anything differs — also after --fix, which repairs it, so a cron job
notices that something wrote behind the ranking's back."""

from __future__ import annotations

import click
from flask.cli import AppGroup

ranking_cli = AppGroup("ranking", help="实时排名：评分表合计与实时排名的一致性检查。")
SHOWN = 50


@ranking_cli.command("verify")
@click.option("--round", "year", type=int, default=None, help="批次年份（默认：全部批次）")
@click.option("--fix", is_flag=True, help="按评分重新计算并改正不一致的评分表（记入操作日志）")
def verify_command(year: int | None, fix: bool):
    """按各项评分重新计算每张评分表的合计与已评项数，报告与存储值不一致之处。"""
    from app.core.errors import UserError
    from app.review import totals
    from app.rounds import phases as rounds

    try:
        round_id = rounds.by_year(year).id if year else None
    except UserError as e:
        raise click.ClickException(e.message) from None
    found = totals.verify(round_id)
    scope = f"{year} 年批次" if year else "全部批次"
    sheets_differ = _check(
        f"{scope}：每张评分表的合计与已评项数都与其评分一致。",
        f"{scope}：{len(found)} 张评分表的合计与评分不一致：", "张",
        [f"评分表 {d.sheet_id}（专家 {d.reviewer_id}，推荐对象 {d.nomination_id}）：存储合计 {d.stored_total:g}、"
         f"{d.stored_n} 项；按评分应为 {d.actual_total:g}、{d.actual_n} 项" for d in found],
        (lambda: f"已按评分改正 {totals.repair(found)} 张评分表。") if fix else None)
    # The kept rankings are made from the sheet totals: compare them once those are right.
    if sheets_differ and not fix:
        raise SystemExit(1)
    if _verify_kept(round_id, scope, fix) or sheets_differ:
        raise SystemExit(1)


def _check(same: str, header: str, unit: str, lines: list[str], repair) -> bool:
    """Report one check: `same` when nothing differs, else the header and the first SHOWN differences,
    then `repair()`'s message when repairing. Whether anything differed."""
    if not lines:
        click.echo(same)
        return False
    click.echo(header, err=True)
    for line in lines[:SHOWN]:
        click.echo(f"  {line}", err=True)
    if len(lines) > SHOWN:
        click.echo(f"  ……另有 {len(lines) - SHOWN} {unit}", err=True)
    if repair is not None:
        click.echo(repair(), err=True)
    return True


def _verify_kept(round_id: int | None, scope: str, fix: bool) -> bool:
    from app.models import CATEGORY_LABELS, METHOD_LABELS
    from app.ranking import kept

    drift = kept.verify(round_id)
    return _check(
        f"{scope}：实时排名与按评分重新计算的结果一致。",
        f"{scope}：实时排名有 {len(drift)} 处与按评分重新计算的结果不一致：", "处",
        [f"{CATEGORY_LABELS[d.category]}{'（含草稿）' if d.drafts else ''}推荐对象 {d.nomination_id} "
         f"{'按「' + METHOD_LABELS[d.method] + '」排名的名次' if d.method else '的 ' + d.field}："
         f"实时 {d.kept}，应为 {d.computed}" for d in drift],
        (lambda: f"已重算 {kept.rebuild(drift)} 个实时排名。") if fix else None)
