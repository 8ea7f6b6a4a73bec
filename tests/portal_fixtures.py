"""The portal world: a round in 材料收集 whose deadline is still ahead, three 推荐单位 (two 市州科协 and a
省级学会 with a quota of 1), an admin, a reviewer and one nominator account per unit — and the steps a
unit takes (draft, photos, submit) through the real pages."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.core.time import beijing
from app.extensions import db
from app.models import Nominator, User
from tests.conftest import csrf_token_from, login
from tests.intake_fixtures import make_image

UNITS = [("长沙市科协", "长沙", "city"), ("株洲市科协", "株洲", "city"), ("湖南省科普作家协会", "省科普作协", "society")]
# username → (affiliation, e-mail)
NOMINATORS = {"cs": ("长沙市科协", "cs@example.org"), "zz": ("株洲市科协", "zz@example.org"),
              "xh": ("湖南省科普作家协会", "xh@example.org")}
ACTIVITY = {"title": "科普进社区", "host": "长沙市科协", "contact_name": "张三", "contact_title": "部长",
            "contact_phone": "13812345678", "address": "长沙市芙蓉区", "event_count": "10", "people_served": "2000",
            "summary": "活动简介。" * 20, "recommendation": "同意推荐。", "recommendation_date": "2024-09-30"}
UNIT = {k: v for k, v in ACTIVITY.items() if k != "host"} | {"title": "长沙市某街道科协"}


def today():
    return beijing().date()


def build(app, *, deadline_in_days: int = 20):
    from tests.factories import make_round, make_user

    with app.app_context():
        rnd = make_round("collecting")
        rnd.deadline = today() + timedelta(days=deadline_in_days)
        for pos, (name, short, kind) in enumerate(UNITS, start=1):
            db.session.add(Nominator(name=name, short_name=short, kind=kind, position=pos))
        db.session.commit()
        admin = make_user("admin", role="admin")
        admin.email = "admin@example.org"
        units = {n.name: n.id for n in db.session.scalars(select(Nominator))}
        # Reuses the admin's scrypt hash of the demo password: hashing afresh costs a second per user.
        for username, (unit, email) in NOMINATORS.items():
            db.session.add(User(username=username, display_name=unit, role="nominator", email=email,
                                password_hash=admin.password_hash, affiliation_id=units[unit]))
        db.session.add(User(username="expert", display_name="专家", role="reviewer", password_hash=admin.password_hash))
        db.session.commit()
        db.session.remove()
    return app


@pytest.fixture
def portal_app(app_factory):
    return build(app_factory())


def client_for(app, username: str):
    client = app.test_client()
    resp = login(client, username)
    assert resp.status_code == 303, resp.status_code
    return client


def token(client, path="/portal/") -> str:
    return csrf_token_from(client.get(path).get_data(as_text=True))


def page_version(client, nomination_id: int) -> tuple[str, str]:
    html = client.get(f"/portal/nominations/{nomination_id}").get_data(as_text=True)
    m = re.search(r'name="version" value="([^"]+)"', html)
    assert m, "no version on the page"
    return csrf_token_from(html), m.group(1)


def new_draft(client, category: str = "activity", **fields) -> int:
    data = {**(ACTIVITY if category == "activity" else UNIT), **fields}
    resp = client.post(f"/portal/new/{category}", data={**data, "op": "save", "csrf_token": token(client)})
    assert resp.status_code == 303, resp.get_data(as_text=True)[:2000]
    return int(re.search(r"/portal/nominations/(\d+)", resp.headers["Location"]).group(1))


def upload_photos(client, nomination_id: int, n: int = 3):
    import io

    files = [(io.BytesIO(make_image("JPEG", color=(10 * i, 80, 160))), f"照片{i}.jpg") for i in range(n)]
    return client.post(f"/portal/nominations/{nomination_id}/photos",
                       data={"photos": files, "csrf_token": token(client)}, content_type="multipart/form-data")


def post_form(client, nomination_id: int, op: str, category: str = "activity", **fields):
    csrf, version = page_version(client, nomination_id)
    data = {**(ACTIVITY if category == "activity" else UNIT), **fields, "op": op, "version": version,
            "csrf_token": csrf}
    return client.post(f"/portal/nominations/{nomination_id}", data=data)


def ready(client, category: str = "activity", **fields) -> int:
    """A complete draft with 3 photos, ready to submit."""
    nid = new_draft(client, category, **fields)
    assert upload_photos(client, nid, 3).status_code == 303
    return nid
