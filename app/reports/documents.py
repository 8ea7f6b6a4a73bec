"""The PDF documents: each builder gathers its data (a few queries), renders one template through
app.reports.pdf (safe fetcher, shared fonts) and returns a Document. `*_html` variants return the HTML and
its extra files so a benchmark can time WeasyPrint alone on exactly the same input."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import threading
from dataclasses import dataclass

from flask import render_template
from PIL import Image
from sqlalchemy import select

from app.core import storage
from app.core.errors import UserError
from app.core.time import beijing, fmt_minute, utcnow
from app.deliberation import operations as decisions
from app.extensions import db
from app.models import CATEGORIES, CATEGORY_LABELS, METHOD_LABELS, Nomination, Round, User
from app.reports import queries
from app.reports.pdf import render_pdf, render_pdf_counted
from app.rounds import phases as rounds

log = logging.getLogger(__name__)

PDF_MIME = "application/pdf"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SEAL_NAME = "seal.png"
SEAL_SRC = "kepu-file:" + SEAL_NAME
CHINESE_NUMBERS = ["一", "二", "三", "四", "五", "六", "七", "八", "九", "十"]
_UNSAFE_FILENAME = re.compile(r'[\\/:*?"<>|\x00-\x1f]+')
# Whitespace between two tags that holds a newline is the templates' indentation: the 推荐表 templates
# keep every space that shows on one line (templates/pdf/_nomination_form.html). WeasyPrint would build
# a box for each run and then drop it — thousands in a batch.
_INDENTATION = re.compile(r">\s*\n\s*<")


@dataclass
class Document:
    content: bytes
    filename: str
    mimetype: str


@dataclass
class Source:
    """A document before rendering: the HTML and the files it references as kepu-file:NAME."""

    html: str
    extra_files: dict[str, bytes]
    filename: str
    xhtml: bool = False  # the template is written as XML (app/reports/pdf.py may parse it with expat)

    def render(self) -> Document:
        return Document(render_pdf(self.html, extra_files=self.extra_files, xhtml=self.xhtml), self.filename,
                        PDF_MIME)

    def render_counted(self) -> tuple[Document, int]:
        """The document and its number of pages."""
        content, pages = render_pdf_counted(self.html, extra_files=self.extra_files, xhtml=self.xhtml)
        return Document(content, self.filename, PDF_MIME), pages


def _tight(html: str) -> str:
    return _INDENTATION.sub("><", html)


def safe_filename(name: str) -> str:
    return _UNSAFE_FILENAME.sub("_", name).strip(" .") or "document"


def check_category(category: str) -> str:
    if category not in CATEGORIES:
        raise UserError("未知类别，应为 unit（优秀组织单位）或 activity（优秀活动）。", status=404)
    return category


def _prefix(rnd: Round, category: str) -> str:
    return f"{rnd.year}年全国科普日{CATEGORY_LABELS[category]}"


def _provisional(rnd: Round) -> str:
    return {"final": "", "publicizing": "（公示稿）"}.get(rnd.phase, "（讨论稿）")


def _draft_mark(rnd: Round) -> str:
    """In the file name: a list or batch made during 公示 says so, so it is never taken for the 定稿
    (the final file keeps the plain name the office publishes)."""
    return "（公示稿）" if rnd.phase == "publicizing" else ""


# How wide pdf.css draws the seal: on a 推荐表 (.form-seal img.seal) and under a list (.seal-box img.seal).
SEAL_FORM_MM = 36
SEAL_LIST_MM = 42
_PDF_DPI = 300  # app/reports/pdf.py's "dpi" option
_seal_cache: dict[tuple[str, int], bytes] = {}
_seal_lock = threading.Lock()


def _seal(rnd: Round, mm: int = SEAL_FORM_MM) -> tuple[dict[str, bytes], str | None]:
    data = decisions.seal_bytes(rnd)
    return ({SEAL_NAME: _seal_at(data, mm)}, SEAL_SRC) if data else ({}, None)


def _seal_at(data: bytes, mm: int) -> bytes:
    """The seal PNG scaled as WeasyPrint would scale it to draw it `mm` wide at the PDF's 300 dpi (same
    pixels, same PDF): done once per process instead of in every document — with optimize_images that
    step re-encodes the PNG twice, a tenth of a batch part's time. Anything Pillow cannot read goes
    through unchanged (WeasyPrint then reports it as before)."""
    key = (hashlib.sha256(data).hexdigest(), mm)
    with _seal_lock:
        ready = _seal_cache.get(key)
    if ready is not None:
        return ready
    try:
        image = Image.open(io.BytesIO(data))
        inches = mm / 25.4  # pdf.css sets the seal's width and height to the same length
        dpi = max(image.width / inches, image.height / inches)
        if dpi <= _PDF_DPI or image.format != "PNG":
            return data
        ratio = _PDF_DPI / dpi
        image.thumbnail((max(1, round(image.width * ratio)), max(1, round(image.height * ratio))))
        out = io.BytesIO()
        image.save(out, format="PNG")
        ready = out.getvalue()
    except (OSError, ValueError, Image.DecompressionBombError):
        return data
    with _seal_lock:
        if len(_seal_cache) > 16:
            _seal_cache.clear()
        _seal_cache[key] = ready
    return ready


def _photo_pages(noms, *, thumbnails: bool) -> tuple[dict[int, list[str]], dict[str, bytes]]:
    """The photos of each nomination as kepu-file: sources, and their bytes for the safe fetcher.

    A batch uses the stored thumbnails so a few dozen forms stay a few MB; a single form uses the full
    image (WeasyPrint caps it at 300 dpi). A file missing from disk is left out, not fatal."""
    srcs: dict[int, list[str]] = {}
    files: dict[str, bytes] = {}
    for nom in noms:
        srcs[nom.id] = []
        for photo in nom.photos:
            stored = (photo.thumb_name if thumbnails else None) or photo.stored_name
            name = f"photo-{photo.id}{os.path.splitext(stored)[1] or '.jpg'}"
            try:
                with open(storage.path_of(stored), "rb") as fh:
                    files[name] = fh.read()
            except (OSError, ValueError):
                log.warning("photo %s of nomination %s is missing from the upload folder", photo.id, nom.id)
                continue
            srcs[nom.id].append("kepu-file:" + name)
    return srcs, files


def _now() -> str:
    return fmt_minute(utcnow())


# ----------------------------------------------------------------------------- 1. public list


def public_list_source(round_id: int, category: str) -> Source:
    rnd, category = rounds.get(round_id), check_category(category)
    title = f"{_prefix(rnd, category)}名单"
    final = rnd.phase == "final"
    extra, seal_src = _seal(rnd, SEAL_LIST_MM) if final else ({}, None)
    html = render_template(
        "pdf/public_list.html", title=title, category=category, category_label=CATEGORY_LABELS[category],
        groups=queries.approved_groups(rnd.id, category), unordered=rnd.list_unordered,
        provisional=_provisional(rnd), chinese_numbers=CHINESE_NUMBERS,
        approval_date=rnd.approval_date if final else None, seal_src=seal_src,
    )
    return Source(html, extra, safe_filename(title + _draft_mark(rnd) + ".pdf"))


# ----------------------------------------------------------------------------- 2. result report


def result_report_source(round_id: int, category: str) -> Source:
    rnd, category = rounds.get(round_id), check_category(category)
    rows = decisions.standings(rnd, category)
    unranked = [s.nomination_id for s in rows if s.row is None]
    titles = dict(db.session.execute(select(Nomination.id, Nomination.title).where(Nomination.id.in_(unranked)))
                  .all()) if unranked else {}
    title = f"{_prefix(rnd, category)}评审结果报告"
    from app.stats import report as stats_report  # robustness and agreement

    html = render_template(
        "pdf/result_report.html", title=title, category=category, category_label=CATEGORY_LABELS[category],
        rows=rows, titles=titles, criteria=queries.criteria(rnd.id, category), slots=rnd.slots(category),
        method_label=METHOD_LABELS[rnd.method], reviewer_count=queries.reviewer_count(rnd.id, category),
        approved=sum(1 for s in rows if s.outcome == "approve"), outcome_labels=decisions.OUTCOME_LABELS,
        generated_at=_now(), robust=stats_report.for_document(rnd.id, category),
    )
    return Source(html, {}, safe_filename(title + ".pdf"))


# ----------------------------------------------------------------------------- 3./4. 推荐表


def nomination_form_source(nomination_id: int, *, blank_opinion: bool = False) -> Source:
    """One 推荐表. blank_opinion: the 推荐单位's copy to print and stamp — its 审定意见 cell stays empty
    whatever has been decided (a unit never sees a decision before it is published)."""
    nom = queries.nomination(nomination_id)
    rnd = rounds.get(nom.round_id)
    extra, seal_src = _seal(rnd)
    photo_srcs, photo_files = _photo_pages([nom], thumbnails=False)
    decision = None if blank_opinion else decisions.decision_of(nom.id)
    html = _tight(render_template(
        "pdf/nomination_form.html", title=f"{_prefix(rnd, nom.category)}推荐表", nom=nom, rnd=rnd,
        decision=decision, seal_src=seal_src if _stamped(rnd, decision) else None,
        approval_date=rnd.approval_date if decision else None, photo_srcs=photo_srcs[nom.id],
    ))
    name = f"{CATEGORY_LABELS[nom.category]}推荐表-{nom.id}-{nom.title[:40]}.pdf"
    return Source(html, extra | photo_files, safe_filename(name), xhtml=True)


def _stamped(rnd: Round, decision) -> bool:
    """The seal goes on a form only once its 审定意见 is official: an approval in a final round."""
    return rnd.phase == "final" and decision is not None and decision.outcome == "approve"


def batch_forms_source(round_id: int, category: str) -> Source:
    return batch_forms_part_source(round_id, category)


def predicted_form_pages(nom) -> int:
    """Pages one form takes in a batch: the form is one A4 page by design (the fit classes), and a
    活动照片 page follows it when there are photos or a video (five photos fit on it). A split batch
    checks each part against this and falls back to one render when a part differs."""
    return 1 + (1 if (nom.photos or nom.video) else 0)


def batch_forms_part_source(round_id: int, category: str, *, ids: list[int] | None = None, cover: bool = True,
                            toc_numbers: dict[int, int] | None = None, page_first: int | None = None,
                            page_total: int | None = None) -> Source:
    """The batch of approved 推荐表, whole (no arguments) or one part of it (app/reports/batch.py): the
    cover and 目录 with the page numbers given (ids=[]), or the forms `ids` without the cover."""
    rnd, category = rounds.get(round_id), check_category(category)
    if cover:
        noms = queries.approved_nominations(rnd.id, category)
        shown = noms if ids is None else [n for n in noms if n.id in set(ids)]
    else:  # a run of forms: only its own nominations (still in the batch's order), not all of them
        noms = shown = queries.approved_nominations(rnd.id, category, only=ids)
    extra, seal_src = _seal(rnd)
    photo_srcs, photo_files = _photo_pages(shown, thumbnails=True)
    html = _batch_html(rnd, category, noms, shown, cover=cover, toc_numbers=toc_numbers, page_first=page_first,
                       page_total=page_total, photo_srcs=photo_srcs, seal_src=seal_src)
    return Source(html, extra | photo_files, batch_forms_filename(rnd, category, len(noms)), xhtml=True)


def batch_forms_filename(rnd: Round, category: str, count: int) -> str:
    return safe_filename(f"{_prefix(rnd, category)}推荐表（审定通过，共{count}份）{_draft_mark(rnd)}.pdf")


def batch_toc_sample_html(round_id: int, category: str, entries: list, toc_numbers: dict[int, int],
                          page_total: int) -> str:
    """The cover and 目录 of a batch listing `entries` (objects with id, title and nominator.name) instead
    of the approved nominations: app/reports/batch.py measures the 目录's rows on a sample."""
    rnd, category = rounds.get(round_id), check_category(category)
    return _batch_html(rnd, category, entries, [], cover=True, toc_numbers=toc_numbers, page_first=None,
                       page_total=page_total, photo_srcs={}, seal_src=None)


def _batch_html(rnd: Round, category: str, noms, shown, *, cover, toc_numbers, page_first, page_total, photo_srcs,
                seal_src) -> str:
    made = beijing(utcnow())
    return _tight(render_template(
        "pdf/batch_forms.html", title=f"{_prefix(rnd, category)}推荐表", category=category,
        category_label=CATEGORY_LABELS[category], nominations=noms, forms=shown, cover=cover,
        toc_numbers=toc_numbers, page_first=page_first, page_total=page_total, rnd=rnd,
        decisions=queries.decisions_for([n.id for n in shown]),
        seal_src=seal_src if rnd.phase == "final" else None, approval_date=rnd.approval_date,
        photo_srcs=photo_srcs, provisional=_provisional(rnd), generated_date=made.date(),
        generated_time=made.strftime("%H:%M"),
    ))


# ----------------------------------------------------------------------------- 5. 专家评分表


def reviewer_sheets_source(round_id: int, category: str, reviewer_ids: list[int] | None = None) -> Source:
    """One reviewer's 专家评分表 (reviewer_ids=[id]) or every reviewer's, one section each."""
    rnd, category = rounds.get(round_id), check_category(category)
    if reviewer_ids is None:
        people = queries.reviewers(rnd.id, category)
    else:
        people = list(db.session.scalars(select(User).where(User.id.in_(reviewer_ids)).order_by(User.username)))
        if len(people) != len(set(reviewer_ids)) or any(p.role != "reviewer" for p in people):
            raise UserError("找不到该评审专家。", status=404)
    sheets = [queries.reviewer_sheet(rnd, person, category) for person in people]
    title = f"{_prefix(rnd, category)}专家评分表"
    html = render_template("pdf/reviewer_sheet.html", title=title, sheets=sheets)
    who = people[0].display_name if len(people) == 1 else "全部专家"
    return Source(html, {}, safe_filename(f"{title}-{who}.pdf"))


# ----------------------------------------------------------------------------- entry points


def public_list_pdf(round_id: int, category: str) -> Document:
    return public_list_source(round_id, category).render()


def result_report_pdf(round_id: int, category: str) -> Document:
    return result_report_source(round_id, category).render()


def nomination_form_pdf(nomination_id: int, *, blank_opinion: bool = False) -> Document:
    return nomination_form_source(nomination_id, blank_opinion=blank_opinion).render()


def batch_forms_pdf(round_id: int, category: str) -> Document:
    return batch_forms_source(round_id, category).render()


def reviewer_sheets_pdf(round_id: int, category: str, reviewer_ids: list[int] | None = None) -> Document:
    return reviewer_sheets_source(round_id, category, reviewer_ids).render()
