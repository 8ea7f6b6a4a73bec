"""The job runner behind the downloads page (app/reports/jobs.py on app/jobs' huey): one job per
identical request, records, heartbeat, failure reporting, cleanup, and the huey built from config.
Real huey throughout: JOBS_IMMEDIATE (the tests' default) or a real SqliteHuey whose queued task is
dequeued and executed the way a consumer's worker does it. Processes: tests/load/test_jobs_processes.py."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
from huey import RedisHuey, SqliteHuey

from app.core.database import write_transaction
from app.core.errors import UserError
from app.deliberation import operations as decisions
from app.extensions import db
from app.jobs import get_huey, get_jobs
from app.reports import jobs, pdf
from app.rounds import phases as rounds
from tests.chair_fixtures import build_decided_round, build_small_round


@pytest.fixture
def decided(app):
    with app.app_context():
        return build_decided_round()


@pytest.fixture
def queued_app(app_factory, tmp_path):
    """A real SqliteHuey and no consumer: what the web process sees."""
    app = app_factory({"JOBS_IMMEDIATE": False, "JOBS_FOLDER": str(tmp_path / "jobs")})
    with app.app_context():
        small = build_small_round()
        for category in ("activity", "unit"):
            decisions.prefill_from_cut_line(small.round_id, category)
    app.small = small
    return app


def _consume_one(app) -> None:
    """What a consumer worker does with the next message."""
    huey = get_huey(app)
    task = huey.dequeue()
    assert task is not None, "nothing queued"
    huey.execute(task)


def test_huey_from_config(app_factory, tmp_path):
    app = app_factory()
    assert get_huey(app).immediate is True  # TESTING
    assert get_huey(app) is get_huey(app)
    app = app_factory({"JOBS_IMMEDIATE": False, "JOBS_FOLDER": str(tmp_path / "q")})
    huey = get_huey(app)
    assert isinstance(huey, SqliteHuey) and not huey.immediate
    assert huey.storage.filename == str(tmp_path / "q" / "jobs.sqlite3")
    assert os.path.exists(tmp_path / "q" / "jobs.sqlite3")
    app = app_factory({"JOBS_IMMEDIATE": False, "JOBS_URL": "redis://127.0.0.1:1/5"})
    huey = get_huey(app)  # no connection yet: building it must not touch the network
    assert isinstance(huey, RedisHuey) and huey.storage.conn.connection_pool.connection_kwargs["db"] == 5
    with pytest.raises(RuntimeError, match="JOBS_URL"):
        get_huey(app_factory({"JOBS_URL": "amqp://x"}))


def test_job_runs_in_the_consumer_and_keeps_its_file(queued_app):
    app, small = queued_app, queued_app.small
    with app.test_request_context():
        # No consumer yet: both jobs stay queued, so the list job is still queued when asked again.
        busy = jobs.submit("sheets", "pdf", small.round_id, "activity", label="专家评分表")
        job = jobs.submit("list", "pdf", small.round_id, "activity", label="优秀活动名单（PDF）")
        assert job.status == "queued" and job.active
        again = jobs.submit("list", "pdf", small.round_id, "activity", label="优秀活动名单（PDF）")
        assert again.id == job.id
        assert get_huey(app).pending_count() == 2
        _consume_one(app)
        _consume_one(app)
        done = jobs.wait(job.id, timeout=60)
        assert done.status == "done", done.error
        assert jobs.get(busy.id).status == "done"
        assert {j.id for j in jobs.recent()} == {busy.id, job.id}
        assert done.filename == "2024年全国科普日优秀活动名单.pdf" and done.size > 1000
        with open(jobs.output_path(done), "rb") as fh:
            assert fh.read(5) == b"%PDF-"
        assert done.finished_at >= done.started_at >= done.created_at
        assert done.progress == "" and done.worker.endswith(f":{os.getpid()}")
        assert os.path.dirname(jobs.output_path(done)).startswith(str(app.config["UPLOAD_FOLDER"]).rsplit("/", 1)[0])
        # Finished: the same request (same data version) is a new job answered from storage at once,
        # nothing queued (issue 15: a document is rendered once per version of what it shows).
        fresh = jobs.submit("list", "pdf", small.round_id, "activity", label="优秀活动名单（PDF）")
        assert fresh.id != job.id and fresh.status == "done" and fresh.worker == "storage"
        assert get_huey(app).pending_count() == 0


def test_concurrent_identical_requests_make_one_job(queued_app, app_factory, tmp_path):
    # Two apps on the same files: two web processes (or, with Redis, two machines) answering at once.
    other = app_factory({"JOBS_IMMEDIATE": False, "JOBS_FOLDER": str(tmp_path / "jobs")})
    small = queued_app.small
    got: list[str] = []
    start = threading.Barrier(8)

    def request(app):
        with app.test_request_context():
            start.wait()
            got.append(jobs.submit("forms", "pdf", small.round_id, "unit", label="推荐表").id)
            db.session.remove()

    threads = [threading.Thread(target=request, args=(a,)) for a in [queued_app, other] * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(got) == 8 and len(set(got)) == 1, got
    assert get_huey(queued_app).pending_count() == 1
    with queued_app.test_request_context():
        assert [j.id for j in jobs.recent()] == [got[0]]


def test_changed_data_makes_a_new_job(queued_app):
    small = queued_app.small
    with queued_app.test_request_context():
        first = jobs.submit("report", "pdf", small.round_id, "unit", label="报告")
        other_category = jobs.submit("report", "pdf", small.round_id, "activity", label="报告")
        assert other_category.id != first.id
        with write_transaction():
            rounds.bump_ranking(small.round_id, "activity")
        # The unit report's data did not change: still the same job. The activity one's did.
        assert jobs.submit("report", "pdf", small.round_id, "unit", label="报告").id == first.id
        newer = jobs.submit("report", "pdf", small.round_id, "activity", label="报告")
        assert newer.id != other_category.id and newer.job_key != other_category.job_key


def test_failed_and_stale_jobs_are_reported(app, decided):
    with app.test_request_context():
        job = jobs.submit("list", "pdf", 999_999, "activity", label="不存在的批次")
        done = jobs.wait(job.id, timeout=30)
        assert done.status == "failed" and done.error == "找不到评选批次。"

        stale = jobs.Job(id="0123456789abcdef", kind="forms", fmt="pdf", round_id=decided.round_id,
                         category="unit", label="中断的任务", requested_by=None, status="running")
        with open(os.path.join(jobs.folder(), f"{stale.id}.json"), "w", encoding="utf-8") as fh:
            data = dict(stale.__dict__, updated_at=time.time() - jobs.STALE_SECONDS - 5)
            json.dump(data, fh)
        found = jobs.get(stale.id)
        assert found.status == "failed" and "中断" in found.error
        for bad in ("../etc/passwd", "0123456789ABCDEF", "", "x" * 16):
            assert jobs.get(bad) is None
        with pytest.raises(UserError):
            jobs.submit("nope", "pdf", decided.round_id, "unit", label="x")


def test_a_heartbeat_within_the_limit_keeps_a_job_running(app):
    with app.test_request_context():
        job = jobs.Job(id="00000000000000aa", kind="list", fmt="pdf", round_id=1, category="unit", label="x",
                       requested_by=None, status="running")
        jobs._write(job)
        first = jobs.get(job.id).updated_at
        with jobs._Heartbeat(job, 0.05):
            deadline = time.time() + 10
            while jobs.get(job.id).updated_at == first and time.time() < deadline:
                time.sleep(0.02)
        assert jobs.get(job.id).updated_at > first
        # 29 s of silence is still running; 31 s is a dead consumer.
        for silent, status in ((jobs.STALE_SECONDS - 1, "running"), (jobs.STALE_SECONDS + 1, "failed")):
            with open(jobs._meta_path(job.id), "w", encoding="utf-8") as fh:
                json.dump(dict(job.__dict__, updated_at=time.time() - silent), fh)
            assert jobs.get(job.id).status == status


def test_a_retry_after_a_dead_job_takes_over_its_claim(queued_app):
    small = queued_app.small
    with queued_app.test_request_context():
        dead = jobs.submit("sheets", "pdf", small.round_id, "unit", label="专家评分表")
        get_huey(queued_app).dequeue()  # a consumer took it and was killed before finishing
        record = jobs._load(dead.id)
        record.status = "running"
        jobs._write(record)
        assert jobs.submit("sheets", "pdf", small.round_id, "unit", label="专家评分表").id == dead.id
        with open(jobs._meta_path(dead.id), "w", encoding="utf-8") as fh:
            json.dump(dict(record.__dict__, updated_at=time.time() - 40), fh)
        retry = jobs.submit("sheets", "pdf", small.round_id, "unit", label="专家评分表")
        assert retry.id != dead.id and jobs.get(dead.id).status == "failed"
        _consume_one(queued_app)
        assert jobs.wait(retry.id, timeout=60).status == "done"


def test_a_stopped_consumer_reports_its_job_at_once(queued_app):
    small = queued_app.small
    with queued_app.test_request_context():
        job = jobs.submit("list", "pdf", small.round_id, "unit", label="名单")
        task = get_huey(queued_app).dequeue()
        record = jobs._load(job.id)
        record.status = "running"
        jobs._write(record)
        get_jobs(queued_app).huey._emit("interrupted", task)  # what the consumer emits on SIGTERM
        found = jobs.get(job.id)
        assert found.status == "failed" and found.error == jobs.INTERRUPTED_ERROR


def test_prune_keeps_the_newest_and_the_active(app_factory, decided, tmp_path):
    app = app_factory({"JOBS_KEEP": 2, "JOBS_MAX_AGE_HOURS": 1})
    with app.test_request_context():
        root = jobs.folder()
        made = []
        for i in range(5):
            job = jobs.Job(id=f"{i:016x}", kind="list", fmt="pdf", round_id=1, category="unit", label=str(i),
                           requested_by=None, status="done", created_at=time.time() - 100 + i)
            job.finished_at = time.time()
            jobs._write(job)
            with open(jobs.output_path(job), "wb") as fh:
                fh.write(b"%PDF-")
            made.append(job)
        old = made[4]
        with open(jobs._meta_path(old.id), "w", encoding="utf-8") as fh:  # newest, but finished 2 h ago
            json.dump(dict(old.__dict__, finished_at=time.time() - 7200), fh)
        running = jobs.Job(id="00000000000000ff", kind="forms", fmt="pdf", round_id=1, category="unit",
                           label="r", requested_by=None, status="running", created_at=time.time() - 500)
        jobs._write(running)
        orphans = [os.path.join(root, n) for n in ("1234567890abcdef.out", "00000000000000ee.out.part",
                                                    "0000000000000001.json.99.1.tmp")]
        for path in orphans:
            with open(path, "wb") as fh:
                fh.write(b"x")
            os.utime(path, (time.time() - 600, time.time() - 600))
        young = os.path.join(root, "00000000000000ff.out.part")  # the running job's output being written
        with open(young, "wb") as fh:
            fh.write(b"x")

        removed = jobs.prune()
        left = sorted(os.listdir(root))
        assert {j.id for j in jobs.recent(limit=None)} == {made[3].id, made[2].id, running.id}
        assert left == sorted([f"{made[2].id}.json", f"{made[2].id}.out", f"{made[3].id}.json",
                               f"{made[3].id}.out", f"{running.id}.json", f"{running.id}.out.part"])
        assert removed == 3 * 2 + len(orphans)
        assert jobs.prune() == 0


def test_small_renders_are_not_queued_behind_a_long_one():
    # A long render holds one renderer (as a batch would); a small one still goes ahead at once.
    holding, release = threading.Event(), threading.Event()

    def long_render():
        with pdf._renderer():
            holding.set()
            release.wait(60)

    t = threading.Thread(target=long_render)
    t.start()
    try:
        assert holding.wait(30)
        done: list[bytes] = []
        small = threading.Thread(target=lambda: done.append(pdf.render_pdf("<p>单份推荐表</p>")))
        small.start()
        small.join(timeout=60)
        assert done and done[0].startswith(b"%PDF-"), "the small render waited for the long one"
    finally:
        release.set()
        t.join(timeout=10)
