"""Security headers on every kind of response (page, fragment, static file, 4xx, 5xx, throttled), cookie
flags and HSTS in production, and which client address the throttle sees behind a reverse proxy."""

from __future__ import annotations

import pytest

from tests.conftest import csrf_token_from, login
from tests.factories import make_user

PROD_SECRET = "prod-secret-for-tests-0123456789abcdef"
REFERRER_POLICIES = {"no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"}


def _boom_app(app_factory, extra=None):
    app = app_factory({"PROPAGATE_EXCEPTIONS": False, **(extra or {})})

    @app.route("/__boom")
    def boom():  # an unhandled bug in some view
        raise RuntimeError("boom")

    return app


def _responses(app, base_url="http://localhost"):
    client = app.test_client()
    client.environ_base["wsgi.url_scheme"] = base_url.split(":")[0]
    got = {
        "login page": client.get("/login", base_url=base_url),
        "404 page": client.get("/no-such-page", base_url=base_url),
        "404 fragment (htmx)": client.get("/no-such-page", headers={"HX-Request": "true"}, base_url=base_url),
        "static css": client.get("/static/css/app.css", base_url=base_url),
        "static js": client.get("/static/js/app.js", base_url=base_url),
        "400 missing CSRF": client.post("/login", data={"username": "a", "password": "b"}, base_url=base_url),
        "405": client.put("/login", base_url=base_url),
        "500": client.get("/__boom", base_url=base_url),
        "redirect": client.get("/", base_url=base_url),
    }
    for resp in got.values():
        resp.close()
    return got


def _assert_headers(name, resp):
    h = resp.headers
    csp = h.get("Content-Security-Policy", "")
    assert csp, f"{name}: no CSP"
    directives = {d.split()[0]: d.split()[1:] for d in (p.strip() for p in csp.split(";")) if d}
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, f"{name}: {csp}"
    assert directives.get("frame-ancestors") == ["'none'"], f"{name}: {csp}"
    assert directives.get("script-src") == ["'self'"] and directives.get("object-src") == ["'none'"], name
    assert "default-src" in directives and "*" not in csp, name
    assert h.get("X-Content-Type-Options") == "nosniff", name
    assert h.get("Referrer-Policy") in REFERRER_POLICIES, name
    assert h.get("X-Frame-Options") == "DENY", name


def test_every_kind_of_response_carries_the_security_headers(app_factory):
    got = _responses(_boom_app(app_factory))
    expected = {"login page": 200, "404 page": 404, "404 fragment (htmx)": 404, "static css": 200, "static js": 200,
                "400 missing CSRF": 400, "405": 405, "500": 500, "redirect": 302}
    assert {k: r.status_code for k, r in got.items()} == expected
    assert "系统内部错误" in got["500"].get_data(as_text=True)  # the Chinese error page, not a traceback
    assert "boom" not in got["500"].get_data(as_text=True)
    for name, resp in got.items():
        _assert_headers(name, resp)
        # development over plain http: no HSTS (it would pin a laptop's localhost to https)
        assert "Strict-Transport-Security" not in resp.headers, name


def test_throttled_login_carries_the_headers_too(app_factory, reset_limiter):
    app = app_factory({"RATELIMIT_ENABLED": True, "LOGIN_RATE_LIMIT": "1 per minute"})
    with app.app_context():
        make_user("reviewer1")
    client = app.test_client()
    assert login(client, "reviewer1", "bad-password").status_code == 401
    throttled = login(client, "reviewer1", "bad-password")
    assert throttled.status_code == 429
    _assert_headers("429", throttled)


@pytest.fixture
def prod_app(app_factory, monkeypatch):
    monkeypatch.setenv("KEPU_PRODUCTION", "true")
    monkeypatch.setenv("KEPU_SECRET_KEY", PROD_SECRET)
    # The fixture's test config would override the environment's secret; drop it to read the env.
    app = _boom_app(app_factory, {"SECRET_KEY": PROD_SECRET})
    assert app.config["PRODUCTION"] is True
    return app


def test_production_sends_hsts_on_every_response(prod_app):
    for name, resp in _responses(prod_app, "https://localhost").items():
        _assert_headers(name, resp)
        hsts = resp.headers.get("Strict-Transport-Security", "")
        assert "max-age=" in hsts and int(hsts.split("max-age=")[1].split(";")[0]) >= 15552000, name


def _cookie_attrs(header: str) -> tuple[str, set[str], dict[str, str]]:
    parts = [p.strip() for p in header.split(";")]
    name = parts[0].split("=", 1)[0]
    flags = {p.lower() for p in parts[1:] if "=" not in p}
    attrs = {p.split("=", 1)[0].lower(): p.split("=", 1)[1] for p in parts[1:] if "=" in p}
    return name, flags, attrs


def test_production_cookies_are_secure_httponly_samesite(prod_app):
    with prod_app.app_context():
        make_user("reviewer1")
    client = prod_app.test_client()
    base = "https://localhost"
    page = client.get("/login", base_url=base)
    cookies = page.headers.getlist("Set-Cookie")
    assert cookies, "the login page sets the session cookie that carries the CSRF token"
    token = csrf_token_from(page.get_data(as_text=True))
    signed_in = client.post("/login", base_url=base, headers={"Referer": f"{base}/login"},
                            data={"username": "reviewer1", "password": "kepu2024", "csrf_token": token})
    assert signed_in.status_code == 303
    cookies += signed_in.headers.getlist("Set-Cookie")
    assert signed_in.headers.getlist("Set-Cookie"), "signing in re-issues the session cookie"
    for header in cookies:
        name, flags, attrs = _cookie_attrs(header)
        assert "secure" in flags, header
        assert "httponly" in flags, header
        assert attrs.get("samesite", "").lower() == "lax", header
    assert client.get("/review/", base_url=base).status_code == 200  # and the session works


def test_production_rejects_a_cross_site_post_even_with_a_token(prod_app):
    with prod_app.app_context():
        make_user("reviewer1")
    client = prod_app.test_client()
    base = "https://localhost"
    token = csrf_token_from(client.get("/login", base_url=base).get_data(as_text=True))
    resp = client.post("/login", base_url=base, headers={"Referer": "https://evil.example/"},
                       data={"username": "reviewer1", "password": "kepu2024", "csrf_token": token})
    assert resp.status_code == 400


def test_development_cookies_are_httponly_and_lax_but_not_secure(app_factory):
    page = app_factory().test_client().get("/login")
    header = page.headers.getlist("Set-Cookie")[0]
    _, flags, attrs = _cookie_attrs(header)
    assert "httponly" in flags and attrs.get("samesite", "").lower() == "lax" and "secure" not in flags


# ---------------------------------------------------------------------------------- behind a reverse proxy

def _bad_logins(client, n, forwarded_for=None):
    statuses = []
    for i in range(n):
        headers = {"X-Forwarded-For": forwarded_for(i)} if forwarded_for else {}
        page = client.get("/login", headers=headers)
        statuses.append(client.post("/login", headers=headers, data={
            "username": "reviewer1", "password": "bad-password",
            "csrf_token": csrf_token_from(page.get_data(as_text=True))}).status_code)
    return statuses


def test_without_a_trusted_proxy_a_forged_forwarded_for_does_not_dodge_the_throttle(app_factory, reset_limiter):
    app = app_factory({"RATELIMIT_ENABLED": True, "LOGIN_RATE_LIMIT": "3 per minute"})
    with app.app_context():
        make_user("reviewer1")
    statuses = _bad_logins(app.test_client(), 6, forwarded_for=lambda i: f"203.0.113.{i}")
    assert statuses == [401] * 3 + [429] * 3


def test_behind_one_proxy_each_client_has_its_own_allowance_and_https_is_seen(app_factory, reset_limiter):
    app = app_factory({"RATELIMIT_ENABLED": True, "LOGIN_RATE_LIMIT": "3 per minute", "PROXY_COUNT": 1})
    with app.app_context():
        make_user("reviewer1")

    @app.route("/__scheme")
    def scheme():
        from flask import request

        return request.scheme

    client = app.test_client()
    # what nginx sends: $proxy_add_x_forwarded_for appends the real peer after whatever the client forged
    office_a = _bad_logins(client, 4, forwarded_for=lambda i: f"1.2.3.{i}, 198.51.100.7")
    office_b = _bad_logins(client, 2, forwarded_for=lambda i: "198.51.100.8")
    assert office_a == [401] * 3 + [429]
    assert office_b == [401, 401]  # another office is not locked out by the first one's mistakes
    assert client.get("/__scheme", headers={"X-Forwarded-Proto": "https"}).get_data(as_text=True) == "https"


def test_database_failure_still_answers_a_chinese_error_page(app):
    """When the database fails under a signed-in user, even the error page cannot load the user:
    the answer is still a calm Chinese 500 (not the server's English one), with the security headers."""
    from sqlalchemy import text

    from app.extensions import db
    from tests.conftest import login
    from tests.factories import make_user

    with app.app_context():
        make_user("reviewer1")
    client = app.test_client()
    assert login(client, "reviewer1").status_code == 303
    with app.app_context():
        db.session.execute(text("ALTER TABLE users RENAME TO users_gone"))
        db.session.commit()
    for headers in ({}, {"HX-Request": "true"}):
        resp = client.get("/review/", headers=headers)
        body = resp.get_data(as_text=True)
        assert resp.status_code == 500
        assert "系统内部错误" in body and "Traceback" not in body
        assert "unsafe-inline" not in resp.headers["Content-Security-Policy"]
