"""An admin imports a filled 附件2 .docx in a real browser: preview first, nothing saved, then confirm,
and the nomination appears with its fields."""

import pytest

from tests.e2e.conftest import sign_in
from tests.intake_fixtures import make_form_docx, make_image

pytestmark = pytest.mark.e2e

TITLE = "湘江科学之夜亲子实验秀"


def test_admin_imports_a_docx_with_preview_then_confirm(live_server, browser_context, tmp_path):
    form = tmp_path / "株洲市科协-湘江科学之夜.docx"
    form.write_bytes(make_form_docx("activity", {"title": TITLE, "people_served": "2.6万人次", "event_count": "13"},
                                    photos=[make_image("PNG", (320, 200), (30 * i, 120, 90)) for i in range(3)]))
    page = browser_context().new_page()
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    sign_in(page, live_server, "admin")
    page.goto(live_server.url + "/intake/import")
    page.set_input_files("input[name=files]", str(form))
    page.fill("input[name=received_date]", "2024-10-06")
    page.click("button:has-text('读取并预览')")
    page.wait_for_url("**/intake/import/*")

    preview = page.inner_text("main")
    assert "导入预览" in preview and "尚未保存" in preview and TITLE in preview
    assert page.locator("select[name=nominator-0]").evaluate("s => s.options[s.selectedIndex].text") == "株洲市科协"
    fields = page.locator("dl.read-fields")
    assert fields.locator("[data-field=host]").inner_text() == "株洲市科学技术协会"
    assert fields.locator("[data-field=people_served]").inner_text() == "26000"
    assert "照片 3 张" in preview

    # nothing saved yet: the list does not know the title
    listing = page.context.new_page()
    listing.goto(live_server.url + "/intake/?category=activity")
    assert TITLE not in listing.inner_text("main")

    page.click("button:has-text('确认导入')")
    page.wait_for_selector("text=导入结果")
    assert "新增 1 项" in page.inner_text("main")
    page.click(f"a:has-text('{TITLE}')")
    page.wait_for_url("**/intake/*")
    detail = page.inner_text("main")
    for text in (TITLE, "株洲市科协", "株洲市科学技术协会", "王五", "13", "26,000", "同意推荐。", "2024年9月28日",
                 "2024年10月6日", "提升全民科学素质"):
        assert text in detail, text
    assert page.locator(".photo-grid img").count() == 3
    # the thumbnails really load through the authorized file route
    page.wait_for_function("[...document.querySelectorAll('.photo-grid img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    listing.goto(live_server.url + "/intake/?category=activity")
    assert TITLE in listing.inner_text("main")
    assert not [p for p in problems if "Content Security Policy" in p]
