"""/admin/mail shows a message claimed by a delivery as 发送中, filterable, and offers no 重新发送 for it."""

from __future__ import annotations

from datetime import UTC, datetime

from app.extensions import db
from app.models import OutboxMessage
from tests import mail_fixtures
from tests.admin_fixtures import Browser, build_world

smtp_server = mail_fixtures.smtp_server


def test_a_message_being_sent_shows_as_sending(app_factory, smtp_server):
    app = app_factory(smtp_server.config())
    with app.app_context():
        build_world("collecting")
        row = OutboxMessage(to_addr="unit@cs.example", subject="【科普日评选】推荐材料已受理", body="正文",
                            status="sending", attempts=1, error="",
                            created_at=datetime(2024, 9, 30, 16, 0, tzinfo=UTC),
                            claimed_at=datetime(2024, 9, 30, 16, 5, tzinfo=UTC))
        db.session.add(row)
        db.session.commit()
        mid = row.id
    admin = Browser(app, "admin1")
    html = admin.get("/admin/mail").get_data(as_text=True)
    assert "badge-warn" in html and ">发送中<" in html
    assert "发送中（1）" in html  # the status filter counts it
    only = admin.get("/admin/mail?status=sending").get_data(as_text=True)
    assert "共 1 封" in only and "unit@cs.example" in only
    page = admin.get(f"/admin/mail/{mid}").get_data(as_text=True)
    assert "发送中" in page and "开始发送" in page and "10 分钟" in page
    assert "重新发送</button>" not in page
