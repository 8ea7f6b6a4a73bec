import pytest

from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.e2e


def test_demo_reviewer_signs_in_and_sees_their_name(live_server, browser_context):
    page = browser_context().new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    sign_in(page, live_server, "expert1")
    page.wait_for_url("**/review/**")
    from app.demo import data

    assert data.REVIEWERS[0]["display_name"] in page.inner_text("header")
    # htmx loaded from our own static folder, passing its integrity check under the strict CSP
    assert page.evaluate("typeof window.htmx") == "object"
    assert not [e for e in errors if "Content Security Policy" in e or "integrity" in e]


def test_wrong_password_shows_chinese_message(live_server, browser_context):
    page = browser_context().new_page()
    sign_in(page, live_server, "expert1", "wrong-password")
    assert "用户名或密码不正确" in page.inner_text("main")
