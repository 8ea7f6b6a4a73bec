"""scripts/fault_test.py kill9 in a short mode: kill -9 the whole gunicorn process group while a save
is on its way, restart on the same database, keep saving; no acknowledged save may be missing.
(The PostgreSQL-restart scenario stays script-only: it would disturb every other test on the server.)"""

from __future__ import annotations

import pytest

from . import pg_server_url, run_script, throwaway_prefix

# States, not a clock: the kill comes once 10 saves were acknowledged (and 40 % of 6 s passed), the
# load goes on until 10 saves were acknowledged after the restart, however long the restart takes.
SHORT = ["--scenario", "kill9", "--duration", "6", "--reviewers", "10", "--chairs", "2", "--down", "0.5",
         "--acks-before", "10", "--acks-after", "10"]


def _assert_survived(code: int, result: dict, output: str) -> None:
    assert code == 0, output[-3000:]
    assert result["ok"] is True and result["goal_reached"] is True
    assert result["processes_killed"] >= result["workers"] + 1  # the master and every worker
    assert result["acks_before_kill"] >= 10 and result["acks_after_restart"] >= 10
    assert result["missing_saves"] == 0 and result["version_regressions"] == 0
    assert result["audit_missing"] == 0 and result["audit_chain_breaks"] == 0
    assert result["errors_5xx"] == 0


def test_kill9_on_sqlite_loses_no_acknowledged_save():
    code, summary, output = run_script("fault_test.py", *SHORT, "--engine", "sqlite")
    result = summary["kill9"]["sqlite"]
    _assert_survived(code, result, output)
    assert result["sqlite_integrity"] == "ok"


@pytest.mark.postgres
def test_kill9_on_postgres_loses_no_acknowledged_save():
    code, summary, output = run_script("fault_test.py", *SHORT, "--engine", "pg", "--pg", pg_server_url(),
                                       "--db-prefix", throwaway_prefix())
    _assert_survived(code, summary["kill9"]["postgresql"], output)


@pytest.mark.postgres
def test_idle_pool_recovers_when_postgres_closes_its_connections():
    # What the app's pool meets after a PostgreSQL restart, without restarting the shared server:
    # pool_pre_ping (app/config.py) replaces the dead connections before any request uses them.
    code, summary, output = run_script("fault_test.py", "--scenario", "idle-pool", "--duration", "3",
                                       "--reviewers", "5", "--chairs", "1", "--pg", pg_server_url(),
                                       "--db-prefix", throwaway_prefix())
    result = summary["idle_pool"]
    assert code == 0, output[-3000:]
    assert result["connections_closed"] >= 1
    assert result["failed"] == 0 and result["statuses"] == ["200"] * result["requests"]
    assert result["app_restarted"] is False
