#!/usr/bin/env python3
"""Benchmark the 推荐单位 portal: N nominating units submitting at once against gunicorn on SQLite.

Seeds its own database under /tmp (a round in 材料收集 whose deadline is ahead, N 市州科协 with one
nominator account each), serves the app with gunicorn (gthread) on a free port, signs every unit in,
then from N threads started together each unit: saves a draft (POST /portal/new/activity), uploads 4
photos one by one (the plain multipart POST the page sends), and submits (POST with op=submit).

At the end the database is compared with what the units were told: every acknowledged submit must be
a 已提交 nomination of that unit with every acknowledged photo (`missing` counts the ones that are not).

Usage:
  .venv/bin/python scripts/bench_portal.py [--nominators 45] [--workers 2] [--threads 8]
      [--startup-timeout 60] [--keep]

The last line printed is one JSON object: nominators, submit_p95_ms, upload_p95_ms, save_p95_ms,
errors (target 0) and missing (target 0).
"""

from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts._benchlib import add_server_arguments, start_server, stop_server  # noqa: E402

PASSWORD = "bench-password-2024"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
VERSION = re.compile(r'name="version" value="([^"]+)"')
DRAFT = re.compile(r"/portal/nominations/(\d+)")
PHOTOS = 4

FORM = {"host": "基准市科协", "contact_name": "张三", "contact_title": "部长", "contact_phone": "13812345678",
        "address": "基准市人民路1号", "event_count": "12", "people_served": "3000", "summary": "活动情况简介。" * 40,
        "recommendation": "同意推荐。", "recommendation_date": "2024-09-30"}


def _config(db_url: str, folder: Path) -> dict:
    return {
        "SECRET_KEY": "bench-secret-key-not-for-production",
        "SQLALCHEMY_DATABASE_URI": db_url,
        "UPLOAD_FOLDER": str(folder / "uploads"),
        "JOBS_FOLDER": str(folder),
        "RATELIMIT_ENABLED": False,  # N sign-ins from one address in a few seconds
    }


def seed(config: dict, count: int) -> list[dict]:
    from werkzeug.security import generate_password_hash

    from app import create_app
    from app.core.time import beijing
    from app.extensions import db
    from app.models import Nominator, RankingCounter, Round, User
    from app.models.round import default_criteria

    app = create_app(config)
    plan = []
    with app.app_context():
        db.create_all()
        rnd = Round(year=2024, name="基准测试批次", phase="collecting", deadline=beijing().date() + timedelta(days=30))
        db.session.add(rnd)
        db.session.flush()
        for category in ("unit", "activity"):
            db.session.add_all(default_criteria(rnd.id, category))
            db.session.add(RankingCounter(round_id=rnd.id, category=category, version=1))
        admin_hash = generate_password_hash(PASSWORD)  # one scrypt hash for every account: seeding stays quick
        db.session.add(User(username="admin", display_name="管理员", role="admin", password_hash=admin_hash))
        for i in range(count):
            unit = Nominator(name=f"基准市{i + 1:02d}科协", kind="city", position=i + 1)
            db.session.add(unit)
            db.session.flush()
            user = User(username=f"unit{i:03d}", display_name=unit.name, role="nominator", password_hash=admin_hash,
                        affiliation_id=unit.id)
            db.session.add(user)
            db.session.flush()
            plan.append({"username": user.username, "unit_id": unit.id, "title": f"基准活动{i + 1:02d}"})
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return plan


def photo_bytes(seed: int) -> bytes:
    from PIL import Image

    image = Image.new("RGB", (800, 600), ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256))
    for x in range(0, 800, 40):  # a few stripes so the JPEG is not trivially small
        image.paste(((x * 3 + seed) % 256, 120, 200), (x, 0, x + 20, 600))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=85)
    return buf.getvalue()


class Unit:
    def __init__(self, url: str, spec: dict):
        import requests

        self.url, self.spec = url, spec
        self.session = requests.Session()
        self.nomination_id: int | None = None
        self.photos_ok = 0
        self.submitted = False
        self.timings: dict[str, list[float]] = {"save": [], "upload": [], "submit": []}
        self.errors: list[str] = []
        page = self.session.get(f"{url}/login", timeout=30).text
        resp = self.session.post(f"{url}/login", data={"username": spec["username"], "password": PASSWORD,
                                                       "csrf_token": TOKEN.search(page).group(1)},
                                 allow_redirects=False, timeout=30)
        if resp.status_code != 303:
            raise SystemExit(f"sign-in failed for {spec['username']}: {resp.status_code}")
        self.token = TOKEN.search(self.session.get(f"{url}/portal/", timeout=30).text).group(1)
        # Drop the signed-in keep-alive connection: gunicorn closes it after its keep-alive timeout while
        # the other units are still signing in, and requests (unlike a browser) does not retry a POST sent
        # on a connection the server closed a moment before. The cookies stay with the session.
        self.session.close()

    def _timed(self, kind: str, fn):
        started = time.perf_counter()
        try:
            resp = fn()
        except Exception as e:  # noqa: BLE001 — any failure is an error of the run
            self.timings[kind].append(time.perf_counter() - started)
            self.errors.append(f"{kind}: {e}")
            return None
        self.timings[kind].append(time.perf_counter() - started)
        return resp

    def run(self, photos: list[bytes]) -> None:
        data = {**FORM, "title": self.spec["title"], "op": "save", "csrf_token": self.token}
        resp = self._timed("save", lambda: self.session.post(f"{self.url}/portal/new/activity", data=data,
                                                             allow_redirects=False, timeout=120))
        if resp is None or resp.status_code != 303 or not DRAFT.search(resp.headers.get("Location", "")):
            self.errors.append(f"save: {getattr(resp, 'status_code', None)}")
            return
        self.nomination_id = int(DRAFT.search(resp.headers["Location"]).group(1))
        base = f"{self.url}/portal/nominations/{self.nomination_id}"
        for i, body in enumerate(photos):
            resp = self._timed("upload", lambda body=body, i=i: self.session.post(
                f"{base}/photos", data={"csrf_token": self.token}, files={"photos": (f"照片{i + 1}.jpg", body, "image/jpeg")},
                allow_redirects=False, timeout=120))
            if resp is not None and resp.status_code == 303:
                self.photos_ok += 1
            else:
                self.errors.append(f"upload: {getattr(resp, 'status_code', None)}")
        page = self.session.get(base, timeout=60).text
        version = VERSION.search(page)
        if version is None:
            self.errors.append("submit: no version on the page")
            return
        data = {**FORM, "title": self.spec["title"], "op": "submit", "version": version.group(1),
                "csrf_token": self.token}
        resp = self._timed("submit", lambda: self.session.post(base, data=data, allow_redirects=False, timeout=120))
        if resp is not None and resp.status_code == 303:
            self.submitted = True
        else:
            self.errors.append(f"submit: {getattr(resp, 'status_code', None)}")


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return round(ordered[index] * 1000, 2)


def verify(config: dict, units: list[Unit]) -> int:
    """Acknowledged items absent afterwards: a submit answered 303 whose nomination is not 已提交 (of
    that unit), or an acknowledged photo that is not stored."""
    from sqlalchemy import select

    from app import create_app
    from app.extensions import db
    from app.models import Nomination

    app = create_app(config)
    missing = 0
    with app.app_context():
        for u in units:
            if u.nomination_id is None:
                continue
            nom = db.session.scalar(select(Nomination).where(Nomination.id == u.nomination_id))
            if nom is None or nom.nominator_id != u.spec["unit_id"]:
                missing += 1
                continue
            if u.submitted and nom.status != "submitted":
                missing += 1
            missing += max(0, u.photos_ok - len(nom.photos))
        db.session.remove()
        db.engine.dispose()
    return missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nominators", type=int, default=45)
    add_server_arguments(parser)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="kepu-bench-portal-", dir="/tmp"))
    config = _config("sqlite:///" + str(folder / "bench.sqlite3"), folder)
    print(f"seeding {args.nominators} nominating units…", flush=True)
    plan = seed(config, args.nominators)
    photos = [photo_bytes(i) for i in range(PHOTOS)]
    proc, url = start_server(folder, config, args.workers, args.threads, script="scripts/bench_portal.py",
                             startup_timeout=args.startup_timeout, worker_timeout=120)
    try:
        print(f"gunicorn gthread {args.workers}×{args.threads} on {url}; signing in…", flush=True)
        units = [Unit(url, spec) for spec in plan]
        barrier = threading.Barrier(len(units))

        def work(u: Unit):
            barrier.wait()
            u.run(photos)

        started = time.perf_counter()
        threads = [threading.Thread(target=work, args=(u,)) for u in units]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
    finally:
        stop_server(proc)
    errors = sum(len(u.errors) for u in units)
    for u in units:
        for e in u.errors[:3]:
            print(f"  {u.spec['username']}: {e}", flush=True)
    missing = verify(config, units)
    timings = {k: [t for u in units for t in u.timings[k]] for k in ("save", "upload", "submit")}
    for kind, values in timings.items():
        print(f"{kind:6s} n={len(values):4d}  p50={pct(values, 50):8.2f} ms  p95={pct(values, 95):8.2f} ms  "
              f"max={pct(values, 100):8.2f} ms", flush=True)
    print(f"wall {wall:.1f} s; submitted {sum(u.submitted for u in units)}/{len(units)}", flush=True)
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        print(f"kept {folder}", flush=True)
    print(json.dumps({"nominators": len(units), "submit_p95_ms": pct(timings["submit"], 95),
                      "upload_p95_ms": pct(timings["upload"], 95), "save_p95_ms": pct(timings["save"], 95),
                      "errors": errors, "missing": missing}, ensure_ascii=False))


if __name__ == "__main__":
    main()
