"""`flask mail sweep`: a message whose hand-over to the job queue failed after its commit (the queue's
Redis is down) stays 待发送; the sweep queues it again once the queue is back, and it reaches the real
SMTP server (aiosmtpd). A message younger than the threshold, or already sent, is left alone."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from app import create_app, mail
from app.core.database import write_transaction
from app.extensions import db
from app.mail.cli import requeue_stuck
from app.models import AuditEvent, OutboxMessage
from app.models._base import utcnow
from tests import mail_fixtures
from tests.mail_fixtures import free_port

smtp_server = mail_fixtures.smtp_server


def _rows():
    db.session.expire_all()
    return {r.to_addr: r for r in db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))}


def _age(address: str, minutes: int) -> None:
    db.session.execute(update(OutboxMessage).where(OutboxMessage.to_addr == address)
                       .values(created_at=utcnow() - timedelta(minutes=minutes)))
    db.session.commit()


def _queue_down_app(app_factory, smtp_server):
    """Mail configured, jobs on a Redis nobody listens on: every after-commit hand-over fails."""
    return app_factory({**smtp_server.config(), "JOBS_IMMEDIATE": False,
                        "JOBS_URL": f"redis://127.0.0.1:{free_port()}/0"})


def _queue_up_app(down_app, smtp_server):
    """The same database with the queue back (immediate jobs: the delivery runs in the call)."""
    config = {k: down_app.config[k] for k in ("SQLALCHEMY_DATABASE_URI", "UPLOAD_FOLDER", "SECRET_KEY")}
    return create_app({**config, **smtp_server.config(), "TESTING": True, "RATELIMIT_ENABLED": False})


def test_a_message_stuck_pending_is_delivered_by_the_sweep(app_factory, smtp_server):
    down = _queue_down_app(app_factory, smtp_server)
    with down.app_context():
        with write_transaction():
            mail.send("stuck@cs-kexie.example", "【科普日评选】推荐材料已受理", "滞留的邮件")
            mail.send("fresh@cs-kexie.example", "【科普日评选】推荐材料已受理", "刚写入的邮件")
        rows = _rows()
        # The commit stood (the operation succeeded); only the hand-over failed.
        assert [r.status for r in rows.values()] == ["pending", "pending"]
        _age("stuck@cs-kexie.example", 30)
        db.session.remove()
    assert smtp_server.messages == []

    up = _queue_up_app(down, smtp_server)
    try:
        result = up.test_cli_runner().invoke(args=["mail", "sweep"])
        assert result.exit_code == 0, result.output
        assert "已重新提交 1 封" in result.output
        [got] = smtp_server.wait_for(1)
        assert got.to == "stuck@cs-kexie.example" and got.body.strip() == "滞留的邮件"
        with up.app_context():
            rows = _rows()
            assert rows["stuck@cs-kexie.example"].status == "sent"
            assert rows["fresh@cs-kexie.example"].status == "pending"  # 10 minutes have not passed
            [event] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "mail.resend")).all()
            assert event.object_id == rows["stuck@cs-kexie.example"].id and "flask mail sweep" in event.reason
            assert event.actor_id is None

            # A smaller threshold takes the younger one; a second sweep finds nothing left to do.
            assert requeue_stuck(timedelta(0)) == [rows["fresh@cs-kexie.example"].id]
            smtp_server.wait_for(2)
            assert _rows()["fresh@cs-kexie.example"].status == "sent"
            db.session.remove()
        again = up.test_cli_runner().invoke(args=["mail", "sweep", "--older-than-minutes", "0"])
        assert again.exit_code == 0 and "没有滞留的待发送邮件" in again.output
        assert len(smtp_server.messages) == 2
    finally:
        with up.app_context():
            db.session.remove()
            db.engine.dispose()


def test_sweep_leaves_failed_sent_and_outbox_rows_alone(app_factory, smtp_server):
    app = app_factory(smtp_server.config())
    with app.app_context():
        for status in ("sent", "failed", "outbox"):
            db.session.add(OutboxMessage(to_addr=f"{status}@example.org", subject="s", body="b", status=status,
                                         attempts=1, error="", created_at=utcnow() - timedelta(hours=2)))
        db.session.commit()
        assert requeue_stuck(timedelta(minutes=10)) == []
        assert {r.status for r in _rows().values()} == {"sent", "failed", "outbox"}
    assert smtp_server.messages == []


def test_sweep_refuses_a_negative_threshold(app):
    result = app.test_cli_runner().invoke(args=["mail", "sweep", "--older-than-minutes", "-1"])
    assert result.exit_code != 0
