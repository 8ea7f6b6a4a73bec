"""Two browsers: the chair watches the live ranking while a reviewer submits a sheet in the scoring UI."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Assignment, ReviewSheet, Round, User
from app.ranking import engine as ranking
from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.e2e


def pick_target(app):
    """A low-ranked unit nomination with few scores and an assigned reviewer who has not scored it yet."""
    with app.app_context():
        try:
            rnd = db.session.scalar(select(Round))
            rows = ranking.compute(rnd.id, "unit")
            has_sheet = select(ReviewSheet.id).where(ReviewSheet.reviewer_id == Assignment.reviewer_id,
                                                     ReviewSheet.nomination_id == Assignment.nomination_id).exists()
            for row in reversed(rows):
                if not 1 <= row.n_scored <= 3:
                    continue
                username = db.session.scalar(
                    select(User.username).join(Assignment, Assignment.reviewer_id == User.id)
                    .where(Assignment.nomination_id == row.nomination_id, ~has_sheet).order_by(User.username))
                if username:
                    return row, username
            raise AssertionError("the demo round has no suitable nomination")
        finally:
            db.session.remove()


def row_state(page, nomination_id: int) -> dict:
    return page.eval_on_selector(
        f'tr[data-nomination-id="{nomination_id}"]',
        "tr => ({rank: tr.getAttribute('data-rank'), counts: tr.children[4].textContent.trim(),"
        " cls: tr.className})",
    )


def test_chair_ranking_updates_when_a_reviewer_submits(live_server, browser_context):
    live_server.app.config["RANKING_POLL_SECONDS"] = 1
    row, reviewer = pick_target(live_server.app)

    chair = browser_context().new_page()
    problems = []
    chair.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    statuses = []
    chair.on("response", lambda r: statuses.append(r.status) if "/rankings/unit" in r.url else None)
    sign_in(chair, live_server, "chair")
    chair.wait_for_url("**/rankings/unit")
    before = row_state(chair, row.nomination_id)
    rows_before = chair.locator("#ranking-region tr[data-rank]").count()
    assert before["rank"] == str(row.rank) and before["counts"] == f"{row.n_scored}/{row.n_assigned}"
    chair.evaluate("window.__sameDocument = true")
    # Idle polls are answered 304 and leave the table in place.
    chair.wait_for_function("() => document.getElementById('ranking-checked').dataset.state === 'unchanged'",
                            timeout=10_000)
    assert 304 in statuses
    assert chair.locator("#ranking-region tr[data-rank]").count() == rows_before
    assert row_state(chair, row.nomination_id) == before

    # The reviewer, in another browser context, scores full marks and submits through the scoring UI.
    page = browser_context().new_page()
    sign_in(page, live_server, reviewer)
    page.goto(f"{live_server.url}/review/nominations/{row.nomination_id}")
    inputs = page.locator("#score-form input[type=number]")
    for i in range(inputs.count()):
        field = inputs.nth(i)
        field.fill(field.get_attribute("data-max"))
    page.fill("#sheet-comment", "材料翔实，效果突出。")
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))  # 确定提交吗？
    page.click("button[name=action][value=submit]")
    page.wait_for_selector("#score-panel >> text=评分表已提交", timeout=10_000)

    # The chair's page follows without a reload: new counts, a better rank, and the change highlighted.
    chair.wait_for_function(
        "([id, counts]) => { const tr = document.querySelector(`tr[data-nomination-id='${id}']`);"
        " return tr && tr.children[4].textContent.trim() !== counts; }",
        arg=[row.nomination_id, before["counts"]], timeout=15_000,
    )
    after = row_state(chair, row.nomination_id)
    assert after["counts"] == f"{row.n_scored + 1}/{row.n_assigned}"
    assert int(after["rank"]) < int(before["rank"])
    assert "rank-up" in after["cls"]
    assert chair.evaluate("window.__sameDocument") is True
    assert 200 in statuses[statuses.index(304):]
    assert not [p for p in problems if "Content Security Policy" in p or "htmx" in p.lower()]


def _wait_for_polls(page, polls: list, n: int, timeout_ms: int = 15_000) -> None:
    """Until `polls` holds at least n requests: a slow machine may take longer than one interval."""
    waited = 0
    while len(polls) < n and waited < timeout_ms:
        page.wait_for_timeout(100)  # lets Playwright deliver the request events meanwhile
        waited += 100


def test_polling_pauses_while_hidden_and_a_kepu_changed_event_refreshes_at_once(live_server, browser_context):
    live_server.app.config["RANKING_POLL_SECONDS"] = 1
    page = browser_context().new_page()
    sign_in(page, live_server, "chair")
    page.wait_for_url("**/rankings/unit")
    polls = []
    page.on("request", lambda r: polls.append(r.url) if re.search(r"/rankings/unit", r.url)
            and r.headers.get("hx-request") else None)
    _wait_for_polls(page, polls, 1)
    assert len(polls) >= 1
    page.evaluate("""() => { Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
                             document.dispatchEvent(new Event('visibilitychange')); }""")
    page.wait_for_timeout(500)
    hidden_from = len(polls)
    page.wait_for_timeout(3000)
    assert len(polls) == hidden_from  # nothing while the tab is hidden
    page.evaluate("() => htmx.trigger(document.body, 'kepu:changed')")  # an action of this user
    _wait_for_polls(page, polls, hidden_from + 1)
    page.wait_for_timeout(700)  # and no second one: the tab is still hidden
    assert len(polls) == hidden_from + 1
    # Back on the tab: refreshed without waiting, i.e. the request is issued by the visibilitychange
    # handler itself, not by a later tick (seen in the page, so a busy machine cannot blur the two).
    at_once = page.evaluate("""() => { let sent = false; const seen = () => { sent = true; };
                             document.body.addEventListener('htmx:beforeRequest', seen);
                             Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'visible'});
                             document.dispatchEvent(new Event('visibilitychange'));
                             document.body.removeEventListener('htmx:beforeRequest', seen);
                             return sent; }""")
    assert at_once is True
    _wait_for_polls(page, polls, hidden_from + 2)
    assert len(polls) >= hidden_from + 2


def test_final_round_does_not_poll(live_server, browser_context):
    with live_server.app.app_context():
        from app.core.database import write_transaction

        with write_transaction():
            db.session.execute(Round.__table__.update().values(phase="final"))
        db.session.remove()
    live_server.app.config["RANKING_POLL_SECONDS"] = 1
    page = browser_context().new_page()
    sign_in(page, live_server, "chair")
    page.wait_for_url("**/rankings/unit")
    polls = []
    page.on("request", lambda r: polls.append(r.url) if r.headers.get("hx-request") else None)
    page.wait_for_timeout(2500)
    assert polls == []
    assert "评选已定稿" in page.inner_text("main")
