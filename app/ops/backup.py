"""Backups and restores of the whole database, safe to take while the server runs.

SQLite: one step of the online backup API copies a consistent snapshot (a WAL read transaction, so
writers keep committing meanwhile) into a temporary file next to the target; the copy is switched to
a self-contained rollback-journal file, checked with PRAGMA integrity_check, fsynced and only then
renamed into place — a half-written backup never carries the final name.
PostgreSQL: pg_dump's custom format (checked with pg_restore --list); pg_restore for the way back.

A restore is a stop-the-world operation: it refuses while any other connection holds the database
(a running server), keeps the replaced data, and records itself in the audit log of the restored data.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess  # nosec B404 — runs only pg_dump/pg_restore with argument lists, never a shell
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from flask import current_app
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from app.audit import operations as audit
from app.core.database import write_transaction
from app.core.errors import UserError
from app.core.storage import fsync_dir
from app.core.time import file_stamp
from app.extensions import db

# A file without these is not a kepu-review database, whatever it is.
REQUIRED_TABLES = ("rounds", "users", "audit_events")
SQLITE_MAGIC = b"SQLite format 3\x00"
# How long a restore waits for another connection to let go before concluding a server is running.
RESTORE_LOCK_WAIT_MS = 2_000


@dataclass
class BackupResult:
    engine: str
    path: Path
    size_bytes: int
    sha256: str
    seconds: float
    integrity: str = "ok"
    counts: dict[str, int] = field(default_factory=dict)
    audited: bool = False

    def as_audit(self) -> dict:
        return {"engine": self.engine, "file": str(self.path), "bytes": self.size_bytes, "sha256": self.sha256,
                "integrity": self.integrity, "counts": self.counts}


@dataclass
class RestoreResult:
    engine: str
    source: Path
    sha256: str
    previous_saved_as: Path | None
    counts: dict[str, int] = field(default_factory=dict)
    audited: bool = False


class PgToolMissing(UserError):
    """pg_dump / pg_restore is not on PATH; the message carries the commands to run by hand."""


# ---------------------------------------------------------------------------------------------- helpers

def engine_name() -> str:
    return db.engine.dialect.name


def sqlite_path() -> Path:
    database = db.engine.url.database
    if not database or database == ":memory:":
        raise UserError("内存数据库无法备份。")
    return Path(database).resolve()


def default_backup_path(now: datetime | None = None) -> Path:
    folder = Path(current_app.config.get("BACKUP_FOLDER") or os.path.join(current_app.instance_path, "backups"))
    stamp = file_stamp(now)
    suffix = "sqlite3" if engine_name() == "sqlite" else "dump"
    return folder / f"kepu-{stamp}.{suffix}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_beside(target: Path, label: str) -> Path:
    return target.with_name(f".{target.name}.{label}-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def _remove_quietly(*paths: Path) -> None:
    for p in paths:
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def _prepare_output(out: Path, *, force: bool, source: Path | None = None) -> Path:
    out = Path(out).expanduser().resolve()
    if source is not None and out == source:
        raise UserError("备份文件不能与数据库文件相同。")
    if out.is_dir():
        raise UserError(f"{out} 是一个目录，请给出备份文件名。")
    if out.exists() and not force:
        raise UserError(f"{out} 已存在；如需覆盖请加 --force。")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _sqlite_counts(conn: sqlite3.Connection) -> dict[str, int]:
    names = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    # Table names come from sqlite_master itself, quoted: no user input reaches this SQL.
    return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}  # nosec B608


def _sqlite_verify(conn: sqlite3.Connection) -> dict[str, int]:
    """integrity_check + the tables every kepu-review database has; the row counts per table."""
    problems = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    if problems != ["ok"]:
        raise UserError("数据库完整性检查未通过：" + "; ".join(problems[:5]))
    counts = _sqlite_counts(conn)
    missing = [t for t in REQUIRED_TABLES if t not in counts]
    if missing:
        raise UserError("这不是本系统的数据库（缺少数据表：" + "、".join(missing) + "）。")
    return counts


def _record(action: str, after: dict, reason: str = "") -> bool:
    """Audit an operation where the database takes writes; a read-only database is not an error."""
    try:
        with write_transaction():
            audit.record(action, "database", None, after=after, reason=reason)
        return True
    except DBAPIError as e:
        current_app.logger.warning("could not audit %s: %s", action, e)
        return False


# ---------------------------------------------------------------------------------------------- SQLite

def snapshot_sqlite(source: Path, out: Path, *, busy_timeout_ms: int = 30_000) -> BackupResult:
    """Copy a consistent snapshot of `source` to `out` (which must not be the live file)."""
    started = time.monotonic()
    tmp = _temp_beside(out, "backup")
    src = sqlite3.connect(source, timeout=busy_timeout_ms / 1000)
    dst = sqlite3.connect(tmp)
    try:
        # pages=-1: the whole database in one step, i.e. one read transaction, i.e. one snapshot.
        # A stepped backup restarts whenever another connection writes and may never finish under load.
        src.backup(dst, pages=-1)
        # One self-contained file: no -wal beside a backup to forget when copying it elsewhere.
        dst.execute("PRAGMA journal_mode = DELETE")
        counts = _sqlite_verify(dst)
    except BaseException:
        dst.close()
        _remove_quietly(tmp, Path(f"{tmp}-journal"))
        raise
    finally:
        src.close()
    dst.close()
    _fsync_file(tmp)
    os.replace(tmp, out)
    fsync_dir(out.parent)
    return BackupResult("sqlite", out, out.stat().st_size, sha256_of(out), time.monotonic() - started,
                        counts=counts)


def _stage_sqlite_source(source: Path, target: Path) -> tuple[Path, dict[str, int]]:
    """Copy the file to restore next to the target and check it there; the original stays untouched."""
    with open(source, "rb") as fh:
        if fh.read(16) != SQLITE_MAGIC:
            raise UserError(f"{source} 不是 SQLite 数据库文件。")
    stage = _temp_beside(target, "restore")
    try:
        src = sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True)
        dst = sqlite3.connect(stage)
        try:
            src.backup(dst, pages=-1)
            dst.execute("PRAGMA journal_mode = DELETE")
            counts = _sqlite_verify(dst)
        finally:
            dst.close()
            src.close()
    except sqlite3.DatabaseError as e:
        _remove_quietly(stage)
        raise UserError(f"无法读取备份文件 {source}：{e}") from e
    except BaseException:
        _remove_quietly(stage)
        raise
    _fsync_file(stage)
    return stage, counts


def restore_sqlite(source: Path, target: Path, *, keep_old: bool = True) -> RestoreResult:
    """Replace the database file `target` with the verified contents of `source`.

    Refuses while another connection has `target` open: switching an open WAL database to rollback
    mode needs every other connection gone, which is exactly the check wanted ("is a server running?").
    """
    source, target = Path(source).expanduser().resolve(), Path(target).expanduser().resolve()
    if not source.is_file():
        raise UserError(f"找不到备份文件：{source}")
    if source == target:
        raise UserError("备份文件就是当前数据库文件，无需恢复。")
    target.parent.mkdir(parents=True, exist_ok=True)
    stage, counts = _stage_sqlite_source(source, target)
    digest = sha256_of(source)
    saved_as = None
    lock = None
    try:
        if target.exists():
            lock = sqlite3.connect(target, timeout=RESTORE_LOCK_WAIT_MS / 1000, isolation_level=None)
            try:
                # Checkpoints the WAL into the main file and removes it: the old file is complete alone.
                lock.execute("PRAGMA journal_mode = DELETE")
                lock.execute("PRAGMA locking_mode = EXCLUSIVE")
                lock.execute("BEGIN EXCLUSIVE")
            except sqlite3.OperationalError as e:
                if "locked" in str(e) or "busy" in str(e):
                    raise UserError("数据库正被其他进程使用（服务是否仍在运行？）。请先停止服务，再执行恢复。",
                                    status=409) from e
                raise UserError(f"无法打开当前数据库 {target}：{e}") from e
            except sqlite3.DatabaseError:
                # The live file is damaged — the very case a restore is for. Set it aside as it is.
                lock.close()
                lock = None
            if keep_old:
                saved_as = target.with_name(f"{target.name}.{datetime.now():%Y%m%d-%H%M%S}.bak")
                os.replace(target, saved_as)
        os.replace(stage, target)
        for suffix in ("-wal", "-shm", "-journal"):
            stale = Path(f"{target}{suffix}")
            if stale.exists() and saved_as is not None:
                # Belongs to the file now called *.bak; keep it with that file rather than lose it.
                os.replace(stale, Path(f"{saved_as}{suffix}"))
            else:
                _remove_quietly(stale)
        fsync_dir(target.parent)
    finally:
        if lock is not None:
            lock.close()
        _remove_quietly(stage)
    return RestoreResult("sqlite", source, digest, saved_as, counts)


# ---------------------------------------------------------------------------------------------- PostgreSQL

def _pg_target() -> tuple[str, dict]:
    """A libpq URL without the password (it would show in `ps`), and the environment carrying it."""
    url = db.engine.url
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = URL.create("postgresql", username=url.username, host=url.host, port=url.port,
                       database=url.database, query=url.query)
    return plain.render_as_string(hide_password=False), env


def pg_guidance(out: Path | None = None, source: Path | None = None) -> str:
    url, _ = _pg_target()
    lines = ["PostgreSQL 数据库请用 PostgreSQL 自带的工具备份与恢复（需与服务器主版本一致）："]
    lines.append(f"  备份：pg_dump --format=custom --no-owner --file={out or 'kepu.dump'} '{url}'")
    lines.append(f"  检查：pg_restore --list {out or source or 'kepu.dump'}")
    lines.append("  恢复（先停止服务）：pg_restore --clean --if-exists --no-owner --single-transaction "
                 f"--exit-on-error --dbname='{url}' {source or out or 'kepu.dump'}")
    lines.append("  密码请通过 PGPASSWORD 或 ~/.pgpass 提供，不要写在命令行上。")
    return "\n".join(lines)


def _pg_tool(name: str, out: Path | None = None, source: Path | None = None) -> str:
    path = shutil.which(name)
    if path is None:
        raise PgToolMissing(f"找不到 {name}。\n" + pg_guidance(out, source))
    return path


def _run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, capture_output=True, text=True, check=False)  # nosec B603


def _pg_list(archive: Path, env: dict) -> dict[str, int]:
    listed = _run([_pg_tool("pg_restore", source=archive), "--list", str(archive)], env)
    if listed.returncode != 0:
        raise UserError(f"备份文件 {archive} 无法读取：{listed.stderr.strip()[:500]}")
    tables = [line.split()[-2] for line in listed.stdout.splitlines() if " TABLE DATA " in line]
    missing = [t for t in REQUIRED_TABLES if t not in tables]
    if missing:
        raise UserError("这不是本系统的数据库备份（缺少数据表：" + "、".join(missing) + "）。")
    return {t: -1 for t in tables}  # row counts are not in a pg_dump table of contents


def dump_postgres(out: Path) -> BackupResult:
    started = time.monotonic()
    url, env = _pg_target()
    pg_dump = _pg_tool("pg_dump", out=out)
    tmp = _temp_beside(out, "backup")
    try:
        done = _run([pg_dump, "--format=custom", "--no-owner", f"--file={tmp}", url], env)
        if done.returncode != 0:
            raise UserError(f"pg_dump 失败：{done.stderr.strip()[:500]}")
        tables = _pg_list(tmp, env)
        _fsync_file(tmp)
        os.replace(tmp, out)
    finally:
        _remove_quietly(tmp)
    fsync_dir(out.parent)
    return BackupResult("postgresql", out, out.stat().st_size, sha256_of(out), time.monotonic() - started,
                        counts=tables)


def _pg_other_sessions() -> int:
    db.session.remove()
    db.engine.dispose()
    with db.engine.connect() as conn:
        return conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        )).scalar_one()


def restore_postgres(source: Path, *, keep_old: bool = True) -> RestoreResult:
    source = Path(source).expanduser().resolve()
    if not source.is_file():
        raise UserError(f"找不到备份文件：{source}")
    url, env = _pg_target()
    pg_restore = _pg_tool("pg_restore", source=source)
    tables = _pg_list(source, env)
    others = _pg_other_sessions()
    if others:
        raise UserError(f"数据库还有 {others} 个其他连接（服务是否仍在运行？）。请先停止服务，再执行恢复。",
                        status=409)
    saved_as = None
    if keep_old:
        saved_as = default_backup_path().with_name(f"pre-restore-{datetime.now():%Y%m%d-%H%M%S}.dump")
        saved_as.parent.mkdir(parents=True, exist_ok=True)
        dump_postgres(saved_as)
    db.engine.dispose()
    done = _run([pg_restore, "--clean", "--if-exists", "--no-owner", "--single-transaction", "--exit-on-error",
                 f"--dbname={url}", str(source)], env)
    if done.returncode != 0:
        raise UserError(f"pg_restore 失败，数据库未改变：{done.stderr.strip()[:500]}")
    return RestoreResult("postgresql", source, sha256_of(source), saved_as, tables)


# ---------------------------------------------------------------------------------------------- entry points

def create_backup(out: Path | None = None, *, force: bool = False) -> BackupResult:
    """Back up the configured database to `out` (default: instance/backups/kepu-<time>.*) and audit it."""
    kind = engine_name()
    if kind == "sqlite":
        source = sqlite_path()
        if not source.exists():
            raise UserError(f"数据库文件不存在：{source}")
        out = _prepare_output(out or default_backup_path(), force=force, source=source)
        result = snapshot_sqlite(source, out, busy_timeout_ms=current_app.config["SQLITE_BUSY_TIMEOUT_MS"])
    elif kind == "postgresql":
        out = _prepare_output(out or default_backup_path(), force=force)
        result = dump_postgres(out)
    else:
        raise UserError(f"不支持的数据库类型：{kind}")
    result.audited = _record("ops.backup", result.as_audit())
    return result


def restore_backup(source: Path, *, keep_old: bool = True) -> RestoreResult:
    """Replace the configured database with the backup `source`; audited in the restored database."""
    kind = engine_name()
    if kind == "sqlite":
        # Our own pooled connections would count as "someone else has the database open".
        db.session.remove()
        db.engine.dispose()
        result = restore_sqlite(source, sqlite_path(), keep_old=keep_old)
        db.engine.dispose()
    elif kind == "postgresql":
        result = restore_postgres(source, keep_old=keep_old)
    else:
        raise UserError(f"不支持的数据库类型：{kind}")
    result.audited = _record("ops.restore", {
        "engine": result.engine, "source": str(result.source), "sha256": result.sha256,
        "previous_saved_as": str(result.previous_saved_as) if result.previous_saved_as else None,
    })
    return result
