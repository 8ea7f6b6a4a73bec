"""Small builders for tests that do not need the whole demo round."""

from __future__ import annotations

from datetime import date

from app.accounts import operations as users
from app.extensions import db
from app.models import Criterion, Nomination, Nominator, RankingCounter, Round
from app.models.round import DEFAULT_RUBRIC

DEFAULT_RUBRIC_ROWS = tuple((c["code"], c["name"], c["max"]) for c in DEFAULT_RUBRIC)


def make_round(phase: str = "reviewing", year: int = 2024, rubric=DEFAULT_RUBRIC_ROWS) -> Round:
    rnd = Round(year=year, name=f"{year}年评选", phase=phase, deadline=date(year, 10, 8))
    db.session.add(rnd)
    db.session.flush()
    for category in ("unit", "activity"):
        for pos, (code, name, mx) in enumerate(rubric):
            db.session.add(Criterion(round_id=rnd.id, category=category, code=code, name=name, max_score=mx,
                                     step=0.5, guidance=f"{name}评分说明", position=pos))
        db.session.add(RankingCounter(round_id=rnd.id, category=category, version=1))
    db.session.commit()
    return rnd


def make_nominator(name: str = "长沙市科协", kind: str = "city", position: int = 1) -> Nominator:
    n = Nominator(name=name, kind=kind, position=position)
    db.session.add(n)
    db.session.commit()
    return n


def make_nomination(rnd: Round, nominator: Nominator, title: str = "科普进社区活动", category: str = "activity",
                    **fields) -> Nomination:
    defaults = dict(host="长沙市科协", contact_name="张三", contact_title="部长", contact_phone="13812345678",
                    address="长沙市芙蓉区", event_count=10, people_served=2000, summary="活动简介" * 20,
                    recommendation="同意推荐。", recommendation_date=date(2024, 10, 1))
    defaults.update(fields)
    nom = Nomination(round_id=rnd.id, nominator_id=nominator.id, category=category, title=title, **defaults)
    db.session.add(nom)
    db.session.commit()
    return nom


def make_user(username: str, role: str = "reviewer", password: str = "kepu2024", affiliation: str | None = None):
    return users.create_user(username, username.upper(), role, password, affiliation=affiliation)
