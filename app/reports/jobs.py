"""Large documents (batch forms, full lists, reports) rendered by a job consumer (`flask jobs worker`,
app/jobs), never in a gunicorn worker: a recycled or killed web worker loses nothing, and a long batch
never holds up the small downloads the web process serves itself.

Records. Each job is a JSON file next to its output under instance/reports/ (REPORTS_FOLDER), not a
table: a job is a cache entry, not business data (nothing joins it, nothing needs it in a backup), and
the folder is already shared by every web process and, in a multi-machine deployment, every machine
(docs/deploy.md §8), so a consumer on one machine writes the file that a web worker on another one
serves. A table would add a migration and put a write every few seconds (the heartbeat) on the
database that the scoring pages share.

One job per request. Identical requests (kind, format, round, category and the round's data version,
RankingCounter, which every score, decision and phase change bumps) share a job key. The key is
claimed in huey's storage (Redis HSETNX or SQLite INSERT OR ABORT, both atomic across processes and,
with Redis, machines): only the request that wins the claim queues a job, the others get that job.
A claim whose job is finished, failed or dead is taken over by the next request (a retry).

Liveness. A running job rewrites its record every JOBS_HEARTBEAT_SECONDS; one whose record is older
than JOBS_STALE_SECONDS belongs to a consumer that was killed, and is reported 失败 (within a minute of
the kill) so the user can request it again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import socket
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime

from flask import current_app
from sqlalchemy import select

from app.core import storage
from app.core.errors import UserError
from app.core.time import fmt_minute

log = logging.getLogger(__name__)

# Defaults of JOBS_STALE_SECONDS / JOBS_HEARTBEAT_SECONDS (app/config.py).
STALE_SECONDS = 30
HEARTBEAT_SECONDS = 5
# A queued job nobody has started in this long lost its queue message (e.g. Redis was flushed).
QUEUED_STALE_SECONDS = 6 * 3600
KEEP_JOBS = 60
_ID = re.compile(r"^[0-9a-f]{16}$")
STATUS_LABELS = {"queued": "排队中", "running": "生成中", "done": "已完成", "failed": "失败"}
DRAFT_LABELS = {"publicizing": "公示稿", "final": "定稿"}
STALE_ERROR = "后台生成进程已中断（{n} 秒没有响应），请重新生成。"
INTERRUPTED_ERROR = "生成被中断（后台生成服务已停止），请重新生成。"
LOST_ERROR = "排队超时，后台生成服务可能未运行，请重新生成。"
_CLAIM_ATTEMPTS = 5


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
    job_key: str = ""
    progress: str = ""
    worker: str = ""
    # The round's phase when the document was asked for: a file made in 公示 is the 公示稿, one made
    # after 定稿 is the 定稿, anything earlier a 讨论稿 — the 生成记录 must never let them be confused.
    phase: str = ""
    # a batch split across the consumers (parts > 0), the plan its part files belong to (a 目录 longer or
    # shorter than predicted starts the next one, app/reports/batch.py) and the document-store key.
    parts: int = 0
    generation: int = 0
    store_key: str = ""

    @property
    def draft_label(self) -> str:
        return DRAFT_LABELS.get(self.phase, "讨论稿") if self.phase else ""

    @property
    def made_at(self) -> str:
        """When the file was made (or asked for, while it is not yet), in Beijing time."""
        moment = self.finished_at or self.created_at
        return fmt_minute(datetime.fromtimestamp(moment, UTC))

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


_FIELDS = {f.name for f in fields(Job)}


def _setting(name: str, default):
    value = current_app.config.get(name)
    return default if value is None else value


def stale_seconds() -> float:
    return float(_setting("JOBS_STALE_SECONDS", STALE_SECONDS))


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
    storage.write_atomic(_meta_path(job.id), json.dumps(asdict(job), ensure_ascii=False))


def _load(job_id: str) -> Job | None:
    if not _ID.match(job_id or ""):
        return None
    try:
        with open(_meta_path(job_id), encoding="utf-8") as fh:
            data = json.load(fh)
        return Job(**{k: v for k, v in data.items() if k in _FIELDS})
    except (OSError, ValueError, TypeError):
        return None


def get(job_id: str) -> Job | None:
    """The job as the pages should show it: a running job whose heartbeat stopped is failed."""
    job = _load(job_id)
    if job is None:
        return None
    silent = time.time() - job.updated_at
    if job.parts and job.status == "running":
        from app.reports import batch

        silent = time.time() - max(job.updated_at, batch.last_beat(folder(), job))
        job.progress = batch.progress(folder(), job)
    if job.status == "running" and silent > stale_seconds():
        job.status, job.error = "failed", STALE_ERROR.format(n=int(silent))
    elif job.status == "queued" and silent > QUEUED_STALE_SECONDS:
        job.status, job.error = "failed", LOST_ERROR
    return job


def recent(limit: int | None = 20) -> list[Job]:
    jobs = []
    for name in os.listdir(folder()):
        if name.endswith(".json"):
            job = get(name[:-5])
            if job is not None:
                jobs.append(job)
    jobs.sort(key=lambda j: j.created_at, reverse=True)
    return jobs if limit is None else jobs[:limit]


# ----------------------------------------------------------------------------- queueing (web process)


def data_version(round_id: int, category: str | None) -> str:
    from app.extensions import db
    from app.models import RankingCounter

    query = select(RankingCounter.category, RankingCounter.version).where(RankingCounter.round_id == round_id)
    if category:
        query = query.where(RankingCounter.category == category)
    rows = sorted(db.session.execute(query).all())
    return ",".join(f"{c}{v}" for c, v in rows) or "0"


def round_phase(round_id: int) -> str:
    from app.extensions import db
    from app.models import Round

    return db.session.execute(select(Round.phase).where(Round.id == round_id)).scalar_one_or_none() or ""


def job_key(kind: str, fmt: str, round_id: int, category: str | None, phase: str = "") -> str:
    # The phase is part of the key: a 公示稿 still rendering when the round is finalized is not the 定稿.
    return f"{kind}|{fmt}|{round_id}|{category or '*'}|{data_version(round_id, category)}|{phase}"


def _claim_name(key: str) -> str:
    return "kepu-job:" + hashlib.sha256(key.encode()).hexdigest()[:40]


def submit(kind: str, fmt: str, round_id: int, category: str | None, *, label: str, user=None) -> Job:
    """Queue a document; the job of an identical request that is still queued or running is returned
    instead. Returns the job as it is now (already finished in JOBS_IMMEDIATE mode)."""
    from app.jobs import get_huey
    from app.reports import catalog, store

    catalog.check(kind, fmt, category)
    huey = get_huey()
    phase = round_phase(round_id)
    key = job_key(kind, fmt, round_id, category, phase)
    kept_as = store.store_key(key, round_id)
    stored = store.find(kept_as)
    if stored is not None:
        return _from_store(stored, kind, fmt, round_id, category, label, user, key, kept_as, phase)
    claim = _claim_name(key)
    for _ in range(_CLAIM_ATTEMPTS):
        holder = huey.get(claim, peek=True)
        if holder is not None:
            current = get(holder)
            if current is not None and current.active:
                return current
            # Finished, failed or dead: take the claim over. Popping is atomic, so of two requests
            # retrying at once only one removes it; if what it removed is not what it looked at,
            # somebody else's fresh claim was in between and goes back.
            taken = huey.get(claim)
            if taken is not None and taken != holder:
                huey.put_if_empty(claim, taken)
                continue
        job = Job(id=secrets.token_hex(8), kind=kind, fmt=fmt, round_id=round_id, category=category, label=label,
                  requested_by=getattr(user, "id", None), job_key=key, phase=phase, store_key=kept_as)
        # The record exists before the claim names it: whoever reads the claim finds the job.
        _write(job)
        if huey.put_if_empty(claim, job.id):
            _enqueue(job.id)
            return get(job.id) or job
        _remove(_meta_path(job.id))
    raise UserError("同一文档正在被多次提交，请稍后重试。", status=409)


def stored_document(kind: str, fmt: str, round_id: int, category: str | None, *, label: str,
                    timeout: float) -> dict | None:
    """The document as kept in the store (path, filename, mimetype, size, and an etag), asking the queue
    for it first if it is not there yet and waiting at most `timeout` seconds for a consumer to render it;
    None if it is still being rendered then. For pages that hand a document to many visitors (the public
    公示 PDF): a crowd never makes the web processes render it, and a stored one creates no job record."""
    from app.reports import store

    key = store.store_key(job_key(kind, fmt, round_id, category, round_phase(round_id)), round_id)
    stored = store.find(key)
    if stored is None:
        job = submit(kind, fmt, round_id, category, label=label)
        if job.active:
            wait(job.id, timeout=timeout)
        stored = store.find(key)
    if stored is None:
        return None
    return {**stored, "etag": hashlib.sha256(key.encode()).hexdigest()[:32]}


def _from_store(stored: dict, kind, fmt, round_id, category, label, user, key, kept_as, phase) -> Job:
    """A finished job whose output is the stored file: nothing is rendered or queued."""
    from app.reports import store

    now = time.time()
    job = Job(id=secrets.token_hex(8), kind=kind, fmt=fmt, round_id=round_id, category=category, label=label,
              requested_by=getattr(user, "id", None), job_key=key, phase=phase, store_key=kept_as, status="done",
              started_at=now, finished_at=now, filename=stored["filename"], mimetype=stored["mimetype"],
              size=int(stored["size"]), worker="storage")
    store.link_to(stored, output_path(job))
    _write(job)
    return job


def _enqueue(job_id: str) -> None:
    from app.jobs import get_jobs

    get_jobs().tasks["render_report"](job_id)


def enqueue_part(*args) -> None:
    """One part of a split batch (app/reports/batch.py) for any consumer."""
    from app.jobs import get_jobs

    get_jobs().tasks["render_part"](*args)





def _release(job: Job) -> None:
    """Drop the job's claim so the next identical request starts afresh (a retry also takes over a
    claim left behind, so this only keeps the store small)."""
    from app.jobs import get_huey

    huey = get_huey()
    claim = _claim_name(job.job_key)
    taken = huey.get(claim)
    if taken is not None and taken != job.id:
        huey.put_if_empty(claim, taken)


# ----------------------------------------------------------------------------- running (consumer)


class _Heartbeat:
    """Rewrites the running job's record every few seconds from a side thread, so a consumer killed
    in the middle of a single long WeasyPrint call is told apart from one still working."""

    def __init__(self, job: Job, interval: float):
        self.job, self.interval = job, interval
        self._app = current_app._get_current_object()
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"kepu-heartbeat-{job.id}", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def _beat(self) -> None:
        with self._app.app_context():
            while not self._stop.wait(self.interval):
                with self.lock:
                    if self.job.active:
                        _write(self.job)

    def update(self, **changes) -> None:
        with self.lock:
            for name, value in changes.items():
                setattr(self.job, name, value)
            _write(self.job)


def _count_text(job: Job) -> str:
    from app.reports import queries

    try:
        if job.kind == "forms" and job.category:
            return f"（共 {len(queries.approved_nominations(job.round_id, job.category))} 份推荐表）"
        if job.kind == "sheets":
            return f"（共 {len(queries.reviewers(job.round_id))} 位专家）"
    except Exception:  # noqa: BLE001 — only a progress hint; the render reports the real error
        log.warning("job %s: could not count the parts", job.id, exc_info=True)
    return ""


def run(job_id: str) -> None:
    """Render one queued job (called by the consumer's task inside an app context)."""
    from app.extensions import db
    from app.reports import batch, catalog, store

    job = get(job_id)
    if job is None or job.status != "queued":
        return  # already run, given up as lost, or pruned
    job.status, job.started_at = "running", time.time()
    job.worker = f"{socket.gethostname()}:{os.getpid()}"
    job.progress = "第 1/2 步：读取数据"
    _write(job)
    interval = float(_setting("JOBS_HEARTBEAT_SECONDS", HEARTBEAT_SECONDS))
    parts: list[tuple] = []
    try:
        with _Heartbeat(job, interval) as beat:
            try:
                if batch.wanted(job):
                    parts, fields = batch.plan(job)
                    beat.update(**fields)
                    outcome = None
                else:
                    beat.update(progress=f"第 1/2 步：排版{_count_text(job)}")
                    doc = catalog.build(job.kind, job.fmt, job.round_id, job.category)
                    beat.update(progress="第 2/2 步：保存文件")
                    tmp = output_path(job) + ".part"
                    with open(tmp, "wb") as fh:
                        fh.write(doc.content)
                    os.replace(tmp, output_path(job))
                    outcome = {"status": "done", "filename": doc.filename, "mimetype": doc.mimetype,
                               "size": len(doc.content)}
            except UserError as e:
                outcome = {"status": "failed", "error": e.message}
            except Exception:  # noqa: BLE001 — a failed render must be reported in the page, not lost in a log
                log.exception("report job %s failed", job_id)
                outcome = {"status": "failed", "error": "生成失败，请稍后重试或联系管理员。"}
            if outcome is not None:
                beat.update(**outcome, progress="", finished_at=time.time())
                parts = []
        if job.status == "done" and job.store_key:
            store.keep(job.store_key, output_path(job), filename=job.filename, mimetype=job.mimetype, size=job.size)
    finally:
        db.session.remove()
    if parts:
        # The heartbeat has stopped: from here on only the parts and their merger write the record.
        for args in parts:
            enqueue_part(*args)
        return
    _release(job)
    prune()


def run_part(job_id: str, index: int, ids: list[int], first: int, expected_pages: int, total: int,
             generation: int = 0) -> None:
    """One part of a split forms batch (app/reports/batch.py), in any consumer: part 0 the cover and 目录,
    the others a run of forms. The last part of the current generation to finish merges them."""
    from app.reports import batch

    job = get(job_id)
    if job is None or job.status != "running" or job.generation != generation:
        return  # failed, pruned or re-planned meanwhile: nothing to add to
    root = folder()
    stop = threading.Event()
    interval = float(_setting("JOBS_HEARTBEAT_SECONDS", HEARTBEAT_SECONDS))
    beat_path = [batch.part_path(root, job, index, "beat")]

    def _beat() -> None:
        while not stop.wait(interval):
            try:
                with open(beat_path[0], "a"):
                    os.utime(beat_path[0])
            except OSError:
                pass

    with open(beat_path[0], "a"):
        pass
    beater = threading.Thread(target=_beat, name=f"kepu-part-{job_id}-{index}", daemon=True)
    beater.start()
    try:
        if index == 0:
            content, pages = batch.render_cover(job, ids, expected_pages, total)
            if pages != expected_pages:
                content, generation = replan(job, ids, pages - 1)
                beat_path[0] = batch.part_path(root, job, index, "beat", generation)
        else:
            content, pages = batch.render_part(job, ids, first, total)
            if pages != expected_pages:
                with open(batch.part_path(root, job, index, "mismatch", generation), "w"):
                    pass
        path = batch.part_path(root, job, index, generation=generation)
        storage.write_atomic(path, content)
    finally:
        stop.set()
        beater.join(timeout=5)
    current = get(job_id)
    if current is None or current.generation != generation:
        _remove(path)  # re-planned while this part rendered: its numbers are the old plan's
        return
    if batch.written_parts(root, current) == current.parts:
        _merge_parts(current)


def replan(job: Job, ids: list[int], toc_pages: int) -> tuple[bytes, int]:
    """Part 0 found the 目录 `toc_pages` long, not as predicted: every page number after it moves. The
    next generation's form runs are queued at once with the right numbers (the old generation's are
    skipped, or dropped when done), then the cover and 目录 are rendered again with them. Part 0 is the
    only writer of the record here: no part of the old generation can merge without part 0's file."""
    from app.reports import batch, queries

    noms = queries.approved_nominations(job.round_id, job.category, only=ids)
    for _ in range(batch.TOC_ATTEMPTS):
        parts = batch.part_args(job, noms, toc_pages, job.generation + 1)
        log.info("batch %s: the 目录 takes %d pages, not as planned; re-planning (generation %d)",
                 job.id, toc_pages, job.generation + 1)
        current = get(job.id) or job
        current.generation = job.generation = job.generation + 1
        current.parts = job.parts = len(parts)
        _write(current)
        for args in parts[1:]:
            enqueue_part(*args)
        _, _, cover_ids, _, front, total, generation = parts[0]
        content, pages = batch.render_cover(job, cover_ids, front, total)
        if pages == front:
            return content, generation
        toc_pages = pages - 1
    raise RuntimeError("the 目录's length did not settle")


def _merge_parts(job: Job) -> None:
    from app.jobs import get_huey
    from app.reports import batch, catalog, store

    claim = f"kepu-merge:{job.id}:{job.generation}"
    if not get_huey().put_if_empty(claim, "1"):
        return  # another part got here first
    root = folder()
    try:
        if batch.part_files(root, job, f"g{job.generation}.p*.mismatch"):
            log.warning("batch %s: a part's pages differ from the plan; rendering it in one go", job.id)
            content = catalog.build(job.kind, job.fmt, job.round_id, job.category).content
        else:
            content = batch.merged(root, job)
        storage.write_atomic(output_path(job), content)
        outcome = {"status": "done", "size": len(content)}
    except Exception:  # noqa: BLE001 — reported in the page like any failed render
        log.exception("batch %s: merging failed", job.id)
        outcome = {"status": "failed", "error": "生成失败，请稍后重试或联系管理员。"}
    current = get(job.id) or job
    for name, value in {**outcome, "progress": "", "finished_at": time.time()}.items():
        setattr(current, name, value)
    _write(current)
    if current.status == "done" and current.store_key:
        store.keep(current.store_key, output_path(current), filename=current.filename,
                   mimetype=current.mimetype, size=current.size)
    for path in batch.part_files(root, job):
        _remove(path)
    get_huey().get(claim)  # drop the claim
    _release(current)
    prune()


def mark_interrupted(job_id: str) -> None:
    job = _load(job_id)
    if job is not None and job.active:
        job.status, job.error, job.progress, job.finished_at = "failed", INTERRUPTED_ERROR, "", time.time()
        _write(job)


# ----------------------------------------------------------------------------- cleanup


def _remove(path: str) -> bool:
    try:
        os.remove(path)
        return True
    except OSError:
        return False


def prune() -> int:
    """Delete finished jobs beyond the newest JOBS_KEEP or older than JOBS_MAX_AGE_HOURS, with their
    outputs, and files no live job owns (a killed consumer's half-written output, the parts of a batch
    that died). Returns the number of files removed."""
    from app.reports import batch

    now = time.time()
    keep = int(_setting("JOBS_KEEP", KEEP_JOBS))
    max_age = float(_setting("JOBS_MAX_AGE_HOURS", 72)) * 3600
    grace = stale_seconds()
    removed = 0
    kept: set[str] = set()
    active: set[str] = set()
    finished_kept = 0
    for job in recent(limit=None):
        if job.active:
            kept.add(job.id)
            active.add(job.id)
            continue
        if finished_kept < keep and now - (job.finished_at or job.updated_at) < max_age:
            finished_kept += 1
            kept.add(job.id)
            continue
        removed += _remove(_meta_path(job.id)) + _remove(output_path(job))
    root = folder()
    for name in os.listdir(root):
        owner, path = name.split(".", 1)[0], os.path.join(root, name)
        if batch.PART_FILE.match(name):
            if owner in active:
                continue  # a part of a running batch (an old generation's is dropped by its own task)
        elif not name.endswith((".out", ".part", ".tmp")) or (owner in kept and not name.endswith(".part")):
            continue
        if name.endswith(".part") and owner in kept and get(owner).active:
            continue
        try:
            young = now - os.stat(path).st_mtime < grace
        except OSError:
            continue
        # A record or an output being written right now by a job that is about to be kept.
        if not young:
            removed += _remove(path)
    return removed


def wait(job_id: str, timeout: float = 120.0) -> Job | None:
    """Block until a job finishes (tests and scripts)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = get(job_id)
        if job is None or not job.active:
            return job
        time.sleep(0.1)
    return get(job_id)
