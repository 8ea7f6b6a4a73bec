"""The ranking pages over HTTP: access, the ETag / 304 poll, the query budget, filters, paging, breakdown."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event, select

from app.core.database import write_transaction
from app.extensions import db
from app.models import Assignment, Nomination, Round, User
from app.ranking import engine as ranking
from app.rounds import phases as rounds
from tests.conftest import login
from tests.factories import make_user
from tests.ranking_fixtures import Scenario

HX = {"HX-Request": "true"}
NOT_QUERIES = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


class QueryCounter:
    """Counts the SQL statements a block issues (transaction control excluded)."""

    def __init__(self, engine):
        self.engine = engine
        self.statements: list[str] = []

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        if not statement.lstrip().upper().startswith(NOT_QUERIES):
            self.statements.append(statement)

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._before)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._before)


def region_of(html: str) -> str:
    start = html.index('id="ranking-region"')
    return html[start:html.index("</section>", start)]


def ranks_in(html: str) -> list[tuple[int, int]]:
    return [(int(n), int(r)) for n, r in re.findall(r'data-nomination-id="(\d+)" data-rank="(\d+)"', html)]


@pytest.fixture
def chair(demo_client):
    login(demo_client, "chair")
    return demo_client


def in_app(app, fn):
    with app.app_context():
        try:
            return fn()
        finally:
            db.session.remove()


# --- access -----------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["/rankings/", "/rankings/unit", "/rankings/activity/panel", "/rankings/nominations/1"])
def test_reviewers_get_403(demo_client, url):
    login(demo_client, "expert1")
    assert demo_client.get(url).status_code == 403
    assert demo_client.get(url, headers=HX).status_code == 403


def test_anonymous_is_sent_to_sign_in(demo_client):
    resp = demo_client.get("/rankings/unit")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_admin_sees_the_ranking_too(demo_client):
    login(demo_client, "admin")
    assert demo_client.get("/rankings/unit").status_code == 200


def test_index_leads_to_a_category(chair):
    resp = chair.get("/rankings/")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/rankings/unit")


def test_unknown_category_is_404(chair):
    assert chair.get("/rankings/prize").status_code == 404


# --- the page and its live partial --------------------------------------------------------------

def test_full_page_has_filters_table_cut_line_and_polling(chair, demo_app):
    html = chair.get("/rankings/unit").get_data(as_text=True)
    assert "<html" in html and 'name="method"' in html and 'name="drafts"' in html and 'name="kind"' in html
    region = region_of(html)
    assert 'hx-trigger="kepu:poll, kepu:changed from:body"' in region
    assert 'class="in-slots cut-line" id="cut-line"' in region
    rows = ranks_in(region)
    slots = in_app(demo_app, lambda: db.session.scalar(select(Round.slots_unit)))
    assert [r for _, r in rows] == list(range(1, len(rows) + 1))  # ordered, unique, whole category
    cut_row = re.search(r'data-rank="(\d+)"\s+class="in-slots cut-line"', region)
    assert int(cut_row.group(1)) == slots
    assert "style=" not in html and "<script>" not in html and "onclick" not in html


def test_partial_is_only_the_region_and_carries_an_etag(chair):
    resp = chair.get("/rankings/unit", headers=HX)
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" not in body and body.lstrip().startswith('<section id="ranking-region"')
    assert resp.headers["Cache-Control"] == "private, no-cache"
    assert re.fullmatch(r'"\d+-unit-\d+-[0-9a-f]{12}-\d+"', resp.headers["ETag"])
    assert "HX-Request" in resp.headers["Vary"]
    assert f'data-etag="{resp.headers["ETag"].replace(chr(34), "&#34;")}"' in body


def test_unchanged_ranking_answers_304_and_a_save_answers_200(chair, demo_app):
    first = chair.get("/rankings/unit", headers=HX)
    tag = first.headers["ETag"]
    again = chair.get("/rankings/unit", headers={**HX, "If-None-Match": tag})
    assert again.status_code == 304 and again.get_data() == b"" and again.headers["ETag"] == tag
    assert again.headers["Cache-Control"] == "private, no-cache"

    before_row = row_counts(first.get_data(as_text=True))
    nom_id = in_app(demo_app, submit_perfect_sheet)
    after = chair.get("/rankings/unit", headers={**HX, "If-None-Match": tag})
    assert after.status_code == 200 and after.headers["ETag"] != tag
    scored, assigned = row_counts(after.get_data(as_text=True))[nom_id]
    assert (scored, assigned) == (before_row[nom_id][0] + 1, before_row[nom_id][1])
    assert chair.get("/rankings/unit", headers={**HX, "If-None-Match": after.headers["ETag"]}).status_code == 304


def row_counts(html: str) -> dict[int, tuple[int, int]]:
    """nomination id -> (n scored, n assigned) as shown in the table."""
    out = {}
    for m in re.finditer(r'data-nomination-id="(\d+)".*?<td class="num[^"]*">(\d+)/(\d+)</td>', html, re.S):
        out[int(m.group(1))] = (int(m.group(2)), int(m.group(3)))
    return out


def submit_perfect_sheet(category: str = "unit") -> int:
    """A reviewer submits full marks for an assigned nomination they had not scored, via the scoring service."""
    from app.models import ReviewSheet
    from app.review import scoring

    has_sheet = select(ReviewSheet.id).where(ReviewSheet.reviewer_id == Assignment.reviewer_id,
                                             ReviewSheet.nomination_id == Assignment.nomination_id).exists()
    nom_id, reviewer_id = db.session.execute(
        select(Assignment.nomination_id, Assignment.reviewer_id)
        .join(Nomination, Nomination.id == Assignment.nomination_id)
        .where(Nomination.category == category, ~has_sheet)
        .order_by(Assignment.id).limit(1)).one()
    reviewer = db.session.get(User, reviewer_id)
    values = {c.id: str(c.max_score) for c in scoring.target(nom_id).rubric}
    scoring.save_sheet(reviewer, nom_id, values, "满分", 0, submit=True)
    return nom_id


def test_bump_changes_the_etag_only_of_its_category(chair, demo_app):
    unit = chair.get("/rankings/unit", headers=HX).headers["ETag"]
    activity = chair.get("/rankings/activity", headers=HX).headers["ETag"]

    def bump():
        rnd_id = db.session.scalar(select(Round.id))
        with write_transaction():
            rounds.bump_ranking(rnd_id, "unit")

    in_app(demo_app, bump)
    assert chair.get("/rankings/unit", headers={**HX, "If-None-Match": unit}).status_code == 200
    assert chair.get("/rankings/activity", headers={**HX, "If-None-Match": activity}).status_code == 304


def test_etag_depends_on_the_view_and_the_user(chair, demo_client):
    plain = chair.get("/rankings/unit", headers=HX).headers["ETag"]
    by_mean = chair.get("/rankings/unit?method=mean", headers=HX).headers["ETag"]
    drafts = chair.get("/rankings/unit?drafts=1", headers=HX).headers["ETag"]
    assert len({plain, by_mean, drafts}) == 3
    assert chair.get("/rankings/unit?method=mean", headers={**HX, "If-None-Match": plain}).status_code == 200
    chair.post("/logout", data={"csrf_token": _csrf(chair)})
    login(demo_client, "admin")
    assert demo_client.get("/rankings/unit", headers={**HX, "If-None-Match": plain}).status_code == 200


def _csrf(client):
    from tests.conftest import csrf_token_from

    return csrf_token_from(client.get("/rankings/unit").get_data(as_text=True))


def test_full_page_is_never_answered_304(chair):
    tag = chair.get("/rankings/unit", headers=HX).headers["ETag"]
    resp = chair.get("/rankings/unit", headers={"If-None-Match": tag})
    assert resp.status_code == 200 and "<html" in resp.get_data(as_text=True)
    assert "ETag" not in resp.headers


def test_partial_reads_one_page_in_a_few_queries(chair, demo_app):
    chair.get("/rankings/unit?method=zscore&drafts=1", headers=HX)  # warm: this ranking is up to date
    with demo_app.app_context():
        engine = db.engine
    with QueryCounter(engine) as counted:
        resp = chair.get("/rankings/unit?method=zscore&drafts=1", headers=HX)
    assert resp.status_code == 200
    # the signed-in user, the round with its ranking version, the criteria, the ranking's mark, the
    # category's count with the row at the cut line, the page's rows with their ranks, the nominator
    # filter's options, the shown rows' criterion means
    assert len(counted.statements) <= 8, counted.statements
    assert all(s.lstrip().upper().startswith(("SELECT", "WITH")) for s in counted.statements), counted.statements
    with QueryCounter(engine) as counted:
        again = chair.get("/rankings/unit?method=zscore&drafts=1", headers={**HX, "If-None-Match": resp.headers["ETag"]})
    assert again.status_code == 304
    # two statements: the signed-in user as flask-login loads it (active, by session token), then the
    # round with its ranking version — nothing is computed or rendered
    assert len(counted.statements) == 2, counted.statements


def test_idle_poll_fast_path_still_authorizes(demo_app, chair):
    """The 304 shortcut checks the session token itself: a reviewer's or a deactivated chair's session
    never gets a 304 (or anything else) from it."""
    first = chair.get("/rankings/unit", headers=HX)
    tag = first.headers["ETag"]
    reviewer = demo_app.test_client()
    login(reviewer, "expert1")
    assert reviewer.get("/rankings/unit", headers={**HX, "If-None-Match": tag}).status_code == 403
    with demo_app.app_context():
        from app.accounts import operations as users

        users.set_active(users.by_username("chair"), False)
    resp = chair.get("/rankings/unit", headers={**HX, "If-None-Match": tag})
    assert resp.status_code == 401 and resp.headers["HX-Redirect"].startswith("/login")


def test_logout_stops_the_poll_even_for_a_replayed_session_cookie(demo_app, chair):
    """The poll goes through flask-login like every page: after a logout, the old session cookie (a
    copy kept in another tab or by someone else) no longer gets a 304 or the table."""
    tag = chair.get("/rankings/unit", headers=HX).headers["ETag"]
    assert chair.get("/rankings/unit", headers={**HX, "If-None-Match": tag}).status_code == 304
    cookie = chair.get_cookie("session")
    assert cookie is not None
    chair.post("/logout", data={"csrf_token": _csrf(chair)})
    resp = chair.get("/rankings/unit", headers={**HX, "If-None-Match": tag})
    assert resp.status_code == 401 and resp.headers["HX-Redirect"].startswith("/login")
    replay = demo_app.test_client()
    replay.set_cookie("session", cookie.value)
    for headers in ({**HX, "If-None-Match": tag}, HX):
        resp = replay.get("/rankings/unit", headers=headers)
        assert resp.status_code == 401 and "ETag" not in resp.headers and not ranks_in(resp.get_data(as_text=True))
    plain = replay.get("/rankings/unit")
    assert plain.status_code == 302 and "/login" in plain.headers["Location"]


def test_final_round_renders_no_polling(chair, demo_app):
    def finalize():
        with write_transaction():
            db.session.execute(Round.__table__.update().values(phase="final"))

    in_app(demo_app, finalize)
    html = chair.get("/rankings/unit").get_data(as_text=True)
    region = region_of(html)
    assert "hx-trigger" not in region and "data-poll-seconds" not in region
    assert "评选已定稿" in html
    assert ranks_in(region)  # still shows the ranking


# --- filters, methods, paging -------------------------------------------------------------------

def test_kind_and_nominator_filters_keep_whole_category_ranks(chair, demo_app):
    everything = dict(ranks_in(region_of(chair.get("/rankings/activity").get_data(as_text=True))))
    html = chair.get("/rankings/activity?kind=society").get_data(as_text=True)
    shown = ranks_in(region_of(html))

    def kinds():
        from app.models import Nominator

        ids = [n for n, _ in shown]
        return set(db.session.scalars(select(Nominator.kind).join(Nomination, Nomination.nominator_id == Nominator.id)
                                      .where(Nomination.id.in_(ids))))

    assert shown and in_app(demo_app, kinds) == {"society"}
    assert all(everything[n] == r for n, r in shown)
    nominator_id = in_app(demo_app, lambda: db.session.scalar(
        select(Nomination.nominator_id).where(Nomination.category == "activity").limit(1)))
    only = ranks_in(region_of(chair.get(f"/rankings/activity?nominator={nominator_id}").get_data(as_text=True)))
    assert only and all(everything[n] == r for n, r in only)
    assert len(only) < len(everything)


def test_method_selector_changes_the_order(chair):
    by = {m: ranks_in(region_of(chair.get(f"/rankings/unit?method={m}").get_data(as_text=True)))
          for m in ("mean", "trimmed", "median", "zscore")}
    assert len({tuple(n for n, _ in rows) for rows in by.values()}) > 1
    assert "按「标准分（Z 分数）」排名" in chair.get("/rankings/unit?method=zscore").get_data(as_text=True)


@pytest.mark.parametrize("query", ["method=best", "page=0", "page=x", "nominator=abc", "kind=planet"])
def test_bad_parameters_are_400_in_chinese(chair, query):
    resp = chair.get(f"/rankings/unit?{query}")
    assert resp.status_code == 400
    assert re.search("参数无效|未知的", resp.get_data(as_text=True))


def test_breakdown_shows_each_reviewer_and_a_chart(chair, demo_app):
    def scored_nomination():
        from app.models import ReviewSheet

        return db.session.scalar(select(ReviewSheet.nomination_id).where(ReviewSheet.status == "submitted").limit(1))

    nom_id = in_app(demo_app, scored_nomination)
    totals = in_app(demo_app, lambda: ranking.reviewer_totals(db.session.scalar(select(Round.id)), nom_id))
    html = chair.get(f"/rankings/nominations/{nom_id}").get_data(as_text=True)
    for t in totals:
        assert t.reviewer_name in html
    submitted = [t for t in totals if t.status == "submitted"]
    assert html.count('<rect class="bar"') == len(submitted)
    assert "<svg" in html and "style=" not in html
    assert "<form" not in html.split("<main", 1)[1].split("</main>")[0]  # read-only: the chair cannot rescore


def test_breakdown_of_unknown_nomination_is_404(chair):
    assert chair.get("/rankings/nominations/999999").status_code == 404


def test_panel_shows_progress_and_the_harsh_and_lenient_experts(chair):
    html = chair.get("/rankings/unit/panel").get_data(as_text=True)
    assert "<progress" in html and "份评分表已提交" in html
    assert re.search(r'data-reviewer="expert2" class="lean-lenient"', html)
    assert re.search(r'data-reviewer="expert5" class="lean-harsh"', html)
    assert "<svg" in html and "style=" not in html


# --- paging with a small page size --------------------------------------------------------------

@pytest.fixture
def paged(app_factory):
    app = app_factory({"RANKING_PAGE_SIZE": 5})
    with app.app_context():
        s = Scenario(category="unit")
        s.round.slots_unit = 7
        db.session.commit()
        rs = s.panel(3)
        for i in range(17):
            s.scored(f"U{i:02d}", [50 + i, 52 + i, 48 + i], rs)
        make_user("chief", role="chair")
        db.session.remove()
    client = app.test_client()
    login(client, "chief")
    return client


def test_pages_of_five_with_a_jump_to_the_cut_line(paged):
    first = region_of(paged.get("/rankings/unit").get_data(as_text=True))
    assert [r for _, r in ranks_in(first)] == [1, 2, 3, 4, 5]
    assert "第 1 / 4 页" in first and "跳到名额线（第 2 页）" in first and 'id="cut-line"' not in first
    second = region_of(paged.get("/rankings/unit?page=2").get_data(as_text=True))
    assert [r for _, r in ranks_in(second)] == [6, 7, 8, 9, 10]
    assert re.search(r'data-rank="7"\s+class="in-slots cut-line" id="cut-line"', second)
    last = region_of(paged.get("/rankings/unit?page=99").get_data(as_text=True))  # clamped
    assert [r for _, r in ranks_in(last)] == [16, 17]
    assert 'hx-get="/rankings/unit?page=2"' in first


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_etag_cycle_and_query_budget_on_both_engines(paged, backend):
    app = paged.application
    first = paged.get("/rankings/unit?method=zscore", headers=HX)
    assert first.status_code == 200 and ranks_in(first.get_data(as_text=True))
    with app.app_context():
        engine = db.engine
    with QueryCounter(engine) as counted:
        again = paged.get("/rankings/unit?method=zscore", headers={**HX, "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and len(counted.statements) <= 2

    def add_sheet():
        s = Scenario.existing(db.session.scalar(select(Round)), "unit")
        nom = db.session.scalar(select(Nomination).order_by(Nomination.id.desc()).limit(1))
        s.sheet(s.reviewer("late"), nom, 100)
        with write_transaction():
            rounds.bump_ranking(s.round.id, "unit", [nom.id])
        return nom.id

    nom_id = in_app(app, add_sheet)
    with QueryCounter(engine) as counted:
        changed = paged.get("/rankings/unit?method=zscore", headers={**HX, "If-None-Match": first.headers["ETag"]})
    assert changed.status_code == 200 and changed.headers["ETag"] != first.headers["ETag"]
    # Folding the change in is a fixed set of set-based statements (app/ranking/upkeep.py), however many
    # nominations the category has; then the page is read as for any poll.
    assert len(counted.statements) <= 32, counted.statements
    assert row_counts(first.get_data(as_text=True))[nom_id] == (3, 3)
    assert row_counts(changed.get_data(as_text=True))[nom_id] == (4, 4)
