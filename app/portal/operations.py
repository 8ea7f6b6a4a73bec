"""The submission workflow: a unit drafts (草稿) and submits (已提交); the admin returns it for changes
(退回修改) or accepts it (已受理 = active, from then on an ordinary nomination). Every step is one
operation — nominations.operation(): one write transaction, its audit event and its mail, then 形式审查
of the round once it has committed.

Rules read from their one home: field limits from app.intake.forms (validate_fields), the per-nomination
形式审查 rules from app.intake.form_check, the quota from app.intake.quotas, the deadline from
app.portal.deadlines.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from sqlalchemy import select

from app import mail
from app.audit import operations as audit
from app.core import storage
from app.core.database import locked
from app.core.errors import Conflict, UserError
from app.core.time import utcnow
from app.extensions import db
from app.intake import form_check, nominations, uploads
from app.intake.quotas import quota_for
from app.models import (
    CATEGORY_LABELS,
    PHASE_LABELS,
    Attachment,
    DeadlineExtension,
    Nomination,
    Nominator,
    Round,
)
from app.models.nomination import RETURN_NOTE_MAX
from app.portal import access, deadlines, queries, stamped
from app.portal.deadlines import PORTAL_PHASES
from app.rounds import phases as rounds

SUBJECT = "【科普日评选】"
# Rules of 形式审查 whose finding belongs beside one field of the portal form.
RULE_FIELDS = {"summary_too_long": "summary", "photo_count": "photos", "no_recommendation": "recommendation",
               "no_recommendation_date": "recommendation_date", "no_video": "video", "no_stamped": "stamped"}
# The admin accepts and returns while materials are collected (or before, while the round is set up).
ADMIN_PHASES = ("setup", "collecting")


def _round_for(nom: Nomination) -> Round:
    # FOR SHARE like every intake write: the phase cannot move under this write.
    return rounds.get(nom.round_id, lock=True, shared=True)


def _locked_editable(user, nomination_id: int) -> tuple[Nomination, Round]:
    """Inside the write transaction: the unit's own nomination, still 草稿/退回修改 in an open round."""
    nom = access.own_nomination(user, nomination_id, lock=True)
    rnd = _round_for(nom)
    access.check_editable(rnd, nom)
    return nom, rnd


def _cleaned(category: str, raw: Mapping) -> nominations.Cleaned:
    cleaned = nominations.validate_fields(category, raw)
    if cleaned.errors:
        raise UserError("请修正标出的字段后再保存。", dict(cleaned.errors))
    cleaned.values.pop("received_date", None)  # the system stamps when a unit's submission arrives
    return cleaned


def _apply(nom: Nomination, cleaned: nominations.Cleaned) -> tuple[dict, dict]:
    """Write the form's values; returns the changed fields' old and new values (for the audit event)."""
    before = nominations.snapshot(nom)
    for name, value in cleaned.values.items():
        setattr(nom, name, value)
    after = nominations.snapshot(nom)
    changed = [k for k, v in before.items() if after.get(k) != v]
    return {k: before[k] for k in changed}, {k: after[k] for k in changed}


def _check_version(nom: Nomination, version: str | None) -> None:
    if not version:
        raise UserError("缺少版本号：请刷新页面后重试。", {"version": "缺少版本号：请刷新页面后重试。"})
    if version != nominations.version_of(nom):
        raise Conflict("该推荐材料已在别处被修改（可能是本单位的其他人），请刷新页面后再编辑。")


# --- the unit's side ------------------------------------------------------------------------------------


def create_draft(user, category: str, raw: Mapping) -> Nomination:
    """A new 草稿 of the unit (only the name is required; the rest may follow in later saves)."""
    unit = access.unit_of(user)
    if category not in CATEGORY_LABELS:
        raise UserError("类别只能是优秀组织单位或优秀活动。", status=404)
    cleaned = _cleaned(category, raw)
    with nominations.operation():
        rnd = rounds.get(rounds.require_current_round().id, lock=True, shared=True)
        draft = Nomination(round_id=rnd.id, nominator_id=unit.id, category=category, status="draft",
                           origin="portal", received_at=utcnow(), **cleaned.values)
        access.check_open(rnd, draft)
        db.session.add(draft)
        db.session.flush()
        audit.record("nomination.portal_save", "nomination", draft.id, after=nominations.snapshot(draft),
                     round_id=rnd.id, actor=user)
    return draft


def save_draft(user, nomination_id: int, raw: Mapping, *, version: str | None) -> Nomination:
    """Save the form as it is (partial data is fine); nothing is checked beyond the field limits."""
    current = access.editable_nomination(user, nomination_id)
    cleaned = _cleaned(current.category, raw)
    with nominations.operation():
        nom, rnd = _locked_editable(user, nomination_id)
        _check_version(nom, version)
        before, after = _apply(nom, cleaned)
        if before:
            audit.record("nomination.portal_save", "nomination", nom.id, before=before, after=after,
                         round_id=rnd.id, actor=user)
    return nom


def submission_problems(nom: Nomination, rnd: Round, unit: Nominator, cleaned: nominations.Cleaned) -> dict:
    """Everything 形式审查 would refuse in this nomination, by form field ("" for the whole form)."""
    problems: dict[str, str] = {}
    for name in cleaned.missing:
        problems[name] = f"请填写{nominations.field_label(name, nom.category)}"
    for rule, message in form_check.check_nomination(nom, rnd).items():
        if not form_check.RULES[rule].blocking:
            continue
        if rule == "counts_zero":
            for name in ("event_count", "people_served"):
                if not getattr(nom, name) and name not in problems:
                    problems[name] = f"{nominations.field_label(name, nom.category)}不能为 0"
            continue
        problems.setdefault(RULE_FIELDS.get(rule, ""), message)
    quota = quota_for(rnd, unit, nom.category)
    used = queries.used_count(rnd, unit.id, nom.category, exclude_id=nom.id)
    if used >= quota:
        problems["quota"] = (f"名额已满：{CATEGORY_LABELS[nom.category]} 名额 {quota} 个，已提交 {used} 个。"
                             f"请先撤回已提交的其他推荐材料，或联系省科协调整名额。")
    return problems


def submission_warnings(nom: Nomination, rnd: Round) -> list[str]:
    """What 形式审查 will only flag (a missing video or 盖章件, a late arrival): said, never refused."""
    return [message for rule, message in form_check.check_nomination(nom, rnd).items()
            if not form_check.RULES[rule].blocking]


def submit(user, nomination_id: int, raw: Mapping, *, version: str | None) -> tuple[Nomination, list[str]]:
    """Save the form and hand it in (已提交), or refuse and change nothing (422 with the problems by
    field; 409 after the deadline or when the round has moved on). Returns the nomination and the
    warnings 形式审查 will show the admin."""
    current = access.editable_nomination(user, nomination_id)
    cleaned = _cleaned(current.category, raw)
    with nominations.operation():
        nom, rnd = _locked_editable(user, nomination_id)
        _check_version(nom, version)
        # Locking the unit serialises its submissions, so two at once cannot both take the last place.
        unit = locked(Nominator, nom.nominator_id)
        before, after = _apply(nom, cleaned)
        problems = submission_problems(nom, rnd, unit, cleaned)
        if problems:
            # Raising rolls the field changes back too: a refused 提交 changes nothing.
            raise UserError("还不能提交：" + "；".join(problems.values()) + "。", problems)
        now = utcnow()
        before_status = nom.status
        if nom.submitted_at is None:
            # The first submission is when the materials arrived; a resubmission after 退回修改 keeps it,
            # so the admin's return never makes an item late.
            nom.received_at = now
        nom.submitted_at = now
        nom.status = "submitted"
        audit.record("nomination.submit", "nomination", nom.id,
                     before={"status": before_status, **before}, after={"status": "submitted", **after},
                     round_id=rnd.id, actor=user)
        again = "（退回后重新提交）" if before_status == "returned" else ""
        mail.notify_admins(
            f"{SUBJECT}新提交的推荐材料：{unit.name}《{nom.title}》{again}",
            f"{unit.name}在线提交了{CATEGORY_LABELS[nom.category]}推荐材料{again}：\n\n"
            f"名称：{nom.title}\n编号：{nom.id}\n\n请登录评审系统，在“推荐对象”中查看并受理或退回修改。",
            round_id=rnd.id)
        warnings = submission_warnings(nom, rnd)
    return nom, warnings


def withdraw(user, nomination_id: int) -> Nomination:
    """The unit takes back a 已提交 item before the admin accepted it; it frees the quota place."""
    with nominations.operation():
        nom = access.own_nomination(user, nomination_id, lock=True)
        rnd = _round_for(nom)
        if nom.status != "submitted":
            raise Conflict("只有已提交、尚未受理的推荐材料可以撤回。")
        if rnd.phase not in PORTAL_PHASES:
            raise Conflict(f"评选批次处于「{PHASE_LABELS[rnd.phase]}」阶段，不能撤回。")
        nom.status = "withdrawn"
        audit.record("nomination.portal_withdraw", "nomination", nom.id, before={"status": "submitted"},
                     after={"status": "withdrawn"}, round_id=rnd.id, actor=user)
    return nom


# --- photos and the 盖章件 ---------------------------------------------------------------------------------


def add_photos(user, nomination_id: int, files: list[tuple[str, bytes]]) -> list[Attachment]:
    """Check and store the photos first (no lock held while images are decoded), then attach them in
    one operation that re-checks the unit may still change the nomination."""
    access.editable_nomination(user, nomination_id)
    stored = uploads.prepare_photos(files)
    try:
        with nominations.operation():
            _locked_editable(user, nomination_id)
            return uploads.attach(nomination_id, stored, actor=user)
    except BaseException:
        uploads.discard(stored)
        raise


def delete_attachment(user, nomination_id: int, attachment_id: int) -> None:
    with nominations.operation():
        _locked_editable(user, nomination_id)
        a = db.session.get(Attachment, attachment_id)
        if a is None or a.nomination_id != nomination_id or a.kind == "stamped":
            raise UserError("找不到该附件。", status=404)
        uploads.delete_attachment(attachment_id, actor=user, nomination_id=nomination_id)


def move_photo(user, nomination_id: int, attachment_id: int, step: int) -> None:
    with nominations.operation():
        _locked_editable(user, nomination_id)
        uploads.move_photo(nomination_id, attachment_id, step, actor=user)


STAMPED_STATUSES = ("draft", "returned", "submitted", "active")


def upload_stamped(user, nomination_id: int, filename: str, data: bytes) -> Attachment:
    """The scan of the printed, stamped 推荐表: one per nomination, a new one replaces the old. Allowed
    while the round collects materials, also after 提交 (the stamp may come after the online form)."""
    access.own_nomination(user, nomination_id)  # 404 before anything is stored
    checked = stamped.check(data, filename)  # UserError (nothing stored) for anything but PDF/JPEG/PNG
    att = stamped.store(checked, filename)
    old_files: tuple = ()
    try:
        with nominations.operation():
            nom = access.own_nomination(user, nomination_id, lock=True)
            rnd = _round_for(nom)
            if rnd.phase not in PORTAL_PHASES:
                raise Conflict(f"评选批次处于「{PHASE_LABELS[rnd.phase]}」阶段，不能再上传盖章件。")
            if nom.status not in STAMPED_STATUSES:
                raise Conflict("该推荐材料已撤回，不能上传盖章件。")
            old = db.session.scalar(select(Attachment).where(Attachment.nomination_id == nom.id,
                                                             Attachment.kind == "stamped"))
            before = None
            if old is not None:
                old_files = (old.stored_name, old.thumb_name)
                before = {"stored_name": old.stored_name, "original_name": old.original_name}
                db.session.delete(old)
                db.session.flush()
            att.nomination_id = nom.id
            att.position = 1000  # after the photos and the video
            db.session.add(att)
            db.session.flush()
            audit.record("attachment.stamped", "attachment", att.id, before=before,
                         after={"nomination_id": nom.id, "original_name": att.original_name, "mime": att.mime,
                                "size_bytes": att.size_bytes, "stored_name": att.stored_name},
                         round_id=rnd.id, actor=user)
            nominations.recheck(rnd.id)
    except BaseException:
        uploads.discard([att])
        raise
    # Only once the new scan has committed: a rolled-back replacement must still find the old files.
    for name in old_files:
        storage.remove(name)
    return att


# --- the admin's side -------------------------------------------------------------------------------------


def _locked_submitted(nomination_id: int) -> tuple[Nomination, Round]:
    nom = locked(Nomination, nomination_id)
    if nom is None or nom.status == "draft":
        raise UserError("找不到该推荐对象。", status=404)
    rnd = _round_for(nom)
    if rnd.phase not in ADMIN_PHASES:
        raise Conflict(f"评选批次处于「{PHASE_LABELS[rnd.phase]}」阶段，不能再受理或退回推荐材料。")
    if nom.status != "submitted":
        raise Conflict(f"该推荐对象的状态是「{nom.status_label}」，只有已提交的推荐材料可以受理或退回。")
    return nom, rnd


def _mail_unit(nom: Nomination, subject: str, body: str) -> None:
    for address in queries.unit_addresses(nom.nominator_id):
        mail.send(address, subject, body, round_id=nom.round_id)


def accept(nomination_id: int, *, actor=None) -> Nomination:
    """受理: the nomination becomes active — checked by 形式审查, assigned, scored and ranked."""
    with nominations.operation():
        nom, rnd = _locked_submitted(nomination_id)
        nom.status = "active"
        nom.accepted_at = utcnow()
        audit.record("nomination.accept", "nomination", nom.id, before={"status": "submitted"},
                     after={"status": "active"}, round_id=rnd.id, actor=actor)
        rounds.bump_ranking(rnd.id, nom.category, [nom.id])
        _mail_unit(nom, f"{SUBJECT}推荐材料已受理：{nom.title}",
                   f"您单位在线提交的{CATEGORY_LABELS[nom.category]}推荐材料《{nom.title}》已由省科协受理，"
                   f"将进入形式审查和专家评审。\n\n此邮件由系统自动发送，请勿回复。")
        nominations.recheck(rnd.id)
    return nom


def check_note(note: str | None) -> str:
    note = (note or "").strip()
    if not note:
        raise UserError("退回修改必须填写说明。", {"note": "请填写退回说明（推荐单位会看到）"})
    if len(note) > RETURN_NOTE_MAX:
        raise UserError(f"退回说明不能超过 {RETURN_NOTE_MAX} 字（当前 {len(note)} 字）。",
                        {"note": f"不能超过 {RETURN_NOTE_MAX} 字（当前 {len(note)} 字）"})
    return note


def return_for_changes(nomination_id: int, note: str, *, actor=None) -> Nomination:
    """退回修改: back to the unit with the admin's note; its received_at stays (not late because of this)."""
    note = check_note(note)
    with nominations.operation():
        nom, rnd = _locked_submitted(nomination_id)
        nom.status = "returned"
        nom.return_note = note
        audit.record("nomination.return", "nomination", nom.id, before={"status": "submitted"},
                     after={"status": "returned", "return_note": note}, reason=note, round_id=rnd.id,
                     actor=actor)
        _mail_unit(nom, f"{SUBJECT}推荐材料退回修改：{nom.title}",
                   f"您单位在线提交的{CATEGORY_LABELS[nom.category]}推荐材料《{nom.title}》需要修改后重新提交。\n\n"
                   f"省科协的说明：\n{note}\n\n请登录评审系统，在“我的推荐”中修改后再次提交。\n\n"
                   f"此邮件由系统自动发送，请勿回复。")
    return nom


def extend_deadline(nominator_id: int, until: date, reason: str, *, actor=None) -> DeadlineExtension:
    """Give one unit a later deadline in the current round (or change / shorten the one it has)."""
    reason = (reason or "").strip()
    errors = {}
    if not reason:
        errors["reason"] = "请填写延期理由"
    if until is None:
        errors["until"] = "请填写延期截止日期"
    if errors:
        raise UserError("请修正标出的字段。", errors)
    with nominations.operation():
        rnd = rounds.get(rounds.require_current_round().id, lock=True, shared=True)
        if rnd.phase not in ADMIN_PHASES:
            raise Conflict(f"评选批次处于「{PHASE_LABELS[rnd.phase]}」阶段，不能再延期报送。")
        unit = db.session.get(Nominator, nominator_id)
        if unit is None:
            raise UserError("请选择推荐单位。", {"nominator_id": "请选择推荐单位"})
        if rnd.deadline is not None and until <= rnd.deadline:
            raise UserError("延期截止日期应晚于批次的报送截止日期。",
                            {"until": f"应晚于 {rnd.deadline.isoformat()}"})
        ext = deadlines.extension_of(rnd, unit, lock=True)
        before = {"until": ext.until.isoformat(), "reason": ext.reason} if ext else None
        if ext is None:
            ext = DeadlineExtension(round_id=rnd.id, nominator_id=unit.id)
            db.session.add(ext)
        ext.until, ext.reason = until, reason
        ext.granted_by_id = getattr(actor, "id", None)
        db.session.flush()
        audit.record("deadline.extend", "nominator", unit.id, before=before,
                     after={"until": until.isoformat(), "reason": reason}, reason=reason, round_id=rnd.id,
                     actor=actor)
    return ext


def revoke_extension(nominator_id: int, *, actor=None) -> None:
    with nominations.operation():
        rnd = rounds.get(rounds.require_current_round().id, lock=True, shared=True)
        if rnd.phase not in ADMIN_PHASES:
            raise Conflict(f"评选批次处于「{PHASE_LABELS[rnd.phase]}」阶段，不能再修改延期。")
        ext = deadlines.extension_of(rnd, nominator_id)
        if ext is None:
            raise UserError("该推荐单位没有延期。", status=404)
        audit.record("deadline.revoke", "nominator", nominator_id,
                     before={"until": ext.until.isoformat(), "reason": ext.reason}, round_id=rnd.id, actor=actor)
        db.session.delete(ext)
