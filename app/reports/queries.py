"""Read-only queries behind the documents. Aggregates come from the ranking service; the rest are
plain selects shaped for the templates (a handful of queries per document, never one per row)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import case, func, select
from sqlalchemy.orm import selectinload

from app.core.errors import UserError
from app.extensions import db
from app.models import Assignment, Criterion, Decision, Nomination, Nominator, ReviewSheet, Round, Score, User

# Official order of the groups in a published list, and their headings.
KIND_ORDER = ("city", "member", "society")
LIST_HEADINGS = {"city": "市州", "member": "省直单位", "society": "省级学会"}
_KIND_SORT = case({"city": 0, "member": 1, "society": 2}, value=Nominator.kind, else_=3)


@dataclass
class ListItem:
    number: int
    nomination_id: int
    title: str
    host: str | None
    opinion: str


@dataclass
class NominatorGroup:
    nominator_id: int
    name: str
    items: list[ListItem] = field(default_factory=list)


@dataclass
class KindGroup:
    kind: str
    heading: str
    nominators: list[NominatorGroup] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(len(n.items) for n in self.nominators)


def criteria(round_id: int, category: str) -> list[Criterion]:
    return list(db.session.scalars(
        select(Criterion).where(Criterion.round_id == round_id, Criterion.category == category)
        .order_by(Criterion.position, Criterion.id)))


def _approved_in_order(stmt, round_id: int, category: str):
    """`stmt` over the category's active, approved nominations, in the list's official order."""
    return (stmt.join(Decision, Decision.nomination_id == Nomination.id)
            .join(Nominator, Nominator.id == Nomination.nominator_id)
            .where(Nomination.round_id == round_id, Nomination.category == category, Nomination.status == "active",
                   Decision.outcome == "approve")
            .order_by(_KIND_SORT, Nominator.position, Nominator.id, Nomination.received_at, Nomination.id))


def approved_groups(round_id: int, category: str) -> list[KindGroup]:
    """Approved nominations grouped kind → nominator in the official order (市州 in their standard
    order, then 省直单位, then 省级学会); within a nominator, in the order they were received."""
    stmt = _approved_in_order(
        select(Nomination.id, Nomination.title, Nomination.host, Decision.opinion, Nominator.id, Nominator.name,
               Nominator.kind), round_id, category)
    groups: dict[str, KindGroup] = {}
    number = 0
    for nom_id, title, host, opinion, nominator_id, nominator_name, kind in db.session.execute(stmt):
        group = groups.setdefault(kind, KindGroup(kind, LIST_HEADINGS.get(kind, kind)))
        if not group.nominators or group.nominators[-1].nominator_id != nominator_id:
            group.nominators.append(NominatorGroup(nominator_id, nominator_name))
        number += 1
        group.nominators[-1].items.append(ListItem(number, nom_id, title, host, opinion))
    return [groups[k] for k in KIND_ORDER if k in groups] + [g for k, g in groups.items() if k not in KIND_ORDER]


def approved_nominations(round_id: int, category: str, *, only: list[int] | None = None) -> list[Nomination]:
    """Approved nominations with their nominator and attachments loaded, in the list's order; `only`:
    just those of these ids (one run of a split batch)."""
    stmt = _approved_in_order(select(Nomination), round_id, category).options(
        selectinload(Nomination.nominator), selectinload(Nomination.attachments))
    if only is not None:
        stmt = stmt.where(Nomination.id.in_(only))
    return list(db.session.scalars(stmt))


def decisions_for(nomination_ids: list[int]) -> dict[int, Decision]:
    if not nomination_ids:
        return {}
    return {d.nomination_id: d for d in db.session.scalars(
        select(Decision).where(Decision.nomination_id.in_(nomination_ids)))}


def nomination(nomination_id: int) -> Nomination:
    nom = db.session.scalar(select(Nomination).where(Nomination.id == nomination_id)
                            .options(selectinload(Nomination.nominator), selectinload(Nomination.attachments)))
    if nom is None:
        raise UserError("找不到该推荐对象。", status=404)
    return nom


def reviewer_count(round_id: int, category: str) -> int:
    """Reviewers with at least one submitted sheet in the category (the panel behind the ranking)."""
    return db.session.scalar(
        select(func.count(func.distinct(ReviewSheet.reviewer_id)))
        .join(Nomination, Nomination.id == ReviewSheet.nomination_id)
        .where(Nomination.round_id == round_id, Nomination.category == category, ReviewSheet.status == "submitted")
    ) or 0


def reviewers(round_id: int, category: str | None = None) -> list[User]:
    """Reviewers assigned anything in the round (or category), by display order of their accounts."""
    stmt = (select(User).join(Assignment, Assignment.reviewer_id == User.id)
            .join(Nomination, Nomination.id == Assignment.nomination_id)
            .where(Nomination.round_id == round_id, User.role == "reviewer"))
    if category:
        stmt = stmt.where(Nomination.category == category)
    return list(db.session.scalars(stmt.distinct().order_by(User.username)))


@dataclass
class SheetLine:
    nomination_id: int
    title: str
    host: str | None
    nominator_name: str
    scores: dict[int, float]  # criterion id → value
    total: float
    comment: str
    submitted_at: object


@dataclass
class ReviewerSheet:
    reviewer: User
    category: str
    criteria: list[Criterion]
    lines: list[SheetLine]
    unsubmitted: int  # assigned nominations without a submitted sheet


def reviewer_sheet(rnd: Round, reviewer: User, category: str) -> ReviewerSheet:
    """One reviewer's submitted sheets in a category: their own scores and comments only."""
    crits = criteria(rnd.id, category)
    sheet_rows = db.session.execute(
        select(ReviewSheet.id, ReviewSheet.comment, ReviewSheet.submitted_at, Nomination.id, Nomination.title,
               Nomination.host, Nominator.name)
        .join(Nomination, Nomination.id == ReviewSheet.nomination_id)
        .join(Nominator, Nominator.id == Nomination.nominator_id)
        .where(ReviewSheet.reviewer_id == reviewer.id, ReviewSheet.status == "submitted",
               Nomination.round_id == rnd.id, Nomination.category == category, Nomination.status == "active")
        .order_by(_KIND_SORT, Nominator.position, Nominator.id, Nomination.id)
    ).all()
    scores: dict[int, dict[int, float]] = defaultdict(dict)
    if sheet_rows:
        for sheet_id, crit_id, value in db.session.execute(
            select(Score.sheet_id, Score.criterion_id, Score.value)
            .join(ReviewSheet, ReviewSheet.id == Score.sheet_id)
            .join(Nomination, Nomination.id == ReviewSheet.nomination_id)
            .where(ReviewSheet.reviewer_id == reviewer.id, ReviewSheet.status == "submitted",
                   Nomination.round_id == rnd.id, Nomination.category == category)
        ):
            scores[sheet_id][crit_id] = value
    lines = [
        SheetLine(nom_id, title, host, nominator_name, scores.get(sheet_id, {}),
                  sum(scores.get(sheet_id, {}).values()), comment or "", submitted_at)
        for sheet_id, comment, submitted_at, nom_id, title, host, nominator_name in sheet_rows
    ]
    assigned = db.session.scalar(
        select(func.count(Assignment.id)).join(Nomination, Nomination.id == Assignment.nomination_id)
        .where(Assignment.reviewer_id == reviewer.id, Nomination.round_id == rnd.id,
               Nomination.category == category, Nomination.status == "active")
    ) or 0
    return ReviewerSheet(reviewer, category, crits, lines, max(0, assigned - len(lines)))


def score_matrix(round_id: int, category: str, *, include_drafts: bool = False):
    """Every (nomination, reviewer, criterion) value for the XLSX detail sheet:
    returns (reviewers, {(nomination_id, reviewer_id): {"scores": {crit_id: v}, "status", "comment"}})."""
    statuses = ("submitted", "draft") if include_drafts else ("submitted",)
    rows = db.session.execute(
        select(ReviewSheet.nomination_id, ReviewSheet.reviewer_id, ReviewSheet.status, ReviewSheet.comment,
               Score.criterion_id, Score.value)
        .join(Nomination, Nomination.id == ReviewSheet.nomination_id)
        .outerjoin(Score, Score.sheet_id == ReviewSheet.id)
        .where(Nomination.round_id == round_id, Nomination.category == category,
               ReviewSheet.status.in_(statuses))
    ).all()
    cells: dict[tuple[int, int], dict] = {}
    reviewer_ids = set()
    for nom_id, reviewer_id, status, comment, crit_id, value in rows:
        cell = cells.setdefault((nom_id, reviewer_id), {"scores": {}, "status": status, "comment": comment or ""})
        if crit_id is not None:
            cell["scores"][crit_id] = value
        reviewer_ids.add(reviewer_id)
    people = list(db.session.scalars(select(User).where(User.id.in_(reviewer_ids)).order_by(User.username))) \
        if reviewer_ids else []
    return people, cells
