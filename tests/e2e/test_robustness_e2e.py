"""Playwright: the chair filters the deliberation page to 临界 and opens one nomination to see its rank
interval and the reviewer whose absence would move it across the line (issue 14)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.extensions import db
from app.models import User
from app.rounds import phases as rounds
from app.stats import report
from tests.e2e.conftest import demo_copy_app, serving, sign_in

pytestmark = pytest.mark.e2e


@pytest.fixture
def deliberating(tmp_path, demo_template):
    app = demo_copy_app(tmp_path, demo_template)
    with app.app_context():
        rnd = rounds.require_current_round()
        rounds.change_phase(rnd.id, "deliberating")
        data = report.build(rnd.id, "unit")
        names = {u.display_name for u in db.session.scalars(select(User).where(User.role == "reviewer"))}
        db.session.remove()
    edge_with_mover = [p for p in data["places"].values() if p["label"] == "edge" and p["movers"]]
    assert edge_with_mover, "the demo round must have a 临界 nomination that one reviewer moves"
    with serving(app) as server:
        yield server, data, names


def test_chair_filters_to_edge_and_sees_who_moves_one(deliberating, browser_context):
    server, data, names = deliberating
    page = browser_context().new_page()
    problems = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    sign_in(page, server, "chair")
    page.goto(server.url + "/chair/unit")
    expect(page.locator("#robustness-meta")).to_contain_text("基于排名版本")
    expect(page.locator("#robustness-thresholds")).to_contain_text("≥ 90%")

    page.select_option("form.robust-filter select[name=robust]", "edge")
    page.click("form.robust-filter button[type=submit]")
    page.wait_for_url("**/chair/unit?robust=edge")
    rows = page.locator("#deliberation-table tbody tr[id^=nom-]")
    expect(rows).to_have_count(data["counts"]["edge"])
    assert set(rows.locator("td.robust .badge").all_inner_texts()) == {"临界"}

    row = rows.filter(has_text="去掉以下专家的评分后会跨线").first
    nomination_id = row.get_attribute("data-nomination")
    place = data["places"][nomination_id]
    row.locator("td.robust details summary").click()
    detail = row.locator("td.robust details")
    expect(detail).to_have_attribute("open", "")
    expect(detail).to_contain_text(f"排名区间（5%–95%）：第 {place['rank_lo']}–{place['rank_hi']} 名")
    mover = place["movers"][0]
    assert mover["reviewer_name"] in names
    expect(detail.locator("ul.movers")).to_contain_text(mover["reviewer_name"])
    expect(detail.locator("ul.movers")).to_contain_text("落到线外" if mover["to"] == "out" else "进入线内")
    assert not [p for p in problems if "Content Security Policy" in p or "Uncaught" in p], problems
