"""Accounts: list, create (role, affiliation for 回避 or a 推荐单位's own unit), edit, activate/deactivate, set a
new password or issue a one-time password / invitation link, and 推荐单位 accounts in bulk from the registry.

A page that shows a new one-time password or invitation link answers the POST itself (200, no-store)
instead of the usual 303: the secret is shown once and must never sit in a session cookie, a URL or a
file on the server."""

from __future__ import annotations

from flask import Response, flash, redirect, render_template, url_for
from flask_login import current_user

from app.accounts import credentials, registry
from app.accounts import operations as users
from app.accounts.blueprint import bp
from app.accounts.forms import (
    CREDENTIALS,
    IMPORT_CREDENTIALS,
    CredentialForm,
    RegistryConfirmForm,
    RegistryImportForm,
    UserActiveForm,
    UserCreateForm,
    UserEditForm,
    UserPasswordForm,
    edit_form_for,
)
from app.core.authz import admin_required
from app.core.errors import UserError
from app.core.htmx import render
from app.intake import nominators
from app.models import ROLE_LABELS


def _nominator_options() -> list[tuple[int, str]]:
    return [(n.id, n.name) for n in nominators.list_nominators()]


def _list(status: int = 200, message: str = "", form: UserCreateForm | None = None):
    return render("accounts/users.html", "admin", status=status, items=users.list_users(),
                  nominator_options=_nominator_options(), roles=ROLE_LABELS, message=message,
                  credential_options=CREDENTIALS,
                  form=form or UserCreateForm(formdata=None, data={"role": "reviewer", "credential": "password"}))


def _issued_page(issued: list, *, title: str, summary: str = ""):
    resp = Response(render_template("accounts/credentials.html", issued=issued, title=title, summary=summary))
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.route("/admin/users")
@admin_required
def user_list():
    return _list()


@bp.route("/admin/users", methods=["POST"])
@admin_required
def user_create():
    form = UserCreateForm()
    if not form.validate_on_submit():
        return _list(422, form.page_message(), form)
    try:
        made = users.create_account(form.username.data, form.display_name.data or "", form.role.data,
                                    form.password.data or None, affiliation_id=form.affiliation_id.number,
                                    email=form.email.data or "", phone=form.phone.data or "",
                                    credential=form.credential.data, mail_invite=form.mail_invite.data,
                                    actor=current_user)
    except UserError as e:
        form.add_errors(e.field_errors)
        return _list(e.status, e.message, form)
    if isinstance(made, credentials.Issued):
        return _issued_page([made], title=f"已创建账号 {made.username}")
    flash(f"已创建账号 {made.username}（{made.role_label}）。", "success")
    return redirect(url_for(".user_list"), 303)


def _edit(user_id: int, status: int = 200, message: str = "", form: UserEditForm | None = None,
          password_form: UserPasswordForm | None = None, credential_form: CredentialForm | None = None):
    item = users.get_user(user_id)
    return render("accounts/user_edit.html", "admin", status=status, item=item,
                  nominator_options=_nominator_options(), roles=ROLE_LABELS, message=message,
                  form=form or edit_form_for(item), password_form=password_form or UserPasswordForm(formdata=None),
                  credential_form=credential_form or CredentialForm(formdata=None, data={"credential": "otp"}),
                  credential_options=credentials.KINDS)


@bp.route("/admin/users/<int:user_id>")
@admin_required
def user_edit(user_id: int):
    return _edit(user_id)


@bp.route("/admin/users/<int:user_id>", methods=["POST"])
@admin_required
def user_update(user_id: int):
    users.get_user(user_id)  # an unknown user is a 404 whatever the form says
    form = UserEditForm()
    if not form.validate_on_submit():
        return _edit(user_id, 422, form.page_message(), form)
    try:
        user = users.update_user(user_id, display_name=form.display_name.data, role=form.role.data,
                                 affiliation_id=form.affiliation_id.number, email=form.email.data or "",
                                 phone=form.phone.data or "", actor=current_user)
    except UserError as e:
        if e.status == 404:
            raise
        form.add_errors(e.field_errors)
        return _edit(user_id, e.status, e.message, form)
    flash(f"已保存账号 {user.username}。", "success")
    return redirect(url_for(".user_list"), 303)


@bp.route("/admin/users/<int:user_id>/active", methods=["POST"])
@admin_required
def user_active(user_id: int):
    users.get_user(user_id)
    form = UserActiveForm()
    if not form.validate_on_submit():
        return _edit(user_id, 422, form.page_message())
    active = form.active.data == "1"
    try:
        user = users.admin_set_active(user_id, active, actor=current_user)
    except UserError as e:
        if e.status == 404:
            raise
        return _edit(user_id, e.status, e.message)
    flash(f"已{'启用' if active else '停用'}账号 {user.username}" + ("。" if active else "，其登录会话已失效。"),
          "success")
    back = url_for(".user_list") if form.back.data == "list" else url_for(".user_edit", user_id=user_id)
    return redirect(back, 303)


@bp.route("/admin/users/<int:user_id>/password", methods=["POST"])
@admin_required
def user_password(user_id: int):
    users.get_user(user_id)
    form = UserPasswordForm()
    if not form.validate_on_submit():
        return _edit(user_id, 422, form.page_message(), password_form=form)
    try:
        user = users.admin_reset_password(user_id, form.password.data, actor=current_user)
    except UserError as e:
        if e.status == 404:
            raise
        form.add_errors(e.field_errors)
        return _edit(user_id, e.status, e.message, password_form=form)
    flash(f"已为 {user.username} 设置新密码，其原有登录会话已失效。", "success")
    return redirect(url_for(".user_edit", user_id=user_id), 303)


@bp.route("/admin/users/<int:user_id>/credential", methods=["POST"])
@admin_required
def user_credential(user_id: int):
    """重置密码 by a new one-time password or invitation link (the old password stops working)."""
    users.get_user(user_id)
    form = CredentialForm()
    if not form.validate_on_submit():
        return _edit(user_id, 422, form.page_message(), credential_form=form)
    try:
        issued = credentials.issue(user_id, form.credential.data, actor=current_user, mail_invite=form.mail_invite.data)
    except UserError as e:
        if e.status == 404:
            raise
        return _edit(user_id, e.status, e.message, credential_form=form)
    return _issued_page([issued], title=f"已为 {issued.username} 发放新的登录凭据")


# ---------------------------------------------------------------------------------------------
# 推荐单位 accounts from the registry XLSX


def _import_page(status: int = 200, message: str = "", form: RegistryImportForm | None = None):
    return render("accounts/import.html", "admin", status=status, message=message, options=IMPORT_CREDENTIALS,
                  form=form or RegistryImportForm(formdata=None, data={"credential": "otp"}))


@bp.route("/admin/users/import")
@admin_required
def user_import():
    return _import_page()


@bp.route("/admin/users/import/template.xlsx")
@admin_required
def user_import_template():
    return Response(registry.template_xlsx(),
                    mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": "attachment; filename=nominator-accounts.xlsx"})


@bp.route("/admin/users/import", methods=["POST"])
@admin_required
def user_import_preview():
    """Upload → the preview (nothing written): what each row will do, or why the file is refused."""
    form = RegistryImportForm()
    if not form.validate_on_submit():
        return _import_page(422, form.page_message(), form)
    try:
        # One byte past the limit is enough to refuse: a huge upload is never read into memory whole.
        raw = registry.read(form.file.data.read(registry.IMPORT_MAX_BYTES + 1))
    except UserError as e:
        form.add_errors(e.field_errors)
        return _import_page(e.status, e.message, form)
    plan = registry.plan(raw)
    payload = registry.sign(raw, credential=form.credential.data, mail_invite=form.mail_invite.data,
                            actor_id=current_user.id) if plan.ok else ""
    return render("accounts/import_preview.html", "admin", status=200 if plan.ok else 422, plan=plan,
                  message="" if plan.ok else plan.refusal(), confirm=RegistryConfirmForm(formdata=None),
                  payload=payload, credential_label=IMPORT_CREDENTIALS[form.credential.data],
                  mail_invite=form.mail_invite.data)


@bp.route("/admin/users/import/confirm", methods=["POST"])
@admin_required
def user_import_confirm():
    form = RegistryConfirmForm()
    if not form.validate_on_submit():
        return _import_page(422, form.page_message())
    try:
        data = registry.unsign(form.payload.data, actor_id=current_user.id)
        outcome = registry.apply(data["rows"], credential=data["credential"], mail_invite=data["mail"],
                                 actor=current_user)
    except UserError as e:
        return _import_page(e.status, e.message)
    if not outcome.issued:
        flash(outcome.message(), "success")
        return redirect(url_for(".user_list"), 303)
    return _issued_page(outcome.issued, title="推荐单位账号导入完成", summary=outcome.message())
