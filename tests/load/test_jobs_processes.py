"""Report jobs across real processes: gunicorn queues, `flask jobs worker` renders, on a temporary
instance folder (SQLite database, SqliteHuey queue, reports/). Nothing of huey is mocked.

Every wait polls for a state with a generous bound; none sleeps for a fixed window."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess  # nosec B404 — starts our own gunicorn/flask with argument lists
import sys
import time
from pathlib import Path

import pytest
import requests
from huey import RedisHuey, SqliteHuey

from app import create_app
from app.deliberation import operations as decisions
from app.extensions import db
from tests.chair_fixtures import build_small_round
from tests.conftest import DEMO_PASSWORD

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "scripts"))
from _benchlib import free_port  # noqa: E402

START_TIMEOUT = 120  # a cold gunicorn/consumer start on a loaded 2-core machine
JOB_TIMEOUT = 180  # the first render of a consumer loads ~30 MB of fonts
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _until(what: str, check, timeout: float, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


class Site:
    def __init__(self, work: Path, extra_env: dict | None = None):
        self.instance = work / "instance"
        self.instance.mkdir()
        self.reports = work / "reports"  # UPLOAD_FOLDER's sibling
        url = "sqlite:///" + str(self.instance / "kepu.sqlite3")
        self.env = {k: v for k, v in os.environ.items() if k != "KEPU_JOBS_URL"}
        self.env.update({"FLASK_APP": "wsgi.py", "KEPU_DATABASE_URL": url, "KEPU_INSTANCE_PATH": str(self.instance),
                         "KEPU_UPLOAD_FOLDER": str(work / "uploads"), "KEPU_SECRET_KEY": "jobs-process-test",
                         "KEPU_RATELIMIT_ENABLED": "false", **(extra_env or {})})
        self.jobs_url = self.env.get("KEPU_JOBS_URL")
        self.logs = work
        self.procs: list[subprocess.Popen] = []
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "UPLOAD_FOLDER": str(work / "uploads"),
                          "SECRET_KEY": "x", "TESTING": True})
        with app.app_context():
            db.create_all()
            self.small = build_small_round()
            for category in ("activity", "unit"):
                decisions.prefill_from_cut_line(self.small.round_id, category)
            db.session.remove()
            db.engine.dispose()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 — lives as long as the process
        proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,  # nosec B603
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def start_web(self) -> subprocess.Popen:
        proc = self._spawn("web", [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{self.port}", "--workers", "1",
                                   "--worker-class", "gthread", "--threads", "4", "wsgi:app"])

        def up():
            assert proc.poll() is None, self.log("web")
            try:
                return requests.get(f"{self.base}/login", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        _until("gunicorn to answer", up, START_TIMEOUT, every=0.2)
        return proc

    def start_consumer(self) -> subprocess.Popen:
        proc = self._spawn("consumer", [str(BIN / "flask"), "jobs", "worker"])
        _until("the consumer to start", lambda: proc.poll() is not None or "已启动" in self.log("consumer"),
               START_TIMEOUT)
        assert proc.poll() is None, self.log("consumer")
        return proc

    def kill9(self, proc: subprocess.Popen) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def session(self, username: str = "admin") -> requests.Session:
        s = requests.Session()
        token = _CSRF.search(s.get(f"{self.base}/login", timeout=30).text).group(1)
        resp = s.post(f"{self.base}/login", data={"username": username, "password": DEMO_PASSWORD,
                                                  "csrf_token": token}, allow_redirects=False, timeout=30)
        assert resp.status_code == 303, resp.text[:500]
        return s

    def queue(self, s: requests.Session, kind: str, category: str, fmt: str = "pdf") -> str:
        token = _CSRF.search(s.get(f"{self.base}/reports/", timeout=30).text).group(1)
        resp = s.post(f"{self.base}/reports/jobs", data={"kind": kind, "format": fmt, "category": category,
                                                          "csrf_token": token}, allow_redirects=False, timeout=30)
        assert resp.status_code == 303, resp.text[:500]
        return resp.headers["Location"].rsplit("/", 1)[1]

    def record(self, job_id: str) -> dict:
        try:
            return json.loads((self.reports / f"{job_id}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def pending(self) -> int:
        if self.jobs_url:
            return RedisHuey("kepu", url=self.jobs_url).pending_count()
        return SqliteHuey("kepu", filename=str(self.instance / "jobs.sqlite3")).pending_count()


REDIS_JOBS_URL = "redis://127.0.0.1:6379/11"  # 12–15: the deploy-doc, load, throttle tests


@pytest.fixture(params=["sqlite", "redis"])
def site(request, tmp_path):
    extra = {}
    if request.param == "redis":
        import redis

        redis.Redis.from_url(REDIS_JOBS_URL).flushdb()
        extra["KEPU_JOBS_URL"] = REDIS_JOBS_URL
    s = Site(tmp_path, extra)
    yield s
    s.stop()


def _status(s: requests.Session, site: Site, job_id: str) -> tuple[str, str]:
    body = s.get(f"{site.base}/reports/jobs/{job_id}", headers={"HX-Request": "true"}, timeout=30).text
    found = re.search(r'data-status="(\w+)"', body)
    return (found.group(1) if found else ""), body


def _download(s: requests.Session, site: Site, job_id: str) -> bytes:
    resp = s.get(f"{site.base}/reports/jobs/{job_id}/download", timeout=60)
    assert resp.status_code == 200 and resp.content.startswith(b"%PDF-")
    return resp.content


def test_two_identical_requests_make_one_job(site):
    site.start_web()
    chair, admin = site.session("chair"), site.session("admin")
    first = site.queue(chair, "forms", "unit")
    second = site.queue(admin, "forms", "unit")
    assert second == first
    assert site.pending() == 1
    assert site.queue(admin, "forms", "activity") != first  # another category is another job
    assert site.pending() == 2
    site.start_consumer()
    _until("the job to be done", lambda: _status(admin, site, first)[0] == "done", JOB_TIMEOUT, every=0.5)
    assert len(_download(chair, site, first)) > 1000
    assert site.pending() == 0 or _until("the queue to drain", lambda: site.pending() == 0, JOB_TIMEOUT)


def test_a_job_survives_the_web_worker_that_queued_it(site):
    web = site.start_web()
    admin = site.session("admin")
    job_id = site.queue(admin, "report", "activity")
    assert site.record(job_id)["status"] == "queued"
    site.kill9(web)  # the master and its worker: nothing of the web side is left
    site.start_consumer()
    _until("the consumer to finish the job", lambda: site.record(job_id).get("status") == "done", JOB_TIMEOUT,
           every=0.5)
    site.port = free_port()
    site.base = f"http://127.0.0.1:{site.port}"
    site.start_web()
    admin = site.session("admin")
    assert "评审结果报告" in site.record(job_id)["filename"]
    _download(admin, site, job_id)


def test_a_killed_consumer_is_reported_within_a_minute_and_a_retry_succeeds(site):
    site.start_web()
    admin = site.session("admin")
    consumer = site.start_consumer()
    # Freeze the consumer the moment its job is running, and look again: a job that finished in
    # between (a fast machine) is no longer mid-job, so take a bigger one and try again.
    job_id = None
    for kind, category in [("sheets", "unit"), ("sheets", "activity"), ("forms", "unit"), ("forms", "activity")]:
        candidate = site.queue(admin, kind, category)
        _until("the job to start", lambda c=candidate: site.record(c).get("status") in ("running", "done", "failed"),
               JOB_TIMEOUT, every=0.01)
        os.killpg(consumer.pid, signal.SIGSTOP)
        if site.record(candidate)["status"] == "running":
            job_id = candidate
            break
        os.killpg(consumer.pid, signal.SIGCONT)
    assert job_id, "every job finished before the consumer could be stopped mid-job"
    site.kill9(consumer)
    killed = time.monotonic()
    status, body = _until("the job to be reported failed",
                          lambda: (st := _status(admin, site, job_id))[0] == "failed" and st, 60, every=0.5)
    assert time.monotonic() - killed < 60
    assert "中断" in body and "重新生成" in body and "hx-trigger" not in body

    # The retry is the card's own form: the same request again, which takes over the dead job's key.
    page = admin.get(f"{site.base}/reports/jobs/{job_id}", timeout=30).text
    form = re.search(r'<form method="post" action="/reports/jobs" class="job-retry">(.*?)</form>', page, re.S)
    assert form, page[-2000:]
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', form.group(1)))
    resp = admin.post(f"{site.base}/reports/jobs", data=fields, allow_redirects=False, timeout=30)
    assert resp.status_code == 303
    retry = resp.headers["Location"].rsplit("/", 1)[1]
    assert retry != job_id and site.record(retry)["status"] == "queued"
    site.start_consumer()
    _until("the retry to be done", lambda: _status(admin, site, retry)[0] == "done", JOB_TIMEOUT, every=0.5)
    _download(admin, site, retry)


def test_old_outputs_are_cleaned_up(tmp_path):
    site = Site(tmp_path, {"KEPU_JOBS_KEEP": "2"})
    try:
        site.start_web()
        admin = site.session("admin")
        site.start_consumer()
        stray = site.reports / "00000000000000ee.out.part"  # what a consumer killed while writing leaves
        site.reports.mkdir(exist_ok=True)
        stray.write_bytes(b"half")
        os.utime(stray, (time.time() - 600, time.time() - 600))
        done = []
        for kind, category in [("list", "unit"), ("list", "activity"), ("report", "unit")]:
            job_id = site.queue(admin, kind, category)
            _until(f"{kind} {category} to be done", lambda j=job_id: _status(admin, site, j)[0] == "done",
                   JOB_TIMEOUT, every=0.5)
            done.append(job_id)
        # Pruned by the consumer after each job: the newest two records and outputs are all that is left.
        expected = sorted(f"{j}.{ext}" for j in done[1:] for ext in ("json", "out"))
        # store/ holds the documents kept for identical later requests (app/reports/store.py), one per document.
        _until("the oldest job to be pruned",
               lambda: sorted(n for n in os.listdir(site.reports) if n != "store") == expected, 30)
        stored = sorted(os.listdir(site.reports / "store"))
        assert len([n for n in stored if n.endswith(".out")]) == len(done), stored
        assert admin.get(f"{site.base}/reports/jobs/{done[0]}", timeout=30).status_code == 404
        assert admin.get(f"{site.base}/reports/jobs/{done[0]}/download", timeout=30).status_code == 404
        _download(admin, site, done[2])
    finally:
        site.stop()
