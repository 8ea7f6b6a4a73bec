"""The admin area: the round dashboard with phase control; the other pages live in sibling modules.
Views parse (rounds/forms.py), authorize, call one operation, render; every form is a plain POST
answered with 303."""

from __future__ import annotations

from flask import flash, redirect, url_for
from flask_login import current_user

from app.audit import queries as audit_log
from app.core.authz import admin_required
from app.core.errors import UserError
from app.core.htmx import render, see_other
from app.models import PHASE_LABELS
from app.review import assignments
from app.rounds import moves, preflight
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


def _preflight(rnd, target: str, status: int = 200, form: PhaseForm | None = None, message: str = ""):
    """The pre-flight page of a move into `target`, filled from `form` when it came back refused."""
    errors = form.first_errors() if form is not None else {}
    return render("rounds/preflight.html", "preflight", status=status, round=rnd,
                  pf=preflight.check(rnd, target), action=url_for(".phase"), hidden={"target": target},
                  errors=errors, reason_value=form.reason.data if form else "",
                  accept_checked=bool(form and form.accept_gaps.data), reason_max=rounds.REASON_MAX,
                  final_confirm=False, cancel_url=url_for(".index"), pf_message=message)


@bp.route("/phase/<any(deliberating):target>")
@admin_required
def phase_check(target: str):
    """What the move into 会议审定 would leave unfinished; the move itself is this page's form."""
    rnd = rounds.require_current_round()
    if moves.next_forward(rnd) != target:
        flash(f"评选批次处于「{rnd.phase_label}」阶段，不能从这里进入「{PHASE_LABELS[target]}」。", "warning")
        return redirect(url_for(".index"), 303)
    return _preflight(rnd, target)


@bp.route("/phase", methods=["POST"])
@admin_required
def phase():
    rnd = rounds.require_current_round()
    form = PhaseForm()
    checked = form.target.data in preflight.TARGETS and form.target.data == moves.next_forward(rnd)

    def refused(status: int, message: str):
        return _preflight(rnd, form.target.data, status, form, message) if checked else \
            _dashboard(status, message, phase_form=form)

    if not form.validate_on_submit():
        return refused(422, form.page_message())
    try:
        moves.admin_move(rnd.id, form.target.data, reason=form.reason.data or "",
                         accept_gaps=bool(form.accept_gaps.data), actor=current_user)
    except UserError as e:
        form.add_errors(e.field_errors)
        return refused(e.status, e.message)
    flash(f"评选批次已进入「{PHASE_LABELS[form.target.data]}」阶段。", "success")
    return see_other(url_for(".index"))


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
