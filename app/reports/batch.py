"""A large batch of 推荐表 split across the job consumers and merged with pypdf.

1. The job's own task (jobs.run) plans the parts and returns at once: the approved forms in the batch's
   order, cut into runs of JOBS_FORMS_PER_PART, each with the pages it will take
   (documents.predicted_form_pages), and the 目录's length predicted from a small sample laid out by
   WeasyPrint (predicted_toc_pages) — so every part knows its page numbers before anything is rendered,
   and the cover + 目录 (part 0) renders on one consumer while the forms render on the others. The job
   stays 生成中 without holding a consumer.
2. Each part task (jobs.run_part) renders its run, numbering its pages from where the plan puts them out
   of the plan's total, and writes `<job>.g<generation>.pNNN.pdf`; a heartbeat file `….beat` shows it is
   alive (jobs.get reads the newest of them: a batch whose consumers all died is reported 失败 like any
   job). Part 0 checks the 目录 it rendered against the prediction: if they differ, the plan is made
   again with the real length under the next generation (jobs.replan) — the parts of the old one are
   skipped or dropped, none of their files counts — so a wrong prediction costs the work done so far,
   never a wrong page number.
3. The part that finds every part of the current generation written (jobs._merge_parts) takes the merge
   claim (huey's atomic put_if_empty) and merges them in order. A form part whose page count differs
   from the plan (a form that overflowed its page) would make the numbers wrong: then the merger renders
   the whole batch in one go instead — slower, still right.

Progress over the whole batch is the count of parts written (jobs.get fills Job.progress from it).
"""

from __future__ import annotations

import glob
import io
import logging
import os
import re
from dataclasses import dataclass
from types import SimpleNamespace

from flask import current_app

log = logging.getLogger(__name__)

FORMS_PER_PART = 50
TOC_ATTEMPTS = 4


def per_part() -> int:
    return int(current_app.config.get("JOBS_FORMS_PER_PART") or FORMS_PER_PART)


def wanted(job) -> bool:
    """Split this job? Only a forms batch with more than one part's worth of forms."""
    if job.kind != "forms" or job.fmt != "pdf" or not job.category:
        return False
    from app.deliberation import operations as decisions

    return decisions.approved_count(job.round_id, job.category) > per_part()


# ----------------------------------------------------------------------------- part files


def part_path(folder: str, job, index: int, ext: str = "pdf", generation: int | None = None) -> str:
    gen = job.generation if generation is None else generation
    return os.path.join(folder, f"{job.id}.g{gen}.p{index:03d}.{ext}")


def written_parts(folder: str, job, generation: int | None = None) -> int:
    gen = job.generation if generation is None else generation
    return len(glob.glob(os.path.join(folder, f"{job.id}.g{gen}.p[0-9][0-9][0-9].pdf")))


def part_files(folder: str, job, pattern: str = "g*.p*") -> list[str]:
    """Files of the job's parts: of every generation by default, or those `pattern` names
    (`g2.p*.mismatch`)."""
    return glob.glob(os.path.join(folder, f"{job.id}.{pattern}"))


PART_FILE = re.compile(r"^[0-9a-f]{16}\.g\d+\.p\d{3}\.(pdf|beat|mismatch)$")


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


# ----------------------------------------------------------------------------- the plan


def plan(job) -> tuple[list[tuple], dict]:
    """Step 1, in the job's own task: the part tasks' arguments for generation 1 (part 0, the cover and
    目录, first) and the record fields to set; nothing is rendered here."""
    from app.reports import documents, queries
    from app.rounds import phases as rounds

    noms = queries.approved_nominations(job.round_id, job.category)
    toc_pages = predicted_toc_pages(job, noms)
    parts = part_args(job, noms, toc_pages, generation=1)
    fields = {"parts": len(parts), "generation": 1, "mimetype": documents.PDF_MIME,
              "filename": documents.batch_forms_filename(rounds.get(job.round_id), job.category, len(noms)),
              "progress": _progress_text(0, len(parts))}
    return parts, fields


def part_args(job, noms: list, toc_pages: int, generation: int) -> list[tuple]:
    """(job id, index, ids, first page, pages, total, generation) of every part: part 0 is the cover and
    a 目录 of `toc_pages` pages (its ids: every form, for the numbers), then the runs of forms."""
    from app.reports import documents

    runs = _runs(noms, per_part())
    pages = [sum(documents.predicted_form_pages(n) for n in run) for run in runs]
    front = 1 + toc_pages
    total = front + sum(pages)
    args = [(job.id, 0, [n.id for n in noms], 1, front, total, generation)]
    first = front + 1
    for index, (run, n_pages) in enumerate(zip(runs, pages, strict=True), start=1):
        args.append((job.id, index, [n.id for n in run], first, n_pages, total, generation))
        first += n_pages
    return args


def _runs(noms: list, size: int) -> list[list]:
    """Runs of `size` forms in the batch's order; in a batch of four runs or more the last two are cut in
    half. The queue hands the runs out in order, so the consumers then finish within half a run of each
    other instead of one waiting out a whole last run while the other idles."""
    runs = [noms[i:i + size] for i in range(0, len(noms), size)]
    if len(runs) >= 4:
        runs[-2:] = [half for run in runs[-2:] for half in (run[:(len(run) + 1) // 2], run[(len(run) + 1) // 2:])
                     if half]
    return runs


def _progress_text(done: int, parts: int) -> str:
    return f"已完成 {done}/{parts} 部分（分 {parts - 1} 段并行排版）"


def progress(folder: str, job) -> str:
    return _progress_text(written_parts(folder, job), job.parts)


# ----------------------------------------------------------------------------- rendering the parts


def form_pages(noms: list, front: int) -> tuple[dict[int, int], int]:
    """Each form's first page when the forms follow `front` pages (the cover and 目录), and the page
    after the last form."""
    from app.reports import documents

    numbers, page = {}, front + 1
    for n in noms:
        numbers[n.id] = page
        page += documents.predicted_form_pages(n)
    return numbers, page


def render_cover(job, ids: list[int], front: int, total: int) -> tuple[bytes, int]:
    """Part 0: the cover and the 目录 of the forms `ids`, the forms starting on page `front` + 1."""
    from app.reports import documents, queries

    numbers, _ = form_pages(queries.approved_nominations(job.round_id, job.category, only=ids), front)
    doc, pages = documents.batch_forms_part_source(job.round_id, job.category, ids=[], toc_numbers=numbers,
                                                   page_total=total).render_counted()
    return doc.content, pages


def render_part(job, ids: list[int], first: int, total: int) -> tuple[bytes, int]:
    """One run of forms, numbered from `first` out of `total`: the PDF and its page count."""
    from app.reports import documents

    doc, pages = documents.batch_forms_part_source(job.round_id, job.category, ids=ids, cover=False,
                                                   page_first=first, page_total=total).render_counted()
    return doc.content, pages


def merged(folder: str, job) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for index in range(job.parts):
        writer.append(part_path(folder, job, index))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# ----------------------------------------------------------------------------- the 目录's length
#
# The 目录 is one table (templates/pdf/batch_forms.html): rows never split (pdf.css), the header repeats on
# every page, the last row never stands alone. Its pages follow from each row's height, which is its
# tallest cell's lines times that cell's line height plus the row's padding and borders. A sample 目录
# laid out by WeasyPrint gives the geometry (where the rows start on the first and the following pages,
# where a page ends, each column's width, text style and line height); each real cell's lines come from
# WeasyPrint's own line breaking with that cell's style and width. Same numbers as the real layout, so
# the prediction is exact; if WeasyPrint's internals move, the fallback guess only makes part 0 re-plan.


def _entry(n: int, title: str, nominator: str) -> SimpleNamespace:
    return SimpleNamespace(id=n, title=title, nominator=SimpleNamespace(name=nominator))


# One-line rows (the first of which is measured) running onto a second page, whose first row gives
# where rows start after the repeated header.
_SAMPLE = [_entry(n, "甲", "乙") for n in range(1, 40)]
_COLLAPSIBLE = re.compile(r"[ \t\n\r\f]+")


@dataclass
class _Geometry:
    first_top: float  # top of the first row on the 目录's first page
    next_top: float  # … on the following pages, under the repeated header
    bottom: float  # a row fits on a page if its bottom is not below this
    base: float  # a row's height minus its tallest cell's lines
    columns: list  # per column: (text style, content width, line height)


def predicted_toc_pages(job, noms: list) -> int:
    from app.reports import documents, pdf

    guess = max(1, -(-len(noms) // 28))
    numbers, page = form_pages(noms, 1 + guess)
    sample = {e.id: page for e in _SAMPLE}  # as wide as the widest real number
    html = documents.batch_toc_sample_html(job.round_id, job.category, _SAMPLE, sample, page)
    try:
        with pdf.laid_out(html, xhtml=True) as document:
            geometry = _measure(document)
            rows = [(str(i), n.title, n.nominator.name, str(numbers[n.id])) for i, n in enumerate(noms, start=1)]
            lines = [_column_lines([row[c] for row in rows], *geometry.columns[c][:2]) for c in range(4)]
            heights = [geometry.base + max(n * geometry.columns[c][2] for c, n in enumerate(cells))
                       for cells in zip(*lines, strict=True)]
        return _paginate(heights, geometry)
    except Exception:  # noqa: BLE001 — a prediction only: part 0 checks it and re-plans if it is wrong
        log.warning("batch %s: could not predict the 目录's length; guessing %d pages", job.id, guess,
                    exc_info=True)
        return guess


def _toc_rows(page_box) -> list:
    from weasyprint.formatting_structure import boxes

    rows = []
    for table in page_box.descendants():
        if isinstance(table, boxes.TableBox) and "toc-table" in (table.element.get("class") or "").split():
            for group in table.children:
                if isinstance(group, boxes.TableRowGroupBox) and not group.is_header and not group.is_footer:
                    rows += [row for row in group.children if isinstance(row, boxes.TableRowBox)]
    return rows


def _measure(document) -> _Geometry:
    from weasyprint.formatting_structure import boxes

    pages = [p._page_box for p in document.pages if _toc_rows(p._page_box)]
    first, following = pages[0], pages[1]
    row = _toc_rows(first)[0]
    columns = []
    for cell in row.children:
        text = next(b for b in cell.descendants() if isinstance(b, boxes.TextBox))
        line = next(b for b in cell.descendants() if isinstance(b, boxes.LineBox))
        columns.append((text.style, cell.width, line.height))
    return _Geometry(first_top=row.position_y, next_top=_toc_rows(following)[0].position_y,
                     bottom=first.content_box_y() + first.height,
                     base=row.height - max(c[2] for c in columns), columns=columns)


def _column_lines(texts: list[str], style, width: float) -> list[int]:
    """Lines of each cell of a column. A column of numbers (序号, 页码) is one line a cell when its widest
    possible number is; a nominator heads many rows: each distinct text is broken once."""
    if all(t.isdigit() for t in texts) and _lines("8" * max(map(len, texts)), style, width) == 1:
        return [1] * len(texts)
    known: dict[str, int] = {}
    return [known[t] if t in known else known.setdefault(t, _lines(t, style, width)) for t in texts]


def _lines(text: str, style, width: float) -> int:
    from weasyprint.text.line_break import split_first_line

    text = _COLLAPSIBLE.sub(" ", text).strip(" ")
    lines = 1
    while text and lines < 1000:
        resume = split_first_line(text, style, None, width, 0)[2]
        if not resume:  # None: the rest fits; 0 would never end
            break
        text = text.encode()[resume:].decode().lstrip(" ")
        lines += 1 if text else 0
    return lines


def _paginate(heights: list[float], geometry: _Geometry) -> int:
    """WeasyPrint's table pagination (layout/table.py) for rows of these heights."""
    pages, y, on_page = 1, geometry.first_top, 0
    limit = geometry.bottom * (1 + 1e-9)  # WeasyPrint's own tolerance (LayoutContext.overflows)
    last = len(heights) - 1
    for i, height in enumerate(heights):
        if on_page and y + height > limit:
            pages += 1
            if i == last and on_page > 1:  # the last row never alone: the one before goes with it
                y, on_page = geometry.next_top + heights[i - 1], 1
            else:
                y, on_page = geometry.next_top, 0
        y += height
        on_page += 1
    return pages
