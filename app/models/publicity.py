"""公示 objections (异议) and the 表扬通报's settings. The 公示 dates themselves are columns of Round."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models._base import Timestamps

OBJECTION_STATUSES = ("received", "accepted", "rejected", "closed")
OBJECTION_STATUS_LABELS = {"received": "待受理", "accepted": "已受理（核实中）", "rejected": "不予受理", "closed": "处理完毕"}
# An objection still waiting for the office: 定稿 waits for these.
OPEN_STATUSES = ("received", "accepted")
OBJECTION_RESULTS = ("upheld", "revoked")
OBJECTION_RESULT_LABELS = {"upheld": "维持推荐", "revoked": "撤销推荐"}

NAME_MAX = 50
UNIT_MAX = 100
PHONE_MAX = 30
EMAIL_MAX = 200
FACTS_MAX = 3000
NOTE_MAX = 2000
NOTICE_NUMBER_MAX = 100
NOTICE_RECIPIENTS_MAX = 500
NOTICE_BODY_MAX = 5000

DEFAULT_NOTICE_BODY = (
    "为深入贯彻落实《全民科学素质行动规划纲要（2021—2035年）》，{year}年全国科普日期间，全省各级科协、"
    "省全民科学素质纲要实施工作办公室各成员单位和省级学会围绕活动主题，广泛组织开展了形式多样、内容丰富的"
    "科普活动，取得了良好的社会效果。\n"
    "经各单位推荐、专家评审、会议审定和社会公示，决定对{unit_count}个全国科普日优秀组织单位和"
    "{activity_count}项全国科普日优秀活动予以通报表扬。\n"
    "希望受到表扬的单位珍惜荣誉、再接再厉，继续在科学普及工作中发挥示范带动作用。各单位要以受表扬的单位和"
    "活动为榜样，进一步推动科普工作高质量发展，为建设科技强国作出新的更大贡献。"
)
DEFAULT_NOTICE_RECIPIENTS = "各市州科协，省全民科学素质纲要实施工作办公室各成员单位，各省级学会："


class Objection(Timestamps, db.Model):
    """One 实名 objection filed on the public 公示 page, and how the office handled it."""

    __tablename__ = "objections"
    __table_args__ = (
        CheckConstraint("status IN ('received','accepted','rejected','closed')", name="status"),
        CheckConstraint("result IS NULL OR result IN ('upheld','revoked')", name="result"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"), index=True)
    nomination_id: Mapped[int] = mapped_column(ForeignKey("nominations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    unit: Mapped[str] = mapped_column(String(UNIT_MAX), default="")
    phone: Mapped[str] = mapped_column(String(PHONE_MAX))
    email: Mapped[str] = mapped_column(String(EMAIL_MAX), default="")
    facts: Mapped[str] = mapped_column(Text)
    attachment_name: Mapped[str | None] = mapped_column(String(100))  # our random stored name
    attachment_mime: Mapped[str | None] = mapped_column(String(50))
    attachment_size: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10), default="received")
    reject_reason: Mapped[str] = mapped_column(Text, default="")
    verification: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[str | None] = mapped_column(String(10))
    result_note: Mapped[str] = mapped_column(Text, default="")
    handled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    handled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # sha256 of the client address with the secret key: enough to see repeated filings, not the address.
    address_hash: Mapped[str] = mapped_column(String(64), default="")
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    __mapper_args__ = {"version_id_col": version}

    @property
    def status_label(self) -> str:
        return OBJECTION_STATUS_LABELS[self.status]

    @property
    def result_label(self) -> str:
        return OBJECTION_RESULT_LABELS.get(self.result or "", "")

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class NoticeSettings(Timestamps, db.Model):
    """What the admin fills in for the 表扬通报 of one round: 文号, 主送, the body template."""

    __tablename__ = "notice_settings"

    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[str] = mapped_column(String(NOTICE_NUMBER_MAX), default="")
    recipients: Mapped[str] = mapped_column(String(NOTICE_RECIPIENTS_MAX), default=DEFAULT_NOTICE_RECIPIENTS)
    body_template: Mapped[str] = mapped_column(Text, default=DEFAULT_NOTICE_BODY)
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    __mapper_args__ = {"version_id_col": version}
