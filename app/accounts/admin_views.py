"""Accounts: list, create (role, affiliation for 回避), edit, activate/deactivate, set a new password."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_login import current_user

from app.accounts import operations as users
from app.accounts.blueprint import bp
from app.core.authz import admin_required
from app.core.errors import UserError
from app.core.htmx import render
from app.intake import nominators
from app.models import ROLE_LABELS


def _form_values() -> dict:
    # Never echo a password back into the page.
    return {k: v for k, v in request.form.items() if k not in ("password", "confirm", "csrf_token")}


def _list(status: int = 200, errors: dict | None = None, message: str = "", form: dict | None = None):
    return render("accounts/users.html", "admin", status=status, items=users.list_users(),
                  nominators=nominators.list_nominators(), roles=ROLE_LABELS, errors=errors or {},
                  message=message, form=form or {})


@bp.route("/admin/users")
@admin_required
def user_list():
    return _list()


@bp.route("/admin/users", methods=["POST"])
@admin_required
def user_create():
    try:
        user = users.create_from_form(request.form, actor=current_user)
    except UserError as e:
        return _list(e.status, e.field_errors, e.message, _form_values())
    flash(f"已创建账号 {user.username}（{user.role_label}）。", "success")
    return redirect(url_for(".user_list"), 303)


def _edit(user_id: int, status: int = 200, errors: dict | None = None, message: str = "",
          form: dict | None = None):
    return render("accounts/user_edit.html", "admin", status=status, item=users.get_user(user_id),
                  nominators=nominators.list_nominators(), roles=ROLE_LABELS, errors=errors or {},
                  message=message, form=form)


@bp.route("/admin/users/<int:user_id>")
@admin_required
def user_edit(user_id: int):
    return _edit(user_id)


@bp.route("/admin/users/<int:user_id>", methods=["POST"])
@admin_required
def user_update(user_id: int):
    try:
        user = users.update_user(user_id, request.form, actor=current_user)
    except UserError as e:
        if e.status == 404:
            raise
        return _edit(user_id, e.status, e.field_errors, e.message, _form_values())
    flash(f"已保存账号 {user.username}。", "success")
    return redirect(url_for(".user_list"), 303)


@bp.route("/admin/users/<int:user_id>/active", methods=["POST"])
@admin_required
def user_active(user_id: int):
    active = request.form.get("active") == "1"
    try:
        user = users.admin_set_active(user_id, active, actor=current_user)
    except UserError as e:
        if e.status == 404:
            raise
        return _edit(user_id, e.status, e.field_errors, e.message)
    flash(f"已{'启用' if active else '停用'}账号 {user.username}" + ("。" if active else "，其登录会话已失效。"),
          "success")
    back = url_for(".user_list") if request.form.get("back") == "list" else url_for(".user_edit", user_id=user_id)
    return redirect(back, 303)


@bp.route("/admin/users/<int:user_id>/password", methods=["POST"])
@admin_required
def user_password(user_id: int):
    try:
        user = users.admin_reset_password(user_id, request.form.get("password", ""), request.form.get("confirm", ""),
                                          actor=current_user)
    except UserError as e:
        if e.status == 404:
            raise
        return _edit(user_id, e.status, e.field_errors, e.message)
    flash(f"已为 {user.username} 设置新密码，其原有登录会话已失效。", "success")
    return redirect(url_for(".user_edit", user_id=user_id), 303)
