"""The reviewer's workspace: queue → nomination page with the score panel.

The score panel is one form. With htmx it autosaves into its status region (#sheet-status), which
carries the sheet's version; a 409 or a submit replaces the whole panel. Without JavaScript the same
form posts and is answered with a 303 back to the page, or the page again with 422/409.
"""

from __future__ import annotations

from flask import abort, flash, make_response, redirect, request, url_for
from flask_login import current_user, login_required

from app.core import htmx
from app.core.authz import admin_required, reviewer_required
from app.core.errors import UserError
from app.core.params import parse_id
from app.extensions import db
from app.models import CATEGORIES, Nomination, ReviewSheet, Round
from app.review import forms, recusals, scoring
from app.review import panel as panels
from app.review import queue as review_queue
from app.review.blueprint import bp
from app.rounds import phases as rounds

PAGE = "review/nomination.html"


# --- queue ---------------------------------------------------------------------------------------

@bp.route("/review/")
@reviewer_required
def queue():
    rnd = rounds.current_round()
    filters = {
        "category": request.args.get("category") if request.args.get("category") in CATEGORIES else "",
        "nominator": parse_id(request.args.get("nominator")) or "",
        "state": request.args.get("state") if request.args.get("state") in review_queue.STATES else "",
    }
    ctx = {"rnd": rnd, "filters": filters, "states": review_queue.STATES}
    if rnd is not None:
        ctx.update(
            items=review_queue.queue(current_user, rnd.id, category=filters["category"] or None,
                                     nominator_id=filters["nominator"] or None, state=filters["state"] or None),
            progress=review_queue.progress(current_user, rnd.id),
            nominators=review_queue.nominator_options(current_user, rnd.id),
            resume_id=review_queue.first_unsubmitted(current_user, rnd.id),
        )
    return htmx.render("review/queue.html", "queue_results", **ctx)


# --- nomination page -----------------------------------------------------------------------------

def _nomination_or_404(nomination_id: int) -> Nomination:
    nomination = db.session.get(Nomination, nomination_id)
    if nomination is None:
        abort(404)
    return nomination


def _authorize(nomination: Nomination) -> None:
    reason = review_queue.denial(current_user, nomination)
    if reason is not None:
        raise UserError(review_queue.DENIED_MESSAGES[reason], status=403)


def _page(nomination: Nomination, *, panel: panels.Panel | None = None, status: int = 200, **extra):
    rnd = db.session.get(Round, nomination.round_id)
    ctx = {"nomination": nomination, "nomination_id": nomination.id, "rnd": rnd, "panel": panel, "nav": None, "sheets": None,
           "recusal_errors": {}, "recusal_reason": "", "reopen_errors": {},
           "recusal_max": forms.RECUSAL_LIMITS["reason"], "reopen_max": forms.REOPEN_LIMITS["reason"], **extra}
    if current_user.role == "reviewer":
        if panel is None:
            tgt = scoring.target(nomination.id)
            ctx["panel"] = panels.from_stored(tgt, scoring.sheet_state(current_user.id, nomination.id), rnd.phase)
        ctx["nav"] = review_queue.navigation(current_user, rnd.id, nomination.id)
    else:
        ctx["sheets"] = scoring.sheets_overview(nomination.id)
    return htmx.render(PAGE, "content", status=status, **ctx)


@bp.route("/review/nominations/<int:nomination_id>")
@login_required
def nomination(nomination_id: int):
    nomination = _nomination_or_404(nomination_id)
    _authorize(nomination)
    return _page(nomination)


# --- the score panel -----------------------------------------------------------------------------

def _panel_response(block: str, panel: panels.Panel, nomination_id: int, status: int = 200):
    """A fragment for htmx (the status region or the whole panel), the full page otherwise."""
    if htmx.is_partial_request():
        resp = htmx.render(PAGE, block, status=status, panel=panel, oob=block == "sheet_status",
                           nomination_id=nomination_id)
        if block == "score_panel":
            # The form posts into #sheet-status; a conflict or a submit replaces the whole panel.
            resp.headers["HX-Retarget"] = "#score-panel"
            resp.headers["HX-Reswap"] = "outerHTML"
        return resp
    nomination = _nomination_or_404(nomination_id)
    return _page(nomination, panel=panel, status=status)


def _redirect(url: str):
    if htmx.is_partial_request():
        resp = make_response("", 200)
        resp.headers["HX-Redirect"] = url
        return resp
    return redirect(url, 303)


@bp.route("/review/nominations/<int:nomination_id>/sheet", methods=["POST"])
@reviewer_required
def save_sheet(nomination_id: int):
    tgt = scoring.target(nomination_id)  # the rubric decides the form's fields; the save reuses the memo
    form = forms.sheet_form(tgt)
    if not form.validate_on_submit():
        return _refused_sheet(form, tgt, nomination_id)
    raw, comment, action = form.raw_scores(), form.comment.data or "", form.action_name
    try:
        state = scoring.save_sheet(current_user, nomination_id, raw, comment, form.version.data,
                                   submit=form.submit_flag)
    except scoring.SheetConflict as e:
        panel = panels.conflict(tgt, e.current, _phase(tgt.round_id), raw, comment, e.message)
        return _panel_response("score_panel", panel, nomination_id, status=409)
    except UserError as e:
        if e.status not in (409, 422):
            raise
        stored = scoring.sheet_state(current_user.id, nomination_id)
        phase = _phase(tgt.round_id) if e.status == 409 else "reviewing"
        panel = panels.from_input(tgt, stored, phase, raw, comment, errors=e.field_errors, message=e.message,
                                  tone="error")
        return _panel_response("sheet_status", panel, nomination_id, status=e.status)

    if action == "next":
        next_id = review_queue.next_unsubmitted(current_user, tgt.round_id, nomination_id)
        if next_id is None:
            flash("已保存。没有其他待评的推荐对象了；评完的评分表请记得提交。", "success")
            return _redirect(url_for("review.queue"))
        flash("已保存，已为您打开下一个待评的推荐对象。", "success")
        return _redirect(url_for("review.nomination", nomination_id=next_id))
    if not htmx.is_partial_request():
        flash("评分表已提交。" if action == "submit" else "已保存。", "success")
        return redirect(url_for("review.nomination", nomination_id=nomination_id), 303)
    if action == "submit":
        panel = panels.from_stored(tgt, state, "reviewing", message="评分表已提交。", tone="ok")
        return _panel_response("score_panel", panel, nomination_id)
    return _panel_response("sheet_status", panels.Panel(tgt, state, "reviewing", tone="ok"), nomination_id)


def _refused_sheet(form: forms.SheetForm, tgt: scoring.Target, nomination_id: int):
    """The form refused the input. A malformed request (no CSRF token, no or a bad version) is a 400;
    otherwise the reviewer's own input comes back with the messages beside the fields (422) — but only
    once the save's gate agrees they may write this sheet at all (else its 403/409), and nothing is stored."""
    errors = form.first_errors()
    if "csrf_token" in errors:
        raise UserError(form.error_message(), status=400)
    if "version" in errors:
        raise UserError(errors["version"], status=400)
    stored = scoring.check_access(current_user, nomination_id)
    field_errors = form.field_errors()
    message = f"评分未保存：有 {len(field_errors)} 处需要更正，请查看标出的项目。"
    panel = panels.from_input(tgt, stored, "reviewing", form.raw_scores(), form.comment.data or "",
                              errors=field_errors, message=message, tone="error")
    return _panel_response("sheet_status", panel, nomination_id, status=422)


def _phase(round_id: int) -> str:
    return db.session.get(Round, round_id).phase


# --- 回避 and reopening ----------------------------------------------------------------------------

@bp.route("/review/nominations/<int:nomination_id>/recusal", methods=["POST"])
@reviewer_required
def declare_recusal(nomination_id: int):
    # Authorize first: the answer to a bad reason is the nomination page itself.
    nomination = _nomination_or_404(nomination_id)
    _authorize(nomination)
    form = forms.RecusalForm()
    try:
        if not form.validate_on_submit():
            raise UserError(form.first_errors().get("reason") or form.error_message(), form.first_errors())
        recusals.declare(current_user, nomination_id, form.reason.data)
    except UserError as e:
        if not e.field_errors:
            raise
        flash(e.message, "error")
        return _page(nomination, status=e.status, recusal_errors=e.field_errors,
                     recusal_reason=(form.reason.data or "")[:recusals.REASON_MAX + 100], recusal_open=True)
    flash("已声明回避：该推荐对象已从您的评审列表中移除。", "success")
    return redirect(url_for("review.queue"), 303)


@bp.route("/review/sheets/<int:sheet_id>/reopen", methods=["POST"])
@admin_required
def reopen_sheet(sheet_id: int):
    sheet = db.session.get(ReviewSheet, sheet_id)
    if sheet is None:
        abort(404)
    nomination_id = sheet.nomination_id
    form = forms.ReopenSheetForm()
    try:
        if not form.validate_on_submit():
            raise UserError(form.first_errors().get("reason") or form.error_message(), form.first_errors())
        scoring.reopen_sheet(sheet_id, form.reason.data, current_user)
    except UserError as e:
        if not e.field_errors:
            raise
        flash(e.message, "error")
        return _page(_nomination_or_404(nomination_id), status=e.status, reopen_errors={sheet_id: e.message})
    flash("评分表已退回给专家，专家可以修改后重新提交。", "success")
    return redirect(url_for("review.nomination", nomination_id=nomination_id), 303)
