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
