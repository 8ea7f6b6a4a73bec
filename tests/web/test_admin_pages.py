"""Admin pages: access by role, the dashboard and phase control, settings and the rubric, nominators."""

from __future__ import annotations

import io
import re

import pytest
from openpyxl import Workbook

from app.extensions import db
from app.models import Criterion, Nominator, Round
from app.review import assignments
from tests.admin_fixtures import Browser, build_world, count, events


@pytest.fixture
def world(app):
    with app.app_context():
        w = build_world("collecting")
    return w


@pytest.fixture
def admin(app, world):
    return Browser(app, "admin1")


PAGES = ["/admin/", "/admin/settings", "/admin/nominators", "/admin/nominators/1", "/admin/users", "/admin/users/1",
         "/admin/assignments", "/admin/assignments?category=activity", "/admin/assignments/pair?reviewer=3&nomination=1",
         "/admin/audit", "/admin/audit.csv", "/admin/nominators/template.xlsx"]


@pytest.mark.parametrize("url", PAGES)
def test_admin_sees_every_page(admin, url):
    resp = admin.get(url)
    assert resp.status_code == 200
    if resp.mimetype == "text/html":
        html = resp.get_data(as_text=True)
        assert 'href="/admin/audit"' in html and "操作日志" in html
        assert "style=" not in html and "onclick" not in html  # the CSP forbids both


@pytest.mark.parametrize("url", [u for u in PAGES if not u.endswith((".csv", ".xlsx"))])
def test_every_page_renders_as_an_htmx_fragment_too(admin, url):
    resp = admin.get(url, headers={"HX-Request": "true"})
    assert resp.status_code == 200
    body = resp.get_data(as_text=True)
    assert "<html" not in body and len(body) > 100


@pytest.mark.parametrize("username", ["chair1", "r3"])
@pytest.mark.parametrize("url", PAGES)
def test_chair_and_reviewer_get_403(app, world, username, url):
    assert Browser(app, username).get(url).status_code == 403


@pytest.mark.parametrize("url,data", [
    ("/admin/phase", {"target": "setup", "reason": "x"}),
    ("/admin/settings", {"name": "x"}),
    ("/admin/settings/criteria/unit", {"name": "x", "max_score": "5", "step": "1"}),
    ("/admin/nominators", {"name": "新单位", "kind": "city"}),
    ("/admin/users", {"username": "u9", "role": "reviewer", "password": "12345678"}),
    ("/admin/users/5/active", {"active": "0"}),
    ("/admin/assignments/run", {"mode": "all"}),
    ("/admin/assignments/page", {"row": "1", "col": "3", "a": "3-1"}),
    ("/admin/assignments/pair", {"reviewer": "3", "nomination": "1", "action": "assign"}),
])
def test_posts_need_csrf_and_admin(app, world, url, data):
    admin = Browser(app, "admin1")
    before = count_events(app)
    resp = admin.post(url, data, csrf=False)
    assert resp.status_code == 400 and "CSRF" in resp.get_data(as_text=True)
    assert Browser(app, "chair1").post(url, data).status_code == 403
    assert count_events(app) == before


def count_events(app) -> int:
    with app.app_context():
        return len([e for e in events() if e.action not in ("user.login", "user.logout")])


def test_anonymous_is_sent_to_login(client):
    resp = client.get("/admin/")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


# ----------------------------------------------------------------------------- dashboard and phases


def test_dashboard_shows_phase_counts_and_controls(admin):
    html = admin.get("/admin/").get_data(as_text=True)
    assert "当前阶段：材料收集" in html
    assert "进入下一阶段：专家评审" in html and "退回上一阶段（筹备）" in html
    assert "12 件未分配专家" not in html and "6 件未分配专家" in html
    assert 'aria-current="step"' in html


def test_phase_forward_blocked_then_done_and_back_with_reason(app, world, admin, monkeypatch):
    from app.rounds import moves

    resp = admin.post("/admin/phase", {"target": "reviewing"})
    assert resp.status_code == 409 and "尚未分配评审专家" in resp.get_data(as_text=True)
    with app.app_context():
        assignments.assign_all(world.round_id)
    monkeypatch.setattr(moves, "_form_check_guard", lambda: None)
    resp = admin.post("/admin/phase", {"target": "reviewing"})
    assert resp.status_code == 303
    dashboard = admin.get("/admin/").get_data(as_text=True)
    assert "已进入「专家评审」阶段" in dashboard
    assert "ADMIN1（admin1） · 推进阶段 · 评选批次" in dashboard  # the recent-activity list

    resp = admin.post("/admin/phase", {"target": "collecting", "reason": ""})
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "退回上一阶段必须填写理由" in html and "必填" in html
    resp = admin.post("/admin/phase", {"target": "collecting", "reason": "有两份材料需要补充"})
    assert resp.status_code == 303
    with app.app_context():
        assert db.session.get(Round, world.round_id).phase == "collecting"
        [back] = events("round.phase_back")
        assert back.reason == "有两份材料需要补充" and back.actor_id is not None


def test_dashboard_shows_live_form_check_problems(admin):
    pytest.importorskip("app.intake.form_check")
    html = admin.get("/admin/").get_data(as_text=True)
    # The test nominations have no photos, which the intake area's 形式审查 counts as blocking.
    assert re.search(r"按当前材料有 \d+ 项阻断性问题", html)


def test_dashboard_links_to_chair_after_deliberating(app, world, admin):
    with app.app_context():
        rnd = db.session.get(Round, world.round_id)
        rnd.phase = "deliberating"
        db.session.commit()
    html = admin.get("/admin/").get_data(as_text=True)
    assert "由评审委员会主任在会议审定页面推进" in html and 'href="/chair/"' in html
    assert "进入下一阶段" not in html
    resp = admin.post("/admin/phase", {"target": "publicizing"})
    assert resp.status_code == 409 and "会议审定页面完成" in resp.get_data(as_text=True)


def test_unknown_phase_is_422(admin):
    resp = admin.post("/admin/phase", {"target": "party"})
    assert resp.status_code == 422 and "未知阶段" in resp.get_data(as_text=True)


def test_empty_database_offers_round_creation(app):
    with app.app_context():
        from tests.factories import make_user

        make_user("admin1", "admin")
    admin = Browser(app, "admin1")
    assert "建立评选批次" in admin.get("/admin/").get_data(as_text=True)
    resp = admin.post("/admin/rounds", {"year": "二〇二五"})
    assert resp.status_code == 422 and "年份应为整数" in resp.get_data(as_text=True)
    resp = admin.post("/admin/rounds", {"year": "2025", "name": ""})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/admin/settings")
    assert "2025年全国科普日" in admin.get("/admin/").get_data(as_text=True)


# ----------------------------------------------------------------------------- settings and rubric


def _settings_data(**kw):
    data = {"name": "2024年评选", "deadline": "2024-10-08", "slots_unit": "40",
            "slots_activity": "35", "method": "median", "assignment_mode": "balanced", "reviewers_per_nomination": "3",
            "opinion_approve_template": "经专家评审、会议审定，同意推荐为{year}年全国科普日{category}。",
            "opinion_decline_template": "经审定，不予推荐。"}
    for kind in ("city", "member", "society"):
        for cat in ("unit", "activity"):
            data[f"quota_{kind}_{cat}"] = "2"
    data.update(kw)
    return data


def _version(app, world) -> str:
    with app.app_context():
        return str(db.session.get(Round, world.round_id).version)


def test_settings_save_and_validation(app, world, admin):
    version = _version(app, world)
    resp = admin.post("/admin/settings", _settings_data(slots_unit="abc", opinion_approve_template="{名称}",
                                                        version=version))
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "优秀组织单位名额应为整数" in html and "未知占位符" in html
    assert 'value="abc"' in html  # the form comes back as typed
    resp = admin.post("/admin/settings", _settings_data(version=version))
    assert resp.status_code == 303
    with app.app_context():
        rnd = db.session.get(Round, world.round_id)
        assert (rnd.method, rnd.slots_activity, rnd.quota("city", "unit"), rnd.list_unordered) == ("median", 35, 2, False)
        assert events("round.settings")[0].actor_id is not None


def test_rubric_edit_through_the_page(app, world, admin):
    resp = admin.post("/admin/settings/criteria/activity", {"name": "", "max_score": "10", "step": "0.3"})
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "指标名称不能为空" in html and "整数倍" in html
    resp = admin.post("/admin/settings/criteria/activity", {"name": "创新性", "max_score": "10", "step": "0.5",
                                                           "guidance": "有新意"})
    assert resp.status_code == 303
    with app.app_context():
        c = db.session.query(Criterion).filter_by(name="创新性").one()
        cid = c.id
    assert admin.post(f"/admin/settings/criterion/{cid}", {"action": "up"}).status_code == 303
    resp = admin.post(f"/admin/settings/criterion/{cid}", {"action": "save", "name": "创新性", "max_score": "200",
                                                          "step": "1"})
    assert resp.status_code == 422 and "满分不能超过 100" in resp.get_data(as_text=True)
    assert admin.post(f"/admin/settings/criterion/{cid}", {"action": "delete"}).status_code == 303
    assert admin.post(f"/admin/settings/criterion/{cid}", {"action": "delete"}).status_code == 404
    with app.app_context():
        assert [e.action for e in events() if e.action.startswith("criterion.")] == [
            "criterion.create", "criterion.reorder", "criterion.delete"]


def test_rubric_read_only_in_reviewing(app, world, admin):
    with app.app_context():
        rnd = db.session.get(Round, world.round_id)
        rnd.phase = "reviewing"
        db.session.commit()
        cid = db.session.query(Criterion).first().id
    html = admin.get("/admin/settings").get_data(as_text=True)
    assert "评分指标只读" in html and "/admin/settings/criterion/" not in html
    resp = admin.post(f"/admin/settings/criterion/{cid}", {"action": "delete"})
    assert resp.status_code == 409 and "评分指标不能再修改" in resp.get_data(as_text=True)


# ----------------------------------------------------------------------------- nominators


def test_nominator_list_in_official_order_and_create(app, world, admin):
    html = admin.get("/admin/nominators").get_data(as_text=True)
    assert html.index("长沙市科协") < html.index("株洲市科协") < html.index("湖南省科普作家协会")
    resp = admin.post("/admin/nominators", {"name": "", "kind": "city", "position": "x"})
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "名称不能为空" in html and "排序应为整数" in html
    resp = admin.post("/admin/nominators", {"name": "湘潭市科协", "kind": "city", "position": "3", "quota_unit": "7"})
    assert resp.status_code == 303
    resp = admin.post("/admin/nominators", {"name": "湘潭市科协", "kind": "city"})
    assert resp.status_code == 409 and "已存在" in resp.get_data(as_text=True)
    with app.app_context():
        assert db.session.query(Nominator).filter_by(name="湘潭市科协").one().quota_unit == 7
        assert len(events("nominator.create")) == 1


def test_nominator_edit_and_delete(app, world, admin):
    with app.app_context():
        cs = world.nominators["cs"]
    resp = admin.post(f"/admin/nominators/{cs}", {"name": "长沙市科协", "kind": "city", "position": "1",
                                                  "quota_activity": "abc"})
    assert resp.status_code == 422 and "优秀活动名额应为整数" in resp.get_data(as_text=True)
    resp = admin.post(f"/admin/nominators/{cs}", {"name": "长沙市科协", "short_name": "长沙", "kind": "city",
                                                  "position": "1", "quota_activity": "4"})
    assert resp.status_code == 303
    resp = admin.post(f"/admin/nominators/{cs}/delete")
    assert resp.status_code == 409 and "不能删除" in resp.get_data(as_text=True)
    assert admin.get("/admin/nominators/999").status_code == 404


def _xlsx(rows) -> bytes:
    book = Workbook()
    book.active.append(["名称", "类型", "排序", "优秀组织单位名额", "优秀活动名额"])
    for row in rows:
        book.active.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_nominator_import_page(app, world, admin):
    resp = admin.post("/admin/nominators/import", {"file": (io.BytesIO(b"not a sheet"), "x.xlsx")},
                      content_type="multipart/form-data")
    assert resp.status_code == 422 and "请上传 .xlsx" in resp.get_data(as_text=True)
    resp = admin.post("/admin/nominators/import", {}, content_type="multipart/form-data")
    assert resp.status_code == 422 and "请选择要导入的 .xlsx 文件" in resp.get_data(as_text=True)
    data = _xlsx([("长沙市科协", "市州科协", 1, 9, None), ("湘潭市科协", "市州科协", 3, None, None)])
    for _ in range(2):
        resp = admin.post("/admin/nominators/import", {"file": (io.BytesIO(data), "推荐单位.xlsx")},
                          content_type="multipart/form-data")
        assert resp.status_code == 303
    with app.app_context():
        assert count(Nominator) == 4
        assert db.session.get(Nominator, world.nominators["cs"]).quota_unit == 9
        assert [e.after["created"] for e in events("nominator.import")] == [1, 0]
    assert "导入完成" in admin.get("/admin/nominators").get_data(as_text=True)


# ----------------------------------------------------------------------------- form hygiene (users, settings, phase)


def _users_count(app) -> int:
    with app.app_context():
        from app.models import User

        return count(User)


def test_control_characters_never_reach_the_database(app, world, admin):
    from app.models import User

    resp = admin.post("/admin/users", {"username": "exp\x00ert7", "display_name": "赵\x00七\u202e\x07 研究员",
                                       "role": "reviewer", "password": "secret-123"})
    assert resp.status_code == 303
    resp = admin.post("/admin/phase", {"target": "setup", "reason": "名额\x00有误\x1b，需要更正"})
    assert resp.status_code == 303
    resp = admin.post("/admin/settings", _settings_data(name="2024年\x00评选\u200b", version=_version(app, world)))
    assert resp.status_code == 303
    with app.app_context():
        user = db.session.query(User).filter_by(username="expert7").one()
        assert user.display_name == "赵七 研究员"
        assert events("round.phase_back")[0].reason == "名额有误，需要更正"
        assert db.session.get(Round, world.round_id).name == "2024年评选"


@pytest.mark.parametrize("url,data,field_message", [
    ("/admin/users", {"username": "u7", "display_name": "长" * 51, "role": "reviewer", "password": "secret-123"},
     "不能超过 50 字"),
    ("/admin/phase", {"target": "setup", "reason": "因" * 501}, "不能超过 500 字"),
    ("/admin/settings", {"name": "名" * 101}, "不能超过 100 字"),
])
def test_over_long_text_is_refused_beside_the_field_and_nothing_is_written(app, world, admin, url, data,
                                                                          field_message):
    if url == "/admin/settings":
        data = _settings_data(version=_version(app, world), **data)
    before = count_events(app), _users_count(app)
    resp = admin.post(url, data)
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert field_message in html and 'class="field-error"' in html
    assert (count_events(app), _users_count(app)) == before
    with app.app_context():
        assert db.session.get(Round, world.round_id).phase == "collecting"


def test_limits_are_rendered_from_the_forms(admin):
    settings = admin.get("/admin/settings").get_data(as_text=True)
    assert re.search(r'<input[^>]*maxlength="100"[^>]*name="name"', settings)
    assert re.search(r'<textarea[^>]*maxlength="500"[^>]*name="opinion_approve_template"', settings)
    assert re.search(r'<input[^>]*name="version"[^>]*type="hidden"|<input[^>]*type="hidden"[^>]*name="version"',
                     settings)
    dashboard = admin.get("/admin/").get_data(as_text=True)
    assert re.search(r'<textarea[^>]*maxlength="500"[^>]*name="reason"', dashboard)
    users_page = admin.get("/admin/users").get_data(as_text=True)
    assert re.search(r'<input[^>]*maxlength="50"[^>]*name="username"', users_page)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("url", ["/admin/phase", "/admin/settings", "/admin/users", "/admin/users/5",
                                 "/admin/users/5/password"])
def test_wrong_method_is_405_and_writes_nothing(app, world, admin, method, url):
    before = count_events(app)
    resp = admin.client.open(url, method=method, data={"csrf_token": admin.token, "target": "setup",
                                                       "reason": "x", "display_name": "x", "role": "reviewer"})
    assert resp.status_code == 405
    assert count_events(app) == before


@pytest.mark.parametrize("url,data", [
    ("/admin/users/5", {"display_name": "改名", "role": "reviewer"}),
    ("/admin/users/5/password", {"password": "new-pass-1", "confirm": "new-pass-1"}),
    ("/admin/rounds", {"year": "2031"}),
])
def test_more_posts_need_csrf(app, world, admin, url, data):
    before = count_events(app)
    resp = admin.post(url, data, csrf=False)
    assert resp.status_code == 400 and "CSRF" in resp.get_data(as_text=True)
    assert count_events(app) == before


def test_settings_without_or_with_a_stale_version_are_refused(app, world, admin):
    data = _settings_data(slots_unit="17")
    resp = admin.post("/admin/settings", data)  # no version at all
    assert resp.status_code == 422 and "缺少版本号" in resp.get_data(as_text=True)
    stale = _version(app, world)
    assert admin.post("/admin/settings", _settings_data(slots_unit="18", version=stale)).status_code == 303
    resp = admin.post("/admin/settings", _settings_data(slots_unit="19", version=stale))
    assert resp.status_code == 409 and "已被他人修改" in resp.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Round, world.round_id).slots_unit == 18
        assert len(events("round.settings")) == 1
