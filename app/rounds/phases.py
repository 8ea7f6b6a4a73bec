"""Rounds and their phases — the one home of the phase rules: which moves exist (one step forward,
or one step back with a reason), which of them the admin's dashboard makes (up to 会议审定; 公示 and
定稿 are the chair's, on the deliberation page), and the guard before scoring opens. A phase change
locks the round row so no score or decision write can commit on the wrong side of it."""

from __future__ import annotations

from sqlalchemy import bindparam, func, select

from app.audit import operations as audit
from app.core.database import locked, write_transaction
from app.core.errors import UserError
from app.extensions import db
from app.models import (
    CATEGORY_LABELS,
    PHASE_LABELS,
    PHASES,
    Assignment,
    Criterion,
    Nomination,
    RankingCounter,
    Round,
)
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
    inside the locked transaction so what it checks cannot change underneath it.
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
        if guard is not None:
            guard(rnd)
        before = rnd.phase
        rnd.phase = target
        rnd.finalized_at = utcnow() if target == "final" else None
        bump_ranking(rnd.id)
        audit.record("round.phase_back" if there < here else "round.phase", "round", rnd.id,
                     before={"phase": before}, after={"phase": target}, reason=reason, round_id=rnd.id, actor=actor)
    return rnd


def admin_move(round_id: int, target: str, *, reason: str = "", actor=None) -> Round:
    """The admin dashboard's moves: forward up to 会议审定 (into 专家评审 only past guard_reviewing),
    or back one phase with a reason. The step and reason rules themselves are change_phase's."""
    if target not in PHASES:
        raise UserError(f"未知阶段：{target}。", {"target": "未知阶段"})
    rnd = get(round_id)
    forward = PHASES.index(target) > PHASES.index(rnd.phase)
    if forward and PHASES.index(target) == PHASES.index(rnd.phase) + 1 and ADMIN_FORWARD.get(rnd.phase) != target:
        raise UserError("「公示」和「定稿」由评审委员会主任在会议审定页面完成。", status=409)
    guard = guard_reviewing if forward and target == "reviewing" else None
    return change_phase(rnd.id, target, reason=reason, actor=actor, guard=guard)


def phase_moves(rnd: Round) -> dict:
    """What the dashboard offers: the admin's next phase (or None), the chair's, and the previous phase."""
    i = PHASES.index(rnd.phase)
    return {"next": ADMIN_FORWARD.get(rnd.phase), "chair_next": PHASES[i + 1] if i + 1 < len(PHASES) and
            rnd.phase not in ADMIN_FORWARD else None, "back": PHASES[i - 1] if i > 0 else None,
            "phases": [(p, PHASE_LABELS[p], j < i, j == i) for j, p in enumerate(PHASES)]}


def guard_reviewing(rnd: Round) -> None:
    """Before scoring opens: every category with nominations has a rubric, every active nomination
    has a reviewer, and the 形式审查 guard (if that module is installed) passes."""
    problems = []
    for category, label in CATEGORY_LABELS.items():
        scope = (Nomination.round_id == rnd.id, Nomination.category == category, Nomination.status == "active")
        if not db.session.scalar(select(func.count()).select_from(Nomination).where(*scope)):
            continue
        if not db.session.scalar(select(func.count()).select_from(Criterion).where(
                Criterion.round_id == rnd.id, Criterion.category == category)):
            problems.append(f"{label}没有评分指标")
        orphans = list(db.session.scalars(select(Nomination.title).where(
            *scope, ~select(Assignment.id).where(Assignment.nomination_id == Nomination.id).exists()).limit(6)))
        if orphans:
            more = "等" if len(orphans) > 5 else ""
            problems.append(f"{label}中《{'》《'.join(orphans[:5])}》{more}尚未分配评审专家")
    if problems:
        raise UserError("还不能进入专家评审：" + "；".join(problems) + "。", status=409)
    form_guard = _form_check_guard()
    if form_guard is not None:
        form_guard(rnd)


def _form_check():
    # The 形式审查 module belongs to the intake area and may not be installed.
    try:
        from app.intake import form_check
    except ModuleNotFoundError as e:
        if e.name and e.name.endswith("form_check"):
            return None
        raise
    return form_check


def _form_check_guard():
    return getattr(_form_check(), "guard_reviewing", None)


def live_blocking_problems(rnd: Round) -> int | None:
    """How many 形式审查 problems would block the move to reviewing right now (computed from the data,
    as the guard does), or None when the intake area's module is not installed."""
    problems = getattr(_form_check(), "blocking_problems", None)
    return len(problems(rnd)) if problems else None


_counters = RankingCounter.__table__
_BUMP_ALL = _counters.update().where(_counters.c.round_id == bindparam("rid")).values(
    version=_counters.c.version + 1)
_BUMP_ONE = _BUMP_ALL.where(_counters.c.category == bindparam("cat"))


def bump_ranking(round_id: int, category: str | None = None) -> None:
    """Invalidate the live ranking's ETag; called inside the writer's transaction.

    Prebuilt Core statements: this runs on every score save, as the last statement before commit
    (on PostgreSQL the counter row is hot, so it is held for as short a time as possible)."""
    if category:
        db.session.execute(_BUMP_ONE, {"rid": round_id, "cat": category})
    else:
        db.session.execute(_BUMP_ALL, {"rid": round_id})
