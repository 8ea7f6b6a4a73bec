#!/usr/bin/env python3
"""Does the login throttle hold across gunicorn workers? 40 bad logins against 4 gthread workers on
PostgreSQL, once with the limiter on Redis (shared counter) and once on memory (one counter per worker).

Usage: .venv/bin/python scripts/bench_throttle.py [--attempts 40] [--workers 4] [--skip-memory]
  [--pg postgresql+psycopg://postgres@127.0.0.1:5432] [--redis redis://127.0.0.1:6379/15]
Creates (drops first) the database kepu_bench_throttle, runs `flask db upgrade` and `flask users create`,
flushes the Redis database given, serves on a free 127.0.0.1 port. Prints one line per storage, then a
JSON object as the last line. Exit status 1 when a Redis run lets more than the limit through.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import subprocess  # nosec B404 — starts our own flask/gunicorn with argument lists
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _benchlib  # noqa: E402  (scripts/ is not a package)

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
DB_NAME = "kepu_bench_throttle"
USERNAME = "bench_reviewer"
PASSWORD = "bench-right-password"  # nosec B105 — a throwaway account in a throwaway database
LIMIT = "5 per minute"


def free_port() -> int:
    return _benchlib.free_port()


def flush_redis(url: str) -> None:
    """Empty the Redis database the limiter will use; fails loudly when Redis is not there."""
    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    client.ping()
    client.flushdb()
    client.close()


def limiter_keys(url: str) -> list[str]:
    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        return [k.decode() for k in client.keys("*")]
    finally:
        client.close()


def recreate_database(server_url: str, name: str) -> str:
    """Drop and create `name` on the server; the SQLAlchemy URL of the new database."""
    return _benchlib.recreate_pg_database(server_url, name)


def app_env(database_url: str, storage: str, instance: Path) -> dict:
    env = dict(os.environ)
    env.update({
        "FLASK_APP": "wsgi.py",
        "KEPU_DATABASE_URL": database_url,
        "KEPU_RATELIMIT_STORAGE": storage,
        "KEPU_LOGIN_RATE_LIMIT": LIMIT,
        "KEPU_SECRET_KEY": secrets.token_hex(32),
        # A private instance folder: the developer's instance/config.py must not leak into the run.
        "KEPU_INSTANCE_PATH": str(instance),
    })
    return env


def flask(args: list[str], env: dict) -> str:
    done = subprocess.run([str(VENV_BIN / "flask"), *args], cwd=ROOT, env=env, capture_output=True,  # nosec B603
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def prepare(database_url: str, instance: Path) -> None:
    """The deploy steps of docs/deploy.md: migrate, then create an account."""
    env = app_env(database_url, "memory://", instance)
    flask(["db", "upgrade"], env)
    flask(["users", "create", USERNAME, "--name", "压测专家", "--role", "reviewer", "--password", PASSWORD], env)


@contextlib.contextmanager
def gunicorn(env: dict, workers: int, log_dir: Path):
    """gunicorn (gthread) on a free port; yields the base URL, stops the server on exit."""
    port = free_port()
    log = open(log_dir / f"gunicorn-{port}.log", "w")  # noqa: SIM115 — closed in finally
    proc = subprocess.Popen(  # nosec B603
        [str(VENV_BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--worker-class", "gthread",
         "--workers", str(workers), "--threads", "4", "--graceful-timeout", "5", "wsgi:app"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited early; see {log.name}")
            try:
                if requests.get(f"{base}/login", timeout=10).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer within 60 s; see {log.name}")
            time.sleep(0.2)
        # Every worker imports the app lazily on its first request; give them all a request to warm up.
        for _ in range(workers * 2):
            with requests.Session() as s:
                s.get(f"{base}/login", timeout=10)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def csrf_token(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    if not m:
        raise RuntimeError("no CSRF token on the login page")
    return m.group(1)


def one_bad_login(base: str) -> int:
    # A new session, hence a new TCP connection, per attempt: the kernel hands each to whichever
    # worker accepts it, as it would for attackers hitting a real deployment.
    with requests.Session() as s:
        page = s.get(f"{base}/login", timeout=30)
        resp = s.post(f"{base}/login", data={"username": USERNAME, "password": "wrong-password",  # nosec B105
                                             "csrf_token": csrf_token(page.text)}, timeout=30,
                      allow_redirects=False)
        return resp.status_code


def bad_logins(base: str, attempts: int, concurrency: int = 8) -> Counter:
    with ThreadPoolExecutor(concurrency) as pool:
        return Counter(pool.map(lambda _: one_bad_login(base), range(attempts)))


def run(database_url: str, storage: str, workers: int, attempts: int, concurrency: int, work_dir: Path) -> dict:
    """One fresh server (fresh memory counters), one flushed Redis database, `attempts` bad logins."""
    if storage.startswith("redis"):
        flush_redis(storage)
    env = app_env(database_url, storage, work_dir / "instance")
    with gunicorn(env, workers, work_dir) as base:
        started = time.monotonic()
        statuses = bad_logins(base, attempts, concurrency)
        seconds = time.monotonic() - started
    return {"storage": storage.split(":")[0], "workers": workers, "attempts": attempts,
            "concurrency": concurrency,
            "allowed_401": statuses.get(401, 0), "throttled_429": statuses.get(429, 0),
            "other": {str(k): v for k, v in statuses.items() if k not in (401, 429)},
            "seconds": round(seconds, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, default=40)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--concurrency", default="1,8",
                        help="comma-separated numbers of attempts in flight at once (1 = one after another)")
    parser.add_argument("--skip-memory", action="store_true", help="only the Redis runs")
    args = parser.parse_args()

    database_url = recreate_database(args.pg, DB_NAME)
    results = []
    with tempfile.TemporaryDirectory(prefix="kepu-bench-throttle-") as tmp:
        work_dir = Path(tmp)
        prepare(database_url, work_dir / "instance")
        storages = [args.redis] + ([] if args.skip_memory else ["memory://"])
        for storage in storages:
            for concurrency in [int(c) for c in args.concurrency.split(",")]:
                result = run(database_url, storage, args.workers, args.attempts, concurrency, work_dir)
                results.append(result)
                print(f"storage={result['storage']:<6} workers={result['workers']} concurrency={concurrency} "
                      f"limit='{LIMIT}' "
                      f"attempts={result['attempts']} allowed(401)={result['allowed_401']} "
                      f"throttled(429)={result['throttled_429']} other={result['other']} "
                      f"in {result['seconds']} s", flush=True)
    print(json.dumps({"limit": LIMIT, "results": results}, ensure_ascii=False))
    held = all(r["allowed_401"] <= 5 and not r["other"] for r in results if r["storage"] == "redis")
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main())
