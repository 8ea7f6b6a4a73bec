"""回避: a reviewer never scores a nomination of their own unit (derived from the affiliation, never
stored) nor one they declared a conflict with (stored, with a reason, audited)."""

from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.sql.elements import ColumnElement

from app.audit import operations as audit
from app.core.database import locked, write_transaction
from app.core.errors import UserError
from app.extensions import db
from app.models import Assignment, Nomination, Recusal, Round
from app.rounds import phases as rounds

REASON_MAX = 500
# A conflict can be declared until the scores are closed; afterwards it would silently change the
# ranking the committee is already deliberating on.
DECLARABLE_PHASES = ("collecting", "reviewing")


def affiliation_conflict(affiliation_id: int | None, nominator_id: int) -> bool:
    return affiliation_id is not None and affiliation_id == nominator_id


def not_recused_clause(reviewer_id, nomination_id, affiliation_id, nominator_id) -> ColumnElement[bool]:
    """SQL condition: this reviewer × nomination pair counts (no affiliation conflict, nothing declared).

    Every argument may be a column or a plain value, so the same rule serves one reviewer's queue and
    a ranking over all reviewers' sheets.
    """
    none_declared = ~exists().where(Recusal.reviewer_id == reviewer_id, Recusal.nomination_id == nomination_id)
    if affiliation_id is None:
        return none_declared
    if isinstance(affiliation_id, int):
        return and_(none_declared, nominator_id != affiliation_id)
    return and_(none_declared, or_(affiliation_id.is_(None), affiliation_id != nominator_id))


def declared(reviewer_id: int, nomination_id: int) -> Recusal | None:
    return db.session.scalar(
        select(Recusal).where(Recusal.reviewer_id == reviewer_id, Recusal.nomination_id == nomination_id)
    )


def is_recused(reviewer, nomination: Nomination) -> bool:
    if affiliation_conflict(reviewer.affiliation_id, nomination.nominator_id):
        return True
    return declared(reviewer.id, nomination.id) is not None


def declare(reviewer, nomination_id: int, reason: str) -> Recusal:
    """Declare a conflict: the nomination leaves the reviewer's queue; a draft sheet is kept but no
    longer counts anywhere (the ranking filters recused pairs out)."""
    reason = (reason or "").replace("\r\n", "\n").strip()
    if not reason:
        raise UserError("请填写回避理由。", {"reason": "请填写回避理由"})
    if len(reason) > REASON_MAX:
        raise UserError(f"回避理由不能超过 {REASON_MAX} 个字。", {"reason": f"不能超过 {REASON_MAX} 个字"})
    # Read before the transaction: write_transaction() commits the request's read transaction, which
    # expires every loaded object, and re-reading the user inside the write lock is wasted time.
    reviewer_id, affiliation_id = reviewer.id, reviewer.affiliation_id
    with write_transaction():
        nomination = db.session.get(Nomination, nomination_id)
        if nomination is None:
            raise UserError("找不到该推荐对象。", status=404)
        rnd = locked(Round, nomination.round_id, shared=True)
        if rnd.phase not in DECLARABLE_PHASES:
            raise UserError("评审阶段已结束，不能再声明回避。", status=409)
        assignment = db.session.scalar(
            select(Assignment)
            .where(Assignment.reviewer_id == reviewer_id, Assignment.nomination_id == nomination_id)
            .with_for_update()
        )
        if assignment is None:
            raise UserError("该推荐对象未分配给您。", status=403)
        if affiliation_conflict(affiliation_id, nomination.nominator_id):
            raise UserError("该推荐对象由您所在单位推荐，已自动回避。", status=409)
        if declared(reviewer_id, nomination_id) is not None:
            raise UserError("您已声明回避该推荐对象。", status=409)
        recusal = Recusal(reviewer_id=reviewer_id, nomination_id=nomination_id, reason=reason)
        db.session.add(recusal)
        db.session.flush()
        audit.record("recusal.declare", "nomination", nomination_id, after={"reviewer_id": reviewer_id},
                     reason=reason, round_id=nomination.round_id, actor=SimpleNamespace(id=reviewer_id))
        # n assigned (and any sheet of this reviewer) leaves the ranking; hot row, so last.
        rounds.bump_ranking(nomination.round_id, nomination.category)
    return recusal
