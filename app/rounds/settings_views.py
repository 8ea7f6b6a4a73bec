"""Round settings and the rubric (editable until scoring opens)."""

from __future__ import annotations

from flask import flash, redirect, url_for
from flask_login import current_user

from app.core.authz import admin_required
from app.core.errors import UserError
from app.core.htmx import render
from app.models import CATEGORY_LABELS, KIND_LABELS, METHOD_LABELS
from app.review import assignments
from app.rounds import phases as rounds
from app.rounds import settings as round_settings
from app.rounds.blueprint import bp
from app.rounds.forms import CriterionActionForm, CriterionForm, SettingsForm, quota_name, settings_form_for


def _page(status: int = 200, message: str = "", form: SettingsForm | None = None,
          criterion_form: CriterionForm | None = None, criterion_key: str = ""):
    rnd = rounds.require_current_round()
    return render("rounds/settings.html", "admin", status=status, round=rnd, rubric=round_settings.rubric(rnd.id),
                  rubric_editable=round_settings.rubric_editable(rnd), message=message,
                  form=form or settings_form_for(rnd), kinds=KIND_LABELS, categories=CATEGORY_LABELS,
                  methods=METHOD_LABELS, modes=assignments.MODE_LABELS, quota_name=quota_name,
                  criterion_form=criterion_form, criterion_key=criterion_key, blank_criterion=CriterionForm,
                  templates_locked=rnd.phase not in round_settings.TEMPLATE_PHASES)


@bp.route("/settings")
@admin_required
def settings():
    return _page()


@bp.route("/settings", methods=["POST"])
@admin_required
def settings_save():
    rnd = rounds.require_current_round()
    form = SettingsForm()
    if not form.validate_on_submit():
        return _page(422, form.page_message(), form)
    try:
        round_settings.update_settings(rnd.id, form.values(), version=form.version.data, actor=current_user)
    except UserError as e:
        form.add_errors(e.field_errors)
        return _page(e.status, e.message, form)
    flash("批次设置已保存。", "success")
    return redirect(url_for(".settings"), 303)


@bp.route("/settings/criteria/<category>", methods=["POST"])
@admin_required
def criterion_add(category: str):
    rnd = rounds.require_current_round()
    key = f"new-{category}"
    form = CriterionForm()
    if not form.validate_on_submit():
        return _page(422, form.page_message(), criterion_form=form, criterion_key=key)
    try:
        c = round_settings.add_criterion(rnd.id, category, **form.values(), actor=current_user)
    except UserError as e:
        if e.status == 404:
            raise
        form.add_errors(e.field_errors)
        return _page(e.status, e.message, criterion_form=form, criterion_key=key)
    flash(f"已新增评分指标「{c.name}」。", "success")
    return redirect(url_for(".settings", _anchor=f"rubric-{category}"), 303)


@bp.route("/settings/criterion/<int:criterion_id>", methods=["POST"])
@admin_required
def criterion_update(criterion_id: int):
    key = str(criterion_id)
    pressed = CriterionActionForm()
    if not pressed.validate_on_submit():
        return _page(422, pressed.page_message() if "csrf_token" in pressed.errors else pressed.first_errors()["action"])
    action = pressed.action.data
    form = CriterionForm() if action == "save" else None
    if form is not None and not form.validate_on_submit():
        return _page(422, form.page_message(), criterion_form=form, criterion_key=key)
    try:
        if action == "delete":
            round_settings.remove_criterion(criterion_id, actor=current_user)
            flash("已删除评分指标。", "success")
        elif action in ("up", "down"):
            round_settings.move_criterion(criterion_id, action, actor=current_user)
        else:
            c = round_settings.update_criterion(criterion_id, **form.values(), actor=current_user)
            flash(f"已保存评分指标「{c.name}」。", "success")
    except UserError as e:
        if e.status == 404:
            raise
        if form is not None:
            form.add_errors(e.field_errors)
        return _page(e.status, e.message, criterion_form=form, criterion_key=key)
    return redirect(url_for(".settings", _anchor="rubric"), 303)
