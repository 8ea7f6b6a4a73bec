#!/usr/bin/env python3
"""Load test: reviewers autosave score sheets with think time while chairs poll the live ranking,
against gunicorn (gthread) on a fresh SQLite file or PostgreSQL database. Afterwards the database is
compared with the generator's own log of acknowledged saves, and the audit log with the same log.

Usage: .venv/bin/python scripts/load_test.py [--pg postgresql+psycopg://postgres@127.0.0.1:5432]
  [--pg-db kepu_load_run] [--workers 2] [--threads 8] [--duration 60] [--min-saves 0] [--min-polls 0]
  [--max-duration S] [--reviewers 50] [--chairs 5] [--redis [redis://127.0.0.1:6379/13]] [--bad-logins 40]
  [--seed 2024] [--keep]
Scale-out: --pg URL --workers 4 --redis (40 wrong-password sign-ins in the middle of the load must
let at most the limit through).

Prepares the database itself (`flask db upgrade`, `flask demo seed --stage reviewing --no-photos`,
extra reviewer and chair accounts through the users service, `assignments.assign_all`), serves it on
a free 127.0.0.1 port, logs every save attempt and its outcome to <work dir>/saves.jsonl, prints
p50/p95/p99 per request type and the status counts, and as its LAST line one JSON object.
The load runs for --duration seconds and then on until --min-saves saves were acknowledged and
the chairs polled --min-polls times (a slow machine makes the run longer, never a failure), but
never past --max-duration. Exit status 1 when that deadline came first, a request got a 5xx, an
acknowledged save is missing or lacks its audit event, or (with --redis) the throttle let more
than the limit through. Results: docs/reliability.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import secrets
import signal
import subprocess  # nosec B404 — starts our own flask/gunicorn with argument lists
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _benchlib  # noqa: E402  (scripts/ is not a package)

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
PASSWORD = "kepu2024"  # nosec B105 — the demo password of a throwaway database
DEFAULT_PG_DB = "kepu_load_run"
DEFAULT_REDIS = "redis://127.0.0.1:6379/13"
LOGIN_LIMIT = "5 per minute"  # app/config.py Defaults.LOGIN_RATE_LIMIT, pinned for the run
LIMIT_COUNT = 5
REQUEST_TIMEOUT = (5, 30)  # connect, read: a hung server shows up as a timeout, never as a hang
KINDS = ("login", "open", "save", "submit", "poll")
SAVE_ACTIONS = ("sheet.save", "sheet.submit")
# The Chinese sentence of the 500 page (app/core/errors.py): a 5xx that carries it failed "cleanly".
CLEAN_500 = "系统内部错误"

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_VERSION = re.compile(r'name="version" value="(\d+)"')


# --- database and environment ------------------------------------------------------------------

def free_port() -> int:
    return _benchlib.free_port()


# Only throw-away names are ever dropped: kepu_…, with a `load` or `fault` word in them (kepu_load_run,
# kepu_test_load_smoke, kepu_h2_fault_kill9), so a test database such as kepu_test never matches.
THROWAWAY_DB = r"kepu_(?:[a-z0-9]+_)*(?:load|fault)(?:_[a-z0-9]+)*"


def recreate_pg_database(server_url: str, name: str) -> str:
    """Drop and create `name` (only ever a throw-away database, see THROWAWAY_DB); its SQLAlchemy URL."""
    return _benchlib.recreate_pg_database(server_url, name, allowed=THROWAWAY_DB)


def database_url(pg: str | None, pg_db: str, work: Path) -> str:
    if pg:
        return recreate_pg_database(pg, pg_db)
    return "sqlite:///" + str(work / "kepu.sqlite3")


def engine_name(url: str) -> str:
    return "postgresql" if url.startswith("postgresql") else "sqlite"


def app_env(db_url: str, work: Path, secret: str, ratelimit_storage: str) -> dict:
    env = dict(os.environ)
    env.update({
        "FLASK_APP": "wsgi.py",
        "KEPU_DATABASE_URL": db_url,
        "KEPU_RATELIMIT_STORAGE": ratelimit_storage,
        "KEPU_LOGIN_RATE_LIMIT": LOGIN_LIMIT,
        # Fixed for the run: sessions and CSRF tokens must survive a server restart.
        "KEPU_SECRET_KEY": secret,
        # A private instance folder: the developer's instance/config.py must not leak into the run.
        "KEPU_INSTANCE_PATH": str(work / "instance"),
    })
    return env


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    client.ping()
    client.flushdb()
    client.close()


def flask(args: list[str], env: dict) -> str:
    done = subprocess.run([str(VENV_BIN / "flask"), *args], cwd=ROOT, env=env, capture_output=True,  # nosec B603
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


@contextlib.contextmanager
def patched_environ(env: dict):
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


# --- the workload -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rubric:
    id: int
    code: str
    max_score: float
    step: float


@dataclass
class Account:
    id: int
    username: str
    # nomination id -> category, for reviewers: assigned, active, not recused, sheet not submitted
    items: dict[int, str] = field(default_factory=dict)


@dataclass
class Workload:
    reviewers: list[Account]
    chairs: list[Account]
    rubric: dict[str, list[Rubric]]  # category -> criteria in form order
    audit_baseline: int  # audit events up to this id were written by the preparation


def prepare(db_url: str, env: dict, n_reviewers: int, n_chairs: int) -> Workload:
    """The deploy steps (migrate, demo round), then accounts and assignments through the services."""
    flask(["db", "upgrade"], env)
    flask(["demo", "seed", "--stage", "reviewing", "--no-photos"], env)
    with patched_environ(env):
        sys.path.insert(0, str(ROOT))
        from app import create_app
        from app.extensions import db

        app = create_app()
        with app.app_context():
            try:
                return _accounts_and_plan(db, n_reviewers, n_chairs)
            finally:
                db.session.remove()
                db.engine.dispose()


def _accounts_and_plan(db, n_reviewers: int, n_chairs: int) -> Workload:
    from app.accounts import operations as users
    from app.demo import data as demo_data
    from app.review import assignments
    from app.rounds import phases as rounds

    experts = [r["username"] for r in demo_data.REVIEWERS][:n_reviewers]
    extra = [f"load{i:02d}" for i in range(len(experts) + 1, n_reviewers + 1)]
    chairs = [demo_data.CHAIR["username"]] + [f"chair{i:02d}" for i in range(2, n_chairs + 1)]
    for name in extra:
        users.create_user(name, f"压测专家{name[4:]}", "reviewer", PASSWORD)
    for name in chairs[1:]:
        users.create_user(name, f"压测主任{name[5:]}", "chair", PASSWORD)
    rnd = rounds.require_current_round()
    assignments.assign_all(rnd.id)
    return plan_workload(db, rnd.id, experts + extra, chairs)


def plan_workload(db, round_id: int, reviewer_names: list[str], chair_names: list[str]) -> Workload:
    """The accounts' open work (assigned, active, not recused, sheet not submitted), the rubric and the
    audit baseline, read from a prepared database (also scripts/load_national.py)."""
    conn = db.session.connection()
    ids = dict(conn.execute(text("SELECT username, id FROM users")).all())
    rubric: dict[str, list[Rubric]] = defaultdict(list)
    for row in conn.execute(text(
            "SELECT category, id, code, max_score, step FROM criteria WHERE round_id = :r ORDER BY position, id"),
            {"r": round_id}):
        rubric[row.category].append(Rubric(row.id, row.code, float(row.max_score), float(row.step)))
    reviewers = [Account(ids[u], u) for u in reviewer_names]
    by_id = {a.id: a for a in reviewers}
    # Open work only: a submitted sheet cannot be saved again, a declared recusal is not assigned work.
    for row in conn.execute(text(
            "SELECT a.reviewer_id, n.id, n.category FROM assignments a "
            "JOIN nominations n ON n.id = a.nomination_id AND n.status = 'active' AND n.round_id = :r "
            "LEFT JOIN review_sheets s ON s.reviewer_id = a.reviewer_id AND s.nomination_id = n.id "
            "LEFT JOIN recusals x ON x.reviewer_id = a.reviewer_id AND x.nomination_id = n.id "
            "WHERE (s.id IS NULL OR s.status = 'draft') AND x.id IS NULL"), {"r": round_id}):
        if row.reviewer_id in by_id:
            by_id[row.reviewer_id].items[row.id] = row.category
    baseline = conn.execute(text("SELECT coalesce(max(id), 0) FROM audit_events")).scalar_one()
    db.session.commit()
    return Workload(reviewers, [Account(ids[u], u) for u in chair_names], dict(rubric), baseline)


# --- the server ---------------------------------------------------------------------------------

class Server:
    """gunicorn (gthread) in its own process group, so kill -9 takes the master and every worker."""

    def __init__(self, env: dict, workers: int, threads: int, log_dir: Path, port: int | None = None):
        self.env, self.workers, self.threads, self.log_dir = env, workers, threads, log_dir
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout: float = 90) -> float:
        """Start and wait until every worker answers; seconds until the first answer."""
        self.starts += 1
        self.log_path = self.log_dir / f"gunicorn-{self.port}-{self.starts}.log"
        log = open(self.log_path, "w")  # noqa: SIM115 — the child keeps the descriptor
        started = time.monotonic()
        self.proc = subprocess.Popen(  # nosec B603
            [str(VENV_BIN / "gunicorn"), "--bind", f"127.0.0.1:{self.port}", "--worker-class", "gthread",
             "--workers", str(self.workers), "--threads", str(self.threads), "--keep-alive", "10",
             "--timeout", "60", "--graceful-timeout", "5", "wsgi:app"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        first = None
        deadline = started + timeout
        while first is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.base}/login", timeout=5).status_code == 200:
                    first = time.monotonic() - started
            except requests.RequestException:
                pass
            if first is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn did not answer within {timeout} s:\n{self.log_tail()}")
                time.sleep(0.1)
        # Workers boot independently: fresh connections until each has had a chance to answer.
        for _ in range(self.workers * 3):
            with contextlib.suppress(requests.RequestException), requests.Session() as s:
                s.get(f"{self.base}/login", timeout=10)
        return first

    def kill9(self, when=None) -> int:
        """SIGKILL to the whole process group, as soon as `when()` returns (if given); the number of
        processes that were in the group."""
        pgid = self.proc.pid
        members = _group_members(pgid)  # read first: scanning /proc takes longer than a save
        if when is not None:
            when()
        os.killpg(pgid, signal.SIGKILL)
        self.proc.wait()
        deadline = time.monotonic() + 10
        while _group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(members)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def _group_members(pgid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append(int(entry))
    return out


# --- what the generator saw ---------------------------------------------------------------------

class Recorder:
    """Every request (kind, status, latency, time) and every save attempt with its outcome, the
    latter appended to a JSON-lines file as it happens: the generator's own log."""

    def __init__(self, log_path: Path):
        self.lock = threading.Lock()
        self.t0 = time.monotonic()
        self.requests: list[tuple[float, str, str, float]] = []
        self.clean_5xx = 0
        self.in_flight: Counter = Counter()
        self.counts: Counter = Counter()  # requests answered (any status) per kind
        self.ack_times: list[float] = []  # when each acknowledged save's answer arrived
        self.bodies_5xx: Counter = Counter()  # the title of each 5xx page: which error page answered
        self.log_path = log_path
        self._log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 — closed by close()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def request(self, kind: str, status: str, ms: float, started: float, body: str = "") -> None:
        with self.lock:
            self.requests.append((started, kind, status, ms))
            self.counts[kind] += 1
            if status.isdigit() and int(status) >= 500:
                if CLEAN_500 in body:
                    self.clean_5xx += 1
                title = re.search(r"<title>(.*?)</title>|<h1>(.*?)</h1>", body, re.S)
                label = " ".join((title.group(1) or title.group(2)).split()) if title else body[:80]
                self.bodies_5xx[label] += 1

    def attempt(self, entry: dict) -> None:
        line = json.dumps(entry, ensure_ascii=False)
        with self.lock:
            self._log.write(line + "\n")
            self._log.flush()
            if entry["outcome"] == "ack":
                self.ack_times.append(entry["t"])

    def acks_since(self, t: float = 0.0) -> int:
        """Acknowledged saves whose answer arrived at or after `t` (seconds of the load)."""
        with self.lock:
            return sum(1 for at in self.ack_times if at >= t)

    def close(self) -> None:
        self._log.close()


def _timed(recorder: Recorder, kind: str, session: requests.Session, method: str, url: str, **kw):
    """(response or None, status text); connection failures and timeouts are statuses too."""
    started = recorder.now()
    t = time.perf_counter()
    with recorder.lock:
        recorder.in_flight[kind] += 1
    try:
        resp = session.request(method, url, timeout=REQUEST_TIMEOUT, allow_redirects=False, **kw)
        status = str(resp.status_code)
    except requests.Timeout:
        resp, status = None, "timeout"
    except requests.ConnectionError:
        resp, status = None, "conn_error"
    finally:
        with recorder.lock:
            recorder.in_flight[kind] -= 1
    ms = (time.perf_counter() - t) * 1000
    body = resp.text if resp is not None and resp.status_code >= 500 else ""
    recorder.request(kind, status, ms, started, body)
    return resp, status


def login(session: requests.Session, base: str, username: str, recorder: Recorder) -> None:
    page, status = _timed(recorder, "login", session, "GET", f"{base}/login")
    if page is None or page.status_code != 200:
        raise RuntimeError(f"GET /login for {username}: {status}")
    token = _CSRF.search(page.text).group(1)
    resp, status = _timed(recorder, "login", session, "POST", f"{base}/login",
                          data={"username": username, "password": PASSWORD, "csrf_token": token})
    if status != "303":
        raise RuntimeError(f"POST /login for {username}: {status}")


class ReviewerSession:
    """One reviewer: opens an assigned nomination, autosaves it a few times with think time, sometimes
    submits it, moves on. Every save posts the whole form with the sheet's version, as the page does."""

    def __init__(self, base: str, account: Account, rubric: dict[str, list[Rubric]], recorder: Recorder,
                 rng: random.Random, think: tuple[float, float]):
        self.base, self.account, self.rubric, self.recorder, self.rng = base, account, rubric, recorder, rng
        self.think = think
        self.session = requests.Session()
        self.open_items = dict(account.items)
        self.seq = 0

    def login(self) -> None:
        login(self.session, self.base, self.account.username, self.recorder)

    def run(self, stop: threading.Event) -> None:
        # People do not all click at the same instant: each starts within the first think interval.
        if stop.wait(self.rng.uniform(0, self.think[1])):
            return
        while not stop.is_set() and self.open_items:
            nomination_id = self.rng.choice(list(self.open_items))
            page = self._open(nomination_id)
            if page is None:
                stop.wait(self.rng.uniform(*self.think))
                continue
            version, token = page
            saves = self.rng.randint(2, 6)
            for i in range(saves):
                if stop.wait(self.rng.uniform(*self.think)):
                    return
                submit = i == saves - 1 and self.rng.random() < 0.2
                version = self._save(nomination_id, version, token, submit)
                if version is None:  # submitted (by us, or found submitted): done with it
                    self.open_items.pop(nomination_id, None)
                    break

    def _open(self, nomination_id: int) -> tuple[int, str] | None:
        resp, _ = _timed(self.recorder, "open", self.session, "GET",
                         f"{self.base}/review/nominations/{nomination_id}")
        if resp is None or resp.status_code != 200:
            return None
        version = _VERSION.search(resp.text)
        if version is None:  # no editable form: the sheet is submitted
            self.open_items.pop(nomination_id, None)
            return None
        return int(version.group(1)), _CSRF.search(resp.text).group(1)

    def _values(self, category: str, submit: bool) -> dict[int, str]:
        values = {}
        for c in self.rubric[category]:
            steps = int(round(c.max_score / c.step))
            v = self.rng.randint(steps // 3, steps) * c.step
            values[c.id] = f"{v:g}"
        if not submit and self.rng.random() < 0.1:
            values[self.rng.choice(self.rubric[category]).id] = ""  # an emptied field
        return values

    def _save(self, nomination_id: int, version: int, token: str, submit: bool) -> int | None:
        """Post one save; the version to use next, or None when the sheet is now submitted."""
        category = self.open_items[nomination_id]
        self.seq += 1
        values = self._values(category, submit)
        comment = f"压测意见：{self.account.username} 第{self.seq}次保存"
        action = "submit" if submit else "save"
        form = {f"score-{cid}": v for cid, v in values.items()}
        form.update(comment=comment, version=str(version), action=action, csrf_token=token)
        resp, status = _timed(self.recorder, action, self.session, "POST",
                              f"{self.base}/review/nominations/{nomination_id}/sheet", data=form,
                              headers={"X-CSRFToken": token, "HX-Request": "true"})
        entry = {"t": round(self.recorder.now(), 3), "reviewer": self.account.username,
                 "reviewer_id": self.account.id, "nomination_id": nomination_id, "action": action,
                 "values": {str(cid): float(v) for cid, v in values.items() if v != ""},
                 "comment": comment, "sent_version": version, "status": status}
        next_version: int | None = version
        if status == "200":
            entry["outcome"] = "ack"
            found = _VERSION.search(resp.text)
            entry["version"] = int(found.group(1)) if found else version + 1
            next_version = None if submit else entry["version"]
        elif status == "409":
            entry["outcome"] = "conflict"
            found = _VERSION.search(resp.text)
            next_version = int(found.group(1)) if found else None
        elif status == "422":
            entry["outcome"] = "rejected"
        else:
            # No answer, or a 5xx: the save may or may not have committed. The next save tells (409).
            entry["outcome"] = "unknown"
        self.recorder.attempt(entry)
        return next_version


class ChairSession:
    """One chair: polls the live ranking fragment every few seconds with the ETag it last got."""

    def __init__(self, base: str, account: Account, recorder: Recorder, rng: random.Random,
                 interval: tuple[float, float], categories: tuple[str, ...] = ("unit", "activity")):
        self.base, self.account, self.recorder, self.rng, self.interval = base, account, recorder, rng, interval
        self.categories = categories
        self.session = requests.Session()
        self.etags: dict[str, str] = {}

    def login(self) -> None:
        login(self.session, self.base, self.account.username, self.recorder)

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.rng.uniform(*self.interval)):
            category = self.rng.choice(self.categories)
            headers = {"HX-Request": "true"}
            if category in self.etags:
                headers["If-None-Match"] = self.etags[category]
            resp, _ = _timed(self.recorder, "poll", self.session, "GET", f"{self.base}/rankings/{category}",
                             headers=headers)
            if resp is not None and resp.status_code == 200 and resp.headers.get("ETag"):
                self.etags[category] = resp.headers["ETag"]


def bad_login_probe(base: str, username: str, attempts: int, concurrency: int = 8) -> dict:
    """`attempts` wrong-password sign-ins, `concurrency` in flight, each on a new connection (so the
    kernel spreads them over the workers): how many got through to the password check (401)."""
    def one(_):
        with requests.Session() as s:
            try:
                page = s.get(f"{base}/login", timeout=REQUEST_TIMEOUT)
                resp = s.post(f"{base}/login", timeout=REQUEST_TIMEOUT, allow_redirects=False,
                              data={"username": username, "password": "wrong-password",  # nosec B105
                                    "csrf_token": _CSRF.search(page.text).group(1)})
                return str(resp.status_code)
            except requests.RequestException:
                return "conn_error"

    with ThreadPoolExecutor(concurrency) as pool:
        statuses = Counter(pool.map(one, range(attempts)))
    return {"attempts": attempts, "concurrency": concurrency, "allowed_401": statuses.get("401", 0),
            "throttled_429": statuses.get("429", 0),
            "other": {k: v for k, v in statuses.items() if k not in ("401", "429")}}


@dataclass
class LoadRun:
    recorder: Recorder
    duration: float
    login_seconds: float
    schedule_results: dict
    # False when the deadline came first: the load stopped before `until` held or the schedule ran.
    goal_reached: bool = True


# Beyond its minimum `duration`, a load waits this long at most for its goal (`until`, the schedule):
# generous, as a slow or busy machine must only make the run longer, never make it fail.
DEFAULT_GRACE_S = 240.0
POLL_S = 0.02


def run_load(base: str, workload: Workload, duration: float, recorder: Recorder, seed: int = 2024,
             think: tuple[float, float] = (0.5, 2.0), poll: tuple[float, float] = (2.0, 5.0),
             schedule: list | None = None, until=None, deadline: float | None = None,
             chair_categories: tuple[str, ...] = ("unit", "activity")) -> LoadRun:
    """Log every session in (a few at a time, like people arriving), then run all of them for at
    least `duration` seconds and until `until()` (if given) is true and every schedule entry has run.

    `schedule` is [(when, name, callable)], run one after another in the given order: `when` is
    seconds after the start, or a predicate polled until it is true (fault injection once enough
    has happened, however fast this machine is). `deadline` (seconds after the start, default
    `duration` + DEFAULT_GRACE_S) bounds the waiting; reaching it sets goal_reached=False."""
    master = random.Random(seed)
    reviewers = [ReviewerSession(base, a, workload.rubric, recorder, random.Random(master.random()), think)
                 for a in workload.reviewers]
    chairs = [ChairSession(base, a, recorder, random.Random(master.random()), poll, chair_categories)
              for a in workload.chairs]
    started = time.monotonic()
    # At most 4 sign-ins in flight: the throttle ("5 per minute" per address, successes refunded)
    # counts attempts in flight, and every session here comes from 127.0.0.1.
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda s: s.login(), [*reviewers, *chairs]))
    login_seconds = time.monotonic() - started

    stop = threading.Event()
    threads = [threading.Thread(target=s.run, args=(stop,), daemon=True) for s in [*reviewers, *chairs]]
    t_start = time.monotonic()
    recorder.t0 = t_start  # times in the log and the figures count from the start of the load
    for t in threads:
        t.start()
    results: dict = {}
    control = None
    if schedule:
        def _control():
            for when, name, action in schedule:
                if callable(when):
                    while not when():
                        if stop.wait(POLL_S):
                            return
                else:
                    delay = t_start + when - time.monotonic()
                    if delay > 0 and stop.wait(delay):
                        return
                at_rel = recorder.now()
                results[name] = {"at": round(at_rel, 3), "result": action()}
        control = threading.Thread(target=_control, daemon=True)
        control.start()
    end = t_start + (duration + DEFAULT_GRACE_S if deadline is None else deadline)

    def finished() -> bool:
        if control is not None and not control.is_alive() and len(results) < len(schedule):
            return True  # a scheduled action raised: its goal can never come, stop (goal_reached=False)
        return (time.monotonic() - t_start >= duration and (control is None or not control.is_alive())
                and (until is None or until()))

    reached = True
    while not finished():
        if time.monotonic() >= end:
            reached = False
            break
        time.sleep(POLL_S)
    stop.set()
    for t in threads:
        t.join(REQUEST_TIMEOUT[0] + REQUEST_TIMEOUT[1] + 5)
    if control is not None:
        control.join(300)
    for s in [*reviewers, *chairs]:
        s.session.close()
    if schedule and len(results) < len(schedule):
        reached = False
    return LoadRun(recorder, time.monotonic() - t_start, login_seconds, results, reached)


# --- figures ------------------------------------------------------------------------------------

def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1, int(-(-p * len(sorted_values) // 100)) - 1))
    return sorted_values[k]


def figures(requests_: list[tuple[float, str, str, float]]) -> dict:
    by_kind: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, Counter] = defaultdict(Counter)
    for _, kind, status, ms in requests_:
        by_kind[kind].append(ms)
        statuses[kind][status] += 1
    latency = {}
    for kind in KINDS:
        values = sorted(by_kind.get(kind, []))
        if values:
            latency[kind] = {"p50": round(percentile(values, 50), 1), "p95": round(percentile(values, 95), 1),
                             "p99": round(percentile(values, 99), 1), "max": round(values[-1], 1)}
    total = Counter()
    for c in statuses.values():
        total.update(c)
    return {
        "requests": {k: len(by_kind[k]) for k in KINDS if k in by_kind},
        "latency_ms": latency,
        "status_counts": {k: dict(sorted(statuses[k].items())) for k in KINDS if k in statuses},
        "status_totals": dict(sorted(total.items())),
        "errors_5xx": sum(n for s, n in total.items() if s.isdigit() and int(s) >= 500),
    }


# --- the comparison with the database -----------------------------------------------------------

def read_log(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _as_json(value):
    return json.loads(value) if isinstance(value, str) else value


def verify(db_url: str, log: list[dict], workload: Workload) -> dict:
    """Compare the database with the generator's log.

    For each (reviewer, nomination) the stored sheet must equal the LAST acknowledged save, except
    that a later attempt whose answer never arrived (connection lost, 5xx) may have committed too:
    the stored state must then equal one of those. Every acknowledged save must have exactly one
    sheet.save / sheet.submit audit event by its reviewer with the same after-state, and each
    sheet's audit events must chain (before of one = after of the previous).
    """
    codes = {str(c.id): c.code for crit in workload.rubric.values() for c in crit}
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            reviewer_ids = [a.id for a in workload.reviewers]
            sheets = {}
            for r in conn.execute(text("SELECT id, reviewer_id, nomination_id, version, status, comment "
                                       "FROM review_sheets")):
                sheets[(r.reviewer_id, r.nomination_id)] = r
            values: dict[int, dict[str, float]] = defaultdict(dict)
            for r in conn.execute(text("SELECT sheet_id, criterion_id, value FROM scores")):
                values[r.sheet_id][str(r.criterion_id)] = float(r.value)
            events = conn.execute(text(
                "SELECT id, actor_id, action, object_type, object_id, before, after FROM audit_events "
                "WHERE id > :b AND action IN ('sheet.save', 'sheet.submit') ORDER BY id"),
                {"b": workload.audit_baseline}).all()
            integrity = None
            if engine.dialect.name == "sqlite":
                integrity = conn.execute(text("PRAGMA integrity_check")).scalar_one()
    finally:
        engine.dispose()

    by_pair: dict[tuple[int, int], list[dict]] = defaultdict(list)
    for entry in log:
        by_pair[(entry["reviewer_id"], entry["nomination_id"])].append(entry)

    def state_of(entry: dict) -> tuple:
        return (entry["values"], entry["comment"], "submitted" if entry["action"] == "submit" else "draft")

    exact = later_unacked = missing = version_regressions = 0
    missing_examples = []
    for pair, entries in by_pair.items():
        acks = [i for i, e in enumerate(entries) if e["outcome"] == "ack"]
        if not acks:
            continue
        last = acks[-1]
        candidates = [state_of(entries[last])] + [state_of(e) for e in entries[last + 1:]
                                                  if e["outcome"] == "unknown"]
        sheet = sheets.get(pair)
        stored = None if sheet is None else (values.get(sheet.id, {}), sheet.comment, sheet.status)
        if stored == candidates[0]:
            exact += 1
        elif stored in candidates[1:]:
            later_unacked += 1
        else:
            missing += 1
            if len(missing_examples) < 5:
                missing_examples.append({"pair": list(pair), "expected": candidates[0], "stored": stored})
        if sheet is not None and sheet.version < entries[last]["version"]:
            version_regressions += 1

    # Audit: one event per acknowledged save, by its reviewer, with the acknowledged after-state.
    reviewer_set = set(reviewer_ids)
    by_comment: dict[tuple[int, str], list] = defaultdict(list)
    for ev in events:
        after = _as_json(ev.after) or {}
        by_comment[(ev.actor_id, after.get("comment"))].append(ev)
    audit_missing = audit_mismatch = 0
    matched = set()
    for entry in log:
        if entry["outcome"] != "ack":
            continue
        found = by_comment.get((entry["reviewer_id"], entry["comment"]), [])
        if len(found) != 1:
            audit_missing += 1
            continue
        ev = found[0]
        matched.add(ev.id)
        after = _as_json(ev.after)
        want = {codes[cid]: v for cid, v in entry["values"].items()}
        sheet = sheets.get((entry["reviewer_id"], entry["nomination_id"]))
        expected_action = "sheet.submit" if entry["action"] == "submit" else "sheet.save"
        if (after.get("values") != want or ev.action != expected_action or ev.object_type != "review_sheet"
                or sheet is None or ev.object_id != sheet.id
                or (entry["version"] == 1) != (_as_json(ev.before) is None)):
            audit_mismatch += 1
    chain_breaks = 0
    per_sheet: dict[int, list] = defaultdict(list)
    for ev in events:
        if ev.actor_id in reviewer_set:
            per_sheet[ev.object_id].append(ev)
    for evs in per_sheet.values():
        for prev, cur in zip(evs, evs[1:], strict=False):
            if _as_json(cur.before) != _as_json(prev.after):
                chain_breaks += 1
    return {
        "pairs_with_acks": exact + later_unacked + missing,
        "exact": exact,
        "later_unacknowledged_committed": later_unacked,
        "missing_saves": missing,
        "missing_examples": missing_examples,
        "version_regressions": version_regressions,
        "audit_events": len(events),
        "audit_missing": audit_missing,
        "audit_mismatch": audit_mismatch,
        "audit_unmatched_events": len(events) - len(matched),
        "audit_without_actor": sum(1 for ev in events if ev.actor_id is None),
        "audit_chain_breaks": chain_breaks,
        "sqlite_integrity": integrity,
    }


def save_outcomes(log: list[dict]) -> dict:
    outcomes = Counter(e["outcome"] for e in log)
    return {
        "acknowledged_saves": outcomes.get("ack", 0),
        "acknowledged_submits": sum(1 for e in log if e["outcome"] == "ack" and e["action"] == "submit"),
        "conflicts_409": outcomes.get("conflict", 0),
        "rejected_422": outcomes.get("rejected", 0),
        "unknown_outcome": outcomes.get("unknown", 0),
    }


def print_report(summary: dict) -> None:
    print(f"engine={summary['engine']} workers={summary['workers']} threads={summary['threads']} "
          f"reviewers={summary['reviewers']} chairs={summary['chairs']} duration={summary['duration']} s "
          f"ratelimit={summary['ratelimit_storage']}")
    if not summary["goal_reached"]:
        print(f"  GAVE UP: the deadline came before {summary['min_saves']} acknowledged saves and "
              f"{summary['min_polls']} polls (or before the bad-login probe ran)")
    for kind, lat in summary["latency_ms"].items():
        print(f"  {kind:<7} n={summary['requests'][kind]:<6} p50={lat['p50']:>7} ms  p95={lat['p95']:>7} ms  "
              f"p99={lat['p99']:>7} ms  max={lat['max']:>7} ms  status={summary['status_counts'][kind]}")
    print(f"  acknowledged saves {summary['acknowledged_saves']} (submits {summary['acknowledged_submits']}), "
          f"{summary['saves_per_second']} /s; 409 {summary['conflicts_409']}; 422 {summary['rejected_422']}; "
          f"unknown outcome {summary['unknown_outcome']}")
    if summary.get("bad_logins"):
        b = summary["bad_logins"]
        print(f"  bad logins during the load: {b['attempts']} attempts, {b['allowed_401']} reached the password "
              f"check (401), {b['throttled_429']} throttled (429), other {b['other']} "
              f"[limit {LOGIN_LIMIT}, storage {summary['ratelimit_storage']}]")
    print(f"  missing saves {summary['missing_saves']}; audit missing {summary['audit_missing']}, "
          f"mismatched {summary['audit_mismatch']}, chain breaks {summary['audit_chain_breaks']}; "
          f"5xx {summary['errors_5xx']}")


def summarize(engine: str, args, run: LoadRun, log: list[dict], check: dict) -> dict:
    figs = figures(run.recorder.requests)
    probe = (run.schedule_results.get("bad_logins") or {}).get("result")
    outcomes = save_outcomes(log)
    return {
        "engine": engine, "workers": args.workers, "threads": args.threads, "duration": round(run.duration, 1),
        "reviewers": args.reviewers, "chairs": args.chairs,
        "min_saves": args.min_saves, "min_polls": args.min_polls, "goal_reached": run.goal_reached,
        "ratelimit_storage": "redis" if args.redis else "memory",
        **figs, **outcomes,
        "saves_per_second": round(outcomes["acknowledged_saves"] / run.duration, 1) if run.duration else 0,
        "clean_5xx": run.recorder.clean_5xx,
        "login_seconds": round(run.login_seconds, 2),
        **{k: v for k, v in check.items() if k != "missing_examples"},
        "bad_logins": probe,
        # Shared storage must hold the limit across workers; memory:// counts per worker (not a failure).
        "throttle_held": (probe["allowed_401"] <= LIMIT_COUNT and not probe["other"])
        if probe and args.redis else None,
        "missing_examples": check["missing_examples"],
    }


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--pg", metavar="URL", help="PostgreSQL server URL (SQLite when absent)")
    p.add_argument("--pg-db", default=DEFAULT_PG_DB, help="database to (re)create: kepu_…load… (e.g. kepu_load_run)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--duration", type=float, default=60,
                   help="seconds of load at least (longer while --min-saves/--min-polls are not reached)")
    p.add_argument("--min-saves", type=int, default=0,
                   help="keep the load going until this many saves have been acknowledged")
    p.add_argument("--min-polls", type=int, default=0,
                   help="keep the load going until the chairs have polled this many times")
    p.add_argument("--max-duration", type=float, default=None, metavar="SECONDS",
                   help=f"give up (and fail) after this long (default: --duration + {DEFAULT_GRACE_S:g})")
    p.add_argument("--reviewers", type=int, default=50)
    p.add_argument("--chairs", type=int, default=5)
    p.add_argument("--redis", nargs="?", const=DEFAULT_REDIS, default=None, metavar="URL",
                   help=f"login throttle storage on Redis (default URL {DEFAULT_REDIS})")
    p.add_argument("--bad-logins", type=int, default=40,
                   help="wrong-password sign-ins fired in the middle of the load (0: none)")
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, SQLite file)")
    return p


@contextlib.contextmanager
def work_dir(keep: bool, prefix: str):
    if keep:
        path = Path(tempfile.mkdtemp(prefix=prefix))
        print(f"work directory: {path}", flush=True)
        yield path
    else:
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            yield Path(tmp)


def setup(args, work: Path) -> tuple[str, dict, Workload]:
    """Fresh database, environment and workload for one run."""
    (work / "instance").mkdir(exist_ok=True)
    db_url = database_url(args.pg, args.pg_db, work)
    if args.redis:
        flush_redis(args.redis)
    env = app_env(db_url, work, secrets.token_hex(32), args.redis or "memory://")
    workload = prepare(db_url, env, args.reviewers, args.chairs)
    return db_url, env, workload


def main() -> int:
    args = parser(__doc__.split("\n\n")[0]).parse_args()
    if args.reviewers < 1 or args.chairs < 1:
        raise SystemExit("--reviewers and --chairs must be at least 1")
    with work_dir(args.keep, "kepu-load-") as work:
        db_url, env, workload = setup(args, work)
        server = Server(env, args.workers, args.threads, work)
        recorder = Recorder(work / "saves.jsonl")
        schedule = []
        if args.bad_logins:
            # In the middle of the load, from outside the sessions: does the throttle hold? "The
            # middle" by time and by saves, so a slow machine still has the load under way.
            def middle() -> bool:
                return recorder.now() >= args.duration / 2 and recorder.acks_since() >= args.min_saves // 2

            schedule.append((middle, "bad_logins", lambda: bad_login_probe(
                server.base, workload.reviewers[0].username, args.bad_logins)))

        def enough() -> bool:
            return recorder.acks_since() >= args.min_saves and recorder.counts["poll"] >= args.min_polls

        try:
            server.start()
            run = run_load(server.base, workload, args.duration, recorder, seed=args.seed, schedule=schedule,
                           until=enough, deadline=args.max_duration)
        finally:
            server.stop()
            recorder.close()
        log = read_log(recorder.log_path)
        check = verify(db_url, log, workload)
        summary = summarize(engine_name(db_url), args, run, log, check)
        print_report(summary)
    print(json.dumps(summary, ensure_ascii=False), flush=True)
    ok = (summary["goal_reached"] and summary["errors_5xx"] == 0 and summary["missing_saves"] == 0
          and summary["audit_missing"] == 0
          and summary["audit_mismatch"] == 0 and summary["audit_chain_breaks"] == 0
          and summary["throttle_held"] is not False)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
