"""SMTP delivery of one outbox row (the job in app/mail/tasks.py calls it, in the consumer).

The SMTP conversation happens outside any database transaction: a slow mail server never holds the
SQLite write lock. The row is claimed (attempts + 1) in one short transaction and its outcome written
in another."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from flask import current_app

from app.core.database import locked, write_transaction
from app.models import OutboxMessage
from app.models._base import utcnow

ERROR_MAX = 2000


class DeliveryFailed(Exception):
    """Raised after the failure is written, so that huey retries the job."""


def build_message(to_addr: str, subject: str, body: str, config) -> EmailMessage:
    sender = str(config.get("MAIL_SENDER") or "kepu-review@localhost")
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to_addr
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "localhost")
    msg.set_content(body, charset="utf-8")
    return msg


def smtp_send(message: EmailMessage, config) -> None:
    host = str(config["MAIL_SERVER"])
    port = int(config.get("MAIL_PORT") or (465 if config.get("MAIL_USE_SSL") else 25))
    timeout = float(config.get("MAIL_TIMEOUT") or 20)
    if config.get("MAIL_USE_SSL"):
        client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        client = smtplib.SMTP(host, port, timeout=timeout)
    with client:
        if config.get("MAIL_USE_TLS") and not config.get("MAIL_USE_SSL"):
            client.starttls(context=ssl.create_default_context())
        username = config.get("MAIL_USERNAME")
        if username:
            client.login(str(username), str(config.get("MAIL_PASSWORD") or ""))
        client.send_message(message)


def deliver(message_id: int) -> str | None:
    """Send one pending (or failed, being retried) message; returns its new status, None if there is
    nothing to do (already sent, or the row is gone with a rolled-back savepoint)."""
    config = current_app.config
    with write_transaction():
        row = locked(OutboxMessage, message_id)
        if row is None or row.status not in ("pending", "failed"):
            return None
        if not config.get("MAIL_SERVER"):
            row.status = "outbox"
            return row.status
        row.attempts += 1
        message = build_message(row.to_addr, row.subject, row.body, config)
    try:
        smtp_send(message, config)
    except (smtplib.SMTPException, OSError, ValueError) as e:
        with write_transaction():
            row = locked(OutboxMessage, message_id)
            row.status = "failed"
            row.error = f"{type(e).__name__}: {e}"[:ERROR_MAX]
        raise DeliveryFailed(f"mail {message_id}: {e}") from e
    with write_transaction():
        row = locked(OutboxMessage, message_id)
        row.status, row.sent_at, row.error = "sent", utcnow(), ""
    return "sent"
