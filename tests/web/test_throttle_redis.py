"""The login throttle holds across 4 gunicorn workers when its counters live in Redis.

Drives the same code as scripts/bench_throttle.py: PostgreSQL migrated with `flask db upgrade`, an account
made with `flask users create`, gunicorn (gthread) on a free port, 40 bad logins with CSRF tokens.
Redis at 127.0.0.1:6379 is part of this machine: unreachable fails the test, it never skips.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.conftest import PG_URL, _pg_reset
from tests.throttle_fixtures import bench, flushed_redis

pytestmark = pytest.mark.postgres

REDIS_URL = "redis://127.0.0.1:6379/14"  # 15 belongs to scripts/bench_throttle.py
ATTEMPTS = 40
LIMIT = 5


@pytest.fixture(scope="module")
def server():
    flushed_redis(REDIS_URL)
    _pg_reset(PG_URL)
    with tempfile.TemporaryDirectory(prefix="kepu-throttle-test-") as tmp:
        work = Path(tmp)
        bench.prepare(PG_URL, work / "instance")
        env = bench.app_env(PG_URL, REDIS_URL, work / "instance")
        assert env["KEPU_LOGIN_RATE_LIMIT"] == f"{LIMIT} per minute"
        with bench.gunicorn(env, 4, work) as base:
            yield base


@pytest.fixture
def fresh_window(server):
    bench.flush_redis(REDIS_URL)
    return server


def test_bad_logins_one_after_another_stop_at_the_limit(fresh_window):
    statuses = bench.bad_logins(fresh_window, ATTEMPTS, concurrency=1)
    assert statuses == {401: LIMIT, 429: ATTEMPTS - LIMIT}
    # the counter really is the shared one in Redis, not a per-worker memory counter
    assert any("LIMITER/" in k for k in bench.limiter_keys(REDIS_URL))


def test_concurrent_bad_logins_stop_at_the_limit(fresh_window):
    statuses = bench.bad_logins(fresh_window, ATTEMPTS, concurrency=8)
    assert set(statuses) <= {401, 429}
    assert statuses[401] <= LIMIT


def test_the_right_password_is_still_refused_once_throttled(fresh_window):
    bench.bad_logins(fresh_window, LIMIT + 1, concurrency=1)
    import requests

    with requests.Session() as s:
        page = s.get(f"{fresh_window}/login", timeout=30)
        resp = s.post(f"{fresh_window}/login", data={
            "username": bench.USERNAME, "password": bench.PASSWORD, "csrf_token": bench.csrf_token(page.text)},
            allow_redirects=False, timeout=30)
    assert resp.status_code == 429 and "频繁" in resp.text
