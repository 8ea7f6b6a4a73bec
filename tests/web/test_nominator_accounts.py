"""推荐单位 accounts: the unit they belong to, one-time passwords and invitation links, the forced first
password, the bulk import from the registry XLSX, deactivation and 重置密码, the CLI."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.accounts import operations as users
from app.extensions import db
from app.models import AuditEvent, OutboxMessage, User
from app.models._base import utcnow
from tests import mail_fixtures
from tests.admin_fixtures import Browser, build_world, events
from tests.conftest import csrf_token_from, login
from tests.intake_fixtures import make_xlsx

smtp_server = mail_fixtures.smtp_server
_SECRET = re.compile(r'<code class="secret">([^<]+)</code>')


@pytest.fixture
def app(app_factory, smtp_server):
    app = app_factory(smtp_server.config())
    with app.app_context():
        app.world = build_world("collecting")
    return app


@pytest.fixture
def admin(app):
    return Browser(app, "admin1")


def _nominators(app) -> list[User]:
    with app.app_context():
        return list(db.session.scalars(select(User).where(User.role == "nominator").order_by(User.id)))


def _user(app, username) -> User:
    with app.app_context():
        return users.by_username(username)


def _create(admin, app, **extra):
    data = {"username": "cs-unit", "display_name": "张联络", "role": "nominator",
            "affiliation_id": str(app.world.nominators["cs"]), "email": "cs@unit.example", "phone": "0731-1234567",
            "credential": "otp", **extra}
    return admin.post("/admin/users", data)


def _secret(resp) -> str:
    [secret] = _SECRET.findall(resp.get_data(as_text=True))
    return secret.replace("&amp;", "&")


def _set_password_client(app, username, password):
    client = app.test_client()
    resp = login(client, username, password)
    assert resp.status_code == 303, resp.get_data(as_text=True)[:300]
    return client, resp


# ----------------------------------------------------------------------------- one by one


def test_a_nominator_account_needs_its_unit(app, admin):
    resp = _create(admin, app, affiliation_id="")
    assert resp.status_code == 422 and "推荐单位账号必须选择所属推荐单位" in resp.get_data(as_text=True)
    assert _nominators(app) == []
    with app.app_context(), pytest.raises(Exception, match="推荐单位账号必须绑定一个推荐单位"):
        users.create_user("x1", "X", "nominator", "secret-123")


def test_one_time_password_is_shown_once_and_must_be_replaced(app, admin):
    resp = _create(admin, app)
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    otp = _secret(resp)
    page = resp.get_data(as_text=True)
    assert "长沙市科协" in page and "cs-unit" in page and "只显示这一次" in page
    [u] = _nominators(app)
    assert (u.affiliation_id, u.email, u.phone, u.must_change_password) == (
        app.world.nominators["cs"], "cs@unit.example", "0731-1234567", True)
    with app.app_context():
        [ev] = events("user.credential")
        assert ev.after["credential"] == "otp" and otp not in str(ev.after)
    # The list does not show it again.
    assert otp not in admin.get("/admin/users").get_data(as_text=True)

    other, _ = _set_password_client(app, "cs-unit", otp)  # a second browser, signed in with the same OTP
    client, resp = _set_password_client(app, "cs-unit", otp)
    assert resp.headers["Location"].endswith("/account/set-password")
    # Every page leads to 设置新密码 until it is done; static files, the page itself and logout stay open.
    for url in ("/", "/account", "/portal/", "/admin/users", "/review/"):
        r = client.get(url)
        assert r.status_code == 303 and r.headers["Location"].endswith("/account/set-password"), url
    hx = client.get("/account", headers={"HX-Request": "true"})
    assert hx.status_code == 401 and hx.headers["HX-Redirect"].endswith("/account/set-password")
    assert client.get("/static/css/app.css").status_code == 200
    form = client.get("/account/set-password")
    assert form.status_code == 200 and "一次性密码" in form.get_data(as_text=True)
    token = csrf_token_from(form.get_data(as_text=True))
    # The password rules of the ordinary change apply.
    short = client.post("/account/set-password", data={"csrf_token": token, "new": "short", "confirm": "short"})
    assert short.status_code == 422 and "密码至少需要 8 个字符" in short.get_data(as_text=True)
    mismatch = client.post("/account/set-password", data={"csrf_token": token, "new": "unit-pass-1", "confirm": "x"})
    assert mismatch.status_code == 422 and "两次输入的新密码不一致" in mismatch.get_data(as_text=True)
    assert client.post("/account/set-password", data={"new": "unit-pass-1", "confirm": "unit-pass-1"}).status_code == 400
    assert _user(app, "cs-unit").must_change_password
    ok = client.post("/account/set-password", data={"csrf_token": token, "new": "unit-pass-1", "confirm": "unit-pass-1"})
    assert ok.status_code == 303 and not ok.headers["Location"].endswith("/account/set-password")
    # This browser continues; the other session (same OTP) has ended; the OTP no longer works.
    assert client.get("/account").status_code == 200
    assert other.get("/account").status_code == 302
    assert login(app.test_client(), "cs-unit", otp).status_code == 401
    assert login(app.test_client(), "cs-unit", "unit-pass-1").headers["Location"].endswith("/portal/")
    u = _user(app, "cs-unit")
    assert not u.must_change_password and u.invite_token_hash is None
    with app.app_context():
        [ev] = events("user.first_password")
        assert ev.actor_id == u.id
    # Done once: the page now sends to the ordinary password change.
    assert client.get("/account/set-password").headers["Location"].endswith("/account")


def test_invitation_link_mailed_opens_the_account_once(app, admin, smtp_server):
    resp = _create(admin, app, credential="invite", mail_invite="y")
    assert resp.status_code == 200
    link = _secret(resp)
    assert "/accounts/invite/" in link and "已发至 cs@unit.example" in resp.get_data(as_text=True)
    [got] = smtp_server.wait_for(1)
    assert got.to == "cs@unit.example" and got.subject == "【科普日评选】推荐单位账号邀请"
    assert link in got.body and "长沙市科协" in got.body and "cs-unit" in got.body
    assert "株洲" not in got.body  # no other unit's data
    u = _user(app, "cs-unit")
    token = link.rsplit("/", 1)[1]
    assert u.invite_token_hash and token not in u.invite_token_hash  # only sha256(token) is stored
    assert u.invite_expires_at is not None
    # No password works before the link is used.
    assert login(app.test_client(), "cs-unit", "!invited").status_code == 401

    client = app.test_client()
    path = "/accounts/invite/" + token
    page = client.get(path)
    assert page.status_code == 200 and "cs-unit" in page.get_data(as_text=True)
    csrf = csrf_token_from(page.get_data(as_text=True))
    bad = client.post(path, data={"csrf_token": csrf, "new": "unit-pass-1", "confirm": "other-pass"})
    assert bad.status_code == 422
    done = client.post(path, data={"csrf_token": csrf, "new": "unit-pass-1", "confirm": "unit-pass-1"})
    assert done.status_code == 303 and done.headers["Location"].endswith("/portal/")
    assert client.get("/account").status_code == 200  # signed in, no password owed
    used = app.test_client().get(path)
    assert used.status_code == 404 and "无效或已被使用" in used.get_data(as_text=True)
    assert login(app.test_client(), "cs-unit", "unit-pass-1").status_code == 303
    with app.app_context():
        assert [e.actor_id for e in events("user.invite_accept")] == [u.id]


def test_an_expired_invitation_is_a_clear_410(app, admin):
    token = _secret(_create(admin, app, credential="invite")).rsplit("/", 1)[1]
    with app.app_context():
        u = users.by_username("cs-unit")
        u.invite_expires_at = utcnow() - timedelta(minutes=1)
        db.session.commit()
    client = app.test_client()
    resp = client.get("/accounts/invite/" + token)
    assert resp.status_code == 410 and "已过期" in resp.get_data(as_text=True)
    csrf = csrf_token_from(client.get("/login").get_data(as_text=True))
    post = client.post("/accounts/invite/" + token, data={"csrf_token": csrf, "new": "unit-pass-1",
                                                          "confirm": "unit-pass-1"})
    assert post.status_code == 410
    assert _user(app, "cs-unit").must_change_password
    assert app.test_client().get("/accounts/invite/" + "x" * 43).status_code == 404
    assert app.test_client().get("/accounts/invite/" + "x" * 500).status_code == 404


def test_invite_days_is_configurable(app_factory):
    app = app_factory({"INVITE_DAYS": 2})
    with app.app_context():
        build_world("collecting")
    admin = Browser(app, "admin1")
    admin.post("/admin/users", {"username": "u2", "role": "nominator", "credential": "invite",
                                "affiliation_id": str(db_id(app, "株洲市科协"))})
    u = _user(app, "u2")
    left = u.invite_expires_at.replace(tzinfo=None) - utcnow().replace(tzinfo=None)
    assert timedelta(days=1, hours=23) < left <= timedelta(days=2)


def db_id(app, name) -> int:
    from app.models import Nominator

    with app.app_context():
        return db.session.scalar(select(Nominator.id).where(Nominator.name == name))


# ----------------------------------------------------------------------------- deactivate, 重置密码


def test_deactivating_a_nominator_ends_its_sessions(app, admin):
    otp = _secret(_create(admin, app))
    client, _ = _set_password_client(app, "cs-unit", otp)
    token = csrf_token_from(client.get("/account/set-password").get_data(as_text=True))
    client.post("/account/set-password", data={"csrf_token": token, "new": "unit-pass-1", "confirm": "unit-pass-1"})
    assert client.get("/account").status_code == 200
    uid = _user(app, "cs-unit").id
    assert admin.post(f"/admin/users/{uid}/active", {"active": "0"}).status_code == 303
    assert client.get("/account").status_code == 302  # back to the sign-in page
    assert login(app.test_client(), "cs-unit", "unit-pass-1").status_code == 401


def test_reset_issues_a_new_one_time_password_and_ends_sessions(app, admin):
    otp = _secret(_create(admin, app))
    client, _ = _set_password_client(app, "cs-unit", otp)
    uid = _user(app, "cs-unit").id
    page = admin.get(f"/admin/users/{uid}").get_data(as_text=True)
    assert "重置密码" in page and 'value="cs@unit.example"' in page
    resp = admin.post(f"/admin/users/{uid}/credential", {"credential": "otp"})
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    new = _secret(resp)
    assert new != otp
    assert client.get("/account/set-password").status_code == 302  # the old session ended
    assert login(app.test_client(), "cs-unit", otp).status_code == 401
    assert login(app.test_client(), "cs-unit", new).headers["Location"].endswith("/account/set-password")
    # An invitation instead, mailed: a new link, and the one-time password stops working.
    resp = admin.post(f"/admin/users/{uid}/credential", {"credential": "invite"})
    assert "/accounts/invite/" in _secret(resp)
    assert login(app.test_client(), "cs-unit", new).status_code == 401
    assert admin.post(f"/admin/users/{uid}/credential", {"credential": "bogus"}).status_code == 422


def test_reset_of_ones_own_account_and_wrong_methods_are_refused(app, admin):
    me = _user(app, "admin1").id
    assert admin.post(f"/admin/users/{me}/credential", {"credential": "otp"}).status_code == 409
    assert admin.get(f"/admin/users/{me}/credential").status_code == 405
    assert admin.post(f"/admin/users/{me}/credential", {"credential": "otp"}, csrf=False).status_code == 400
    assert admin.post("/admin/users/999999/credential", {"credential": "otp"}).status_code == 404


def test_the_edit_page_requires_a_unit_for_a_nominator(app, admin):
    uid = _user(app, "r3").id
    resp = admin.post(f"/admin/users/{uid}", {"display_name": "R3", "role": "nominator", "affiliation_id": ""})
    assert resp.status_code == 422 and "推荐单位账号必须选择所属推荐单位" in resp.get_data(as_text=True)
    bad_mail = admin.post(f"/admin/users/{uid}", {"display_name": "R3", "role": "reviewer", "email": "nope"})
    assert bad_mail.status_code == 422 and "电子邮箱格式不正确" in bad_mail.get_data(as_text=True)
    assert _user(app, "r3").role == "reviewer" and _user(app, "r3").email == ""


# ----------------------------------------------------------------------------- bulk import


def registry_xlsx(rows, headers=("单位名称", "联系人姓名", "手机", "邮箱")) -> bytes:
    return make_xlsx(list(headers), [list(row) for row in rows], header_row=2)  # a title row above the header


ROWS = [("长沙市科协", "张三", "13800000001", "cs@unit.example"),
        ("株洲市科协", "李四", 13800000002, ""),
        ("湖南省科普作家协会", "王五", "0731-8888", "soc@unit.example")]


def _upload(admin, data: bytes, **extra):
    return admin.post("/admin/users/import", {"file": (io.BytesIO(data), "registry.xlsx"), "credential": "otp",
                                              **extra}, content_type="multipart/form-data")


def _confirm(admin, preview):
    [payload] = re.findall(r'name="payload" value="([^"]+)"', preview.get_data(as_text=True))
    return admin.post("/admin/users/import/confirm", {"payload": payload})


def _state(app):
    with app.app_context():
        return sorted((u.username, u.affiliation.name, u.display_name, u.phone, u.email, u.must_change_password)
                      for u in db.session.scalars(select(User).where(User.role == "nominator")))


def test_bulk_import_creates_one_account_per_unit_and_a_printable_list(app, admin):
    preview = _upload(admin, registry_xlsx(ROWS))
    html = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "新建 3 个账号" in html and "确认导入" in html
    assert _nominators(app) == []  # the preview writes nothing
    done = _confirm(admin, preview)
    assert done.status_code == 200 and done.headers["Cache-Control"] == "no-store"
    secrets_shown = _SECRET.findall(done.get_data(as_text=True))
    assert len(secrets_shown) == 3 and len(set(secrets_shown)) == 3
    w = app.world.nominators
    assert _state(app) == sorted([
        (f"dw{w['cs']:03d}", "长沙市科协", "张三", "13800000001", "cs@unit.example", True),
        (f"dw{w['zz']:03d}", "株洲市科协", "李四", "13800000002", "", True),
        (f"dw{w['soc']:03d}", "湖南省科普作家协会", "王五", "0731-8888", "soc@unit.example", True)])
    with app.app_context():
        [ev] = events("user.import")
        assert ev.after["created"] == 3
    # Each printed password signs its own unit in.
    row = re.search(r"<td>株洲市科协</td>\s*<td><code>(\w+)</code></td>.*?class=\"secret\">([^<]+)<",
                    done.get_data(as_text=True), re.S)
    assert login(app.test_client(), row.group(1), row.group(2)).headers["Location"].endswith("/account/set-password")


def test_reimport_updates_contacts_and_never_duplicates(app, admin, smtp_server):
    _confirm(admin, _upload(admin, registry_xlsx(ROWS)))
    before = _nominators(app)
    changed = [("长沙市科协", "张三丰", "13900000009", "new@unit.example"), ROWS[1], ROWS[2]]
    preview = _upload(admin, registry_xlsx(changed))
    html = preview.get_data(as_text=True)
    assert "新建 0 个账号，更新 1 个，无变化 2 个" in html
    done = _confirm(admin, preview)
    assert done.status_code == 303  # nothing new to show: back to the list
    after = _nominators(app)
    assert [u.id for u in after] == [u.id for u in before]
    assert [u.password_hash for u in after] == [u.password_hash for u in before]  # no credential re-issued
    cs = next(u for u in after if u.affiliation_id == app.world.nominators["cs"])
    assert (cs.display_name, cs.phone, cs.email) == ("张三丰", "13900000009", "new@unit.example")
    # A file without the e-mail column keeps the addresses; a new unit row creates only that account.
    preview = _upload(admin, registry_xlsx([("长沙市科协", "张三丰", "1")], headers=("推荐单位", "联系人", "联系电话")))
    _confirm(admin, preview)
    cs = _user(app, cs.username)
    assert (cs.phone, cs.email) == ("1", "new@unit.example")
    assert smtp_server.messages == []


def test_bulk_invitations_are_mailed_to_units_with_an_address(app, admin, smtp_server):
    done = _confirm(admin, _upload(admin, registry_xlsx(ROWS), credential="invite", mail_invite="y"))
    assert done.status_code == 200
    got = smtp_server.wait_for(2)
    assert sorted(g.to for g in got) == ["cs@unit.example", "soc@unit.example"]
    for g in got:
        unit = "长沙市科协" if g.to.startswith("cs") else "湖南省科普作家协会"
        other = "湖南省科普作家协会" if unit == "长沙市科协" else "长沙市科协"
        assert unit in g.body and other not in g.body and "/accounts/invite/" in g.body
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 2


@pytest.mark.parametrize("rows,message", [
    ([ROWS[0], ("不存在的单位", "赵六", "1", "")], "系统中没有推荐单位「不存在的单位」"),
    ([ROWS[0], ("长沙市科协", "重复", "1", "")], "与第 3 行重复"),
    ([("株洲市科协", "李四", "1", "not-an-address")], "电子邮箱「not-an-address」格式不正确"),
    ([("", "无单位", "1", "")], "推荐单位为空"),
])
def test_a_bad_row_refuses_the_whole_file(app, admin, rows, message):
    resp = _upload(admin, registry_xlsx(rows))
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422 and message in html and "确认导入" not in html and "未做任何改动" in html
    assert _nominators(app) == []


@pytest.mark.parametrize("data,message", [
    (b"not a spreadsheet", "请上传 Excel .xlsx 格式的表格"),
    (b"PK\x03\x04broken", "无法读取该表格文件"),
    (registry_xlsx([("长沙市科协",)], headers=("名称", "备注")), "找不到表头"),
])
def test_a_bad_file_is_refused_in_chinese(app, admin, data, message):
    resp = _upload(admin, data)
    assert resp.status_code in (413, 422) and message in resp.get_data(as_text=True)
    assert _nominators(app) == []
    with app.app_context():
        assert events("user.import") == []


def test_a_huge_file_is_refused_without_reading_it_all(app, admin):
    resp = _upload(admin, b"PK" + b"\0" * (2 * 1024 * 1024 + 10))
    assert resp.status_code == 413 and "文件过大" in resp.get_data(as_text=True)


def test_short_names_match_and_a_tampered_payload_is_refused(app, admin):
    with app.app_context():
        from app.models import Nominator

        db.session.get(Nominator, app.world.nominators["soc"]).short_name = "省科普作协"
        db.session.commit()
    preview = _upload(admin, registry_xlsx([("省科普作协", "王五", "1", "")]))
    assert preview.status_code == 200 and "湖南省科普作家协会" in preview.get_data(as_text=True)
    [payload] = re.findall(r'name="payload" value="([^"]+)"', preview.get_data(as_text=True))
    forged = admin.post("/admin/users/import/confirm", {"payload": payload[:-3] + "abc"})
    assert forged.status_code == 400 and "重新上传" in forged.get_data(as_text=True)
    assert admin.post("/admin/users/import/confirm", {"payload": payload}, csrf=False).status_code == 400
    assert _nominators(app) == []
    # A unit renamed between preview and confirm: the confirm re-checks and refuses.
    with app.app_context():
        from app.models import Nominator

        db.session.get(Nominator, app.world.nominators["soc"]).short_name = ""
        db.session.commit()
    stale = admin.post("/admin/users/import/confirm", {"payload": payload})
    assert stale.status_code == 422 and "省科普作协" in stale.get_data(as_text=True)
    assert _nominators(app) == []


def test_the_template_round_trips(app, admin):
    _confirm(admin, _upload(admin, registry_xlsx(ROWS)))
    resp = admin.get("/admin/users/import/template.xlsx")
    assert resp.status_code == 200 and resp.mimetype.endswith("spreadsheetml.sheet")
    preview = _upload(admin, resp.data)
    assert preview.status_code == 200 and "新建 0 个账号，更新 0 个，无变化 3 个" in preview.get_data(as_text=True)


@pytest.mark.parametrize("username", ["r1", "chair1"])
def test_other_roles_cannot_manage_accounts(app, username):
    other = Browser(app, username)
    for url in ("/admin/users/import", "/admin/users/import/template.xlsx"):
        assert other.get(url).status_code == 403
    assert other.post("/admin/users/import/confirm", {"payload": "x"}).status_code == 403
    uid = _user(app, "r3").id
    assert other.post(f"/admin/users/{uid}/credential", {"credential": "otp"}).status_code == 403
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action.in_(("user.credential", "user.import")))) == 0


def test_a_nominator_account_cannot_reach_the_admin_pages(app, admin):
    otp = _secret(_create(admin, app))
    client, _ = _set_password_client(app, "cs-unit", otp)
    token = csrf_token_from(client.get("/account/set-password").get_data(as_text=True))
    client.post("/account/set-password", data={"csrf_token": token, "new": "unit-pass-1", "confirm": "unit-pass-1"})
    for url in ("/admin/users", "/admin/users/import", "/admin/mail"):
        assert client.get(url).status_code == 403, url
    uid = _user(app, "r3").id
    assert client.post(f"/admin/users/{uid}/credential", data={"csrf_token": token, "credential": "otp"}).status_code == 403


# ----------------------------------------------------------------------------- CLI


def test_cli_requires_the_unit_for_a_nominator(app):
    runner = app.test_cli_runner()
    out = runner.invoke(args=["users", "create", "unit9", "--role", "nominator", "--password", "secret-123"])
    assert out.exit_code != 0 and "--unit" in out.output
    out = runner.invoke(args=["users", "create", "unit9", "--role", "nominator", "--unit", "不存在",
                              "--password", "secret-123"])
    assert out.exit_code != 0 and "找不到推荐单位" in out.output
    out = runner.invoke(args=["users", "create", "unit9", "--role", "nominator", "--unit", "株洲市科协",
                              "--password", "secret-123"])
    assert out.exit_code == 0, out.output
    u = _user(app, "unit9")
    assert (u.affiliation_id, u.must_change_password) == (app.world.nominators["zz"], True)
