"""Deliberation (会议审定): the ranking with the cut line, approve / decline, 审定意见, approval date,
seal, and the phase moves to 公示 and 定稿. Views parse, authorize, call one service, render; every
form works as a plain POST answered with 303, and htmx swaps single rows when it is there."""

from __future__ import annotations

import io

from flask import abort, flash, redirect, request, send_file, url_for
from flask_login import current_user

from app.core.authz import admin_required, staff_required
from app.core.errors import UserError
from app.core.htmx import is_partial_request, render, see_other, trigger
from app.core.paging import Pager
from app.core.params import parse_int
from app.deliberation import forms
from app.deliberation import operations as decisions
from app.deliberation.blueprint import bp
from app.extensions import db
from app.models import CATEGORIES, PHASE_LABELS, Nomination
from app.rounds import phases as rounds
from app.rounds import preflight
from app.stats import forms as stats_forms  # robustness
from app.stats import views as stats_views

TEMPLATE = "deliberation/deliberate.html"
DECISIONS_CHANGED = "decisions-changed"
# A province's whole category fits one page; at national scale (thousands of rows, each with its
# forms) one page of the table is rendered at a time.
PAGE_SIZE = 200


def _page_arg() -> int | None:
    """The table's page (GET, and the row forms' action URLs, so a plain POST returns to it)."""
    return parse_int(request.args.get("page"), lo=1, default=None)


def _page_context(category: str, *, errors: dict | None = None, form_values: dict | None = None,
                  template_form: dict | None = None) -> dict:
    """Everything the page and each of its blocks need (one ranking computation)."""
    rnd = rounds.require_current_round()
    rows = decisions.standings(rnd, category)
    # --- robustness (app/stats): the 稳健性 column, its filter and the panel
    robust_form = stats_forms.RobustFilterForm(formdata=request.args)
    robust_form.validate()  # a GET filter: a bad value is dropped and explained
    robust = stats_views.Robustness(rnd.id, category)
    robust_choice = robust_form.choice()
    # --- end robustness
    shown = stats_views.filtered(rows, robust, robust_choice)
    pager = Pager.of(len(shown), _page_arg(), PAGE_SIZE)
    slots = rnd.slots(category)
    cut = next((i for i, st in enumerate(shown) if st.rank == slots), None)
    return dict(
        round=rnd, category=category, rows=rows, summary=decisions.summary(rnd, category, rows),
        shown_rows=pager.slice(shown), pager=pager, cut_page=None if cut is None else pager.page_of(cut),
        cut_id=None if cut is None else shown[cut].nomination_id,
        robust=robust, robust_form=robust_form, robust_choice=robust_choice,
        slots=slots, editable=rnd.phase == "deliberating", is_admin=current_user.role == "admin",
        errors=errors or {}, form_values=form_values or {}, has_seal=bool(rnd.seal_file),
        outcome_labels=decisions.OUTCOME_LABELS, opinion_max=forms.LIMITS["opinion"], limits=forms.LIMITS,
        template_form=template_form or {"errors": {}, "message": "", "approve_template": rnd.opinion_approve_template,
                                        "decline_template": rnd.opinion_decline_template},
        opinion_templates={o: decisions.opinion_text(rnd, category, o) for o in decisions.OUTCOMES},
    )


def _page(category: str, block: str = "workspace", status: int = 200, **extra):
    return render(TEMPLATE, block, status=status, **_page_context(category, **extra))


def _back(category: str, anchor: str | None = None):
    url = url_for(".category", category=category, page=_page_arg())
    return redirect(f"{url}#{anchor}" if anchor else url, code=303)


def _nomination(nomination_id: int) -> Nomination:
    nom = db.session.get(Nomination, nomination_id)
    if nom is None:
        abort(404)
    return nom


def _row_response(nom: Nomination, *, errors: dict | None = None, form_values: dict | None = None,
                  status: int = 200):
    """After a row action: the row alone for htmx (and a trigger so the summary refreshes), the page
    for a plain POST that failed, a 303 back to the row for one that succeeded."""
    if is_partial_request():
        ctx = _page_context(nom.category, errors={nom.id: errors} if errors else None,
                            form_values={nom.id: form_values} if form_values else None)
        st = next((s for s in ctx["rows"] if s.nomination_id == nom.id), None)
        if st is None:
            abort(404)
        resp = render(TEMPLATE, "row", status=status, st=st, **ctx)
        return trigger(resp, DECISIONS_CHANGED) if status < 400 else resp
    if errors:
        return _page(nom.category, status=status, errors={nom.id: errors},
                     form_values={nom.id: form_values} if form_values else None)
    return _back(nom.category, f"nom-{nom.id}")


@bp.route("/")
@staff_required
def index():
    return redirect(url_for(".category", category=CATEGORIES[0]))


@bp.route("/<any(unit, activity):category>")
@staff_required
def category(category: str):
    bad_filter = "robust" in request.args and request.args.get("robust") not in dict(stats_forms.FILTERS)
    return _page(category, status=422 if bad_filter else 200)


@bp.route("/<any(unit, activity):category>/summary")
@staff_required
def summary(category: str):
    return _page(category, block="summary")


@bp.post("/decide/<int:nomination_id>")
@staff_required
def decide(nomination_id: int):
    nom = _nomination(nomination_id)
    form = forms.DecideForm()
    reason = form.reason.data or ""
    try:
        form.validate_or_refuse()
        decisions.decide(nom.id, form.outcome.data, reason=reason, expected_version=form.version.data,
                         opinion_choice=form.opinion_choice.data or "", actor=current_user)
    except UserError as e:
        if e.status not in (409, 422):
            raise
        errs = {"message": e.message, **e.field_errors}
        # The row asks (keep my text / use the template) with the outcome and reason it was given.
        return _row_response(nom, errors=errs, form_values={"reason": reason, "outcome": form.outcome.data},
                             status=e.status)
    return _row_response(nom)


@bp.post("/opinion/<int:nomination_id>")
@staff_required
def opinion(nomination_id: int):
    nom = _nomination(nomination_id)
    form = forms.OpinionForm()
    text = form.opinion.data or ""
    try:
        form.validate_or_refuse()
        decisions.set_opinion(nom.id, text, expected_version=form.version.data, actor=current_user)
    except UserError as e:
        if e.status not in (409, 422):
            raise
        return _row_response(nom, errors={"message": e.message, "opinion": e.field_errors.get("opinion", "")},
                             form_values={"opinion": text, "open": True}, status=e.status)
    return _row_response(nom)


@bp.post("/<any(unit, activity):category>/prefill")
@staff_required
def prefill(category: str):
    rnd = rounds.require_current_round()
    forms.BulkForm().validate_or_refuse()
    made = decisions.prefill_from_cut_line(rnd.id, category, actor=current_user)
    return _after_bulk(category, f"已按分数线预填 {made} 项审定。" if made else "所有推荐对象均已审定，无需预填。")


@bp.post("/<any(unit, activity):category>/fill-opinions")
@staff_required
def fill_opinions(category: str):
    rnd = rounds.require_current_round()
    form = forms.BulkForm()
    form.validate_or_refuse()
    changed = decisions.fill_opinions(rnd.id, category, overwrite=form.overwrite_flag, actor=current_user)
    return _after_bulk(category, f"已按模板填写 {changed} 条审定意见。" if changed else "没有需要填写的审定意见。")


def _after_bulk(category: str, message: str):
    if is_partial_request():
        # The whole workspace comes back (summary included), with the message in it: a flash would
        # only show on the next full page load.
        return render(TEMPLATE, "workspace", notice=message, **_page_context(category))
    flash(message, "success")
    return _back(category)


@bp.post("/approval-date")
@staff_required
def approval_date():
    rnd = rounds.require_current_round()
    form = forms.ApprovalDateForm()
    form.validate_or_refuse()
    decisions.set_approval_date(rnd.id, form.approval_date.date, actor=current_user)
    flash("审定日期已保存。", "success")
    return _back(_category_arg())


@bp.post("/templates")
@admin_required
def templates():
    rnd = rounds.require_current_round()
    form = forms.TemplatesForm()
    try:
        form.validate_or_refuse()
        decisions.set_templates(rnd.id, form.approve_template.data, form.decline_template.data, actor=current_user)
    except UserError as e:
        if e.status != 422:
            raise
        # The page again with the typed text kept and the message beside the field it is about.
        errors = {**form.first_errors(), **e.field_errors}
        return _page(_category_arg(), status=422, template_form={
            "errors": errors, "message": e.message,
            "approve_template": form.approve_template.data or "", "decline_template": form.decline_template.data or ""})
    flash("审定意见模板已保存；已填写的审定意见不会自动改变，可用“按模板填写”更新。", "success")
    return _back(_category_arg())


@bp.post("/seal")
@admin_required
def seal():
    rnd = rounds.require_current_round()
    form = forms.SealForm()
    form.validate_or_refuse()
    decisions.save_seal(rnd.id, form.read(), actor=current_user)
    flash("印章图片已上传。", "success")
    return _back(_category_arg())


@bp.get("/seal.png")
@staff_required
def seal_image():
    rnd = rounds.require_current_round()
    data = decisions.seal_bytes(rnd)
    if data is None:
        abort(404)
    resp = send_file(io.BytesIO(data), mimetype="image/png", max_age=0)
    resp.headers["Cache-Control"] = "private, no-cache"
    return resp


PHASE_ENDPOINTS = {"publicizing": ".publicize", "final": ".finalize"}


def _preflight(target: str, *, status: int = 200, form=None, errors: dict | None = None, message: str = ""):
    """The pre-flight page of 公示 / 定稿 (rounds/preflight.py computes it, for the admin's move too)."""
    rnd = rounds.require_current_round()
    category = _category_arg()
    return render("deliberation/preflight.html", "preflight", status=status, round=rnd,
                  pf=preflight.check(rnd, target), action=url_for(PHASE_ENDPOINTS[target]),
                  hidden={"category": category}, errors=errors or {}, pf_message=message,
                  reason_value=form.reason.data if form else "", accept_checked=bool(form and form.gaps_accepted),
                  reason_max=forms.LIMITS["phase_reason"], final_confirm=target == "final",
                  cancel_url=url_for(".category", category=category))


@bp.get("/preflight/<any(publicizing, final):target>")
@staff_required
def preflight_page(target: str):
    rnd = rounds.require_current_round()
    if rnd.phase != rounds.previous_phase(target):
        flash(f"评选批次处于「{rnd.phase_label}」阶段，不能进入「{PHASE_LABELS[target]}」。", "warning")
        return _back(_category_arg())
    return _preflight(target)


def _move(target: str, form, operation, done: str):
    rnd = rounds.require_current_round()
    try:
        form.validate_or_refuse()
        operation(rnd.id, confirm=form.gaps_accepted, reason=form.reason.data or "", actor=current_user)
    except UserError as e:
        if e.status not in (409, 422):
            raise
        return _preflight(target, status=e.status, form=form, errors={**form.first_errors(), **e.field_errors},
                          message=e.message)
    flash(done, "success")
    return see_other(url_for(".category", category=_category_arg()))


@bp.post("/publicize")
@staff_required
def publicize():
    return _move("publicizing", forms.PhaseForm(), decisions.publicize, "已进入公示阶段，审定结果已锁定；可下载公示名单。")


@bp.post("/finalize")
@staff_required
def finalize():
    return _move("final", forms.FinalizeForm(), decisions.finalize, "已定稿。本批次的评分和审定结果不再修改。")


@bp.post("/reopen")
@admin_required
def reopen():
    rnd = rounds.require_current_round()
    form = forms.ReopenForm()
    form.validate_or_refuse()
    decisions.reopen(rnd.id, form.reason.data, actor=current_user)
    flash("已退回上一阶段，操作已记入日志。", "warning")
    return _back(_category_arg())


def _category_arg() -> str:
    category = request.form.get("category") or request.args.get("category") or CATEGORIES[0]
    return category if category in CATEGORIES else CATEGORIES[0]
