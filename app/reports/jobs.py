"""Background rendering of large documents (batch forms, full lists, reports), outside the request
worker: a small ThreadPoolExecutor in the process, each job a JSON file next to its output under
instance/reports/ (REPORTS_FOLDER). JSON files rather than a table: a job is a cache entry, not
business data, and every process (gunicorn workers) sees the same folder, so any worker can answer
the polling request of a job another one runs.

A job that stays queued or running longer than STALE_SECONDS without an update belongs to a process
that died; it is then reported as failed and can be requested again.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from flask import current_app

from app.core.errors import UserError

log = logging.getLogger(__name__)

STALE_SECONDS = 15 * 60
KEEP_JOBS = 60
_ID = re.compile(r"^[0-9a-f]{16}$")
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()
STATUS_LABELS = {"queued": "排队中", "running": "生成中", "done": "已完成", "failed": "失败"}


@dataclass
class Job:
    id: str
    kind: str
    fmt: str
    round_id: int
    category: str | None
    label: str
    requested_by: int | None
    status: str = "queued"
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    filename: str = ""
    mimetype: str = ""
    size: int = 0
    error: str = ""

    @property
    def key(self) -> tuple:
        return (self.kind, self.fmt, self.round_id, self.category)

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running")

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)

    @property
    def elapsed(self) -> float:
        end = self.finished_at or time.time()
        return max(0.0, end - (self.started_at or self.created_at))


def folder() -> str:
    path = current_app.config.get("REPORTS_FOLDER") or os.path.join(
        os.path.dirname(os.path.abspath(current_app.config["UPLOAD_FOLDER"])), "reports")
    os.makedirs(path, exist_ok=True)
    return path


def _meta_path(job_id: str) -> str:
    return os.path.join(folder(), f"{job_id}.json")


def output_path(job: Job) -> str:
    return os.path.join(folder(), f"{job.id}.out")


def _write(job: Job) -> None:
    job.updated_at = time.time()
    path = _meta_path(job.id)
    tmp = f"{path}.{threading.get_ident()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(asdict(job), fh, ensure_ascii=False)
    os.replace(tmp, path)


def get(job_id: str) -> Job | None:
    if not _ID.match(job_id or ""):
        return None
    try:
        with open(_meta_path(job_id), encoding="utf-8") as fh:
            job = Job(**json.load(fh))
    except (OSError, ValueError, TypeError):
        return None
    if job.active and time.time() - job.updated_at > STALE_SECONDS:
        job.status, job.error = "failed", "生成任务已中断，请重新生成。"
    return job


def recent(limit: int = 20) -> list[Job]:
    jobs = []
    for name in os.listdir(folder()):
        if name.endswith(".json"):
            job = get(name[:-5])
            if job is not None:
                jobs.append(job)
    jobs.sort(key=lambda j: j.created_at, reverse=True)
    return jobs[:limit]


def _cleanup() -> None:
    for job in recent(limit=10_000)[KEEP_JOBS:]:
        if job.active:
            continue
        for path in (_meta_path(job.id), output_path(job)):
            try:
                os.remove(path)
            except OSError:
                pass


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            # One worker: PDF renders are serialised by app.reports.pdf anyway, and the machine has few cores.
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kepu-report")
        return _executor


def submit(kind: str, fmt: str, round_id: int, category: str | None, *, label: str, user=None) -> Job:
    """Queue a document; an identical job already queued or running is returned instead."""
    from app.reports import catalog

    catalog.check(kind, fmt, category)
    for job in recent(limit=KEEP_JOBS):
        if job.active and job.key == (kind, fmt, round_id, category):
            return job
    job = Job(id=secrets.token_hex(8), kind=kind, fmt=fmt, round_id=round_id, category=category, label=label,
              requested_by=getattr(user, "id", None))
    _write(job)
    _cleanup()
    app = current_app._get_current_object()
    _pool().submit(_run, app, job.id)
    return job


def _run(app, job_id: str) -> None:
    from app.reports import catalog

    with app.app_context():
        job = get(job_id)
        if job is None:
            return
        job.status, job.started_at = "running", time.time()
        _write(job)
        try:
            doc = catalog.build(job.kind, job.fmt, job.round_id, job.category)
            tmp = output_path(job) + ".part"
            with open(tmp, "wb") as fh:
                fh.write(doc.content)
            os.replace(tmp, output_path(job))
            job.status, job.filename, job.mimetype, job.size = "done", doc.filename, doc.mimetype, len(doc.content)
        except UserError as e:
            job.status, job.error = "failed", e.message
        except Exception:  # noqa: BLE001 — a failed render must be reported in the page, not lost in a thread
            log.exception("report job %s failed", job_id)
            job.status, job.error = "failed", "生成失败，请稍后重试或联系管理员。"
        finally:
            job.finished_at = time.time()
            _write(job)
            from app.extensions import db

            db.session.remove()


def wait(job_id: str, timeout: float = 120.0) -> Job | None:
    """Block until a job finishes (tests and scripts)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = get(job_id)
        if job is None or not job.active:
            return job
        time.sleep(0.1)
    return get(job_id)
