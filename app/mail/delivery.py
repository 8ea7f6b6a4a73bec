"""SMTP delivery of one outbox row (the job in app/mail/tasks.py calls it, in the consumer).

The SMTP conversation happens outside any database transaction: a slow mail server never holds the
SQLite write lock. The row is claimed in one short transaction and its outcome written in another.

The claim is one conditional UPDATE (pending/failed → sending, attempts + 1) whose row count says who
won: the job, a huey retry, `flask mail sweep` and 重新发送 may all hand the same row to delivery, and
a read-then-write would let two of them see 待发送 and both send. Only the winner talks SMTP. A
`sending` row whose consumer died mid-send is re-queued by the sweep after MAIL_SENDING_STALE_MINUTES
(app/mail/cli.py)."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from flask import current_app
from sqlalchemy import update

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


# A failed row is claimable too: huey retries a failed attempt, and its claim is as exclusive as the first.
CLAIMABLE = ("pending", "failed")


def _claim(session, message_id: int) -> OutboxMessage | None:
    """Move the row to `sending` if it is still claimable and return it; None when another delivery
    holds or has finished it. Its new `attempts` is the claim's token for the outcome write."""
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.status.in_(CLAIMABLE))
        .values(status="sending", claimed_at=utcnow(), attempts=OutboxMessage.attempts + 1)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        return None
    return session.get(OutboxMessage, message_id, populate_existing=True)


def _finish(message_id: int, attempt: int, **values) -> bool:
    """Write the outcome over our own claim only. If this send outlived MAIL_SENDING_STALE_MINUTES and the
    sweep put the row back to 待发送, the outcome still lands while no newer claim exists (so a sent
    message is not sent again); once a newer claim holds the row (attempts moved on), its outcome counts."""
    with write_transaction() as session:
        result = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.status.in_(("sending", "pending")),
                   OutboxMessage.attempts == attempt)
            .values(**values)
            .execution_options(synchronize_session=False))
        return result.rowcount == 1


def deliver(message_id: int) -> str | None:
    """Send one pending (or failed, being retried) message; returns its new status, None if there is
    nothing to do (another delivery holds it or sent it, or the row is gone with a rolled-back savepoint)."""
    config = current_app.config
    if not config.get("MAIL_SERVER"):
        with write_transaction():
            row = locked(OutboxMessage, message_id)
            if row is None or row.status not in CLAIMABLE:
                return None
            row.status = "outbox"
            return row.status
    with write_transaction() as session:
        row = _claim(session, message_id)
        if row is None:
            return None
        attempt = row.attempts
        message = build_message(row.to_addr, row.subject, row.body, config)
    try:
        smtp_send(message, config)
    except (smtplib.SMTPException, OSError, ValueError) as e:
        _finish(message_id, attempt, status="failed", error=f"{type(e).__name__}: {e}"[:ERROR_MAX])
        raise DeliveryFailed(f"mail {message_id}: {e}") from e
    _finish(message_id, attempt, status="sent", sent_at=utcnow(), error="")
    return "sent"
