from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models._base import Timestamps

PHASES = ("setup", "collecting", "reviewing", "deliberating", "publicizing", "final")
PHASE_LABELS = {
    "setup": "筹备",
    "collecting": "材料收集",
    "reviewing": "专家评审",
    "deliberating": "会议审定",
    "publicizing": "公示",
    "final": "已定稿",
}
METHODS = ("mean", "trimmed", "median", "zscore")
METHOD_LABELS = {"mean": "算术平均", "trimmed": "去掉最高最低分后平均", "median": "中位数", "zscore": "标准分（Z 分数）"}
DEFAULT_QUOTAS = {"city": {"unit": 8, "activity": 6}, "member": {"unit": 2, "activity": 2}, "society": {"unit": 1, "activity": 1}}


class Round(Timestamps, db.Model):
    __tablename__ = "rounds"
    __table_args__ = (
        CheckConstraint("phase IN ('setup','collecting','reviewing','deliberating','publicizing','final')", name="phase"),
        CheckConstraint("method IN ('mean','trimmed','median','zscore')", name="method"),
        CheckConstraint("slots_unit >= 0 AND slots_activity >= 0", name="slots"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    year: Mapped[int] = mapped_column(Integer, unique=True)
    name: Mapped[str] = mapped_column(String(100))
    phase: Mapped[str] = mapped_column(String(20), default="setup")
    deadline: Mapped[date | None] = mapped_column(Date)
    slots_unit: Mapped[int] = mapped_column(Integer, default=40)
    slots_activity: Mapped[int] = mapped_column(Integer, default=40)
    method: Mapped[str] = mapped_column(String(10), default="trimmed")
    quotas: Mapped[dict] = mapped_column(JSON, default=lambda: DEFAULT_QUOTAS)
    assignment_mode: Mapped[str] = mapped_column(String(10), default="all")
    reviewers_per_nomination: Mapped[int | None] = mapped_column(Integer)
    opinion_approve_template: Mapped[str] = mapped_column(
        Text, default="经专家评审、会议审定，同意推荐为{year}年全国科普日{category}。"
    )
    opinion_decline_template: Mapped[str] = mapped_column(Text, default="经审定，不予推荐。")
    approval_date: Mapped[date | None] = mapped_column(Date)
    seal_file: Mapped[str | None] = mapped_column(String(100))
    list_unordered: Mapped[bool] = mapped_column(default=True)
    finalized_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    criteria: Mapped[list[Criterion]] = relationship(
        back_populates="round", order_by="Criterion.position", cascade="all, delete-orphan"
    )

    def slots(self, category: str) -> int:
        return self.slots_unit if category == "unit" else self.slots_activity

    def quota(self, kind: str, category: str) -> int:
        return int((self.quotas or DEFAULT_QUOTAS).get(kind, {}).get(category, 0))

    @property
    def phase_label(self) -> str:
        return PHASE_LABELS[self.phase]


class Criterion(db.Model):
    __tablename__ = "criteria"
    __table_args__ = (
        UniqueConstraint("round_id", "category", "code"),
        CheckConstraint("category IN ('unit','activity')", name="category"),
        CheckConstraint("max_score > 0 AND step > 0 AND weight > 0", name="positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"), index=True)
    category: Mapped[str] = mapped_column(String(10))
    code: Mapped[str] = mapped_column(String(30))
    name: Mapped[str] = mapped_column(String(50))
    max_score: Mapped[float] = mapped_column(Float)
    step: Mapped[float] = mapped_column(Float, default=0.5)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    guidance: Mapped[str] = mapped_column(Text, default="")
    position: Mapped[int] = mapped_column(Integer, default=0)

    round: Mapped[Round] = relationship(back_populates="criteria")


class RankingCounter(db.Model):
    """Bumped by every write that can change a ranking; its value is the ranking's ETag."""

    __tablename__ = "ranking_counters"
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"), primary_key=True)
    category: Mapped[str] = mapped_column(String(10), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
