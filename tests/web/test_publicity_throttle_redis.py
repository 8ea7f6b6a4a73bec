"""The per-address objection limit holds across worker processes when its counters live in Redis:
gunicorn with 2 workers (two app instances, separate processes) on PostgreSQL, the limiter's storage
in Redis, objections posted concurrently from one address on fresh connections (each lands on
whichever worker accepts it). Redis at 127.0.0.1:6379 is part of this machine: unreachable fails."""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from app import create_app
from app.extensions import db
from app.models import Objection
from tests.conftest import PG_URL, _base_config, _pg_reset
from tests.publicity_fixtures import build_publicized_round
from tests.throttle_fixtures import bench, flushed_redis

pytestmark = pytest.mark.postgres

REDIS_URL = "redis://127.0.0.1:6379/12"  # 14: the login throttle test, 15: scripts/bench_throttle.py
LIMIT = 3
ATTEMPTS = 10


@pytest.fixture(scope="module")
def server():
    flushed_redis(REDIS_URL)
    _pg_reset(PG_URL)
    with tempfile.TemporaryDirectory(prefix="kepu-objection-throttle-") as tmp:
        work = Path(tmp)
        env = bench.app_env(PG_URL, REDIS_URL, work / "instance")
        env["KEPU_OBJECTION_RATE_LIMIT"] = f"{LIMIT} per hour"
        env["KEPU_UPLOAD_FOLDER"] = str(work / "uploads")
        bench.flask(["db", "upgrade"], env)
        app = create_app(_base_config(work, PG_URL))
        with app.app_context():
            small = build_publicized_round()
            target = small.noms["A1"]
            db.session.remove()
            db.engine.dispose()
        with bench.gunicorn(env, 2, work) as base:
            yield base, target, app


def _file(base: str, nomination_id: int) -> int:
    with requests.Session() as s:
        page = s.get(f"{base}/gongshi/2024/objection", timeout=30)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        resp = s.post(f"{base}/gongshi/2024/objection", allow_redirects=False, timeout=30, data={
            "csrf_token": token, "nomination_id": str(nomination_id), "name": "王实名", "phone": "13900001234",
            "facts": "活动场次与申报材料不符，特此实名反映。", "pledge": "y"})
        return resp.status_code


def test_the_limit_holds_across_workers(server):
    base, target, app = server
    with ThreadPoolExecutor(max_workers=5) as pool:
        statuses = Counter(pool.map(lambda _: _file(base, target), range(ATTEMPTS)))
    assert statuses == {303: LIMIT, 429: ATTEMPTS - LIMIT}, statuses
    assert any("objection" in k for k in bench.limiter_keys(REDIS_URL))
    with app.app_context():
        assert db.session.scalar(select(func.count(Objection.id))) == LIMIT
        db.session.remove()
        db.engine.dispose()
