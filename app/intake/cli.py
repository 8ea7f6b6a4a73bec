"""flask nominations …: import forms and spreadsheets, run 形式审查, write the XLSX template."""

from __future__ import annotations

import os
from datetime import datetime

import click
from flask.cli import AppGroup

nominations_cli = AppGroup("nominations", help="推荐对象导入与形式审查。")

ACTIONS = {"create": "新增", "update": "更新", "skip": "跳过", "reject": "拒绝"}


def _round(year):
    from app.rounds import phases as rounds

    return rounds.by_year(year) if year else rounds.require_current_round()


def _date(value):
    if not value:
        return None
    from app.intake.text import parse_date

    try:
        return parse_date(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _echo_item(item, nominator_names) -> None:
    label = {"unit": "优秀组织单位", "activity": "优秀活动"}.get(item.category, "类别不明")
    who = nominator_names.get(item.nominator_id, "推荐单位不明")
    title = item.title or "（无名称）"
    click.echo(f"[{ACTIONS[item.action]}] {item.source}：{label}「{title}」 推荐单位：{who}"
               + (f"（{item.nominator_note}）" if item.nominator_note and item.nominator_id else ""))
    photos, videos = len(item.photos), len(item.videos)
    click.echo(f"    照片 {photos} 张，视频 {videos} 个" + (f"；缺项：{'、'.join(item.missing)}" if item.missing else ""))
    if item.changes:
        click.echo(f"    将更新：{'、'.join(item.changes)}")
    for e in item.errors:
        click.echo(f"    原因：{e}")
    for w in item.warnings:
        click.echo(f"    提示：{w}")


@nominations_cli.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="只读取并显示结果，不保存任何内容")
@click.option("--nominator", "nominator_name", default=None, help="未写明推荐单位的推荐表归属的推荐单位名称")
@click.option("--round", "year", type=int, default=None, help="评选批次年份（默认当前批次）")
@click.option("--received", default=None, help="收到日期，如 2024-10-08（默认今天）")
def import_command(files, dry_run, nominator_name, year, received):
    """Import .docx forms (附件1/附件2), the .xlsx template or .zip bundles with photos and videos."""
    from app.core.errors import UserError
    from app.intake import importer, nominations

    try:
        rnd = _round(year)
        nominator_id = None
        if nominator_name:
            found = importer.find_nominator(nominator_name, nominations.nominators())
            if found is None:
                raise click.ClickException(f"找不到推荐单位：{nominator_name}。")
            nominator_id = found.id
        sources = [importer.Source(os.path.basename(f), f) for f in files]
        reading = importer.read_sources(sources)
        try:
            items = importer.plan(reading, rnd, nominator_id=nominator_id, received=_date(received))
            names = {n.id: n.name for n in nominations.nominators()}
            click.echo(f"读取 {len(files)} 个文件，共 {len(items)} 份推荐表（{rnd.year} 年批次）：")
            for message in reading.file_errors:
                click.echo(f"[拒绝] {message}")
            for note in reading.notes:
                click.echo(f"提示：{note}")
            for item in items:
                _echo_item(item, names)
            if dry_run:
                counts = {a: sum(1 for i in items if i.action == a) for a in ACTIONS}
                click.echo(f"试运行（--dry-run），未保存任何内容：可新增 {counts['create']} 项，可更新 "
                           f"{counts['update']} 项，跳过 {counts['skip']} 项，拒绝 {counts['reject']} 项"
                           + (f"，另有 {len(reading.file_errors)} 个文件无法读取。" if reading.file_errors else "。"))
                return
            outcome = importer.save(reading, items, rnd)
        finally:
            reading.close()
    except UserError as e:
        raise click.ClickException(e.message) from None
    click.echo(f"已保存：{outcome.summary()}。")
    for item, nid in outcome.created:
        click.echo(f"  新增 #{nid} {item.title}")
    for item, nid in outcome.updated:
        click.echo(f"  更新 #{nid} {item.title}")
    for item, reason in outcome.rejected:
        click.echo(f"  未导入 {item.source}：{reason}")
    if outcome.rejected or outcome.file_errors:
        raise SystemExit(1)


@nominations_cli.command("check")
@click.option("--round", "year", type=int, default=None, help="评选批次年份（默认当前批次）")
def check_command(year):
    """Run 形式审查 and list the open findings."""
    from app.core.errors import UserError
    from app.intake import form_check

    try:
        rnd = _round(year)
        result = form_check.run(rnd.id)
    except UserError as e:
        raise click.ClickException(e.message) from None
    click.echo(f"形式审查完成：新增 {result['added']} 项，重新打开 {result['reopened']} 项，"
               f"自动解决 {result['auto_resolved']} 项；待处理阻断性问题 {result['open_blocking']} 项，"
               f"提示 {result['open_warnings']} 项。")
    for finding, nom in form_check.list_findings(rnd.id, status="open"):
        kind = "阻断" if finding.blocking else "提示"
        click.echo(f"  [{kind}] #{nom.id} {nom.nominator.name}「{nom.title}」 {form_check.rule_label(finding.rule)}："
                   f"{finding.message}")


@nominations_cli.command("template")
@click.argument("output", type=click.Path(dir_okay=False, writable=True))
def template_command(output):
    """Write the XLSX import template."""
    from app.intake import nominations
    from app.intake.xlsx_reader import build_template

    data = build_template([n.name for n in nominations.nominators()])
    with open(output, "wb") as fh:
        fh.write(data)
    click.echo(f"已生成导入模板：{output}（{datetime.now():%Y-%m-%d %H:%M}）")
