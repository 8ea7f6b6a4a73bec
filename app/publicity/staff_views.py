"""The office's side of the 公示: objections handled by the admin and the chair (受理 / 不予受理 / 核实 /
处理结果), the register XLSX, and the admin's settings of the 公示 period and the 表扬通报 with its
preview. The objector's personal data appears only on these signed-in staff pages."""

from __future__ import annotations

import io

from flask import abort, flash, redirect, send_file, url_for
from flask_login import current_user

from app.core.authz import admin_required, staff_required
from app.core.errors import UserError
from app.core.htmx import render
from app.models.publicity import OBJECTION_RESULT_LABELS, OBJECTION_STATUS_LABELS
from app.publicity import calendar, documents, forms, queries
from app.publicity import operations as publicity
from app.publicity.blueprint import bp
from app.reports import notice
from app.reports.documents import CHINESE_NUMBERS
from app.rounds import phases as rounds


def _private(resp):
    resp.headers["Cache-Control"] = "private, no-store"
    return resp


# ----------------------------------------------------------------------------- objections


@bp.get("/chair/objections")
@staff_required
def objections():
    rnd = rounds.require_current_round()
    rows = queries.objections(rnd.id)
    return render("publicity/objections.html", "page", round=rnd, rows=rows,
                  titles=queries.titles(o.nomination_id for o in rows), counts=queries.counts_by_status(rnd.id),
                  period=calendar.of_round(rnd), status_labels=OBJECTION_STATUS_LABELS,
                  is_admin=current_user.role == "admin")


def _detail(objection_id: int, *, status: int = 200, message: str = "", forms_in: dict | None = None):
    obj = queries.objection(objection_id)
    rnd = rounds.get(obj.round_id)
    f = {"reject": forms.RejectForm(formdata=None), "note": forms.NoteForm(formdata=None),
         "conclude": forms.ConcludeForm(formdata=None), "accept": forms.HandleForm(formdata=None)}
    f.update(forms_in or {})
    return render("publicity/objection_detail.html", "page", status=status, obj=obj, round=rnd, forms=f,
                  message=message, title=queries.titles([obj.nomination_id]).get(obj.nomination_id, ("", ""))[0],
                  editable=rnd.phase == "publicizing", result_labels=OBJECTION_RESULT_LABELS)


@bp.get("/chair/objections/<int:objection_id>")
@staff_required
def objection_detail(objection_id: int):
    return _private(_detail(objection_id))


@bp.get("/chair/objections/<int:objection_id>/attachment")
@staff_required
def objection_attachment(objection_id: int):
    obj = queries.objection(objection_id)
    data = publicity.attachment_bytes(obj)
    if data is None:
        abort(404)
    ext = (obj.attachment_name or "").rsplit(".", 1)[-1]
    return _private(send_file(io.BytesIO(data), mimetype=obj.attachment_mime, as_attachment=True,
                              download_name=f"异议{obj.id}证明材料.{ext}", max_age=0))


def _handle(objection_id: int, key: str, form, call, done: str):
    queries.objection(objection_id)  # 404 before anything else
    try:
        form.validate_or_refuse()
        call(form)
    except UserError as e:
        if e.status not in (409, 422):
            raise
        form.add_errors(e.field_errors)
        return _detail(objection_id, status=e.status, message=e.message, forms_in={key: form})
    flash(done, "success")
    return redirect(url_for(".objection_detail", objection_id=objection_id), 303)


@bp.post("/chair/objections/<int:objection_id>/accept")
@staff_required
def objection_accept(objection_id: int):
    return _handle(objection_id, "accept", forms.HandleForm(), lambda f: publicity.accept(
        objection_id, expected_version=f.version.number, actor=current_user), "已受理，请核实后作出处理结果。")


@bp.post("/chair/objections/<int:objection_id>/reject")
@staff_required
def objection_reject(objection_id: int):
    return _handle(objection_id, "reject", forms.RejectForm(), lambda f: publicity.reject(
        objection_id, f.reason.data, expected_version=f.version.number, actor=current_user), "已记录为不予受理。")


@bp.post("/chair/objections/<int:objection_id>/note")
@staff_required
def objection_note(objection_id: int):
    return _handle(objection_id, "note", forms.NoteForm(), lambda f: publicity.add_note(
        objection_id, f.note.data, expected_version=f.version.number, actor=current_user), "核实情况已记录。")


@bp.post("/chair/objections/<int:objection_id>/conclude")
@staff_required
def objection_conclude(objection_id: int):
    return _handle(objection_id, "conclude", forms.ConcludeForm(), lambda f: publicity.conclude(
        objection_id, f.result.data, f.note.data, expected_version=f.version.number, actor=current_user),
        "处理结果已记录。")


@bp.get("/admin/objections.xlsx")
@admin_required
def objections_xlsx():
    rnd = rounds.require_current_round()
    doc = documents.register_xlsx(rnd.id)
    return _private(send_file(io.BytesIO(doc.content), mimetype=doc.mimetype, as_attachment=True,
                              download_name=doc.filename, max_age=0))


# ----------------------------------------------------------------------------- settings (admin)


def _settings(status: int = 200, message: str = "", period_form=None, notice_form=None):
    rnd = rounds.require_current_round()
    settings = queries.notice_settings(rnd.id)
    period_form = period_form or forms.PeriodForm(formdata=None, data={
        "start": rnd.publicity_start.isoformat() if rnd.publicity_start else "", "days": str(rnd.publicity_days),
        "manual_end": rnd.publicity_end.isoformat() if rnd.publicity_end else "", "version": rnd.version})
    notice_form = notice_form or forms.NoticeForm(formdata=None, data={
        "number": settings.number, "recipients": settings.recipients, "body_template": settings.body_template,
        "version": settings.version})
    return render("publicity/settings.html", "admin", status=status, message=message, round=rnd,
                  period=calendar.of_round(rnd), period_form=period_form, notice_form=notice_form,
                  period_editable=rnd.phase in publicity.SETTINGS_PHASES, open_count=queries.open_count(rnd.id),
                  placeholders=publicity.NOTICE_PLACEHOLDERS)


@bp.get("/admin/publicity")
@admin_required
def settings():
    return _settings()


def _save(form, key: str, call, done: str, to: str):
    """One settings form of the page: refused → the page again with that form's errors; saved → `to`."""
    if not form.validate_on_submit():
        return _settings(422 if "csrf_token" not in form.errors else 400, form.page_message(), **{key: form})
    try:
        call(form)
    except UserError as e:
        form.add_errors(e.field_errors)
        return _settings(e.status, e.message, **{key: form})
    flash(done, "success")
    return redirect(url_for(to), 303)


@bp.post("/admin/publicity/period")
@admin_required
def period_save():
    rnd = rounds.require_current_round()
    return _save(forms.PeriodForm(), "period_form", lambda f: publicity.set_period(
        rnd.id, f.start.date, f.days.number, f.manual_end.date, expected_version=f.version.number,
        actor=current_user), "公示期已保存。", ".settings")


@bp.post("/admin/publicity/notice")
@admin_required
def notice_save():
    rnd = rounds.require_current_round()
    return _save(forms.NoticeForm(), "notice_form", lambda f: publicity.save_notice(
        rnd.id, f.number.data, f.recipients.data, f.body_template.data, expected_version=f.version.number,
        actor=current_user), "通报设置已保存，可预览后下载。", ".notice_preview")


@bp.get("/admin/publicity/notice-preview")
@admin_required
def notice_preview():
    rnd = rounds.require_current_round()
    nd = notice.data(rnd.id)
    return _private(render("publicity/notice_preview.html", "admin", round=rnd, nd=nd, issuer=notice.ISSUER,
                           chinese_numbers=CHINESE_NUMBERS))


@bp.get("/admin/publicity/notice.docx")
@admin_required
def notice_docx():
    rnd = rounds.require_current_round()
    doc = notice.notice_docx(rnd.id)
    return _private(send_file(io.BytesIO(doc.content), mimetype=doc.mimetype, as_attachment=True,
                              download_name=doc.filename, max_age=0))


@bp.app_template_global("publicity_status")
def publicity_status(rnd) -> dict:
    """The 公示 dates and open objections of a round, for the chair's page and the admin dashboard."""
    period = calendar.of_round(rnd)
    return {"period": period, "open": queries.open_count(rnd.id), "text": queries.period_text(period)}
