"""app/mail: messages are rows written in the caller's transaction and delivered over real SMTP (aiosmtpd on
localhost) only after it commits."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app import mail
from app.core.database import write_transaction
from app.extensions import db
from app.jobs import get_huey
from app.mail.delivery import deliver
from app.models import OutboxMessage, User
from tests import mail_fixtures
from tests.mail_fixtures import smtp_down_config

smtp_server = mail_fixtures.smtp_server
mail_app = mail_fixtures.mail_app

SUBJECT = "【科普日评选】您的推荐材料已退回修改"
BODY = "长沙市科协：\n\n您提交的“科普进社区”活动已退回修改，原因：照片不足 3 张。\n\n湖南省科协"


def rows() -> list[OutboxMessage]:
    return list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def _user(username, role="admin", email="", active=True):
    db.session.add(User(username=username, display_name=username, role=role, password_hash="x", email=email,
                        active=active))
    db.session.commit()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_message_is_sent_over_smtp_after_commit(app_factory, smtp_server, backend):
    app = app_factory(smtp_server.config())
    with app.app_context():
        with write_transaction():
            message = mail.send("  lianluo@cs-kexie.example ", SUBJECT, BODY, round_id=None)
            assert message.status == "pending"
            # Inside the transaction nothing has left: the operation may still fail.
            assert smtp_server.messages == []
        [got] = smtp_server.wait_for(1)
        assert got.subject == SUBJECT
        assert got.to == "lianluo@cs-kexie.example" and got.envelope_to == ["lianluo@cs-kexie.example"]
        assert got.body.strip() == BODY
        assert str(got.message["From"]) == "kepu@test.example"
        assert got.message.get_content_charset() == "utf-8"
        db.session.expire_all()
        [row] = rows()
        assert (row.status, row.attempts, row.error) == ("sent", 1, "")
        assert row.sent_at is not None


def test_without_a_mail_server_the_message_stays_in_the_outbox(app_factory, smtp_server):
    app = app_factory()  # KEPU_MAIL_SERVER unset: the embedded default
    with app.app_context():
        with write_transaction():
            mail.send("a@example.cn", SUBJECT, BODY)
        [row] = rows()
        assert (row.status, row.to_addr, row.subject, row.body, row.attempts) == ("outbox", "a@example.cn", SUBJECT, BODY, 0)
    assert smtp_server.messages == []


def test_a_rolled_back_operation_sends_nothing(mail_app, smtp_server):
    with mail_app.app_context():
        with pytest.raises(RuntimeError), write_transaction():
            mail.send("a@example.cn", SUBJECT, BODY)
            raise RuntimeError("the operation fails after writing its mail")
        assert rows() == []
        # The next operation's commit must not deliver the discarded message either.
        with write_transaction():
            mail.send("b@example.cn", "第二封", "正文")
        [got] = smtp_server.wait_for(1)
        assert got.to == "b@example.cn"
        assert [r.to_addr for r in rows()] == ["b@example.cn"]
    assert len(smtp_server.messages) == 1


def test_a_nested_operation_rolled_back_by_its_caller_sends_nothing(mail_app, smtp_server):
    def inner():
        with write_transaction():
            mail.send("a@example.cn", SUBJECT, BODY)

    with mail_app.app_context():
        with pytest.raises(ValueError), write_transaction():
            inner()  # its write_transaction only flushes: the outer one decides
            raise ValueError
        assert rows() == []
    assert smtp_server.messages == []


def test_smtp_down_leaves_a_failed_row_with_the_error(app_factory):
    app = app_factory(smtp_down_config())
    with app.app_context():
        with write_transaction():
            mail.send("a@example.cn", SUBJECT, BODY)
        db.session.expire_all()
        [row] = rows()
        assert row.status == "failed" and row.attempts == 1 and row.sent_at is None
        assert "Connection refused" in row.error or "ConnectionRefused" in row.error


@pytest.mark.parametrize("address", ["", "   ", "not-an-address", "a@b", "两个@x.cn, b@y.cn", "a@b.cn\r\nBcc: c@d.cn",
                                     "张三 <a@b.cn>", None])
def test_empty_or_invalid_addresses_are_skipped(mail_app, smtp_server, address):
    with mail_app.app_context():
        with write_transaction():
            assert mail.send(address, SUBJECT, BODY) is None
        assert rows() == []
    assert smtp_server.messages == []


def test_a_subject_is_one_line(mail_app, smtp_server):
    with mail_app.app_context():
        mail.send("a@example.cn", "第一行\r\nBcc: x@y.cn", BODY)  # outside a transaction: send commits itself
        [got] = smtp_server.wait_for(1)
    assert got.subject == "第一行 Bcc: x@y.cn" and got.message["Bcc"] is None


def test_notify_admins_writes_to_every_active_admin_with_an_address(app_factory, smtp_server):
    app = app_factory({**smtp_server.config(), "MAIL_ADMIN_TO": "office@kexie.example, ADMIN1@kexie.example"})
    with app.app_context():
        _user("admin1", email="admin1@kexie.example")
        _user("admin2", email="")  # no address: nothing for them
        _user("admin3", email="admin3@kexie.example", active=False)
        _user("chair", role="chair", email="chair@kexie.example")
        _user("unit", role="nominator", email="unit@cs.example")
        with write_transaction():
            out = mail.notify_admins("【科普日评选】新提交的推荐材料", "长沙市科协 提交了 1 项。")
        assert sorted(m.to_addr for m in out) == ["admin1@kexie.example", "office@kexie.example"]
        got = smtp_server.wait_for(2)
    assert sorted(g.to for g in got) == ["admin1@kexie.example", "office@kexie.example"]
    assert all(g.subject == "【科普日评选】新提交的推荐材料" for g in got)


def test_with_a_job_queue_delivery_is_queued_only_after_commit(app_factory, smtp_server, tmp_path):
    app = app_factory({**smtp_server.config(), "JOBS_IMMEDIATE": False, "JOBS_FOLDER": str(tmp_path / "jobs")})
    with app.app_context():
        huey = get_huey(app)
        with write_transaction():
            mail.send("a@example.cn", SUBJECT, BODY)
            assert huey.pending_count() == 0
        assert huey.pending_count() == 1
        with pytest.raises(RuntimeError), write_transaction():
            mail.send("b@example.cn", SUBJECT, BODY)
            raise RuntimeError
        assert huey.pending_count() == 1
        # What the consumer (`flask jobs worker`) does with it:
        huey.execute(huey.dequeue())
        [got] = smtp_server.wait_for(1)
        assert got.to == "a@example.cn"
        db.session.expire_all()
        assert [r.status for r in rows()] == ["sent"]


def test_delivery_skips_a_sent_or_missing_message(mail_app, smtp_server):
    with mail_app.app_context():
        message = mail.send("a@example.cn", SUBJECT, BODY)
        smtp_server.wait_for(1)
        assert deliver(message.id) is None
        assert deliver(999_999) is None
    assert len(smtp_server.messages) == 1
