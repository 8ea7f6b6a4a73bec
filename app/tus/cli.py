"""flask tus …: housekeeping of unfinished resumable uploads."""

from __future__ import annotations

import click
from flask.cli import AppGroup

tus_cli = AppGroup("tus", help="断点续传上传（视频）的维护。")


@tus_cli.command("prune")
def prune_command():
    """删除超过期限（默认 24 小时无进展）的未完成上传。"""
    from app.tus import store

    removed = store.prune()
    click.echo(f"已删除 {removed} 个过期的未完成上传。")
