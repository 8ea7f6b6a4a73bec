"""The 公示 forms fuzzed like every other form (tests/web/test_form_fuzz.py's values and bodies): the
public objection form as an anonymous visitor — fields and the attachment's name and content — and the
staff's handling and settings forms. No 500, no traceback; uploads land only under our random names."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from app.extensions import db
from app.models import Objection
from tests.conftest import csrf_token_from, signed_in
from tests.publicity_fixtures import build_publicized_round
from tests.security_fixtures import APP_ERRORS, parse_forms
from tests.web.test_form_fuzz import (
    BOUNDARY,
    CONTENT_TYPES,
    FILENAMES,
    FUZZ_SETTINGS,
    MARK,
    _contents,
    fuzz_body,
    multipart,
)

EXAMPLES = 40


@pytest.fixture
def world(app):
    APP_ERRORS.listen(app)
    with app.app_context():
        small = build_publicized_round()
        from app.publicity import operations as publicity

        # one objection in each state the detail page renders forms for
        for key in ("A1", "A2"):
            publicity.file_objection(small.round_id, small.noms[key], name="测试人", unit="", phone="13900001111",
                                     email="", facts="用于模糊测试的异议事实描述。")
        second = db.session.scalars(select(Objection.id).order_by(Objection.id)).all()[1]
        publicity.accept(second)
    return small


def _check(resp, what: str) -> None:
    body = resp.get_data(as_text=True) if resp.content_type.startswith("text/") else ""
    error = APP_ERRORS.take()
    assert resp.status_code < 500, f"{what} → {resp.status_code}\n{error}"
    assert "Traceback (most recent call last)" not in body, what


def _forms(client, page: str):
    html = client.get(page).get_data(as_text=True)
    return [f for f in parse_forms(html, "http://localhost" + page) if f.method == "post"], csrf_token_from(html)


def _fuzz(client, form, token):
    @settings(max_examples=EXAMPLES, **FUZZ_SETTINGS)
    @given(data=st.data(), htmx=st.booleans())
    def run(data, htmx):
        body = fuzz_body(data, form)
        resp = client.post(form.action, data=MultiDict([*body, ("csrf_token", token)]),
                           headers={"HX-Request": "true"} if htmx else {})
        _check(resp, f"POST {form.action} {body!r:.600}")

    run()


def test_the_public_objection_form_survives_fuzzed_input(app, world):
    client = app.test_client()
    forms, token = _forms(client, "/gongshi/2024/objection")
    assert [urlsplit(f.action).path for f in forms] == ["/gongshi/2024/objection"]
    _fuzz(client, forms[0], token)


def test_the_objection_attachment_survives_hostile_names_and_contents(app, world, tmp_path):
    client = app.test_client()
    forms, token = _forms(client, "/gongshi/2024/objection")
    form = forms[0]
    fields = [("nomination_id", str(world.noms["A1"])), ("name", "王实名"), ("phone", "13900001234"),
              ("facts", "活动场次与申报不符，附材料为证。"), ("pledge", "y"), ("csrf_token", token)]
    contents = _contents() + [b"%PDF-1.4\n" + MARK + b"\n%%EOF\n"]

    @settings(max_examples=EXAMPLES, **FUZZ_SETTINGS)
    @given(name=st.sampled_from(FILENAMES), ctype=st.sampled_from(CONTENT_TYPES),
           content=st.one_of(st.sampled_from(contents), st.binary(max_size=512)))
    def run(name, ctype, content):
        body = multipart(fields, [("attachment", name, ctype, content)])
        resp = client.post(form.action, data=body, content_type=f"multipart/form-data; boundary={BOUNDARY}")
        _check(resp, f"attachment {name[:60]!r} {ctype!r} {len(content)} bytes")

    run()  # the limiter is off in tests (RATELIMIT_ENABLED False): every example reaches the view
    with app.app_context():
        stored = {o.attachment_name for o in db.session.scalars(select(Objection)) if o.attachment_name}
        folder = app.config["UPLOAD_FOLDER"]
    for name in stored:
        assert len(name.split(".")[0]) == 32 and MARK.decode() not in name
    for _root, _dirs, files in os.walk(folder):
        assert not [f for f in files if MARK.decode() in f]


@pytest.mark.parametrize("role", ["admin", "chair"])
def test_the_staff_forms_survive_fuzzed_input(app, world, role):
    client = signed_in(app, role)
    with app.app_context():
        ids = db.session.scalars(select(Objection.id).order_by(Objection.id)).all()
    pages = [f"/chair/objections/{i}" for i in ids] + (["/admin/publicity"] if role == "admin" else [])
    seen = set()
    for page in pages:
        forms, token = _forms(client, page)
        for form in forms:
            path = urlsplit(form.action).path
            if path in seen or path == "/logout":
                continue
            seen.add(path)
            _fuzz(client, form, token)
    assert any(p.endswith("/reject") for p in seen) and any(p.endswith("/conclude") for p in seen)
