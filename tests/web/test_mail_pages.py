"""The outbox pages (/admin/mail): admin only, Beijing times, the body, pages, 重新发送 over real SMTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.extensions import db
from app.models import OutboxMessage
from tests import mail_fixtures
from tests.admin_fixtures import Browser, build_world, events
from tests.conftest import login

smtp_server = mail_fixtures.smtp_server


def _message(status="outbox", to="unit@cs.example", subject="【科普日评选】推荐材料已受理", body="正文第一行\n第二行",
             at=None, error="") -> int:
    row = OutboxMessage(to_addr=to, subject=subject, body=body, status=status, error=error, attempts=1 if error else 0,
                        created_at=at or datetime(2024, 9, 30, 16, 5, tzinfo=UTC))
    db.session.add(row)
    db.session.commit()
    return row.id


@pytest.fixture
def world_app(app_factory, smtp_server):
    app = app_factory(smtp_server.config())
    with app.app_context():
        build_world("collecting")
    return app


def test_the_outbox_lists_messages_in_beijing_time_and_shows_the_body(world_app):
    with world_app.app_context():
        mid = _message()
    admin = Browser(world_app, "admin1")
    html = admin.get("/admin/mail").get_data(as_text=True)
    # 16:05 UTC is 00:05 the next day in Beijing.
    assert "2024-10-01 00:05" in html or "2024年10月1日 00:05" in html
    assert "unit@cs.example" in html and "【科普日评选】推荐材料已受理" in html and "未配置邮件服务" in html
    page = admin.get(f"/admin/mail/{mid}").get_data(as_text=True)
    assert "正文第一行\n第二行" in page and "重新发送" in page
    assert admin.get("/admin/mail/999999").status_code == 404


def test_the_outbox_is_paginated_newest_first_and_filtered_by_status(world_app):
    start = datetime(2024, 9, 1, tzinfo=UTC)
    with world_app.app_context():
        for i in range(55):
            _message(subject=f"第{i:02d}封", at=start + timedelta(minutes=i), status="sent" if i % 5 == 0 else "outbox")
    admin = Browser(world_app, "admin1")
    first = admin.get("/admin/mail").get_data(as_text=True)
    assert "第54封" in first and "第05封" in first and "第04封" not in first and "第 1 / 2 页" in first
    second = admin.get("/admin/mail?page=2").get_data(as_text=True)
    assert "第04封" in second and "第00封" in second and "第54封" not in second
    sent = admin.get("/admin/mail?status=sent").get_data(as_text=True)
    assert "共 11 封" in sent and "第50封" in sent and "第54封" not in sent
    assert admin.get("/admin/mail?status=bogus").status_code == 422
    assert admin.get("/admin/mail?page=abc").status_code == 200  # a bad page number is page 1


def test_resend_of_a_failed_message_delivers_it_and_is_audited(world_app, smtp_server):
    with world_app.app_context():
        mid = _message(status="failed", error="ConnectionRefusedError: [Errno 111] Connection refused")
    admin = Browser(world_app, "admin1")
    assert "ConnectionRefusedError" in admin.get(f"/admin/mail/{mid}").get_data(as_text=True)
    resp = admin.post(f"/admin/mail/{mid}/resend")
    assert resp.status_code == 303 and resp.headers["Location"].endswith(f"/admin/mail/{mid}")
    [got] = smtp_server.wait_for(1)
    assert (got.to, got.subject) == ("unit@cs.example", "【科普日评选】推荐材料已受理")
    with world_app.app_context():
        row = db.session.get(OutboxMessage, mid)
        assert (row.status, row.attempts, row.error) == ("sent", 2, "")
        [ev] = events("mail.resend")
        assert ev.object_id == mid and ev.before["status"] == "failed"
    # Sent now: a second resend is refused, nothing else is sent.
    again = admin.post(f"/admin/mail/{mid}/resend")
    assert again.status_code == 409 and "无需重新发送" in again.get_data(as_text=True)
    assert len(smtp_server.messages) == 1


def test_resend_needs_csrf_post_and_a_mail_server(world_app, app_factory):
    with world_app.app_context():
        mid = _message(status="failed", error="x")
    admin = Browser(world_app, "admin1")
    assert admin.post(f"/admin/mail/{mid}/resend", csrf=False).status_code == 400
    assert admin.get(f"/admin/mail/{mid}/resend").status_code == 405
    assert admin.post("/admin/mail/999999/resend").status_code == 404
    with world_app.app_context():
        assert db.session.get(OutboxMessage, mid).status == "failed"
        assert events("mail.resend") == []


def test_resend_without_a_mail_server_is_refused(app_factory):
    app = app_factory()
    with app.app_context():
        build_world("collecting")
        mid = _message(status="outbox")
    admin = Browser(app, "admin1")
    resp = admin.post(f"/admin/mail/{mid}/resend")
    assert resp.status_code == 409 and "尚未配置邮件服务" in resp.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(OutboxMessage, mid).status == "outbox"


@pytest.mark.parametrize("username", ["r1", "chair1"])
def test_other_roles_get_403(world_app, username):
    with world_app.app_context():
        mid = _message(status="failed")
    other = Browser(world_app, username)
    assert other.get("/admin/mail").status_code == 403
    assert other.get(f"/admin/mail/{mid}").status_code == 403
    assert other.post(f"/admin/mail/{mid}/resend").status_code == 403


def test_anonymous_is_sent_to_sign_in(world_app):
    client = world_app.test_client()
    resp = client.get("/admin/mail")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    assert login(client, "admin1").status_code == 303
