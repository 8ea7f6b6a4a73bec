"""Deliberation: approve / decline against the cut line, 审定意见, approval date, seal, and the
phase moves deliberating → publicizing → final (and back, for an admin with a reason).

Every write opens one write_transaction, re-reads the round with a row lock and checks the phase
inside it, so no decision can commit after the round left `deliberating` (the phase change takes the
same row FOR UPDATE; SQLite serialises writers with BEGIN IMMEDIATE).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from datetime import date

from PIL import Image, UnidentifiedImageError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.audit import operations as audit
from app.core import storage
from app.core.database import locked, write_transaction
from app.core.errors import Conflict, UserError
from app.deliberation import opinions
from app.deliberation.opinions import opinion_text  # noqa: F401 — part of this module's interface
from app.extensions import db
from app.intake.nominations import quota_for  # the nominator's quota has one home: intake
from app.models import CATEGORIES, PHASE_LABELS, Decision, Nomination, Nominator, Round
from app.rounds import phases as rounds
from app.rounds import preflight
from app.rounds import settings as round_rules

OUTCOMES = opinions.OUTCOMES
OUTCOME_LABELS = {"approve": "通过", "decline": "不通过"}
OPINION_MAX = 300
REASON_MAX = 500
TEMPLATE_MAX = 200
SEAL_MAX_BYTES = 2 * 1024 * 1024
SEAL_MIN_PX = 120
SEAL_MAX_PX = 3000
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_ALLOWED_PLACEHOLDERS = {"year", "category"}


# ----------------------------------------------------------------------------- reading


@dataclass
class Standing:
    """One nomination on the deliberation page: its ranking row, where it sits against the cut
    line, and its decision (if any)."""

    nomination_id: int
    rank: int | None
    row: object  # ranking.RankRow
    above_line: bool
    decision: Decision | None

    @property
    def suggested(self) -> str:
        return "approve" if self.above_line else "decline"

    @property
    def outcome(self) -> str | None:
        return self.decision.outcome if self.decision else None

    @property
    def crosses_line(self) -> bool:
        return self.decision is not None and self.decision.outcome != self.suggested


@dataclass
class QuotaWarning:
    nominator_id: int
    nominator_name: str
    approved: int
    quota: int


@dataclass
class Summary:
    category: str
    slots: int
    total: int = 0
    approved: int = 0
    declined: int = 0
    undecided: int = 0
    crossing: int = 0
    missing_opinion: int = 0
    quota_warnings: list[QuotaWarning] = field(default_factory=list)

    @property
    def over_slots(self) -> bool:
        return self.approved > self.slots


def _rank_rows(round_id: int, category: str) -> list:
    from app.ranking import engine as ranking  # the official ranking: submitted sheets, the round's method

    return ranking.compute(round_id, category)


def _line_of(row, slots: int) -> bool:
    return row.rank is not None and row.rank <= slots and (row.n_scored or 0) > 0


def standings(rnd: Round, category: str) -> list[Standing]:
    """The ranking in rank order with each row's decision; active nominations the ranking does not
    list (none scored, say) follow it, below the line."""
    slots = rnd.slots(category)
    rows = _rank_rows(rnd.id, category)
    decisions = _decisions_by_nomination(rnd.id, category)
    out = [Standing(r.nomination_id, r.rank, r, _line_of(r, slots), decisions.get(r.nomination_id)) for r in rows]
    seen = {s.nomination_id for s in out}
    for nom_id in _active_ids(rnd.id, category):
        if nom_id not in seen:
            out.append(Standing(nom_id, None, None, False, decisions.get(nom_id)))
    return out


def summary(rnd: Round, category: str, rows: list[Standing] | None = None) -> Summary:
    rows = standings(rnd, category) if rows is None else rows
    s = Summary(category=category, slots=rnd.slots(category), total=len(rows))
    for st in rows:
        if st.decision is None:
            s.undecided += 1
            continue
        if st.decision.outcome == "approve":
            s.approved += 1
        else:
            s.declined += 1
        s.crossing += st.crosses_line
        s.missing_opinion += not (st.decision.opinion or "").strip()
    s.quota_warnings = quota_warnings(rnd, category)
    return s


def quota_warnings(rnd: Round, category: str) -> list[QuotaWarning]:
    """Nominators with more approvals in this category than their quota (round default or override)."""
    stmt = (
        select(Nominator, func.count(Decision.id))
        .join(Nomination, Nomination.nominator_id == Nominator.id)
        .join(Decision, Decision.nomination_id == Nomination.id)
        .where(Nomination.round_id == rnd.id, Nomination.category == category, Nomination.status == "active",
               Decision.outcome == "approve")
        .group_by(Nominator.id)
        .order_by(Nominator.position)
    )
    out = []
    for nominator, approved in db.session.execute(stmt):
        quota = quota_for(rnd, nominator, category)
        if approved > quota:
            out.append(QuotaWarning(nominator.id, nominator.name, approved, quota))
    return out


def approved_count(round_id: int, category: str) -> int:
    return db.session.scalar(
        select(func.count(Decision.id)).join(Nomination, Nomination.id == Decision.nomination_id)
        .where(Nomination.round_id == round_id, Nomination.category == category, Nomination.status == "active",
               Decision.outcome == "approve")
    ) or 0


def decision_of(nomination_id: int) -> Decision | None:
    return db.session.scalar(select(Decision).where(Decision.nomination_id == nomination_id))


def _decisions_by_nomination(round_id: int, category: str) -> dict[int, Decision]:
    stmt = (select(Decision).join(Nomination, Nomination.id == Decision.nomination_id)
            .where(Nomination.round_id == round_id, Nomination.category == category))
    return {d.nomination_id: d for d in db.session.scalars(stmt)}


def _active_ids(round_id: int, category: str) -> list[int]:
    return list(db.session.scalars(
        select(Nomination.id).where(Nomination.round_id == round_id, Nomination.category == category,
                                    Nomination.status == "active").order_by(Nomination.id)))


def seal_bytes(rnd: Round) -> bytes | None:
    if not rnd.seal_file:
        return None
    try:
        with open(storage.path_of(rnd.seal_file), "rb") as fh:
            return fh.read()
    except (OSError, ValueError):
        return None


# ----------------------------------------------------------------------------- guards


def _require_phase(rnd: Round | None, *phases: str) -> Round:
    if rnd is None:
        raise UserError("找不到评选批次。", status=404)
    if rnd.phase not in phases:
        allowed = "、".join(f"「{PHASE_LABELS[p]}」" for p in phases)
        raise Conflict(f"评选批次当前处于「{rnd.phase_label}」阶段，只能在{allowed}阶段进行此操作。")
    return rnd


def _clean_reason(reason: str | None) -> str:
    reason = (reason or "").strip()
    if len(reason) > REASON_MAX:
        raise UserError(f"理由不能超过 {REASON_MAX} 个字符。", {"reason": f"不超过 {REASON_MAX} 字"})
    return reason


def _clean_opinion(text: str | None) -> str:
    text = (text or "").strip()
    if not text:
        raise UserError("审定意见不能为空。", {"opinion": "必填"})
    if len(text) > OPINION_MAX:
        raise UserError(f"审定意见不能超过 {OPINION_MAX} 个字符。", {"opinion": f"不超过 {OPINION_MAX} 字"})
    return text


def _snapshot(d: Decision | None) -> dict | None:
    if d is None:
        return None
    return {"outcome": d.outcome, "opinion": d.opinion, "override_reason": d.override_reason, "version": d.version}


def _check_version(d: Decision | None, expected_version) -> None:
    if expected_version in (None, ""):
        return
    try:
        expected = int(expected_version)
    except (TypeError, ValueError):
        raise UserError("版本号无效。") from None
    current = d.version if d is not None else 0
    if expected != current:
        raise Conflict("该审定已被他人修改，请刷新后重试。")


def _locked_decision(nomination_id: int) -> Decision | None:
    return db.session.scalar(select(Decision).where(Decision.nomination_id == nomination_id)
                             .with_for_update().execution_options(populate_existing=True))


# ----------------------------------------------------------------------------- writing decisions


OPINION_CHOICES = ("keep", "template")


class OpinionChoiceNeeded(UserError):
    """Changing the decision of a nomination whose 审定意见 was written by hand: keep that text, or
    replace it with the new outcome's template? The page asks; nothing was written."""

    status = 409

    def __init__(self, opinion: str, template: str):
        super().__init__("该推荐对象的审定意见是手工填写的。改变审定结果时，请选择保留原意见还是改用新结果的模板意见。",
                         {"opinion_choice": "请选择"})
        self.opinion, self.template = opinion, template


def decide(nomination_id: int, outcome: str, *, reason: str = "", expected_version=None, opinion_choice: str = "",
           actor=None) -> Decision:
    """Approve or decline one nomination. Going against the cut line needs a reason (kept on the
    decision and in the audit log). An opinion not edited by hand follows the new outcome's template;
    for a hand-written one the caller says what to do (`opinion_choice` keep / template), else
    OpinionChoiceNeeded. Keeping a text that states the other outcome is refused: a 不通过 never
    carries 同意推荐 (nor the reverse)."""
    if opinion_choice not in ("", *OPINION_CHOICES):
        raise UserError("未知的审定意见处理方式。", {"opinion_choice": "无效"})
    if outcome not in OUTCOMES:
        raise UserError("审定结果只能是通过或不通过。", {"outcome": "无效"})
    reason = _clean_reason(reason)
    try:
        with write_transaction():
            nom = db.session.get(Nomination, nomination_id)
            if nom is None:
                raise UserError("找不到该推荐对象。", status=404)
            rnd = _require_phase(locked(Round, nom.round_id, shared=True), "deliberating")
            if nom.status != "active":
                raise UserError("该推荐对象已撤回，不能审定。", status=409)
            row = next((r for r in _rank_rows(rnd.id, nom.category) if r.nomination_id == nom.id), None)
            suggested = "approve" if row is not None and _line_of(row, rnd.slots(nom.category)) else "decline"
            crossing = outcome != suggested
            if crossing and not reason:
                where = "分数线以下" if suggested == "decline" else "分数线以上"
                raise UserError(f"该推荐对象位于{where}，改为「{OUTCOME_LABELS[outcome]}」须填写理由。",
                                {"reason": "跨线调整须填写理由"})
            dec = _locked_decision(nom.id)
            _check_version(dec, expected_version)
            before = _snapshot(dec)
            new_reason = reason if crossing else ""
            if dec is None:
                dec = Decision(nomination_id=nom.id, outcome=outcome, opinion=opinion_text(rnd, nom.category, outcome),
                               override_reason=new_reason, decided_by_id=getattr(actor, "id", None), version=1)
                db.session.add(dec)
            else:
                if dec.outcome == outcome and dec.override_reason == new_reason:
                    return dec
                if dec.outcome != outcome:
                    _follow_outcome(rnd, nom.category, dec, outcome, opinion_choice)
                dec.outcome = outcome
                dec.override_reason = new_reason
                dec.decided_by_id = getattr(actor, "id", None)
                dec.version += 1
            db.session.flush()
            rounds.bump_ranking(rnd.id, nom.category, [])
            audit.record("decision.set", "nomination", nom.id, before=before, after=_snapshot(dec),
                         reason=reason, round_id=rnd.id, actor=actor)
    except IntegrityError:
        # Two first decisions for one nomination raced (PostgreSQL); the loser retries on fresh data.
        raise Conflict("该审定已被他人修改，请刷新后重试。") from None
    return dec


def _follow_outcome(rnd: Round, category: str, dec: Decision, outcome: str, choice: str) -> None:
    template = opinion_text(rnd, category, outcome)
    hand_written = dec.opinion_edited and dec.opinion.strip()
    if not hand_written or choice == "template":
        dec.opinion, dec.opinion_edited = template, False
        return
    if not choice:
        raise OpinionChoiceNeeded(dec.opinion, template)
    if opinions.contradicts(rnd, category, outcome, dec.opinion):
        raise UserError(f"保留的审定意见「{dec.opinion}」与「{OUTCOME_LABELS[outcome]}」相矛盾，请改用模板意见或先修改意见。",
                        {"opinion_choice": "意见与审定结果矛盾"}, status=409)


# --- 公示 objections -------------------------------------------------------------------
REVOKED_OPINION = "经公示期间异议核实，撤销推荐，不予推荐。"


def revoke_after_objection(nomination_id: int, *, reason: str, actor=None) -> Decision:
    """撤销推荐 after an upheld objection: the one decision written outside 会议审定 — in 公示, and
    only from 通过 to 不通过, with the objection as the reason and a 审定意见 that says so. Called by
    app/publicity/operations.py inside its own transaction (it only flushes there)."""
    reason = _clean_reason(reason) or "公示期间异议"
    with write_transaction():
        nom = db.session.get(Nomination, nomination_id)
        if nom is None:
            raise UserError("找不到该推荐对象。", status=404)
        rnd = _require_phase(locked(Round, nom.round_id, shared=True), "publicizing")
        dec = _locked_decision(nom.id)
        if nom.status != "active" or dec is None or dec.outcome != "approve":
            raise Conflict("该推荐对象不在公示名单中，无需撤销推荐。")
        before = _snapshot(dec)
        dec.outcome, dec.opinion, dec.opinion_edited = "decline", REVOKED_OPINION, True
        dec.override_reason = reason
        dec.decided_by_id = getattr(actor, "id", None)
        dec.version += 1
        db.session.flush()
        rounds.bump_ranking(rnd.id, nom.category, [])
        audit.record("decision.revoke", "nomination", nom.id, before=before, after=_snapshot(dec), reason=reason,
                     round_id=rnd.id, actor=actor)
    return dec
# --- end 公示 objections


def prefill_from_cut_line(round_id: int, category: str, *, actor=None) -> int:
    """Create a decision for every undecided nomination: approve above the cut line, decline below,
    each with its template opinion. Existing decisions are left alone. Returns how many were made."""
    _check_category(category)
    created = 0
    try:
        with write_transaction():
            rnd = _require_phase(locked(Round, round_id, shared=True), "deliberating")
            for st in standings(rnd, category):
                if st.decision is not None:
                    continue
                dec = Decision(nomination_id=st.nomination_id, outcome=st.suggested,
                               opinion=opinion_text(rnd, category, st.suggested),
                               decided_by_id=getattr(actor, "id", None), version=1)
                db.session.add(dec)
                db.session.flush()
                audit.record("decision.prefill", "nomination", st.nomination_id, after=_snapshot(dec),
                             round_id=rnd.id, actor=actor)
                created += 1
            if created:
                rounds.bump_ranking(rnd.id, category, [])
    except IntegrityError:
        raise Conflict("审定数据已被他人修改，请刷新后重试。") from None
    return created


def set_opinion(nomination_id: int, text: str, *, expected_version=None, actor=None) -> Decision:
    text = _clean_opinion(text)
    with write_transaction():
        nom = db.session.get(Nomination, nomination_id)
        if nom is None:
            raise UserError("找不到该推荐对象。", status=404)
        rnd = _require_phase(locked(Round, nom.round_id, shared=True), "deliberating")
        dec = _locked_decision(nom.id)
        if dec is None:
            raise UserError("请先作出通过或不通过的审定，再填写审定意见。", status=409)
        _check_version(dec, expected_version)
        if dec.opinion == text:
            return dec
        before = _snapshot(dec)
        dec.opinion = text
        dec.opinion_edited = text != opinion_text(rnd, nom.category, dec.outcome)
        dec.version += 1
        audit.record("decision.opinion", "nomination", nom.id, before=before, after=_snapshot(dec),
                     round_id=nom.round_id, actor=actor)
    return dec


def fill_opinions(round_id: int, category: str, *, overwrite: bool = False, actor=None) -> int:
    """Fill 审定意见 from the round's templates: the empty ones, or (overwrite) every one."""
    _check_category(category)
    changed = 0
    with write_transaction():
        rnd = _require_phase(locked(Round, round_id, shared=True), "deliberating")
        stmt = (select(Decision).join(Nomination, Nomination.id == Decision.nomination_id)
                .where(Nomination.round_id == rnd.id, Nomination.category == category)
                .order_by(Decision.nomination_id).with_for_update())
        for dec in db.session.scalars(stmt):
            text = opinion_text(rnd, category, dec.outcome)
            if dec.opinion == text or (dec.opinion.strip() and not overwrite):
                continue
            before = _snapshot(dec)
            dec.opinion, dec.opinion_edited = text, False
            dec.version += 1
            audit.record("decision.opinion", "nomination", dec.nomination_id, before=before, after=_snapshot(dec),
                         reason="按模板填写", round_id=rnd.id, actor=actor)
            changed += 1
    return changed


def _check_category(category: str) -> None:
    if category not in CATEGORIES:
        raise UserError("未知类别。", status=404)


# ----------------------------------------------------------------------------- round settings


def _validate_template(text: str, field_name: str) -> str:
    text = (text or "").strip()
    if not text:
        raise UserError("审定意见模板不能为空。", {field_name: "必填"})
    if len(text) > TEMPLATE_MAX:
        raise UserError(f"审定意见模板不能超过 {TEMPLATE_MAX} 个字符。", {field_name: f"不超过 {TEMPLATE_MAX} 字"})
    unknown = {m for m in _PLACEHOLDER.findall(text) if m not in _ALLOWED_PLACEHOLDERS}
    problem = round_rules.check_template(text)
    if problem or unknown or text.count("{") != text.count("}"):
        problem = problem or "占位符无效"
        raise UserError(f"审定意见模板{problem}。模板中只能使用 {{year}}（年份）和 {{category}}（类别）两个占位符。",
                        {field_name: problem})
    return text


def set_templates(round_id: int, approve_template: str, decline_template: str, *, actor=None) -> Round:
    approve_template = _validate_template(approve_template, "approve_template")
    decline_template = _validate_template(decline_template, "decline_template")
    with write_transaction():
        rnd = _require_phase(locked(Round, round_id), "setup", "collecting", "reviewing", "deliberating")
        before = {"approve": rnd.opinion_approve_template, "decline": rnd.opinion_decline_template}
        after = {"approve": approve_template, "decline": decline_template}
        if before == after:
            return rnd
        rnd.opinion_approve_template, rnd.opinion_decline_template = approve_template, decline_template
        audit.record("round.opinion_templates", "round", rnd.id, before=before, after=after, round_id=rnd.id,
                     actor=actor)
    return rnd


def parse_date(value: str | None) -> date:
    try:
        return date.fromisoformat((value or "").strip())
    except ValueError:
        raise UserError("日期格式应为 YYYY-MM-DD。", {"approval_date": "格式应为 YYYY-MM-DD"}) from None


def set_approval_date(round_id: int, value: date, *, actor=None) -> Round:
    with write_transaction():
        rnd = _require_phase(locked(Round, round_id), "deliberating", "publicizing")
        if not (rnd.year <= value.year <= rnd.year + 1):
            raise UserError(f"审定日期应在 {rnd.year} 年或 {rnd.year + 1} 年。", {"approval_date": "日期超出范围"})
        if rnd.approval_date == value:
            return rnd
        before = rnd.approval_date.isoformat() if rnd.approval_date else None
        rnd.approval_date = value
        audit.record("round.approval_date", "round", rnd.id, before={"approval_date": before},
                     after={"approval_date": value.isoformat()}, round_id=rnd.id, actor=actor)
    return rnd


def validate_seal(data: bytes) -> bytes:
    """A PNG with transparency, of a sane size, re-encoded by Pillow (drops metadata and anything
    that is not pixels). Returns the clean PNG bytes."""
    if not data:
        raise UserError("请选择印章图片文件。", {"seal": "必填"})
    if len(data) > SEAL_MAX_BYTES:
        raise UserError("印章图片不能超过 2 MB。", {"seal": "文件过大"}, status=413)
    try:
        img = Image.open(io.BytesIO(data))
        fmt = img.format
        width, height = img.size  # read from the header, before decoding any pixels
    except (UnidentifiedImageError, OSError, ValueError):
        raise UserError("无法识别该文件，请上传 PNG 图片。", {"seal": "不是图片"}) from None
    if fmt != "PNG":
        raise UserError("印章必须是 PNG 格式（带透明背景）。", {"seal": "须为 PNG"})
    if not (SEAL_MIN_PX <= width <= SEAL_MAX_PX and SEAL_MIN_PX <= height <= SEAL_MAX_PX):
        raise UserError(f"印章图片的宽和高应在 {SEAL_MIN_PX}–{SEAL_MAX_PX} 像素之间。", {"seal": "尺寸不合适"})
    try:
        rgba = img.convert("RGBA")
    except (OSError, ValueError, Image.DecompressionBombError):
        raise UserError("印章图片已损坏。", {"seal": "文件损坏"}) from None
    alpha_min, _ = rgba.getchannel("A").getextrema()
    if alpha_min == 255:
        raise UserError("印章图片须为透明背景的 PNG（当前图片没有透明区域）。", {"seal": "没有透明背景"})
    if rgba.getbbox() is None:
        raise UserError("印章图片是全透明的。", {"seal": "图片为空"})
    buf = io.BytesIO()
    rgba.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def save_seal(round_id: int, data: bytes, *, actor=None) -> Round:
    clean = validate_seal(data)
    stored = storage.save_bytes(clean, "png")
    old = None
    try:
        with write_transaction():
            rnd = _require_phase(locked(Round, round_id), "setup", "collecting", "reviewing", "deliberating",
                                 "publicizing")
            old = rnd.seal_file
            rnd.seal_file = stored
            audit.record("round.seal", "round", rnd.id, before={"seal_file": old}, after={"seal_file": stored},
                         round_id=rnd.id, actor=actor)
    except BaseException:
        storage.remove(stored)
        raise
    storage.remove(old)
    return rnd


# ----------------------------------------------------------------------------- phases


def undecided_count(round_id: int) -> int:
    return db.session.scalar(
        select(func.count(Nomination.id)).outerjoin(Decision, Decision.nomination_id == Nomination.id)
        .where(Nomination.round_id == round_id, Nomination.status == "active", Decision.id.is_(None))
    ) or 0


def missing_opinion_count(round_id: int) -> int:
    return db.session.scalar(
        select(func.count(Decision.id)).join(Nomination, Nomination.id == Decision.nomination_id)
        .where(Nomination.round_id == round_id, Nomination.status == "active",
               func.length(func.trim(Decision.opinion)) == 0)
    ) or 0


def publicize(round_id: int, *, confirm: bool = False, reason: str = "", actor=None) -> Round:
    """deliberating → publicizing past the pre-flight (rounds/preflight.py: refused while a nomination
    is undecided or a decision and its opinion contradict; other gaps need `confirm` and a `reason`):
    the decisions become the provisional (公示) list."""
    return preflight.move(round_id, "publicizing", confirm=confirm, reason=reason, actor=actor,
                          guard=lambda rnd: _require_phase(rnd, "deliberating"))


def finalize(round_id: int, *, confirm: bool = False, reason: str = "", actor=None) -> Round:
    """publicizing → final past the pre-flight, in one transaction holding the round row FOR UPDATE;
    from then on nothing in the round can be written (every writer checks the phase under a lock on
    the same row)."""
    return preflight.move(round_id, "final", confirm=confirm, reason=reason, actor=actor,
                          guard=lambda rnd: _require_phase(rnd, "publicizing"))


def reopen(round_id: int, reason: str, *, actor=None) -> Round:
    """An admin steps the round back one phase (final → publicizing, publicizing → deliberating);
    the reason is required and audited."""
    if actor is None or getattr(actor, "role", None) != "admin":
        raise UserError("只有管理员可以重新开放评选批次。", status=403)
    reason = (reason or "").strip()
    if not reason:
        raise UserError("重新开放必须填写理由。", {"reason": "必填"})
    rnd = rounds.get(round_id)
    # Only the chair's phases reopen here; earlier steps back are the admin dashboard's.
    target = rounds.previous_phase(rnd.phase) if rnd.phase in ("publicizing", "final") else None
    if target is None:
        raise Conflict(f"评选批次处于「{rnd.phase_label}」阶段，无需重新开放。")
    return rounds.change_phase(round_id, target, reason=reason, actor=actor,
                               guard=lambda locked_round: _require_phase(locked_round, rnd.phase))
