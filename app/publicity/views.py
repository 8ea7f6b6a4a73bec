"""The public 公示 pages — no sign-in: the list of a round that reached 公示 (the final list once it is
定稿), its PDF, and the objection form. Any other round answers 404, like any unknown page.

The list pages carry nothing personal and nothing per visitor (no session, no CSRF token: they do not
extend base.html), so they are cacheable by anyone: an ETag of the body and a short public max-age.
The objection form carries a CSRF token and is never cached."""

from __future__ import annotations

import hashlib

from flask import current_app, flash, make_response, redirect, render_template, request, send_file, url_for

from app.core.errors import UserError
from app.publicity import documents, forms, queries, throttle
from app.publicity import operations as publicity
from app.publicity.blueprint import bp
from app.reports import catalog, jobs

PUBLIC_MAX_AGE = 60
# How long the public PDF's request waits for a consumer to render it before answering "正在生成": the
# file is the 公示名单 of the downloads page, rendered once by the queue and kept in the document store.
PUBLIC_PDF_WAIT_SECONDS = 20.0
# The objection form's request carries one attachment and the text: anything bigger is refused (the
# app-wide MAX_CONTENT_LENGTH is sized for videos).
OBJECTION_REQUEST_MAX = publicity.ATTACHMENT_MAX_BYTES + 256 * 1024


def _cache_control(resp, max_age: int = PUBLIC_MAX_AGE):
    """Public for a visitor without a session; a signed-in visitor's response may carry a refreshed
    session cookie, which a shared cache must never keep and hand to someone else."""
    has_session = current_app.config.get("SESSION_COOKIE_NAME", "session") in request.cookies
    resp.headers["Cache-Control"] = f"{'private' if has_session else 'public'}, max-age={max_age}"
    resp.vary.add("Cookie")
    return resp.make_conditional(request)


def _cacheable(body: str, max_age: int = PUBLIC_MAX_AGE):
    resp = make_response(body)
    resp.set_etag(hashlib.sha256(body.encode()).hexdigest()[:32])
    return _cache_control(resp, max_age)


@bp.get("/gongshi/")
def index():
    return _cacheable(render_template("publicity/index.html", rounds=queries.public_rounds()))


@bp.get("/gongshi/<int:year>")
def page(year: int):
    rnd = queries.public_round(year)
    pg = queries.page(rnd)
    return _cacheable(render_template("publicity/public.html", pg=pg, rnd=rnd, state=pg.period.state(publicity.today()),
                                      title=documents.publicity_title(rnd)))


@bp.get("/gongshi/<int:year>/gongshi.pdf")
def pdf(year: int):
    rnd = queries.public_round(year)
    stored = jobs.stored_document("publicity", "pdf", rnd.id, None, timeout=PUBLIC_PDF_WAIT_SECONDS,
                                  label=catalog.label("publicity", "pdf", None) + "（公示页面）")
    if stored is None:
        resp = make_response(render_template("publicity/pdf_pending.html", rnd=rnd, year=year), 503)
        resp.headers["Retry-After"] = "10"
        resp.headers["Cache-Control"] = "no-store"
        return resp
    resp = send_file(stored["path"], mimetype="application/pdf", download_name=stored["filename"],
                     as_attachment=False, max_age=PUBLIC_MAX_AGE, conditional=False, etag=False)
    resp.set_etag(stored["etag"])
    return _cache_control(resp)


def _objection_page(rnd, form, *, status: int = 200, message: str = ""):
    pg = queries.page(rnd)
    resp = make_response(render_template(
        "publicity/objection.html", rnd=rnd, pg=pg, form=form, message=message,
        state=pg.period.state(publicity.today()), choices=queries.listed_choices(pg)), status)
    resp.headers["Cache-Control"] = "private, no-store"
    return resp


@bp.route("/gongshi/<int:year>/objection", methods=["GET", "POST"])
def objection(year: int):
    rnd = queries.public_round(year)
    if request.method == "POST" and (request.content_length or 0) > OBJECTION_REQUEST_MAX:
        raise UserError("提交的内容过大：附件不能超过 10 MB。", status=413)
    form = forms.ObjectionForm()
    if request.method != "POST":
        return _objection_page(rnd, form)
    if not form.validate_on_submit():
        errors = form.first_errors()
        status = 400 if "csrf_token" in errors else 422
        return _objection_page(rnd, form, status=status, message=form.page_message())
    refusal = throttle.reserve()
    if refusal:
        return _objection_page(rnd, form, status=429, message=refusal)
    attachment = form.read_attachment()
    try:
        obj = publicity.file_objection(
            rnd.id, form.nomination_id.number, name=form.name.data, unit=form.unit.data or "",
            phone=form.phone.data, email=form.email.data or "", facts=form.facts.data,
            upload=publicity.Upload(*attachment) if attachment else None, address=request.remote_addr)
    except UserError as e:
        throttle.refund()
        form.add_errors(e.field_errors)
        return _objection_page(rnd, form, status=e.status if e.status != 404 else 422, message=e.message)
    flash(f"已收到您的异议（编号 {obj.id}）。我们将在核实后通过您留下的联系方式与您联系。", "success")
    return redirect(url_for(".objection", year=rnd.year), 303)
