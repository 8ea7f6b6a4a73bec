"""scripts/load_test.py in a short mode: reviewers autosave while chairs poll, on gunicorn; no 5xx,
every acknowledged save in the database and in the audit log. Plus the comparison itself, which must
notice a lost save."""

from __future__ import annotations

import pytest

from app.extensions import db
from app.models import User
from app.review import scoring

from . import load_test_module, pg_server_url, run_script, throwaway_prefix

# Count-based: at least 4 s, then on until 20 saves were acknowledged and the chairs polled twice
# (the minimums asserted below), however slow the machine.
SHORT = ["--duration", "4", "--min-saves", "20", "--min-polls", "2", "--reviewers", "10", "--chairs", "2",
         "--bad-logins", "20"]


def _assert_clean(code: int, summary: dict, output: str) -> None:
    assert code == 0, output[-3000:]
    assert summary["goal_reached"] is True and summary["errors_5xx"] == 0
    assert summary["acknowledged_saves"] >= 20, "the load did not load"
    assert summary["status_counts"]["save"] == {"200": summary["requests"]["save"]}
    assert summary["requests"]["poll"] >= 2 and set(summary["status_counts"]["poll"]) <= {"200", "304"}
    assert summary["missing_saves"] == 0 and summary["exact"] == summary["pairs_with_acks"] > 0
    assert summary["audit_missing"] == 0 and summary["audit_mismatch"] == 0
    assert summary["audit_events"] == summary["acknowledged_saves"] and summary["audit_chain_breaks"] == 0
    for kind in ("save", "poll", "open"):
        assert 0 < summary["latency_ms"][kind]["p50"] <= summary["latency_ms"][kind]["p99"]


def test_load_on_sqlite():
    code, summary, output = run_script("load_test.py", *SHORT)
    _assert_clean(code, summary, output)
    assert summary["engine"] == "sqlite" and summary["sqlite_integrity"] == "ok"
    # memory:// counts per worker: at most the limit per worker got through.
    assert summary["bad_logins"]["allowed_401"] <= 5 * summary["workers"]


@pytest.mark.postgres
def test_load_on_postgres_with_redis_throttle():
    code, summary, output = run_script("load_test.py", *SHORT, "--pg", pg_server_url(),
                                       "--pg-db", throwaway_prefix() + "load_smoke", "--workers", "2", "--redis")
    _assert_clean(code, summary, output)
    assert summary["engine"] == "postgresql" and summary["ratelimit_storage"] == "redis"
    bad = summary["bad_logins"]
    assert bad["allowed_401"] <= 5 and bad["allowed_401"] + bad["throttled_429"] == 20 and summary["throttle_held"]


def test_comparison_flags_a_lost_save_and_accepts_a_committed_unanswered_one(demo_app, tmp_path):
    lt = load_test_module()
    with demo_app.app_context():
        workload = lt._accounts_and_plan(db, 1, 1)
        reviewer = workload.reviewers[0]
        nomination_id = min(reviewer.items)
        rubric = workload.rubric[reviewer.items[nomination_id]]
        user = db.session.get(User, reviewer.id)
        start = scoring.sheet_state(reviewer.id, nomination_id).version
        log = []
        for i, points in enumerate((10, 12, 14)):
            raw = {c.id: str(min(points, c.max_score)) for c in rubric}
            sheet = scoring.save_sheet(user, nomination_id, raw, f"第{i}次", start + i)
            log.append({"t": i, "reviewer": reviewer.username, "reviewer_id": reviewer.id,
                        "nomination_id": nomination_id, "action": "save", "comment": f"第{i}次",
                        "values": {str(c.id): float(v) for c, v in zip(rubric, raw.values(), strict=True)},
                        "sent_version": start + i, "status": "200", "outcome": "ack", "version": sheet.version})
    url = demo_app.config["SQLALCHEMY_DATABASE_URI"]

    first_two = log[:2]
    honest = lt.verify(url, log, workload)
    assert (honest["missing_saves"], honest["exact"], honest["audit_missing"]) == (0, 1, 0)

    # The third save committed but its answer was lost: acceptable, and its audit event is extra.
    unanswered = first_two + [{**log[2], "status": "conn_error", "outcome": "unknown"}]
    lost_answer = lt.verify(url, unanswered, workload)
    assert lost_answer["missing_saves"] == 0 and lost_answer["later_unacknowledged_committed"] == 1
    assert lost_answer["audit_unmatched_events"] == 1 and lost_answer["audit_missing"] == 0

    # An acknowledged save the database does not hold: reported, in the sheet and in the audit log.
    phantom = log + [{**log[2], "comment": "从未写入", "values": {k: 0.0 for k in log[2]["values"]},
                      "version": log[2]["version"] + 1}]
    lost = lt.verify(url, phantom, workload)
    assert lost["missing_saves"] == 1 and lost["audit_missing"] == 1
    assert lost["missing_examples"][0]["pair"] == [reviewer.id, nomination_id]
