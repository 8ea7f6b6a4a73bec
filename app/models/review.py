from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models._base import Timestamps, utcnow

COMMENT_MAX = 1000


class Assignment(db.Model):
    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("reviewer_id", "nomination_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    nomination_id: Mapped[int] = mapped_column(ForeignKey("nominations.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Recusal(db.Model):
    """A conflict a reviewer declared (affiliation conflicts are derived, never stored)."""

    __tablename__ = "recusals"
    __table_args__ = (UniqueConstraint("reviewer_id", "nomination_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    nomination_id: Mapped[int] = mapped_column(ForeignKey("nominations.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReviewSheet(Timestamps, db.Model):
    __tablename__ = "review_sheets"
    __table_args__ = (
        UniqueConstraint("reviewer_id", "nomination_id"),
        CheckConstraint("status IN ('draft','submitted')", name="status"),
        CheckConstraint("version >= 1", name="version"),
        CheckConstraint(f"length(comment) <= {COMMENT_MAX}", name="comment_len"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    nomination_id: Mapped[int] = mapped_column(ForeignKey("nominations.id", ondelete="CASCADE"), index=True)
    comment: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(10), default="draft")
    version: Mapped[int] = mapped_column(Integer, default=1)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What the ranking aggregates, kept beside the scores in the same transaction (app/review/totals.py):
    # the sum of the values over the round × category's criteria, and how many of them have a value.
    total: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    n_values: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    scores: Mapped[list[Score]] = relationship(back_populates="sheet", cascade="all, delete-orphan")


class Score(db.Model):
    """One criterion value; (sheet, criterion) is unique and a sheet is unique per reviewer × nomination,
    so reviewer × nomination × criterion is unique."""

    __tablename__ = "scores"
    __table_args__ = (
        UniqueConstraint("sheet_id", "criterion_id"),
        CheckConstraint("value >= 0", name="value"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sheet_id: Mapped[int] = mapped_column(ForeignKey("review_sheets.id", ondelete="CASCADE"), index=True)
    criterion_id: Mapped[int] = mapped_column(ForeignKey("criteria.id", ondelete="CASCADE"), index=True)
    value: Mapped[float] = mapped_column(Float)

    sheet: Mapped[ReviewSheet] = relationship(back_populates="scores")


class Decision(Timestamps, db.Model):
    __tablename__ = "decisions"
    __table_args__ = (CheckConstraint("outcome IN ('approve','decline')", name="outcome"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    nomination_id: Mapped[int] = mapped_column(ForeignKey("nominations.id", ondelete="CASCADE"), unique=True)
    outcome: Mapped[str] = mapped_column(String(10))
    opinion: Mapped[str] = mapped_column(Text, default="")
    # True once the chair wrote the opinion by hand: until then it follows the outcome's template.
    opinion_edited: Mapped[bool] = mapped_column(default=False, server_default=false())
    override_reason: Mapped[str] = mapped_column(Text, default="")
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    version: Mapped[int] = mapped_column(Integer, default=1)
