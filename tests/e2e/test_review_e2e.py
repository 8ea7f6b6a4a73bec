"""A reviewer scores in Chromium: autosave without reload, values kept, errors beside the field,
Enter that does not submit, submit → read-only; and the same with JavaScript switched off."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.extensions import db
from app.models import Assignment, Criterion, Nomination, ReviewSheet, User
from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.e2e


def _unscored(server, username: str, how_many: int = 2) -> list[tuple[int, list[tuple[int, str, float]]]]:
    """Nominations in the reviewer's queue without a sheet, with their rubric (id, name, max)."""
    with server.app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        has_sheet = select(ReviewSheet.id).where(ReviewSheet.reviewer_id == user.id,
                                                 ReviewSheet.nomination_id == Nomination.id).exists()
        noms = db.session.scalars(
            select(Nomination).join(Assignment, Assignment.nomination_id == Nomination.id)
            .where(Assignment.reviewer_id == user.id, Nomination.nominator_id != (user.affiliation_id or -1),
                   Nomination.status == "active", ~has_sheet)
            .order_by(Nomination.id).limit(how_many)
        ).all()
        out = []
        for nom in noms:
            crit = db.session.scalars(select(Criterion).where(Criterion.round_id == nom.round_id,
                                                              Criterion.category == nom.category)
                                      .order_by(Criterion.position)).all()
            out.append((nom.id, [(c.id, c.name, c.max_score) for c in crit]))
        db.session.remove()
        return out


def _stored(server, username: str, nomination_id: int):
    with server.app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        sheet = db.session.scalar(select(ReviewSheet).where(ReviewSheet.reviewer_id == user.id,
                                                            ReviewSheet.nomination_id == nomination_id))
        result = None if sheet is None else (sheet.status, sheet.version, sum(s.value for s in sheet.scores))
        db.session.remove()
        return result


def test_score_autosave_reload_submit_with_javascript(live_server, browser_context):
    page = browser_context().new_page()
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    (nid, rubric), (next_id, next_rubric) = _unscored(live_server, "expert1")
    sign_in(page, live_server, "expert1")
    page.wait_for_url("**/review/")
    page.goto(f"{live_server.url}/review/nominations/{nid}")
    page.evaluate("window.__sameDocument = true")

    # A value over the maximum: the server's message appears beside the field, nothing reloads.
    first_id, _, first_max = rubric[0]
    page.fill(f"#score-{first_id}", str(int(first_max) + 5))
    expect(page.locator(f"#err-{first_id}")).to_contain_text(f"不能超过满分 {first_max:g}")
    expect(page.locator(f"#score-{first_id}")).to_have_attribute("aria-invalid", "true")
    assert _stored(live_server, "expert1", nid) is None

    values = []
    for cid, _, mx in rubric:
        value = mx * 0.8
        values.append(value)
        page.fill(f"#score-{cid}", f"{value:g}")
    page.fill("#sheet-comment", "活动组织有序，覆盖面广。")
    expect(page.locator("#sheet-status")).to_contain_text("已保存", timeout=10_000)
    expect(page.locator(f"#err-{first_id}")).to_be_empty()
    expect(page.locator("#sheet-total")).to_have_text(f"{sum(values):g}")
    assert page.evaluate("window.__sameDocument") is True  # saved without a page load
    expect(page.locator("#score-form")).not_to_have_class(re.compile("is-dirty"))
    status, version, total = _stored(live_server, "expert1", nid)
    assert status == "draft" and version >= 1 and total == pytest.approx(sum(values))

    # Enter in a field moves on; it neither submits nor leaves the page.
    page.focus(f"#score-{rubric[0][0]}")
    page.keyboard.press("Enter")
    expect(page.locator(f"#score-{rubric[1][0]}")).to_be_focused()
    assert page.evaluate("window.__sameDocument") is True
    assert _stored(live_server, "expert1", nid)[0] == "draft"

    page.reload()
    for (cid, _, _), value in zip(rubric, values, strict=True):
        expect(page.locator(f"#score-{cid}")).to_have_value(f"{value:g}")
    expect(page.locator("#sheet-comment")).to_have_value("活动组织有序，覆盖面广。")

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button[name=action][value=submit]")
    expect(page.locator("#score-panel .badge-ok")).to_have_text("已提交")
    expect(page.locator("#score-panel input[name^=score-]")).to_have_count(0)
    expect(page.locator("#score-panel .readonly-scores")).to_contain_text(f"{sum(values):g}")
    assert _stored(live_server, "expert1", nid)[0] == "submitted"
    page.reload()
    expect(page.locator("#score-form")).to_have_count(0)
    expect(page.locator("#score-panel")).to_contain_text("不能再修改")

    # 保存并评下一个 opens the next nomination without a submitted sheet.
    page.goto(f"{live_server.url}/review/nominations/{next_id}")
    page.fill(f"#score-{next_rubric[0][0]}", "10")
    with page.expect_navigation():
        page.click("button[name=action][value=next]")
    assert not page.url.endswith(f"/review/nominations/{next_id}")
    expect(page.locator("#flash-region")).to_contain_text("已为您打开下一个待评的推荐对象")
    assert not [p for p in problems if "Content Security Policy" in p or "Uncaught" in p], problems


def test_score_and_submit_without_javascript(live_server, browser_context):
    page = browser_context(java_script_enabled=False).new_page()
    (nid, rubric), _ = _unscored(live_server, "expert3")
    sign_in(page, live_server, "expert3")
    page.wait_for_url("**/review/")
    url = f"{live_server.url}/review/nominations/{nid}"
    page.goto(url)
    for cid, _, mx in rubric[:2]:
        page.fill(f"#score-{cid}", f"{mx / 2:g}")
    page.fill("#sheet-comment", "无脚本评审")
    with page.expect_navigation():
        page.click("button[name=action][value=save]")
    assert page.url == url  # 303 back to the same page
    expect(page.locator("#flash-region")).to_contain_text("已保存")
    for cid, _, mx in rubric[:2]:
        expect(page.locator(f"#score-{cid}")).to_have_value(f"{mx / 2:g}")
    assert _stored(live_server, "expert3", nid)[1] == 1

    # Submitting with values missing: the page comes back with the missing fields named.
    page.click("button[name=action][value=submit]")
    expect(page.locator("#sheet-status")).to_contain_text("还没有评分")
    expect(page.locator(f"#err-{rubric[2][0]}")).to_have_text("提交前必须评分")
    for cid, _, mx in rubric[2:]:
        page.fill(f"#score-{cid}", f"{mx / 2:g}")
    page.click("button[name=action][value=submit]")
    expect(page.locator("#flash-region")).to_contain_text("评分表已提交")
    expect(page.locator("#score-panel input[name^=score-]")).to_have_count(0)
    assert _stored(live_server, "expert3", nid)[0] == "submitted"


def test_network_failure_keeps_the_input_and_retries(live_server, browser_context):
    page = browser_context().new_page()
    (nid, rubric), _ = _unscored(live_server, "expert2")
    sign_in(page, live_server, "expert2")
    page.wait_for_url("**/review/")
    page.goto(f"{live_server.url}/review/nominations/{nid}")
    page.route("**/sheet", lambda route: route.abort())
    page.fill(f"#score-{rubric[0][0]}", "12")
    expect(page.locator("#sheet-net")).to_contain_text("保存失败：网络连接中断")
    expect(page.locator(f"#score-{rubric[0][0]}")).to_have_value("12")
    assert _stored(live_server, "expert2", nid) is None
    page.unroute("**/sheet")
    expect(page.locator("#sheet-status")).to_contain_text("已保存", timeout=15_000)  # the automatic retry
    expect(page.locator("#sheet-net")).to_be_hidden()
    assert _stored(live_server, "expert2", nid)[2] == 12
