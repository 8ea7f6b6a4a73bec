"""The portal's mail reaches a real SMTP server (aiosmtpd on localhost): the return note to the unit,
the 受理 notice, the admins' notice of each submission — and none carries another unit's data. Plus the
whole workflow once on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Nomination
from tests import mail_fixtures, portal_fixtures
from tests.portal_fixtures import client_for, post_form, ready, token

smtp_server = mail_fixtures.smtp_server


def test_the_unit_and_the_admins_receive_the_mail_with_no_other_units_data(app_factory, smtp_server):
    app = portal_fixtures.build(app_factory(smtp_server.config()))
    zz = client_for(app, "zz")
    other = ready(zz, title="株洲的活动-OTHER-UNIT", host="株洲市科协")
    assert post_form(zz, other, "submit", title="株洲的活动-OTHER-UNIT", host="株洲市科协").status_code == 303
    cs = client_for(app, "cs")
    nid = ready(cs)
    assert post_form(cs, nid, "submit").status_code == 303
    admin = client_for(app, "admin")
    t = token(admin, "/intake/")
    assert admin.post(f"/portal/admin/nominations/{nid}/return", data={"note": "照片请换成活动现场的",
                                                                       "csrf_token": t}).status_code == 303
    got = smtp_server.wait_for(3)
    to_admin = [m for m in got if m.envelope_to == ["admin@example.org"]]
    assert len(to_admin) == 2 and any("长沙市科协" in m.subject for m in to_admin)
    [returned] = [m for m in got if m.envelope_to == ["cs@example.org"]]
    assert returned.subject == "【科普日评选】推荐材料退回修改：科普进社区"
    assert "照片请换成活动现场的" in returned.body
    assert "OTHER-UNIT" not in returned.body + returned.subject and "株洲" not in returned.body
    # fixed and resubmitted, then accepted: the unit hears of it
    assert post_form(cs, nid, "submit").status_code == 303
    assert admin.post(f"/portal/admin/nominations/{nid}/accept", data={"csrf_token": t}).status_code == 303
    got = smtp_server.wait_for(5)
    accepted = [m for m in got if m.envelope_to == ["cs@example.org"]][-1]
    assert accepted.subject == "【科普日评选】推荐材料已受理：科普进社区"
    assert "OTHER-UNIT" not in accepted.body
    assert not [m for m in got if m.envelope_to == ["zz@example.org"]]  # 株洲 was neither returned nor accepted


@pytest.mark.parametrize("backend", ["postgres"])
def test_the_workflow_on_postgresql(app_factory, backend):
    app = portal_fixtures.build(app_factory())
    cs = client_for(app, "cs")
    nid = ready(cs)
    assert post_form(cs, nid, "submit").status_code == 303
    admin = client_for(app, "admin")
    t = token(admin, "/intake/")
    assert admin.post(f"/portal/admin/nominations/{nid}/return", data={"note": "补充", "csrf_token": t}).status_code == 303
    assert post_form(cs, nid, "submit", people_served="2500").status_code == 303
    assert admin.post(f"/portal/admin/nominations/{nid}/accept", data={"csrf_token": t}).status_code == 303
    with app.app_context():
        nom = db.session.scalar(select(Nomination).where(Nomination.id == nid))
        assert (nom.status, nom.people_served, nom.origin) == ("active", 2500, "portal")
