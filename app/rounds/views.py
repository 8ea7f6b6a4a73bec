"""The admin area: the round dashboard with phase control; the other pages live in sibling modules.
Views parse (rounds/forms.py), authorize, call one operation, render; every form is a plain POST
answered with 303."""

from __future__ import annotations

from flask import flash, redirect, url_for
from flask_login import current_user

from app.audit import queries as audit_log
from app.core.authz import admin_required
from app.core.errors import UserError
from app.core.htmx import render
from app.models import PHASE_LABELS
from app.review import assignments
from app.rounds import moves
from app.rounds import phases as rounds
from app.rounds import settings as round_settings
from app.rounds.blueprint import bp
from app.rounds.forms import PhaseForm, RoundCreateForm


def _dashboard(status: int = 200, message: str = "", phase_form: PhaseForm | None = None,
               create_form: RoundCreateForm | None = None):
    rnd = rounds.current_round()
    ctx = {"round": rnd, "message": message, "recent": audit_log.recent(8),
           "phase_form": phase_form or PhaseForm(formdata=None),
           "create_form": create_form or RoundCreateForm(formdata=None)}
    if rnd is not None:
        ctx.update(stats=round_settings.overview(rnd.id), moves=rounds.phase_moves(rnd),
                   coverage=assignments.summary(rnd.id),
                   blocking_now=moves.live_blocking_problems(rnd) if rnd.phase in ("setup", "collecting")
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
    form = PhaseForm()
    if not form.validate_on_submit():
        return _dashboard(422, form.page_message(), phase_form=form)
    try:
        moves.admin_move(rnd.id, form.target.data, reason=form.reason.data or "", actor=current_user)
    except UserError as e:
        form.add_errors(e.field_errors)
        return _dashboard(e.status, e.message, phase_form=form)
    flash(f"评选批次已进入「{PHASE_LABELS[form.target.data]}」阶段。", "success")
    return redirect(url_for(".index"), 303)


@bp.route("/rounds", methods=["POST"])
@admin_required
def create_round():
    form = RoundCreateForm()
    if not form.validate_on_submit():
        return _dashboard(422, form.page_message(), create_form=form)
    try:
        rnd = round_settings.create_round(form.year.number, form.name.data or "", actor=current_user)
    except UserError as e:
        form.add_errors(e.field_errors)
        return _dashboard(e.status, e.message, create_form=form)
    flash(f"已建立 {rnd.year} 年评选批次。", "success")
    return redirect(url_for(".settings"), 303)


from app.review import assignment_views  # noqa: E402,F401
