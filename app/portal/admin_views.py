"""The admin's side of the portal: 受理 / 退回修改 a submitted nomination (buttons on the intake detail
page) and deadline extensions per 推荐单位."""

from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import select

from app.core.authz import admin_required
from app.core.errors import UserError
from app.core.htmx import render
from app.core.params import parse_id
from app.extensions import db
from app.intake import nominations
from app.models import DeadlineExtension
from app.portal import deadlines, forms, operations
from app.portal.blueprint import bp
from app.rounds import phases as rounds


def _actor():
    return current_user._get_current_object()


def _in_round(nomination_id: int):
    nom = nominations.get(nomination_id)
    if nom.round_id != rounds.require_current_round().id or nom.status == "draft":
        abort(404)
    return nom


def _back(nom):
    return redirect(url_for("intake.detail", nomination_id=nom.id) + "#portal", 303)


@bp.post("/admin/nominations/<int:nomination_id>/accept")
@admin_required
def accept(nomination_id: int):
    nom = _in_round(nomination_id)
    form = forms.ConfirmForm()
    form.validate_or_refuse()
    operations.accept(nom.id, actor=_actor())
    flash(f"已受理「{nom.title}」。", "success")
    return _back(nom)


@bp.post("/admin/nominations/<int:nomination_id>/return")
@admin_required
def return_for_changes(nomination_id: int):
    nom = _in_round(nomination_id)
    form = forms.ReturnForm()
    form.validate_or_refuse()
    operations.return_for_changes(nom.id, form.note.data, actor=_actor())
    flash(f"已退回「{nom.title}」，推荐单位会看到您的说明。", "success")
    return _back(nom)


# --- deadline extensions ----------------------------------------------------------------------------------


def _extensions_page(form, *, status: int = 200, message: str | None = None):
    rnd = rounds.require_current_round()
    rows = list(db.session.scalars(select(DeadlineExtension).where(DeadlineExtension.round_id == rnd.id)
                                   .order_by(DeadlineExtension.until, DeadlineExtension.id)))
    names = {n.id: n for n in nominations.nominators()}
    return render("portal/admin_extensions.html", "page", status=status, rnd=rnd, form=form,
                  errors=form.first_errors(), message=message, rows=rows, names=names,
                  nominators=list(names.values()), editable=rnd.phase in operations.ADMIN_PHASES,
                  round_deadline=deadlines.Deadline(rnd.deadline, False))


@bp.route("/admin/extensions", methods=["GET", "POST"])
@admin_required
def extensions():
    form = forms.ExtensionForm()
    if request.method == "GET":
        return _extensions_page(forms.ExtensionForm(formdata=None))
    if not form.validate_on_submit():
        return _extensions_page(form, status=400 if "csrf_token" in form.errors else 422,
                                message=form.page_message())
    nominator_id = parse_id(form.nominator_id.data)
    if nominator_id is None:
        form.add_errors({"nominator_id": "请选择推荐单位"})
        return _extensions_page(form, status=422, message="请选择推荐单位。")
    try:
        ext = operations.extend_deadline(nominator_id, form.until.data, form.reason.data, actor=_actor())
    except UserError as e:
        form.add_errors(e.field_errors)
        return _extensions_page(form, status=e.status, message=e.message)
    flash(f"已将该推荐单位的报送截止时间延至 {ext.until.year}年{ext.until.month}月{ext.until.day}日 24:00。", "success")
    return redirect(url_for("portal.extensions"), 303)


@bp.post("/admin/extensions/<int:nominator_id>/revoke")
@admin_required
def revoke_extension(nominator_id: int):
    form = forms.ConfirmForm()
    form.validate_or_refuse()
    operations.revoke_extension(nominator_id, actor=_actor())
    flash("已取消该推荐单位的延期。", "success")
    return redirect(url_for("portal.extensions"), 303)
