import pytest

from app import create_app


def test_production_refuses_the_development_secret(monkeypatch):
    monkeypatch.setenv("KEPU_PRODUCTION", "true")
    monkeypatch.delenv("KEPU_SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="KEPU_SECRET_KEY"):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})


def test_production_sets_secure_cookies(monkeypatch):
    monkeypatch.setenv("KEPU_PRODUCTION", "true")
    monkeypatch.setenv("KEPU_SECRET_KEY", "a-real-secret-from-the-environment")
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert app.config["SESSION_COOKIE_SECURE"] and app.config["SESSION_COOKIE_HTTPONLY"]
    assert app.config["REMEMBER_COOKIE_SECURE"]
    resp = app.test_client().get("/login")
    assert "max-age" in resp.headers["Strict-Transport-Security"]


def test_environment_overrides_and_database_url_alias(monkeypatch, tmp_path):
    monkeypatch.setenv("KEPU_DATABASE_URL", "sqlite:///" + str(tmp_path / "x.db"))
    monkeypatch.setenv("KEPU_RANKING_PAGE_SIZE", "50")
    app = create_app({})
    assert app.config["SQLALCHEMY_DATABASE_URI"].endswith("x.db")
    assert app.config["RANKING_PAGE_SIZE"] == 50


def test_create_app_does_not_touch_the_database(tmp_path):
    db_file = tmp_path / "never.sqlite3"
    create_app({"SQLALCHEMY_DATABASE_URI": "sqlite:///" + str(db_file)})
    assert not db_file.exists()
