"""Accounts: list, create (role, affiliation for 回避), edit, activate/deactivate, set a new password."""

from __future__ import annotations

from flask import flash, redirect, url_for
from flask_login import current_user

from app.accounts import operations as users
from app.accounts.blueprint import bp
from app.accounts.forms import UserActiveForm, UserCreateForm, UserEditForm, UserPasswordForm, edit_form_for
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
                  form=form or UserCreateForm(formdata=None, data={"role": "reviewer"}))


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
        user = users.create_account(form.username.data, form.display_name.data or "", form.role.data,
                                    form.password.data, affiliation_id=form.affiliation_id.number, actor=current_user)
    except UserError as e:
        form.add_errors(e.field_errors)
        return _list(e.status, e.message, form)
    flash(f"已创建账号 {user.username}（{user.role_label}）。", "success")
    return redirect(url_for(".user_list"), 303)


def _edit(user_id: int, status: int = 200, message: str = "", form: UserEditForm | None = None,
          password_form: UserPasswordForm | None = None):
    item = users.get_user(user_id)
    return render("accounts/user_edit.html", "admin", status=status, item=item,
                  nominator_options=_nominator_options(), roles=ROLE_LABELS, message=message,
                  form=form or edit_form_for(item), password_form=password_form or UserPasswordForm(formdata=None))


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
                                 affiliation_id=form.affiliation_id.number, actor=current_user)
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
