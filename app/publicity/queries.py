"""Reads of the 公示: which rounds are public, their lists (the published lists' query and order:
14 市州 → 省直 → 学会, app/reports/queries.py), the choices of the objection form, the objections."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from app.core.errors import UserError
from app.core.templating import cn_date
from app.extensions import db
from app.models import CATEGORIES, CATEGORY_LABELS, Nomination, NoticeSettings, Objection, Round
from app.models.publicity import DEFAULT_NOTICE_BODY, DEFAULT_NOTICE_RECIPIENTS, OPEN_STATUSES
from app.publicity import calendar
from app.reports import queries as lists

PUBLIC_PHASES = ("publicizing", "final")


@dataclass
class PublicPage:
    round: Round
    period: calendar.Period
    groups: dict  # category → [KindGroup]
    final: bool

    @property
    def counts(self) -> dict[str, int]:
        return {c: sum(g.count for g in groups) for c, groups in self.groups.items()}


def public_rounds() -> list[Round]:
    return list(db.session.scalars(select(Round).where(Round.phase.in_(PUBLIC_PHASES)).order_by(Round.year.desc())))


def public_round(year: int) -> Round:
    """The round of `year` if it has reached 公示; any other round is not there for the public (404)."""
    rnd = db.session.scalar(select(Round).where(Round.year == year))
    if rnd is None or rnd.phase not in PUBLIC_PHASES:
        raise UserError("找不到该年度的公示。", status=404)
    return rnd


def page(rnd: Round) -> PublicPage:
    groups = {c: lists.approved_groups(rnd.id, c) for c in CATEGORIES}
    return PublicPage(rnd, calendar.of_round(rnd), groups, rnd.phase == "final")


def listed_choices(pg: PublicPage) -> list[tuple[int, str]]:
    """(nomination id, label) of every item on the page's list, in the list's order, for the objection form."""
    out = []
    for category, groups in pg.groups.items():
        for group in groups:
            for nominator in group.nominators:
                for item in nominator.items:
                    out.append((item.nomination_id, f"{CATEGORY_LABELS[category]} {item.number}：{item.title}"
                                                     f"（{nominator.name}）"))
    return out


def objections(round_id: int) -> list[Objection]:
    return list(db.session.scalars(select(Objection).where(Objection.round_id == round_id).order_by(Objection.id)))


def titles(nomination_ids) -> dict[int, tuple[str, str]]:
    """nomination id → (title, category) for the rows of the objections list."""
    ids = sorted(set(nomination_ids))
    if not ids:
        return {}
    return {i: (t, c) for i, t, c in db.session.execute(
        select(Nomination.id, Nomination.title, Nomination.category).where(Nomination.id.in_(ids)))}


def objection(objection_id: int) -> Objection:
    obj = db.session.get(Objection, objection_id)
    if obj is None:
        raise UserError("找不到该异议。", status=404)
    return obj


def open_count(round_id: int) -> int:
    return db.session.scalar(select(func.count(Objection.id)).where(
        Objection.round_id == round_id, Objection.status.in_(OPEN_STATUSES))) or 0


def counts_by_status(round_id: int) -> dict[str, int]:
    return dict(db.session.execute(select(Objection.status, func.count(Objection.id))
                                   .where(Objection.round_id == round_id).group_by(Objection.status)).all())


def notice_settings(round_id: int) -> NoticeSettings:
    """The round's 通报 settings; defaults (not yet saved) when the admin has not filled them in."""
    found = db.session.get(NoticeSettings, round_id)
    if found is not None:
        return found
    return NoticeSettings(round_id=round_id, number="", recipients=DEFAULT_NOTICE_RECIPIENTS,
                          body_template=DEFAULT_NOTICE_BODY, version=0)


def period_text(period: calendar.Period) -> str:
    if not period.known:
        return period.problem
    text = f"{cn_date(period.start)}至{cn_date(period.end)}（{period.days}个工作日）"
    return text + ("，截止日期为手工填写" if period.manual else "")
