"""Reviewer assignment: bulk runs, the matrix (plain form save, htmx toggles one cell), one pair's page
(remove a scored assignment with a reason, declare or withdraw a recusal)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.core.authz import admin_required
from app.core.errors import UserError
from app.core.htmx import is_partial_request, render
from app.core.params import MAX_ID, parse_int
from app.models import CATEGORY_LABELS
from app.review import assignments, forms, recusals
from app.review.blueprint import bp
from app.rounds import phases as rounds

PER_PAGE = 40


def _category(value: str | None) -> str:
    return value if value in CATEGORY_LABELS else "unit"


def _int(value, default: int = 0) -> int:
    text = str(value or "").strip()
    return parse_int(text, lo=0, hi=MAX_ID, default=default)


def _matrix(status: int = 200, errors: dict | None = None, message: str = "", form: dict | None = None):
    rnd = rounds.require_current_round()
    category = _category(request.values.get("category"))
    page = _int(request.values.get("page"), 1)
    m = assignments.matrix_page(rnd.id, category, page, PER_PAGE)
    defaults = {"mode": rnd.assignment_mode if rnd.assignment_mode in assignments.MODES else "all",
                "k": rnd.reviewers_per_nomination or 3, "cap": "", "scope": ""}
    return render("review/assignments.html", "admin", status=status, round=rnd, m=m, category=category, page=m.page,
                  editable=rnd.phase in assignments.EDITABLE_PHASES, coverage=assignments.summary(rnd.id),
                  modes=assignments.MODE_LABELS, errors=errors or {}, message=message, form=form or defaults,
                  run_max=_run_maxlength())


def _run_maxlength() -> dict[str, int]:
    # The fields' own maxlength (as many digits as their upper bound), for the hand-written inputs.
    blank = forms.AssignmentRunForm(formdata=None, meta={"csrf": False})
    return {name: blank[name].render_kw["maxlength"] for name in ("k", "cap")}


def _back(category: str | None = None, page: int | None = None):
    category = _category(category or request.values.get("category"))
    page = page or _int(request.values.get("page"), 1)
    return redirect(url_for(".assignment_matrix", category=category, page=page), 303)


def _refuse_malformed(form) -> None:
    errors = form.first_errors()
    if "csrf_token" in errors:
        raise UserError(form.error_message(), status=400)
    raise UserError(next(iter(errors.values()), "请求无效。"), status=400)


@bp.route("/admin/assignments")
@admin_required
def assignment_matrix():
    return _matrix()


@bp.route("/admin/assignments/run", methods=["POST"])
@admin_required
def assignment_run():
    rnd = rounds.require_current_round()
    form = forms.AssignmentRunForm()
    values = {name: form[name].data or "" for name in ("mode", "k", "cap", "scope")}
    if not form.validate_on_submit():
        return _matrix(422, form.first_errors(), form.message(), values)
    try:
        if form.mode.data == "all":
            result = assignments.assign_all(rnd.id, form.category, actor=current_user)
        else:
            result = assignments.assign_balanced(rnd.id, form.k.number, form.cap.number, form.category,
                                                 actor=current_user)
    except UserError as e:
        return _matrix(e.status, e.field_errors, e.message, values)
    flash(result.message(), "warning" if result.short else "success")
    return _back(form.category)


@bp.route("/admin/assignments/cell", methods=["POST"])
@admin_required
def assignment_cell():
    """One checkbox changed (htmx). The cell's new state is whether it is in the form's checked list."""
    form = forms.CellForm()
    if not form.validate_on_submit():
        _refuse_malformed(form)
    reviewer_id, nomination_id = form.pair
    assignments.set_assignment(reviewer_id, nomination_id, form.wanted, actor=current_user)
    if not is_partial_request():
        flash("已保存。", "success")
        return _back()
    info = assignments.pair_info(reviewer_id, nomination_id)
    load, count = assignments.pair_counts(reviewer_id, nomination_id)
    return render_template("review/_matrix_cell_response.html", info=info, load=load, count=count,
                           category=_category(form.category.data), page=form.page.number or 1, editable=True)


@bp.route("/admin/assignments/page", methods=["POST"])
@admin_required
def assignment_page_save():
    rnd = rounds.require_current_round()
    form = forms.MatrixPageForm()
    if not form.validate_on_submit():
        _refuse_malformed(form)
    try:
        added, removed, kept = assignments.save_matrix_page(rnd.id, form.reviewer_ids(), form.nomination_ids(),
                                                            form.checked(), actor=current_user)
    except UserError as e:
        return _matrix(e.status, e.field_errors, e.message)
    note = f"；{kept} 条已有评分的分配未取消（需在单元格页面填写理由）" if kept else ""
    flash(f"本页已保存：新增 {added} 条、取消 {removed} 条分配{note}。", "success")
    return _back()


def _pair_page(reviewer_id: int, nomination_id: int, status: int = 200, errors: dict | None = None,
               message: str = "", form: dict | None = None):
    info = assignments.pair_info(reviewer_id, nomination_id)
    rnd = rounds.require_current_round()
    return render("review/assignment_pair.html", "admin", status=status, info=info, round=rnd,
                  editable=rnd.phase in assignments.EDITABLE_PHASES, errors=errors or {}, message=message,
                  form=form or {}, category=info.nomination.category, page=_int(request.values.get("page"), 1),
                  limits=forms.PAIR_LIMITS)


@bp.route("/admin/assignments/pair")
@admin_required
def assignment_pair():
    return _pair_page(_int(request.args.get("reviewer")), _int(request.args.get("nomination")))


_PAIR_DONE = {"assign": "已分配。", "unassign": "已取消分配（评分记录保留）。", "recuse": "已登记回避。",
              "unrecuse": "已撤销回避登记。"}


@bp.route("/admin/assignments/pair", methods=["POST"])
@admin_required
def assignment_pair_save():
    form = forms.PairForm()
    valid = form.validate_on_submit()
    if not valid and form.malformed():
        _refuse_malformed(form)
    reviewer_id, nomination_id, action = form.reviewer.number, form.nomination.number, form.action.data
    typed = {"reason": form.reason.data or "", "recusal_reason": form.recusal_reason.data or ""}
    try:
        if not valid:
            errors = form.first_errors()
            raise UserError(next(iter(errors.values())), errors)
        if action in ("assign", "unassign"):
            assignments.set_assignment(reviewer_id, nomination_id, action == "assign", reason=form.reason.data,
                                       actor=current_user)
        elif action == "recuse":
            recusals.declare_on_behalf(reviewer_id, nomination_id, form.recusal_reason.data, actor=current_user)
        else:
            recusals.withdraw(reviewer_id, nomination_id, actor=current_user)
    except UserError as e:
        if e.status in (400, 404):
            raise
        return _pair_page(reviewer_id, nomination_id, e.status, e.field_errors, e.message, typed)
    flash(_PAIR_DONE[action], "success")
    return redirect(url_for(".assignment_pair", reviewer=reviewer_id, nomination=nomination_id,
                            page=form.page.number or 1), 303)
