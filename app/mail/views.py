"""The outbox (/admin/mail): every message the system wrote, its status, its text, 重新发送."""

from __future__ import annotations

from flask import current_app, flash, redirect, request, url_for
from flask_login import current_user

from app.core.authz import admin_required
from app.core.htmx import render
from app.core.params import parse_int
from app.mail import operations, queries
from app.mail.blueprint import bp
from app.mail.forms import OutboxFilterForm, ResendForm
from app.mail.outbox import server_configured
from app.models.mail import MAIL_STATUS_LABELS


@bp.route("/admin/mail")
@admin_required
def outbox():
    form = OutboxFilterForm(formdata=request.args)
    valid = form.validate()
    page = queries.outbox(parse_int(request.args.get("page", "1"), lo=1, hi=999_999, default=1),
                          form.status.data if valid else "")
    return render("mail/outbox.html", "results", status=200 if valid else 422, result=page, form=form,
                  labels=MAIL_STATUS_LABELS, configured=server_configured(),
                  args={"status": page.status} if page.status else {})


def _detail(message_id: int, status: int = 200, message: str = ""):
    return render("mail/message.html", "admin", status=status, item=queries.message(message_id),
                  labels=MAIL_STATUS_LABELS, configured=server_configured(), form=ResendForm(formdata=None),
                  message=message, stale_minutes=current_app.config.get("MAIL_SENDING_STALE_MINUTES") or 10)


@bp.route("/admin/mail/<int:message_id>")
@admin_required
def message(message_id: int):
    return _detail(message_id)


@bp.route("/admin/mail/<int:message_id>/resend", methods=["POST"])
@admin_required
def resend(message_id: int):
    queries.message(message_id)  # an unknown message is a 404 whatever the form says
    form = ResendForm()
    if not form.validate_on_submit():
        return _detail(message_id, 422, form.page_message())
    row = operations.resend(message_id, actor=current_user)
    flash(f"已重新提交发送：{row.to_addr}。", "success")
    return redirect(url_for(".message", message_id=message_id), 303)
