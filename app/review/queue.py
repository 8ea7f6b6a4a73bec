"""What a reviewer has to do: their queue, their progress, the next nomination to score, and whether
they may open a nomination at all. Read-only; every list is one SQL query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, case, exists, func, literal, select

from app.extensions import db
from app.models import CATEGORIES, Assignment, Nomination, Nominator, ReviewSheet, Score
from app.review.recusals import affiliation_conflict, declared_id, not_recused_clause

STATES = {"unscored": "未评分", "in_progress": "评分中", "unsubmitted": "未提交", "submitted": "已提交"}


@dataclass(frozen=True)
class QueueItem:
    nomination_id: int
    category: str
    title: str
    host: str | None
    nominator_id: int
    nominator_name: str
    sheet_status: str | None  # None: no sheet yet
    n_scores: int
    total: float | None
    updated_at: datetime | None

    @property
    def state(self) -> str:
        if self.sheet_status == "submitted":
            return "submitted"
        return "in_progress" if self.n_scores else "unscored"

    @property
    def state_label(self) -> str:
        return STATES[self.state]


@dataclass(frozen=True)
class Progress:
    total: int = 0
    in_progress: int = 0
    submitted: int = 0

    @property
    def scored(self) -> int:
        """Nominations with at least one value (drafts and submitted)."""
        return self.in_progress + self.submitted

    @property
    def unscored(self) -> int:
        return self.total - self.scored

    def percent(self, part: int) -> float:
        return round(100.0 * part / self.total, 1) if self.total else 0.0


def _visible(reviewer_id: int, affiliation_id: int | None, round_id: int) -> Select:
    """Assigned to this reviewer, in this round, still active, and not recused (either way)."""
    return (
        select(Nomination.id)
        .join(Assignment, and_(Assignment.nomination_id == Nomination.id, Assignment.reviewer_id == reviewer_id))
        .where(
            Nomination.round_id == round_id,
            Nomination.status == "active",
            not_recused_clause(reviewer_id, Nomination.id, affiliation_id, Nomination.nominator_id),
        )
    )


def _order():
    # 附件1 before 附件2, then the official order of the nominators, then arrival.
    return (case((Nomination.category == "unit", 0), else_=1), Nominator.position, Nomination.id)


def queue(reviewer, round_id: int, *, category: str | None = None, nominator_id: int | None = None,
          state: str | None = None) -> list[QueueItem]:
    n_scores = func.count(Score.id)
    stmt = (
        _visible(reviewer.id, reviewer.affiliation_id, round_id)
        .add_columns(Nomination.category, Nomination.title, Nomination.host, Nomination.nominator_id,
                     Nominator.name, ReviewSheet.status, n_scores, func.sum(Score.value), ReviewSheet.updated_at)
        .join(Nominator, Nominator.id == Nomination.nominator_id)
        .outerjoin(ReviewSheet, and_(ReviewSheet.nomination_id == Nomination.id,
                                     ReviewSheet.reviewer_id == reviewer.id))
        .outerjoin(Score, Score.sheet_id == ReviewSheet.id)
        .group_by(Nomination.id, Nomination.category, Nomination.title, Nomination.host, Nomination.nominator_id,
                  Nominator.name, Nominator.position, ReviewSheet.status, ReviewSheet.updated_at)
        .order_by(*_order())
    )
    if category in CATEGORIES:
        stmt = stmt.where(Nomination.category == category)
    if nominator_id:
        stmt = stmt.where(Nomination.nominator_id == nominator_id)
    submitted = ReviewSheet.status == "submitted"
    if state == "unscored":
        stmt = stmt.having(n_scores == 0)
    elif state == "in_progress":
        stmt = stmt.where(ReviewSheet.status == "draft").having(n_scores > 0)
    elif state == "unsubmitted":
        stmt = stmt.where(ReviewSheet.status.is_(None) | ~submitted)
    elif state == "submitted":
        stmt = stmt.where(submitted)
    return [
        QueueItem(r[0], r.category, r.title, r.host, r.nominator_id, r.name, r.status, r[7] or 0,
                  float(r[8]) if r[8] is not None else None, r.updated_at)
        for r in db.session.execute(stmt)
    ]


def progress(reviewer, round_id: int) -> dict[str, Progress]:
    """Per category and overall ("all"): total assigned (after 回避), in progress, submitted."""
    has_scores = exists().where(Score.sheet_id == ReviewSheet.id)
    rows = db.session.execute(
        _visible(reviewer.id, reviewer.affiliation_id, round_id)
        .with_only_columns(
            Nomination.category,
            func.count(Nomination.id),
            func.count(case((and_(ReviewSheet.status == "draft", has_scores), literal(1)))),
            func.count(case((ReviewSheet.status == "submitted", literal(1)))),
        )
        .outerjoin(ReviewSheet, and_(ReviewSheet.nomination_id == Nomination.id,
                                     ReviewSheet.reviewer_id == reviewer.id))
        .group_by(Nomination.category)
    ).all()
    out = {c: Progress() for c in CATEGORIES}
    for category, total, in_progress, submitted in rows:
        out[category] = Progress(total, in_progress, submitted)
    out["all"] = Progress(sum(p.total for p in out.values()), sum(p.in_progress for p in out.values()),
                          sum(p.submitted for p in out.values()))
    return out


def nominator_options(reviewer, round_id: int) -> list[tuple[int, str]]:
    rows = db.session.execute(
        _visible(reviewer.id, reviewer.affiliation_id, round_id)
        .with_only_columns(Nominator.id, Nominator.name)
        .join(Nominator, Nominator.id == Nomination.nominator_id)
        .group_by(Nominator.id, Nominator.name, Nominator.position)
        .order_by(Nominator.position, Nominator.id)
    ).all()
    return [(r.id, r.name) for r in rows]


def _ordered_unsubmitted(reviewer, round_id: int) -> list[tuple[int, bool]]:
    return [
        (r[0], r[1])
        for r in db.session.execute(
            _visible(reviewer.id, reviewer.affiliation_id, round_id)
            .add_columns(func.coalesce(ReviewSheet.status == "submitted", False))
            .join(Nominator, Nominator.id == Nomination.nominator_id)
            .outerjoin(ReviewSheet, and_(ReviewSheet.nomination_id == Nomination.id,
                                         ReviewSheet.reviewer_id == reviewer.id))
            .order_by(*_order())
        )
    ]


def first_unsubmitted(reviewer, round_id: int) -> int | None:
    """Where "继续评审" goes: the first nomination in queue order without a submitted sheet."""
    return next((nid for nid, done in _ordered_unsubmitted(reviewer, round_id) if not done), None)


def next_unsubmitted(reviewer, round_id: int, after_nomination_id: int) -> int | None:
    """Where "保存并评下一个" goes: the next one in queue order after the current one (wrapping
    around) without a submitted sheet, never the current one."""
    return navigation(reviewer, round_id, after_nomination_id).next_id


# --- who may open a nomination ------------------------------------------------------------------

DENIED_MESSAGES = {
    "affiliation": "该推荐对象由您所在单位推荐，按回避规定您不能查看或评分。",
    "declared": "您已声明回避该推荐对象，不能查看或评分。",
    "unassigned": "该推荐对象未分配给您评审。",
    "role": "您没有权限查看此推荐对象。",
}


def denial(user, nomination: Nomination) -> str | None:
    """None when `user` may open the nomination page; otherwise the reason (a DENIED_MESSAGES key).

    Chair and admin see every nomination; a reviewer only those assigned and not recused.
    """
    if user.role in ("chair", "admin"):
        return None
    if user.role != "reviewer":
        return "role"
    if affiliation_conflict(user.affiliation_id, nomination.nominator_id):
        return "affiliation"
    row = db.session.execute(
        select(Assignment.id, declared_id(Assignment.reviewer_id, Assignment.nomination_id))
        .where(Assignment.reviewer_id == user.id, Assignment.nomination_id == nomination.id)
    ).first()
    if row is None:
        return "unassigned"
    if row[1] is not None:
        return "declared"
    return None


@dataclass(frozen=True)
class Navigation:
    position: int | None  # 1-based place in the queue
    count: int
    previous_id: int | None
    next_id: int | None  # the next one without a submitted sheet (what "保存并评下一个" opens)


def navigation(reviewer, round_id: int, nomination_id: int) -> Navigation:
    rows = _ordered_unsubmitted(reviewer, round_id)
    ids = [nid for nid, _ in rows]
    index = ids.index(nomination_id) if nomination_id in ids else None
    previous_id = ids[index - 1] if index else None
    start = index + 1 if index is not None else 0
    next_id = next((nid for nid, done in rows[start:] + rows[:start] if not done and nid != nomination_id), None)
    return Navigation(index + 1 if index is not None else None, len(ids), previous_id, next_id)
