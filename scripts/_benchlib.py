"""Pieces the benchmark and load scripts share: a free loopback port and a throw-away PostgreSQL database."""

from __future__ import annotations

import re
import socket

from sqlalchemy.engine import make_url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recreate_pg_database(server_url: str, name: str, *, allowed: str = r"kepu_[a-z0-9_]+") -> str:
    """Drop and create `name` on the server (only names matching `allowed`); its SQLAlchemy URL."""
    import psycopg

    if not re.fullmatch(allowed, name):
        raise ValueError(f"refusing to recreate {name!r}: it does not match {allowed}")
    admin = make_url(server_url).set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(server_url).set(drivername="postgresql+psycopg", database=name).render_as_string(
        hide_password=False)
