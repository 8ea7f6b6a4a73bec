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
    if not found:
        click.echo(f"{scope}：每张评分表的合计与已评项数都与其评分一致。")
        _verify_kept(round_id, scope, fix)
        return
    _report(f"{scope}：{len(found)} 张评分表的合计与评分不一致：", "张", [
        f"评分表 {d.sheet_id}（专家 {d.reviewer_id}，推荐对象 {d.nomination_id}）：存储合计 {d.stored_total:g}、"
        f"{d.stored_n} 项；按评分应为 {d.actual_total:g}、{d.actual_n} 项" for d in found])
    if fix:
        fixed = totals.repair(found)
        click.echo(f"已按评分改正 {fixed} 张评分表。", err=True)
        _verify_kept(round_id, scope, fix)
    raise SystemExit(1)


def _report(header: str, unit: str, lines: list[str]) -> None:
    click.echo(header, err=True)
    for line in lines[:SHOWN]:
        click.echo(f"  {line}", err=True)
    if len(lines) > SHOWN:
        click.echo(f"  ……另有 {len(lines) - SHOWN} {unit}", err=True)


def _verify_kept(round_id: int | None, scope: str, fix: bool) -> None:
    from app.models import CATEGORY_LABELS, METHOD_LABELS
    from app.ranking import kept

    drift = kept.verify(round_id)
    if not drift:
        click.echo(f"{scope}：实时排名与按评分重新计算的结果一致。")
        return
    _report(f"{scope}：实时排名有 {len(drift)} 处与按评分重新计算的结果不一致：", "处", [
        f"{CATEGORY_LABELS[d.category]}{'（含草稿）' if d.drafts else ''}按「{METHOD_LABELS[d.method]}」排名，"
        f"推荐对象 {d.nomination_id} 的 {d.field}：实时 {d.kept}，应为 {d.computed}" for d in drift])
    if fix:
        n = kept.rebuild(drift)
        click.echo(f"已重算 {n} 个实时排名。", err=True)
    raise SystemExit(1)
