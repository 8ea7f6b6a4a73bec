"""`flask users …`: thin wrappers that parse, call one accounts operation and print."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.core.errors import UserError

users_cli = AppGroup("users", help="管理用户账号。")


def _fail(e: UserError):
    raise click.ClickException(e.message)


@users_cli.command("create")
@click.argument("username")
@click.option("--name", "display_name", default="", help="显示姓名")
@click.option("--role", type=click.Choice(["admin", "chair", "reviewer", "nominator"]), required=True)
@click.option("--affiliation", default=None, help="所在推荐单位名称（评审专家据此回避）")
@click.option("--unit", default=None, help="推荐单位账号所属的推荐单位名称（--role nominator 时必填）")
@click.option("--email", default="", help="电子邮箱")
@click.password_option("--password", prompt="密码", confirmation_prompt="再次输入密码")
def users_create(username, display_name, role, affiliation, unit, email, password):
    """Create an account (a nominator's password must be replaced at its first sign-in)."""
    from app.accounts import operations as users

    if role == "nominator" and not (unit or affiliation):
        raise click.UsageError("推荐单位账号必须用 --unit 指定所属推荐单位。")
    try:
        user = users.create_user(username, display_name, role, password, affiliation=unit or affiliation, email=email)
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
