"""Downloads. Chair and admin get everything; a reviewer gets only their own 专家评分表. Large PDFs
are queued for the job consumer (app/jobs; the page polls the job, then links the file) and never
rendered in this process; small ones (one 推荐表, one reviewer's sheet) and the XLSX exports are
answered directly."""

from __future__ import annotations

import io

from flask import abort, redirect, request, send_file, url_for
from flask_login import current_user, login_required

from app.core.authz import staff_required
from app.core.errors import UserError
from app.core.htmx import is_partial_request, render
from app.extensions import db
from app.models import CATEGORIES, Nomination, User
from app.reports import catalog, documents, jobs, queries, spreadsheets
from app.reports.blueprint import bp
from app.rounds import phases as rounds

STAFF = ("chair", "admin")


def _send(doc: documents.Document, *, inline: bool = False):
    resp = send_file(io.BytesIO(doc.content), mimetype=doc.mimetype, as_attachment=not inline,
                     download_name=doc.filename, max_age=0)
    resp.headers["Cache-Control"] = "private, no-store"
    return resp


def _is_staff() -> bool:
    return current_user.role in STAFF


@bp.route("/")
@login_required
def index():
    if current_user.role not in (*STAFF, "reviewer"):
        abort(403)
    rnd = rounds.require_current_round()
    ctx = dict(round=rnd, kinds=catalog.KINDS, is_staff=_is_staff(), categories=CATEGORIES)
    if _is_staff():
        ctx.update(jobs=jobs.recent(), reviewers=queries.reviewers(rnd.id),
                   approved={c: queries.approved_nominations(rnd.id, c) for c in CATEGORIES})
    return render("reports/index.html", "jobs_region", **ctx)


# ----------------------------------------------------------------------------- jobs (staff)


@bp.post("/jobs")
@staff_required
def submit_job():
    rnd = rounds.require_current_round()
    kind, fmt = request.form.get("kind", ""), request.form.get("format", "pdf")
    category = request.form.get("category") or None
    catalog.check(kind, fmt, category)
    job = jobs.submit(kind, fmt, rnd.id, category, label=catalog.label(kind, fmt, category), user=current_user)
    if is_partial_request():
        return render("reports/index.html", "jobs_region", round=rnd, jobs=jobs.recent(), is_staff=True)
    return redirect(url_for(".job", job_id=job.id), code=303)


@bp.get("/jobs/<job_id>")
@staff_required
def job(job_id: str):
    found = jobs.get(job_id)
    if found is None:
        abort(404)
    return render("reports/job.html", "job", job=found)


@bp.get("/jobs/<job_id>/download")
@staff_required
def job_download(job_id: str):
    found = jobs.get(job_id)
    if found is None or found.status != "done":
        abort(404)
    try:
        with open(jobs.output_path(found), "rb") as fh:
            content = fh.read()
    except OSError:
        abort(404)
    return _send(documents.Document(content, found.filename, found.mimetype))


# ----------------------------------------------------------------------------- direct downloads (staff)


@bp.get("/xlsx/ranking/<any(unit, activity):category>.xlsx")
@staff_required
def ranking_xlsx(category: str):
    rnd = rounds.require_current_round()
    drafts = request.args.get("drafts") == "1"
    return _send(spreadsheets.ranking_xlsx(rnd.id, category, include_drafts=drafts))


@bp.get("/xlsx/list.xlsx")
@bp.get("/xlsx/list/<any(unit, activity):category>.xlsx")
@staff_required
def list_xlsx(category: str | None = None):
    rnd = rounds.require_current_round()
    return _send(spreadsheets.approved_list_xlsx(rnd.id, category))


@bp.get("/forms/<int:nomination_id>.pdf")
@staff_required
def form_pdf(nomination_id: int):
    nom = db.session.get(Nomination, nomination_id)
    if nom is None or nom.status == "draft":  # a 推荐单位's draft is its own until submitted
        abort(404)
    return _send(documents.nomination_form_pdf(nom.id), inline=request.args.get("inline") == "1")


# ----------------------------------------------------------------------------- 专家评分表


@bp.get("/sheets/mine/<any(unit, activity):category>.pdf")
@login_required
def my_sheet(category: str):
    if current_user.role != "reviewer":
        abort(403)
    return _sheet(current_user.id, category)


@bp.get("/sheets/<int:reviewer_id>/<any(unit, activity):category>.pdf")
@login_required
def reviewer_sheet(reviewer_id: int, category: str):
    # Staff read any reviewer's sheet; a reviewer only their own (403, not 404: the URL is guessable).
    if not (_is_staff() or (current_user.role == "reviewer" and current_user.id == reviewer_id)):
        abort(403)
    return _sheet(reviewer_id, category)


def _sheet(reviewer_id: int, category: str):
    reviewer = db.session.get(User, reviewer_id)
    if reviewer is None or reviewer.role != "reviewer":
        raise UserError("找不到该评审专家。", status=404)
    rnd = rounds.require_current_round()
    return _send(documents.reviewer_sheets_pdf(rnd.id, category, [reviewer.id]))
