"""Rounds and their phases — the home of the phase rules: which moves exist (one step forward, or one
step back with a reason) and which of them the admin's dashboard makes (up to 会议审定; 公示 and 定稿
are the chair's, on the deliberation page). The guard before scoring opens is in rounds/moves.py,
because it consults the intake area, which itself builds on this module. A phase change locks the
round row so no score or decision write can commit on the wrong side of it."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, select, text

from app.audit import operations as audit
from app.core.database import locked, write_transaction
from app.core.errors import UserError
from app.extensions import db
from app.models import PHASE_LABELS, PHASES, RankingCounter, Round
from app.models._base import utcnow


def current_round() -> Round | None:
    """The newest round (by year); the system works on one round at a time."""
    return db.session.scalar(select(Round).order_by(Round.year.desc()).limit(1))


def require_current_round() -> Round:
    rnd = current_round()
    if rnd is None:
        raise UserError("尚未建立评选批次，请管理员先执行 flask demo seed 或建立批次。", status=404)
    return rnd


def get(round_id: int, *, lock: bool = False, shared: bool = False) -> Round:
    """The round, or a 404 UserError. With lock=True it is re-read inside the current write
    transaction with FOR UPDATE (shared=True: FOR SHARE)."""
    rnd = locked(Round, round_id, shared=shared) if lock else db.session.get(Round, round_id)
    if rnd is None:
        raise UserError("找不到评选批次。", status=404)
    return rnd


def by_year(year: int) -> Round:
    rnd = db.session.scalar(select(Round).where(Round.year == year))
    if rnd is None:
        raise UserError(f"找不到 {year} 年的评选批次。", status=404)
    return rnd


REASON_MAX = 500
# The admin moves the round up to deliberating; publicizing and final are the chair's (decisions).
ADMIN_FORWARD = {"setup": "collecting", "collecting": "reviewing", "reviewing": "deliberating"}


def change_phase(round_id: int, target: str, *, reason: str = "", actor=None, guard=None) -> Round:
    """Move a round forward one phase, or back one phase with a reason (both audited).

    `guard(round)` may raise UserError to block the move (unresolved 形式审查 findings, say); it runs
    inside the locked transaction so what it checks cannot change underneath it. What it returns (a
    dict, or None) joins the audit event's `after` — the pre-flight's confirmed gaps, say.
    """
    if target not in PHASES:
        raise UserError(f"未知阶段：{target}。")
    reason = (reason or "").strip()
    if len(reason) > REASON_MAX:
        raise UserError(f"理由不能超过 {REASON_MAX} 个字符。", {"reason": f"不能超过 {REASON_MAX} 字"})
    with write_transaction():
        rnd = get(round_id, lock=True)
        here, there = PHASES.index(rnd.phase), PHASES.index(target)
        if there == here:
            raise UserError(f"评选批次已处于「{PHASE_LABELS[target]}」阶段。", status=409)
        if abs(there - here) != 1:
            raise UserError("阶段只能逐级推进或逐级退回。", status=409)
        if there < here and not reason:
            raise UserError("退回上一阶段必须填写理由。", {"reason": "必填"})
        noted = guard(rnd) if guard is not None else None
        noted = noted if isinstance(noted, dict) else {}
        before = rnd.phase
        rnd.phase = target
        rnd.finalized_at = utcnow() if target == "final" else None
        bump_ranking(rnd.id)
        audit.record("round.phase_back" if there < here else "round.phase", "round", rnd.id,
                     before={"phase": before}, after={"phase": target, **noted}, reason=reason, round_id=rnd.id,
                     actor=actor)
    return rnd


def previous_phase(phase: str) -> str | None:
    """The phase a round in `phase` came from (where a step back leads), None for the first."""
    i = PHASES.index(phase)
    return PHASES[i - 1] if i > 0 else None


def phase_moves(rnd: Round) -> dict:
    """What the dashboard offers: the admin's next phase (or None), the chair's, and the previous phase."""
    i = PHASES.index(rnd.phase)
    return {"next": ADMIN_FORWARD.get(rnd.phase), "chair_next": PHASES[i + 1] if i + 1 < len(PHASES) and
            rnd.phase not in ADMIN_FORWARD else None, "back": previous_phase(rnd.phase),
            "phases": [(p, PHASE_LABELS[p], j < i, j == i) for j, p in enumerate(PHASES)]}


_counters = RankingCounter.__table__
_BUMP_ALL = _counters.update().where(_counters.c.round_id == bindparam("rid")).values(
    version=_counters.c.version + 1)
_BUMP_ONE = _BUMP_ALL.where(_counters.c.category == bindparam("cat"))
# The change names the version this transaction produced: it holds the counter row, so the version it
# reads back is its own (app/ranking/upkeep.py relies on versions committing in order).
_LOG = text(
    "INSERT INTO ranking_changes (round_id, category, version, nomination_id) "
    "SELECT round_id, category, version, :nid FROM ranking_counters WHERE round_id = :rid AND category = :cat")
_LOG_ALL = text(
    "INSERT INTO ranking_changes (round_id, category, version, nomination_id) "
    "SELECT round_id, category, version, NULL FROM ranking_counters WHERE round_id = :rid")


def bump_ranking(round_id: int, category: str | None = None, nominations: Iterable[int] | None = None) -> None:
    """Invalidate the live ranking's ETag and tell its upkeep what changed; called inside the writer's
    transaction. `nominations`: the nominations whose sheets, assignments, recusals or status the write
    touched (an empty list: nothing the aggregates read, e.g. a decision); None: anything in the category
    (or, without a category, the round) may have changed, so the next poll recomputes it whole.

    Prebuilt Core statements: this runs on every score save, as the last statements before commit
    (on PostgreSQL the counter row is hot, so it is held for as short a time as possible)."""
    if not category:
        db.session.execute(_BUMP_ALL, {"rid": round_id})
        db.session.execute(_LOG_ALL, {"rid": round_id})
        return
    db.session.execute(_BUMP_ONE, {"rid": round_id, "cat": category})
    ids = [None] if nominations is None else sorted(set(nominations))
    if ids:
        db.session.execute(_LOG, [{"rid": round_id, "cat": category, "nid": i} for i in ids])
