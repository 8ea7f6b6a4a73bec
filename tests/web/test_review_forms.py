"""The review area's WTForms: what they refuse (a control character in a score, over-long text, a
missing version, another method), that the refusal is Chinese and writes nothing, that free text goes
through the one cleaning filter, and that the page and its script take the limits from the form."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEvent, Recusal
from app.models.review import COMMENT_MAX
from app.review import forms
from tests.review_fixtures import build_world, form_data, page_token, post_sheet, signed_in, stored_sheet

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def world(app):
    with app.app_context():
        return build_world()


def _nothing_stored(app, world) -> None:
    with app.app_context():
        assert stored_sheet(world.rev1, world.act_b) == (None, {})
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)
                                 .where(AuditEvent.action.like("sheet.%"))) == 0


@pytest.mark.parametrize("htmx", [True, False])
def test_a_control_character_in_a_score_is_refused_beside_the_field(app, world, htmx):
    client = signed_in(app, "rev1")
    token = page_token(client, world.act_b)
    crit = world.criteria["activity"]
    resp = post_sheet(client, world.act_b, form_data(token, crit, ["2\x000", 10, None, None]), htmx=htmx)
    assert resp.status_code == 422
    body = resp.get_data(as_text=True)
    assert "请输入数字，如 25 或 25.5" in body and "评分未保存：有 1 处需要更正" in body
    # the reviewer's own input comes back, minus nothing they could see
    assert re.search(rf'id="err-{crit[0]}"[^>]*>请输入数字', body)
    _nothing_stored(app, world)


@pytest.mark.parametrize("htmx", [True, False])
def test_an_over_long_comment_is_refused_with_the_limit(app, world, htmx):
    client = signed_in(app, "rev1")
    token = page_token(client, world.act_b)
    crit = world.criteria["activity"]
    data = form_data(token, crit, [10, None, None, None], comment="长" * (COMMENT_MAX + 1))
    resp = post_sheet(client, world.act_b, data, htmx=htmx)
    assert resp.status_code == 422
    assert f"不能超过 {COMMENT_MAX} 字" in resp.get_data(as_text=True)
    _nothing_stored(app, world)


def test_the_comment_goes_through_the_cleaning_filter(app, world):
    client = signed_in(app, "rev1")
    token = page_token(client, world.act_b)
    crit = world.criteria["activity"]
    dirty = "\ufeff好\x00的\u200b活动\r\n\x07第二行\u3000 "
    resp = post_sheet(client, world.act_b, form_data(token, crit, [10, None, None, None], comment=dirty))
    assert resp.status_code == 200
    with app.app_context():
        sheet, _ = stored_sheet(world.rev1, world.act_b)
        assert sheet.comment == "好的活动\n第二行"


@pytest.mark.parametrize("version", [None, "", " ", "x", "-1"])
def test_a_save_without_a_usable_version_is_refused(app, world, version):
    client = signed_in(app, "rev1")
    token = page_token(client, world.act_b)
    crit = world.criteria["activity"]
    data = form_data(token, crit, [10, 10, 10, 10], action="submit")
    if version is None:
        del data["version"]
    else:
        data["version"] = version
    for htmx in (True, False):
        resp = post_sheet(client, world.act_b, data, htmx=htmx)
        assert resp.status_code == 400
        assert "版本号" in resp.get_data(as_text=True)
    _nothing_stored(app, world)


def test_other_methods_are_refused_in_chinese(app, world):
    client = signed_in(app, "rev1")
    for method in ("get", "put", "delete"):
        resp = getattr(client, method)(f"/review/nominations/{world.act_b}/sheet")
        assert resp.status_code == 405 and "不支持此操作方式" in resp.get_data(as_text=True)
    resp = client.get(f"/review/nominations/{world.act_b}/recusal")
    assert resp.status_code == 405
    _nothing_stored(app, world)


def test_score_fields_are_built_from_the_rubric(app, world):
    """One field per criterion with its max and step; a field for a criterion of another rubric is ignored."""
    from app.review import scoring

    with app.test_request_context(method="POST", data={"version": "0", "score-999999": "5"}):
        tgt = scoring.target(world.act_b)
        form = forms.sheet_form(tgt, meta={"csrf": False})
        names = [f.name for f in form.score_fields()]
        assert names == [f"score-{c}" for c in world.criteria["activity"]]
        first = form.score_fields()[0]
        assert first.flags.max == tgt.rubric[0].max_score and first.flags.min == 0
        assert form.validate() and set(form.scores().values()) == {None}


def test_recusal_reason_limits_and_cleaning(app, world):
    client = signed_in(app, "rev1")
    token = page_token(client, world.act_b)
    url = f"/review/nominations/{world.act_b}/recusal"
    resp = client.post(url, data={"csrf_token": token, "reason": "长" * 501})
    assert resp.status_code == 422 and "不能超过 500 字" in resp.get_data(as_text=True)
    resp = client.post(url, data={"csrf_token": token, "reason": "\x00\u200b\x07"})
    assert resp.status_code == 422 and "请填写回避理由" in resp.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Recusal)) == 0
    resp = client.post(url, data={"csrf_token": token, "reason": "曾\x00参与\u200b策划"})
    assert resp.status_code == 303
    with app.app_context():
        assert db.session.scalar(select(Recusal.reason)) == "曾参与策划"


def test_limits_come_from_the_form_not_the_template_or_the_script(app, world):
    html = signed_in(app, "rev1").get(f"/review/nominations/{world.act_b}").get_data(as_text=True)
    limit = forms.SHEET_LIMITS["comment"]
    assert limit == COMMENT_MAX
    assert f'name="comment" maxlength="{limit}"' in html
    assert f'data-max="{limit}"' in html and f"/{limit}</span>" in html
    assert f'name="reason" maxlength="{forms.RECUSAL_LIMITS["reason"]}"' in html
    script = (ROOT / "static/js/score-panel.js").read_text(encoding="utf-8")
    assert not re.search(rf"(?<![\d.]){COMMENT_MAX}(?!\d)", script)
    assert 'getAttribute("maxlength")' in script


def test_htmx_and_plain_saves_still_work_through_the_form(app, world):
    client = signed_in(app, "rev1")
    token = page_token(client, world.act_b)
    crit = world.criteria["activity"]
    resp = post_sheet(client, world.act_b, form_data(token, crit, ["２０", "15。5", None, None]))
    assert resp.status_code == 200 and "已保存" in resp.get_data(as_text=True)
    with app.app_context():
        assert stored_sheet(world.rev1, world.act_b)[1] == {crit[0]: 20, crit[1]: 15.5}
