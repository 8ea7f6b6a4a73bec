#!/usr/bin/env python3
"""Benchmark the score save against a bare authenticated write of the same app.

Seeds its own database (SQLite by default, or a PostgreSQL database given with --pg, which it wipes),
writes a wsgi module of its own under /tmp that builds the app and registers one extra endpoint,
POST /_bench/bare (login required, CSRF checked, one UPDATE in a write transaction: the floor any
authenticated write pays), serves it with gunicorn (gthread) on a free port, signs in N reviewers
and drives their autosaves (the htmx request the score panel sends, with new values every time)
from N threads, then the bare write from the same N threads, in alternating phases so that noise
from anything else on the machine falls on both alike.

By default every reviewer fires the next request as soon as the last one is answered (think time 0):
the server is saturated and the figures measure cost per request. --think-ms 800 paces each reviewer
like the score panel itself can at most (its autosave waits 800 ms after the last keystroke; the
pause is jittered ±50 % so the reviewers do not type in lockstep).

At the end the database is compared with what the reviewers were told: every acknowledged save
must be there (each sheet's version equals its count of acknowledged saves).

Usage:
  .venv/bin/python scripts/bench_scoring.py [--users 50] [--rounds 3] [--per-round 10]
      [--workers 2] [--threads 8] [--think-ms 0] [--startup-timeout 60]
      [--pg postgresql+psycopg://postgres@127.0.0.1/kepu_bench]

Prints p50/p95/p99 and errors per endpoint; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts import _benchlib  # noqa: E402

if TYPE_CHECKING:
    import subprocess

PASSWORD = "bench-password-2024"
VERSION = re.compile(r'name="version" value="(\d+)"')
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')

# Added to the shared wsgi module (_benchlib.WSGI_TEMPLATE): the bare write the save is compared with.
BARE_WRITE = '''
from flask import request
from flask_login import current_user, login_required
from sqlalchemy import update

from app.core.database import write_transaction
from app.extensions import db
from app.models import ReviewSheet
from app.models._base import utcnow


@app.post("/_bench/bare")
@login_required
def bench_bare_write():
    nomination_id = int(request.form["nomination"])
    reviewer_id = current_user.id
    with write_transaction():
        db.session.execute(
            update(ReviewSheet)
            .where(ReviewSheet.reviewer_id == reviewer_id, ReviewSheet.nomination_id == nomination_id)
            .values(updated_at=utcnow()),
            execution_options={"synchronize_session": False},
        )
    return "ok"
'''


def _config(db_url: str, folder: Path) -> dict:
    return {
        "SECRET_KEY": "bench-secret-key-not-for-production",
        "SQLALCHEMY_DATABASE_URI": db_url,
        "UPLOAD_FOLDER": str(folder / "uploads"),
        "RATELIMIT_ENABLED": False,  # N sign-ins from one address in a few seconds
    }


def _reset_pg(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = make_url(url).database or ""
    if "bench" not in name and "test" not in name:
        raise SystemExit(f"--pg wipes the database; its name must contain 'bench' or 'test' (got {name!r}).")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def seed(config: dict, users: int) -> dict:
    """A round in `reviewing`, one nomination per reviewer (half units, half activities), every
    reviewer assigned to their own; reviewers are created through the users service."""
    from app import create_app
    from app.accounts import operations as users_service
    from app.extensions import db
    from app.models import Assignment, Criterion, Nomination, Nominator, RankingCounter, Round
    from app.models.round import default_criteria

    app = create_app(config)
    plan = []
    with app.app_context():
        db.create_all()
        rnd = Round(year=2024, name="基准测试批次", phase="reviewing", deadline=date(2024, 10, 8))
        db.session.add(rnd)
        db.session.flush()
        for category in ("unit", "activity"):
            db.session.add_all(default_criteria(rnd.id, category))
            db.session.add(RankingCounter(round_id=rnd.id, category=category, version=1))
        nominator = Nominator(name="长沙市科协", kind="city", position=1)
        db.session.add(nominator)
        db.session.flush()
        noms = []
        for i in range(users):
            category = "unit" if i % 2 == 0 else "activity"
            nom = Nomination(round_id=rnd.id, nominator_id=nominator.id, category=category,
                             title=f"基准推荐对象{i + 1}", host="长沙市科协" if category == "activity" else None,
                             summary="简介" * 50, recommendation="同意推荐。")
            db.session.add(nom)
            noms.append(nom)
        db.session.commit()
        nom_ids = [(n.id, n.category) for n in noms]
        criteria = {c.category: [] for c in db.session.query(Criterion).all()}
        for c in db.session.query(Criterion).order_by(Criterion.position):
            criteria[c.category].append(c.id)
        for i in range(users):
            user = users_service.create_user(f"bench{i:03d}", f"基准专家{i + 1}", "reviewer", PASSWORD)
            nid, category = nom_ids[i]
            db.session.add(Assignment(reviewer_id=user.id, nomination_id=nid))
            plan.append({"username": user.username, "user_id": user.id, "nomination": nid,
                         "criteria": criteria[category]})
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return {"plan": plan}


def start_server(folder: Path, config: dict, workers: int, threads: int, *,
                 startup_timeout: float = 60.0) -> tuple[subprocess.Popen, str]:
    """The shared server with the bare-write endpoint (bench_form_check.py serves through this too)."""
    return _benchlib.start_server(folder, config, workers, threads, script="scripts/bench_scoring.py",
                                  wsgi_extra=BARE_WRITE, startup_timeout=startup_timeout)


class Reviewer:
    def __init__(self, url: str, spec: dict):
        import requests

        self.url, self.spec = url, spec
        self.session = requests.Session()
        self.version = 0
        self.saves = 0
        login_page = self.session.get(f"{url}/login", timeout=30).text
        resp = self.session.post(f"{url}/login", data={"username": spec["username"], "password": PASSWORD,
                                                       "csrf_token": TOKEN.search(login_page).group(1)},
                                 allow_redirects=False, timeout=30)
        if resp.status_code != 303:
            raise SystemExit(f"sign-in failed for {spec['username']}: {resp.status_code}")
        page = self.session.get(f"{url}/review/nominations/{spec['nomination']}", timeout=30).text
        self.token = TOKEN.search(page).group(1)
        self.version = int(VERSION.search(page).group(1))

    def save(self) -> tuple[float, bool]:
        self.saves += 1
        k = self.saves
        # New values every time, like a reviewer typing: a real write, never the no-op path.
        values = [k % 30, (k * 3) % 20 + 0.5, (k * 7) % 30, (k * 11) % 20]
        data = {"csrf_token": self.token, "version": str(self.version), "comment": f"第{k}次保存"}
        for cid, value in zip(self.spec["criteria"], values, strict=True):
            data[f"score-{cid}"] = str(value)
        started = time.perf_counter()
        try:
            resp = self.session.post(f"{self.url}/review/nominations/{self.spec['nomination']}/sheet", data=data,
                                     headers={"HX-Request": "true"}, timeout=60)
        except Exception:  # noqa: BLE001 - any failure is an error of the run
            return time.perf_counter() - started, False
        elapsed = time.perf_counter() - started
        m = VERSION.search(resp.text) if resp.status_code == 200 else None
        if m is None:
            return elapsed, False
        self.version = int(m.group(1))
        return elapsed, True

    def bare(self) -> tuple[float, bool]:
        started = time.perf_counter()
        try:
            resp = self.session.post(f"{self.url}/_bench/bare",
                                     data={"nomination": self.spec["nomination"]},
                                     headers={"X-CSRFToken": self.token}, timeout=60)
        except Exception:  # noqa: BLE001
            return time.perf_counter() - started, False
        return time.perf_counter() - started, resp.status_code == 200 and resp.text == "ok"


def run_phase(reviewers: list[Reviewer], kind: str, per_user: int, think_s: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    barrier = threading.Barrier(len(reviewers))

    def work(r: Reviewer):
        nonlocal errors
        rng = random.Random(r.spec["user_id"])
        barrier.wait()
        if think_s:
            time.sleep(rng.uniform(0, think_s))  # reviewers do not type in lockstep
        mine, bad = [], 0
        for _ in range(per_user):
            elapsed, ok = getattr(r, kind)()
            mine.append(elapsed)
            bad += 0 if ok else 1
            if think_s:
                time.sleep(think_s * rng.uniform(0.5, 1.5))
        with lock:
            latencies.extend(mine)
            errors += bad

    threads = [threading.Thread(target=work, args=(r,)) for r in reviewers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[index] * 1000


def summary(name: str, values: list[float], errors: int) -> dict:
    out = {f"{name}_p50_ms": round(pct(values, 50), 2), f"{name}_p95_ms": round(pct(values, 95), 2),
           f"{name}_p99_ms": round(pct(values, 99), 2), f"{name}_mean_ms": round(statistics.mean(values) * 1000, 2),
           f"{name}_n": len(values), f"{name}_errors": errors}
    print(f"{name:5s} n={len(values):5d}  p50={out[f'{name}_p50_ms']:8.2f} ms  p95={out[f'{name}_p95_ms']:8.2f} ms  "
          f"p99={out[f'{name}_p99_ms']:8.2f} ms  mean={out[f'{name}_mean_ms']:8.2f} ms  errors={errors}")
    return out


def verify(config: dict, reviewers: list[Reviewer]) -> int:
    """Every acknowledged save is in the database: each sheet's version is its count of saves."""
    from sqlalchemy import select

    from app import create_app
    from app.extensions import db
    from app.models import ReviewSheet

    app = create_app(config)
    missing = 0
    with app.app_context():
        stored = dict(db.session.execute(select(ReviewSheet.reviewer_id, ReviewSheet.version)).all())
        for r in reviewers:
            if stored.get(r.spec["user_id"], 0) != r.version:
                missing += 1
        db.session.remove()
        db.engine.dispose()
    return missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="alternating save/bare phases")
    parser.add_argument("--per-round", type=int, default=10, help="requests per user per phase")
    _benchlib.add_server_arguments(parser)
    parser.add_argument("--think-ms", type=float, default=0.0, help="pause between a user's requests")
    parser.add_argument("--pg", metavar="URL", help="PostgreSQL database to use (it is wiped)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="kepu-bench-scoring-", dir="/tmp"))
    if args.pg:
        _reset_pg(args.pg)
        db_url = args.pg
    else:
        db_url = "sqlite:///" + str(folder / "bench.sqlite3")
    config = _config(db_url, folder)
    print(f"database: {'postgresql' if args.pg else 'sqlite'}; seeding {args.users} reviewers…", flush=True)
    plan = seed(config, args.users)["plan"]
    proc, url = start_server(folder, config, args.workers, args.threads, startup_timeout=args.startup_timeout)
    try:
        print(f"gunicorn gthread {args.workers}×{args.threads} on {url}; signing in…", flush=True)
        reviewers = [None] * len(plan)

        def sign_in(i):
            reviewers[i] = Reviewer(url, plan[i])

        sign_ins = [threading.Thread(target=sign_in, args=(i,)) for i in range(len(plan))]
        for t in sign_ins:
            t.start()
        for t in sign_ins:
            t.join()
        # Warm-up: every worker thread has imported, compiled and connected before timing starts.
        run_phase(reviewers, "save", 2, 0)
        run_phase(reviewers, "bare", 2, 0)
        saves, bares, save_errors, bare_errors = [], [], 0, 0
        think = args.think_ms / 1000
        for _ in range(args.rounds):
            lat, err = run_phase(reviewers, "save", args.per_round, think)
            saves += lat
            save_errors += err
            lat, err = run_phase(reviewers, "bare", args.per_round, think)
            bares += lat
            bare_errors += err
    finally:
        _benchlib.stop_server(proc, timeout=15)
    missing = verify(config, reviewers)
    result = {"db": "postgresql" if args.pg else "sqlite", "users": args.users, "workers": args.workers,
              "threads": args.threads, "think_ms": args.think_ms}
    result.update(summary("save", saves, save_errors))
    result.update(summary("bare", bares, bare_errors))
    result["ratio_p95"] = round(result["save_p95_ms"] / result["bare_p95_ms"], 3)
    result["ratio_p50"] = round(result["save_p50_ms"] / result["bare_p50_ms"], 3)
    result["errors"] = save_errors + bare_errors
    result["acknowledged_saves_missing"] = missing
    print(f"ratio p95 save/bare = {result['ratio_p95']}  (target ≤ 1.5); errors = {result['errors']}; "
          f"acknowledged saves missing from the database = {missing}")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        print(f"kept {folder}")
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
