"""Sign-in hardening: `next` only as a same-site path, a throttle per account as well as per address,
and signed-in pages never left in the browser's cache."""

from __future__ import annotations

import pytest

from app.accounts import throttle
from app.accounts.next_url import safe_next
from tests.conftest import csrf_token_from, login
from tests.factories import make_user

HOSTILE = [
    "//evil.com", "///evil.com", "/\\evil.com", "\\\\evil.com", "/\\/evil.com", "/%5Cevil.com", "/%5cevil.com",
    "%2F%2Fevil.com", "/%2F/evil.com", "/%2Fevil.com", "/\t/evil.com", "/\n/evil.com", "/\r/evil.com",
    "/%09/evil.com", "/%0a/evil.com", "/%0D/evil.com", " //evil.com", "\x00//evil.com", "/\x00/evil.com",
    "//evil.com\x00", "\x1f/\\evil.com", "/%255Cevil.com", "/%25%35%43evil.com", "%252F%252Fevil.com",
    "http://evil", "https://evil.com/x", "HTTP://evil.com", "javascript:alert(1)", "JaVaScRiPt:alert(1)",
    "java\tscript:alert(1)", "data:text/html,x", "evil.com", "admin/users", "", None, "/" + "a" * 2001,
    "/%25252525252F%2Fevil.com",
]
SAFE = ["/", "/admin/users", "/admin/audit?action=user.login&page=2", "/review/12#score",
        "/admin/audit?actor=%E5%BC%A0", "/x?u=%2F%2Fa", "/javascript:alert(1)"]


@pytest.mark.parametrize("target", HOSTILE)
def test_hostile_next_is_refused(target):
    assert safe_next(target) is None


@pytest.mark.parametrize("target", SAFE)
def test_same_site_paths_are_kept(target):
    assert safe_next(target) == target


@pytest.fixture
def people(app):
    with app.app_context():
        make_user("reviewer1", "reviewer")
        make_user("admin1", "admin")
    return app


def _post_login(client, username, password="kepu2024", *, next_=None, addr="10.0.0.1"):
    client.environ_base["REMOTE_ADDR"] = addr
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    return client.post("/login", query_string={"next": next_} if next_ is not None else None,
                       data={"username": username, "password": password, "csrf_token": token})


@pytest.mark.parametrize("target", ["/%5Cevil.com", "/\\evil.com", "/\t/evil.com", "%2F%2Fevil.com",
                                    "http://evil", "javascript:alert(1)", "/%09/evil.com"])
def test_login_never_redirects_off_site(people, target):
    resp = _post_login(people.test_client(), "reviewer1", next_=target)
    assert resp.status_code == 303
    location = resp.headers["Location"]
    assert "evil" not in location and "javascript" not in location and "\\" not in location


def test_login_follows_a_local_next(people):
    resp = _post_login(people.test_client(), "admin1", next_="/admin/audit?action=user.login")
    assert resp.status_code == 303 and resp.headers["Location"] == "/admin/audit?action=user.login"


# ----------------------------------------------------------------------------- throttle per account


@pytest.fixture
def throttled(app_factory, reset_limiter):
    app = app_factory({"RATELIMIT_ENABLED": True, "LOGIN_RATE_LIMIT": "100 per minute",
                       "LOGIN_ACCOUNT_RATE_LIMIT": "3 per 5 minutes"})
    with app.app_context():
        make_user("reviewer1")
        make_user("reviewer2")
    return app


def test_guesses_from_many_addresses_lock_the_account_briefly(throttled):
    client = throttled.test_client()
    statuses = [_post_login(client, "reviewer1", "bad-password", addr=f"10.0.1.{i}").status_code
                for i in range(5)]
    assert statuses == [401, 401, 401, 429, 429]
    # the right password from a fresh address is refused too while the account is locked ...
    resp = _post_login(throttled.test_client(), "reviewer1", addr="10.0.2.1")
    text = resp.get_data(as_text=True)
    assert resp.status_code == 429 and "该账号登录失败次数过多" in text and "分钟后再试" in text
    # ... for at most the account window (5 minutes), and the page says how long
    assert 0 < int(resp.headers["Retry-After"]) <= 300
    assert any(f"请 {m} 分钟后再试" in text for m in range(1, 6))
    # another account is not affected, and the name's case does not dodge the lock
    assert _post_login(throttled.test_client(), "reviewer2", addr="10.0.2.2").status_code == 303
    assert _post_login(throttled.test_client(), "REVIEWER1", "x", addr="10.0.2.3").status_code == 429


def test_unknown_usernames_are_counted_like_real_ones(throttled):
    client = throttled.test_client()
    statuses = [_post_login(client, "nobody", "x", addr=f"10.0.3.{i}").status_code for i in range(4)]
    assert statuses == [401, 401, 401, 429]


def test_successful_sign_ins_do_not_use_up_the_account_allowance(throttled):
    for i in range(6):
        assert _post_login(throttled.test_client(), "reviewer1", addr=f"10.0.4.{i}").status_code == 303


def test_the_owners_known_browser_is_not_locked_out(throttled):
    owner = throttled.test_client()
    assert _post_login(owner, "reviewer1", addr="10.0.5.1").status_code == 303
    assert owner.get_cookie(throttle.DEVICE_COOKIE, path="/login") is not None
    owner.post("/logout", data={"csrf_token": csrf_token_from(owner.get("/account").get_data(as_text=True))})
    attacker = throttled.test_client()
    for i in range(4):
        _post_login(attacker, "reviewer1", "bad-password", addr=f"10.0.6.{i}")
    assert _post_login(attacker, "reviewer1", addr="10.0.6.9").status_code == 429
    # the owner's browser signs in while the attacker keeps the account locked elsewhere
    assert _post_login(owner, "reviewer1", addr="10.0.5.1").status_code == 303
    # a forged cookie does not lift the lock
    forged = throttled.test_client()
    forged.set_cookie(throttle.DEVICE_COOKIE, "WzFd.forged.signature", path="/login")
    assert _post_login(forged, "reviewer1", addr="10.0.6.10").status_code == 429


def test_address_throttle_message_says_how_long(app_factory, reset_limiter):
    app = app_factory({"RATELIMIT_ENABLED": True, "LOGIN_RATE_LIMIT": "2 per minute"})
    with app.app_context():
        make_user("reviewer1")
    client = app.test_client()
    statuses = [login(client, "reviewer1", "bad").status_code for _ in range(3)]
    assert statuses == [401, 401, 429]
    resp = login(client, "reviewer1")
    text = resp.get_data(as_text=True)
    assert resp.status_code == 429 and "登录尝试过于频繁" in text and "后再试" in text
    assert 0 < int(resp.headers["Retry-After"]) <= 60


def test_wait_text_is_chinese():
    assert throttle.wait_text(1) == "1 秒" and throttle.wait_text(59) == "59 秒"
    assert throttle.wait_text(60) == "1 分钟" and throttle.wait_text(61) == "2 分钟" and throttle.wait_text(300) == "5 分钟"


# ----------------------------------------------------------------------------- no-store


def test_signed_in_pages_are_not_stored(people):
    client = people.test_client()
    public = client.get("/login")
    assert "no-store" not in public.headers.get("Cache-Control", "")
    static = client.get("/static/css/app.css")
    assert "no-store" not in static.headers.get("Cache-Control", "")
    static.close()
    login(client, "admin1")
    for url in ("/admin/users", "/admin/audit", "/account"):
        resp = client.get(url)
        assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store", url
    fragment = client.get("/admin/audit", headers={"HX-Request": "true"})
    assert fragment.headers["Cache-Control"] == "no-store"
    csv_export = client.get("/admin/audit.csv")
    assert csv_export.headers["Cache-Control"] == "no-store"
    static = client.get("/static/css/app.css")
    assert "no-store" not in static.headers.get("Cache-Control", "")
    static.close()
    client.post("/logout", data={"csrf_token": csrf_token_from(client.get("/account").get_data(as_text=True))})
    assert "no-store" not in client.get("/login").headers.get("Cache-Control", "")
