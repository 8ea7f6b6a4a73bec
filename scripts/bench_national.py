#!/usr/bin/env python3
"""issue 15 benchmark: the ranking at national scale costs one computation per version, documents render
in parallel and once.

Seeds (scripts/bench_rankings.seed) one round of --nominations activities (default 7,000) × 7 reviewers
(196,000 scores, every sheet submitted, sheet totals written with them), then measures:

  partial_p50_ms      GET /rankings/activity (htmx partial, the chair's poll) right after a reviewer submitted a
                      sheet (scoring.save_sheet: a new version with new data): the fold of that change into
                      the kept ranking (app/ranking/upkeep.py) + the page's rows and criterion means +
                      render. SQLite file. (Median of --repeat.)
  partial_p50_ms_pg   the same on PostgreSQL (--pg URL; the database is WIPED).
  computations_per_version
                      5 chairs (threads, each with its own session) poll every RANKING_POLL_SECONDS for
                      --poll-seconds (60) with their ETag while a reviewer submits a sheet every 0.5 s;
                      = folds recorded in the database / versions that some chair was answered with.
  batch1000_s         a final round with --forms (1,000) approved 推荐表: the forms batch job through the
                      queue (SqliteHuey) with 2 consumers (`flask jobs worker` processes, up and warm as the
                      services they are; their start-up is printed apart), split into parts and merged:
                      submit → done.
  cached_download_ms  p50 of the same document's next download (POST /reports/jobs answered from storage +
                      GET the file), --downloads times.
  deliberation_page_ms / _kb
                      the chair's 会议审定 page of the category after review (SQLite; its table is paged).

The LAST printed line is one JSON object. Results: docs/benchmarks.md section 7.

  .venv/bin/python scripts/bench_national.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/kepu_bench_national
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess  # nosec B404 — starts this repo's own `flask jobs worker`
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from sqlalchemy import insert, text  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402

HX = {"HX-Request": "true"}


def _app(url: str, tmp: Path, **extra):
    return create_app({"TESTING": False, "SECRET_KEY": "bench", "SQLALCHEMY_DATABASE_URI": url,
                       "UPLOAD_FOLDER": str(tmp / "uploads"), "RATELIMIT_ENABLED": False,
                       "WTF_CSRF_ENABLED": False, **extra})


def _chair(app):
    from bench_rankings import PASSWORD

    client = app.test_client()
    resp = client.post("/login", data={"username": "chair", "password": PASSWORD})
    assert resp.status_code in (302, 303), resp.status_code
    return client


def _open_pairs(app, n: int) -> list[tuple[int, int]]:
    """Remove n sheets (spread over the category) so that many reviewer × nomination pairs are still to be
    scored: each measured change is then a real submit through the scoring operation."""
    with app.app_context():
        pairs = db.session.execute(text(
            "SELECT id, reviewer_id, nomination_id FROM review_sheets WHERE id % 97 = 0 ORDER BY id LIMIT :n"),
            {"n": n}).all()
        ids = ", ".join(str(p.id) for p in pairs)
        db.session.execute(text(f"DELETE FROM scores WHERE sheet_id IN ({ids})"))
        db.session.execute(text(f"DELETE FROM review_sheets WHERE id IN ({ids})"))
        db.session.execute(text("UPDATE ranking_counters SET version = version + 1"))
        if db.engine.dialect.name == "postgresql":  # the seed wrote explicit ids: move the sequences past them
            from load_national import SEEDED_TABLES

            for table in SEEDED_TABLES:
                db.session.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # nosec B608
                                        f"(SELECT coalesce(max(id), 1) FROM {table}))"))
        db.session.commit()
        db.session.remove()
    return [(p.reviewer_id, p.nomination_id) for p in pairs]


def _submit(app, pair: tuple[int, int], value: float) -> None:
    """One reviewer submits one sheet (the real operation: totals, audit, counter, change log)."""
    from app.models import User
    from app.review import scoring

    reviewer_id, nomination_id = pair
    with app.app_context():
        criteria = scoring.target(nomination_id).rubric
        values = {c.id: str(min(c.max_score, round(c.max_score * value * 2) / 2)) for c in criteria}
        scoring.save_sheet(db.session.get(User, reviewer_id), nomination_id, values, "", 0, submit=True)
        db.session.remove()


def seeded(url: str, tmp: Path, n: int, pg: bool, **extra):
    from bench_rankings import seed

    app = _app(url, tmp, **extra)
    with app.app_context():
        if pg:
            db.drop_all()
        db.create_all()
        t0 = time.perf_counter()
        counts = seed(n, 7, 70, "activity")
        print(f"seeded {counts} on {db.engine.dialect.name} in {time.perf_counter() - t0:.1f} s", flush=True)
        db.session.remove()
    return app, counts


def partial_after_change(app, repeat: int, pairs: list) -> float:
    """The chair's poll right after a reviewer submitted a sheet (a new version with new data)."""
    client = _chair(app)
    assert client.get("/rankings/activity", headers=HX).status_code == 200  # warm: the first fold is whole
    times = []
    for i in range(repeat):
        _submit(app, pairs.pop(), 0.6 + 0.03 * i)
        t0 = time.perf_counter()
        r = client.get("/rankings/activity", headers=HX)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, r.status_code
    return statistics.median(times)


def deliberation_page(app, repeat: int = 5) -> tuple[float, float]:
    """The chair's 会议审定 page of the same category once review is over (its first page: the table is
    paged at this size): p50 ms and its size in KB."""
    with app.app_context():
        db.session.execute(text("UPDATE rounds SET phase = 'deliberating'"))
        db.session.execute(text("UPDATE ranking_counters SET version = version + 1"))
        db.session.commit()
        db.session.remove()
    client = _chair(app)
    times, size = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = client.get("/chair/activity")
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, r.status_code
        size = len(r.data)
    return round(statistics.median(times), 2), round(size / 1024, 1)


def computations_per_version(app, seconds: float, pairs: list, chairs: int = 5) -> dict:
    """5 chairs poll with their ETags while a reviewer submits a sheet every 0.5 s; computations are the
    folds recorded in the database (every process's), versions those some chair was answered with."""
    from app.ranking import upkeep

    poll = float(app.config["RANKING_POLL_SECONDS"])
    with app.app_context():
        before = upkeep.computations()
        db.session.remove()
    stop = threading.Event()
    fresh_versions: set[str] = set()
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def chair(i: int) -> None:
        client = _chair(app)
        tag = None
        time.sleep(poll * i / chairs)  # chairs' pages were opened at different moments
        while not stop.is_set():
            headers = {**HX, **({"If-None-Match": tag} if tag else {})}
            r = client.get("/rankings/activity", headers=headers)
            with lock:
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code == 200:
                    tag = r.headers["ETag"]
                    fresh_versions.add(tag.split("-")[2])
            stop.wait(poll)

    def writer() -> None:
        i = 0
        while not stop.is_set() and pairs:
            _submit(app, pairs.pop(), 0.5 + (i % 40) / 100)
            i += 1
            stop.wait(0.5)

    threads = [threading.Thread(target=chair, args=(i,)) for i in range(chairs)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(120)
    with app.app_context():
        computed = upkeep.computations() - before
        db.session.remove()
    return {"computations": computed, "versions": len(fresh_versions), "statuses": statuses,
            "computations_per_version": round(computed / max(1, len(fresh_versions)), 3)}


def seed_final_round(n_forms: int) -> None:
    """A final round with n_forms approved activities (Core inserts), as scripts/bench_pdf.py builds them."""
    from app.models import Decision, Nomination, Nominator, Round

    rnd = Round(id=1, year=2024, name="2024年全国科普日评选（基准测试）", phase="final", deadline=date(2024, 10, 8),
                slots_unit=400, slots_activity=n_forms, method="trimmed", approval_date=date(2024, 11, 20))
    db.session.add(rnd)
    db.session.flush()
    kinds = ["city"] * 14 + ["member"] * 20 + ["society"] * 26
    db.session.execute(insert(Nominator.__table__), [
        {"id": i + 1, "name": f"推荐单位{i + 1:03d}", "short_name": "", "kind": k, "position": i + 1}
        for i, k in enumerate(kinds)])
    summary = ("本单位围绕“提升全民科学素质，协力建设科技强国”主题，组织科技工作者走进社区、学校和乡村，"
               "开展科普报告、科学实验秀、科普展览等活动，群众参与踊跃，社会反响良好。") * 4
    db.session.execute(insert(Nomination.__table__), [
        {"id": n, "round_id": 1, "nominator_id": n % len(kinds) + 1, "category": "activity",
         "title": f"第{n}号全国科普日活动", "host": "某某科协", "contact_name": "张三", "contact_title": "主任",
         "contact_phone": "13800000000", "address": "长沙市岳麓区", "event_count": 3, "people_served": 1200,
         "summary": summary, "recommendation": "同意推荐。", "status": "active", "source_key": f"bench:{n}"}
        for n in range(1, n_forms + 1)])
    db.session.execute(insert(Decision.__table__), [
        {"nomination_id": n, "outcome": "approve", "opinion": "同意授予优秀活动。", "override_reason": "",
         "version": 1} for n in range(1, n_forms + 1)])
    db.session.commit()


def batch_and_downloads(tmp: Path, n_forms: int, consumers: int, downloads: int, per_part: int) -> dict:
    from app.reports import jobs

    url = "sqlite:///" + str(tmp / "final.sqlite3")
    extra = {"JOBS_IMMEDIATE": False, "JOBS_FOLDER": str(tmp / "jobs"), "REPORTS_FOLDER": str(tmp / "reports"),
             "JOBS_FORMS_PER_PART": per_part}
    app = _app(url, tmp, **extra)
    with app.app_context():
        db.create_all()
        seed_final_round(n_forms)
        from bench_rankings import PASSWORD
        from werkzeug.security import generate_password_hash

        from app.models import User

        db.session.add(User(username="chair", display_name="主任", role="chair",
                            password_hash=generate_password_hash(PASSWORD)))
        db.session.commit()
        db.session.remove()
    env = {**os.environ, "KEPU_DATABASE_URL": url, "KEPU_JOBS_FOLDER": extra["JOBS_FOLDER"],
           "KEPU_REPORTS_FOLDER": extra["REPORTS_FOLDER"], "KEPU_UPLOAD_FOLDER": str(tmp / "uploads"),
           "KEPU_JOBS_FORMS_PER_PART": str(per_part), "KEPU_SECRET_KEY": "bench", "FLASK_APP": "wsgi.py"}
    logs = [tmp / f"consumer{i}.log" for i in range(consumers)]
    t_start = time.perf_counter()
    outs = [open(log, "w") for log in logs]  # noqa: SIM115 — closed with the consumers below
    procs = [subprocess.Popen([sys.executable, "-m", "flask", "jobs", "worker"], cwd=ROOT, env=env,  # nosec B603
                              stdout=subprocess.DEVNULL, stderr=out) for out in outs]
    try:
        client = _chair(app)
        # The consumers are long-running services: the batch is timed from its request to a queue whose
        # consumers are up (their start-up — imports, fonts — is printed apart, not counted).
        ready = _consumers_ready(procs, logs, timeout=600)
        print(f"{consumers} consumers ready in {ready - t_start:.1f} s", flush=True)
        cpu0 = [_cpu_seconds(p.pid) for p in procs]
        t0 = time.perf_counter()
        resp = client.post("/reports/jobs", data={"kind": "forms", "format": "pdf", "category": "activity"})
        assert resp.status_code == 303, resp.status_code
        job_id = resp.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
        with app.app_context():
            done = jobs.wait(job_id, timeout=3600)
        batch_s = time.perf_counter() - t0
        assert done.status == "done", done.error
        busy = [sum(float(m) for m in re.findall(r"executed in ([0-9.]+)s", log.read_text())) for log in logs]
        cpu = [_cpu_seconds(p.pid) - c for p, c in zip(procs, cpu0, strict=True)]
        # CPU seconds do not depend on what else the machine runs: the figure to compare between runs.
        print(f"batch of {n_forms} forms: {batch_s:.1f} s in {done.parts} parts (generation {done.generation}), "
              f"{done.size / 1e6:.1f} MB; consumers busy {', '.join(f'{b:.1f}' for b in busy)} s, "
              f"CPU {', '.join(f'{c:.1f}' for c in cpu)} s ({sum(cpu) / n_forms * 1000:.0f} ms per form)", flush=True)
        times = []
        for _ in range(downloads):
            t1 = time.perf_counter()
            resp = client.post("/reports/jobs", data={"kind": "forms", "format": "pdf", "category": "activity"})
            again = resp.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
            got = client.get(f"/reports/jobs/{again}/download")
            times.append((time.perf_counter() - t1) * 1000)
            assert got.status_code == 200 and got.data[:5] == b"%PDF-"
        import io

        from pypdf import PdfReader

        pages = len(PdfReader(io.BytesIO(got.data)).pages)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        for out in outs:
            out.close()
    return {"batch_s": round(batch_s, 2), "parts": done.parts, "pages": pages,
            "cached_download_ms": round(statistics.median(times), 2)}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _consumers_ready(procs, logs: list[Path], timeout: float) -> float:
    """When every consumer has logged that it takes tasks (after its on_worker_start hooks)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc, log in zip(procs, logs, strict=True):
            if proc.poll() is not None:
                raise RuntimeError(f"a consumer exited: {log.read_text()[-2000:]}")
        if all("Huey consumer started" in log.read_text() for log in logs):
            return time.perf_counter()
        time.sleep(0.1)
    raise RuntimeError("the consumers did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pg", metavar="URL", help="PostgreSQL URL (its tables are dropped and recreated)")
    ap.add_argument("--nominations", type=int, default=7000)
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--poll-seconds", type=float, default=60.0)
    ap.add_argument("--forms", type=int, default=1000)
    ap.add_argument("--consumers", type=int, default=2)
    ap.add_argument("--per-part", type=int, default=50)
    ap.add_argument("--downloads", type=int, default=15)
    ap.add_argument("--skip", default="", help="comma list of parts to skip: ranking (SQLite, polls and PG), "
                                               "pg, polls, batch")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    tmp = Path(tempfile.mkdtemp(prefix="kepu-national-"))
    result: dict = {}
    try:
        if "ranking" not in skip:
            ranking_part(args, skip, tmp, result)
        if "batch" not in skip:
            out = batch_and_downloads(tmp, args.forms, args.consumers, args.downloads, args.per_part)
            result.update(batch1000_s=out["batch_s"], batch_forms=args.forms, batch_parts=out["parts"],
                          batch_pages=out["pages"], cached_download_ms=out["cached_download_ms"])
        result["targets"] = {"partial_p50_ms": 60, "computations_per_version": 1.05, "batch1000_s": 40,
                             "cached_download_ms": 50}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, ensure_ascii=False))


def ranking_part(args, skip: set, tmp: Path, result: dict) -> None:
    app, counts = seeded("sqlite:///" + str(tmp / "bench.sqlite3"), tmp, args.nominations, False)
    pairs = _open_pairs(app, args.repeat + int(args.poll_seconds * 2) + 10)
    result.update(nominations=counts["nominations"], sheets=counts["sheets"], scores=counts["scores"])
    result["partial_p50_ms"] = round(partial_after_change(app, args.repeat, pairs), 2)
    print(f"partial after a submit (SQLite): {result['partial_p50_ms']} ms", flush=True)
    if "polls" not in skip:
        polls = computations_per_version(app, args.poll_seconds, pairs)
        print(f"5 chairs polling {args.poll_seconds:.0f} s: {polls}", flush=True)
        result["computations_per_version"] = polls["computations_per_version"]
        result["poll_detail"] = polls
    result["deliberation_page_ms"], result["deliberation_page_kb"] = deliberation_page(app)
    print(f"deliberation page (会议审定, SQLite): {result['deliberation_page_ms']} ms, "
          f"{result['deliberation_page_kb']} KB", flush=True)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    if args.pg and "pg" not in skip:
        pg_app, _ = seeded(args.pg, tmp, args.nominations, True)
        with pg_app.app_context():
            db.session.execute(text("ANALYZE"))
            db.session.commit()
        pg_pairs = _open_pairs(pg_app, args.repeat + 5)
        result["partial_p50_ms_pg"] = round(partial_after_change(pg_app, args.repeat, pg_pairs), 2)
        print(f"partial after a submit (PostgreSQL): {result['partial_p50_ms_pg']} ms", flush=True)
        with pg_app.app_context():
            db.session.remove()
            db.engine.dispose()


if __name__ == "__main__":
    main()
