"""When a unit may still submit: the round's deadline (a Beijing calendar day, open until 24:00), or the
later day of the unit's DeadlineExtension. The one home of that rule: the portal's checks, its countdown
and the admin's extension page read it here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import select

from app.core.time import BEIJING, aware, utcnow
from app.extensions import db
from app.models import DeadlineExtension, Nominator, Round

# Drafting and submitting happen while materials are collected (and while the admin prepares the round).
PORTAL_PHASES = ("setup", "collecting")


@dataclass(frozen=True)
class Deadline:
    day: date | None  # None: the round has no deadline yet
    extended: bool
    reason: str = ""

    @property
    def closes_at(self) -> datetime | None:
        """24:00 Beijing time of the day, i.e. 00:00 of the next day."""
        if self.day is None:
            return None
        return datetime.combine(self.day + timedelta(days=1), time(0, 0), tzinfo=BEIJING)

    def passed(self, now: datetime | None = None) -> bool:
        closes = self.closes_at
        return closes is not None and aware(now or utcnow()) >= closes

    def seconds_left(self, now: datetime | None = None) -> int | None:
        closes = self.closes_at
        if closes is None:
            return None
        return max(0, int((closes - aware(now or utcnow())).total_seconds()))

    def days_left(self, now: datetime | None = None) -> int | None:
        left = self.seconds_left(now)
        return None if left is None else -(-left // 86400)

    @property
    def label(self) -> str:
        d = self.day
        return f"{d.year}年{d.month}月{d.day}日 24:00" if d else "未设定"


def extension_of(rnd: Round, nominator: Nominator | int, *, lock: bool = False) -> DeadlineExtension | None:
    """The unit's extension in the round; `lock` takes its row lock, inside a write transaction."""
    nominator_id = nominator if isinstance(nominator, int) else nominator.id
    stmt = select(DeadlineExtension).where(DeadlineExtension.round_id == rnd.id,
                                           DeadlineExtension.nominator_id == nominator_id)
    return db.session.scalar(stmt.with_for_update() if lock else stmt)


def deadline_for(rnd: Round, nominator: Nominator | int) -> Deadline:
    ext = extension_of(rnd, nominator)
    if ext is not None and (rnd.deadline is None or ext.until > rnd.deadline):
        return Deadline(ext.until, True, ext.reason)
    return Deadline(rnd.deadline, False)


def deadline_message(deadline: Deadline) -> str:
    return f"已过报送截止时间（{deadline.label}）。"
