"""Rounds in 公示 for the publicity tests: the small hand-made round (tests/chair_fixtures.py) moved
into 公示 with a period around today, and the demo round (contact names and phones of 150 nominations)
decided from the cut line and moved into 公示."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from app.deliberation import operations as decisions
from app.extensions import db
from app.models import CATEGORIES, Round, User
from app.publicity import operations as publicity
from app.rounds import phases as rounds
from tests.chair_fixtures import build_decided_round

REASON = "测试：按现有材料推进"


def publicize(round_id: int, *, start: date | None = None, days: int = 5) -> None:
    decisions.publicize(round_id, confirm=True, reason=REASON)
    publicity.set_period(round_id, start or publicity.today(), days, None)


def build_publicized_round(*, start: date | None = None, days: int = 5):
    """The small round (A1, A2 and U1 approved) in 公示, its period starting `start` (today)."""
    small = build_decided_round()
    publicize(small.round_id, start=start, days=days)
    return small


def closed_period_start() -> date:
    """A start whose 1-day period is surely over (weeks ago, inside the calendar's years)."""
    return publicity.today() - timedelta(days=40)


def publicize_demo_round() -> Round:
    """The seeded demo round (stage reviewing) → 会议审定 → decisions from the cut line → 公示."""
    rnd = db.session.scalar(select(Round).order_by(Round.id.desc()))
    admin = db.session.scalar(select(User).where(User.role == "admin").order_by(User.id))
    rounds.change_phase(rnd.id, "deliberating", actor=admin)
    for category in CATEGORIES:
        decisions.prefill_from_cut_line(rnd.id, category, actor=admin)
        decisions.fill_opinions(rnd.id, category, actor=admin)
    decisions.set_approval_date(rnd.id, date(rnd.year, 11, 20), actor=admin)
    publicize(rnd.id)
    return db.session.get(Round, rnd.id)
