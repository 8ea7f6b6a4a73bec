"""Fuzzed input to the portal form: whatever a unit types, 保存草稿 and 提交 answer 303 (done), 409 or
422 (refused, with the stored nomination unchanged) — never a 500 — and a refused request writes
nothing."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.extensions import db
from app.intake import nominations
from app.models import AuditEvent, Nomination
from tests.portal_fixtures import ACTIVITY, build, client_for, new_draft, page_version, upload_photos

TEXT = st.one_of(st.text(max_size=40), st.text(min_size=480, max_size=620),
                 st.sampled_from(["", " ", "\x00", "０１２", "1.2万人次", "约3000人", "2024年9月30日", "-5", "9" * 30,
                                  "<script>alert(1)</script>", "２０２４-０９-３０", "二〇二四年九月三十日"]))
FIELDS = ("title", "host", "contact_name", "contact_phone", "address", "event_count", "people_served", "summary",
          "recommendation", "recommendation_date")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from app import create_app
    from tests.conftest import _base_config

    folder = tmp_path_factory.mktemp("portal-fuzz")
    app = create_app(_base_config(folder, "sqlite:///" + str(folder / "kepu.sqlite3")))
    with app.app_context():
        db.create_all()
    build(app)
    cs = client_for(app, "cs")
    nid = new_draft(cs)
    assert upload_photos(cs, nid, 3).status_code == 303
    yield app, cs, nid
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _state(app, nid):
    with app.app_context():
        nom = db.session.get(Nomination, nid)
        out = (nominations.version_of(nom), nom.status,
               db.session.scalar(select(func.count()).select_from(AuditEvent)))
        db.session.remove()
        return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.fixed_dictionaries({}, optional={name: TEXT for name in FIELDS}), op=st.sampled_from(["save", "submit", "x"]))
def test_fuzzed_form_never_fails_and_a_refusal_writes_nothing(world, values, op):
    app, cs, nid = world
    with app.app_context():
        if db.session.get(Nomination, nid).status != "draft":
            # a successful submit ends the draft: put it back for the next example
            nom = db.session.get(Nomination, nid)
            nom.status, nom.submitted_at = "draft", None
            db.session.commit()
        db.session.remove()
    csrf, version = page_version(cs, nid)
    before = _state(app, nid)
    resp = cs.post(f"/portal/nominations/{nid}", data={**ACTIVITY, **values, "op": op, "version": version,
                                                       "csrf_token": csrf})
    assert resp.status_code in (303, 409, 422), resp.status_code
    body = resp.get_data(as_text=True)
    assert "Traceback" not in body and "<script>alert" not in body
    if resp.status_code != 303:
        assert _state(app, nid) == before
