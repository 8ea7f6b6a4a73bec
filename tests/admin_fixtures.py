"""Builders shared by the admin area's tests: a small round with reviewers (two affiliated, for 回避),
and signed-in clients that carry their CSRF token."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

from app.extensions import db
from app.models import AuditEvent, Criterion, Nomination, Nominator, ReviewSheet, Score, User
from tests.conftest import DEMO_PASSWORD, csrf_token_from, login
from tests.factories import make_nomination, make_nominator, make_round


@dataclass
class World:
    round_id: int
    nominators: dict[str, int]
    nominations: dict[str, int]
    reviewers: dict[str, int]


def build_world(phase: str = "collecting", *, n_per_nominator: int = 2) -> World:
    """Three nominators (two cities, one society), unit and activity nominations, four reviewers —
    r1 belongs to 长沙市科协 and r2 to 株洲市科协 (so they recuse their own unit's nominations) —
    plus an admin, a chair and a deactivated reviewer."""
    rnd = make_round(phase)
    nominators = {
        "cs": make_nominator("长沙市科协", "city", 1).id,
        "zz": make_nominator("株洲市科协", "city", 2).id,
        "soc": make_nominator("湖南省科普作家协会", "society", 1).id,
    }
    nominations = {}
    for key, nid in nominators.items():
        nominator = db.session.get(Nominator, nid)
        for i in range(n_per_nominator):
            for category in ("unit", "activity"):
                name = f"{key}-{category}-{i}"
                nominations[name] = make_nomination(rnd, nominator, title=f"{nominator.name}{category}{i}",
                                                    category=category).id
    people = [("r1", "reviewer", nominators["cs"]), ("r2", "reviewer", nominators["zz"]), ("r3", "reviewer", None),
              ("r4", "reviewer", None), ("gone", "reviewer", None), ("admin1", "admin", None), ("chair1", "chair", None)]
    made = {}
    for username, role, affiliation_id in people:
        # One scrypt hash for everyone: hashing per user would dominate the test time.
        user = User(username=username, display_name=username.upper(), role=role, password_hash=_password_hash(),
                    affiliation_id=affiliation_id, active=username != "gone")
        db.session.add(user)
        made[username] = user
    db.session.commit()
    reviewers = {k: made[k].id for k in ("r1", "r2", "r3", "r4")}
    return World(rnd.id, nominators, nominations, reviewers)


@lru_cache(maxsize=1)
def _password_hash() -> str:
    return generate_password_hash(DEMO_PASSWORD)


def add_sheet(reviewer_id: int, nomination_id: int, *, status: str = "submitted", scores: bool = True) -> int:
    """A review sheet as the scoring service would leave it (written directly: scoring is not ours)."""
    nom = db.session.get(Nomination, nomination_id)
    sheet = ReviewSheet(reviewer_id=reviewer_id, nomination_id=nomination_id, status=status)
    if scores:
        for c in db.session.scalars(select(Criterion).where(Criterion.round_id == nom.round_id,
                                                            Criterion.category == nom.category)):
            sheet.scores.append(Score(criterion_id=c.id, value=c.max_score / 2))
    db.session.add(sheet)
    db.session.commit()
    return sheet.id


def events(action: str | None = None) -> list[AuditEvent]:
    stmt = select(AuditEvent).order_by(AuditEvent.id)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    return list(db.session.scalars(stmt))


def count(model, *conds) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*conds)) or 0


class Browser:
    """A test client signed in as someone, with the page's CSRF token at hand."""

    def __init__(self, app, username: str):
        self.client = app.test_client()
        resp = login(self.client, username)
        assert resp.status_code == 303, resp.get_data(as_text=True)[:500]
        self.token = csrf_token_from(self.client.get("/account").get_data(as_text=True))

    def get(self, url, **kw):
        return self.client.get(url, **kw)

    def post(self, url, data=None, *, csrf: bool = True, **kw):
        data = dict(data or {})
        if csrf:
            data.setdefault("csrf_token", self.token)
        return self.client.post(url, data=data, **kw)
