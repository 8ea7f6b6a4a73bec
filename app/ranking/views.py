"""Live ranking (chair and admin): the table partial polled by htmx with an ETag, the nomination
breakdown, and the progress / reviewer-severity panel. Read-only: nothing here changes a score."""

from __future__ import annotations

from dataclasses import replace

from flask import Response, current_app, redirect, request, url_for
from flask_login import current_user

from app.core.authz import staff_required
from app.core.errors import UserError
from app.core.htmx import is_partial_request, render
from app.extensions import db
from app.models import CATEGORIES, Nomination, Round
from app.models.round import METHODS
from app.ranking import charts, kept, upkeep
from app.ranking import engine as ranking
from app.ranking.blueprint import bp
from app.ranking.table import TRUE_VALUES, Params, etag, fingerprint, matches

CACHE_CONTROL = "private, no-cache"


@bp.route("/")
@staff_required
def index():
    return redirect(url_for(".category", category=CATEGORIES[0]))


def _no_store_between_users(resp: Response) -> Response:
    # The browser may keep a copy, but must ask every time (the ETag makes asking cheap).
    resp.headers["Cache-Control"] = CACHE_CONTROL
    return resp


def _poll_context(rnd, category: str) -> tuple:
    config = current_app.config
    return (rnd.slots(category), rnd.phase, rnd.method, int(config["RANKING_PAGE_SIZE"]),
            int(config["RANKING_POLL_SECONDS"]))


def _detail_links(params: Params):
    """The breakdown link of a row: one URL built, the row's id put in its place (url_for per row would
    cost a third of the partial's render)."""
    marker = 987654321
    base = url_for(".nomination", nomination_id=marker, drafts="1" if params.drafts else None,
                   method=params.method if params.method_given else None)
    head, _, tail = base.partition(str(marker))
    return lambda nomination_id: f"{head}{int(nomination_id)}{tail}"


def _not_modified(tag: str) -> Response:
    resp = Response(status=304)
    resp.set_etag(tag)
    return _no_store_between_users(resp)


@bp.route("/<any(unit, activity):category>")
@staff_required
def category(category: str):
    """The ranking page, or the table partial htmx polls. The idle poll stays cheap: once flask-login
    has loaded the user as for any page, one driver-SQL statement reads the ranking version, and a
    matching ETag is answered 304 before anything is computed or rendered."""
    rnd = ranking.live_state(category)
    context = _poll_context(rnd, category)
    page_size, poll_seconds = context[3], context[4]
    user_id = current_user.id
    partial = is_partial_request()
    tag = etag(rnd.id, category, rnd.version, fingerprint(request.query_string, *context), user_id)
    if partial and matches(request.headers.get("If-None-Match"), tag):
        return _not_modified(tag)

    params = Params.parse(request.args, rnd.method)
    live = not rnd.is_final
    criteria = ranking.criteria_of(rnd.id, category)
    # A final round never moves: only a live one may be answered from the last poll interval's rows.
    shown = upkeep.ensure(rnd.id, category, params.drafts, criteria, version=rnd.version,
                          live=live,
                          reuse_within=float(current_app.config.get("RANKING_MAX_AGE_SECONDS") or 0) if live else 0.0)
    if shown != rnd.version:  # a save committed since the version was read: show (and tag) the newer one
        rnd = replace(rnd, version=shown)
        tag = etag(rnd.id, category, shown, fingerprint(request.query_string, *context), user_id)
        if partial and matches(request.headers.get("If-None-Match"), tag):
            return _not_modified(tag)
    poll_url = url_for(".category", category=category, **params.query())
    poll_tag = etag(rnd.id, category, rnd.version, fingerprint(poll_url.partition("?")[2], *context), user_id)
    table = kept.table_page(rnd.id, category, criteria, method=params.method, drafts=params.drafts,
                              kind=params.kind, nominator=params.nominator, page=params.page,
                              slots=rnd.slots(category), page_size=page_size)
    table = replace(table, rows=kept.with_criterion_means(table.rows, rnd.id, category, drafts=params.drafts,
                                                              criteria=criteria))
    resp = render("ranking/category.html", "ranking_region", round=rnd, category=category, params=params,
                  table=table, criteria=criteria, version=rnd.version, live=live, poll_seconds=poll_seconds,
                  poll_url=poll_url, etag_value=f'"{poll_tag}"', detail_url=_detail_links(params))
    if partial:
        resp.set_etag(tag)  # only the fragment: the full page is another representation of this URL
    return _no_store_between_users(resp)


@bp.route("/<any(unit, activity):category>/panel")
@staff_required
def panel(category: str):
    rnd = ranking.live_state(category)
    drafts = (request.args.get("drafts") or "").lower() in TRUE_VALUES
    criteria = ranking.criteria_of(rnd.id, category)
    full = ranking.max_total(criteria)
    severity = ranking.severity(rnd.id, category, include_drafts=drafts, criteria=criteria)
    progress = ranking.progress(rnd.id, category)
    resp = render("ranking/panel.html", "panel_region", round=rnd, category=category, drafts=drafts,
                  severity=severity, progress=progress, full_marks=full,
                  chart=charts.severity_chart(severity, full), leaning_points=ranking.LEANING_SHARE * full)
    return _no_store_between_users(resp)


@bp.route("/nominations/<int:nomination_id>")
@staff_required
def nomination(nomination_id: int):
    nom = db.session.get(Nomination, nomination_id)
    if nom is None:
        raise UserError("找不到该推荐对象。", status=404)
    drafts = (request.args.get("drafts") or "").lower() in TRUE_VALUES
    method = request.args.get("method") or None
    criteria = ranking.criteria_of(nom.round_id, nom.category)
    totals = ranking.reviewer_totals(nom.round_id, nom.id, include_drafts=drafts, criteria=criteria)
    rnd = db.session.get(Round, nom.round_id)
    if method is not None and method not in METHODS:
        raise UserError("未知的排名方法。", status=400)
    method = method or rnd.method
    row = None
    if nom.status == "active":
        upkeep.ensure(nom.round_id, nom.category, drafts, criteria)
        row = kept.entry(nom.round_id, nom.category, criteria, method=method, drafts=drafts, nomination_id=nom.id)
        if row is not None:
            row = kept.with_criterion_means([row], nom.round_id, nom.category, drafts=drafts,
                                              criteria=criteria)[0]
    counted_mean = row.mean if row else None
    resp = render("ranking/nomination.html", "breakdown_region", nom=nom, round=rnd, row=row, totals=totals,
                  criteria=criteria, drafts=drafts, method=method,
                  chart=charts.totals_chart(totals, ranking.max_total(criteria), counted_mean),
                  full_marks=ranking.max_total(criteria))
    return _no_store_between_users(resp)
