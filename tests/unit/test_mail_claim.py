"""The delivery claim: a row moves pending → 发送中 in one conditional UPDATE and only the winner talks SMTP
(a real aiosmtpd server on localhost), so the job, a retry, `flask mail sweep` and 重新发送 cannot send one
message twice; a row left in 发送中 by a consumer that died is re-queued by the sweep."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.core.errors import Conflict
from app.extensions import db
from app.mail import delivery, operations
from app.mail.cli import requeue_stuck
from app.models import AuditEvent, OutboxMessage
from app.models._base import utcnow
from tests import mail_fixtures

smtp_server = mail_fixtures.smtp_server

WAIT = 20.0  # seconds: an upper bound for a state to be reached, never a sleep


def _row(to="lianluo@cs-kexie.example", status="pending", attempts=0, claimed_minutes_ago=None) -> int:
    """A row written straight to the table: no after-commit hand-over, so the test alone delivers it."""
    row = OutboxMessage(to_addr=to, subject="【科普日评选】推荐材料已受理", body=f"给 {to} 的正文", status=status,
                        attempts=attempts, error="",
                        claimed_at=None if claimed_minutes_ago is None
                        else utcnow() - timedelta(minutes=claimed_minutes_ago))
    db.session.add(row)
    db.session.commit()
    return row.id


def _get(message_id: int) -> OutboxMessage:
    db.session.expire_all()
    return db.session.get(OutboxMessage, message_id)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_deliveries_racing_for_one_row_send_it_once(app_factory, smtp_server, backend):
    app = app_factory(smtp_server.config())
    with app.app_context():
        mid = _row()
        db.session.remove()
    racers = 4
    barrier = threading.Barrier(racers, timeout=WAIT)
    results: list[str | None] = []
    errors: list[BaseException] = []

    def race():
        try:
            with app.app_context():
                barrier.wait()
                results.append(delivery.deliver(mid))
                db.session.remove()
        except BaseException as e:  # noqa: BLE001 — reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert not any(t.is_alive() for t in threads) and errors == []
    assert sorted(results, key=str) == [None] * (racers - 1) + ["sent"]
    # Every racer has returned, so the winner's DATA has been accepted: nothing more can arrive.
    [got] = smtp_server.wait_for(1)
    assert len(smtp_server.messages) == 1 and got.to == "lianluo@cs-kexie.example"
    with app.app_context():
        row = _get(mid)
        assert (row.status, row.attempts, row.error) == ("sent", 1, "") and row.claimed_at is not None


def test_a_row_being_sent_is_left_alone_by_a_second_delivery_the_sweep_and_resend(app_factory, smtp_server,
                                                                                 monkeypatch):
    """The first delivery is held inside its SMTP conversation while the others try: deterministic, where the
    racing test above depends on the scheduler."""
    app = app_factory(smtp_server.config())
    in_smtp, release = threading.Event(), threading.Event()
    real_send = delivery.smtp_send

    def held_send(message, config):
        in_smtp.set()
        assert release.wait(WAIT), "the test never released the first delivery"
        real_send(message, config)

    monkeypatch.setattr(delivery, "smtp_send", held_send)
    with app.app_context():
        mid = _row()
        db.session.remove()
    first: list[str | None] = []

    def deliver_first():
        with app.app_context():
            first.append(delivery.deliver(mid))
            db.session.remove()

    thread = threading.Thread(target=deliver_first)
    thread.start()
    try:
        assert in_smtp.wait(WAIT), "the first delivery never reached SMTP"
        with app.app_context():
            row = _get(mid)
            assert (row.status, row.attempts) == ("sending", 1)
            assert delivery.deliver(mid) is None  # the job's second run, or the one the sweep queued
            # Written long ago (the sweep's pending threshold has passed) but claimed just now.
            assert requeue_stuck(timedelta(0)) == []
            with pytest.raises(Conflict):
                operations.resend(mid)
            assert _get(mid).status == "sending"
            db.session.remove()
    finally:
        release.set()
        thread.join(WAIT)
    assert not thread.is_alive() and first == ["sent"]
    [got] = smtp_server.wait_for(1)
    assert len(smtp_server.messages) == 1 and got.to == "lianluo@cs-kexie.example"
    with app.app_context():
        assert (_get(mid).status, _get(mid).attempts) == ("sent", 1)


def test_the_sweep_requeues_a_row_stuck_in_sending(app_factory, smtp_server):
    app = app_factory(smtp_server.config())
    with app.app_context():
        stale = _row("stale@cs-kexie.example", status="sending", attempts=1, claimed_minutes_ago=30)
        fresh = _row("fresh@cs-kexie.example", status="sending", attempts=1, claimed_minutes_ago=1)
        db.session.remove()
    result = app.test_cli_runner().invoke(args=["mail", "sweep"])
    assert result.exit_code == 0, result.output
    assert "已重新提交 1 封" in result.output and str(stale) in result.output
    [got] = smtp_server.wait_for(1)
    assert got.to == "stale@cs-kexie.example"
    with app.app_context():
        row = _get(stale)
        assert (row.status, row.attempts) == ("sent", 2)  # the dead consumer's attempt, then the sweep's
        assert _get(fresh).status == "sending"  # 10 minutes (MAIL_SENDING_STALE_MINUTES) have not passed
        [event] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "mail.resend")).all()
        assert event.object_id == stale and "发送中" in event.reason and event.actor_id is None
        db.session.remove()
    # A smaller bound from the command line takes the younger one too.
    again = app.test_cli_runner().invoke(args=["mail", "sweep", "--sending-older-than-minutes", "0"])
    assert again.exit_code == 0 and "已重新提交 1 封" in again.output, again.output
    smtp_server.wait_for(2)
    with app.app_context():
        assert _get(fresh).status == "sent"
    assert sorted(m.to for m in smtp_server.messages) == ["fresh@cs-kexie.example", "stale@cs-kexie.example"]


def test_the_stale_bound_is_a_config_value(app_factory, smtp_server):
    app = app_factory({**smtp_server.config(), "MAIL_SENDING_STALE_MINUTES": 60})
    with app.app_context():
        mid = _row(status="sending", attempts=1, claimed_minutes_ago=30)
        assert requeue_stuck(timedelta(minutes=10)) == []
        app.config["MAIL_SENDING_STALE_MINUTES"] = 20
        assert requeue_stuck(timedelta(minutes=10)) == [mid]
        smtp_server.wait_for(1)
        assert _get(mid).status == "sent"


def test_a_late_outcome_never_overwrites_a_newer_claim(app_factory, smtp_server):
    """A send that outlived the bound: its outcome still lands while the row merely waits again in 待发送
    (then the re-queued delivery finds it sent), but not once a newer claim holds the row."""
    app = app_factory(smtp_server.config())
    with app.app_context():
        mid = _row(status="sending", attempts=1, claimed_minutes_ago=30)
        requeue_stuck(timedelta(0), sending_older_than=timedelta(minutes=10))
        smtp_server.wait_for(1)
        assert (_get(mid).status, _get(mid).attempts) == ("sent", 2)
        assert delivery._finish(mid, 1, status="failed", error="late") is False
        assert (_get(mid).status, _get(mid).error) == ("sent", "")

        other = _row("other@cs-kexie.example", status="pending", attempts=1)  # the sweep put it back
        assert delivery._finish(other, 1, status="sent", sent_at=utcnow(), error="") is True
        assert delivery.deliver(other) is None
    assert len(smtp_server.messages) == 1


def test_a_failed_attempt_is_claimed_again_by_its_retry(app_factory, smtp_server):
    """huey retries a failed delivery: the row says 发送失败 in between, and the retry's claim takes it."""
    down = app_factory(mail_fixtures.smtp_down_config())
    with down.app_context():
        mid = _row()
        with pytest.raises(delivery.DeliveryFailed):
            delivery.deliver(mid)
        row = _get(mid)
        assert (row.status, row.attempts) == ("failed", 1) and row.error
        down.config.update(smtp_server.config())  # the mail server is back for the retry
        assert delivery.deliver(mid) == "sent"
        row = _get(mid)
        assert (row.status, row.attempts, row.error) == ("sent", 2, "")
    assert len(smtp_server.wait_for(1)) == 1
