"""The writes of the 公示: its dates, the public's objections (异议) and how the office handles each
one, and the 表扬通报's settings. Every write is one write_transaction with an audit event; the round
row is locked (shared) to check the phase, as the deliberation writes do.

An objection goes received (待受理) → accepted (已受理, 核实中) → closed (处理完毕, 维持 or 撤销推荐),
or received → rejected (不予受理, with a reason). 撤销推荐 declines the nomination through the
deliberation area's own operation (its one home for decisions)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date

from flask import current_app
from sqlalchemy import select

from app.audit import operations as audit
from app.core import storage
from app.core.database import locked, write_transaction
from app.core.errors import Conflict, UserError
from app.core.time import beijing, fmt_minute, utcnow
from app.deliberation import operations as decisions
from app.extensions import db
from app.models import Decision, Nomination, NoticeSettings, Objection, Round
from app.models.publicity import (
    NOTE_MAX,
    NOTICE_BODY_MAX,
    NOTICE_NUMBER_MAX,
    NOTICE_RECIPIENTS_MAX,
    OBJECTION_RESULT_LABELS,
    OBJECTION_RESULTS,
)
from app.publicity import calendar

ATTACHMENT_MAX_BYTES = 10 * 1024 * 1024
PDF_MIME = "application/pdf"
# Phases in which the 公示 dates may still be set: not once the round is final (read-only).
SETTINGS_PHASES = ("setup", "collecting", "reviewing", "deliberating", "publicizing")
NOTICE_PLACEHOLDERS = ("year", "unit_count", "activity_count")


def today() -> date:
    """Today in Beijing: the 公示 period is a matter of calendar days there."""
    return beijing().date()


def _require_phase(rnd: Round | None, *phases: str) -> Round:
    if rnd is None:
        raise UserError("找不到评选批次。", status=404)
    if rnd.phase not in phases:
        raise Conflict(f"评选批次当前处于「{rnd.phase_label}」阶段，不能进行此操作。")
    return rnd


# ----------------------------------------------------------------------------- 公示 dates


def set_period(round_id: int, start: date | None, days: int, manual_end: date | None, *, expected_version=None,
               actor=None) -> Round:
    """The 公示 start day and length in 工作日; a manual end only for a year the calendar lacks."""
    if not calendar.DAYS_MIN <= days <= calendar.DAYS_MAX:
        raise UserError(f"公示天数应在 {calendar.DAYS_MIN}–{calendar.DAYS_MAX} 个工作日之间。", {"days": "超出范围"})
    if start is None and manual_end is not None:
        raise UserError("请先填写公示起始日期。", {"start": "必填"})
    if start is not None and manual_end is not None and manual_end < start:
        raise UserError("公示截止日期不能早于起始日期。", {"manual_end": "早于起始日期"})
    if start is not None:
        try:
            calendar.end_date(start, days)
            if manual_end is not None:
                raise UserError("节假日日历已包含该期间，截止日期按工作日自动推算，不需要手工填写。",
                                {"manual_end": "请留空"})
        except calendar.CalendarUnavailable as e:
            if manual_end is None:
                raise UserError(e.message, {"manual_end": "请手工填写"}) from None
    with write_transaction():
        rnd = _require_phase(locked(Round, round_id), *SETTINGS_PHASES)
        if expected_version is not None and int(expected_version) != rnd.version:
            raise Conflict("批次设置已被他人修改，请刷新后重试。")
        before = _period_snapshot(rnd)
        rnd.publicity_start, rnd.publicity_days, rnd.publicity_end = start, days, manual_end
        after = _period_snapshot(rnd)
        if before == after:
            return rnd
        audit.record("round.publicity", "round", rnd.id, before=before, after=after, round_id=rnd.id, actor=actor)
    return rnd


def _period_snapshot(rnd: Round) -> dict:
    return {"publicity_start": rnd.publicity_start.isoformat() if rnd.publicity_start else None,
            "publicity_days": rnd.publicity_days,
            "publicity_end": rnd.publicity_end.isoformat() if rnd.publicity_end else None}


# ----------------------------------------------------------------------------- filing an objection


@dataclass
class Upload:
    data: bytes
    filename: str


def address_hash(address: str | None) -> str:
    key = current_app.config["SECRET_KEY"]
    return hashlib.sha256(f"{key}|objection|{address or ''}".encode()).hexdigest()


def check_attachment(upload: Upload) -> tuple[bytes, str, str]:
    """A PDF, JPEG or PNG judged by its content (the photo rules for images: re-encoded, no EXIF);
    returns (bytes to store, mime, extension)."""
    data = upload.data
    if not data:
        raise UserError("附件是空文件。", {"attachment": "空文件"})
    if len(data) > ATTACHMENT_MAX_BYTES:
        raise UserError("附件不能超过 10 MB。", {"attachment": "文件过大"}, status=413)
    if data.startswith(b"%PDF-"):
        if b"%%EOF" not in data[-2048:]:
            raise UserError("附件 PDF 文件不完整，无法读取。", {"attachment": "文件不完整"})
        return data, PDF_MIME, "pdf"
    from app.intake.uploads import check_photo  # the one check every uploaded image goes through

    try:
        photo = check_photo(data, "附件")
    except UserError as e:
        raise UserError(f"{e.message}（附件只接受 PDF、JPG 或 PNG 文件）", {"attachment": "格式不符"}) from None
    return photo.data, photo.mime, photo.ext


def listed_nomination(rnd: Round, nomination_id: int) -> Nomination | None:
    """The nomination if it is on this round's 公示 list (active and approved)."""
    return db.session.scalar(
        select(Nomination).join(Decision, Decision.nomination_id == Nomination.id)
        .where(Nomination.id == nomination_id, Nomination.round_id == rnd.id, Nomination.status == "active",
               Decision.outcome == "approve"))


def file_objection(round_id: int, nomination_id: int, *, name: str, unit: str, phone: str, email: str, facts: str,
                   upload: Upload | None = None, address: str | None = None) -> Objection:
    """A 实名 objection from the public page: only while the round is in 公示 and today is inside
    its period, and only about a nomination on the list."""
    stored = None
    if upload is not None:
        clean, mime, ext = check_attachment(upload)
        stored = storage.save_bytes(clean, ext)
    try:
        with write_transaction():
            rnd = locked(Round, round_id, shared=True)
            if rnd is None:
                raise UserError("找不到评选批次。", status=404)
            if rnd.phase != "publicizing":
                raise Conflict("公示已结束，不再受理异议。" if rnd.phase == "final" else "该批次未在公示，不受理异议。")
            period = calendar.of_round(rnd)
            state = period.state(today())
            if state == "unset":
                raise Conflict("公示期尚未确定，暂不受理异议。")
            if state == "before":
                raise Conflict(f"公示期自 {period.start:%Y年%m月%d日} 开始，请在公示期内提出异议。")
            if state == "closed":
                raise Conflict(f"公示期已于 {period.end:%Y年%m月%d日} 结束，逾期提出的异议不予受理。")
            nom = listed_nomination(rnd, nomination_id)
            if nom is None:
                raise UserError("请从公示名单中选择异议涉及的推荐对象。", {"nomination_id": "不在公示名单中"})
            obj = Objection(round_id=rnd.id, nomination_id=nom.id, name=name, unit=unit or "", phone=phone,
                            email=email or "", facts=facts, address_hash=address_hash(address), status="received",
                            attachment_name=stored, attachment_mime=mime if stored else None,
                            attachment_size=len(clean) if stored else None)
            db.session.add(obj)
            db.session.flush()
            # No personal data in the audit log: who filed it is on the objection, for admin and chair.
            audit.record("objection.file", "objection", obj.id, after={"nomination_id": nom.id, "status": "received",
                                                                       "attachment": bool(stored)},
                         round_id=rnd.id)
    except BaseException:
        storage.remove(stored)
        raise
    return obj


# ----------------------------------------------------------------------------- handling


def _locked_objection(objection_id: int, expected_version) -> tuple[Objection, Round]:
    obj = db.session.scalar(select(Objection).where(Objection.id == objection_id).with_for_update()
                            .execution_options(populate_existing=True))
    if obj is None:
        raise UserError("找不到该异议。", status=404)
    rnd = _require_phase(locked(Round, obj.round_id, shared=True), "publicizing")
    if expected_version is not None and int(expected_version) != obj.version:
        raise Conflict("该异议已被他人处理，请刷新后重试。")
    return obj, rnd


def _snapshot(obj: Objection) -> dict:
    return {"status": obj.status, "result": obj.result}


def _clean(text: str | None, field: str, label: str, limit: int, *, required: bool = True) -> str:
    text = (text or "").strip()
    if required and not text:
        raise UserError(f"请填写{label}。", {field: "必填"})
    if len(text) > limit:
        raise UserError(f"{label}不能超过 {limit} 字。", {field: f"不超过 {limit} 字"})
    return text


def accept(objection_id: int, *, expected_version=None, actor=None) -> Objection:
    """受理: the objection is about a listed item, 实名 and in time; it is now being verified."""
    with write_transaction():
        obj, rnd = _locked_objection(objection_id, expected_version)
        if obj.status != "received":
            raise Conflict(f"该异议当前为「{obj.status_label}」，不能再受理。")
        before = _snapshot(obj)
        obj.status, obj.handled_by_id, obj.handled_at = "accepted", getattr(actor, "id", None), utcnow()
        db.session.flush()
        audit.record("objection.accept", "objection", obj.id, before=before, after=_snapshot(obj), round_id=rnd.id,
                     actor=actor)
    return obj


def reject(objection_id: int, reason: str, *, expected_version=None, actor=None) -> Objection:
    """不予受理, with the reason (anonymous, late, not about a listed item …)."""
    reason = _clean(reason, "reason", "不予受理的理由", NOTE_MAX)
    with write_transaction():
        obj, rnd = _locked_objection(objection_id, expected_version)
        if obj.status != "received":
            raise Conflict(f"该异议当前为「{obj.status_label}」，不能再作不予受理。")
        before = _snapshot(obj)
        obj.status, obj.reject_reason = "rejected", reason
        obj.handled_by_id, obj.handled_at = getattr(actor, "id", None), utcnow()
        db.session.flush()
        audit.record("objection.reject", "objection", obj.id, before=before, after=_snapshot(obj), reason=reason,
                     round_id=rnd.id, actor=actor)
    return obj


def add_note(objection_id: int, note: str, *, expected_version=None, actor=None) -> Objection:
    """A 核实 note (who was asked, what was found), appended with its time and author."""
    note = _clean(note, "note", "核实情况", NOTE_MAX)
    with write_transaction():
        obj, rnd = _locked_objection(objection_id, expected_version)
        if obj.status != "accepted":
            raise Conflict("只有已受理、尚未处理完毕的异议可以记录核实情况。")
        who = getattr(actor, "display_name", "") or ""
        line = f"【{fmt_minute(utcnow())} {who}】{note}"
        if len(obj.verification) + len(line) > 20 * NOTE_MAX:
            raise UserError("核实记录过长，请精简后再记录。", {"note": "记录过长"})
        obj.verification = f"{obj.verification}\n{line}" if obj.verification else line
        obj.handled_by_id, obj.handled_at = getattr(actor, "id", None), utcnow()
        db.session.flush()
        audit.record("objection.note", "objection", obj.id, after={"note": note}, round_id=rnd.id, actor=actor)
    return obj


def conclude(objection_id: int, result: str, note: str, *, expected_version=None, actor=None) -> Objection:
    """处理结果: 维持 (the nomination stays on the list) or 撤销推荐 (it is declined, the objection
    being the decision's reason and its new 审定意见)."""
    if result not in OBJECTION_RESULTS:
        raise UserError("处理结果只能是维持推荐或撤销推荐。", {"result": "无效"})
    note = _clean(note, "note", "处理意见", NOTE_MAX)
    with write_transaction():
        obj, rnd = _locked_objection(objection_id, expected_version)
        if obj.status != "accepted":
            raise Conflict("只有已受理的异议可以作出处理结果。")
        before = _snapshot(obj)
        obj.status, obj.result, obj.result_note = "closed", result, note
        obj.handled_by_id, obj.handled_at = getattr(actor, "id", None), utcnow()
        db.session.flush()
        if result == "revoked":
            decisions.revoke_after_objection(obj.nomination_id, reason=f"公示期间异议（编号 {obj.id}）：{note}",
                                             actor=actor)
        audit.record("objection.conclude", "objection", obj.id, before=before, after=_snapshot(obj),
                     reason=f"{OBJECTION_RESULT_LABELS[result]}：{note}", round_id=rnd.id, actor=actor)
    return obj


def attachment_bytes(obj: Objection) -> bytes | None:
    if not obj.attachment_name:
        return None
    try:
        with open(storage.path_of(obj.attachment_name), "rb") as fh:
            return fh.read()
    except (OSError, ValueError):
        return None


# ----------------------------------------------------------------------------- 通报 settings


def check_body_template(text: str) -> str:
    unknown = sorted({m for m in re.findall(r"\{([^{}]*)\}", text) if m not in NOTICE_PLACEHOLDERS})
    if unknown or text.count("{") != text.count("}"):
        allowed = "、".join("{" + p + "}" for p in NOTICE_PLACEHOLDERS)
        raise UserError(f"正文模板的占位符无效。可用的占位符：{allowed}。", {"body_template": "占位符无效"})
    return text


def save_notice(round_id: int, number: str, recipients: str, body_template: str, *, expected_version=None,
                actor=None) -> NoticeSettings:
    number = _clean(number, "number", "发文字号", NOTICE_NUMBER_MAX)
    recipients = _clean(recipients, "recipients", "主送机关", NOTICE_RECIPIENTS_MAX)
    body_template = check_body_template(_clean(body_template, "body_template", "正文模板", NOTICE_BODY_MAX))
    with write_transaction():
        rnd = locked(Round, round_id, shared=True)
        if rnd is None:
            raise UserError("找不到评选批次。", status=404)
        row = db.session.get(NoticeSettings, round_id, with_for_update=True, populate_existing=True)
        current = row.version if row is not None else 0
        if expected_version is not None and int(expected_version) != current:
            raise Conflict("通报设置已被他人修改，请刷新后重试。")
        before = None if row is None else {"number": row.number, "recipients": row.recipients,
                                           "body_template": row.body_template}
        after = {"number": number, "recipients": recipients, "body_template": body_template}
        if before == after:
            return row
        if row is None:
            row = NoticeSettings(round_id=round_id)
            db.session.add(row)
        row.number, row.recipients, row.body_template = number, recipients, body_template
        db.session.flush()
        audit.record("notice.settings", "round", round_id, before=before, after=after, round_id=round_id,
                     actor=actor)
    return row
