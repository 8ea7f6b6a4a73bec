"""Pieces the benchmark and load scripts share: a free loopback port, a throw-away PostgreSQL database, and
the app served by gunicorn (gthread) from a wsgi module written for the run."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess  # nosec B404 — starts our own gunicorn with an argument list
import sys
import time
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]

# The module gunicorn serves: the app built from the run's config, then whatever the script adds (an
# extra endpoint, say). Written next to the run's database, imported as bench_wsgi:app.
WSGI_TEMPLATE = '''"""Written by {script}."""
import sys
sys.path.insert(0, {root!r})

from app import create_app

app = create_app({config!r})
{extra}'''


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


def write_wsgi(folder: Path, config: dict, *, script: str, extra: str = "") -> Path:
    path = folder / "bench_wsgi.py"
    path.write_text(WSGI_TEMPLATE.format(script=script, root=str(ROOT), config=config, extra=extra), encoding="utf-8")
    return path


def start_server(folder: Path, config: dict, workers: int, threads: int, *, script: str = "a benchmark script",
                 wsgi_extra: str = "", startup_timeout: float = 60.0, worker_timeout: int | None = None,
                 ready_path: str = "/login") -> tuple[subprocess.Popen, str]:
    """gunicorn (gthread, `workers` × `threads`) on a free loopback port serving the app built from
    `config`; returns the process (its own session: stop_server ends the whole group) and the base URL
    once `ready_path` answers 200. Gives up after `startup_timeout` seconds — a slow start on a busy
    shared machine needs more than an idle one, hence the option — or as soon as gunicorn exits."""
    import requests

    write_wsgi(folder, config, script=script, extra=wsgi_extra)
    port = free_port()
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    command = [gunicorn, "--chdir", str(folder), "--bind", f"127.0.0.1:{port}", "--worker-class", "gthread",
               "--workers", str(workers), "--threads", str(threads), "--log-level", "warning"]
    if worker_timeout is not None:
        command += ["--timeout", str(worker_timeout)]
    log_path = folder / "gunicorn.log"
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(command + ["bench_wsgi:app"], cwd=str(folder), stdout=subprocess.DEVNULL,  # nosec B603
                                stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + startup_timeout
    while True:
        if proc.poll() is not None:
            raise SystemExit("gunicorn exited: " + log_path.read_text(errors="replace")[-2000:])
        left = deadline - time.monotonic()
        if left <= 0:
            stop_server(proc)
            raise SystemExit(f"gunicorn did not answer {ready_path} within {startup_timeout:g} s "
                             f"(--startup-timeout); log: {log_path}")
        try:
            if requests.get(url + ready_path, timeout=min(1.0, max(left, 0.05))).status_code == 200:
                return proc, url
        except requests.RequestException:
            pass
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


def stop_server(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM to the server's process group (master and workers), SIGKILL if it is still there after
    `timeout` seconds."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout)


def add_server_arguments(parser, *, startup_timeout: float = 60.0) -> None:
    """--workers/--threads for gunicorn and --startup-timeout, the same in every benchmark."""
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--startup-timeout", type=float, default=startup_timeout, metavar="SECONDS",
                        help="how long to wait for gunicorn to answer before giving up (default %(default)s)")
