"""The 推荐单位's pages: parse a form, authorize (access.unit_of / own_nomination), call one operation,
render or 303. A unit sees only its own nominations; another unit's is a 404."""

from __future__ import annotations

import io

from flask import current_app, flash, redirect, request, send_file, url_for
from flask_login import current_user

from app.core.authz import nominator_required
from app.core.errors import UserError
from app.core.htmx import is_partial_request, render
from app.intake import form_check, nominations
from app.intake import forms as intake_forms
from app.portal import access, deadlines, forms, operations, queries, stamped
from app.portal.blueprint import bp
from app.reports import documents
from app.rounds import phases as rounds


def _user():
    return current_user._get_current_object()


def _limits() -> dict:
    return {"summary": intake_forms.template_limits()["summary"], "photos_min": form_check.PHOTOS_MIN,
            "photos_max": form_check.PHOTOS_MAX, "video_mb": current_app.config["UPLOAD_MAX_VIDEO_BYTES"] // 1048576,
            "photo_mb": current_app.config["UPLOAD_MAX_PHOTO_BYTES"] // 1048576,
            "stamped_mb": stamped.max_bytes() // 1048576}


@bp.context_processor
def _portal_context():
    return {"portal_limits": _limits()}


# --- home -------------------------------------------------------------------------------------------


@bp.get("/")
@nominator_required
def home():
    unit = access.unit_of(_user())
    rnd = rounds.current_round()
    ctx = {"unit": unit, "rnd": rnd}
    if rnd is not None:
        ctx.update(quotas=queries.quota_lines(rnd, unit), deadline=deadlines.deadline_for(rnd, unit),
                   items=queries.unit_nominations(rnd, unit), open=rnd.phase in deadlines.PORTAL_PHASES)
    return render("portal/home.html", "page", **ctx)


# --- the form -----------------------------------------------------------------------------------------


def _form_data(nom) -> dict:
    data = {name: getattr(nom, name) for name in nominations.FIELDS}
    data["version"] = nominations.version_of(nom)
    return data


def _page(nom, *, form=None, status: int = 200, errors: dict | None = None, message: str | None = None,
          category: str | None = None, block: str = "page"):
    """The nomination page: the editable form for a 草稿/退回修改 in an open round, else read-only.
    `block`: what an htmx request gets back ("photos": the photo block alone)."""
    unit = access.unit_of(_user())
    rnd = rounds.require_current_round() if nom is None else rounds.get(nom.round_id)
    category = nom.category if nom is not None else category
    editable, closed_reason = True, None
    if nom is not None:
        try:
            access.editable_nomination(_user(), nom.id)
        except UserError as e:
            editable, closed_reason = False, e.message
    else:
        try:
            access.check_open(rnd, _DraftProbe(unit.id))
        except UserError as e:
            editable, closed_reason = False, e.message
    if form is None:
        form_class = forms.nomination_form(category, edit=nom is not None)
        form = form_class(data=_form_data(nom)) if nom is not None else form_class(formdata=None)
    errors = {**form.first_errors(), **(errors or {})}
    quota = queries.quota_line(rnd, unit, category)
    ctx = dict(nom=nom, rnd=rnd, unit=unit, category=category, form=form, errors=errors, message=message,
               editable=editable, closed_reason=closed_reason, quota=quota,
               deadline=deadlines.deadline_for(rnd, unit), label=nominations.field_label,
               nomination=nom)
    if nom is not None:
        ctx["warnings"] = operations.submission_warnings(nom, rnd)
        ctx["stamped_ok"] = rnd.phase in deadlines.PORTAL_PHASES and nom.status in operations.STAMPED_STATUSES
        ctx["withdrawable"] = nom.status == "submitted" and rnd.phase in deadlines.PORTAL_PHASES
    return render("portal/nomination.html", block, status=status, **ctx)


class _DraftProbe:
    """What check_open needs to know about a nomination not created yet."""

    status = "draft"

    def __init__(self, nominator_id: int):
        self.nominator_id = nominator_id


@bp.route("/new/<any(unit, activity):category>", methods=["GET", "POST"])
@nominator_required
def new(category: str):
    access.unit_of(_user())
    form_class = forms.nomination_form(category, edit=False)
    if request.method == "GET":
        return _page(None, category=category)
    form = form_class()
    if not form.validate_on_submit():
        return _page(None, form=form, category=category, status=422, message=form.page_message())
    try:
        nom = operations.create_draft(_user(), category, form.values())
    except UserError as e:
        form.add_errors(e.field_errors)
        return _page(None, form=form, category=category, status=e.status, message=e.message)
    flash("草稿已保存。请继续填写，并上传活动照片和视频。", "success")
    return redirect(url_for("portal.nomination", nomination_id=nom.id), 303)


@bp.route("/nominations/<int:nomination_id>", methods=["GET", "POST"])
@nominator_required
def nomination(nomination_id: int):
    nom = access.own_nomination(_user(), nomination_id)
    if request.method == "GET":
        return _page(nom)
    form = forms.nomination_form(nom.category, edit=True)()
    if not form.validate_on_submit():
        return _page(nom, form=form, status=422, message=form.page_message())
    try:
        if form.op.data == "submit":
            nom, warnings = operations.submit(_user(), nom.id, form.values(), version=form.version.data)
        else:
            operations.save_draft(_user(), nom.id, form.values(), version=form.version.data)
    except UserError as e:
        form.add_errors(e.field_errors)
        nom = access.own_nomination(_user(), nomination_id)
        return _page(nom, form=form, status=e.status, errors=e.field_errors, message=e.message)
    if form.op.data == "submit":
        note = ("提示（不影响提交）：" + "；".join(warnings)) if warnings else ""
        flash(f"已提交「{nom.title}」，请等待省科协受理。{note}", "success")
        return redirect(url_for("portal.home"), 303)
    flash("草稿已保存。", "success")
    return redirect(url_for("portal.nomination", nomination_id=nom.id), 303)


@bp.post("/nominations/<int:nomination_id>/withdraw")
@nominator_required
def withdraw(nomination_id: int):
    nom = access.own_nomination(_user(), nomination_id)
    form = forms.ConfirmForm()
    if not form.validate_on_submit():
        return _page(nom, status=400, message=form.error_message())
    try:
        operations.withdraw(_user(), nom.id)
    except UserError as e:
        return _page(access.own_nomination(_user(), nomination_id), status=e.status, message=e.message)
    flash(f"已撤回「{nom.title}」。", "success")
    return redirect(url_for("portal.home"), 303)


# --- photos, the 盖章件, the PDF ----------------------------------------------------------------------


def _media_refused(nomination_id: int, e: UserError, field: str):
    nom = access.own_nomination(_user(), nomination_id)
    return _page(nom, status=e.status, errors=e.field_errors or {field: e.message}, message=e.message,
                 block="photos" if field == "photos" else "page")


def _refused(form) -> UserError:
    errors = form.first_errors()
    message = form.error_message() if "csrf_token" in errors else next(iter(errors.values()), form.error_message())
    return UserError(message, errors, status=400 if "csrf_token" in errors else 422)


def _back_to_media(nomination_id: int, message: str, *, photos: bool = False):
    """After a media change: a 303 back to the page's #media, or for htmx the photo block in place."""
    if photos and is_partial_request():
        return _page(access.own_nomination(_user(), nomination_id), message=message, block="photos")
    flash(message, "success")
    return redirect(url_for("portal.nomination", nomination_id=nomination_id) + "#media", 303)


@bp.post("/nominations/<int:nomination_id>/photos")
@nominator_required
def upload_photos(nomination_id: int):
    access.own_nomination(_user(), nomination_id)
    form = forms.PhotoForm()
    try:
        if not form.validate_on_submit():
            raise _refused(form)
        limit = current_app.config["UPLOAD_MAX_PHOTO_BYTES"] + 1
        added = operations.add_photos(_user(), nomination_id,
                                      [(f.filename or "", f.stream.read(limit)) for f in form.files()])
    except UserError as e:
        return _media_refused(nomination_id, e, "photos")
    return _back_to_media(nomination_id, f"已上传 {len(added)} 张照片。", photos=True)


@bp.post("/nominations/<int:nomination_id>/attachments/<int:attachment_id>/delete")
@nominator_required
def delete_attachment(nomination_id: int, attachment_id: int):
    access.own_nomination(_user(), nomination_id)
    form = forms.ConfirmForm()
    try:
        if not form.validate_on_submit():
            raise _refused(form)
        operations.delete_attachment(_user(), nomination_id, attachment_id)
    except UserError as e:
        return _media_refused(nomination_id, e, "photos")
    return _back_to_media(nomination_id, "已删除。", photos=True)


@bp.post("/nominations/<int:nomination_id>/photos/<int:attachment_id>/move")
@nominator_required
def move_photo(nomination_id: int, attachment_id: int):
    access.own_nomination(_user(), nomination_id)
    form = forms.MoveForm()
    try:
        if not form.validate_on_submit():
            raise _refused(form)
        operations.move_photo(_user(), nomination_id, attachment_id, int(form.step.data))
    except UserError as e:
        return _media_refused(nomination_id, e, "photos")
    return _back_to_media(nomination_id, "已调整照片顺序。", photos=True)


@bp.post("/nominations/<int:nomination_id>/stamped")
@nominator_required
def upload_stamped(nomination_id: int):
    access.own_nomination(_user(), nomination_id)
    form = forms.StampedForm()
    try:
        if not form.validate_on_submit():
            raise _refused(form)
        f = form.stamped.data
        data = f.stream.read(stamped.max_bytes() + 1)
        operations.upload_stamped(_user(), nomination_id, f.filename or "", data)
    except UserError as e:
        return _media_refused(nomination_id, e, "stamped")
    return _back_to_media(nomination_id, "已上传盖章件。")


@bp.get("/nominations/<int:nomination_id>/form.pdf")
@nominator_required
def form_pdf(nomination_id: int):
    nom = access.own_nomination(_user(), nomination_id)
    # The form to print and stamp: 推荐意见 as the unit wrote it, the 审定意见 cell left empty.
    doc = documents.nomination_form_pdf(nom.id, blank_opinion=True)
    resp = send_file(io.BytesIO(doc.content), mimetype=doc.mimetype, as_attachment=True,
                     download_name=doc.filename, max_age=0)
    resp.headers["Cache-Control"] = "private, no-store"
    return resp
