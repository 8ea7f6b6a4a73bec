"""Small, explicit ranking scenarios: reviewers, nominations and sheets whose totals are hand-chosen."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import Assignment, Criterion, Nominator, Recusal, ReviewSheet, Score, User
from app.models._base import utcnow
from tests.factories import make_nomination, make_round

RUBRIC_MAX = (("content", 30.0), ("format", 20.0), ("influence", 30.0), ("response", 20.0))


def split(total: float) -> list[float]:
    """A total spread greedily over the default rubric (content 30, format 20, influence 30, response 20)."""
    out, rest = [], total
    for _code, mx in RUBRIC_MAX:
        v = min(mx, rest)
        out.append(v)
        rest -= v
    assert rest == 0, f"{total} exceeds the rubric"
    return out


class Scenario:
    def __init__(self, phase: str = "reviewing", category: str = "activity"):
        self.round = make_round(phase)
        self.category = category
        self.nominator = self.add_nominator("长沙市科协", "city", 1)
        self.criteria = {c.code: c for c in db.session.scalars(
            select(Criterion).where(Criterion.round_id == self.round.id, Criterion.category == category)
            .order_by(Criterion.position))}
        self._n_users = 0

    @classmethod
    def existing(cls, rnd, category: str = "activity") -> Scenario:
        """Builders over a round that already exists (to add sheets in the middle of a test)."""
        s = cls.__new__(cls)
        s.round, s.category, s.nominator, s._n_users = rnd, category, None, 1000
        s.criteria = {c.code: c for c in db.session.scalars(
            select(Criterion).where(Criterion.round_id == rnd.id, Criterion.category == category))}
        return s

    def add_nominator(self, name: str, kind: str = "city", position: int = 1) -> Nominator:
        n = Nominator(name=name, kind=kind, position=position)
        db.session.add(n)
        db.session.commit()
        return n

    def reviewer(self, name: str | None = None, affiliation: Nominator | None = None) -> User:
        self._n_users += 1
        username = name or f"r{self._n_users}"
        # A placeholder hash: these reviewers never sign in, and scrypt is slow.
        user = User(username=username, display_name=f"专家{username}", role="reviewer", password_hash="-",
                    affiliation_id=affiliation.id if affiliation else None)
        db.session.add(user)
        db.session.commit()
        return user

    def nomination(self, title: str, nominator: Nominator | None = None, category: str | None = None, **kw):
        return make_nomination(self.round, nominator or self.nominator, title=title,
                               category=category or self.category, **kw)

    def assign(self, reviewer: User, nomination) -> None:
        db.session.add(Assignment(reviewer_id=reviewer.id, nomination_id=nomination.id))
        db.session.commit()

    def recuse(self, reviewer: User, nomination) -> None:
        db.session.add(Recusal(reviewer_id=reviewer.id, nomination_id=nomination.id, reason="回避"))
        db.session.commit()

    def sheet(self, reviewer: User, nomination, total: float | None = None, *, values: dict | None = None,
              status: str = "submitted", assign: bool = True, comment: str = "") -> ReviewSheet:
        """A sheet with `total` split over the rubric, or explicit {code: value} (possibly incomplete)."""
        if assign:
            self.assign(reviewer, nomination)
        if values is None:
            values = dict(zip((c for c, _ in RUBRIC_MAX), split(total), strict=True))
        criteria = {c.code: c for c in db.session.scalars(
            select(Criterion).where(Criterion.round_id == self.round.id,
                                    Criterion.category == nomination.category))}
        sheet = ReviewSheet(reviewer_id=reviewer.id, nomination_id=nomination.id, status=status, comment=comment,
                            submitted_at=utcnow() if status == "submitted" else None)
        for code, value in values.items():
            sheet.scores.append(Score(criterion_id=criteria[code].id, value=value))
        db.session.add(sheet)
        db.session.commit()
        return sheet

    def panel(self, count: int) -> list[User]:
        return [self.reviewer() for _ in range(count)]

    def scored(self, title: str, totals: list[float], reviewers: list[User], **kw):
        """A nomination scored by the first len(totals) reviewers with the given totals."""
        nom = self.nomination(title, **kw)
        for reviewer, total in zip(reviewers, totals, strict=False):
            self.sheet(reviewer, nom, total)
        return nom
