"""A large batch of 推荐表 split across the job consumers and merged with pypdf.

1. The job's own task (jobs.run) plans the parts: the approved forms in the batch's order, cut into runs
   of JOBS_FORMS_PER_PART, each with the pages it will take (documents.predicted_form_pages). It renders
   the cover and 目录 itself, with the page numbers the plan gives (the 目录's own length is found by
   rendering it, at most a few times until it is stable), then queues one task per run and returns: the
   job stays 生成中 without holding a consumer.
2. Each part task (jobs.run_part) renders its forms, numbering its pages from where the plan puts them out of the plan's
   total, and writes `<job>.pNNN.pdf`; a heartbeat file `<job>.pNNN.beat` shows it is alive (jobs.get
   reads the newest of them: a batch whose consumers all died is reported 失败 like any job).
3. The part that finds every part written (jobs._merge_parts) takes the merge claim (huey's atomic put_if_empty) and merges
   them in order. A part whose page count differs from the plan (a form that overflowed its page) would
   make the numbers wrong: then the merger renders the whole batch in one go instead — slower, still right.

Progress over the whole batch is the count of parts written (jobs.get fills Job.progress from it).
"""

from __future__ import annotations

import glob
import io
import logging
import os

from flask import current_app

from app.core import storage

log = logging.getLogger(__name__)

FORMS_PER_PART = 50
_TOC_ATTEMPTS = 4


def per_part() -> int:
    return int(current_app.config.get("JOBS_FORMS_PER_PART") or FORMS_PER_PART)


def wanted(job) -> bool:
    """Split this job? Only a forms batch with more than one part's worth of forms."""
    if job.kind != "forms" or job.fmt != "pdf" or not job.category:
        return False
    from app.reports import queries

    return len(queries.approved_nominations(job.round_id, job.category)) > per_part()


def part_path(folder: str, job, index: int, ext: str = "pdf") -> str:
    return os.path.join(folder, f"{job.id}.p{index:03d}.{ext}")


def written_parts(folder: str, job) -> int:
    return len(glob.glob(os.path.join(folder, f"{job.id}.p[0-9][0-9][0-9].pdf")))


def part_files(folder: str, job, pattern: str = "*") -> list[str]:
    return glob.glob(os.path.join(folder, f"{job.id}.p{pattern}"))


def last_beat(folder: str, job) -> float:
    newest = 0.0
    for path in part_files(folder, job):
        try:
            newest = max(newest, os.stat(path).st_mtime)
        except OSError:
            continue
    return newest


def pages_of(data: bytes) -> int:
    from pypdf import PdfReader

    return len(PdfReader(io.BytesIO(data)).pages)


def plan(folder: str, job, beat) -> list[tuple]:
    """Step 1, in the job's own task: cover + 目录 rendered here; returns the form runs to queue (as
    run_part's arguments) once the job's own heartbeat has stopped — after that only the parts and
    the merger write the record."""
    from app.reports import documents, queries

    noms = queries.approved_nominations(job.round_id, job.category)
    size = per_part()
    runs = [noms[i:i + size] for i in range(0, len(noms), size)]
    pages = [sum(documents.predicted_form_pages(n) for n in run) for run in runs]
    forms_pages = sum(pages)
    toc_pages = max(1, len(noms) // 35)  # first guess; corrected from the rendered 目录
    cover_doc = None
    for _ in range(_TOC_ATTEMPTS):
        front = 1 + toc_pages
        numbers, page = {}, front + 1
        for n in noms:
            numbers[n.id] = page
            page += documents.predicted_form_pages(n)
        cover_doc = documents.batch_forms_part_source(
            job.round_id, job.category, ids=[], toc_numbers=numbers, page_total=front + forms_pages).render()
        rendered = pages_of(cover_doc.content)
        if rendered == front:
            break
        toc_pages = rendered - 1
    else:
        raise RuntimeError("the 目录's length did not settle")
    storage.write_atomic(part_path(folder, job, 0), cover_doc.content)
    plan = []
    first = front + 1
    for index, (run, n_pages) in enumerate(zip(runs, pages, strict=True), start=1):
        plan.append({"index": index, "ids": [n.id for n in run], "first": first, "pages": n_pages})
        first += n_pages
    beat.update(parts=len(plan) + 1, filename=cover_doc.filename, mimetype=cover_doc.mimetype,
                progress=_progress_text(1, len(plan) + 1))
    total = front + forms_pages
    return [(job.id, part["index"], part["ids"], part["first"], part["pages"], total) for part in plan]


def _progress_text(done: int, parts: int) -> str:
    return f"已完成 {done}/{parts} 部分（分 {parts - 1} 段并行排版）"


def progress(folder: str, job) -> str:
    return _progress_text(written_parts(folder, job), job.parts)


def render_part(job, ids: list[int], first: int, total: int) -> tuple[bytes, int]:
    """One run of forms, numbered from `first` out of `total`: the PDF and its page count."""
    from app.reports import documents

    doc = documents.batch_forms_part_source(job.round_id, job.category, ids=ids, cover=False,
                                            page_first=first, page_total=total).render()
    return doc.content, pages_of(doc.content)


def merged(folder: str, job) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for index in range(job.parts):
        writer.append(part_path(folder, job, index))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


