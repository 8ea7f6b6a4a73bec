"""flask backup / flask restore on a real PostgreSQL database through pg_dump / pg_restore."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from app.extensions import db
from app.models import AuditEvent, User
from tests.conftest import PG_URL

pytestmark = pytest.mark.postgres


@pytest.fixture
def backend():
    return "postgres"


@pytest.fixture
def pg_app(app_factory, tmp_path):
    return app_factory({"BACKUP_FOLDER": str(tmp_path / "backups")})


def _usernames(app) -> set[str]:
    with app.app_context():
        db.session.remove()
        return set(db.session.scalars(select(User.username)))


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def test_pg_backup_and_restore_round_trip(pg_app, tmp_path):
    runner = pg_app.test_cli_runner()
    assert runner.invoke(args=["users", "create", "before1", "--role", "admin", "--password", "secret-pass-1"]).exit_code == 0
    out = tmp_path / "kepu.dump"
    done = runner.invoke(args=["backup", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert out.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
    with pg_app.app_context():
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "ops.backup"))
        assert event.after["engine"] == "postgresql" and event.after["file"] == str(out.resolve())

    assert runner.invoke(args=["users", "create", "after1", "--role", "admin", "--password", "secret-pass-1"]).exit_code == 0
    assert _usernames(pg_app) == {"before1", "after1"}

    # A running server: another session on the database makes the restore refuse and change nothing.
    with psycopg.connect(_libpq(PG_URL)) as server:
        server.execute("SELECT 1")
        refused = runner.invoke(args=["restore", str(out), "--yes"])
    assert refused.exit_code != 0 and "其他连接" in refused.output
    assert _usernames(pg_app) == {"before1", "after1"}

    restored = runner.invoke(args=["restore", str(out), "--yes"])
    assert restored.exit_code == 0, restored.output
    assert _usernames(pg_app) == {"before1"}
    kept = list((tmp_path / "backups").glob("pre-restore-*.dump"))
    assert len(kept) == 1 and "原数据库已保留为" in restored.output
    with pg_app.app_context():
        events = db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
        # The restored data has the backup's history, then the restore itself; the backup's own audit
        # row was written after the dump and so is not in it.
        assert events == ["user.create", "ops.restore"]
        # sequences came back too: a new row gets a fresh id
        from app.accounts import operations as users

        users.create_user("after2", "", "admin", "secret-pass-1")
        assert _usernames(pg_app) == {"before1", "after2"}


def test_pg_restore_rejects_a_file_that_is_not_a_dump(pg_app, tmp_path):
    bogus = tmp_path / "bogus.dump"
    bogus.write_text("not a dump")
    out = pg_app.test_cli_runner().invoke(args=["restore", str(bogus), "--yes"])
    assert out.exit_code != 0 and "无法读取" in out.output


def test_pg_without_pg_dump_prints_the_commands_to_run(pg_app, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    out = pg_app.test_cli_runner().invoke(args=["backup", "--out", str(tmp_path / "x.dump")])
    assert out.exit_code == 2
    assert "找不到 pg_dump" in out.output and "pg_dump --format=custom" in out.output
    assert "pg_restore --clean --if-exists" in out.output
    assert "secret" not in out.output and not (tmp_path / "x.dump").exists()
