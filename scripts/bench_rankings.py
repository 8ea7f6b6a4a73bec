#!/usr/bin/env python3
"""Benchmark the live ranking at national scale.

Seeds one round with --nominations nominations in one category (default 7,000), each scored by
--per-nomination reviewers (default 7) from a pool, on the 4-criterion rubric: about 200,000 scores,
every sheet submitted. Then times, through the app (Flask test client, signed in as the chair):

* the ranking partial (GET /rankings/<category> with HX-Request, no validator) next to the bare SQL
  aggregate (the same ranking statement executed and fetched directly) -> ratio_partial (target <= 2);
* the idle poll (the same request with a matching If-None-Match, answered 304) next to a trivial
  authenticated endpoint the benchmark registers itself (same staff check, returns "ok") -> ratio_304
  (target <= 1.2).

Usage:
  .venv/bin/python scripts/bench_rankings.py                      # SQLite file in a temp folder
  .venv/bin/python scripts/bench_rankings.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/kepu_bench
    (the PostgreSQL database is WIPED: its tables are dropped and recreated)
Timings are medians. The last printed line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, text  # noqa: E402
from werkzeug.security import generate_password_hash  # noqa: E402

from app import create_app  # noqa: E402
from app.core.authz import staff_required  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import (  # noqa: E402
    Assignment,
    Criterion,
    Nomination,
    Nominator,
    RankingCounter,
    ReviewSheet,
    Round,
    Score,
    User,
)
from app.models.round import DEFAULT_RUBRIC  # noqa: E402
from app.ranking import engine as ranking  # noqa: E402
from app.ranking import sql as ranking_sql  # noqa: E402

CHUNK = 5000
PASSWORD = "bench-password-2024"


def _insert(table, rows: list[dict]) -> None:
    for i in range(0, len(rows), CHUNK):
        db.session.execute(insert(table), rows[i:i + CHUNK])


def seed(n_noms: int, per_nom: int, pool: int, category: str) -> dict:
    """Plain Core executemany inserts with explicit ids: no ORM objects, no RETURNING round trips."""
    import random

    rng = random.Random(2024)
    rnd = Round(id=1, year=2024, name="2024年全国科普日评选（基准测试）", phase="reviewing", deadline=date(2024, 10, 8),
                slots_unit=400, slots_activity=400, method="trimmed")
    db.session.add(rnd)
    db.session.flush()
    crit_rows, crit_ids = [], []
    cid = 0
    for cat in ("unit", "activity"):
        for pos, crit in enumerate(DEFAULT_RUBRIC):
            cid += 1
            mx = float(crit["max"])
            crit_rows.append({"id": cid, "round_id": 1, "category": cat, "code": crit["code"], "name": crit["name"],
                              "max_score": mx, "step": crit["step"], "guidance": "", "position": pos})
            if cat == category:
                crit_ids.append((cid, mx))
    _insert(Criterion.__table__, crit_rows)
    _insert(RankingCounter.__table__, [{"round_id": 1, "category": c, "version": 1} for c in ("unit", "activity")])
    kinds = ["city"] * 14 + ["member"] * 40 + ["society"] * 46
    _insert(Nominator.__table__, [{"id": i + 1, "name": f"推荐单位{i + 1:03d}", "short_name": "", "kind": k, "position": i + 1}
                                  for i, k in enumerate(kinds)])
    dummy = "pbkdf2:sha256:1$x$0"  # reviewers never sign in here
    users = [{"id": i + 1, "username": f"expert{i + 1:03d}", "display_name": f"专家{i + 1:03d}", "role": "reviewer",
              "password_hash": dummy, "session_token": f"bench-token-{i + 1}", "active": True} for i in range(pool)]
    chair_id = pool + 1
    users.append({"id": chair_id, "username": "chair", "display_name": "主任", "role": "chair",
                  "password_hash": generate_password_hash(PASSWORD), "session_token": "bench-token-chair",
                  "active": True})
    _insert(User.__table__, users)
    noms, assigns, sheets, scores = [], [], [], []
    sheet_id = score_id = 0
    for n in range(1, n_noms + 1):
        noms.append({"id": n, "round_id": 1, "nominator_id": rng.randint(1, len(kinds)), "category": category,
                     "title": f"第{n}号科普日活动", "host": "某某科协", "contact_name": "", "contact_title": "",
                     "contact_phone": "", "address": "", "event_count": 1, "people_served": 100, "summary": "",
                     "recommendation": "", "status": "active", "source_key": f"bench:{n}"})
        quality = rng.gauss(76, 7)
        for k in range(per_nom):
            reviewer = (n * per_nom + k) % pool + 1  # per_nom distinct reviewers (pool >= per_nom)
            assigns.append({"id": len(assigns) + 1, "reviewer_id": reviewer, "nomination_id": n})
            sheet_id += 1
            target = min(99.0, max(40.0, quality + (reviewer % 7 - 3) + rng.gauss(0, 3.5)))
            values = [round(min(mx, max(0.0, mx * target / 100)) * 2) / 2 for _, mx in crit_ids]
            # The sheet's figures (app/review/totals.py) written with it, as a bulk load must.
            sheets.append({"id": sheet_id, "reviewer_id": reviewer, "nomination_id": n, "comment": "",
                           "status": "submitted", "version": 1, "total": sum(values), "n_values": len(values)})
            for (crit, _), value in zip(crit_ids, values, strict=True):
                score_id += 1
                scores.append({"id": score_id, "sheet_id": sheet_id, "criterion_id": crit, "value": value})
    _insert(Nomination.__table__, noms)
    _insert(Assignment.__table__, assigns)
    _insert(ReviewSheet.__table__, sheets)
    _insert(Score.__table__, scores)
    db.session.commit()
    db.session.execute(text("ANALYZE"))  # fresh statistics, as a production database would have
    db.session.commit()
    return {"nominations": len(noms), "sheets": len(sheets), "scores": len(scores), "reviewers": pool}


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pg", metavar="URL", help="PostgreSQL URL (its tables are dropped and recreated)")
    ap.add_argument("--nominations", type=int, default=7000)
    ap.add_argument("--per-nomination", type=int, default=7)
    ap.add_argument("--pool", type=int, default=70, help="reviewers in the pool")
    ap.add_argument("--category", default="activity", choices=("unit", "activity"))
    ap.add_argument("--repeat", type=int, default=9, help="timed ranking requests / queries")
    ap.add_argument("--polls", type=int, default=400, help="timed 304 polls and trivial requests")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="kepu-bench-"))
    url = args.pg or "sqlite:///" + str(tmp / "bench.sqlite3")
    app = create_app({"TESTING": False, "SECRET_KEY": "bench", "SQLALCHEMY_DATABASE_URI": url,
                      "UPLOAD_FOLDER": str(tmp / "uploads"), "RATELIMIT_ENABLED": False,
                      "WTF_CSRF_ENABLED": False})

    @app.route("/bench/trivial")
    @staff_required
    def bench_trivial():
        return "ok"

    category = args.category
    with app.app_context():
        if args.pg:
            db.drop_all()
        db.create_all()
        t0 = time.perf_counter()
        counts = seed(args.nominations, args.per_nomination, args.pool, category)
        seed_s = time.perf_counter() - t0
        engine = db.engine.dialect.name
        print(f"seeded {counts} on {engine} in {seed_s:.1f} s")

        infos = ranking.criteria_of(1, category)
        crit = ranking._criteria(infos)
        sql = text(ranking_sql.ranking_sql(crit, False, "trimmed", engine))
        params = {"round_id": 1, "category": category, "flag_points": ranking.FLAG_SHARE * ranking.max_total(infos),
                  **crit.params()}

        db.session.remove()

    def bare():
        with app.app_context():
            db.session.execute(sql, params).all()
            db.session.remove()

    client = app.test_client()
    resp = client.post("/login", data={"username": "chair", "password": PASSWORD})
    assert resp.status_code in (302, 303), resp.status_code
    hx = {"HX-Request": "true"}
    page_url = f"/rankings/{category}"
    first = client.get(page_url, headers=hx)
    assert first.status_code == 200, first.status_code
    tag = first.headers["ETag"]

    def partial():
        r = client.get(page_url, headers=hx)
        assert r.status_code == 200

    bare()
    partial_times, bare_times = [], []
    for _ in range(args.repeat):  # interleaved, so background load hits both alike
        bare_times += timed(bare, 1)
        partial_times += timed(partial, 1)

    def poll():
        r = client.get(page_url, headers={**hx, "If-None-Match": tag})
        assert r.status_code == 304

    def trivial():
        r = client.get("/bench/trivial")
        assert r.status_code == 200

    for _ in range(20):  # warm both paths
        poll()
        trivial()
    poll_times, trivial_times = [], []
    for _ in range(args.polls):  # interleaved, so background noise hits both alike
        poll_times += timed(poll, 1)
        trivial_times += timed(trivial, 1)

    partial_ms = statistics.median(partial_times)
    bare_ms = statistics.median(bare_times)
    poll_ms = statistics.median(poll_times)
    trivial_ms = statistics.median(trivial_times)
    result = {
        "engine": engine,
        "nominations": counts["nominations"],
        "sheets": counts["sheets"],
        "scores": counts["scores"],
        "partial_ms": round(partial_ms, 2),
        "bare_sql_ms": round(bare_ms, 2),
        "ratio_partial": round(partial_ms / bare_ms, 3),
        "poll304_ms": round(poll_ms, 3),
        "trivial_ms": round(trivial_ms, 3),
        "ratio_304": round(poll_ms / trivial_ms, 3),
        "target_partial": 2.0,
        "target_304": 1.2,
        "partial_ok": partial_ms / bare_ms <= 2.0,
        "poll_ok": poll_ms / trivial_ms <= 1.2,
        "repeat": args.repeat,
        "polls": args.polls,
    }
    print(f"ranking partial  {partial_ms:8.2f} ms   bare SQL {bare_ms:8.2f} ms   ratio {result['ratio_partial']}")
    print(f"304 poll         {poll_ms:8.3f} ms   trivial  {trivial_ms:8.3f} ms   ratio {result['ratio_304']}")
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
