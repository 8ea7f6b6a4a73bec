"""A small deliberating round with hand-chosen totals, for decisions and report tests.

Activities (slots 2), reviewer totals r1/r2/r3 = base-1 / base / base+1:
  A1 长沙市科协       base 90  → rank 1, above the line
  A2 株洲市科协       base 85  → rank 2, above the line (株洲's activity quota is overridden to 1)
  A3 株洲市科协       base 80  → rank 3, below
  A4 湖南省教育厅     base 70  → rank 4, below
  A5 湖南省气象学会   base 60  → rank 5, below
Units (slots 1): U1 长沙市科协 88 (rank 1), U2 湖南省气象学会 75 (rank 2).
Every reviewer writes a distinct comment per nomination, so a test can tell whose text appears where.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from werkzeug.security import generate_password_hash

from app.extensions import db
from app.models import Assignment, Criterion, Nomination, Nominator, ReviewSheet, Round, Score, User
from app.models._base import utcnow
from tests.factories import make_nomination, make_round

PASSWORD = "kepu2024"
ACTIVITIES = [
    ("A1", "“科学之夜”长沙青少年科普嘉年华", "长沙市科协", 90),
    ("A2", "株洲“追梦航天”科普进校园活动", "株洲市科协", 85),
    ("A3", "株洲“银龄跨越数字鸿沟”科普行动", "株洲市科协", 80),
    ("A4", "全省中小学科学教育成果展", "湖南省教育厅", 70),
    ("A5", "“气象防灾减灾”科普宣传周", "湖南省气象学会", 60),
]
UNITS = [
    ("U1", "长沙市第一中学", "长沙市科协", 88),
    ("U2", "湖南省气象台", "湖南省气象学会", 75),
]
NOMINATORS = [
    ("长沙市科协", "city", 1, None),
    ("株洲市科协", "city", 2, 1),  # quota_activity override
    ("湖南省教育厅", "member", 20, None),
    ("湖南省气象学会", "society", 40, None),
]
REVIEWER_OFFSETS = {"r1": -1.0, "r2": 0.0, "r3": 1.0}


@functools.cache
def _hash() -> str:
    return generate_password_hash(PASSWORD)


def split(total: float, criteria: list[Criterion]) -> list[float]:
    """Spread a total over the rubric proportionally to each max, in steps of 0.5."""
    full = sum(c.max_score for c in criteria)
    values = [round(total * c.max_score / full * 2) / 2 for c in criteria]
    values[-1] += total - sum(values)
    return values


@dataclass
class SmallRound:
    round_id: int
    noms: dict[str, int] = field(default_factory=dict)  # key → nomination id
    nominators: dict[str, int] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)
    totals: dict[tuple[str, str], float] = field(default_factory=dict)  # (reviewer, key) → total

    def nom(self, key: str) -> Nomination:
        return db.session.get(Nomination, self.noms[key])

    def user(self, username: str) -> User:
        return db.session.get(User, self.users[username])

    def round(self) -> Round:
        return db.session.get(Round, self.round_id)


def _user(username: str, role: str) -> User:
    user = User(username=username, display_name=f"{username}姓名", role=role, password_hash=_hash())
    db.session.add(user)
    db.session.flush()
    return user


def build_small_round(phase: str = "deliberating", *, nomination_fields: dict | None = None) -> SmallRound:
    """Needs an app context with an empty schema. `nomination_fields` maps key → extra field values."""
    rnd = make_round(phase)
    rnd.slots_activity, rnd.slots_unit = 2, 1
    rnd.approval_date = date(2024, 11, 20)
    db.session.commit()
    out = SmallRound(rnd.id)
    nominators = {}
    for name, kind, pos, quota_activity in NOMINATORS:
        n = Nominator(name=name, kind=kind, position=pos, quota_activity=quota_activity)
        db.session.add(n)
        nominators[name] = n
    db.session.commit()
    out.nominators = {name: n.id for name, n in nominators.items()}

    people = [_user(u, "reviewer") for u in REVIEWER_OFFSETS] + [_user("chair", "chair"), _user("admin", "admin")]
    db.session.commit()
    out.users = {u.username: u.id for u in people}
    reviewers = [u for u in people if u.role == "reviewer"]

    criteria = {cat: list(db.session.scalars(select(Criterion).where(
        Criterion.round_id == rnd.id, Criterion.category == cat).order_by(Criterion.position)))
        for cat in ("unit", "activity")}
    extra = nomination_fields or {}
    for category, items in (("activity", ACTIVITIES), ("unit", UNITS)):
        for key, title, nominator_name, base in items:
            fields = dict(
                host=f"{nominator_name}主办" if category == "activity" else None,
                contact_name=f"联系人{key}", contact_title=f"职务{key}", contact_phone=f"1380000{key[-1]}{key[-1]}{key[-1]}{key[-1]}",
                address=f"长沙市岳麓区地址{key}号", event_count=10 + int(key[-1]), people_served=1000 * int(key[-1]) + 7,
                summary=f"{title}的情况简介，编号{key}。" * 3, recommendation=f"同意推荐{key}，特此推荐。",
                recommendation_date=date(2024, 9, 20 + int(key[-1])),
            )
            fields.update(extra.get(key, {}))
            nom = make_nomination(rnd, nominators[nominator_name], title=fields.pop("title", title),
                                  category=category, **fields)
            out.noms[key] = nom.id
            for reviewer in reviewers:
                total = base + REVIEWER_OFFSETS[reviewer.username]
                out.totals[(reviewer.username, key)] = total
                db.session.add(Assignment(reviewer_id=reviewer.id, nomination_id=nom.id))
                sheet = ReviewSheet(reviewer_id=reviewer.id, nomination_id=nom.id, status="submitted",
                                    submitted_at=utcnow(), comment=f"{reviewer.username}对{key}的评审意见")
                for crit, value in zip(criteria[category], split(total, criteria[category]), strict=True):
                    sheet.scores.append(Score(criterion_id=crit.id, value=value))
                db.session.add(sheet)
    db.session.commit()
    return out


def build_decided_round() -> SmallRound:
    """The small round with every nomination decided from the cut line (both categories)."""
    from app.deliberation import operations as decisions

    small = build_small_round()
    for category in ("activity", "unit"):
        decisions.prefill_from_cut_line(small.round_id, category)
    return small
