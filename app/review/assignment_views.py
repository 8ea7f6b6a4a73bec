"""Reviewer assignment: bulk runs, the matrix (plain form save, htmx toggles one cell), one pair's page
(remove a scored assignment with a reason, declare or withdraw a recusal)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.core.authz import admin_required
from app.core.errors import UserError
from app.core.htmx import is_partial_request, render
from app.core.params import MAX_ID, parse_id, parse_int
from app.models import CATEGORY_LABELS
from app.review import assignments
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
                  modes=assignments.MODE_LABELS, errors=errors or {}, message=message, form=form or defaults)


def _back(category: str | None = None, page: int | None = None):
    category = _category(category or request.values.get("category"))
    page = page or _int(request.values.get("page"), 1)
    return redirect(url_for(".assignment_matrix", category=category, page=page), 303)


@bp.route("/admin/assignments")
@admin_required
def assignment_matrix():
    return _matrix()


@bp.route("/admin/assignments/run", methods=["POST"])
@admin_required
def assignment_run():
    rnd = rounds.require_current_round()
    form = request.form
    mode, scope = form.get("mode", ""), form.get("scope", "")
    category = scope if scope in CATEGORY_LABELS else None
    try:
        if mode == "all":
            result = assignments.assign_all(rnd.id, category, actor=current_user)
        elif mode == "balanced":
            k = _int(form.get("k"), -1)
            cap_text = (form.get("cap") or "").strip()
            cap = _int(cap_text, -1) if cap_text else None
            result = assignments.assign_balanced(rnd.id, k, cap, category, actor=current_user)
        else:
            raise UserError("请选择分配方式。", {"mode": "请选择"})
    except UserError as e:
        return _matrix(e.status, e.field_errors, e.message, form.to_dict())
    flash(result.message(), "warning" if result.short else "success")
    return _back(category)


def _pair(value: str) -> tuple[int, int]:
    left, _, right = (value or "").partition("-")
    if parse_id(left) is None or parse_id(right) is None:
        raise UserError("请求无效。", status=400)
    return int(left), int(right)


@bp.route("/admin/assignments/cell", methods=["POST"])
@admin_required
def assignment_cell():
    """One checkbox changed (htmx). The cell's new state is whether it is in the form's checked list."""
    cell = request.form.get("cell", "")
    reviewer_id, nomination_id = _pair(cell)
    wanted = cell in request.form.getlist("a")
    assignments.set_assignment(reviewer_id, nomination_id, wanted, actor=current_user)
    if not is_partial_request():
        flash("已保存。", "success")
        return _back()
    info = assignments.pair_info(reviewer_id, nomination_id)
    load, count = assignments.pair_counts(reviewer_id, nomination_id)
    return render_template("review/_matrix_cell_response.html", info=info, load=load, count=count,
                           category=_category(request.form.get("category")), page=_int(request.form.get("page"), 1),
                           editable=True)


@bp.route("/admin/assignments/page", methods=["POST"])
@admin_required
def assignment_page_save():
    rnd = rounds.require_current_round()
    reviewer_ids = [_int(v) for v in request.form.getlist("col")]
    nomination_ids = [_int(v) for v in request.form.getlist("row")]
    checked = {_pair(v) for v in request.form.getlist("a")}
    try:
        added, removed, kept = assignments.save_matrix_page(rnd.id, reviewer_ids, nomination_ids, checked,
                                                            actor=current_user)
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
                  form=form or {}, category=info.nomination.category, page=_int(request.values.get("page"), 1))


@bp.route("/admin/assignments/pair")
@admin_required
def assignment_pair():
    return _pair_page(_int(request.args.get("reviewer")), _int(request.args.get("nomination")))


@bp.route("/admin/assignments/pair", methods=["POST"])
@admin_required
def assignment_pair_save():
    reviewer_id, nomination_id = _int(request.form.get("reviewer")), _int(request.form.get("nomination"))
    action = request.form.get("action", "")
    try:
        if action in ("assign", "unassign"):
            assignments.set_assignment(reviewer_id, nomination_id, action == "assign",
                                       reason=request.form.get("reason", ""), actor=current_user)
            flash("已分配。" if action == "assign" else "已取消分配（评分记录保留）。", "success")
        elif action == "recuse":
            assignments.declare_recusal(reviewer_id, nomination_id, request.form.get("recusal_reason", ""),
                                        actor=current_user)
            flash("已登记回避。", "success")
        elif action == "unrecuse":
            assignments.withdraw_recusal(reviewer_id, nomination_id, actor=current_user)
            flash("已撤销回避登记。", "success")
        else:
            raise UserError("未知操作。", status=400)
    except UserError as e:
        if e.status in (400, 404):
            raise
        return _pair_page(reviewer_id, nomination_id, e.status, e.field_errors, e.message,
                          {k: v for k, v in request.form.items() if k != "csrf_token"})
    return redirect(url_for(".assignment_pair", reviewer=reviewer_id, nomination=nomination_id,
                            page=_int(request.form.get("page"), 1)), 303)
