"""The admin dashboard's phase moves: forward up to 会议审定 — into 专家评审 only past the guard (a rubric
and reviewers for every nomination, and the intake area's 形式审查) — or back one phase with a reason.
The step and reason rules themselves are rounds/phases.py's; this module adds only the guard, kept
apart because it consults app.intake.form_check, which builds on rounds/phases.py."""

from __future__ import annotations

from sqlalchemy import func, select

from app.core.errors import UserError
from app.extensions import db
from app.models import CATEGORY_LABELS, PHASES, Assignment, Criterion, Nomination, Round
from app.rounds import preflight
from app.rounds.phases import ADMIN_FORWARD, change_phase, get


def admin_move(round_id: int, target: str, *, reason: str = "", accept_gaps: bool = False, actor=None) -> Round:
    """Forward up to 会议审定 (into 专家评审 only past guard_reviewing, into 会议审定 only past the
    pre-flight: its open gaps need `accept_gaps` and a reason), or back one phase with a reason."""
    if target not in PHASES:
        raise UserError(f"未知阶段：{target}。", {"target": "未知阶段"})
    rnd = get(round_id)
    forward = PHASES.index(target) > PHASES.index(rnd.phase)
    if forward and PHASES.index(target) == PHASES.index(rnd.phase) + 1 and ADMIN_FORWARD.get(rnd.phase) != target:
        raise UserError("「公示」和「定稿」由评审委员会主任在会议审定页面完成。", status=409)
    guard = guard_reviewing if forward and target == "reviewing" else None
    if forward and target in preflight.TARGETS:
        return preflight.move(rnd.id, target, confirm=accept_gaps, reason=reason, actor=actor, guard=guard)
    return change_phase(rnd.id, target, reason=reason, actor=actor, guard=guard)


def next_forward(rnd: Round) -> str | None:
    """The admin's next phase from here, or None (公示 and 定稿 are the chair's)."""
    return ADMIN_FORWARD.get(rnd.phase)


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
