"""A live server on an ephemeral port (real threaded WSGI server, real SQLite file with the demo
round) and Debian's Chromium driven by Playwright. Browsers are never downloaded here."""

from __future__ import annotations

import shutil
import threading
from contextlib import contextmanager

import pytest
from werkzeug.serving import make_server

from app import create_app
from app.extensions import db

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class LiveServer:
    def __init__(self, app):
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.thread.join(5)


def demo_copy_app(tmp_path, demo_template):
    """An app on its own copy of the demo round's SQLite file."""
    target = tmp_path / "kepu.sqlite3"
    shutil.copy(demo_template, target)
    return create_app({
        "TESTING": True, "SECRET_KEY": "e2e-secret", "SQLALCHEMY_DATABASE_URI": "sqlite:///" + str(target),
        "UPLOAD_FOLDER": str(tmp_path / "uploads"), "RATELIMIT_ENABLED": False,
    })


@contextmanager
def serving(app):
    """Serve `app` for real; afterwards close its connections so the SQLite file can go."""
    with LiveServer(app) as server:
        yield server
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def live_server(tmp_path, demo_template):
    """The demo round (stage reviewing) served for real; tests may change it freely."""
    with serving(demo_copy_app(tmp_path, demo_template)) as server:
        yield server


@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_context(chromium):
    contexts = []

    def make(**kwargs):
        ctx = chromium.new_context(locale="zh-CN", **kwargs)
        contexts.append(ctx)
        return ctx

    yield make
    for ctx in contexts:
        ctx.close()


def sign_in(page, server, username: str, password: str = "kepu2024") -> None:
    page.goto(server.url + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
