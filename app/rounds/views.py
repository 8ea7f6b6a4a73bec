"""The admin area: the round dashboard with phase control; the other pages live in sibling modules.
Views parse, authorize, call one service, render; every form is a plain POST answered with 303."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_login import current_user

from app.audit import queries as audit_log
from app.core.authz import admin_required
from app.core.errors import UserError
from app.core.htmx import render
from app.models import PHASE_LABELS
from app.review import assignments
from app.rounds import phases as rounds
from app.rounds import settings as round_settings
from app.rounds.blueprint import bp


def _dashboard(status: int = 200, errors: dict | None = None, message: str = "", form: dict | None = None):
    rnd = rounds.current_round()
    ctx = {"round": rnd, "errors": errors or {}, "message": message, "form": form or {},
           "recent": audit_log.recent(8)}
    if rnd is not None:
        ctx.update(stats=round_settings.overview(rnd.id), moves=round_settings.phase_moves(rnd),
                   coverage=assignments.summary(rnd.id),
                   blocking_now=round_settings.live_blocking_problems(rnd) if rnd.phase in ("setup", "collecting")
                   else None)
    return render("rounds/index.html", "admin", status=status, **ctx)


@bp.route("/")
@admin_required
def index():
    return _dashboard()


@bp.route("/phase", methods=["POST"])
@admin_required
def phase():
    rnd = rounds.require_current_round()
    target = request.form.get("target", "")
    reason = request.form.get("reason", "")
    try:
        round_settings.move_phase(rnd.id, target, reason=reason, actor=current_user)
    except UserError as e:
        return _dashboard(e.status, e.field_errors, e.message, {"reason": reason[:500]})
    flash(f"评选批次已进入「{PHASE_LABELS[target]}」阶段。", "success")
    return redirect(url_for(".index"), 303)


@bp.route("/rounds", methods=["POST"])
@admin_required
def create_round():
    try:
        rnd = round_settings.create_round(request.form.get("year", ""), request.form.get("name", ""),
                                          actor=current_user)
    except UserError as e:
        return _dashboard(e.status, e.field_errors, e.message, request.form.to_dict())
    flash(f"已建立 {rnd.year} 年评选批次。", "success")
    return redirect(url_for(".settings"), 303)


from app.review import assignment_views  # noqa: E402,F401
