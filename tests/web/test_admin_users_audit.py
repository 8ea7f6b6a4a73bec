"""Users management and the audit log viewer (service and pages)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest

from app.accounts import operations as users
from app.audit import forms as audit_filters
from app.audit import queries as audit_log
from app.core.errors import UserError
from app.extensions import db
from app.models import AuditEvent, User
from tests.admin_fixtures import Browser, build_world, events
from tests.conftest import login


@pytest.fixture
def world(app):
    with app.app_context():
        return build_world("collecting")


@pytest.fixture
def admin(app, world):
    return Browser(app, "admin1")


def uid(app, username: str) -> int:
    with app.app_context():
        return db.session.query(User.id).filter_by(username=username).scalar()


# ----------------------------------------------------------------------------- users


def test_users_list_and_create_with_affiliation(app, world, admin):
    html = admin.get("/admin/users").get_data(as_text=True)
    assert "长沙市科协" in html and "已停用" in html
    resp = admin.post("/admin/users", {"username": "expert9", "display_name": "赵九 研究员", "role": "reviewer",
                                       "affiliation_id": str(world.nominators["zz"]), "password": "secret-123"})
    assert resp.status_code == 303
    with app.app_context():
        u = users.by_username("expert9")
        assert (u.role, u.affiliation.name, u.display_name) == ("reviewer", "株洲市科协", "赵九 研究员")
        [ev] = events("user.create")
        assert ev.after["affiliation_id"] == world.nominators["zz"] and ev.actor_id == uid(app, "admin1")
    assert login(app.test_client(), "expert9", "secret-123").status_code == 303


@pytest.mark.parametrize("data,field_message", [
    ({"username": "", "role": "reviewer", "password": "secret-123"}, "用户名不能为空"),
    ({"username": "张 三", "role": "reviewer", "password": "secret-123"}, "用户名只能包含"),
    ({"username": "u" * 51, "role": "reviewer", "password": "secret-123"}, "用户名不能超过 50"),
    ({"username": "ok", "role": "king", "password": "secret-123"}, "请选择角色"),
    ({"username": "ok", "role": "reviewer", "password": "short"}, "密码至少需要 8 个字符"),
    ({"username": "ok", "role": "reviewer", "password": "p" * 129}, "密码不能超过 128"),
    ({"username": "ok", "role": "reviewer", "password": "secret-123", "affiliation_id": "999"}, "找不到该推荐单位"),
    ({"username": "r3", "role": "reviewer", "password": "secret-123"}, "已存在"),
])
def test_user_create_validation(app, world, admin, data, field_message):
    resp = admin.post("/admin/users", data)
    assert resp.status_code in (409, 422)
    html = resp.get_data(as_text=True)
    assert field_message in html
    assert "secret-123" not in html  # never echo a password
    with app.app_context():
        assert not events("user.create")


def test_user_edit_role_and_affiliation(app, world, admin):
    r3 = world.reviewers["r3"]
    resp = admin.post(f"/admin/users/{r3}", {"display_name": "", "role": "reviewer"})
    assert resp.status_code == 422 and "姓名不能为空" in resp.get_data(as_text=True)
    resp = admin.post(f"/admin/users/{r3}", {"display_name": "孙三", "role": "reviewer",
                                             "affiliation_id": str(world.nominators["soc"])})
    assert resp.status_code == 303
    with app.app_context():
        assert db.session.get(User, r3).affiliation_id == world.nominators["soc"]
        [ev] = events("user.update")
        assert ev.before["affiliation_id"] is None and ev.after["affiliation_id"] == world.nominators["soc"]
    me = uid(app, "admin1")
    resp = admin.post(f"/admin/users/{me}", {"display_name": "管理员", "role": "reviewer"})
    assert resp.status_code == 409 and "不能取消自己的管理员角色" in resp.get_data(as_text=True)
    assert admin.post("/admin/users/9999", {"display_name": "x", "role": "reviewer"}).status_code == 404


def test_deactivate_ends_sessions_and_activate(app, world, admin):
    reviewer = Browser(app, "r3")
    assert reviewer.get("/review/").status_code == 200
    r3 = world.reviewers["r3"]
    resp = admin.post(f"/admin/users/{r3}/active", {"active": "0", "back": "list"})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/admin/users")
    assert reviewer.get("/review/").status_code == 302  # signed out
    assert login(app.test_client(), "r3").status_code == 401
    assert admin.post(f"/admin/users/{r3}/active", {"active": "1"}).status_code == 303
    assert login(app.test_client(), "r3").status_code == 303
    with app.app_context():
        assert [e.action for e in events() if e.action in ("user.activate", "user.deactivate")] == [
            "user.deactivate", "user.activate"]
    me = uid(app, "admin1")
    resp = admin.post(f"/admin/users/{me}/active", {"active": "0"})
    assert resp.status_code == 409 and "不能停用自己的账号" in resp.get_data(as_text=True)


def test_reset_password_ends_sessions(app, world, admin):
    reviewer = Browser(app, "r4")
    r4 = world.reviewers["r4"]
    resp = admin.post(f"/admin/users/{r4}/password", {"password": "new-pass-1", "confirm": "new-pass-2"})
    assert resp.status_code == 422 and "两次输入的新密码不一致" in resp.get_data(as_text=True)
    resp = admin.post(f"/admin/users/{r4}/password", {"password": "short", "confirm": "short"})
    assert resp.status_code == 422 and "至少需要 8 个字符" in resp.get_data(as_text=True)
    resp = admin.post(f"/admin/users/{r4}/password", {"password": "new-pass-1", "confirm": "new-pass-1"})
    assert resp.status_code == 303
    assert reviewer.get("/review/").status_code == 302
    assert login(app.test_client(), "r4").status_code == 401
    assert login(app.test_client(), "r4", "new-pass-1").status_code == 303
    with app.app_context():
        [ev] = events("user.set_password")
        assert ev.object_id == r4 and ev.actor_id == uid(app, "admin1")


# ----------------------------------------------------------------------------- audit log: service


def _event(action, *, at, actor_id=None, obj=("round", 1), before=None, after=None, reason=""):
    db.session.add(AuditEvent(action=action, object_type=obj[0], object_id=obj[1], at=at, actor_id=actor_id,
                              before=before, after=after, reason=reason))


def test_search_filters_and_pages(app, world):
    with app.app_context():
        db.session.query(AuditEvent).delete()
        admin_id = db.session.query(User.id).filter_by(username="admin1").scalar()
        base = datetime(2024, 10, 1, 4, 0, tzinfo=UTC)
        for i in range(60):
            _event("assignment.add", at=base + timedelta(hours=i), actor_id=admin_id, obj=("nomination", i % 3))
        _event("round.phase", at=base + timedelta(days=5), before={"phase": "collecting"}, after={"phase": "reviewing"})
        _event("user.login", at=base, actor_id=admin_id, obj=("user", admin_id))
        db.session.commit()

        page = audit_log.search(audit_log.Filters())
        assert (page.total, page.pages, len(page.rows)) == (62, 2, 50)
        assert page.rows[0].event.action == "round.phase" and page.rows[0].actor == "系统"
        assert page.rows[1].actor == "ADMIN1（admin1）"
        ats = [r.event.at for r in page.rows]
        assert ats == sorted(ats, reverse=True)
        assert len(audit_log.search(audit_log.Filters(), page=2).rows) == 12
        assert audit_log.search(audit_log.Filters(), page=99).page == 2

        def total(**kw):
            return audit_log.search(audit_log.Filters(**kw)).total

        assert total(actor="admin1") == 61 and total(actor=audit_log.SYSTEM) == 1 and total(actor="nobody") == 0
        assert total(action="assignment.add") == 60 and total(action="assignment.") == 60
        assert total(action="assignment%") == 0  # not a LIKE pattern
        assert total(object_type="nomination", object_id=1) == 20
        assert total(date_from=date(2024, 10, 6)) == 1
        assert total(date_from=date(2024, 10, 2), date_to=date(2024, 10, 2)) in (24, 23, 25)  # local-day edges


def test_parse_filters_explains_bad_values(app):
    with app.test_request_context():
        _parse_filters_explains_bad_values()


def _parse_filters_explains_bad_values():
    f, errors = audit_filters.parse({"object_id": "abc", "date_from": "2024-13-01", "actor": " admin1 "})
    assert f.actor == "admin1" and f.object_id is None and f.date_from is None
    assert errors == {"object_id": "对象编号应为整数", "date_from": "开始日期格式应为 年-月-日"}
    f, errors = audit_filters.parse({"date_from": "2024-10-09", "date_to": "2024-10-01"})
    assert errors == {"date_to": "结束日期不能早于开始日期"} and f.date_to is None
    f, errors = audit_filters.parse({"actor": "a\x00dmin1", "action": "x" * 51, "object_id": "²"})
    assert f.actor == "admin1" and f.action == "" and f.object_id is None
    assert errors == {"action": "不能超过 50 字", "object_id": "对象编号应为整数"}


def test_diff_is_readable():
    changes = audit_log.diff({"phase": "collecting", "k": 2, "same": 1}, {"phase": "reviewing", "k": 2, "same": 1,
                                                                         "cap": None})
    assert [(c.key, c.label, c.before, c.after, c.kind) for c in changes] == [
        ("phase", "阶段", "材料收集", "专家评审", "changed"), ("cap", "每位专家上限", "", "—", "added")]
    created = audit_log.diff(None, {"name": "长沙市科协", "active": True, "quotas": {"city": 8}})
    assert [(c.key, c.label, c.after, c.kind) for c in created] == [
        ("name", "名称", "长沙市科协", "added"), ("active", "启用", "是", "added"), ("quotas", "推荐名额", "市州科协：8", "added")]
    assert [c.kind for c in audit_log.diff({"x": 1}, None)] == ["removed"]
    assert audit_log.diff(None, None) == []


# ----------------------------------------------------------------------------- audit log: pages


def test_audit_page_filters_diff_and_htmx_fragment(app, world, admin):
    admin.post(f"/admin/users/{world.reviewers['r3']}", {"display_name": "孙三", "role": "reviewer"})
    html = admin.get("/admin/audit").get_data(as_text=True)
    assert "修改账号<br>" in html and "R3" in html and "孙三" in html and "diff-changed" in html
    html = admin.get("/admin/audit?action=user.login").get_data(as_text=True)
    assert "修改账号<br>" not in html and "登录<br>" in html and "共 1 条" in html
    frag = admin.get("/admin/audit?action=user.update", headers={"HX-Request": "true"})
    body = frag.get_data(as_text=True)
    assert frag.status_code == 200 and "<html" not in body and "孙三" in body and "共 1 条" in body
    assert "HX-Request" in frag.headers["Vary"]
    bad = admin.get("/admin/audit?object_id=abc&date_to=yesterday")
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert "对象编号应为整数" in text and "结束日期格式应为" in text


def test_audit_csv_export(app, world, admin):
    admin.post("/admin/nominators", {"name": "=HYPERLINK(\"http://x\")", "kind": "city"})
    resp = admin.get("/admin/audit.csv?action=nominator.create")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    text = resp.get_data(as_text=True)
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0][:3] == ["时间", "操作人", "操作"] and len(rows) == 2
    assert rows[1][2] == "新增推荐单位" and rows[1][3] == "nominator.create"
    assert '=HYPERLINK' in rows[1][8] and not rows[1][8].startswith("=")


def test_user_service_guards(app, world):
    with app.app_context():
        admin_user = users.by_username("admin1")
        with pytest.raises(UserError):
            users.admin_set_active(admin_user.id, False, actor=admin_user)
        with pytest.raises(UserError) as exc:
            users.get_user(12345)
        assert exc.value.status == 404
