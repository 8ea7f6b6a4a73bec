"""The pre-flight of the moves into 会议审定, 公示 and 定稿: what is still unfinished, counted by SQL
aggregates (a few sample names each, LIMITed), and the one door those moves go through.

Gaps come in two kinds. A soft gap (sheets not submitted, nominations with fewer counted scores than
assigned, open blocking 形式审查 findings, missing 审定意见 before 公示) may be moved past, but only
with an explicit confirmation and a reason, both audited with the gaps' counts. A hard gap (undecided
nominations, a decision whose 审定意见 says the opposite, 定稿 without opinions or an approval date)
refuses the move outright. The admin's dashboard and the chair's deliberation page both call move();
the gaps are computed again inside the locked transaction, so what was confirmed is what moved."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select, text

from app.core.errors import UserError
from app.deliberation import opinions
from app.extensions import db
from app.models import CATEGORIES, PHASE_LABELS, PHASES, Decision, FormFinding, Nomination, Objection, Round
from app.models.publicity import OPEN_STATUSES
from app.ranking import engine as ranking
from app.ranking import sql as ranking_sql
from app.rounds.phases import REASON_MAX, change_phase

TARGETS = ("reviewing", "deliberating", "publicizing", "final")
SAMPLES = 10
GAP_LABELS = {
    "unsubmitted": "未提交的评分表", "short_scores": "有效评分少于分配的推荐对象", "blocking_findings": "未处理的阻断性形式审查问题",
    "undecided": "尚未审定的推荐对象", "missing_opinion": "缺少审定意见的推荐对象",
    "contradictions": "审定结果与审定意见矛盾", "approval_date": "未填写审定日期",
    "open_objections": "尚未处理完毕的公示异议",
    "unaccepted": "推荐单位已提交、尚未受理的推荐材料",
}

# Per nomination of the category: eligible (assigned, not recused) reviewers and their submitted sheets.
_SHORT = f"""
WITH {ranking_sql.eligible_ctes()},
per_nom AS (
  SELECT noms.id, COUNT(e.reviewer_id) AS assigned,
         COUNT(CASE WHEN s.status = 'submitted' THEN 1 END) AS submitted
  FROM noms
  JOIN eligible e ON e.nomination_id = noms.id
  LEFT JOIN review_sheets s ON s.reviewer_id = e.reviewer_id AND s.nomination_id = e.nomination_id
  GROUP BY noms.id
)
SELECT COUNT(*) FROM per_nom WHERE submitted < assigned
"""
_SHORT_SAMPLE = _SHORT.replace("SELECT COUNT(*) FROM per_nom WHERE submitted < assigned", """
SELECT n.title, p.submitted, p.assigned FROM per_nom p JOIN nominations n ON n.id = p.id
WHERE p.submitted < p.assigned ORDER BY n.id LIMIT :limit""")


@dataclass
class Gap:
    code: str
    count: int
    hard: bool = False
    items: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return GAP_LABELS[self.code]


@dataclass
class Preflight:
    target: str
    gaps: list[Gap]

    @property
    def target_label(self) -> str:
        return PHASE_LABELS[self.target]

    @property
    def hard(self) -> list[Gap]:
        return [g for g in self.gaps if g.hard]

    @property
    def soft(self) -> list[Gap]:
        return [g for g in self.gaps if not g.hard]

    @property
    def clear(self) -> bool:
        return not self.gaps

    def counts(self) -> dict[str, int]:
        return {g.code: g.count for g in self.gaps}


def _titles(stmt) -> list[str]:
    return [f"《{t}》" for t in db.session.scalars(stmt.limit(SAMPLES))]


def _unsubmitted(rnd: Round) -> Gap | None:
    # ranking.progress is one aggregate per category (per reviewer); summed here per reviewer.
    per_reviewer: dict[int, list] = {}
    for category in CATEGORIES:
        for r in ranking.progress(rnd.id, category).reviewers:
            left = r.assigned - r.submitted
            if left:
                entry = per_reviewer.setdefault(r.reviewer_id, [r.reviewer_name, r.username, 0, 0])
                entry[2] += left
                entry[3] += r.drafts
    if not per_reviewer:
        return None
    rows = sorted(per_reviewer.values(), key=lambda e: (-e[2], e[1]))
    items = [f"{name}（{username}）：{left} 份未提交" + (f"，其中草稿 {drafts} 份" if drafts else "")
             for name, username, left, drafts in rows]
    return Gap("unsubmitted", sum(e[2] for e in rows), items=items)


def _short_scores(rnd: Round) -> Gap | None:
    count, items = 0, []
    for category in CATEGORIES:
        params = {"round_id": rnd.id, "category": category}
        n = db.session.execute(text(_SHORT), params).scalar() or 0
        if n:
            count += n
            items += [f"《{t}》：{s}/{a}" for t, s, a in
                      db.session.execute(text(_SHORT_SAMPLE), {**params, "limit": SAMPLES})]
    return Gap("short_scores", count, items=items[:SAMPLES]) if count else None


def _blocking_findings(rnd: Round) -> Gap | None:
    scope = (FormFinding.round_id == rnd.id, FormFinding.status == "open", FormFinding.blocking.is_(True))
    n = db.session.scalar(select(func.count()).select_from(FormFinding).where(*scope)) or 0
    if not n:
        return None
    rows = db.session.execute(select(Nomination.title, FormFinding.message)
                              .outerjoin(Nomination, Nomination.id == FormFinding.nomination_id)
                              .where(*scope).order_by(FormFinding.id).limit(SAMPLES))
    return Gap("blocking_findings", n, items=[f"《{t}》：{m}" if t else m for t, m in rows])


def _decided(rnd: Round):
    return (select(func.count(Decision.id)).join(Nomination, Nomination.id == Decision.nomination_id)
            .where(Nomination.round_id == rnd.id, Nomination.status == "active"))


def _undecided(rnd: Round, hard: bool) -> Gap | None:
    scope = (Nomination.round_id == rnd.id, Nomination.status == "active",
             ~select(Decision.id).where(Decision.nomination_id == Nomination.id).exists())
    n = db.session.scalar(select(func.count(Nomination.id)).where(*scope)) or 0
    if not n:
        return None
    return Gap("undecided", n, hard=hard, items=_titles(select(Nomination.title).where(*scope).order_by(Nomination.id)))


def _missing_opinion(rnd: Round, hard: bool) -> Gap | None:
    empty = func.length(func.trim(Decision.opinion)) == 0
    n = db.session.scalar(_decided(rnd).where(empty)) or 0
    if not n:
        return None
    stmt = (select(Nomination.title).join(Decision, Decision.nomination_id == Nomination.id)
            .where(Nomination.round_id == rnd.id, Nomination.status == "active", empty).order_by(Nomination.id))
    return Gap("missing_opinion", n, hard=hard, items=_titles(stmt))


def contradictions(rnd: Round) -> Gap | None:
    """Decisions whose 审定意见 says the other outcome: never allowed into 公示 or 定稿."""
    clause = opinions.contradiction_clause(rnd)
    n = db.session.scalar(_decided(rnd).where(clause)) or 0
    if not n:
        return None
    rows = db.session.execute(
        select(Nomination.title, Decision.outcome, Decision.opinion)
        .join(Decision, Decision.nomination_id == Nomination.id)
        .where(Nomination.round_id == rnd.id, Nomination.status == "active", clause)
        .order_by(Nomination.id).limit(SAMPLES))
    labels = {"approve": "通过", "decline": "不通过"}
    return Gap("contradictions", n, hard=True,
               items=[f"《{t}》：审定为「{labels[o]}」，审定意见却是「{op}」" for t, o, op in rows])


def _open_objections(rnd: Round) -> Gap | None:
    """Objections received or accepted but not yet concluded: 定稿 is refused until each is settled."""
    scope = (Objection.round_id == rnd.id, Objection.status.in_(OPEN_STATUSES))
    n = db.session.scalar(select(func.count(Objection.id)).where(*scope)) or 0
    if not n:
        return None
    rows = db.session.execute(select(Objection.id, Nomination.title)
                              .join(Nomination, Nomination.id == Objection.nomination_id)
                              .where(*scope).order_by(Objection.id).limit(SAMPLES))
    return Gap("open_objections", n, hard=True, items=[f"异议 {i}：《{t}》" for i, t in rows])


def _unaccepted(rnd: Round) -> Gap | None:
    """Nominations a 推荐单位 submitted online that the admin has neither accepted nor returned: once
    专家评审 opens they can no longer be accepted, so they would stay out of the review."""
    scope = (Nomination.round_id == rnd.id, Nomination.status == "submitted")
    n = db.session.scalar(select(func.count(Nomination.id)).where(*scope))
    if not n:
        return None
    return Gap("unaccepted", n, items=_titles(select(Nomination.title).where(*scope).order_by(Nomination.id)))


def check(rnd: Round, target: str) -> Preflight:
    """What is unfinished before moving `rnd` into `target` (one of TARGETS)."""
    if target not in TARGETS:
        return Preflight(target, [])
    if target == "reviewing":
        # Scoring has not begun: the only gap is what the portal has left waiting.
        return Preflight(target, [g for g in (_unaccepted(rnd),) if g])
    gaps = [_unsubmitted(rnd), _short_scores(rnd), _blocking_findings(rnd)]
    if target == "publicizing":
        gaps += [_undecided(rnd, hard=True), contradictions(rnd), _missing_opinion(rnd, hard=False)]
    elif target == "final":
        gaps += [_undecided(rnd, hard=True), contradictions(rnd), _missing_opinion(rnd, hard=True)]
        if rnd.approval_date is None:
            gaps.append(Gap("approval_date", 1, hard=True))
        gaps.append(_open_objections(rnd))  # 定稿 waits for every objection
    # Hard gaps first: they are what must be fixed.
    return Preflight(target, sorted((g for g in gaps if g), key=lambda g: not g.hard))


def refusal(pf: Preflight) -> str:
    parts = [f"{g.label} {g.count} 项" if g.code != "approval_date" else g.label for g in pf.hard]
    return f"还不能进入「{pf.target_label}」：" + "；".join(parts) + "。"


def move(round_id: int, target: str, *, confirm: bool = False, reason: str = "", actor=None,
         guard=None) -> Round:
    """Move the round forward into `target` past the pre-flight: refused (409) while a hard gap is
    open; with soft gaps only after `confirm` and a `reason` (422 otherwise), the audit event then
    recording each gap's count. `guard(round)` runs first, as change_phase's does."""
    if target not in TARGETS:
        raise UserError(f"未知阶段：{target}。", {"target": "未知阶段"})
    reason = (reason or "").strip()
    if len(reason) > REASON_MAX:
        raise UserError(f"理由不能超过 {REASON_MAX} 个字符。", {"reason": f"不能超过 {REASON_MAX} 字"})

    def gate(rnd: Round):
        if PHASES.index(rnd.phase) >= PHASES.index(target):
            # A reason would otherwise let change_phase step back; this door only leads forward.
            raise UserError(f"评选批次已处于「{rnd.phase_label}」阶段。", status=409)
        if guard is not None:
            guard(rnd)
        pf = check(rnd, target)
        if pf.hard:
            raise UserError(refusal(pf), {"preflight": "有必须先处理的问题"}, status=409)
        if not pf.soft:
            return None
        if not confirm:
            raise UserError("还有未完成事项：确认继续须勾选确认并填写理由。", {"accept_gaps": "请勾选确认"})
        if not reason:
            raise UserError("带着未完成事项继续，必须填写理由（记入操作日志）。", {"reason": "必填"})
        return {"gaps": pf.counts()}

    return change_phase(round_id, target, reason=reason, actor=actor, guard=gate)
