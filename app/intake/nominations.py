"""Nominations (推荐对象): the one place that writes them.

Their fields are declared once, in app.intake.forms (UnitFields / ActivityFields); validate_fields()
checks a mapping through those declarations, so the admin page, every importer and the CLI refuse the
same values with the same messages. Each write is one operation(): its transaction, then 形式审查 of
the round once that has committed — the check reads the whole round, and nothing that waits on the
round row (every score save reads it FOR SHARE) should wait for it. Writes lock the round FOR SHARE, so
none commits after the round left an editable phase.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import and_, case, exists, func, select
from sqlalchemy.orm import selectinload

from app.audit import operations as audit
from app.core.database import locked, write_transaction
from app.core.errors import Conflict, UserError
from app.core.params import parse_id
from app.core.time import beijing_date, noon_utc
from app.extensions import db
from app.intake import form_check, forms
from app.intake.limits import COUNT_MAX, REASON_MAX  # noqa: F401 — part of this module's interface
from app.intake.quotas import quota_for  # noqa: F401 — the name other areas call
from app.intake.text import norm_key
from app.models import CATEGORIES, PHASE_LABELS, FormFinding, Nomination, Nominator, Round
from app.models._base import utcnow
from app.rounds import phases as rounds

log = logging.getLogger(__name__)

# Nominations can be added and corrected until the committee meets; late arrivals during review are
# still recorded (and flagged late by 形式审查), never refused.
EDITABLE_PHASES = ("setup", "collecting", "reviewing")

FIELDS = ("title", "host", "contact_name", "contact_title", "contact_phone", "address", "event_count",
          "people_served", "summary", "recommendation", "recommendation_date")
_LABELS = {
    "title": "名称", "host": "主办单位", "contact_name": "联系人", "contact_title": "职务",
    "contact_phone": "联系电话", "address": "通讯地址", "event_count": "活动场数", "people_served": "服务人数",
    "summary": "情况简介", "recommendation": "推荐意见", "recommendation_date": "推荐日期",
    "received_date": "收到日期", "nominator_id": "推荐单位",
}
_CATEGORY_LABELS = {
    "unit": {"title": "单位名称", "event_count": "组织开展的活动场数", "summary": "组织情况简介"},
    "activity": {"title": "活动名称", "summary": "活动情况简介"},
}
# Empty fields worth telling the admin about (a blank 职务 is not).
EXPECTED = ("host", "contact_name", "contact_phone", "address", "event_count", "people_served", "summary",
            "recommendation", "recommendation_date")


def field_label(name: str, category: str) -> str:
    return _CATEGORY_LABELS.get(category, {}).get(name) or _LABELS.get(name, name)


def fields_for(category: str) -> tuple[str, ...]:
    return FIELDS if category == "activity" else tuple(f for f in FIELDS if f != "host")


@dataclass
class Cleaned:
    """validate_fields() output: typed values for the model, Chinese errors by field, empty fields."""

    values: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)
    missing: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def validate_fields(category: str, raw: Mapping) -> Cleaned:
    """Check and convert the fields of one 附件1/附件2 form through its WTForms declarations; nothing is
    stored here. `raw` holds form strings or an import's typed values.

    Only the name is required: an incomplete form is still recorded, its gaps listed in `missing` (and
    later by 形式审查).
    """
    if category not in CATEGORIES:
        raise UserError("类别只能是优秀组织单位或优秀活动。", {"category": "请选择类别"})
    form = forms.check(forms.NOMINATION_FIELDS[category], raw)
    c = Cleaned(errors=forms.first_errors(form))
    for name in (*fields_for(category), "received_date"):
        c.values[name] = form[name].data
    if category != "activity":
        c.values["host"] = None
    for name in EXPECTED:
        if name == "host" and category != "activity":
            continue
        if c.values.get(name) in (None, "") and name not in c.errors:
            c.missing.append(name)
    for name in ("event_count", "people_served"):
        if c.values[name] is None:
            c.values[name] = 0
    return c


def missing_labels(cleaned: Cleaned, category: str) -> list[str]:
    return [field_label(name, category) for name in cleaned.missing]


# --- keys, snapshots, versions ------------------------------------------------------------------------


def source_key_for(nominator_name: str, category: str, title: str) -> str:
    """Re-importing the same nomination (same nominator, category and name, however spaced or punctuated)
    finds the same key, so it updates instead of duplicating."""
    basis = f"{norm_key(nominator_name)}|{category}|{norm_key(title)}"
    return "k1:" + hashlib.sha256(basis.encode()).hexdigest()[:40]


def snapshot(nom: Nomination) -> dict:
    """The fields as JSON-friendly values (audit before/after, edit versions)."""
    out = {name: getattr(nom, name) for name in FIELDS}
    out["recommendation_date"] = nom.recommendation_date.isoformat() if nom.recommendation_date else None
    out.update(category=nom.category, nominator_id=nom.nominator_id, status=nom.status)
    return out


def version_of(nom: Nomination) -> str:
    """An edit form carries this; a save against a different one is stale (someone else saved first)."""
    data = snapshot(nom)
    data["summary_original"] = nom.summary_original
    return hashlib.sha1(json.dumps(data, sort_keys=True, ensure_ascii=False).encode(), usedforsecurity=False).hexdigest()[:16]


def received_at_from(day: date | None) -> datetime:
    """A received date typed by the admin becomes noon Beijing time, the same calendar day in any zone."""
    return utcnow() if day is None else noon_utc(day)


local_date = beijing_date


# --- reads --------------------------------------------------------------------------------------------


def get(nomination_id: int) -> Nomination:
    nom = db.session.get(Nomination, nomination_id)
    if nom is None:
        raise UserError("找不到该推荐对象。", status=404)
    return nom


def by_source_key(round_id: int, key: str) -> Nomination | None:
    return db.session.scalar(select(Nomination).where(Nomination.round_id == round_id,
                                                      Nomination.source_key == key))


def list_nominations(round_id: int, category: str, *, nominator_id: int | None = None, status: str = "active",
                     findings: str = "") -> list[Nomination]:
    """The admin list; `findings` is "" (any), "open" (any open finding), "blocking" or "none"."""
    stmt = (select(Nomination).join(Nominator, Nomination.nominator_id == Nominator.id)
            .where(Nomination.round_id == round_id, Nomination.category == category)
            .options(selectinload(Nomination.nominator), selectinload(Nomination.attachments))
            .order_by(Nominator.position, Nominator.id, Nomination.received_at, Nomination.id))
    if nominator_id:
        stmt = stmt.where(Nomination.nominator_id == nominator_id)
    if status in ("active", "withdrawn", "submitted", "returned"):
        stmt = stmt.where(Nomination.status == status)
    elif status == "current":
        stmt = stmt.where(Nomination.status.in_(("active", "submitted", "returned")))
    else:
        # A 推荐单位's draft is its own until submitted: never in the admin's list.
        stmt = stmt.where(Nomination.status != "draft")
    open_finding = exists().where(FormFinding.nomination_id == Nomination.id, FormFinding.status == "open")
    if findings == "open":
        stmt = stmt.where(open_finding)
    elif findings == "blocking":
        stmt = stmt.where(exists().where(FormFinding.nomination_id == Nomination.id, FormFinding.status == "open",
                                         FormFinding.blocking.is_(True)))
    elif findings == "none":
        stmt = stmt.where(~open_finding)
    return list(db.session.scalars(stmt))


def open_finding_counts(round_id: int) -> dict[int, tuple[int, int]]:
    """nomination id → (open blocking, open warnings), in one grouped query."""
    rows = db.session.execute(
        select(FormFinding.nomination_id,
               func.sum(case((FormFinding.blocking.is_(True), 1), else_=0)),
               func.sum(case((FormFinding.blocking.is_(True), 0), else_=1)))
        .where(FormFinding.round_id == round_id, FormFinding.status == "open",
               FormFinding.nomination_id.is_not(None))
        .group_by(FormFinding.nomination_id))
    return {nid: (int(b or 0), int(w or 0)) for nid, b, w in rows}


@dataclass
class QuotaRow:
    nominator: Nominator
    count: int
    quota: int

    @property
    def over(self) -> bool:
        return self.count > self.quota


def quota_usage(rnd: Round, category: str) -> list[QuotaRow]:
    """Every nominator with its active nominations in the category (counted in SQL) against its quota."""
    counted = func.count(Nomination.id)
    rows = db.session.execute(
        select(Nominator, counted)
        .outerjoin(Nomination, and_(Nomination.nominator_id == Nominator.id, Nomination.round_id == rnd.id,
                                    Nomination.category == category, Nomination.status == "active"))
        .group_by(Nominator.id).order_by(Nominator.position, Nominator.id))
    return [QuotaRow(n, int(count), quota_for(rnd, n, category)) for n, count in rows]


def nominators() -> list[Nominator]:
    return list(db.session.scalars(select(Nominator).order_by(Nominator.position, Nominator.id)))


# --- writes -------------------------------------------------------------------------------------------


def _editable_round(round_id: int) -> Round:
    # FOR SHARE, like a score save: enough to hold the phase still until the write commits, and neither
    # waits for the other. 形式审查 runs after the commit and never locks the round row.
    rnd = rounds.get(round_id, lock=True, shared=True)
    if rnd.phase not in EDITABLE_PHASES:
        raise Conflict(f"评选批次处于「{PHASE_LABELS[rnd.phase]}」阶段，推荐材料已不能修改。")
    return rnd


def admin_editable(nomination_id: int) -> Nomination:
    """A nomination the admin may change from the intake pages: in the current round and not a unit's
    draft (its own until submitted; 404 otherwise, as the pages answer), its round in an editable
    phase (409). Writers re-check the phase under the nomination's lock (ensure_editable)."""
    nom = db.session.get(Nomination, nomination_id)
    rnd = rounds.current_round()
    if nom is None or rnd is None or nom.round_id != rnd.id or nom.status == "draft":
        raise UserError("找不到该推荐对象。", status=404)
    if rnd.phase not in EDITABLE_PHASES:
        raise Conflict(f"评选批次处于「{PHASE_LABELS[rnd.phase]}」阶段，推荐材料已不能修改。")
    return nom


def ensure_editable(round_id: int) -> Round:
    """For other writers of nomination data (attachments): call inside their write transaction."""
    return _editable_round(round_id)


def _nominator(nominator_id) -> Nominator:
    ident = nominator_id if isinstance(nominator_id, int) else parse_id(nominator_id)
    nominator = db.session.get(Nominator, ident) if ident else None
    if nominator is None:
        raise UserError("请选择推荐单位。", {"nominator_id": "请选择推荐单位"})
    return nominator


def _refuse(cleaned: Cleaned) -> None:
    if cleaned.errors:
        raise UserError("请修正标出的字段后再保存。", dict(cleaned.errors))


_pending: contextvars.ContextVar[dict | None] = contextvars.ContextVar("intake_pending_rechecks", default=None)


def recheck(round_id: int, *, actor=None) -> None:
    """Ask for 形式审查 of the round once the operation under way has committed (see operation())."""
    pending = _pending.get()
    if pending is None:
        form_check.run(round_id, actor=actor)
        return
    pending.setdefault(round_id, actor)


@contextmanager
def operation(*, actor=None):
    """One intake write: its write transaction, then 形式审查 of every round it asked to re-check, queued
    after the commit (form_check.queue: a job in the consumer, which reads the round outside any write
    transaction and writes the findings in a short one of its own), so no score save waits while
    titles are compared.

    Nested operations (an import creating many forms) join the outermost one, which checks once, logged
    as run by `actor`. Nothing is checked if the operation fails: it rolled back. Inside a transaction
    someone else opened, the check runs in that transaction instead, before it commits: the findings
    can only follow a commit they see."""
    if _pending.get() is not None:
        with write_transaction():
            yield
        return
    pending: dict[int, object] = {}
    token = _pending.set(pending)
    try:
        with write_transaction():
            yield
    finally:
        _pending.reset(token)
    for round_id in sorted(pending):
        try:
            form_check.queue(round_id, actor=actor if actor is not None else pending[round_id])
        except Exception:
            # The change itself has committed: report it saved. The findings catch up at the next check
            # (any edit, the admin's 运行形式审查) and the move to 专家评审 recomputes them anyway.
            log.exception("形式审查 after an intake write failed (round %s)", round_id)


def batch(*, actor=None):
    """Many writes as one operation (an import), re-checked once after it commits (logged as run by
    `actor`)."""
    return operation(actor=actor)


def _add(rnd: Round, nominator: Nominator, category: str, cleaned: Cleaned, *, actor, source_key, received_at,
         summary_original) -> Nomination:
    if source_key and by_source_key(rnd.id, source_key) is not None:
        raise Conflict("该推荐对象已导入过（同一推荐单位、类别和名称）。")
    values = {k: v for k, v in cleaned.values.items() if k != "received_date"}
    if received_at is None:
        received_at = received_at_from(cleaned.values.get("received_date"))
    nom = Nomination(round_id=rnd.id, nominator_id=nominator.id, category=category, status="active",
                     received_at=received_at, source_key=source_key, summary_original=summary_original,
                     **values)
    db.session.add(nom)
    db.session.flush()
    after = snapshot(nom)
    if summary_original:
        after["summary_original_length"] = len(summary_original)
    audit.record("nomination.create", "nomination", nom.id, after=after, round_id=rnd.id, actor=actor)
    rounds.bump_ranking(rnd.id, category)
    return nom


def create(round_id: int, nominator_id: int, category: str, raw: Mapping, *, actor=None,
           source_key: str | None = None, received_at: datetime | None = None,
           summary_original: str | None = None) -> Nomination:
    """Record one nomination and re-check the round, in one transaction (an import calls this for
    each form inside its own transaction, and re-checks once at the end)."""
    cleaned = validate_fields(category, raw)
    _refuse(cleaned)
    with operation():
        rnd = _editable_round(round_id)
        nom = _add(rnd, _nominator(nominator_id), category, cleaned, actor=actor, source_key=source_key,
                   received_at=received_at, summary_original=summary_original)
        recheck(rnd.id)
    return nom


def update(nomination_id: int, raw: Mapping, *, version: str | None, actor=None,
           summary_original: str | None = None) -> Nomination:
    """Change the fields of a nomination (and, when `nominator_id` is in raw, its nominator), and re-check
    the round, in one transaction.

    `version` is the version_of() the editor started from and is required: without it a save could
    silently overwrite someone else's change, so it is refused (422); a different current version means
    someone else saved in between (409). `summary_original` is for a re-import that again carries an
    over-long 简介.
    """
    if not version:
        raise UserError("缺少版本号：请刷新页面后重试。", {"version": "缺少版本号：请刷新页面后重试。"})
    current = get(nomination_id)
    cleaned = validate_fields(current.category, raw)
    _refuse(cleaned)
    with operation():
        nom = locked(Nomination, nomination_id)
        if nom is None:
            raise UserError("找不到该推荐对象。", status=404)
        rnd = _editable_round(nom.round_id)
        if version != version_of(nom):
            raise Conflict("该推荐对象已被他人修改，请刷新页面后再编辑。")
        before = snapshot(nom)
        old_summary = nom.summary
        for name, value in cleaned.values.items():
            if name == "received_date":
                if value is not None and local_date(nom.received_at) != value:
                    nom.received_at = received_at_from(value)
                continue
            setattr(nom, name, value)
        if "nominator_id" in raw and raw.get("nominator_id") not in (None, ""):
            nom.nominator_id = _nominator(raw.get("nominator_id")).id
        if summary_original is not None:
            nom.summary_original = summary_original or None
        elif nom.summary != old_summary:
            # The admin rewrote the over-long 简介: the received original no longer stands for it.
            nom.summary_original = None
        after = snapshot(nom)
        changed_before = {k: v for k, v in before.items() if after.get(k) != v}
        changed_after = {k: after[k] for k in changed_before}
        if changed_after:
            audit.record("nomination.update", "nomination", nom.id, before=changed_before, after=changed_after,
                         round_id=rnd.id, actor=actor)
            rounds.bump_ranking(rnd.id, nom.category, [nom.id])
            if "category" in changed_before:  # it left the other category's ranking
                rounds.bump_ranking(rnd.id, changed_before["category"], [nom.id])
        recheck(rnd.id)
    return nom


def _set_status(nomination_id: int, status: str, reason: str, actor, action: str) -> Nomination:
    with operation():
        nom = locked(Nomination, nomination_id)
        if nom is None:
            raise UserError("找不到该推荐对象。", status=404)
        rnd = _editable_round(nom.round_id)
        if nom.status == status:
            raise Conflict("该推荐对象已撤回。" if status == "withdrawn" else "该推荐对象未被撤回。")
        before_status = nom.status
        nom.status = status
        audit.record(action, "nomination", nom.id, before={"status": before_status},
                     after={"status": status}, reason=reason, round_id=rnd.id, actor=actor)
        rounds.bump_ranking(rnd.id, nom.category, [nom.id])
        recheck(rnd.id)
    return nom


def _reason(fields_class, reason) -> str:
    form = forms.check(fields_class, {"reason": reason})
    errors = forms.first_errors(form)
    if errors:
        raise UserError(errors["reason"] + "。", errors)
    return form.reason.data


def withdraw(nomination_id: int, reason: str, *, actor=None) -> Nomination:
    """Withdraw (撤回) a nomination: it leaves lists, quotas and rankings but nothing is deleted."""
    reason = _reason(forms.WithdrawFields, reason)
    return _set_status(nomination_id, "withdrawn", reason, actor, "nomination.withdraw")


def reinstate(nomination_id: int, reason: str = "", *, actor=None) -> Nomination:
    reason = _reason(forms.ReinstateFields, reason)
    return _set_status(nomination_id, "active", reason, actor, "nomination.reinstate")
