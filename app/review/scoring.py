"""Score sheets: validate, save, submit, reopen.

A save is one short write transaction. Its first statement reads, in one go, the round's phase under
a shared lock (a phase change holds the row exclusively, so no save commits on the wrong side of
it), the nomination, its rubric, and whether this reviewer is assigned and has not declared a
conflict. Then the sheet is read, written only if its version is still the one the reviewer saw
(two windows on one sheet: the second gets a 409, never a silent overwrite), its scores written, the
change audited, and the live ranking's counter, a hot row on PostgreSQL, bumped as the very last
statement.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from types import SimpleNamespace

from flask import g, has_app_context
from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.exc import IntegrityError

from app.audit import operations as audit
from app.core.database import locked, write_transaction
from app.core.errors import Conflict, UserError
from app.extensions import db
from app.models import Assignment, Criterion, Nomination, ReviewSheet, Round, Score, User
from app.models._base import utcnow
from app.models.review import COMMENT_MAX
from app.review import recusals, totals  # noqa: F401 — totals: the ORM hook keeps other writers right
from app.rounds import phases as rounds

# --- statements of the save path, built once ---------------------------------------------------
# Building a SQLAlchemy statement costs more Python time than SQLite takes to run it; the autosave
# is the hottest path of the system, so its statements are Core, prebuilt, take bound values, and
# run on the session's connection (the ORM layer has nothing to add to them).
_rounds, _nominations, _criteria = Round.__table__, Nomination.__table__, Criterion.__table__
_sheets, _scores = ReviewSheet.__table__, Score.__table__
_assignments = Assignment.__table__

_TARGET_COLUMNS = (
    _nominations.c.round_id, _nominations.c.category, _nominations.c.nominator_id, _nominations.c.status,
    _criteria.c.id.label("cid"), _criteria.c.code, _criteria.c.name, _criteria.c.max_score, _criteria.c.step,
    _criteria.c.guidance, _criteria.c.position,
)
_WITH_RUBRIC = _nominations.outerjoin(_criteria, and_(_criteria.c.round_id == _nominations.c.round_id,
                                                      _criteria.c.category == _nominations.c.category))
_TARGET = (
    select(*_TARGET_COLUMNS).select_from(_WITH_RUBRIC)
    .where(_nominations.c.id == bindparam("nomination_id"))
    .order_by(_criteria.c.position, _criteria.c.id)
)
# The save's first statement: the target as above, plus the round's phase read FOR SHARE (what
# database.locked(Round, id, shared=True) takes; on SQLite BEGIN IMMEDIATE already excludes the
# phase change), this reviewer's assignment, and their declared recusal (recusals' own column).
_GATE_READ = (
    select(*_TARGET_COLUMNS, _rounds.c.phase, _assignments.c.id.label("assignment_id"),
           recusals.declared_id(bindparam("reviewer_id"), _nominations.c.id).label("recusal_id"))
    .select_from(
        _WITH_RUBRIC.join(_rounds, _rounds.c.id == _nominations.c.round_id)
        .outerjoin(_assignments, and_(_assignments.c.nomination_id == _nominations.c.id,
                                      _assignments.c.reviewer_id == bindparam("reviewer_id")))
    )
    .where(_nominations.c.id == bindparam("nomination_id"))
    .order_by(_criteria.c.position, _criteria.c.id)
)
_GATE = _GATE_READ.with_for_update(read=True, of=_rounds)
_SHEET = (
    select(_sheets.c.id, _sheets.c.version, _sheets.c.status, _sheets.c.comment, _sheets.c.submitted_at,
           _sheets.c.updated_at, _scores.c.criterion_id, _scores.c.value)
    .select_from(_sheets.outerjoin(_scores, _scores.c.sheet_id == _sheets.c.id))
    .where(_sheets.c.reviewer_id == bindparam("reviewer_id"), _sheets.c.nomination_id == bindparam("nomination_id"))
)
_UPDATE_SHEET = (
    _sheets.update()
    .where(_sheets.c.id == bindparam("of_sheet"), _sheets.c.version == bindparam("of_version"))
    .values(version=bindparam("new_version"), comment=bindparam("new_comment"), status=bindparam("new_status"),
            submitted_at=bindparam("new_submitted_at"), updated_at=bindparam("now"),
            total=bindparam("new_total"), n_values=bindparam("new_n_values"))
)
_INSERT_SCORES = _scores.insert()
_UPDATE_SCORES = (
    _scores.update()
    .where(_scores.c.sheet_id == bindparam("of_sheet"), _scores.c.criterion_id == bindparam("of_criterion"))
    .values(value=bindparam("new_value"))
)
_DELETE_SCORES = _scores.delete().where(
    _scores.c.sheet_id == bindparam("of_sheet"), _scores.c.criterion_id.in_(bindparam("gone", expanding=True))
)

PHASE_CLOSED = "评审阶段已结束，评分未保存。"
PHASE_NOT_OPEN = "评审尚未开始，评分未保存。"
STALE = "此评分表已在其他窗口修改，您刚才的输入未保存。下面显示的是已保存的最新内容，请核对后重新输入。"
ALREADY_SUBMITTED = "此评分表已提交，不能再修改；如需修改，请联系管理员退回。"
REOPEN_REASON_MAX = 500
_VALUE_MAX_CHARS = 12
_NUMBER = re.compile(r"^(\d+(\.\d*)?|\.\d+)$")


# --- the rubric of one nomination -------------------------------------------------------------

@dataclass(frozen=True)
class RubricItem:
    id: int
    code: str
    name: str
    max_score: float
    step: float
    guidance: str
    position: int


@dataclass(frozen=True)
class Target:
    """A nomination as the scoring path needs it; plain values, so a commit never expires them."""

    nomination_id: int
    round_id: int
    category: str
    nominator_id: int
    status: str
    rubric: tuple[RubricItem, ...]

    @property
    def max_total(self) -> float:
        return sum(c.max_score for c in self.rubric)


def _memo() -> dict:
    return g.setdefault("_scoring_targets", {}) if has_app_context() else {}


def _target_from(nomination_id: int, rows) -> Target:
    if not rows:
        raise UserError("找不到该推荐对象。", status=404)
    first = rows[0]
    rubric = tuple(
        RubricItem(r.cid, r.code, r.name, float(r.max_score), float(r.step), r.guidance or "", r.position)
        for r in rows if r.cid is not None
    )
    tgt = Target(nomination_id, first.round_id, first.category, first.nominator_id, first.status, rubric)
    _memo()[nomination_id] = tgt
    return tgt


def target(nomination_id: int) -> Target:
    """The nomination's round, category and rubric in one query, memoised for the request (a save
    fills the memo from its own first statement, so rendering its answer costs no query)."""
    memo = _memo()
    if nomination_id in memo:
        return memo[nomination_id]
    return _target_from(nomination_id, db.session.connection().execute(_TARGET, {"nomination_id": nomination_id}).all())


# --- parsing and validation (pure) ------------------------------------------------------------

def _plain(value: float) -> str:
    d = Decimal(str(value)).normalize()
    return format(d, "f")


def parse_value(raw: str | None, item: RubricItem) -> tuple[Decimal | None, str | None]:
    """(value, None) or (None, Chinese error); blank means "not scored yet"."""
    raw = raw if isinstance(raw, str) else "" if raw is None else str(raw)  # a Decimal from a form, say
    text = unicodedata.normalize("NFKC", raw).strip().replace(" ", "").replace("。", ".")
    if not text:
        return None, None
    if text.startswith("-") and _NUMBER.match(text[1:]):
        return None, "不能小于 0"
    if len(text) > _VALUE_MAX_CHARS or not _NUMBER.match(text):
        return None, "请输入数字，如 25 或 25.5"
    try:
        value = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern already rules this out
        return None, "请输入数字，如 25 或 25.5"
    if value > Decimal(str(item.max_score)):
        return None, f"不能超过满分 {_plain(item.max_score)}"
    step = Decimal(str(item.step))
    if value % step != 0:
        return None, f"须为 {_plain(item.step)} 的整数倍"
    return value, None


def parse_values(rubric, raw: dict) -> tuple[dict[int, Decimal | None], dict[int, str]]:
    """Every criterion of the rubric gets a value or None; keys absent from `raw` are blank (the whole
    form is posted, so an absent key means an emptied field)."""
    values, errors = {}, {}
    for item in rubric:
        value, error = parse_value(raw.get(item.id), item)
        values[item.id] = value
        if error:
            errors[item.id] = error
    return values, errors


def normalize_comment(comment: str | None) -> str:
    # Browsers send CRLF while <textarea maxlength> counts a line break as one character.
    return (comment or "").replace("\r\n", "\n").replace("\r", "\n").strip()


def comment_error(comment: str) -> str | None:
    if len(comment) > COMMENT_MAX:
        return f"评审意见不能超过 {COMMENT_MAX} 字（现为 {len(comment)} 字）"
    return None


# --- the stored sheet ---------------------------------------------------------------------------

@dataclass(frozen=True)
class SheetState:
    """One reviewer's sheet as stored; version 0 means no sheet yet."""

    id: int | None = None
    version: int = 0
    status: str = "draft"
    comment: str = ""
    values: dict[int, float] = field(default_factory=dict)
    submitted_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def submitted(self) -> bool:
        return self.status == "submitted"

    @property
    def total(self) -> float | None:
        return sum(self.values.values()) if self.values else None


def sheet_state(reviewer_id: int, nomination_id: int) -> SheetState:
    """The sheet and its scores in one query (the outer join yields one row per score)."""
    rows = db.session.connection().execute(_SHEET, {"reviewer_id": reviewer_id, "nomination_id": nomination_id}).all()
    if not rows:
        return SheetState()
    r = rows[0]
    values = {row.criterion_id: float(row.value) for row in rows if row.criterion_id is not None}
    return SheetState(r.id, r.version, r.status, r.comment or "", values, r.submitted_at, r.updated_at)


class SheetConflict(Conflict):
    """409 carrying what is stored now, so the page can show it instead of the stale input."""

    def __init__(self, message: str, current: SheetState):
        super().__init__(message)
        self.current = current


def _audit_view(target: Target, values: dict[int, float], comment: str, status: str) -> dict:
    codes = {c.id: c.code for c in target.rubric}
    return {"values": {codes.get(cid, str(cid)): v for cid, v in sorted(values.items())},
            "comment": comment, "status": status}


# --- writes ------------------------------------------------------------------------------------

def save_sheet(reviewer, nomination_id: int, values: dict, comment: str | None, version: int,
               submit: bool = False) -> SheetState:
    """Save (and optionally submit) one reviewer's sheet from the posted absolute values.

    `values` maps criterion id → the raw text of its field (blank/None/absent = not scored yet; ids
    outside the nomination's rubric are ignored). Raises UserError (422 with field_errors keyed by
    criterion id or "comment"; 403; 404; 409 when the round is not in reviewing) or SheetConflict
    (409 with the stored state) — and then nothing was stored.

    Returns the sheet as stored now (scores included), which is all the score panel renders: the
    caller never reads back what was just written. The nomination's Target is memoised for the request.
    """
    comment = normalize_comment(comment)
    # Plain ids, read now: write_transaction() ends the request's read transaction, which expires
    # every loaded object, and re-reading the user inside the write lock would be wasted time.
    reviewer_id, affiliation_id = reviewer.id, reviewer.affiliation_id
    try:
        with write_transaction():
            gate = db.session.connection().execute(
                _GATE, {"nomination_id": nomination_id, "reviewer_id": reviewer_id}).all()
            tgt = _target_from(nomination_id, gate)
            # Who may write before what they wrote: a refusal must not echo someone else's page.
            _check_gate(gate[0], tgt, affiliation_id)
            new_values = _validated(tgt, values, comment, submit)
            current = sheet_state(reviewer_id, nomination_id)
            # Posting exactly what is stored writes nothing and is no conflict whatever the version:
            # a blur right after the delayed autosave, or a retry whose first answer was lost.
            unchanged = (current.id is not None and not submit and new_values == current.values
                         and comment == current.comment)
            if version != current.version and not unchanged:
                raise SheetConflict(STALE, current)
            if current.submitted:
                raise SheetConflict(ALREADY_SUBMITTED, current)
            if unchanged:
                written = current
            else:
                written = _write_sheet(tgt, reviewer_id, nomination_id, current, new_values, comment,
                                       "submitted" if submit else "draft")
    except IntegrityError:
        # PostgreSQL: another window created this sheet at the same moment and committed first.
        raise SheetConflict(STALE, sheet_state(reviewer_id, nomination_id)) from None
    return written


def check_access(reviewer, nomination_id: int) -> SheetState:
    """The save's gate, read without its lock: raises as save_sheet would for this reviewer and
    nomination (403/404/409), else returns the stored sheet. For answering input the form refused, so
    a refusal never echoes a page the reviewer may not see, and nothing is written."""
    gate = db.session.connection().execute(
        _GATE_READ, {"nomination_id": nomination_id, "reviewer_id": reviewer.id}).all()
    tgt = _target_from(nomination_id, gate)
    _check_gate(gate[0], tgt, reviewer.affiliation_id)
    return sheet_state(reviewer.id, nomination_id)


def _validated(tgt: Target, values: dict, comment: str, submit: bool) -> dict[int, float]:
    parsed, errors = parse_values(tgt.rubric, values)
    if (err := comment_error(comment)) is not None:
        errors["comment"] = err
    if errors:
        raise UserError(f"评分未保存：有 {len(errors)} 处需要更正，请查看标出的项目。", errors)
    if submit:
        missing = [c for c in tgt.rubric if parsed[c.id] is None]
        if missing:
            raise UserError(
                f"尚不能提交：{'、'.join(c.name for c in missing)}还没有评分。",
                {c.id: "提交前必须评分" for c in missing},
            )
    return {cid: float(v) for cid, v in parsed.items() if v is not None}


def _check_gate(row, tgt: Target, affiliation_id: int | None) -> None:
    if recusals.affiliation_conflict(affiliation_id, tgt.nominator_id):
        raise UserError("该推荐对象由您所在单位推荐，您已回避，不能评分。", status=403)
    if row.assignment_id is None:
        raise UserError("该推荐对象未分配给您，不能评分。", status=403)
    if row.recusal_id is not None:
        raise UserError("您已声明回避该推荐对象，不能评分。", status=403)
    if tgt.status != "active":
        raise UserError("该推荐对象已撤回，无需评分。", status=409)
    if not tgt.rubric:
        raise UserError("本类别尚未设置评分指标，请联系管理员。", status=409)
    if row.phase != "reviewing":
        raise UserError(PHASE_NOT_OPEN if row.phase in ("setup", "collecting") else PHASE_CLOSED, status=409)


def _write_sheet(tgt: Target, reviewer_id: int, nomination_id: int, current: SheetState,
                 new_values: dict[int, float], comment: str, status: str) -> SheetState:
    now = utcnow()
    submitted_at = now if status == "submitted" else None
    conn = db.session.connection()
    # The sheet's figures (app/review/totals.py) from the values being written: they are exactly the
    # rubric's (parse_values keeps no other criterion), and they land in the same row write as the
    # version, so the optimistic check that refuses a lost update refuses a stale total with it.
    figures = {"total": float(sum(new_values.values())), "n_values": len(new_values)}
    if current.id is None:
        sheet_id = conn.execute(_sheets.insert().values(
            reviewer_id=reviewer_id, nomination_id=nomination_id, comment=comment, status=status, version=1,
            submitted_at=submitted_at, created_at=now, updated_at=now, **figures,
        )).inserted_primary_key[0]
    else:
        sheet_id = current.id
        updated = conn.execute(_UPDATE_SHEET, {
            "of_sheet": sheet_id, "of_version": current.version, "new_version": current.version + 1,
            "new_comment": comment, "new_status": status, "new_submitted_at": submitted_at, "now": now,
            "new_total": figures["total"], "new_n_values": figures["n_values"],
        }).rowcount
        if updated != 1:
            # PostgreSQL: another window's save committed between our read and this write.
            raise SheetConflict(STALE, sheet_state(reviewer_id, nomination_id))
    _write_scores(conn, sheet_id, current.values, new_values)
    audit.record(
        "sheet.submit" if status == "submitted" else "sheet.save", "review_sheet", sheet_id,
        before=_audit_view(tgt, current.values, current.comment, current.status) if current.id else None,
        after=_audit_view(tgt, new_values, comment, status),
        round_id=tgt.round_id, actor=SimpleNamespace(id=reviewer_id),
    )
    db.session.flush()
    # The live ranking's ETag: a hot row on PostgreSQL, so its lock is taken last and held briefly.
    rounds.bump_ranking(tgt.round_id, tgt.category, [tgt.nomination_id])
    return SheetState(sheet_id, current.version + 1, status, comment, new_values, submitted_at, now)


def _write_scores(conn, sheet_id: int, stored: dict[int, float], wanted: dict[int, float]) -> None:
    gone = [cid for cid in stored if cid not in wanted]
    added = [{"sheet_id": sheet_id, "criterion_id": cid, "value": v} for cid, v in wanted.items()
             if cid not in stored]
    changed = [{"of_sheet": sheet_id, "of_criterion": cid, "new_value": v} for cid, v in wanted.items()
               if cid in stored and stored[cid] != v]
    if gone:
        conn.execute(_DELETE_SCORES, {"of_sheet": sheet_id, "gone": gone})
    if added:
        conn.execute(_INSERT_SCORES, added)
    if changed:
        conn.execute(_UPDATE_SCORES, changed)


def reopen_sheet(sheet_id: int, reason: str, actor) -> ReviewSheet:
    """An admin sends a submitted sheet back to its reviewer as a draft (reason required, audited)."""
    reason = normalize_comment(reason)
    if not reason:
        raise UserError("请填写退回理由。", {"reason": "请填写退回理由"})
    if len(reason) > REOPEN_REASON_MAX:
        raise UserError(f"退回理由不能超过 {REOPEN_REASON_MAX} 字。", {"reason": f"不能超过 {REOPEN_REASON_MAX} 字"})
    actor_ref = SimpleNamespace(id=actor.id) if actor is not None else None
    with write_transaction():
        sheet = db.session.get(ReviewSheet, sheet_id)
        if sheet is None:
            raise UserError("找不到该评分表。", status=404)
        tgt = target(sheet.nomination_id)
        rnd = locked(Round, tgt.round_id, shared=True)
        if rnd.phase != "reviewing":
            raise UserError("只有在专家评审阶段才能退回评分表。", status=409)
        # The row lock makes a save racing this reopen wait, then find the version moved on (409).
        sheet = locked(ReviewSheet, sheet_id)
        if sheet.status != "submitted":
            raise UserError("该评分表尚未提交，无需退回。", status=409)
        before = {"status": sheet.status, "version": sheet.version}
        sheet.status = "draft"
        sheet.submitted_at = None
        sheet.version += 1
        sheet.updated_at = utcnow()
        audit.record("sheet.reopen", "review_sheet", sheet.id, before=before,
                     after={"status": "draft", "version": sheet.version, "reviewer_id": sheet.reviewer_id},
                     reason=reason, round_id=tgt.round_id, actor=actor_ref)
        db.session.flush()
        rounds.bump_ranking(tgt.round_id, tgt.category, [tgt.nomination_id])
    return sheet


# --- for chair and admin -------------------------------------------------------------------------

@dataclass(frozen=True)
class SheetSummary:
    id: int
    reviewer_name: str
    status: str
    total: float | None
    n_scores: int
    submitted_at: datetime | None
    updated_at: datetime | None
    recused: bool


def sheets_overview(nomination_id: int) -> list[SheetSummary]:
    """Every reviewer's sheet for one nomination (chair/admin pages only: never for a reviewer)."""
    counts = recusals.not_recused_clause(ReviewSheet.reviewer_id, ReviewSheet.nomination_id, User.affiliation_id,
                                Nomination.nominator_id)
    rows = db.session.execute(
        select(ReviewSheet.id, User.display_name, ReviewSheet.status, func.sum(Score.value),
               func.count(Score.id), ReviewSheet.submitted_at, ReviewSheet.updated_at, counts)
        .join(User, User.id == ReviewSheet.reviewer_id)
        .join(Nomination, Nomination.id == ReviewSheet.nomination_id)
        .outerjoin(Score, Score.sheet_id == ReviewSheet.id)
        .where(ReviewSheet.nomination_id == nomination_id)
        .group_by(ReviewSheet.id, User.display_name, ReviewSheet.status, ReviewSheet.submitted_at,
                  ReviewSheet.updated_at, User.affiliation_id, Nomination.nominator_id, ReviewSheet.reviewer_id,
                  ReviewSheet.nomination_id, User.username)
        .order_by(User.username)
    ).all()
    return [SheetSummary(r[0], r[1], r[2], float(r[3]) if r[3] is not None else None, r[4], r[5], r[6],
                         not r[7]) for r in rows]
