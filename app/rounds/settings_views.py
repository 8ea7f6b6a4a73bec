"""Round settings and the rubric (editable until scoring opens)."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_login import current_user

from app.core.authz import admin_required
from app.core.errors import UserError
from app.core.htmx import render
from app.models import CATEGORY_LABELS, KIND_LABELS, METHOD_LABELS
from app.review import assignments
from app.rounds import phases as rounds
from app.rounds import settings as round_settings
from app.rounds.blueprint import bp


def _page(status: int = 200, errors: dict | None = None, message: str = "", form: dict | None = None,
          criterion_errors: dict | None = None, criterion_form: dict | None = None, criterion_key: str = ""):
    rnd = rounds.require_current_round()
    return render("rounds/settings.html", "admin", status=status, round=rnd, rubric=round_settings.rubric(rnd.id),
                  rubric_editable=round_settings.rubric_editable(rnd), errors=errors or {}, message=message,
                  form=form, kinds=KIND_LABELS, categories=CATEGORY_LABELS, methods=METHOD_LABELS,
                  modes=assignments.MODE_LABELS, criterion_errors=criterion_errors or {},
                  criterion_form=criterion_form or {}, criterion_key=criterion_key)


@bp.route("/settings")
@admin_required
def settings():
    return _page()


@bp.route("/settings", methods=["POST"])
@admin_required
def settings_save():
    rnd = rounds.require_current_round()
    try:
        round_settings.update_settings(rnd.id, request.form, actor=current_user)
    except UserError as e:
        return _page(e.status, e.field_errors, e.message, request.form.to_dict())
    flash("批次设置已保存。", "success")
    return redirect(url_for(".settings"), 303)


def _criterion_failed(e: UserError, key: str):
    return _page(e.status, message=e.message, criterion_errors=e.field_errors,
                 criterion_form=request.form.to_dict(), criterion_key=key)


@bp.route("/settings/criteria/<category>", methods=["POST"])
@admin_required
def criterion_add(category: str):
    rnd = rounds.require_current_round()
    try:
        c = round_settings.add_criterion(rnd.id, category, request.form, actor=current_user)
    except UserError as e:
        return _criterion_failed(e, f"new-{category}")
    flash(f"已新增评分指标「{c.name}」。", "success")
    return redirect(url_for(".settings", _anchor=f"rubric-{category}"), 303)


@bp.route("/settings/criterion/<int:criterion_id>", methods=["POST"])
@admin_required
def criterion_update(criterion_id: int):
    action = request.form.get("action", "save")
    try:
        if action == "delete":
            round_settings.remove_criterion(criterion_id, actor=current_user)
            flash("已删除评分指标。", "success")
        elif action in ("up", "down"):
            round_settings.move_criterion(criterion_id, action, actor=current_user)
        else:
            c = round_settings.update_criterion(criterion_id, request.form, actor=current_user)
            flash(f"已保存评分指标「{c.name}」。", "success")
    except UserError as e:
        if e.status == 404:
            raise
        return _criterion_failed(e, str(criterion_id))
    return redirect(url_for(".settings", _anchor="rubric"), 303)
