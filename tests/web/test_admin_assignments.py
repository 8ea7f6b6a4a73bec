"""The assignment pages: bulk runs, the matrix (plain form save and the htmx cell), one pair's page."""

from __future__ import annotations

import re

import pytest

from app.extensions import db
from app.models import Assignment, Recusal, Round, Score
from app.review import assignments
from tests.admin_fixtures import Browser, add_sheet, build_world, count, events

HX = {"HX-Request": "true"}


@pytest.fixture
def world(app):
    with app.app_context():
        return build_world("reviewing")


@pytest.fixture
def admin(app, world):
    return Browser(app, "admin1")


def test_run_all_then_balanced(app, world, admin):
    resp = admin.post("/admin/assignments/run", {"mode": "all", "scope": ""})
    assert resp.status_code == 303
    html = admin.get(resp.headers["Location"]).get_data(as_text=True)
    assert "已完成分配：新增 40 条" in html
    resp = admin.post("/admin/assignments/run", {"mode": "balanced", "k": "2", "cap": "", "scope": "unit"})
    assert resp.status_code == 303
    with app.app_context():
        assert count(Assignment) == 12 + 20  # unit re-planned with k=2, activity untouched (20)
        assert [e.action for e in events() if e.action.startswith("assignment.run")] == [
            "assignment.run_all", "assignment.run_balanced"]


@pytest.mark.parametrize("data,message", [
    ({"mode": "balanced", "k": "0"}, "每件推荐对象的专家数应为 1–50 的整数"),
    ({"mode": "balanced", "k": "abc"}, "每件推荐对象的专家数应为 1–50 的整数"),
    ({"mode": "balanced", "k": "2", "cap": "x"}, "每位专家上限应为"),
    ({"mode": "balanced", "k": "3", "cap": "2"}, "无法分配到足够的专家"),
    ({"mode": "lottery"}, "请选择分配方式"),
])
def test_run_validation_is_422_and_changes_nothing(app, world, admin, data, message):
    resp = admin.post("/admin/assignments/run", data)
    assert resp.status_code == 422
    assert message in resp.get_data(as_text=True)
    with app.app_context():
        assert count(Assignment) == 0 and not [e for e in events() if e.action.startswith("assignment.")]


def test_matrix_marks_recused_and_scored_cells(app, world, admin):
    with app.app_context():
        assignments.assign_all(world.round_id)
        add_sheet(world.reviewers["r3"], world.nominations["soc-unit-0"])
    html = admin.get("/admin/assignments?category=unit").get_data(as_text=True)
    r1, cs = world.reviewers["r1"], world.nominations["cs-unit-0"]
    r3, soc = world.reviewers["r3"], world.nominations["soc-unit-0"]
    assert f'value="{r1}-{cs}"' not in html  # recused: no checkbox
    assert "本单位推荐" in html and ">回避<" in html
    assert f'value="{r3}-{soc}"' not in html and "已评" in html  # scored: locked
    assert html.count('hx-post="/admin/assignments/cell"') == 6 * 4 - 4 - 1
    assert "长沙市科协" in html and "湖南省科普作家协会" in html


def test_matrix_pages_through_large_rounds(app, world, admin, monkeypatch):
    from app.review import assignment_views

    monkeypatch.setattr(assignment_views, "PER_PAGE", 4)
    html = admin.get("/admin/assignments?category=unit&page=2").get_data(as_text=True)
    assert "第 2 / 2 页" in html and "上一页" in html and "下一页" not in html
    assert "长沙市科协unit0" not in html and "湖南省科普作家协会unit1" in html
    assert admin.get("/admin/assignments?category=bogus&page=-4").status_code == 200


def test_htmx_cell_toggle_returns_the_cell_and_counts(app, world, admin):
    r3, n = world.reviewers["r3"], world.nominations["zz-activity-0"]
    key = f"{r3}-{n}"
    resp = admin.post("/admin/assignments/cell", {"cell": key, "a": key, "category": "activity"}, headers=HX)
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert f'value="{key}"' in html and "checked" in html and "is-assigned" in html
    assert re.search(rf'id="load-{r3}" hx-swap-oob="true">1<', html)
    assert re.search(rf'id="count-{n}" hx-swap-oob="true">1<', html)
    assert "<html" not in html
    resp = admin.post("/admin/assignments/cell", {"cell": key, "a": "1-1"}, headers=HX)  # unchecked now
    assert resp.status_code == 200 and re.search(rf'id="load-{r3}" hx-swap-oob="true">0<', resp.get_data(as_text=True))
    with app.app_context():
        assert count(Assignment) == 0
        assert [e.action for e in events() if e.action.startswith("assignment.")] == [
            "assignment.add", "assignment.remove"]


def test_htmx_cell_refuses_recused_with_a_fragment(app, world, admin):
    r1, cs = world.reviewers["r1"], world.nominations["cs-unit-0"]
    key = f"{r1}-{cs}"
    resp = admin.post("/admin/assignments/cell", {"cell": key, "a": key}, headers=HX)
    assert resp.status_code == 409
    assert resp.headers["HX-Retarget"] == "#flash-region"
    assert "须回避" in resp.get_data(as_text=True)
    with app.app_context():
        assert count(Assignment) == 0


def test_cell_with_a_bad_key_is_400(admin):
    assert admin.post("/admin/assignments/cell", {"cell": "x-1"}, headers=HX).status_code == 400


def test_plain_form_page_save(app, world, admin):
    r3, r4 = world.reviewers["r3"], world.reviewers["r4"]
    a, b = world.nominations["soc-unit-0"], world.nominations["soc-unit-1"]
    data = {"row": [a, b], "col": [r3, r4], "a": [f"{r3}-{a}", f"{r4}-{b}"], "category": "unit", "page": "1"}
    resp = admin.post("/admin/assignments/page", data)
    assert resp.status_code == 303 and "category=unit" in resp.headers["Location"]
    assert "本页已保存：新增 2 条" in admin.get(resp.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        assert count(Assignment) == 2
    r1, cs = world.reviewers["r1"], world.nominations["cs-unit-0"]
    resp = admin.post("/admin/assignments/page", {"row": [cs], "col": [r1], "a": [f"{r1}-{cs}"]})
    assert resp.status_code == 409 and "须回避" in resp.get_data(as_text=True)
    resp = admin.post("/admin/assignments/page", {"row": [9999], "col": [r1]})
    assert resp.status_code == 409 and "页面数据已过期" in resp.get_data(as_text=True)


def test_pair_page_removal_of_scored_assignment_needs_reason(app, world, admin):
    r3, n = world.reviewers["r3"], world.nominations["soc-activity-0"]
    with app.app_context():
        assignments.set_assignment(r3, n, True)
        add_sheet(r3, n)
    page = admin.get(f"/admin/assignments/pair?reviewer={r3}&nomination={n}").get_data(as_text=True)
    assert "已提交，4 项评分" in page and "理由（必填）" in page
    resp = admin.post("/admin/assignments/pair", {"reviewer": r3, "nomination": n, "action": "unassign", "reason": ""})
    assert resp.status_code == 422
    assert "取消分配必须填写理由" in resp.get_data(as_text=True)
    resp = admin.post("/admin/assignments/pair", {"reviewer": r3, "nomination": n, "action": "unassign",
                                                  "reason": "专家因病无法完成"})
    assert resp.status_code == 303
    with app.app_context():
        assert count(Assignment) == 0 and count(Score) == 4
        assert events("assignment.remove")[0].reason == "专家因病无法完成"


def test_pair_page_recusal(app, world, admin):
    r4, n = world.reviewers["r4"], world.nominations["zz-unit-1"]
    resp = admin.post("/admin/assignments/pair", {"reviewer": r4, "nomination": n, "action": "recuse",
                                                  "recusal_reason": ""})
    assert resp.status_code == 422 and "登记回避必须填写理由" in resp.get_data(as_text=True)
    resp = admin.post("/admin/assignments/pair", {"reviewer": r4, "nomination": n, "action": "recuse",
                                                  "recusal_reason": "该专家为项目顾问"})
    assert resp.status_code == 303
    page = admin.get(resp.headers["Location"]).get_data(as_text=True)
    assert "已登记回避：该专家为项目顾问" in page and "撤销回避登记" in page
    resp = admin.post("/admin/assignments/pair", {"reviewer": r4, "nomination": n, "action": "assign"})
    assert resp.status_code == 409 and "须回避" in resp.get_data(as_text=True)
    assert admin.post("/admin/assignments/pair", {"reviewer": r4, "nomination": n, "action": "unrecuse"}).status_code == 303
    with app.app_context():
        assert count(Recusal) == 0
    assert admin.post("/admin/assignments/pair", {"reviewer": r4, "nomination": n, "action": "fly"}).status_code == 400
    assert admin.get("/admin/assignments/pair?reviewer=999&nomination=1").status_code == 404


def test_matrix_read_only_after_reviewing(app, world, admin):
    with app.app_context():
        assignments.assign_all(world.round_id)
        db.session.get(Round, world.round_id).phase = "deliberating"
        db.session.commit()
    html = admin.get("/admin/assignments").get_data(as_text=True)
    assert "分配只读" in html and "hx-post" not in html and "保存本页" not in html
    resp = admin.post("/admin/assignments/run", {"mode": "all"})
    assert resp.status_code == 409 and "不能再调整" in resp.get_data(as_text=True)
