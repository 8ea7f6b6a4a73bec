"""Command-line entry points: thin wrappers that parse, call one service and print."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app.core.errors import UserError

users_cli = AppGroup("users", help="管理用户账号。")
demo_cli = AppGroup("demo", help="演示数据。")


def _fail(e: UserError):
    raise click.ClickException(e.message)


@users_cli.command("create")
@click.argument("username")
@click.option("--name", "display_name", default="", help="显示姓名")
@click.option("--role", type=click.Choice(["admin", "chair", "reviewer", "nominator"]), required=True)
@click.option("--affiliation", default=None, help="所在推荐单位名称（用于回避）")
@click.password_option("--password", prompt="密码", confirmation_prompt="再次输入密码")
def users_create(username, display_name, role, affiliation, password):
    """Create an account."""
    from app.accounts import operations as users

    try:
        user = users.create_user(username, display_name, role, password, affiliation=affiliation)
    except UserError as e:
        _fail(e)
    click.echo(f"已创建用户 {user.username}（{user.role_label}）。")


@users_cli.command("set-password")
@click.argument("username")
@click.password_option("--password", prompt="新密码", confirmation_prompt="再次输入新密码")
def users_set_password(username, password):
    """Set a new password; the user's existing sessions end."""
    from app.accounts import operations as users

    try:
        users.set_password(users.by_username(username), password)
    except UserError as e:
        _fail(e)
    click.echo(f"已为 {username} 设置新密码，原有登录会话已失效。")


@users_cli.command("deactivate")
@click.argument("username")
def users_deactivate(username):
    """Deactivate an account (it can no longer sign in)."""
    from app.accounts import operations as users

    try:
        users.set_active(users.by_username(username), False)
    except UserError as e:
        _fail(e)
    click.echo(f"已停用 {username}。")


@users_cli.command("list")
def users_list():
    """List the accounts."""
    from app.accounts import operations as users

    for u in users.list_users():
        state = "" if u.active else "（已停用）"
        aff = f"  回避单位：{u.affiliation.name}" if u.affiliation else ""
        click.echo(f"{u.username:<12} {u.role_label:<8} {u.display_name}{state}{aff}")


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
        _fail(e)
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


@demo_cli.command("logins")
def demo_logins():
    """Print the demo logins."""
    from app.demo import data as demo_data

    print_demo_logins(demo_data)


def register(app: Flask) -> None:
    from app.intake.cli import nominations_cli
    from app.jobs.cli import jobs_cli
    from app.ops.cli import ops_commands
    from app.reports.cli import reports_cli

    for group in (users_cli, demo_cli, nominations_cli, reports_cli, jobs_cli, *ops_commands):
        app.cli.add_command(group)
