"""The chair on a phone (375×740, touch): the deliberation page never scrolls sideways — each row of the
审定 table is a card — and a decision, a crossing one with its reason, and a 审定意见 are saved with a finger."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app.extensions import db
from app.models import Decision
from app.rounds import phases as rounds
from tests.e2e.conftest import demo_copy_app, serving, sign_in

pytestmark = pytest.mark.e2e

WIDTH = 375
PHONE = {"viewport": {"width": WIDTH, "height": 740}, "is_mobile": True, "has_touch": True,
         "device_scale_factor": 2}
# The innermost elements whose right edge lies beyond the screen (a mobile browser widens the layout
# viewport to fit the content, innerWidth with it, so the fixed screen width is the measure). What
# scrolls inside its own box (.table-scroll) does not count.
OVERFLOWING = f"""() => {{
  const over = e => e.getBoundingClientRect().right > {WIDTH} + 0.5 && !e.closest('.table-scroll');
  return Array.from(document.querySelectorAll('body *'))
    .filter(e => over(e) && !Array.from(e.children).some(over))
    .slice(0, 8).map(e => e.tagName + '.' + e.className + ' ' + (e.id || '') + ' → '
                     + Math.round(e.getBoundingClientRect().right));
}}"""


@pytest.fixture
def deliberating_server(tmp_path, demo_template):
    app = demo_copy_app(tmp_path, demo_template)
    with app.app_context():
        rounds.change_phase(rounds.require_current_round().id, "deliberating")
        db.session.remove()
    with serving(app) as server:
        yield server


def _fits(page, when: str) -> None:
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= WIDTH, f"{when}: the page scrolls sideways (scrollWidth {width} > {WIDTH}): {page.evaluate(OVERFLOWING)}"
    assert page.evaluate("window.innerWidth") == WIDTH, when


def _fingertip(locator, what: str) -> None:
    box = locator.bounding_box()
    assert box and box["height"] >= 44 and box["width"] >= 44, f"{what} is too small to tap: {box}"
    assert box["x"] >= 0 and box["x"] + box["width"] <= WIDTH, f"{what} is off screen: {box}"


def _decision(server, nomination_id: int) -> dict | None:
    """The stored decision, read with the server's own app (the page said it was saved)."""
    with server.app.app_context():
        d = db.session.scalar(db.select(Decision).where(Decision.nomination_id == nomination_id))
        out = None if d is None else {"outcome": d.outcome, "reason": d.override_reason, "opinion": d.opinion}
        db.session.remove()
        return out


def test_phone_chair_reads_the_table_and_saves_decisions(deliberating_server, browser_context):
    server = deliberating_server
    page = browser_context(**PHONE).new_page()
    problems = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    sign_in(page, server, "chair")
    page.goto(server.url + "/chair/unit")
    expect(page.locator("#robustness-meta")).to_contain_text("基于排名版本", timeout=60_000)
    _fits(page, "the deliberation page")

    rows = page.locator("#deliberation-table tbody tr[id^=nom-]")
    assert rows.count() > 2
    # Every card lies within the screen, its title and its figures stacked inside it.
    for i in range(rows.count()):
        box = rows.nth(i).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= WIDTH, f"row {i} overflows: {box}"
    first, second = rows.nth(0), rows.nth(1)
    title, figures = first.locator("td.title").bounding_box(), first.locator("td.score").bounding_box()
    assert figures["y"] >= title["y"] + title["height"] - 1, "the figures sit beside the title, not below it"
    expect(first.locator("td.score")).to_be_visible()

    # The robustness detail and the panel's disclosure open without widening the page.
    first.locator("td.robust details summary").tap()
    expect(first.locator("td.robust details")).to_have_attribute("open", "")
    page.locator(".robustness-more > summary").tap()
    _fits(page, "with the robustness details open")

    # Approve the top nomination (inside the line: no reason needed).
    first_id = int(first.get_attribute("data-nomination"))
    approve = first.locator("button.approve")
    approve.scroll_into_view_if_needed()
    _fingertip(approve, "通过")
    approve.tap()
    expect(page.locator(f"#nom-{first_id} .outcome")).to_contain_text("通过")
    saved = _decision(server, first_id)
    assert saved is not None and saved["outcome"] == "approve"
    _fits(page, "after the row was saved")

    # Declining the second one crosses the line: the reason field, then 不通过, all by touch.
    second_id = int(second.get_attribute("data-nomination"))
    decline = page.locator(f"#nom-{second_id} button.decline")
    decline.scroll_into_view_if_needed()
    decline.tap()
    expect(page.locator(f"#nom-{second_id} .field-error[role=alert]")).to_contain_text("须填写理由")
    reason = page.locator(f"#nom-{second_id} input.reason")
    _fingertip(reason, "the reason field")
    reason.tap()
    reason.fill("材料中服务人数与佐证不符")
    page.locator(f"#nom-{second_id} button.decline").tap()
    expect(page.locator(f"#nom-{second_id} .badge-warn")).to_contain_text("跨线")
    saved = _decision(server, second_id)
    assert saved is not None and (saved["outcome"], saved["reason"]) == ("decline", "材料中服务人数与佐证不符")

    # The 审定意见 of the first card, edited in place.
    edit = page.locator(f"#nom-{first_id} td.opinion details summary")
    edit.scroll_into_view_if_needed()
    _fingertip(edit, "编辑")
    edit.tap()
    page.locator(f"#nom-{first_id} textarea[name=opinion]").fill("经会议审定，同意推荐。手机端测试意见。")
    save = page.locator(f"#nom-{first_id} .opinion-form button[type=submit]")
    _fingertip(save, "保存意见")
    save.tap()
    expect(page.locator(f"#nom-{first_id} .opinion-text")).to_contain_text("手机端测试意见")
    assert _decision(server, first_id)["opinion"] == "经会议审定，同意推荐。手机端测试意见。"
    _fits(page, "after the 审定意见 was saved")
    # The refused first 不通过 (422) is an expected console line; a CSP refusal or a script error is not.
    assert not [p for p in problems if "Content Security Policy" in p or "Uncaught" in p], problems


@pytest.mark.parametrize("width", [768, 1280])
def test_the_table_stays_a_table_on_a_tablet_and_a_desktop(deliberating_server, browser_context, width):
    """Above the breakpoint (760 px) the eight columns fit: still a table, still no sideways scroll."""
    page = browser_context(viewport={"width": width, "height": 900}).new_page()
    sign_in(page, deliberating_server, "chair")
    page.goto(deliberating_server.url + "/chair/unit")
    expect(page.locator("#deliberation-table thead th").first).to_be_visible()
    assert page.evaluate("getComputedStyle(document.querySelector('#deliberation-table tbody tr')).display") == "table-row"
    first = page.locator("#deliberation-table tbody tr[id^=nom-]").first
    title, score = first.locator("td.title").bounding_box(), first.locator("td.score").bounding_box()
    assert abs(title["y"] - score["y"]) < 2 and score["x"] > title["x"]  # one line, side by side
    assert page.evaluate("document.scrollingElement.scrollWidth") <= width
