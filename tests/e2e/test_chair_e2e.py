"""Playwright: the chair deliberates in Chromium — prefill from the cut line, move one nomination
across it (reason required), write a 审定意见, 公示, 定稿 — then downloads the list PDF and the
test reads its text."""

from __future__ import annotations

import io
import re

import pytest
from playwright.sync_api import expect
from pypdf import PdfReader

from app.extensions import db
from app.rounds import phases as rounds
from tests.e2e.conftest import demo_copy_app, serving, sign_in

pytestmark = pytest.mark.e2e


@pytest.fixture
def deliberating_server(tmp_path, demo_template):
    """The demo round moved on to `deliberating` (its submitted sheets make the ranking), served for real."""
    app = demo_copy_app(tmp_path, demo_template)
    with app.app_context():
        rounds.change_phase(rounds.require_current_round().id, "deliberating")
        db.session.remove()
    with serving(app) as server:
        yield server


def _pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF-")
    return re.sub(r"\s+", "", "".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(data)).pages))


def test_chair_deliberates_finalizes_and_downloads_the_list(deliberating_server, browser_context):
    server = deliberating_server
    page = browser_context(accept_downloads=True).new_page()
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    sign_in(page, server, "chair")
    page.goto(server.url + "/chair/unit")

    page.click("#prefill")
    page.wait_for_selector("#workspace .flash-success")
    assert "已按分数线预填" in page.inner_text("#workspace .flash-success")
    expect(page.locator("#summary [data-figure=undecided]")).to_have_text("0", timeout=30_000)

    rows = page.locator("#deliberation-table tbody tr")
    first, second = rows.nth(0), rows.nth(1)
    first_id, second_id = first.get_attribute("id"), second.get_attribute("id")
    declined_title = first.locator("td.title a").inner_text().strip()
    approved_title = second.locator("td.title a").inner_text().strip()

    # Declining the top nomination crosses the cut line: refused without a reason, shown in the row.
    first.locator("button.decline").click()
    page.wait_for_selector(f"#{first_id} .field-error")
    assert "须填写理由" in page.inner_text(f"#{first_id}")
    page.fill(f"#{first_id} input.reason", "材料中服务人数与佐证不符")
    page.click(f"#{first_id} button.decline")
    page.wait_for_selector(f"#{first_id} .badge-warn:has-text('跨线')")
    assert "不通过" in page.inner_text(f"#{first_id} .outcome")
    # The summary refreshes itself after the row changed (HX-Trigger).
    expect(page.locator("#summary [data-figure=crossing]")).to_have_text("1", timeout=30_000)

    # Edit one 审定意见 inline.
    page.click(f"#{second_id} td.opinion details summary")
    page.fill(f"#{second_id} textarea[name=opinion]", "经专家评审、会议审定，同意推荐。端到端测试专属意见。")
    page.click(f"#{second_id} .opinion-form button[type=submit]")
    page.wait_for_selector(f"#{second_id} .opinion-text:has-text('端到端测试专属意见')")

    # Then fill the rest from the template (none is empty, so nothing is overwritten).
    page.click("#fill-opinions")
    page.wait_for_selector("#workspace .flash-success:has-text('审定意见')")
    assert "端到端测试专属意见" in page.inner_text(f"#{second_id}")

    page.goto(server.url + "/chair/activity")
    page.click("#prefill")
    page.wait_for_selector("#workspace .flash-success")

    # 公示 and 定稿 each pass their pre-flight page; gaps left by the demo (if any) are accepted with a reason.
    for button, badge in (("#publicize", ".badge.phase-publicizing"), ("#finalize", ".badge.phase-final")):
        page.click(button)
        page.wait_for_selector("#preflight")
        if page.locator("#preflight input[name=accept_gaps]").count():
            page.check("#preflight input[name=accept_gaps]")
            page.fill("#preflight textarea[name=reason]", "端到端测试：已知的未完成事项")
        if page.locator("#preflight input[name=confirm]").count():
            page.check("#preflight input[name=confirm]")
        page.click("#preflight-confirm")
        page.wait_for_selector(badge)
    assert "decide-form" not in page.content()

    page.goto(server.url + "/reports/")
    page.click("button[data-job='list-pdf-unit']")
    link = page.locator("#jobs-region .download-link").first
    link.wait_for(timeout=60_000)
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename == "2024年全国科普日优秀组织单位名单.pdf"
    with open(download.path(), "rb") as fh:
        text = _pdf_text(fh.read())
    assert "2024年全国科普日优秀组织单位名单" in text and "（排名不分先后）" in text
    assert "讨论稿" not in text and "公示稿" not in text
    assert re.sub(r"\s+", "", approved_title) in text
    assert re.sub(r"\s+", "", declined_title) not in text

    # The approved nomination's 推荐表 carries the opinion the chair wrote.
    nom_id = second_id.split("-")[1]
    form = page.request.get(f"{server.url}/reports/forms/{nom_id}.pdf")
    assert form.ok
    assert "端到端测试专属意见" in _pdf_text(form.body())
    assert not [p for p in problems if "Content Security Policy" in p or "integrity" in p], problems
