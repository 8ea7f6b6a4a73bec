"""Reads for the outbox pages."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from app.core.errors import UserError
from app.extensions import db
from app.models import OutboxMessage
from app.models.mail import MAIL_STATUS_LABELS

PER_PAGE = 50


@dataclass
class Page:
    rows: list[OutboxMessage]
    total: int
    page: int
    pages: int
    status: str
    counts: dict[str, int]


def outbox(page: int = 1, status: str = "", per_page: int = PER_PAGE) -> Page:
    """Newest first; `status` filters (an unknown one is ignored by the form before it gets here)."""
    conditions = [OutboxMessage.status == status] if status in MAIL_STATUS_LABELS else []
    counts = dict(db.session.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())
    total = counts.get(status, 0) if conditions else sum(counts.values())
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    rows = list(db.session.scalars(select(OutboxMessage).where(*conditions)
                                   .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
                                   .offset((page - 1) * per_page).limit(per_page)))
    return Page(rows=rows, total=total, page=page, pages=pages, status=status if conditions else "", counts=counts)


def message(message_id: int) -> OutboxMessage:
    row = db.session.get(OutboxMessage, message_id)
    if row is None:
        raise UserError("找不到该邮件。", status=404)
    return row
