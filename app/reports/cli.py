"""`flask reports list|report|forms|sheets|notice|publicity --round 2024 --category unit|activity --out FILE`:
the same documents as the downloads page, rendered synchronously, for archiving and scripting."""

from __future__ import annotations

import os
import time

import click
from flask.cli import AppGroup

from app.core.errors import UserError

reports_cli = AppGroup("reports", help="导出 PDF 与 XLSX。")

_CATEGORY = click.Choice(["unit", "activity"])


def _common(fn):
    fn = click.option("--out", "out", required=True, type=click.Path(dir_okay=False, writable=True),
                      help="输出文件")(fn)
    fn = click.option("--category", type=_CATEGORY, required=True, help="unit（优秀组织单位）或 activity（优秀活动）")(fn)
    fn = click.option("--round", "year", type=int, default=None, help="批次年份（默认：最新批次）")(fn)
    return fn


def _round_id(year: int | None) -> int:
    from app.rounds import phases as rounds

    rnd = rounds.by_year(year) if year else rounds.require_current_round()
    return rnd.id


def _write(kind: str, fmt: str, year, category, out, **kw) -> None:
    from app.reports import catalog

    started = time.perf_counter()
    try:
        doc = catalog.build(kind, fmt, _round_id(year), category, **kw)
    except UserError as e:
        raise click.ClickException(e.message) from None
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{out}.part"
    with open(tmp, "wb") as fh:
        fh.write(doc.content)
    os.replace(tmp, out)
    click.echo(f"已生成 {out}（{len(doc.content) / 1024:.0f} KB，{time.perf_counter() - started:.1f} 秒；"
               f"建议文件名：{doc.filename}）")


@reports_cli.command("list")
@_common
@click.option("--format", "fmt", type=click.Choice(["pdf", "xlsx"]), default="pdf", show_default=True)
def list_command(year, category, out, fmt):
    """审定通过名单（公开版，不含个人信息）。"""
    _write("list", fmt, year, category, out)


@reports_cli.command("report")
@_common
@click.option("--format", "fmt", type=click.Choice(["pdf", "xlsx"]), default="pdf", show_default=True,
              help="pdf：评审结果报告；xlsx：排名（含各指标、各专家评分）")
def report_command(year, category, out, fmt):
    """评审结果报告（PDF）或评审排名（XLSX）。"""
    _write("report", fmt, year, category, out)


@reports_cli.command("forms")
@_common
@click.option("--format", "fmt", type=click.Choice(["pdf"]), default="pdf", show_default=True)
@click.option("--nomination", "nomination_id", type=int, default=None, help="只导出这一份推荐表（推荐对象编号）")
def forms_command(year, category, out, fmt, nomination_id):
    """审定通过的推荐表合订本，或一份推荐表。"""
    _write("forms", fmt, year, category, out, nomination_id=nomination_id)


@reports_cli.command("sheets")
@_common
@click.option("--format", "fmt", type=click.Choice(["pdf"]), default="pdf", show_default=True)
@click.option("--reviewer", "username", default=None, help="只导出该专家（用户名）；默认全部专家")
def sheets_command(year, category, out, fmt, username):
    """专家评分表。"""
    reviewer_ids = None
    if username:
        from app.accounts import operations as users

        try:
            user = users.by_username(username)
        except UserError as e:
            raise click.ClickException(e.message) from None
        if user.role != "reviewer":
            raise click.ClickException(f"{username} 不是评审专家。")
        reviewer_ids = [user.id]
    _write("sheets", fmt, year, category, out, reviewer_ids=reviewer_ids)


# The 表扬通报 and the 公示 list (whole round, no category)
@reports_cli.command("notice")
@click.option("--round", "year", type=int, default=None, help="批次年份（默认：最新批次）")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, writable=True),
              help="输出文件：.docx（可编辑）或 .pdf")
def notice_command(year, out):
    """表扬通报（GB/T 9704 版式），格式由文件扩展名决定。"""
    ext = os.path.splitext(out)[1].lower()
    if ext not in (".docx", ".pdf"):
        raise click.ClickException("输出文件的扩展名应为 .docx 或 .pdf。")
    _write("notice", ext[1:], year, None, out)


@reports_cli.command("publicity")
@click.option("--round", "year", type=int, default=None, help="批次年份（默认：最新批次）")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, writable=True), help="输出文件（PDF）")
def publicity_command(year, out):
    """公示名单（两类合并，含公示期和异议方式）。"""
    _write("publicity", "pdf", year, None, out)


@reports_cli.command("prune")
def prune_command():
    """删除过期的生成记录和文件（后台任务进程每 15 分钟也会做一次）。"""
    from app.reports import jobs

    removed = jobs.prune()
    click.echo(f"已清理 {removed} 个文件。")
