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
from app.ranking import cache as ranking_cache
from app.ranking import charts
from app.ranking import engine as ranking
from app.ranking.blueprint import bp
from app.ranking.table import TRUE_VALUES, Params, build, etag, fingerprint, matches

CACHE_CONTROL = "private, no-cache"


def cached_ranking(round_id: int, category: str, version: int, method: str, drafts: bool, criteria) -> list:
    """The whole category's ranking under `version`: computed once for every chair and worker that asks
    (app/ranking/cache.py), without the per-criterion means, which only the shown rows need."""
    return recent_ranking(round_id, category, version, method, drafts, criteria, 0)[0]


def recent_ranking(round_id: int, category: str, version: int, method: str, drafts: bool, criteria,
                   max_age: float) -> tuple[list, int]:
    """cached_ranking, or (max_age > 0) a ranking computed at most max_age seconds ago for an earlier
    version; returns the rows and the version they show (the poll's ETag names that version)."""
    k = ranking_cache.key(round_id, category, version, method, drafts, criteria)
    return ranking_cache.get_recent_or_compute(k, lambda: ranking.compute(
        round_id, category, method=method, include_drafts=drafts, criteria=criteria, per_criterion=False),
        max_age)


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
    # A final round never moves: only a live one may be answered from the last poll interval's ranking.
    max_age = float(current_app.config.get("RANKING_MAX_AGE_SECONDS") or 0) if live else 0.0
    rows, shown = recent_ranking(rnd.id, category, rnd.version, params.method, params.drafts, criteria, max_age)
    if shown != rnd.version:
        rnd = replace(rnd, version=shown)
        tag = etag(rnd.id, category, shown, fingerprint(request.query_string, *context), user_id)
        if partial and matches(request.headers.get("If-None-Match"), tag):
            return _not_modified(tag)
    poll_url = url_for(".category", category=category, **params.query())
    poll_tag = etag(rnd.id, category, rnd.version, fingerprint(poll_url.partition("?")[2], *context), user_id)
    table = build(rows, params, rnd.slots(category), page_size)
    table = replace(table, rows=ranking.with_criterion_means(table.rows, rnd.id, category,
                                                               include_drafts=params.drafts, criteria=criteria))
    resp = render("ranking/category.html", "ranking_region", round=rnd, category=category, params=params,
                  table=table, criteria=criteria, version=rnd.version, live=live, poll_seconds=poll_seconds,
                  poll_url=poll_url, etag_value=f'"{poll_tag}"')
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
        rows = cached_ranking(nom.round_id, nom.category, ranking.version(nom.round_id, nom.category), method,
                              drafts, criteria)
        row = next((r for r in rows if r.nomination_id == nom.id), None)
        if row is not None:
            row = ranking.with_criterion_means([row], nom.round_id, nom.category, include_drafts=drafts,
                                               criteria=criteria)[0]
    counted_mean = row.mean if row else None
    resp = render("ranking/nomination.html", "breakdown_region", nom=nom, round=rnd, row=row, totals=totals,
                  criteria=criteria, drafts=drafts, method=method,
                  chart=charts.totals_chart(totals, ranking.max_total(criteria), counted_mean),
                  full_marks=ranking.max_total(criteria))
    return _no_store_between_users(resp)
