#!/usr/bin/env python3
"""形式审查 at national scale, and what it costs the reviewers while an admin edits.

Seeds a round in 专家评审 with 7,000 nominations (half units, half activities; titles built from Hunan's
县市区 the way real ones are, a few dozen of them duplicates), times a full check in-process
(`check_s`), then serves the app with gunicorn (scripts/bench_scoring.py's server and reviewer client)
and drives 20 reviewers' autosaves in alternating phases: reviewers alone, and reviewers while an admin
saves an edit of a nomination every second through the edit page (each edit queues its re-check, which
`flask jobs worker` — started here at nice 10, --nice — runs after the commit). `ratio_edits` is the score-save p95 with edits over the p95 without.

Reviewers pace their saves like the score panel (its autosave waits 800 ms after the last keystroke;
--think-ms, jittered ±50 %); --think-ms 0 saturates the server instead.

At the end the findings table is compared with a fresh check of the data (`findings_consistent`).

Usage:
  .venv/bin/python scripts/bench_form_check.py [--nominations 7000] [--reviewers 20] [--seconds 20]
      [--rounds 2] [--think-ms 800] [--workers 2] [--threads 8]
      [--pg postgresql+psycopg://postgres@127.0.0.1/kepu_bench_form_check]

The last line printed is one JSON object. Targets (issue 11): check_s ≤ 2, ratio_edits ≤ 1.3.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from _benchlib import recreate_pg_database  # noqa: E402
from bench_scoring import PASSWORD, TOKEN, Reviewer, pct, start_server  # noqa: E402

EDIT_VERSION = re.compile(r'name="version"[^>]*value="([0-9a-f]+)"|value="([0-9a-f]+)"[^>]*name="version"')

ORGS = ("科学技术协会", "科技馆", "图书馆", "青少年活动中心", "第一中学", "第二中学", "第三中学", "实验小学", "人民医院",
        "中医医院", "疾病预防控制中心", "气象局", "应急管理局", "地震局", "农业农村局", "林业局", "文化馆", "博物馆",
        "科普教育基地", "融媒体中心", "妇幼保健院", "消防救援大队", "老科技工作者协会", "农学会", "医学会")
TOPICS = ("科普进社区", "科普进校园", "科普进乡村", "科技活动周", "应急科普宣传", "防灾减灾科普", "健康科普讲座",
          "青少年科技创新大赛", "科学实验秀", "航天科普展", "气象科普开放日", "食品安全科普", "心理健康科普",
          "人工智能科普体验", "生态环保科普", "反邪教科普宣传", "农业技术培训", "中医药文化科普", "地质科普研学",
          "科普大篷车巡展", "院士专家报告会", "科学家精神宣讲", "数字素养提升", "防溺水安全教育", "禁毒科普宣传")
TOWNS = ("城关镇", "高新区", "经开区", "东城街道", "西城街道", "南湖街道", "北山镇", "新华街道", "桥头镇", "工业园")
# Proper names of schools, parks, streets: two characters from these, as in 梅溪湖小学 or 桂花社区.
NAME_CHARS = "梅溪桂花金星银杉麓谷枫林湘江橘洲白沙洪山芙蓉石燕青竹松柏朝阳红旗东风太平德润明德长郡雅礼博才" \
             "望岳碧泉凤凰龙泉莲花荷叶杨柳桃源梨园樟树槐荫玉兰丹桂茶园稻香清水月湖云顶翠屏锦绣紫薇"
KINDS = ("", "专题讲座", "巡展", "公益行", "开放日", "体验营", "知识竞赛", "研学营")


def _config(db_url: str, folder: Path) -> dict:
    return {
        "SECRET_KEY": "bench-secret-key-not-for-production",
        "SQLALCHEMY_DATABASE_URI": db_url,
        "UPLOAD_FOLDER": str(folder / "uploads"),
        "RATELIMIT_ENABLED": False,
        "JOBS_URL": "sqlite:///" + str(folder / "jobs.sqlite3"),
        "JOBS_IMMEDIATE": False,
    }


def start_consumer(folder: Path, niceness: int) -> subprocess.Popen:
    """`flask jobs worker` on the app the server runs (bench_wsgi.py, written by start_server), at a
    lower CPU priority than gunicorn (--nice), so on a shared machine the check yields the CPU to the
    web workers."""
    flask = str(Path(sys.executable).with_name("flask"))
    return subprocess.Popen(
        ["nice", "-n", str(niceness), flask, "--app", "bench_wsgi:app", "jobs", "worker"], cwd=str(folder),
        stdout=subprocess.DEVNULL, stderr=open(folder / "consumer.log", "wb"), start_new_session=True)


def _titles(rng: random.Random, n: int, category: str, counties: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(title, city) pairs, unique, the way nominations are named; about 1 % sent twice by another office."""
    out, seen = [], set()
    while len(out) < n:
        city, county = rng.choice(counties)
        name = "".join(rng.sample(NAME_CHARS, 2))
        town = rng.choice(TOWNS) if rng.random() < 0.3 else ""
        if category == "unit":
            title = f"{city}{county}{town}{name}{rng.choice(ORGS)}"
        else:
            title = f"{county}{town}{name}{rng.choice(TOPICS)}{rng.choice(KINDS)}"
            if rng.random() < 0.03:
                title = f"“{rng.choice(TOPICS)}”进{rng.choice(('社区', '校园', '乡村', '企业', '机关'))}·{county}站"
        if title in seen:
            continue
        seen.add(title)
        out.append((title, city))
    for _ in range(n // 100):
        i, j = rng.randrange(n), rng.randrange(n)
        out[j] = (out[i][0] + rng.choice(("", "活动", "（第二批）")), out[j][1])
    return out


def seed(config: dict, total: int, reviewers: int) -> dict:
    from sqlalchemy import insert, select

    from app import create_app
    from app.accounts import operations as users_service
    from app.extensions import db
    from app.intake import places
    from app.models import Assignment, Attachment, Criterion, Nomination, Nominator, RankingCounter, Round
    from app.models.round import default_criteria

    rng = random.Random(20240916)
    app = create_app(config)
    with app.app_context():
        db.create_all()
        rnd = Round(year=2024, name="全国规模形式审查基准", phase="reviewing", deadline=date(2024, 10, 8))
        db.session.add(rnd)
        db.session.flush()
        for category in ("unit", "activity"):
            db.session.add_all(default_criteria(rnd.id, category))
            db.session.add(RankingCounter(round_id=rnd.id, category=category, version=1))
        city_nominator = {}
        for pos, city in enumerate(places.CITIES, start=1):
            n = Nominator(name=f"{places.city_short(city)}{'州' if city.endswith('州') else '市'}科协",
                          short_name=places.city_short(city), kind="city", position=pos)
            db.session.add(n)
            city_nominator[city] = n
        db.session.flush()
        counties = [(city, county) for city, cs in places.CITIES.items() for county in cs]
        received = datetime(2024, 9, 20, 2, tzinfo=UTC)
        rows = []
        for category in ("unit", "activity"):
            for title, city in _titles(rng, total // 2 if category == "unit" else total - total // 2, category,
                                       counties):
                events = rng.randint(1, 60)
                rows.append(dict(
                    round_id=rnd.id, nominator_id=city_nominator[city].id, category=category, title=title[:100],
                    host=f"{city}科学技术协会" if category == "activity" else None, contact_name="张三",
                    contact_title="科长", contact_phone="0731-88886666", address=f"{city}人民路1号",
                    event_count=events, people_served=events * rng.randint(50, 800), summary="活动简介。" * 40,
                    recommendation="同意推荐。", recommendation_date=date(2024, 9, 30), status="active",
                    received_at=received + timedelta(minutes=len(rows))))
        db.session.execute(insert(Nomination), rows)
        db.session.flush()
        ids = list(db.session.scalars(select(Nomination.id).where(Nomination.round_id == rnd.id)
                                      .order_by(Nomination.id)))
        media = []
        for nid in ids:
            if rng.random() < 0.9:
                media += [dict(nomination_id=nid, kind="photo", stored_name=f"p{nid}-{k}.jpg", mime="image/jpeg",
                               position=k) for k in range(3)]
                media.append(dict(nomination_id=nid, kind="video", stored_name=f"v{nid}.mp4", mime="video/mp4",
                                  position=9))
        db.session.execute(insert(Attachment), media)
        criteria: dict[str, list[int]] = {"unit": [], "activity": []}
        for c in db.session.scalars(select(Criterion).order_by(Criterion.position)):
            criteria[c.category].append(c.id)
        db.session.commit()
        categories = dict(db.session.execute(select(Nomination.id, Nomination.category)).all())
        plan = []
        for i in range(reviewers):
            user = users_service.create_user(f"bench{i:03d}", f"基准专家{i + 1}", "reviewer", PASSWORD)
            nid = ids[i * (len(ids) // reviewers)]
            db.session.add(Assignment(reviewer_id=user.id, nomination_id=nid))
            plan.append({"username": user.username, "user_id": user.id, "nomination": nid,
                         "criteria": criteria[categories[nid]]})
        users_service.create_user("benchadmin", "基准管理员", "admin", PASSWORD)
        db.session.commit()
        edited = db.session.get(Nomination, ids[-1])
        twin = db.session.get(Nomination, ids[-2])
        target = {"id": edited.id, "nominator_id": edited.nominator_id, "title": edited.title, "twin": twin.title,
                  "host": edited.host or "", "category": edited.category}
        rid = rnd.id
        db.session.remove()
        db.engine.dispose()
    return {"plan": plan, "round_id": rid, "target": target}


def time_checks(config: dict, round_id: int) -> dict:
    """A first check of the seeded round (every finding new), then the steady state (nothing changed)."""
    from app import create_app
    from app.extensions import db
    from app.intake import form_check

    app = create_app(config)
    with app.app_context():
        started = time.perf_counter()
        first = form_check.run(round_id)
        first_s = time.perf_counter() - started
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            form_check.run(round_id)
            runs.append(time.perf_counter() - started)
        rnd = form_check.rounds.get(round_id)
        started = time.perf_counter()
        found = form_check.compute(rnd)
        compute_s = time.perf_counter() - started
        duplicates = sum(1 for _nid, rule in found if rule == "duplicate")
        db.session.remove()
        db.engine.dispose()
    return {"first_check_s": round(first_s, 3), "check_s": round(sorted(runs)[1], 3),
            "compute_s": round(compute_s, 3), "findings": first["open_blocking"] + first["open_warnings"],
            "duplicate_findings": duplicates}


def findings_consistent(config: dict, round_id: int) -> bool:
    """The findings table says what a fresh check of the data says (after every edit was re-checked)."""
    from sqlalchemy import select

    from app import create_app
    from app.extensions import db
    from app.intake import form_check
    from app.models import FormFinding

    app = create_app(config)
    with app.app_context():
        found = form_check.compute(form_check.rounds.get(round_id))
        stored = {(f.nomination_id, f.rule): f for f in db.session.scalars(
            select(FormFinding).where(FormFinding.round_id == round_id))}
        ok = all(key in stored and stored[key].status in ("open", "waived") and stored[key].message == msg
                 for key, msg in found.items())
        ok = ok and all(key in found for key, f in stored.items() if f.status == "open")
        db.session.remove()
        db.engine.dispose()
    return ok


class Admin:
    """The admin's edit page: GET for the version and token, POST the whole form with one change."""

    def __init__(self, url: str, target: dict):
        import requests

        self.url, self.target = url, target
        self.session = requests.Session()
        page = self.session.get(f"{url}/login", timeout=30).text
        resp = self.session.post(f"{url}/login", data={"username": "benchadmin", "password": PASSWORD,
                                                       "csrf_token": TOKEN.search(page).group(1)},
                                 allow_redirects=False, timeout=30)
        if resp.status_code != 303:
            raise SystemExit(f"admin sign-in failed: {resp.status_code}")
        self.edits = 0

    def edit(self) -> tuple[float, bool]:
        """One edit; every other one gives the nomination its neighbour's title (a duplicate finding
        appears) and the next takes it back (it resolves)."""
        self.edits += 1
        t = self.target
        started = time.perf_counter()
        try:
            page = self.session.get(f"{self.url}/intake/{t['id']}/edit", timeout=60).text
            m = EDIT_VERSION.search(page)
            data = {"csrf_token": TOKEN.search(page).group(1), "version": m.group(1) or m.group(2),
                    "nominator_id": str(t["nominator_id"]),
                    "title": t["twin"] if self.edits % 2 else t["title"], "contact_name": "张三",
                    "contact_title": "科长", "contact_phone": "0731-88886666", "address": "长沙市人民路1号",
                    "event_count": "12", "people_served": str(1000 + self.edits), "summary": "活动简介。" * 40,
                    "recommendation": "同意推荐。", "recommendation_date": "2024-09-30", "received_date": "2024-09-20"}
            if t["category"] == "activity":
                data["host"] = t["host"]
            resp = self.session.post(f"{self.url}/intake/{t['id']}/edit", data=data, allow_redirects=False,
                                     timeout=120)
        except Exception:  # noqa: BLE001 - any failure is an error of the run
            return time.perf_counter() - started, False
        return time.perf_counter() - started, resp.status_code == 303


def run_phase(reviewers: list[Reviewer], seconds: float, think_s: float, admin: Admin | None) -> dict:
    latencies: list[float] = []
    edit_latencies: list[float] = []
    errors = [0, 0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def review(r: Reviewer):
        rng = random.Random(r.spec["user_id"] * 7919 + int(time.time()))
        if think_s:
            time.sleep(rng.uniform(0, think_s))
        mine, bad = [], 0
        while time.perf_counter() < deadline:
            elapsed, ok = r.save()
            mine.append(elapsed)
            bad += 0 if ok else 1
            if think_s:
                time.sleep(think_s * rng.uniform(0.5, 1.5))
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    def edit():
        tick = time.perf_counter()
        while tick < deadline:
            elapsed, ok = admin.edit()
            edit_latencies.append(elapsed)
            errors[1] += 0 if ok else 1
            tick += 1.0
            time.sleep(max(0.0, tick - time.perf_counter()))

    threads = [threading.Thread(target=review, args=(r,)) for r in reviewers]
    if admin is not None:
        threads.append(threading.Thread(target=edit))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"saves": latencies, "edits": edit_latencies, "save_errors": errors[0], "edit_errors": errors[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nominations", type=int, default=7000)
    parser.add_argument("--reviewers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20, help="length of each phase")
    parser.add_argument("--rounds", type=int, default=2, help="alternating idle / edits phase pairs")
    parser.add_argument("--think-ms", type=float, default=800.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--nice", type=int, default=10, help="niceness of the job consumer")
    parser.add_argument("--pg", metavar="URL", help="PostgreSQL server or database URL; the database "
                        "kepu_bench_form_check (or the one named, if it starts with kepu_) is recreated")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="kepu-bench-form-check-", dir="/tmp"))
    if args.pg:
        from sqlalchemy.engine import make_url

        name = make_url(args.pg).database or ""
        db_url = recreate_pg_database(args.pg, name if name.startswith("kepu_") else "kepu_bench_form_check")
    else:
        db_url = "sqlite:///" + str(folder / "bench.sqlite3")
    config = _config(db_url, folder)
    print(f"database: {'postgresql' if args.pg else 'sqlite'}; seeding {args.nominations} nominations…", flush=True)
    seeded = seed(config, args.nominations, args.reviewers)
    checks = time_checks(config, seeded["round_id"])
    print(f"full check: {checks['check_s']} s (first run {checks['first_check_s']} s, compute only "
          f"{checks['compute_s']} s; {checks['findings']} findings, {checks['duplicate_findings']} duplicates)",
          flush=True)
    proc, url = start_server(folder, config, args.workers, args.threads)
    consumer = start_consumer(folder, args.nice)
    think = args.think_ms / 1000
    idle, busy, edits = [], [], []
    save_errors = edit_errors = 0
    try:
        print(f"gunicorn gthread {args.workers}×{args.threads} on {url}; signing in…", flush=True)
        reviewers = [Reviewer(url, spec) for spec in seeded["plan"]]
        admin = Admin(url, seeded["target"])
        run_phase(reviewers, 3, think, admin)  # warm-up: every worker has imported and connected
        for _ in range(args.rounds):
            for with_edits in (False, True):
                out = run_phase(reviewers, args.seconds, think, admin if with_edits else None)
                (busy if with_edits else idle).extend(out["saves"])
                edits.extend(out["edits"])
                save_errors += out["save_errors"]
                edit_errors += out["edit_errors"]
        time.sleep(5)  # the last edit's queued check
    finally:
        for p in (proc, consumer):
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
    consistent = findings_consistent(config, seeded["round_id"])
    result = {"db": "postgresql" if args.pg else "sqlite", "nominations": args.nominations,
              "reviewers": args.reviewers, "think_ms": args.think_ms, "workers": args.workers,
              "threads": args.threads, "consumer_nice": args.nice, **checks,
              "save_p50_idle_ms": round(pct(idle, 50), 2), "save_p95_idle_ms": round(pct(idle, 95), 2),
              "save_p50_during_edits_ms": round(pct(busy, 50), 2),
              "save_p95_during_edits_ms": round(pct(busy, 95), 2),
              "saves_idle": len(idle), "saves_during_edits": len(busy),
              "edits": len(edits), "edit_p50_ms": round(pct(edits, 50), 2), "edit_p95_ms": round(pct(edits, 95), 2),
              "save_errors": save_errors, "edit_errors": edit_errors, "findings_consistent": consistent}
    result["ratio_edits"] = round(result["save_p95_during_edits_ms"] / result["save_p95_idle_ms"], 3)
    print(f"save p95: {result['save_p95_idle_ms']} ms alone, {result['save_p95_during_edits_ms']} ms while the admin "
          f"edits (ratio {result['ratio_edits']}, target ≤ 1.3); check {result['check_s']} s (target ≤ 2); "
          f"edit p95 {result['edit_p95_ms']} ms; errors {save_errors} + {edit_errors}; findings consistent: {consistent}")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        print(f"kept {folder}")
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
