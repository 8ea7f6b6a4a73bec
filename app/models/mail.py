from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models._base import utcnow

MAIL_STATUSES = ("pending", "sending", "sent", "failed", "outbox")
MAIL_STATUS_LABELS = {"pending": "待发送", "sending": "发送中", "sent": "已发送", "failed": "发送失败",
                      "outbox": "未配置邮件服务（仅存档）"}


class OutboxMessage(db.Model):
    """Every e-mail the system writes. Without SMTP configured it stays here for the admin to read."""

    __tablename__ = "mail_outbox"
    __table_args__ = (CheckConstraint("status IN ('pending','sending','sent','failed','outbox')", name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int | None] = mapped_column(ForeignKey("rounds.id", ondelete="SET NULL"), index=True)
    to_addr: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the delivery now (or last) holding the row claimed it: a `sending` row older than
    # MAIL_SENDING_STALE_MINUTES lost its consumer and is re-queued by `flask mail sweep`.
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
