import pytest

from app.extensions import db
from app.models import AuditEvent, User
from tests.conftest import csrf_token_from, login
from tests.factories import make_user


@pytest.fixture
def people(app):
    with app.app_context():
        make_user("reviewer1", "reviewer")
        make_user("admin1", "admin")
    return app


def test_login_page_is_chinese_and_has_csrf(client):
    page = client.get("/login")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "登录" in html and 'lang="zh-CN"' in html
    assert csrf_token_from(html)
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def test_login_logout_and_home_by_role(people):
    client = people.test_client()
    resp = login(client, "reviewer1")
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/review/")
    page = client.get("/review/")
    assert page.status_code == 200 and "REVIEWER1" in page.get_data(as_text=True)
    token = csrf_token_from(page.get_data(as_text=True))
    out = client.post("/logout", data={"csrf_token": token})
    assert out.status_code == 303
    assert client.get("/review/").status_code == 302  # back to the login page


@pytest.mark.parametrize("username,password,status,message", [
    ("reviewer1", "wrong-password", 401, "用户名或密码不正确"),
    ("nobody", "kepu2024", 401, "用户名或密码不正确"),
    ("", "", 422, "请输入用户名和密码"),
    ("x" * 51, "kepu2024", 422, "过长"),
    ("reviewer1", "p" * 129, 422, "过长"),
])
def test_bad_logins_get_a_clear_chinese_message(people, username, password, status, message):
    client = people.test_client()
    resp = login(client, username, password)
    assert resp.status_code == status
    assert message in resp.get_data(as_text=True)


def test_post_without_csrf_token_is_rejected(people):
    client = people.test_client()
    resp = client.post("/login", data={"username": "reviewer1", "password": "kepu2024"})
    assert resp.status_code == 400
    assert "CSRF" in resp.get_data(as_text=True)
    with people.app_context():
        assert db.session.query(AuditEvent).filter_by(action="user.login").count() == 0


def test_deactivated_user_cannot_sign_in_and_loses_session(people):
    client = people.test_client()
    assert login(client, "reviewer1").status_code == 303
    with people.app_context():
        from app.accounts import operations as users

        users.set_active(users.by_username("reviewer1"), False)
    assert client.get("/review/").status_code == 302
    assert login(client, "reviewer1").status_code == 401


def test_password_change_invalidates_other_sessions(people):
    first, second = people.test_client(), people.test_client()
    login(first, "reviewer1")
    login(second, "reviewer1")
    page = first.get("/account")
    token = csrf_token_from(page.get_data(as_text=True))
    resp = first.post("/account", data={"csrf_token": token, "current": "kepu2024", "new": "new-password-1",
                                        "confirm": "new-password-1"})
    assert resp.status_code == 303
    assert second.get("/review/").status_code == 302
    assert first.get("/review/").status_code == 302
    assert login(second, "reviewer1", "new-password-1").status_code == 303
    with people.app_context():
        assert db.session.query(AuditEvent).filter_by(action="user.set_password").count() == 1


def test_password_change_with_wrong_current_password(people):
    client = people.test_client()
    login(client, "reviewer1")
    token = csrf_token_from(client.get("/account").get_data(as_text=True))
    resp = client.post("/account", data={"csrf_token": token, "current": "nope", "new": "abcdefgh1",
                                         "confirm": "abcdefgh1"})
    assert resp.status_code == 422 and "当前密码不正确" in resp.get_data(as_text=True)


def test_login_throttle_holds(app_factory, reset_limiter):
    app = app_factory({"RATELIMIT_ENABLED": True, "LOGIN_RATE_LIMIT": "5 per minute"})
    with app.app_context():
        make_user("reviewer1")
    client = app.test_client()
    statuses = [login(client, "reviewer1", "bad-password").status_code for _ in range(8)]
    assert statuses[:5] == [401] * 5
    assert statuses[5:] == [429] * 3
    # the right password is refused too until the window passes
    resp = login(client, "reviewer1")
    assert resp.status_code == 429 and "频繁" in resp.get_data(as_text=True)


def test_open_redirect_after_login_is_refused(people):
    client = people.test_client()
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    resp = client.post("/login?next=//evil.example/x", data={"username": "reviewer1", "password": "kepu2024",
                                                             "csrf_token": token})
    assert resp.status_code == 303 and "evil" not in resp.headers["Location"]


def test_roles_are_enforced(people):
    client = people.test_client()
    login(client, "reviewer1")
    assert client.get("/admin/").status_code == 403
    assert client.get("/rankings/").status_code == 403
    assert "没有权限" in client.get("/admin/").get_data(as_text=True)
    admin = people.test_client()
    login(admin, "admin1")
    assert admin.get("/admin/").status_code == 200
    assert admin.get("/review/").status_code == 403


def test_passwords_are_hashed(people):
    with people.app_context():
        user = db.session.query(User).filter_by(username="reviewer1").one()
        assert "kepu2024" not in user.password_hash and user.password_hash.startswith(("scrypt:", "pbkdf2:"))


def test_expired_session_on_htmx_request_gets_401_with_redirect(people):
    client = people.test_client()
    resp = client.get("/review/", headers={"HX-Request": "true"})
    assert resp.status_code == 401
    assert resp.headers["HX-Redirect"].startswith("/login")
    plain = client.get("/review/")
    assert plain.status_code == 302 and "/login" in plain.headers["Location"]


def test_huge_ids_in_urls_are_404_not_500(people):
    client = people.test_client()
    login(client, "admin1")
    assert client.get("/review/nominations/2147483648").status_code == 404
    assert client.get("/review/nominations/99999999999999999999999").status_code == 404
