"""Read-only means read-only (issue 11, item 4): after 定稿 — and where a phase forbids the edit — the
edit pages render their fields disabled with a note instead of inviting a save that fails; the POST
still refuses (409); user pages stay editable."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Nomination, Round
from tests.chair_fixtures import build_small_round
from tests.conftest import csrf_token_from, login

NOTE = "本批次已定稿，内容只读。"


@pytest.fixture
def small(app):
    with app.app_context():
        return build_small_round()


@pytest.fixture
def admin(app, small):
    client = app.test_client()
    login(client, "admin")
    return client


def _set_phase(app, small, phase: str) -> None:
    with app.app_context():
        rnd = db.session.get(Round, small.round_id)
        rnd.phase = phase
        db.session.commit()


def _enabled_inputs(html: str, start: str) -> list[str]:
    """Inputs of the form that opens at `start` not inside a disabled fieldset (a rough reading)."""
    form = html[html.index(start):]
    form = form[:form.index("</form>")]
    inner = re.sub(r"<fieldset[^>]*\sdisabled[^>]*>.*</fieldset>", "", form, flags=re.S)
    return re.findall(r"<(?:input|textarea|select)(?![^>]*type=\"hidden\")[^>]*>", inner)


def test_settings_render_read_only_after_final_and_the_post_still_refuses(app, admin, small):
    page = admin.get("/admin/settings").get_data(as_text=True)
    assert NOTE not in page and _enabled_inputs(page, 'class="stack settings-form"')
    _set_phase(app, small, "final")
    page = admin.get("/admin/settings").get_data(as_text=True)
    assert NOTE in page
    assert 'class="read-only-scope stack" disabled' in page
    assert not _enabled_inputs(page, 'class="stack settings-form"')  # quotas included
    assert ">保存设置</button>" not in page
    with app.app_context():
        version = db.session.get(Round, small.round_id).version
    resp = admin.post("/admin/settings", data={"csrf_token": csrf_token_from(page), "version": version,
                                                "name": "改名"})
    assert resp.status_code in (409, 422)
    with app.app_context():
        assert db.session.get(Round, small.round_id).name != "改名"


def test_templates_read_only_once_publicized(app, admin, small):
    _set_phase(app, small, "publicizing")
    page = admin.get("/admin/settings").get_data(as_text=True)
    assert "公示开始后审定意见模板只读。" in page
    assert re.search(r'<textarea[^>]*name="opinion_approve_template"[^>]*readonly', page)
    assert NOTE not in page and ">保存设置</button>" in page


def test_nomination_pages_read_only_when_the_phase_forbids_edits(app, admin, small):
    nom_id = small.noms["A1"]
    page = admin.get(f"/intake/{nom_id}/edit").get_data(as_text=True)
    # 会议审定 forbids editing a nomination: the page says why, before anyone types.
    assert "评选批次处于「会议审定」阶段，推荐对象内容只读。" in page and ">保存</button>" not in page
    _set_phase(app, small, "reviewing")
    page = admin.get(f"/intake/{nom_id}/edit").get_data(as_text=True)
    assert "内容只读" not in page and ">保存</button>" in page
    _set_phase(app, small, "final")
    for url in (f"/intake/{nom_id}/edit", f"/intake/{nom_id}"):
        page = admin.get(url).get_data(as_text=True)
        assert NOTE in page, url
    page = admin.get(f"/intake/{nom_id}/edit").get_data(as_text=True)
    assert 'class="read-only-scope" disabled' in page and ">保存</button>" not in page
    assert not _enabled_inputs(page, 'class="stack nomination-form"')
    with app.app_context():
        title = db.session.get(Nomination, nom_id).title
    resp = admin.post(f"/intake/{nom_id}/edit", data={"csrf_token": csrf_token_from(page), "title": "改"})
    assert resp.status_code in (409, 422)
    with app.app_context():
        assert db.session.scalar(select(Nomination.title).where(Nomination.id == nom_id)) == title


def test_deliberation_page_after_final_and_user_pages_stay_editable(app, admin, small):
    _set_phase(app, small, "final")
    page = admin.get("/chair/activity").get_data(as_text=True)
    assert NOTE in page and "decide-form" not in page and 'name="approve_template"' not in page
    users = admin.get("/admin/users").get_data(as_text=True)
    assert NOTE not in users and "<form" in users


def test_nominator_quota_overrides_are_read_only_after_final(app, admin, small):
    """The registry's per-nominator quota fields: read-only with a note after 定稿, a quota change is
    refused (409, nothing written), while the name stays editable; before 定稿 the override saves."""
    from app.models import Nominator

    with app.app_context():
        nominator = db.session.scalars(select(Nominator).order_by(Nominator.id)).first()
        nid, name, kind = nominator.id, nominator.name, nominator.kind
    page = admin.get(f"/admin/nominators/{nid}").get_data(as_text=True)
    assert "推荐名额只读" not in page and "readonly" not in page
    token = csrf_token_from(page)
    form = {"csrf_token": token, "name": name, "kind": kind, "short_name": "", "position": "",
            "quota_unit": "3", "quota_activity": ""}
    assert admin.post(f"/admin/nominators/{nid}", data=form).status_code == 303
    _set_phase(app, small, "final")
    page = admin.get(f"/admin/nominators/{nid}").get_data(as_text=True)
    assert "本批次已定稿，推荐名额只读。" in page
    assert re.search(r'<input name="quota_unit"[^>]*readonly', page)
    resp = admin.post(f"/admin/nominators/{nid}", data={**form, "quota_unit": "5"})
    assert resp.status_code == 409 and "推荐名额只读" in resp.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Nominator, nid).quota_unit == 3
    # The same form with the quota as it stands (what the read-only field posts) still saves the name.
    assert admin.post(f"/admin/nominators/{nid}", data={**form, "name": name + "更名"}).status_code == 303
    with app.app_context():
        stored = db.session.get(Nominator, nid)
        assert stored.name == name + "更名" and stored.quota_unit == 3
