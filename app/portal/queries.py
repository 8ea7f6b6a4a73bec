"""Reads for the portal pages: one unit's nominations, its quota use, who at the unit gets its mail."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.intake.quotas import quota_for
from app.models import CATEGORIES, Nomination, Nominator, Round, User

# What uses up a quota: everything the unit has handed in and not withdrawn (a draft does not).
COUNTED_STATUSES = ("submitted", "returned", "active")


@dataclass(frozen=True)
class QuotaLine:
    category: str
    quota: int
    used: int

    @property
    def left(self) -> int:
        return max(0, self.quota - self.used)


def used_count(rnd: Round, nominator_id: int, category: str, *, exclude_id: int | None = None) -> int:
    stmt = select(func.count(Nomination.id)).where(
        Nomination.round_id == rnd.id, Nomination.nominator_id == nominator_id, Nomination.category == category,
        Nomination.status.in_(COUNTED_STATUSES))
    if exclude_id is not None:
        stmt = stmt.where(Nomination.id != exclude_id)
    return int(db.session.scalar(stmt) or 0)


def quota_line(rnd: Round, unit: Nominator, category: str) -> QuotaLine:
    return QuotaLine(category, quota_for(rnd, unit, category), used_count(rnd, unit.id, category))


def quota_lines(rnd: Round, unit: Nominator) -> list[QuotaLine]:
    return [quota_line(rnd, unit, c) for c in CATEGORIES]


def unit_nominations(rnd: Round, unit: Nominator) -> list[Nomination]:
    """Every nomination of the unit in the round — its drafts, and imported ones too (read-only for it)."""
    return list(db.session.scalars(
        select(Nomination).where(Nomination.round_id == rnd.id, Nomination.nominator_id == unit.id)
        .options(selectinload(Nomination.attachments))
        .order_by(Nomination.category, Nomination.created_at, Nomination.id)))


def unit_addresses(nominator_id: int) -> list[str]:
    """E-mail addresses of the unit's active accounts, each once."""
    seen, out = set(), []
    for email in db.session.scalars(select(User.email).where(
            User.role == "nominator", User.affiliation_id == nominator_id, User.active.is_(True))
            .order_by(User.id)):
        email = (email or "").strip()
        if email and email.casefold() not in seen:
            seen.add(email.casefold())
            out.append(email)
    return out
