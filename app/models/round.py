from __future__ import annotations

import copy
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

# ------------------------------------------------------------------------------------------------
# What a new round starts with. The one home of these numbers: round creation, the demo data and the
# tests read them from here (it lives in the data layer because the column default needs it, and the
# models import no domain package). The max scores carry the notice's weighting (30/20/30/20); a
# total is the plain sum of the criteria — there is no separate weight.
DEFAULT_STEP = 0.5
DEFAULT_RUBRIC: tuple[dict, ...] = (
    {
        "code": "content",
        "name": "活动内容",
        "max": 30,
        "step": DEFAULT_STEP,
        "guidance": "紧扣“提升全民科学素质，协力建设科技强国”主题，聚焦前沿科技或民生热点，内容科学准确、"
        "导向正确、针对目标人群设计的得高分；内容陈旧空泛或存在科学性错误的酌情扣分。",
    },
    {
        "code": "format",
        "name": "活动形式",
        "max": 20,
        "step": DEFAULT_STEP,
        "guidance": "线上线下结合，采用场景式、体验式、沉浸式等群众喜闻乐见的形式，分众施策、"
        "创新突出的得高分；以会代活、形式单一或有形式主义倾向的扣分。",
    },
    {
        "code": "influence",
        "name": "活动影响力",
        "max": 30,
        "step": DEFAULT_STEP,
        "guidance": "活动场数和服务人数多、覆盖基层和重点人群广，获主流媒体报道或形成品牌、具有示范带动作用的得高分；"
        "数据应有照片、视频等材料佐证。",
    },
    {
        "code": "response",
        "name": "群众反映",
        "max": 20,
        "step": DEFAULT_STEP,
        "guidance": "群众参与踊跃、互动充分、满意度高，有具体反馈或提出常态化开展需求的得高分；"
        "仅有笼统表述、缺乏佐证的酌情给分。",
    },
)
# Per nominator kind, per category: how many nominations one nominator may submit.
DEFAULT_QUOTAS: dict[str, dict[str, int]] = {
    "city": {"unit": 8, "activity": 6},
    "member": {"unit": 2, "activity": 2},
    "society": {"unit": 1, "activity": 1},
}


def default_quotas() -> dict[str, dict[str, int]]:
    """A fresh copy: a round's quotas are its own, editing them must never touch the defaults."""
    return copy.deepcopy(DEFAULT_QUOTAS)


def default_criteria(round_id: int, category: str) -> list[Criterion]:
    """The default rubric as Criterion rows for one category of a round."""
    return [Criterion(round_id=round_id, category=category, code=c["code"], name=c["name"], max_score=c["max"],
                      step=c["step"], guidance=c["guidance"], position=pos) for pos, c in enumerate(DEFAULT_RUBRIC)]


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
    quotas: Mapped[dict] = mapped_column(JSON, default=default_quotas)
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
    # 公示: the start day and the length in 工作日 (counting the start day); the end is
    # computed on the statutory calendar (app/publicity/calendar.py), or entered by hand for a year the
    # calendar package does not cover yet.
    publicity_start: Mapped[date | None] = mapped_column(Date)
    publicity_days: Mapped[int] = mapped_column(Integer, default=5, server_default="5")
    publicity_end: Mapped[date | None] = mapped_column(Date)
    # --- end 公示
    # Optimistic lock for the settings form: whoever saves a round (settings, 审定意见 templates, phase)
    # bumps it, so a form based on an older version is refused instead of silently overwriting.
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    __mapper_args__ = {"version_id_col": version}

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
        CheckConstraint("max_score > 0 AND step > 0", name="positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"), index=True)
    category: Mapped[str] = mapped_column(String(10))
    code: Mapped[str] = mapped_column(String(30))
    name: Mapped[str] = mapped_column(String(50))
    max_score: Mapped[float] = mapped_column(Float)
    step: Mapped[float] = mapped_column(Float, default=DEFAULT_STEP)
    guidance: Mapped[str] = mapped_column(Text, default="")
    position: Mapped[int] = mapped_column(Integer, default=0)

    round: Mapped[Round] = relationship(back_populates="criteria")


class RankingCounter(db.Model):
    """Bumped by every write that can change a ranking; its value is the ranking's ETag."""

    __tablename__ = "ranking_counters"
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"), primary_key=True)
    category: Mapped[str] = mapped_column(String(10), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
