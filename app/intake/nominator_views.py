"""推荐单位 registry: list in official order, create, edit, delete (unused only), XLSX import/template."""

from __future__ import annotations

from flask import Response, flash, redirect, request, url_for
from flask_login import current_user

from app.core.authz import admin_required
from app.core.errors import UserError
from app.core.htmx import render
from app.intake import forms, nominators
from app.intake.blueprint import bp
from app.rounds import phases as rounds


def _list(status: int = 200, errors: dict | None = None, message: str = "", form: dict | None = None,
          import_error: str = ""):
    return render("intake/nominators.html", "admin", status=status, items=nominators.list_nominators(),
                  usage=nominators.usage(), round=rounds.current_round(), errors=errors or {}, message=message,
                  values=form or {}, import_error=import_error, limits=_LIMITS,
                  quotas_locked=nominators.quotas_locked())


# maxlength for the registry inputs, from the same declarations the server checks.
_LIMITS = forms.maxlengths(forms.NominatorFields()) | {
    name: len(str(field.hi)) for name, field in forms.NominatorFields()._fields.items() if hasattr(field, "hi")}


def _refusal(form) -> tuple[dict, str]:
    errors = form.first_errors()
    message = form.error_message() if "csrf_token" in errors else "；".join(errors.values()) + "。"
    return errors, message


@bp.route("/admin/nominators")
@admin_required
def nominator_list():
    return _list()


@bp.route("/admin/nominators", methods=["POST"])
@admin_required
def nominator_create():
    form = forms.NominatorForm()
    try:
        if not form.validate_on_submit():
            errors, message = _refusal(form)
            raise UserError(message, errors)
        n = nominators.create(form.values(), actor=current_user)
    except UserError as e:
        return _list(e.status, e.field_errors, e.message, request.form.to_dict())
    flash(f"已新增推荐单位「{n.name}」。", "success")
    return redirect(url_for(".nominator_list"), 303)


def _edit_page(nominator_id: int, status: int = 200, errors: dict | None = None, message: str = "",
               form: dict | None = None):
    item = nominators.get(nominator_id)
    used = nominators.usage().get(item.id, {"nominations": 0, "users": 0})
    values = form if form is not None else nominators.public(item)
    return render("intake/nominator_edit.html", "admin", status=status, item=item, used=used,
                  errors=errors or {}, message=message, values=values, limits=_LIMITS,
                  quotas_locked=nominators.quotas_locked())


@bp.route("/admin/nominators/<int:nominator_id>")
@admin_required
def nominator_edit(nominator_id: int):
    return _edit_page(nominator_id)


@bp.route("/admin/nominators/<int:nominator_id>", methods=["POST"])
@admin_required
def nominator_update(nominator_id: int):
    form = forms.NominatorForm()
    try:
        if not form.validate_on_submit():
            errors, message = _refusal(form)
            raise UserError(message, errors)
        n = nominators.update(nominator_id, form.values(), actor=current_user)
    except UserError as e:
        if e.status == 404:
            raise
        return _edit_page(nominator_id, e.status, e.field_errors, e.message, request.form.to_dict())
    flash(f"已保存推荐单位「{n.name}」。", "success")
    return redirect(url_for(".nominator_list"), 303)


@bp.route("/admin/nominators/<int:nominator_id>/delete", methods=["POST"])
@admin_required
def nominator_delete(nominator_id: int):
    form = forms.ConfirmForm()
    try:
        if not form.validate_on_submit():
            raise UserError(form.error_message())
        nominators.delete(nominator_id, actor=current_user)
    except UserError as e:
        if e.status == 404:
            raise
        return _edit_page(nominator_id, e.status, {}, e.message)
    flash("已删除推荐单位。", "success")
    return redirect(url_for(".nominator_list"), 303)


@bp.route("/admin/nominators/import", methods=["POST"])
@admin_required
def nominator_import():
    form = forms.NominatorImportForm()
    if not form.validate_on_submit():
        message = "请选择要导入的 .xlsx 文件。" if "file" in form.first_errors() else form.error_message()
        return _list(422, {"file": "请选择文件"}, message, import_error=message)
    data = form.file.data.read(nominators.IMPORT_MAX_BYTES + 1)
    try:
        result = nominators.import_xlsx(data, actor=current_user)
    except UserError as e:
        return _list(e.status, e.field_errors, e.message, import_error=e.message)
    flash(result.message(), "success")
    return redirect(url_for(".nominator_list"), 303)


@bp.route("/admin/nominators/template.xlsx")
@admin_required
def nominator_template():
    return Response(nominators.template_xlsx(),
                    mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": "attachment; filename=nominators.xlsx; "
                                                    "filename*=UTF-8''%E6%8E%A8%E8%8D%90%E5%8D%95%E4%BD%8D.xlsx"})
