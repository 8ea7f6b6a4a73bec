"""Engine set-up and the one way services open a write transaction.

SQLite: WAL, busy_timeout, foreign keys, and BEGIN IMMEDIATE for writes — measured here, a deferred
BEGIN that later upgrades to a write lock fails with "database is locked" instead of waiting.
PostgreSQL: rows that gate a write (the round's phase) are locked with FOR SHARE / FOR UPDATE.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager

from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from app.extensions import db

_immediate = contextvars.ContextVar("kepu_sqlite_immediate", default=False)


def configure_engine(engine: Engine, busy_timeout_ms: int) -> None:
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy, not pysqlite, decide when a transaction begins.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA synchronous = NORMAL")
        # Every commit of another connection empties this one's page cache; reads through a memory map
        # of the file then cost no copy (the ranking re-reads tens of thousands of index rows per poll).
        cur.execute("PRAGMA mmap_size = 268435456")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if _immediate.get() else "BEGIN")


_in_write = contextvars.ContextVar("kepu_in_write_transaction", default=False)


@contextmanager
def write_transaction():
    """The request's one write transaction: commits on success, rolls back on any error.

    Re-entrant by design: an operation that another operation calls opens it too, and then only
    flushes, so an edit and its consequences (the re-check, the audit events, the ranking bump) commit
    together or not at all — the outermost operation commits. No caller needs a "don't commit" flag.

    The read transaction a request may already hold (loading the user, say) is closed first, so on
    SQLite the write starts with BEGIN IMMEDIATE and waits its turn instead of failing on upgrade.
    """
    session = db.session()
    if _in_write.get():
        yield session
        session.flush()
        return
    if session.in_transaction():
        session.commit()
    token = _immediate.set(True)
    outer = _in_write.set(True)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        _in_write.reset(outer)
        _immediate.reset(token)


def in_write_transaction() -> bool:
    return _in_write.get()


def locked(model, ident, *, shared: bool = False):
    """Re-read one row inside the current write transaction with a row lock (no-op lock on SQLite,
    where BEGIN IMMEDIATE already serialises writers)."""
    stmt = (
        select(model)
        .where(model.id == ident)
        .with_for_update(read=shared)
        .execution_options(populate_existing=True)
    )
    return db.session.execute(stmt).scalar_one_or_none()
