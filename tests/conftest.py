"""Fixtures: a real SQLite file per test, a real PostgreSQL database for tests marked `postgres`."""

from __future__ import annotations

import os
import shutil

import pytest
from sqlalchemy import create_engine, text

from app import create_app
from app.extensions import db, limiter

PG_URL = os.environ.get("KEPU_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/kepu_test")
DEMO_PASSWORD = "kepu2024"


def _base_config(tmp_path, url: str) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": url,
        "UPLOAD_FOLDER": str(tmp_path / "uploads"),
        "RATELIMIT_ENABLED": False,
        "SQLITE_BUSY_TIMEOUT_MS": 30_000,
    }


def _pg_reset(url: str) -> None:
    try:
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    except Exception as e:  # noqa: BLE001 — the point is to fail loudly, never to skip
        pytest.fail(f"PostgreSQL is required for this test but unreachable at {url}: {e}")


@pytest.fixture
def backend() -> str:
    """Overridden with @pytest.mark.parametrize('backend', [...]) by tests that run on both engines."""
    return "sqlite"


@pytest.fixture
def app_factory(tmp_path, backend):
    made = []

    def make(extra: dict | None = None, *, schema: bool = True):
        if backend == "postgres":
            url = PG_URL
            _pg_reset(url)
        else:
            url = "sqlite:///" + str(tmp_path / "kepu.sqlite3")
        app = create_app({**_base_config(tmp_path, url), **(extra or {})})
        if schema:
            with app.app_context():
                db.create_all()
        made.append(app)
        return app

    yield make
    for app in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(app_factory):
    return app_factory()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory):
    """A seeded demo database (stage reviewing, no photos), built once and copied per test."""
    folder = tmp_path_factory.mktemp("demo-template")
    url = "sqlite:///" + str(folder / "kepu.sqlite3")
    app = create_app(_base_config(folder, url))
    with app.app_context():
        db.create_all()
        from app.demo import seed as demo_seed

        demo_seed.seed("reviewing", photos=False)
        db.session.remove()
        db.engine.dispose()
    return folder / "kepu.sqlite3"


@pytest.fixture
def demo_app(tmp_path, demo_template):
    target = tmp_path / "kepu.sqlite3"
    shutil.copy(demo_template, target)
    app = create_app(_base_config(tmp_path, "sqlite:///" + str(target)))
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def demo_client(demo_app):
    return demo_app.test_client()


def csrf_token_from(html: str) -> str:
    import re

    m = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(r'"X-CSRFToken": "([^"]+)"', html)
    assert m, "no CSRF token in page"
    return m.group(1)


def signed_in(app, username: str):
    """A test client of `app` signed in as `username` (demo password)."""
    client = app.test_client()
    login(client, username)
    return client


def login(client, username: str, password: str = DEMO_PASSWORD, follow: bool = False):
    page = client.get("/login")
    token = csrf_token_from(page.get_data(as_text=True))
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token},
                       follow_redirects=follow)


@pytest.fixture
def reset_limiter():
    """The limiter is a process-wide singleton; clear its counters around a throttle test."""
    yield
    if limiter._storage is not None:
        limiter.reset()
