"""The reviewer workspace through the app: queue, nomination page, the score panel as htmx and
without JavaScript, submission, 回避, reopening, attachments, blind review."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event, func, select

from app.extensions import db
from app.models import AuditEvent, ReviewSheet, User
from app.review import scoring
from app.rounds import phases as rounds
from tests.conftest import csrf_token_from
from tests.review_fixtures import (
    HX,
    build_world,
    form_data,
    page_token,
    post_sheet,
    signed_in,
    stored_sheet,
    version_in,
)


@pytest.fixture
def world(app):
    with app.app_context():
        return build_world()


def _ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'data-nomination="(\d+)"', html)]


# --- queue -----------------------------------------------------------------------------------------

def test_queue_lists_my_assignments_without_recused_ones(app, world):
    html = signed_in(app, "rev1").get("/review/").get_data(as_text=True)
    assert _ids(html) == [world.unit_a, world.act_c, world.act_b]
    assert "继续评审" in html and f'href="/review/nominations/{world.unit_a}"' in html
    html2 = signed_in(app, "rev2").get("/review/").get_data(as_text=True)
    assert _ids(html2) == [world.act_b]  # the two 长沙 nominations are recused by affiliation
    assert "长沙市第一中学" not in html2


def test_queue_filters_progress_and_partial(app, world):
    client = signed_in(app, "rev1")
    with app.app_context():
        crit = world.criteria["activity"]
        scoring.save_sheet(db.session.get(User, world.rev1), world.act_b, {c: "10" for c in crit}, "", 0, submit=True)
    html = client.get("/review/").get_data(as_text=True)
    assert "已提交 1 · 评分中 0 · 未评分 2 · 共 3" in html
    assert re.search(r'class="progress-done"[^>]*width="33\.3"', html)
    assert "style=" not in html  # the strict CSP blocks style attributes
    assert _ids(client.get("/review/?state=unscored").get_data(as_text=True)) == [world.unit_a, world.act_c]
    assert _ids(client.get(f"/review/?nominator={world.zhuzhou}").get_data(as_text=True)) == [world.act_b]
    partial = client.get("/review/?category=activity", headers=HX)
    body = partial.get_data(as_text=True)
    assert "<html" not in body and body.lstrip().startswith('<div id="queue-results"')
    assert _ids(body) == [world.act_c, world.act_b]
    assert "HX-Request" in partial.headers["Vary"]


def test_queue_is_for_reviewers_only(app, world):
    assert signed_in(app, "chair1").get("/review/").status_code == 403
    assert app.test_client().get("/review/").status_code == 302


# --- nomination page ---------------------------------------------------------------------------------

def test_unit_page_shows_form_1_fields_masked_phone_and_media(app, world):
    resp = signed_in(app, "rev1").get(f"/review/nominations/{world.unit_a}")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    for label in ("附件1", "2024年全国科普日优秀组织单位推荐表", "单位名称", "联 系 人", "联系电话", "通讯地址",
                  "组织开展的活动场数", "服务人数", "组　织　情　况　简　介", "推荐意见", "湖南省科协<br>审定意见"):
        assert label in html, label
    assert "138****5678" in html and "13812345678" not in html
    assert f'src="/review/files/{world.photo}?thumb=1"' in html
    assert f'href="/review/files/{world.photo}"' in html
    assert f'<video class="video" controls preload="metadata" src="/review/files/{world.video}"' in html
    assert "style=" not in html and "<script>" not in html and " onclick" not in html


def test_activity_page_shows_form_2_fields(app, world):
    html = signed_in(app, "rev1").get(f"/review/nominations/{world.act_b}").get_data(as_text=True)
    for label in ("附件2", "优秀活动推荐表", "活动名称", "主办单位", "株洲市科技馆", "活动场数", "活　动　情　况　简　介"):
        assert label in html, label
    assert "0731****4455" in html or "****4455" in html
    assert "22334455" not in html


def test_recused_unassigned_and_unknown_nominations(app, world):
    rev2 = signed_in(app, "rev2")
    resp = rev2.get(f"/review/nominations/{world.unit_a}")
    assert resp.status_code == 403 and "回避" in resp.get_data(as_text=True)
    assert rev2.get(f"/review/files/{world.photo}?thumb=1").status_code == 403
    assert rev2.get(f"/review/files/{world.video}").status_code == 403
    token = page_token(rev2, world.act_b)
    resp = post_sheet(rev2, world.unit_a, form_data(token, world.criteria["unit"], [1, 1, 1, 1]))
    assert resp.status_code == 403
    with app.app_context():
        assert stored_sheet(world.rev2, world.unit_a) == (None, {})
        db.session.execute(db.text("DELETE FROM assignments WHERE reviewer_id = :r AND nomination_id = :n"),
                           {"r": world.rev3, "n": world.act_b})
        db.session.commit()
    rev3 = signed_in(app, "rev3")
    assert rev3.get(f"/review/nominations/{world.act_b}").status_code == 403
    assert rev3.get("/review/nominations/999999").status_code == 404
    assert rev3.get("/review/files/999999").status_code == 404


def test_chair_and_admin_see_the_page_with_the_breakdown_but_no_panel(app, world):
    with app.app_context():
        crit = world.criteria["activity"]
        scoring.save_sheet(db.session.get(User, world.rev3), world.act_b, {c: "10" for c in crit}, "", 0, submit=True)
    html = signed_in(app, "chair1").get(f"/review/nominations/{world.act_b}").get_data(as_text=True)
    assert "专家评分情况" in html and "REV3" in html and 'id="score-panel"' not in html
    assert "退回修改" not in html  # chair cannot reopen
    admin_html = signed_in(app, "admin1").get(f"/review/nominations/{world.act_b}").get_data(as_text=True)
    assert "退回修改" in admin_html and "0731-22334455" in admin_html


def test_blind_review_no_reviewer_page_shows_another_reviewers_work(app, world):
    marker = "第三位专家的独特意见XYZ"
    with app.app_context():
        crit = world.criteria["activity"]
        values = dict(zip(crit, ["17.5", "13.5", "27.5", "19.5"], strict=True))
        scoring.save_sheet(db.session.get(User, world.rev3), world.act_b, values, marker, 0, submit=True)
    client = signed_in(app, "rev1")
    token = page_token(client, world.act_b)
    pages = [
        client.get("/review/"), client.get("/review/?state=submitted"), client.get("/review/", headers=HX),
        client.get(f"/review/nominations/{world.act_b}"),
        post_sheet(client, world.act_b, form_data(token, world.criteria["activity"], [1, None, None, None])),
        post_sheet(client, world.act_b, form_data(token, world.criteria["activity"], [2, None, None, None])),  # 409
    ]
    for resp in pages:
        html = resp.get_data(as_text=True)
        assert marker not in html
        assert "REV3" not in html and "78" not in re.sub(r"<[^>]+>", " ", html).split()
        assert "17.5" not in html and "27.5" not in html


# --- the score panel, htmx ---------------------------------------------------------------------------

def test_htmx_save_answers_the_status_region_with_the_new_version(app, world):
    client = signed_in(app, "rev1")
    token = page_token(client, world.act_b)
    crit = world.criteria["activity"]
    resp = post_sheet(client, world.act_b, form_data(token, crit, [20, 15.5, None, None], comment="很好"))
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "<html" not in body and body.lstrip().startswith('<div id="sheet-status"')
    assert "已保存" in body and version_in(body) == 1
    assert "HX-Request" in resp.headers["Vary"]
    assert f'id="err-{crit[0]}" class="field-error" hx-swap-oob="true"></span>' in body
    resp = post_sheet(client, world.act_b, form_data(token, crit, [20, 16, 25, None], version=1, comment="很好"))
    assert version_in(resp.get_data(as_text=True)) == 2
    with app.app_context():
        sheet, values = stored_sheet(world.rev1, world.act_b)
        assert (sheet.version, sheet.comment, values) == (2, "很好", {crit[0]: 20, crit[1]: 16, crit[2]: 25})


def test_htmx_422_puts_the_error_beside_the_field_and_stores_nothing(app, world):
    client = signed_in(app, "rev1")
    token = page_token(client, world.act_b)
    crit = world.criteria["activity"]
    post_sheet(client, world.act_b, form_data(token, crit, [20, None, None, None]))
    resp = post_sheet(client, world.act_b, form_data(token, crit, [31, "abc", 10, None], version=1, comment="改"))
    body = resp.get_data(as_text=True)
    assert resp.status_code == 422 and "<html" not in body
    assert f'<span id="err-{crit[0]}" class="field-error" hx-swap-oob="true">不能超过满分 30</span>' in body
    assert f'<span id="err-{crit[1]}" class="field-error" hx-swap-oob="true">请输入数字' in body
    assert "评分未保存" in body and version_in(body) == 1
    with app.app_context():
        sheet, values = stored_sheet(world.rev1, world.act_b)
        assert (sheet.version, sheet.comment, values) == (1, "", {crit[0]: 20})


def test_htmx_409_on_a_stale_version_shows_the_stored_values(app, world):
    window_a, window_b = signed_in(app, "rev1"), signed_in(app, "rev1")
    token_a, token_b = page_token(window_a, world.act_b), page_token(window_b, world.act_b)
    crit = world.criteria["activity"]
    assert post_sheet(window_a, world.act_b, form_data(token_a, crit, [18, None, None, None], comment="窗口甲")).status_code == 200
    resp = post_sheet(window_b, world.act_b, form_data(token_b, crit, [5, 5, None, None], comment="窗口乙"))
    body = resp.get_data(as_text=True)
    assert resp.status_code == 409
    assert resp.headers["HX-Retarget"] == "#score-panel" and resp.headers["HX-Reswap"] == "outerHTML"
    assert "<html" not in body and body.lstrip().startswith('<section id="score-panel"')
    assert "此评分表已在其他窗口修改" in body
    assert f'name="score-{crit[0]}"' in body and re.search(rf'name="score-{crit[0]}"[^>]*value="18"', body, re.S)
    assert ">窗口甲</textarea>" in body and version_in(body) == 1
    assert "活动内容：5" in body  # what they had typed, listed for re-entry
    with app.app_context():
        assert stored_sheet(world.rev1, world.act_b)[1] == {crit[0]: 18}


def test_submit_needs_every_value_then_the_panel_is_read_only(app, world):
    client = signed_in(app, "rev1")
    token = page_token(client, world.act_b)
    crit = world.criteria["activity"]
    resp = post_sheet(client, world.act_b, form_data(token, crit, [20, None, 25, None], action="submit"))
    body = resp.get_data(as_text=True)
    assert resp.status_code == 422 and "活动形式、群众反映还没有评分" in body
    assert f'id="err-{crit[1]}" class="field-error" hx-swap-oob="true">提交前必须评分' in body
    resp = post_sheet(client, world.act_b, form_data(token, crit, [20, 15, 25, 18], comment="同意", action="submit"))
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and resp.headers["HX-Retarget"] == "#score-panel"
    assert "评分表已提交" in body and "<input" not in body.replace('type="hidden"', "")
    assert "<form" not in body and "78" in body
    page = client.get(f"/review/nominations/{world.act_b}").get_data(as_text=True)
    assert 'id="score-form"' not in page and "不能再修改" in page
    resp = post_sheet(client, world.act_b, form_data(token, crit, [1, 1, 1, 1], version=1))
    assert resp.status_code == 409 and "已提交" in resp.get_data(as_text=True)
    with app.app_context():
        sheet, values = stored_sheet(world.rev1, world.act_b)
        assert sheet.status == "submitted" and sum(values.values()) == 78


def test_save_and_next_redirects_to_the_next_unsubmitted(app, world):
    client = signed_in(app, "rev1")
    token = page_token(client, world.unit_a)
    resp = post_sheet(client, world.unit_a, form_data(token, world.criteria["unit"], [10, None, None, None], action="next"))
    assert resp.status_code == 200 and resp.headers["HX-Redirect"] == f"/review/nominations/{world.act_c}"
    resp = post_sheet(client, world.act_b, form_data(token, world.criteria["activity"], [10, None, None, None],
                                                     action="next"), htmx=False)
    assert resp.status_code == 303 and resp.headers["Location"] == f"/review/nominations/{world.unit_a}"
    follow = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "已为您打开下一个待评的推荐对象" in follow


def test_save_and_next_with_nothing_left_returns_to_the_queue(app, world):
    client = signed_in(app, "rev2")  # only act_b
    token = page_token(client, world.act_b)
    resp = post_sheet(client, world.act_b, form_data(token, world.criteria["activity"], [1, None, None, None],
                                                     action="next"), htmx=False)
    assert resp.status_code == 303 and resp.headers["Location"] == "/review/"


def test_save_needs_the_csrf_token_and_a_version(app, world):
    client = signed_in(app, "rev1")
    token = page_token(client, world.act_b)
    crit = world.criteria["activity"]
    data = form_data(token, crit, [1, None, None, None])
    del data["csrf_token"]
    assert post_sheet(client, world.act_b, data).status_code == 400
    data = form_data(token, crit, [1, None, None, None])
    data["version"] = "x"
    assert post_sheet(client, world.act_b, data, htmx=False).status_code == 400
    with app.app_context():
        assert stored_sheet(world.rev1, world.act_b) == (None, {})


# --- the score panel without JavaScript --------------------------------------------------------------

def test_page_has_the_panel_with_every_criterion_and_a_harmless_default_button(app, world):
    html = signed_in(app, "rev1").get(f"/review/nominations/{world.act_b}").get_data(as_text=True)
    for name, mx in (("活动内容", 30), ("活动形式", 20), ("活动影响力", 30), ("群众反映", 20)):
        assert name in html and f'max="{mx}"' in html
    assert html.count('inputmode="decimal"') == 4 and html.count('step="0.5"') == 4
    assert 'hx-sync="this:queue last"' in html and 'hx-target="#sheet-status"' in html
    assert 'maxlength="1000"' in html and 'name="version" value="0"' in html
    form = html[html.index('<form id="score-form"'):html.index("</form>", html.index('<form id="score-form"'))]
    buttons = re.findall(r'<button type="submit" name="action" value="(\w+)"', form)
    assert buttons == ["save", "next", "submit"]  # Enter without JS presses the first: 保存
    inputs = re.findall(r'name="(score-\d+|comment)"', form)
    assert inputs == [f"score-{c}" for c in world.criteria["activity"]] + ["comment"]  # tab order
    assert "tabindex" not in form


def test_no_js_save_redirects_303_back_with_the_values(app, world):
    client = signed_in(app, "rev1")
    token = page_token(client, world.act_b)
    crit = world.criteria["activity"]
    resp = post_sheet(client, world.act_b, form_data(token, crit, [20, 15.5, None, None], comment="无脚本"), htmx=False)
    assert resp.status_code == 303 and resp.headers["Location"] == f"/review/nominations/{world.act_b}"
    html = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "已保存" in html and 'name="version" value="1"' in html
    assert re.search(rf'name="score-{crit[1]}"[^>]*value="15.5"', html, re.S)
    assert ">无脚本</textarea>" in html


def test_no_js_errors_re_render_the_page_with_422_and_keep_the_input(app, world):
    client = signed_in(app, "rev1")
    token = page_token(client, world.act_b)
    crit = world.criteria["activity"]
    resp = post_sheet(client, world.act_b, form_data(token, crit, [20, 25, None, None], comment="保留"), htmx=False)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422 and "<html" in html
    assert f'<span id="err-{crit[1]}" class="field-error">不能超过满分 20</span>' in html
    assert re.search(rf'name="score-{crit[1]}"[^>]*value="25"', html, re.S)
    assert 'aria-invalid="true"' in html and ">保留</textarea>" in html
    with app.app_context():
        assert stored_sheet(world.rev1, world.act_b) == (None, {})


def test_no_js_submit_then_read_only(app, world):
    client = signed_in(app, "rev1")
    token = page_token(client, world.act_b)
    crit = world.criteria["activity"]
    resp = post_sheet(client, world.act_b, form_data(token, crit, [20, 15, 25, 18], action="submit"), htmx=False)
    assert resp.status_code == 303
    html = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "评分表已提交" in html and 'id="score-form"' not in html


# --- phase ---------------------------------------------------------------------------------------------

def test_after_the_phase_changes_a_save_is_refused_in_chinese_and_stores_nothing(app, world):
    client = signed_in(app, "rev1")
    token = page_token(client, world.act_b)
    crit = world.criteria["activity"]
    with app.app_context():
        rounds.change_phase(world.round_id, "deliberating")
    resp = post_sheet(client, world.act_b, form_data(token, crit, [20, 15, 25, 18]))
    assert resp.status_code == 409 and "评审阶段已结束，评分未保存。" in resp.get_data(as_text=True)
    resp = post_sheet(client, world.act_b, form_data(token, crit, [20, 15, 25, 18]), htmx=False)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 409 and "评审阶段已结束，评分未保存。" in html and 'id="score-form"' not in html
    with app.app_context():
        assert stored_sheet(world.rev1, world.act_b) == (None, {})
        assert db.session.scalar(select(func.count()).select_from(ReviewSheet)) == 0


# --- 回避 and reopening --------------------------------------------------------------------------------

def test_declaring_a_conflict_through_the_page(app, world):
    client = signed_in(app, "rev1")
    page = client.get(f"/review/nominations/{world.act_b}").get_data(as_text=True)
    token = csrf_token_from(page)
    assert "申请回避" in page
    resp = client.post(f"/review/nominations/{world.act_b}/recusal", data={"csrf_token": token, "reason": " "})
    assert resp.status_code == 422 and "请填写回避理由" in resp.get_data(as_text=True)
    resp = client.post(f"/review/nominations/{world.act_b}/recusal",
                       data={"csrf_token": token, "reason": "曾参与该活动的策划"})
    assert resp.status_code == 303 and resp.headers["Location"] == "/review/"
    queue = client.get("/review/").get_data(as_text=True)
    assert world.act_b not in _ids(queue) and "已声明回避" in queue
    assert client.get(f"/review/nominations/{world.act_b}").status_code == 403
    with app.app_context():
        event_ = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "recusal.declare"))
        assert event_.reason == "曾参与该活动的策划" and event_.actor_id == world.rev1


def test_admin_reopens_a_submitted_sheet_with_a_reason(app, world):
    with app.app_context():
        crit = world.criteria["activity"]
        sheet_id = scoring.save_sheet(db.session.get(User, world.rev1), world.act_b, {c: "10" for c in crit}, "",
                                      0, submit=True).id
    chair = signed_in(app, "chair1")
    token = csrf_token_from(chair.get(f"/review/nominations/{world.act_b}").get_data(as_text=True))
    assert chair.post(f"/review/sheets/{sheet_id}/reopen", data={"csrf_token": token, "reason": "x"}).status_code == 403
    admin = signed_in(app, "admin1")
    token = csrf_token_from(admin.get(f"/review/nominations/{world.act_b}").get_data(as_text=True))
    resp = admin.post(f"/review/sheets/{sheet_id}/reopen", data={"csrf_token": token, "reason": ""})
    assert resp.status_code == 422 and "请填写退回理由" in resp.get_data(as_text=True)
    resp = admin.post(f"/review/sheets/{sheet_id}/reopen", data={"csrf_token": token, "reason": "分数录错"})
    assert resp.status_code == 303
    with app.app_context():
        sheet = db.session.get(ReviewSheet, sheet_id)
        assert sheet.status == "draft" and sheet.version == 2
        assert db.session.scalar(select(AuditEvent.reason).where(AuditEvent.action == "sheet.reopen")) == "分数录错"
    # and the reviewer has an editable panel again
    html = signed_in(app, "rev1").get(f"/review/nominations/{world.act_b}").get_data(as_text=True)
    assert 'id="score-form"' in html and 'name="version" value="2"' in html


# --- attachments ---------------------------------------------------------------------------------------

def test_attachments_inline_with_range_and_private_cache(app, world):
    client = signed_in(app, "rev1")
    thumb = client.get(f"/review/files/{world.photo}?thumb=1")
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg" and thumb.data[:2] == b"\xff\xd8"
    full = client.get(f"/review/files/{world.photo}")
    assert full.status_code == 200 and len(full.data) > len(thumb.data)
    assert full.headers["Content-Disposition"].startswith("inline")
    assert full.headers["X-Content-Type-Options"] == "nosniff"
    assert "private" in full.headers["Cache-Control"] and "public" not in full.headers["Cache-Control"]
    video = client.get(f"/review/files/{world.video}", headers={"Range": "bytes=1000-1999"})
    assert video.status_code == 206
    assert video.headers["Content-Range"] == "bytes 1000-1999/102400"
    assert video.data == (bytes(range(256)) * 400)[1000:2000]
    assert video.mimetype == "video/mp4" and video.headers["Accept-Ranges"] == "bytes"
    assert client.get(f"/review/files/{world.video}?thumb=1").status_code == 404
    assert signed_in(app, "chair1").get(f"/review/files/{world.video}").status_code == 200


# --- few queries ----------------------------------------------------------------------------------------

def test_an_autosave_costs_few_statements(app, world):
    client = signed_in(app, "rev1")
    token = page_token(client, world.act_b)
    crit = world.criteria["activity"]
    post_sheet(client, world.act_b, form_data(token, crit, [20, 15, None, None]))
    statements = []
    with app.app_context():
        engine = db.engine

    def count(conn, cursor, statement, *args):
        statements.append(statement.split()[0].upper())

    event.listen(engine, "before_cursor_execute", count)
    try:
        resp = post_sheet(client, world.act_b, form_data(token, crit, [20, 16, 25, None], version=1))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert resp.status_code == 200
    # user, rubric, round (FOR SHARE), assignment (FOR UPDATE), sheet+scores, sheet, 2 score writes,
    # audit, ranking counter, and the fresh sheet after commit (BEGIN/COMMIT not counted)
    reads = [s for s in statements if s == "SELECT"]
    writes = [s for s in statements if s in ("INSERT", "UPDATE", "DELETE")]
    assert len(reads) <= 6, statements
    assert len(writes) <= 6, statements


def test_a_withdrawn_nomination_is_not_scored(app, world):
    client = signed_in(app, "rev1")
    token = page_token(client, world.act_b)
    with app.app_context():
        db.session.execute(db.text("UPDATE nominations SET status = 'withdrawn' WHERE id = :n"), {"n": world.act_b})
        db.session.commit()
    html = client.get(f"/review/nominations/{world.act_b}").get_data(as_text=True)
    assert "已撤回" in html and 'id="score-form"' not in html
    assert world.act_b not in _ids(client.get("/review/").get_data(as_text=True))
    resp = post_sheet(client, world.act_b, form_data(token, world.criteria["activity"], [1, None, None, None]))
    assert resp.status_code == 409 and "已撤回" in resp.get_data(as_text=True)
    with app.app_context():
        assert stored_sheet(world.rev1, world.act_b) == (None, {})


def test_refusals_never_echo_a_page_the_reviewer_may_not_see(app, world):
    """Bad input to someone else's nomination is answered 403, not with a 422 re-render of its page."""
    client = signed_in(app, "rev2")  # 长沙 nominations are recused for rev2
    token = page_token(client, world.act_b)
    for htmx in (True, False):
        resp = post_sheet(client, world.unit_a, form_data(token, world.criteria["unit"], [99, "x", None, None],
                                                           comment="长" * 1001), htmx=htmx)
        assert resp.status_code == 403
        assert "长沙市第一中学" not in resp.get_data(as_text=True)
    for reason in ("", "长" * 600):
        resp = client.post(f"/review/nominations/{world.unit_a}/recusal", data={"csrf_token": token, "reason": reason})
        assert resp.status_code == 403 and "长沙市第一中学" not in resp.get_data(as_text=True)


def test_odd_field_names_and_versions_are_refused_cleanly(app, world):
    client = signed_in(app, "rev1")
    token = page_token(client, world.act_b)
    crit = world.criteria["activity"]
    data = form_data(token, crit, [10, None, None, None])
    data.update({"score-²": "5", "score-": "5", "score-999999": "5", "score-" + "9" * 30: "1"})
    resp = post_sheet(client, world.act_b, data)
    assert resp.status_code == 200
    with app.app_context():
        assert stored_sheet(world.rev1, world.act_b)[1] == {crit[0]: 10}
    for version in ("²", "-1", "", "1e3"):
        data = form_data(token, crit, [11, None, None, None])
        data["version"] = version
        assert post_sheet(client, world.act_b, data).status_code in (400, 409)


def test_queue_links_to_my_own_expert_sheet(demo_client):
    from tests.conftest import login

    login(demo_client, "expert1")
    html = demo_client.get("/review/").get_data(as_text=True)
    assert "/reports/sheets/mine/unit.pdf" in html
    pdf = demo_client.get("/reports/sheets/mine/unit.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
