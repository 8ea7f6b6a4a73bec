"""Playwright: before 公示 the chair sees the pre-flight with what is unfinished (a sheet still a draft),
cannot confirm without ticking the box and giving a reason, then confirms, and the round is in 公示;
the audit log keeps the reason and the gaps' counts."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.deliberation import operations as decisions
from app.extensions import db
from app.models import AuditEvent, ReviewSheet, Round
from app.rounds import phases as rounds
from tests.e2e.conftest import demo_copy_app, serving, sign_in

pytestmark = pytest.mark.e2e


@pytest.fixture
def app_and_server(tmp_path, demo_template):
    """The demo round in 会议审定, every nomination decided, and one submitted sheet back to draft."""
    app = demo_copy_app(tmp_path, demo_template)
    with app.app_context():
        rnd = rounds.require_current_round()
        rounds.change_phase(rnd.id, "deliberating")
        for category in ("unit", "activity"):
            decisions.prefill_from_cut_line(rnd.id, category)
        sheet = db.session.scalar(select(ReviewSheet).where(ReviewSheet.status == "submitted")
                                  .order_by(ReviewSheet.id).limit(1))
        sheet.status = "draft"
        db.session.commit()
        db.session.remove()
    with serving(app) as server:
        yield app, server


def test_the_preflight_is_shown_and_confirmed_before_publicizing(app_and_server, browser_context):
    app, server = app_and_server
    page = browser_context().new_page()
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    sign_in(page, server, "chair")
    page.goto(server.url + "/chair/unit")
    page.click("#publicize")

    expect(page.locator("#preflight h1")).to_contain_text("进入「公示」前的检查")
    gap = page.locator("#preflight [data-gap=unsubmitted]")
    expect(gap).to_be_visible()
    assert int(gap.get_attribute("data-count")) >= 1
    assert "份未提交" in gap.inner_text()

    # Neither the box alone nor the reason alone lets the move through.
    page.fill("#preflight textarea[name=reason]", "个别专家草稿已当面确认，按期公示")
    page.click("#preflight-confirm")
    page.wait_for_timeout(300)
    expect(page.locator(".badge.phase-publicizing")).to_have_count(0)
    with app.app_context():
        assert rounds.require_current_round().phase == "deliberating"
        db.session.remove()

    page.check("#preflight input[name=accept_gaps]")
    page.click("#preflight-confirm")
    expect(page.locator(".badge.phase-publicizing")).to_be_visible(timeout=30_000)
    assert "已进入公示阶段" in page.inner_text("#flash-region")

    with app.app_context():
        rnd = db.session.scalar(select(Round))
        assert rnd.phase == "publicizing"
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "round.phase")
                                  .order_by(AuditEvent.id.desc()).limit(1))
        assert event.reason == "个别专家草稿已当面确认，按期公示"
        assert event.after["phase"] == "publicizing" and event.after["gaps"]["unsubmitted"] >= 1
        db.session.remove()
    assert not [p for p in problems if "Content Security Policy" in p], problems
