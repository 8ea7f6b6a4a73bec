"""Writing messages and handing them to delivery once their transaction has committed.

The hand-over is a session `after_commit` hook registered once, here: callers only call send() inside
their operation and cannot forget (or do too early) the "deliver after commit" step. A rollback drops
the queued ids; a savepoint rolled back leaves ids whose rows are gone, and delivery skips a missing row.
"""

from __future__ import annotations

import contextvars
import logging
import re

from flask import current_app
from sqlalchemy import event, select

from app.core.database import write_transaction
from app.extensions import db
from app.models import OutboxMessage, User

log = logging.getLogger(__name__)

ADDRESS_MAX = 200
SUBJECT_MAX = 200
# One plain address, no display name, no list: anything else is skipped rather than guessed at.
_ADDRESS = re.compile(r"^[^@\s<>,;:\"()\[\]\\]+@[^@\s<>,;:\"()\[\]\\]+\.[^@\s<>,;:\"()\[\]\\.]+$")
_LINE_BREAKS = re.compile(r"[\r\n\t\x00-\x1f\x7f]+")
_QUEUED = "kepu_mail_queued"


def is_valid_address(address: str | None) -> bool:
    address = (address or "").strip()
    return 0 < len(address) <= ADDRESS_MAX and bool(_ADDRESS.match(address))


def server_configured(app=None) -> bool:
    return bool((app or current_app).config.get("MAIL_SERVER"))


def send(to_addr: str, subject: str, body: str, *, round_id: int | None = None) -> OutboxMessage | None:
    """Write one message to `to_addr`, delivered after the caller's transaction commits.

    An empty or invalid address writes nothing and returns None (a unit without an e-mail address
    simply gets no mail; the page that matters shows the same news). Opens write_transaction() itself
    when called outside one."""
    address = (to_addr or "").strip()
    if not is_valid_address(address):
        if address:
            log.warning("mail to an invalid address skipped: %r", address[:ADDRESS_MAX])
        return None
    subject = _LINE_BREAKS.sub(" ", subject or "").strip()[:SUBJECT_MAX]
    app = current_app._get_current_object()
    with write_transaction() as session:
        message = OutboxMessage(round_id=round_id, to_addr=address, subject=subject, body=body or "",
                                status="pending" if server_configured(app) else "outbox", attempts=0, error="")
        session.add(message)
        session.flush()
        if message.status == "pending":
            queue_after_commit(message.id)
    return message


def notify_admins(subject: str, body: str, *, round_id: int | None = None) -> list[OutboxMessage]:
    """One message to every active admin with an e-mail address, plus KEPU_MAIL_ADMIN_TO (comma
    separated) — each address once."""
    addresses: list[str] = []
    for email in db.session.scalars(select(User.email).where(User.role == "admin", User.active.is_(True))
                                    .order_by(User.id)):
        addresses.append((email or "").strip())
    extra = current_app.config.get("MAIL_ADMIN_TO") or ""
    addresses.extend(a.strip() for a in str(extra).split(","))
    seen: set[str] = set()
    out: list[OutboxMessage] = []
    for address in addresses:
        key = address.casefold()
        if not address or key in seen:
            continue
        seen.add(key)
        message = send(address, subject, body, round_id=round_id)
        if message is not None:
            out.append(message)
    return out


def queue_after_commit(message_id: int) -> None:
    """Deliver this (already flushed) message once the current transaction commits."""
    session = db.session()
    session.info.setdefault(_QUEUED, []).append((current_app._get_current_object(), message_id))


def dispatch(app, message_id: int) -> None:
    """Hand one message to the delivery job (or deliver here when the job is not registered).

    Runs in a fresh context: the committing request's "inside a write transaction" flag and app
    context must not leak into an immediate (test-mode) job, whose writes are its own."""
    contextvars.Context().run(_dispatch, app, message_id)


def _dispatch(app, message_id: int) -> None:
    from app.jobs import get_jobs

    task = get_jobs(app).tasks.get("mail_deliver")
    if task is not None:
        task(message_id)
        return
    from app.mail.delivery import deliver

    with app.app_context():
        try:
            deliver(message_id)
        except Exception:  # noqa: BLE001 — the row says failed, with the error, for the admin
            log.exception("mail %s not delivered", message_id)


@event.listens_for(db.session, "after_commit")
def _after_commit(session) -> None:
    queued = session.info.pop(_QUEUED, None)
    for app, message_id in queued or ():
        try:
            dispatch(app, message_id)
        except Exception:  # noqa: BLE001 — the operation has committed; the row stays pending for 重新发送
            log.exception("mail %s could not be queued for delivery", message_id)


@event.listens_for(db.session, "after_soft_rollback")
def _after_rollback(session, previous_transaction) -> None:
    if not previous_transaction.nested:
        session.info.pop(_QUEUED, None)
