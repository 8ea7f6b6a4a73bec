"""Operational commands (backup, restore); the list is what app/cli.py registers."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext

from app.core.errors import UserError


def _fail(e: UserError):
    raise click.ClickException(e.message)


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB" if n >= 1024 * 1024 else f"{n / 1024:.1f} KiB"


def _key_counts(counts: dict[str, int]) -> str:
    shown = [(t, counts[t]) for t in ("nominations", "review_sheets", "scores", "decisions", "audit_events")
             if t in counts and counts[t] >= 0]
    return "，".join(f"{t} {n} 行" for t, n in shown)


@click.command("backup")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="备份文件路径（默认 instance/backups/kepu-<时间>.sqlite3 或 .dump）")
@click.option("--force", is_flag=True, help="覆盖已存在的备份文件")
@with_appcontext
def backup_command(out: Path | None, force: bool):
    """Back up the database while the server keeps running (SQLite online backup; pg_dump on PostgreSQL)."""
    from app.ops import backup

    try:
        result = backup.create_backup(out, force=force)
    except backup.PgToolMissing as e:
        click.echo(e.message, err=True)
        raise click.exceptions.Exit(2) from e
    except UserError as e:
        _fail(e)
    click.echo(f"备份完成：{result.path}（{_size(result.size_bytes)}，用时 {result.seconds:.2f} 秒）")
    click.echo(f"完整性检查：{result.integrity}；SHA-256：{result.sha256}")
    if result.engine == "sqlite":
        click.echo(f"包含：{_key_counts(result.counts)}")
    if not result.audited:
        click.echo("注意：数据库只读，本次备份未写入操作日志。")


@click.command("restore")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="确认用备份替换当前数据库")
@click.option("--no-keep", is_flag=True, help="不保留被替换的数据库（默认保留为 *.bak / pre-restore-*.dump）")
@with_appcontext
def restore_command(source: Path, yes: bool, no_keep: bool):
    """Replace the database with a backup (stop the server first)."""
    from app.ops import backup

    if not yes:
        click.echo("恢复会用备份文件替换当前数据库的全部数据。请先停止服务，确认无误后加 --yes 重新执行：", err=True)
        click.echo(f"  flask restore {source} --yes", err=True)
        raise click.exceptions.Exit(2)
    try:
        result = backup.restore_backup(source, keep_old=not no_keep)
    except backup.PgToolMissing as e:
        click.echo(e.message, err=True)
        raise click.exceptions.Exit(2) from e
    except UserError as e:
        _fail(e)
    click.echo(f"恢复完成：来自 {result.source}（SHA-256：{result.sha256}）")
    if result.engine == "sqlite":
        click.echo(f"包含：{_key_counts(result.counts)}")
    if result.previous_saved_as:
        click.echo(f"原数据库已保留为：{result.previous_saved_as}")
    if not result.audited:
        click.echo("注意：未能写入操作日志（数据库只读，或备份来自旧版本——运行 flask db upgrade 后即可正常使用）。")
    click.echo("如备份来自旧版本，请运行 flask db upgrade，然后启动服务。")


ops_commands: list = [backup_command, restore_command]
