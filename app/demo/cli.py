"""`flask demo …`: seed the demo round, print its logins."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from app.core.errors import UserError

demo_cli = AppGroup("demo", help="演示数据。")


@demo_cli.command("seed")
@click.option("--stage", type=click.Choice(["collecting", "reviewing", "deliberating", "final"]), default="reviewing",
              show_default=True, help="演示批次所处阶段")
@click.option("--no-photos", is_flag=True, help="不生成活动照片（更快）")
@click.option("--if-empty", is_flag=True, help="数据库已有数据时跳过")
def demo_seed(stage, no_photos, if_empty):
    """Build the 2024 Hunan demo round and print the demo logins."""
    from app.demo import data as demo_data
    from app.demo import seed as service

    if current_app.config.get("PRODUCTION"):
        raise click.ClickException("生产模式下不能生成演示数据（演示账号的密码是公开的）。")
    if if_empty and not service.database_is_empty():
        click.echo("数据库已有数据，跳过演示数据。")
        print_demo_logins(demo_data)
        return
    try:
        summary = service.seed(stage, photos=not no_photos)
    except UserError as e:
        raise click.ClickException(e.message) from None
    click.echo(f"演示批次已建立（阶段：{stage}）：{summary['nominators']} 个推荐单位，"
               f"{summary['nominations']} 个推荐对象，{summary['assignments']} 条评审分配，"
               f"{summary['submitted_sheets']} 份已提交评分表。")
    print_demo_logins(demo_data)


def print_demo_logins(demo_data) -> None:
    click.echo(f"演示账号（密码均为 {demo_data.DEMO_PASSWORD}）：")
    click.echo(f"  管理员      {demo_data.ADMIN['username']}")
    click.echo(f"  评审委员会主任 {demo_data.CHAIR['username']}")
    for r in demo_data.REVIEWERS:
        note = f"（回避：{r['affiliation']}）" if r.get("affiliation") else ""
        click.echo(f"  评审专家    {r['username']} {r['display_name']}{note}")
    for n in demo_data.NOMINATOR_ACCOUNTS:
        click.echo(f"  推荐单位    {n['username']} {n['affiliation']}（在线报送，本单位材料只读）")


@demo_cli.command("logins")
def demo_logins():
    """Print the demo logins."""
    from app.demo import data as demo_data

    print_demo_logins(demo_data)
