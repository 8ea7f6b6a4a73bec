"""A reviewer on a phone (390×844, touch): the queue and the nomination fit the screen, the printed
form reads as label/value pairs whose text never runs into its neighbour, and the score inputs, the
total, 评审意见, 提交 and 申请回避 can all be reached with a finger; the sheet is scored and submitted."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.extensions import db
from app.models import Nomination
from tests.e2e.conftest import sign_in
from tests.e2e.test_review_e2e import _stored, _unscored

pytestmark = pytest.mark.e2e

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
         "device_scale_factor": 2}
# Unbroken tokens (a URL, a long code) are what overflows a narrow cell; CJK text wraps anywhere anyway.
LONG_ADDRESS = "湖南省长沙市岳麓区麓山南路" + "No.HN2024-KPR-0000123456789-ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LONG_URL = "https://www.example.org/kepu/2024/activity/" + "abcdefghij" * 8

# Every cell of the form table and the box its text actually occupies (a Range over its contents).
CELL_BOXES = """() => Array.from(document.querySelectorAll('.form-table tr')).map(tr =>
  Array.from(tr.children).map(cell => {
    const r = cell.getBoundingClientRect();
    const range = document.createRange();
    range.selectNodeContents(cell);
    const t = range.getBoundingClientRect();
    return {tag: cell.tagName, text: cell.textContent.trim().slice(0, 20),
            cell: [r.left, r.top, r.right, r.bottom], content: [t.left, t.top, t.right, t.bottom]};
  }))"""


def _overlap(a, b, slack: float = 0.5) -> bool:
    return a[0] < b[2] - slack and b[0] < a[2] - slack and a[1] < b[3] - slack and b[1] < a[3] - slack


def _no_horizontal_scroll(page) -> None:
    width, inner = page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
    assert width <= inner, f"page scrolls sideways: scrollWidth {width} > innerWidth {inner}"


def _assert_fingertip(locator, what: str) -> None:
    box = locator.bounding_box()
    assert box and box["height"] >= 44 and box["width"] >= 44, f"{what} is too small to tap: {box}"


def _lengthen(server, nomination_id: int) -> None:
    with server.app.app_context():
        nom = db.session.get(Nomination, nomination_id)
        nom.address = LONG_ADDRESS
        nom.summary = nom.summary[:300] + LONG_URL
        db.session.commit()
        db.session.remove()


def test_phone_reviewer_scores_and_submits(live_server, browser_context):
    page = browser_context(**PHONE).new_page()
    problems = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    (nid, rubric), _ = _unscored(live_server, "expert1")
    _lengthen(live_server, nid)

    sign_in(page, live_server, "expert1")
    page.wait_for_url("**/review/")
    _no_horizontal_scroll(page)
    link = page.locator(f'.queue-table a[href$="/review/nominations/{nid}"]')
    link.scroll_into_view_if_needed()
    _assert_fingertip(link, "the queue's title link")
    with page.expect_navigation():
        link.tap()
    assert page.url.endswith(f"/review/nominations/{nid}")
    page.wait_for_load_state("load")

    _no_horizontal_scroll(page)
    rows = page.evaluate(CELL_BOXES)
    assert rows and any(len(r) == 4 for r in rows)  # the contact rows: two label/value pairs each
    table_right = page.locator(".form-table").bounding_box()
    for cells in rows:
        for i, a in enumerate(cells):
            # Text stays inside its own cell: nothing spills over a border into a neighbour.
            assert a["content"][0] >= a["cell"][0] - 0.5 and a["content"][2] <= a["cell"][2] + 0.5, a
            assert a["cell"][2] <= table_right["x"] + table_right["width"] + 0.5, a
            for b in cells[i + 1:]:
                assert not _overlap(a["cell"], b["cell"]), (a, b)
                assert not _overlap(a["content"], b["content"]), (a, b)
        for label, value in zip(cells, cells[1:], strict=False):
            if label["tag"] == "TH" and value["tag"] == "TD":
                # A pair reads label first: beside it on the left, or above it.
                assert label["cell"][2] <= value["cell"][0] + 0.5 or label["cell"][3] <= value["cell"][1] + 0.5
    # At this width a row of two pairs is two lines, so every value has room of its own.
    pair_row = next(r for r in rows if len(r) == 4)
    assert pair_row[2]["cell"][1] >= pair_row[0]["cell"][3] - 0.5
    expect(page.locator(".form-table")).to_contain_text(LONG_ADDRESS)

    # The photos (none in this demo copy) and the video never make the page wider than the screen.
    for img in page.locator(".gallery img").all():
        assert img.bounding_box()["width"] <= 390

    # The jump bar under the form takes the reviewer to the panel.
    jump = page.locator(".panel-jump a[href='#score-panel']")
    expect(jump).to_be_in_viewport()
    _assert_fingertip(jump, "去评分")
    jump.tap()
    expect(page.locator("#score-panel h2")).to_be_in_viewport()

    values = []
    for cid, _, mx in rubric:
        field = page.locator(f"#score-{cid}")
        expect(field).to_have_attribute("inputmode", "decimal")
        field.scroll_into_view_if_needed()
        expect(field).to_be_in_viewport()
        _assert_fingertip(field, f"score field {cid}")
        field.tap()  # fails if a sticky bar lies over the field
        expect(field).to_be_focused()
        value = mx * 0.75
        values.append(value)
        page.keyboard.type(f"{value:g}")
    expect(page.locator("#sheet-total")).to_have_text(f"{sum(values):g}")
    expect(page.locator("#sheet-total")).to_be_in_viewport()
    expect(page.locator(".total-mirror")).to_have_text(f"{sum(values):g}")

    comment = page.locator("#sheet-comment")
    comment.scroll_into_view_if_needed()
    comment.tap()
    page.keyboard.type("手机上评审：活动覆盖面广，形式新颖。")
    expect(page.locator("#sheet-status")).to_contain_text("已保存", timeout=10_000)
    assert _stored(live_server, "expert1", nid)[0] == "draft"

    # 申请回避 opens with a tap and shows its form; closing it again leaves the sheet alone.
    summary = page.locator("#recusal summary")
    summary.scroll_into_view_if_needed()
    expect(summary).to_be_in_viewport()
    _assert_fingertip(summary, "申请回避")
    summary.tap()
    expect(page.locator("#recusal-reason")).to_be_visible()
    _assert_fingertip(page.locator("#recusal button[type=submit]"), "确认回避")
    summary.tap()
    expect(page.locator("#recusal-reason")).to_be_hidden()

    for name in ("save", "next", "submit"):
        _assert_fingertip(page.locator(f"button[name=action][value={name}]"), name)
    submit = page.locator("button[name=action][value=submit]")
    submit.scroll_into_view_if_needed()
    expect(submit).to_be_in_viewport()
    page.once("dialog", lambda dialog: dialog.accept())
    submit.tap()
    expect(page.locator("#score-panel .badge-ok")).to_have_text("已提交")
    status, _, total = _stored(live_server, "expert1", nid)
    assert status == "submitted" and total == pytest.approx(sum(values))
    _no_horizontal_scroll(page)
    assert not [p for p in problems if "Content Security Policy" in p or "Uncaught" in p], problems


def test_desktop_keeps_the_printed_form_and_the_side_panel(live_server, browser_context):
    page = browser_context(viewport={"width": 1280, "height": 900}).new_page()
    (nid, _), _ = _unscored(live_server, "expert2")
    sign_in(page, live_server, "expert2")
    page.wait_for_url("**/review/")
    page.goto(f"{live_server.url}/review/nominations/{nid}")
    _no_horizontal_scroll(page)
    rows = page.evaluate(CELL_BOXES)
    pair_row = next(r for r in rows if len(r) == 4)
    tops = {round(c["cell"][1]) for c in pair_row}
    assert len(tops) == 1, pair_row  # four cells on one line, as printed
    form = page.locator(".nomination-sheet").bounding_box()
    panel = page.locator("#score-panel").bounding_box()
    assert panel["x"] >= form["x"] + form["width"]  # the panel beside the form
    expect(page.locator(".panel-jump")).to_be_hidden()


def test_long_unbroken_values_wrap_in_the_phone_form(live_server, browser_context):
    """The form as a chair sees it (no panel) also fits: the reflow is the form's, not the panel's."""
    page = browser_context(**PHONE).new_page()
    with live_server.app.app_context():
        nid = db.session.scalar(select(Nomination.id).where(Nomination.category == "activity")
                                .order_by(Nomination.id))
        db.session.remove()
    _lengthen(live_server, nid)
    sign_in(page, live_server, "chair")
    page.goto(f"{live_server.url}/review/nominations/{nid}")
    expect(page.locator(".form-table")).to_contain_text(LONG_URL)
    _no_horizontal_scroll(page)
    rows = page.evaluate(CELL_BOXES)
    assert len(rows) >= 8
    for cells in rows:
        for a in cells:
            assert a["content"][2] <= a["cell"][2] + 0.5, a
        for i, a in enumerate(cells):
            for b in cells[i + 1:]:
                assert not _overlap(a["content"], b["content"]), (a, b)
