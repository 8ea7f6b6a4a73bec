"""The Alembic migrations build exactly the schema the models describe, on both engines."""

import pytest

BOTH = pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])


@BOTH
def test_upgrade_then_check_finds_no_difference(app_factory):
    app = app_factory(schema=False)
    runner = app.test_cli_runner()
    up = runner.invoke(args=["db", "upgrade"])
    assert up.exit_code == 0, up.output
    check = runner.invoke(args=["db", "check"])
    assert check.exit_code == 0, f"models and migrations differ: {check.output}"
    down = runner.invoke(args=["db", "downgrade", "base"])
    assert down.exit_code == 0, down.output


@BOTH
def test_0002_drops_the_criterion_weight_and_versions_rounds_keeping_the_data(app_factory):
    from sqlalchemy import inspect, text

    from app.extensions import db

    app = app_factory(schema=False)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["db", "upgrade", "0001"]).exit_code == 0
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO rounds (id, year, name, phase, slots_unit, slots_activity, method, quotas, "
                "assignment_mode, opinion_approve_template, opinion_decline_template, list_unordered, created_at, "
                "updated_at) VALUES (1, 2024, 'r', 'setup', 40, 40, 'trimmed', '{}', 'all', 'a', 'd', true, "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
            conn.execute(text(
                "INSERT INTO criteria (round_id, category, code, name, max_score, step, weight, guidance, position) "
                "VALUES (1, 'unit', 'content', '活动内容', 30, 0.5, 1.0, '', 0)"))
    up = runner.invoke(args=["db", "upgrade"])
    assert up.exit_code == 0, up.output
    with app.app_context():
        columns = {c["name"] for c in inspect(db.engine).get_columns("criteria")}
        assert "weight" not in columns
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT name, max_score FROM criteria")).one() == ("活动内容", 30)
            assert conn.execute(text("SELECT version FROM rounds")).scalar_one() == 1
    assert runner.invoke(args=["db", "downgrade", "base"]).exit_code == 0
