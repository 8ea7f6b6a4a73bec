"""The outbox's one state change by hand: 重新发送 of a message that failed (or that was written while no
mail server was configured, once one is)."""

from __future__ import annotations

from flask import current_app

from app.audit import operations as audit
from app.core.database import locked, write_transaction
from app.core.errors import Conflict, UserError
from app.mail.outbox import queue_after_commit, server_configured
from app.models import OutboxMessage


def resend(message_id: int, *, actor=None) -> OutboxMessage:
    if not server_configured(current_app):
        raise Conflict("尚未配置邮件服务（KEPU_MAIL_SERVER），无法发送；邮件仍保存在发件箱中。")
    with write_transaction():
        row = locked(OutboxMessage, message_id)
        if row is None:
            raise UserError("找不到该邮件。", status=404)
        if row.status not in ("failed", "outbox"):
            raise Conflict("这封邮件已发送或正在发送，无需重新发送。")
        before = {"status": row.status, "attempts": row.attempts, "error": row.error}
        row.status, row.error = "pending", ""
        queue_after_commit(row.id)
        audit.record("mail.resend", "mail", row.id, before=before, after={"status": row.status, "to": row.to_addr},
                     round_id=row.round_id, actor=actor)
    return row
