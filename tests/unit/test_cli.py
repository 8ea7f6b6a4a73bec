"""Every CLI command through click's runner against a real SQLite file."""

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEvent, Nomination, Nominator, User


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def test_users_create_list_set_password_deactivate(app, runner):
    out = runner.invoke(args=["users", "create", "wang", "--name", "王专家", "--role", "reviewer",
                              "--password", "secret-pass-1"])
    assert out.exit_code == 0, out.output
    assert "已创建用户 wang" in out.output
    listing = runner.invoke(args=["users", "list"])
    assert "wang" in listing.output and "评审专家" in listing.output and "王专家" in listing.output

    dup = runner.invoke(args=["users", "create", "wang", "--role", "reviewer", "--password", "secret-pass-1"])
    assert dup.exit_code != 0 and "已存在" in dup.output

    short = runner.invoke(args=["users", "create", "li", "--role", "chair", "--password", "short"])
    assert short.exit_code != 0 and "至少需要 8 个字符" in short.output

    with app.app_context():
        token_before = db.session.scalar(select(User.session_token).where(User.username == "wang"))
    out = runner.invoke(args=["users", "set-password", "wang", "--password", "another-pass-2"])
    assert out.exit_code == 0, out.output
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "wang"))
        assert user.session_token != token_before
        from app.accounts.operations import authenticate

        assert authenticate("wang", "another-pass-2") is not None
        assert authenticate("wang", "secret-pass-1") is None

    out = runner.invoke(args=["users", "deactivate", "wang"])
    assert out.exit_code == 0
    with app.app_context():
        from app.accounts.operations import authenticate

        assert authenticate("wang", "another-pass-2") is None
        actions = set(db.session.scalars(select(AuditEvent.action)))
        assert {"user.create", "user.set_password", "user.deactivate"} <= actions

    missing = runner.invoke(args=["users", "set-password", "nobody", "--password", "whatever-123"])
    assert missing.exit_code != 0 and "找不到用户" in missing.output


def test_users_create_with_affiliation(app, runner):
    with app.app_context():
        db.session.add(Nominator(name="长沙市科协", kind="city", position=1))
        db.session.commit()
    out = runner.invoke(args=["users", "create", "zhao", "--role", "reviewer", "--affiliation", "长沙市科协",
                              "--password", "secret-pass-1"])
    assert out.exit_code == 0, out.output
    bad = runner.invoke(args=["users", "create", "qian", "--role", "reviewer", "--affiliation", "不存在的单位",
                              "--password", "secret-pass-1"])
    assert bad.exit_code != 0 and "找不到推荐单位" in bad.output


def test_demo_seed_prints_logins_and_refuses_twice(app, runner):
    out = runner.invoke(args=["demo", "seed", "--stage", "collecting", "--no-photos"])
    assert out.exit_code == 0, out.output
    assert "演示账号" in out.output and "expert1" in out.output and "kepu2024" in out.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Nomination)) >= 140
    again = runner.invoke(args=["demo", "seed", "--no-photos"])
    assert again.exit_code != 0 and "已存在" in again.output
    skipped = runner.invoke(args=["demo", "seed", "--if-empty", "--no-photos"])
    assert skipped.exit_code == 0 and "跳过" in skipped.output


def test_db_upgrade_builds_the_schema_from_migrations(app_factory, tmp_path):
    app = app_factory(schema=False)
    runner = app.test_cli_runner()
    out = runner.invoke(args=["db", "upgrade"])
    assert out.exit_code == 0, out.output
    with app.app_context():
        from sqlalchemy import inspect

        tables = set(inspect(db.engine).get_table_names())
        assert {"rounds", "criteria", "nominators", "nominations", "attachments", "users", "assignments",
                "recusals", "review_sheets", "scores", "decisions", "audit_events", "form_findings"} <= tables
