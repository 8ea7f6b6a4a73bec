"""The 公示 routes × roles in a round that is in 公示 with an objection (the attack-surface walk runs in a
round in 专家评审, where they answer 404): public pages for everyone, the objections for admin and
chair, the register and the settings for the admin alone. Every rule of the area is in the table."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEvent, Objection
from app.publicity import operations as publicity
from tests.conftest import csrf_token_from, signed_in
from tests.factories import make_user
from tests.publicity_fixtures import build_publicized_round

ROLES = ("anonymous", "nominator", "reviewer", "chair", "admin")
EVERYONE = set(ROLES)
STAFF = {"chair", "admin"}
ADMIN = {"admin"}
GETS = {
    "/gongshi/": EVERYONE, "/gongshi/2024": EVERYONE, "/gongshi/2024/gongshi.pdf": EVERYONE,
    "/gongshi/2024/objection": EVERYONE,
    "/chair/objections": STAFF, "/chair/objections/{id}": STAFF,
    "/admin/objections.xlsx": ADMIN, "/admin/publicity": ADMIN, "/admin/publicity/notice-preview": ADMIN,
    "/admin/publicity/notice.docx": ADMIN,
}
POSTS = {
    "/chair/objections/{id}/accept": STAFF, "/chair/objections/{id}/reject": STAFF,
    "/chair/objections/{id}/note": STAFF, "/chair/objections/{id}/conclude": STAFF,
    "/admin/publicity/period": ADMIN, "/admin/publicity/notice": ADMIN,
}
ATTACHMENT = "/chair/objections/{id}/attachment"
OBJECTOR = ("隐私异议人", "13711112222")


@pytest.fixture
def world(app):
    with app.app_context():
        small = build_publicized_round()
        make_user("unit1", "nominator", affiliation="长沙市科协").must_change_password = False
        db.session.commit()
        pdf = b"%PDF-1.4\n%%EOF\n"
        obj = publicity.file_objection(small.round_id, small.noms["A1"], name=OBJECTOR[0], unit="", phone=OBJECTOR[1],
                                       email="", facts="用于权限测试的异议事实。", upload=publicity.Upload(pdf, "x.pdf"))
        return small, obj.id


def _client(app, role):
    return app.test_client() if role == "anonymous" else signed_in(app, {"reviewer": "r1", "nominator": "unit1"}
                                                                         .get(role, role))


def _outcome(resp) -> str:
    if resp.status_code in (301, 302, 303) and "/login" in resp.headers.get("Location", ""):
        return "login"
    if resp.status_code in (403, 404):
        return "denied"
    assert resp.status_code < 500, resp.status_code
    return "ok"


def test_every_publicity_rule_is_in_the_table(app):
    rules = {r.rule for r in app.url_map.iter_rules() if r.endpoint.startswith("publicity.")}
    known = {u.replace("{id}", "<int:objection_id>").replace("2024", "<int:year>") for u in (*GETS, *POSTS, ATTACHMENT)}
    assert rules == known


@pytest.mark.parametrize("role", ROLES)
def test_publicity_routes_follow_the_policy(app, world, role):
    _small, obj_id = world
    client = _client(app, role)
    for url, allowed in {**GETS, ATTACHMENT: STAFF}.items():
        resp = client.get(url.format(id=obj_id))
        want = "ok" if role in allowed else ("login" if role == "anonymous" else "denied")
        assert _outcome(resp) == want, (role, url, resp.status_code)
        if resp.status_code == 200 and resp.mimetype == "text/html" and role not in STAFF | ADMIN:
            body = resp.get_data(as_text=True)
            assert OBJECTOR[0] not in body and OBJECTOR[1] not in body
    token = csrf_token_from(client.get("/login" if role == "anonymous" else "/account").get_data(as_text=True))
    with app.app_context():
        before = db.session.scalar(select(func.count(AuditEvent.id)))
    for url, allowed in POSTS.items():
        resp = client.post(url.format(id=obj_id), data={"csrf_token": token})
        if role in allowed:
            assert resp.status_code in (303, 400, 409, 422), (role, url, resp.status_code)
        else:
            assert _outcome(resp) == ("login" if role == "anonymous" else "denied"), (role, url, resp.status_code)
    with app.app_context():
        assert db.session.scalar(select(func.count(AuditEvent.id))) == before  # empty bodies write nothing


def test_the_objectors_data_is_on_no_public_page_or_export(app, world):
    small, obj_id = world
    anonymous = app.test_client()
    for url in ("/gongshi/", "/gongshi/2024", "/gongshi/2024/objection"):
        body = anonymous.get(url).get_data(as_text=True)
        assert OBJECTOR[0] not in body and OBJECTOR[1] not in body
    chair = signed_in(app, "chair")
    for url in ("/reports/xlsx/list.xlsx",):
        assert OBJECTOR[1].encode() not in chair.get(url).data
    with app.app_context():
        assert db.session.get(Objection, obj_id).phone == OBJECTOR[1]
