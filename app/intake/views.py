"""Admin pages for the nominations of the current round: list, create/edit, withdraw, photos and video,
imports with a preview, and 形式审查. Views parse, authorize, call one service and render."""

from __future__ import annotations

import io

from flask import abort, current_app, flash, redirect, request, send_file, url_for
from flask_login import current_user

from app.core.authz import admin_required
from app.core.errors import UserError
from app.core.htmx import is_partial_request, render
from app.core.params import parse_id
from app.intake import form_check, forms, importer, nominations, uploads
from app.intake.blueprint import bp
from app.intake.xlsx_reader import build_template
from app.models import CATEGORIES
from app.models.nomination import RETURN_NOTE_MAX
from app.rounds import phases as rounds

FINDING_FILTERS = {"": "全部", "open": "有待处理问题", "blocking": "有阻断性问题", "none": "无待处理问题"}
# "current": what the admin works on — the active nominations and the portal's submitted / returned ones.
STATUS_FILTERS = {"current": "有效及在线报送", "active": "有效", "submitted": "待受理（在线提交）", "returned": "退回修改",
                  "withdrawn": "已撤回", "all": "全部"}


@bp.context_processor
def _intake_limits():
    return {"intake_max": forms.template_limits()}


def _actor():
    return current_user._get_current_object()


def _category(value: str | None) -> str:
    return value if value in CATEGORIES else "unit"


def _int(value) -> int | None:
    return parse_id(value)


def _nomination_in_round(nomination_id: int):
    nom = nominations.get(nomination_id)
    rnd = rounds.require_current_round()
    # A 推荐单位's draft is its own until submitted: the admin never sees it.
    if nom.round_id != rnd.id or nom.status == "draft":
        abort(404)
    return nom, rnd


def _back(default: str) -> str:
    target = request.form.get("next") or ""
    return target if target.startswith("/intake/") and "//" not in target else default


# --- list ---------------------------------------------------------------------------------------------


@bp.route("/intake/")
@admin_required
def index():
    rnd = rounds.require_current_round()
    category = _category(request.args.get("category"))
    nominator_id = _int(request.args.get("nominator"))
    status = request.args.get("status") if request.args.get("status") in STATUS_FILTERS else "current"
    findings = request.args.get("findings") if request.args.get("findings") in FINDING_FILTERS else ""
    items = nominations.list_nominations(rnd.id, category, nominator_id=nominator_id, status=status,
                                         findings=findings)
    quota = nominations.quota_usage(rnd, category)
    total = sum(q.count for q in quota)
    return render("intake/list.html", "results", rnd=rnd, category=category, items=items, quota=quota,
                  total=total, over=[q for q in quota if q.over], counts=nominations.open_finding_counts(rnd.id),
                  filters={"nominator": nominator_id, "status": status, "findings": findings},
                  nominators=nominations.nominators(), FINDING_FILTERS=FINDING_FILTERS,
                  STATUS_FILTERS=STATUS_FILTERS, editable=rnd.phase in nominations.EDITABLE_PHASES,
                  checked=form_check.last_run(rnd.id))


# --- create / edit ------------------------------------------------------------------------------------


def _form_page(rnd, category, form, *, nom=None, status=200, message=None):
    errors = form.first_errors()
    if message is None and errors:
        message = errors.get("version") or form.error_message()
    return render("intake/form.html", "form", status=status, rnd=rnd, category=category, form=form,
                  errors=errors, nom=nom, message=message, nominators=nominations.nominators(),
                  fields=nominations.fields_for(category), label=nominations.field_label,
                  editable=rnd.phase in nominations.EDITABLE_PHASES)


def _form_data(nom) -> dict:
    data = {name: getattr(nom, name) for name in nominations.FIELDS}
    data["received_date"] = nominations.local_date(nom.received_at)
    data["nominator_id"] = str(nom.nominator_id)
    data["version"] = nominations.version_of(nom)
    return data


@bp.route("/intake/new", methods=["GET", "POST"])
@admin_required
def create():
    rnd = rounds.require_current_round()
    category = _category(request.values.get("category"))
    form_class = forms.nomination_form(category)
    if request.method == "GET":
        form = form_class(data={"nominator_id": str(_int(request.args.get("nominator")) or "")})
        return _form_page(rnd, category, form)
    form = form_class()
    if not form.validate_on_submit():
        return _form_page(rnd, category, form, status=422)
    try:
        nom = nominations.create(rnd.id, form.nominator_id.data, category, form.values(), actor=_actor())
    except UserError as e:
        form.add_errors(e.field_errors)
        return _form_page(rnd, category, form, status=e.status, message=e.message)
    flash(f"已新增推荐对象「{nom.title}」。", "success")
    return redirect(url_for("intake.detail", nomination_id=nom.id), 303)


@bp.route("/intake/<int:nomination_id>/edit", methods=["GET", "POST"])
@admin_required
def edit(nomination_id: int):
    nom, rnd = _nomination_in_round(nomination_id)
    form_class = forms.nomination_form(nom.category, edit=True)
    if request.method == "GET":
        return _form_page(rnd, nom.category, form_class(data=_form_data(nom)), nom=nom)
    form = form_class()
    if not form.validate_on_submit():
        return _form_page(rnd, nom.category, form, nom=nom, status=422)
    try:
        nominations.update(nom.id, form.values(), version=form.version.data, actor=_actor())
    except UserError as e:
        form.add_errors(e.field_errors)
        return _form_page(rnd, nom.category, form, nom=nom, status=e.status, message=e.message)
    flash("已保存修改。", "success")
    return redirect(url_for("intake.detail", nomination_id=nom.id), 303)


# --- detail, withdraw, attachments --------------------------------------------------------------------


def _detail(nom, rnd, *, status=200, errors=None, message=None, block="page"):
    return render("intake/detail.html", block, status=status, nom=nom, rnd=rnd,
                  findings=form_check.findings_for(nom.id), RULES=form_check.RULES,
                  STATUS_LABELS=form_check.STATUS_LABELS, errors=errors or {}, message=message,
                  label=nominations.field_label, fields=nominations.fields_for(nom.category),
                  editable=rnd.phase in nominations.EDITABLE_PHASES, photo_max=uploads.PHOTO_FORM_MAX,
                  summary_max=forms.template_limits()["summary"], return_note_max=RETURN_NOTE_MAX)


def _refused(form) -> UserError:
    """A form that did not validate, as the UserError its page shows (422 beside the fields)."""
    errors = form.first_errors()
    return UserError(next(iter(errors.values()), form.error_message()) if "csrf_token" not in errors
                     else form.error_message(), errors)


@bp.route("/intake/<int:nomination_id>")
@admin_required
def detail(nomination_id: int):
    nom, rnd = _nomination_in_round(nomination_id)
    return _detail(nom, rnd)


def _status_change(nomination_id: int, form_class, operation, done: str):
    nom, rnd = _nomination_in_round(nomination_id)
    form = form_class()
    try:
        if not form.validate_on_submit():
            raise _refused(form)
        operation(nom.id, form.reason.data, actor=_actor())
    except UserError as e:
        return _detail(nom, rnd, status=e.status, errors=e.field_errors, message=e.message)
    flash(done.format(title=nom.title), "success")
    return redirect(url_for("intake.detail", nomination_id=nom.id), 303)


@bp.route("/intake/<int:nomination_id>/withdraw", methods=["POST"])
@admin_required
def withdraw(nomination_id: int):
    return _status_change(nomination_id, forms.WithdrawForm, nominations.withdraw, "已撤回「{title}」。")


@bp.route("/intake/<int:nomination_id>/reinstate", methods=["POST"])
@admin_required
def reinstate(nomination_id: int):
    return _status_change(nomination_id, forms.ReinstateForm, nominations.reinstate, "已恢复「{title}」。")


def _after_attachment_change(nom, rnd, message: str):
    if is_partial_request():
        nom = nominations.get(nom.id)
        return _detail(nom, rnd, block="media", message=None)
    flash(message, "success")
    return redirect(url_for("intake.detail", nomination_id=nom.id) + "#media", 303)


def _media_refused(nom, rnd, e: UserError, field: str):
    errors = e.field_errors or {field: e.message}
    return _detail(nom, rnd, status=e.status, errors=errors, message=e.message,
                   block="media" if is_partial_request() else "page")


@bp.get("/intake/<int:nomination_id>/media")
@admin_required
def media(nomination_id: int):
    """The photos and video block alone (htmx reloads it after a resumable upload), or the whole page."""
    nom, rnd = _nomination_in_round(nomination_id)
    return _detail(nom, rnd, block="media")


@bp.route("/intake/<int:nomination_id>/photos", methods=["POST"])
@admin_required
def upload_photos(nomination_id: int):
    nom, rnd = _nomination_in_round(nomination_id)
    form = forms.PhotoForm()
    try:
        if not form.validate_on_submit():
            raise _refused(form)
        # Read one byte past the limit at most: check_photo refuses the file without holding a huge upload.
        limit = current_app.config["UPLOAD_MAX_PHOTO_BYTES"] + 1
        added = uploads.add_photos(nom.id, [(f.filename or "", f.stream.read(limit)) for f in form.files()],
                                   actor=_actor())
    except UserError as e:
        return _media_refused(nom, rnd, e, "photos")
    return _after_attachment_change(nom, rnd, f"已上传 {len(added)} 张照片。")


@bp.route("/intake/<int:nomination_id>/video", methods=["POST"])
@admin_required
def upload_video(nomination_id: int):
    nom, rnd = _nomination_in_round(nomination_id)
    form = forms.VideoForm()
    try:
        if not form.validate_on_submit():
            raise _refused(form)
        f = form.video.data
        uploads.add_video(nom.id, f.stream, f.filename, actor=_actor())
    except UserError as e:
        return _media_refused(nom, rnd, e, "video")
    return _after_attachment_change(nom, rnd, "已上传视频。")


@bp.route("/intake/<int:nomination_id>/attachments/<int:attachment_id>/delete", methods=["POST"])
@admin_required
def delete_attachment(nomination_id: int, attachment_id: int):
    nom, rnd = _nomination_in_round(nomination_id)
    form = forms.ConfirmForm()
    if not form.validate_on_submit():
        raise _refused(form)
    uploads.delete_attachment(attachment_id, actor=_actor(), nomination_id=nom.id)
    return _after_attachment_change(nom, rnd, "已删除附件。")


# --- imports ------------------------------------------------------------------------------------------


@bp.route("/intake/template.xlsx")
@admin_required
def template():
    data = build_template([n.name for n in nominations.nominators()])
    return send_file(io.BytesIO(data), as_attachment=True, download_name="推荐对象导入模板.xlsx",
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", max_age=0)


def _import_page(rnd, form, *, status=200, message=None):
    return render("intake/import.html", "page", status=status, rnd=rnd, form=form, errors=form.first_errors(),
                  message=message, nominators=nominations.nominators(),
                  editable=rnd.phase in nominations.EDITABLE_PHASES)


@bp.route("/intake/import", methods=["GET", "POST"])
@admin_required
def import_upload():
    rnd = rounds.require_current_round()
    form = forms.ImportForm()
    if request.method == "GET":
        return _import_page(rnd, form)
    valid = form.validate_on_submit()
    if rnd.phase not in nominations.EDITABLE_PHASES:
        return _import_page(rnd, form, status=409, message="当前阶段推荐材料已不能修改，不能导入。")
    if not valid:
        return _import_page(rnd, form, status=422, message="请检查标出的内容。")
    token, _sources = importer.new_preview(form.uploads(), user_id=current_user.id, round_id=rnd.id,
                                           nominator_id=_int(form.nominator_id.data),
                                           received=form.received_date.data)
    _build_preview(token, rnd)
    return redirect(url_for("intake.import_preview", token=token), 303)


def _build_preview(token: str, rnd, choices: dict | None = None) -> None:
    meta, sources = importer.load_preview(token, current_user.id)
    if choices is not None:
        meta["choices"] = {str(k): v for k, v in choices.items()}
    options = importer.meta_options(meta)
    reading = importer.read_sources(sources)
    try:
        items = importer.plan(reading, rnd, nominator_id=options["nominator_id"], received=options["received"],
                              choices=options["choices"])
    finally:
        reading.close()
    importer.save_preview_items(token, meta, reading, items)


def _choices_from_form(count: int) -> dict:
    out = {}
    for i in range(count):
        out[i] = {"nominator_id": _int(request.form.get(f"nominator-{i}")),
                  "include": request.form.get(f"include-{i}") == "1"}
    return out


@bp.route("/intake/import/<token>", methods=["GET", "POST"])
@admin_required
def import_preview(token: str):
    rnd = rounds.require_current_round()
    meta, sources = importer.load_preview(token, current_user.id)
    if meta.get("round_id") != rnd.id:
        raise UserError("导入预览属于另一评选批次，请重新上传。", status=409)
    if request.method == "GET":
        preview = importer.preview_items(token)
        if preview is None:
            _build_preview(token, rnd)
            preview = importer.preview_items(token)
        return render("intake/preview.html", "page", rnd=rnd, token=token, meta=meta, preview=preview,
                      nominators=nominations.nominators(), done=meta.get("result"))
    form = forms.PreviewForm()
    if not form.validate_on_submit():
        raise _refused(form)
    op = form.op.data
    if op == "discard":
        importer.drop_preview(token)
        flash("已放弃本次导入，未保存任何内容。", "info")
        return redirect(url_for("intake.import_upload"), 303)
    if meta.get("result"):
        raise UserError("本次导入已确认保存，不能重复确认。", status=409)
    preview = importer.preview_items(token) or {"items": []}
    choices = _choices_from_form(len(preview["items"]))
    if op == "refresh":
        _build_preview(token, rnd, choices)
        return redirect(url_for("intake.import_preview", token=token), 303)
    if op != "confirm":
        abort(400)
    if rnd.phase not in nominations.EDITABLE_PHASES:
        raise UserError("当前阶段推荐材料已不能修改，不能导入。", status=409)
    meta["choices"] = {str(k): v for k, v in choices.items()}
    options = importer.meta_options(meta)
    reading = importer.read_sources(sources)
    try:
        items = importer.plan(reading, rnd, nominator_id=options["nominator_id"], received=options["received"],
                              choices=options["choices"])
        outcome = importer.save(reading, items, rnd, actor=_actor())
    finally:
        reading.close()
    meta["result"] = {
        "summary": outcome.summary(),
        "created": [{"id": nid, "title": item.title, "source": item.source} for item, nid in outcome.created],
        "updated": [{"id": nid, "title": item.title, "source": item.source} for item, nid in outcome.updated],
        "skipped": [{"title": item.title, "source": item.source, "reason": r} for item, r in outcome.skipped],
        "rejected": [{"title": item.title, "source": item.source, "reason": r} for item, r in outcome.rejected],
        "file_errors": outcome.file_errors,
        "warnings": [{"source": item.source, "messages": item.warnings} for item, _ in
                     outcome.created + outcome.updated if item.warnings],
    }
    importer.save_preview_items(token, meta, reading, items)
    flash(f"导入完成：{outcome.summary()}。", "success" if not outcome.rejected else "warning")
    return redirect(url_for("intake.import_preview", token=token), 303)


# --- 形式审查 ------------------------------------------------------------------------------------------


@bp.route("/intake/check")
@admin_required
def check():
    rnd = rounds.require_current_round()
    status = request.args.get("status", "open")
    status = status if status in form_check.STATUS_LABELS or status == "all" else "open"
    rule = request.args.get("rule", "")
    category = request.args.get("category", "")
    rows = form_check.list_findings(rnd.id, status=status, rule=rule, category=category)
    problems = form_check.blocking_problems(rnd) if rnd.phase == "collecting" else None
    return render("intake/check.html", "results", rnd=rnd, rows=rows, summary=form_check.rule_summary(rnd.id),
                  RULES=form_check.RULES, STATUS_LABELS=form_check.STATUS_LABELS,
                  filters={"status": status, "rule": rule, "category": category}, problems=problems,
                  checked=form_check.last_run(rnd.id))


@bp.route("/intake/check/run", methods=["POST"])
@admin_required
def check_run():
    rnd = rounds.require_current_round()
    form = forms.ConfirmForm()
    if not form.validate_on_submit():
        raise _refused(form)
    result = form_check.run(rnd.id, actor=_actor())
    flash(f"形式审查已完成：新增 {result['added']} 项，自动解决 {result['auto_resolved']} 项，重新打开 "
          f"{result['reopened']} 项；待处理阻断性问题 {result['open_blocking']} 项，提示 {result['open_warnings']} 项。",
          "success")
    return redirect(url_for("intake.check"), 303)


@bp.route("/intake/findings/<int:finding_id>/<any(resolve, waive, reopen):op>", methods=["POST"])
@admin_required
def finding_decide(finding_id: int, op: str):
    rnd = rounds.require_current_round()
    finding = form_check.get_finding(finding_id)
    if finding.round_id != rnd.id:
        abort(404)
    action = {"resolve": form_check.resolve, "waive": form_check.waive, "reopen": form_check.reopen}[op]
    form = forms.finding_form(op)()
    error = None
    try:
        if not form.validate_on_submit():
            raise _refused(form)
        finding = action(finding_id, form.note.data, actor=_actor())
    except UserError as e:
        if not is_partial_request():
            raise
        error = e
    if is_partial_request():
        nom = nominations.get(finding.nomination_id)
        return render("intake/_finding.html", "finding", status=error.status if error else 200, f=finding,
                      nom=nom, error=error.message if error else None, RULES=form_check.RULES,
                      STATUS_LABELS=form_check.STATUS_LABELS, show_nomination=form.ctx.data == "check",
                      next_url=form.next.data or "", note_max=forms.NOTE_MAX)
    flash({"resolve": "已标记为已解决。", "waive": "已豁免。", "reopen": "已重新打开。"}[op], "success")
    return redirect(_back(url_for("intake.check")), 303)


@bp.app_template_filter("intake_date")
def intake_date(value) -> str:
    """A stored timestamp as the Beijing calendar date (what 收到日期 means to the admin)."""
    day = nominations.local_date(value)
    return f"{day.year}年{day.month}月{day.day}日" if day else ""
