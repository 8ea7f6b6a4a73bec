#!/usr/bin/env python3
"""National-scale load test (issue 15): 7,000 nominations × 7 reviewers, 200 reviewers autosaving with
think time, 20 chairs polling the live ranking (kept up to date in the database, app/ranking/upkeep.py),
4 gunicorn workers + 2 `flask jobs worker` consumers on PostgreSQL, the job queue and the login throttle
on Redis.

Usage:
  .venv/bin/python scripts/load_national.py --pg postgresql+psycopg://postgres@127.0.0.1:5432 \\
      [--pg-db kepu_national_load] [--seconds 120] [--nominations 7000] [--reviewers 200] [--chairs 20]
      [--workers 4] [--threads 8] [--consumers 2] [--redis-base redis://127.0.0.1:6379] [--redis-dbs 10,11]
      [--open-share 0.1] [--think 2,8] [--poll 4,6] [--max-age 0] [--keep]

The database is (re)created (a throw-away name: kepu_…load…), migrated (`flask db upgrade`) and bulk
loaded with scripts/bench_rankings.seed: every sheet submitted with its total, then --open-share of the
sheets (and their scores) removed again, which is the reviewers' open work. The reviewers and chairs
then sign in and run the sessions of scripts/load_test.py (reviewers open an assigned nomination and
autosave it 2–6 times, sometimes submitting; chairs poll /rankings/activity with their ETag).
Afterwards every acknowledged save is read back from PostgreSQL and compared (load_test.verify).
Prints p50/p95/p99 per request type and, as its LAST line, one JSON object with chair_poll_p95_ms and
save_p95_ms. Exit status 1 on any 5xx, a missing acknowledged save or an audit mismatch.
Results: docs/benchmarks.md section 7.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import signal
import subprocess  # nosec B404 — starts our own flask consumers with argument lists
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load_test as lt  # noqa: E402  (scripts/ is not a package)

ROOT = lt.ROOT
CATEGORY = "activity"
# bench_rankings.seed writes explicit ids; PostgreSQL's sequences must follow them before the app inserts.
SEEDED_TABLES = ("rounds", "criteria", "nominators", "users", "nominations", "assignments",
                 "review_sheets", "scores")


def _pair(text: str) -> tuple[float, float]:
    low, high = (float(x) for x in text.split(","))
    return low, high


def prepare(db_url: str, env: dict, args) -> lt.Workload:
    lt.flask(["db", "upgrade"], env)
    with lt.patched_environ(env):
        sys.path.insert(0, str(ROOT))
        from bench_rankings import seed
        from sqlalchemy import insert, text
        from werkzeug.security import generate_password_hash

        from app import create_app
        from app.extensions import db
        from app.models import User

        app = create_app()
        with app.app_context():
            try:
                counts = seed(args.nominations, 7, args.reviewers, CATEGORY)
                conn = db.session.connection()
                first_chair = conn.execute(text("SELECT max(id) FROM users")).scalar_one() + 1
                chairs = ["chair"] + [f"chair{i:02d}" for i in range(2, args.chairs + 1)]
                db.session.execute(insert(User.__table__), [
                    {"id": first_chair + i, "username": u, "display_name": f"压测主任{i + 2:02d}", "role": "chair",
                     "password_hash": "x", "session_token": secrets.token_hex(16), "active": True}
                    for i, u in enumerate(chairs[1:])])
                # One hash for every account: hashing 220 passwords one by one is minutes of scrypt.
                conn.execute(text("UPDATE users SET password_hash = :h"),
                             {"h": generate_password_hash(lt.PASSWORD)})
                # A random share of the sheets, so every reviewer has open work (a pattern in the ids
                # would follow the seed's reviewer rotation and leave most reviewers idle).
                rng = random.Random(args.seed)
                reopened = [{"id": i} for i in range(1, counts["sheets"] + 1) if rng.random() < args.open_share]
                if reopened:
                    conn.execute(text("DELETE FROM scores WHERE sheet_id = :id"), reopened)
                    conn.execute(text("DELETE FROM review_sheets WHERE id = :id"), reopened)
                if db.engine.dialect.name == "postgresql":
                    for table in SEEDED_TABLES:
                        conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # nosec B608
                                          f"(SELECT coalesce(max(id), 1) FROM {table}))"))
                db.session.commit()
                conn = db.session.connection()
                reviewers = [r for (r,) in conn.execute(text(
                    "SELECT username FROM users WHERE role = 'reviewer' ORDER BY id"))]
                left = conn.execute(text("SELECT count(*) FROM scores")).scalar_one()
                print(f"seeded {counts}; open pairs {counts['sheets'] - conn.execute(text('SELECT count(*) FROM review_sheets')).scalar_one()}, "
                      f"scores kept {left}", flush=True)
                workload = lt.plan_workload(db, 1, reviewers, chairs)
                workload.seeded = {**counts, "scores_at_start": left}
                return workload
            finally:
                db.session.remove()
                db.engine.dispose()


class Consumers:
    """`flask jobs worker` processes, each in its own process group (stopped by their ids)."""

    def __init__(self, env: dict, n: int, log_dir: Path):
        self.env, self.n, self.log_dir, self.procs = env, n, log_dir, []

    def start(self) -> None:
        for i in range(self.n):
            log = open(self.log_dir / f"consumer-{i}.log", "w")  # noqa: SIM115 — the child keeps it
            self.procs.append(subprocess.Popen([str(lt.VENV_BIN / "flask"), "jobs", "worker"], cwd=ROOT,  # nosec B603
                                               env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True))
            log.close()

    def alive(self) -> int:
        return sum(1 for p in self.procs if p.poll() is None)

    def stop(self) -> None:
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def ranking_folds(db_url: str) -> int:
    """How many times the kept ranking was brought up to date during the run (every process's folds)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT COALESCE(SUM(computations), 0) FROM ranking_marks")).scalar() or 0)
    finally:
        engine.dispose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pg", metavar="URL", required=True, help="PostgreSQL server URL")
    ap.add_argument("--pg-db", default="kepu_national_load", help="database to (re)create: kepu_…load…")
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--nominations", type=int, default=7000)
    ap.add_argument("--reviewers", type=int, default=200)
    ap.add_argument("--chairs", type=int, default=20)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--consumers", type=int, default=2)
    ap.add_argument("--redis-base", default="redis://127.0.0.1:6379")
    ap.add_argument("--redis-dbs", default="10,11", help="job queue, login throttle")
    ap.add_argument("--open-share", type=float, default=0.1, help="share of the sheets left open for the reviewers")
    ap.add_argument("--think", type=_pair, default=(2.0, 8.0), help="seconds between a reviewer's saves: low,high")
    ap.add_argument("--poll", type=_pair, default=(4.0, 6.0), help="seconds between a chair's polls: low,high")
    ap.add_argument("--max-age", type=float, default=0.0,
                    help="RANKING_MAX_AGE_SECONDS: a poll may answer with rows folded this recently (0: every version)")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    jobs_db, limit_db = (f"{args.redis_base}/{n}" for n in args.redis_dbs.split(","))

    with lt.work_dir(args.keep, "kepu-national-") as work:
        (work / "instance").mkdir(exist_ok=True)
        db_url = lt.recreate_pg_database(args.pg, args.pg_db)
        for url in (jobs_db, limit_db):
            lt.flush_redis(url)
        env = lt.app_env(db_url, work, secrets.token_hex(32), limit_db)
        env.update({"KEPU_JOBS_URL": jobs_db,
                    "KEPU_JOBS_FOLDER": str(work / "jobs"), "KEPU_REPORTS_FOLDER": str(work / "reports"),
                    "KEPU_UPLOAD_FOLDER": str(work / "uploads"),
                    "KEPU_RANKING_MAX_AGE_SECONDS": f"{args.max_age:g}"})
        workload = prepare(db_url, env, args)
        server = lt.Server(env, args.workers, args.threads, work)
        consumers = Consumers(env, args.consumers, work)
        recorder = lt.Recorder(work / "saves.jsonl")
        try:
            consumers.start()
            server.start()
            run = lt.run_load(server.base, workload, args.seconds, recorder, seed=args.seed, think=args.think,
                              poll=args.poll, chair_categories=(CATEGORY,))
            consumers_alive = consumers.alive()
        finally:
            server.stop()
            consumers.stop()
            recorder.close()
        log = lt.read_log(recorder.log_path)
        check = lt.verify(db_url, log, workload)
        folds = ranking_folds(db_url)
        figs = lt.figures(run.recorder.requests)
        outcomes = lt.save_outcomes(log)
        lat = figs["latency_ms"]
        summary = {
            "engine": "postgresql", "nominations": workload.seeded["nominations"],
            "scores_at_start": workload.seeded["scores_at_start"], "reviewers": len(workload.reviewers),
            "chairs": len(workload.chairs), "workers": args.workers, "threads": args.threads,
            "consumers": args.consumers, "consumers_alive_at_end": consumers_alive, "redis": True,
            "ranking_folds": folds, "ranking_max_age_s": args.max_age, "seconds": round(run.duration, 1), "think_s": list(args.think), "poll_s": list(args.poll),
            "chair_poll_p50_ms": lat.get("poll", {}).get("p50"), "chair_poll_p95_ms": lat.get("poll", {}).get("p95"),
            "save_p50_ms": lat.get("save", {}).get("p50"), "save_p95_ms": lat.get("save", {}).get("p95"),
            **figs, **outcomes,
            "saves_per_second": round(outcomes["acknowledged_saves"] / run.duration, 1) if run.duration else 0,
            **{k: v for k, v in check.items() if k != "missing_examples"},
            "missing_examples": check["missing_examples"],
        }
        for kind, v in lat.items():
            print(f"  {kind:<7} n={figs['requests'][kind]:<6} p50={v['p50']:>8} ms  p95={v['p95']:>8} ms  "
                  f"p99={v['p99']:>8} ms  max={v['max']:>8} ms  status={figs['status_counts'][kind]}")
        print(f"  acknowledged saves {outcomes['acknowledged_saves']} ({summary['saves_per_second']} /s); "
              f"missing {check['missing_saves']}; audit missing {check['audit_missing']}; 5xx {figs['errors_5xx']}")
    print(json.dumps(summary, ensure_ascii=False), flush=True)
    ok = (summary["errors_5xx"] == 0 and summary["missing_saves"] == 0 and summary["audit_missing"] == 0
          and summary["audit_mismatch"] == 0 and summary["acknowledged_saves"] > 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
