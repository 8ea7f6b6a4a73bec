from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models._base import Timestamps, utcnow
from app.models.people import Nominator

# Field limits shared by forms, imports and database checks.
SUMMARY_MAX = 500
RECOMMENDATION_MAX = 500
TITLE_MAX = 100
SHORT_MAX = 50
ADDRESS_MAX = 150
RETURN_NOTE_MAX = 1000

# A nomination's life: a 推荐单位 drafts it in the portal (草稿), submits it (已提交); the admin returns
# it for changes (退回修改, back to the unit) or accepts it (已受理 = "active": only active nominations
# are checked, assigned, scored and ranked). Imported or admin-typed nominations start active.
NOMINATION_STATUSES = ("draft", "submitted", "returned", "active", "withdrawn")
NOMINATION_STATUS_LABELS = {"draft": "草稿", "submitted": "已提交", "returned": "退回修改", "active": "已受理",
                            "withdrawn": "已撤回"}
ORIGINS = ("admin", "portal")


class Nomination(Timestamps, db.Model):
    __tablename__ = "nominations"
    __table_args__ = (
        CheckConstraint("category IN ('unit','activity')", name="category"),
        CheckConstraint("status IN ('draft','submitted','returned','active','withdrawn')", name="status"),
        CheckConstraint("origin IN ('admin','portal')", name="origin"),
        CheckConstraint("event_count >= 0 AND people_served >= 0", name="counts"),
        CheckConstraint(f"length(summary) <= {SUMMARY_MAX}", name="summary_len"),
        CheckConstraint(f"length(recommendation) <= {RECOMMENDATION_MAX}", name="recommendation_len"),
        UniqueConstraint("round_id", "source_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"), index=True)
    nominator_id: Mapped[int] = mapped_column(ForeignKey("nominators.id"), index=True)
    category: Mapped[str] = mapped_column(String(10))
    title: Mapped[str] = mapped_column(String(TITLE_MAX))  # 单位名称 / 活动名称
    host: Mapped[str | None] = mapped_column(String(TITLE_MAX))  # 主办单位 (附件2 only)
    contact_name: Mapped[str] = mapped_column(String(SHORT_MAX), default="")
    contact_title: Mapped[str] = mapped_column(String(SHORT_MAX), default="")
    contact_phone: Mapped[str] = mapped_column(String(SHORT_MAX), default="")
    address: Mapped[str] = mapped_column(String(ADDRESS_MAX), default="")
    event_count: Mapped[int] = mapped_column(Integer, default=0)
    people_served: Mapped[int] = mapped_column(Integer, default=0)
    summary: Mapped[str] = mapped_column(Text, default="")
    recommendation: Mapped[str] = mapped_column(Text, default="")
    recommendation_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(10), default="active")
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Stable key of an imported source (file hash or title+nominator) so re-imports do not duplicate.
    source_key: Mapped[str | None] = mapped_column(String(80))
    # The 简介 exactly as received when an imported form exceeded SUMMARY_MAX: `summary` then holds the
    # first SUMMARY_MAX characters and 形式审查 keeps a blocking finding until an admin rewrites it.
    summary_original: Mapped[str | None] = mapped_column(Text)
    # Portal workflow: who created it, when the unit last submitted, the admin's note when returning it.
    origin: Mapped[str] = mapped_column(String(10), default="admin", server_default="admin")
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    return_note: Mapped[str] = mapped_column(Text, default="", server_default="")

    nominator: Mapped[Nominator] = relationship()
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="nomination", order_by="Attachment.position", cascade="all, delete-orphan"
    )

    @property
    def photos(self) -> list[Attachment]:
        return [a for a in self.attachments if a.kind == "photo"]

    @property
    def video(self) -> Attachment | None:
        return next((a for a in self.attachments if a.kind == "video"), None)

    @property
    def stamped(self) -> Attachment | None:
        """The scan of the printed, stamped 推荐表 (盖章件)."""
        return next((a for a in self.attachments if a.kind == "stamped"), None)

    @property
    def status_label(self) -> str:
        return NOMINATION_STATUS_LABELS[self.status]


class Attachment(db.Model):
    __tablename__ = "attachments"
    __table_args__ = (
        CheckConstraint("kind IN ('photo','video','stamped')", name="kind"),
        CheckConstraint("size_bytes >= 0", name="size"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    nomination_id: Mapped[int] = mapped_column(ForeignKey("nominations.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    stored_name: Mapped[str] = mapped_column(String(100), unique=True)
    thumb_name: Mapped[str | None] = mapped_column(String(100))
    original_name: Mapped[str] = mapped_column(String(200), default="")
    mime: Mapped[str] = mapped_column(String(50))
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    nomination: Mapped[Nomination] = relationship(back_populates="attachments")


class FormFinding(Timestamps, db.Model):
    """One 形式审查 finding: a rule a nomination (or the round) breaks, until resolved or waived."""

    __tablename__ = "form_findings"
    __table_args__ = (
        CheckConstraint("status IN ('open','resolved','waived')", name="status"),
        UniqueConstraint("round_id", "nomination_id", "rule"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"), index=True)
    nomination_id: Mapped[int | None] = mapped_column(ForeignKey("nominations.id", ondelete="CASCADE"))
    rule: Mapped[str] = mapped_column(String(30))
    message: Mapped[str] = mapped_column(Text)
    blocking: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(10), default="open")
    note: Mapped[str] = mapped_column(Text, default="")
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class DeadlineExtension(Timestamps, db.Model):
    """A later deadline granted to one 推荐单位 in one round (its submissions up to then are not late)."""

    __tablename__ = "deadline_extensions"
    __table_args__ = (UniqueConstraint("round_id", "nominator_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"), index=True)
    nominator_id: Mapped[int] = mapped_column(ForeignKey("nominators.id", ondelete="CASCADE"))
    until: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text, default="")
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
