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
from app.models import Assignment, Nomination, Recusal, Round, User
from app.review import pairs
from app.rounds import phases as rounds

REASON_MAX = 500
AFFILIATION_REASON = "本单位推荐"
DECLARED_REASON = "已声明回避"
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


def not_recused_sql(reviewer: str, nomination: str, affiliation: str, nominator: str) -> str:
    """The same rule as not_recused_clause() as SQL text over the given column expressions, for the
    ranking's hand-written statements (they are text so the 7,000-nomination aggregate skips compiling)."""
    return (f"({affiliation} IS NULL OR {affiliation} <> {nominator})\n"
            f"    AND NOT EXISTS (SELECT 1 FROM recusals rc\n"
            f"                    WHERE rc.reviewer_id = {reviewer} AND rc.nomination_id = {nomination})")


def recused_sql(reviewer: str, nomination: str, affiliation: str, nominator: str) -> str:
    """SQL text, true when the pair is recused (own unit, or declared); the negation of not_recused_sql()."""
    return (f"{affiliation} = {nominator}\n"
            f"                 OR EXISTS (SELECT 1 FROM recusals rc\n"
            f"                            WHERE rc.reviewer_id = {reviewer} AND rc.nomination_id = {nomination})")


def declared_id(reviewer_id, nomination_id):
    """SQL scalar: the declared recusal's id for this pair, or NULL — a column for one-statement gates
    (the score save reads it together with the phase and the assignment)."""
    return (select(Recusal.id)
            .where(Recusal.reviewer_id == reviewer_id, Recusal.nomination_id == nomination_id)
            .scalar_subquery())


def declared(reviewer_id: int, nomination_id: int) -> Recusal | None:
    return db.session.scalar(
        select(Recusal).where(Recusal.reviewer_id == reviewer_id, Recusal.nomination_id == nomination_id)
    )


def reason_for(reviewer, nomination: Nomination) -> str | None:
    """Why this reviewer must not review this nomination (their own unit, or what they declared), or None."""
    if affiliation_conflict(reviewer.affiliation_id, nomination.nominator_id):
        return AFFILIATION_REASON
    reason = db.session.scalar(select(Recusal.reason).where(
        Recusal.reviewer_id == reviewer.id, Recusal.nomination_id == nomination.id))
    if reason is not None:
        return reason or DECLARED_REASON
    return None


def is_recused(reviewer, nomination: Nomination) -> bool:
    return reason_for(reviewer, nomination) is not None


def recused_pairs(round_id: int, category: str | None = None, nomination_ids=None) -> dict[tuple[int, int], str]:
    """Every recused (reviewer, nomination) pair of the round with its reason."""
    scope = [Nomination.round_id == round_id]
    if category:
        scope.append(Nomination.category == category)
    if nomination_ids is not None:
        scope.append(Nomination.id.in_(list(nomination_ids)))
    out: dict[tuple[int, int], str] = {}
    stmt = select(Recusal.reviewer_id, Recusal.nomination_id, Recusal.reason).join(
        Nomination, Nomination.id == Recusal.nomination_id).where(*scope)
    for r, n, reason in db.session.execute(stmt):
        out[(r, n)] = reason or DECLARED_REASON
    affiliated = select(User.id, Nomination.id).join(
        Nomination, Nomination.nominator_id == User.affiliation_id).where(User.role == "reviewer", *scope)
    for r, n in db.session.execute(affiliated):
        out[(r, n)] = AFFILIATION_REASON
    return out


def _clean_reason(reason: str | None, field: str, empty_message: str) -> str:
    reason = (reason or "").replace("\r\n", "\n").strip()
    if not reason:
        raise UserError(empty_message, {field: "请填写回避理由" if field == "reason" else "必填"})
    if len(reason) > REASON_MAX:
        raise UserError(f"回避理由不能超过 {REASON_MAX} 个字。", {field: f"不能超过 {REASON_MAX} 个字"})
    return reason


def declare(reviewer, nomination_id: int, reason: str) -> Recusal:
    """Declare a conflict: the nomination leaves the reviewer's queue; a draft sheet is kept but no
    longer counts anywhere (the ranking filters recused pairs out)."""
    reason = _clean_reason(reason, "reason", "请填写回避理由。")
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
        rounds.bump_ranking(nomination.round_id, nomination.category, [nomination_id])
    return recusal


def declare_on_behalf(reviewer_id: int, nomination_id: int, reason: str, *, actor=None) -> Recusal:
    """An admin records a declared conflict for a reviewer (the assignment page). As when reviewers
    declare one themselves, an existing assignment stays in place but stops counting: the queue and
    the ranking leave recused pairs out, and withdrawing the recusal brings the pair back."""
    reason = _clean_reason(reason, "recusal_reason", "登记回避必须填写理由。")
    with write_transaction():
        reviewer, nom, rnd = pairs.for_edit(reviewer_id, nomination_id)
        if is_recused(reviewer, nom):
            raise UserError(f"{reviewer.display_name} 已须回避《{nom.title}》。", status=409)
        recusal = Recusal(reviewer_id=reviewer.id, nomination_id=nom.id, reason=reason)
        db.session.add(recusal)
        audit.record("recusal.declare", "nomination", nom.id, after=pairs.audit_view(reviewer, nom), reason=reason,
                     round_id=rnd.id, actor=actor)
        rounds.bump_ranking(rnd.id, nom.category, [nom.id])
    return recusal


def withdraw(reviewer_id: int, nomination_id: int, *, actor=None) -> None:
    """Remove a declared conflict (affiliation conflicts cannot be withdrawn). Does not assign."""
    with write_transaction():
        reviewer, nom, rnd = pairs.for_edit(reviewer_id, nomination_id)
        row = declared(reviewer.id, nom.id)
        if row is None:
            raise UserError("没有登记过这项回避。", status=404)
        db.session.delete(row)
        audit.record("recusal.withdraw", "nomination", nom.id, before={**pairs.audit_view(reviewer, nom),
                     "reason": row.reason}, round_id=rnd.id, actor=actor)
        rounds.bump_ranking(rnd.id, nom.category, [nom.id])
