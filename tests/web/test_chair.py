"""The deliberation page over HTTP: who may do what, htmx fragments and the no-JS path, reasons,
opinions, the seal upload, the phase moves, and nothing changing after 定稿."""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import select

from app.deliberation import operations as decisions
from app.demo.final import make_seal_png
from app.extensions import db
from app.models import AuditEvent, Decision, ReviewSheet, Round, Score
from app.review import scoring
from tests.chair_fixtures import build_small_round
from tests.conftest import csrf_token_from, login

HX = {"HX-Request": "true"}


@pytest.fixture
def small(app):
    with app.app_context():
        return build_small_round()


@pytest.fixture
def chair(app, small):
    client = app.test_client()
    login(client, "chair")
    return client


@pytest.fixture
def admin(app, small):
    client = app.test_client()
    login(client, "admin")
    return client


def _token(client, url="/chair/activity") -> str:
    return csrf_token_from(client.get(url).get_data(as_text=True))


def _decision(app, nomination_id):
    with app.app_context():
        d = db.session.scalar(select(Decision).where(Decision.nomination_id == nomination_id))
        return None if d is None else (d.outcome, d.opinion, d.override_reason, d.version)


def _scores(reviewer_id: int, nomination_id: int) -> list[float]:
    return sorted(db.session.scalars(
        select(Score.value).join(ReviewSheet, ReviewSheet.id == Score.sheet_id)
        .where(ReviewSheet.reviewer_id == reviewer_id, ReviewSheet.nomination_id == nomination_id)))


def _post(client, url, data=None, headers=None, **kw):
    data = dict(data or {})
    data.setdefault("csrf_token", _token(client))
    return client.post(url, data=data, headers=headers or {}, **kw)


def test_reviewers_and_anonymous_users_are_kept_out(app, small):
    anon = app.test_client()
    assert anon.get("/chair/activity").status_code in (302, 401)
    reviewer = app.test_client()
    login(reviewer, "r1")
    assert reviewer.get("/chair/activity").status_code == 403
    token = csrf_token_from(reviewer.get("/reports/").get_data(as_text=True))
    for url, data in [(f"/chair/decide/{small.noms['A1']}", {"outcome": "approve"}),
                      ("/chair/activity/prefill", {}), (f"/chair/opinion/{small.noms['A1']}", {"opinion": "x"}),
                      ("/chair/publicize", {}), ("/chair/finalize", {"confirm": "1"})]:
        assert reviewer.post(url, data={**data, "csrf_token": token}).status_code == 403, url
    assert _decision(app, small.noms["A1"]) is None


def test_page_shows_the_ranking_and_the_cut_line(chair, small):
    html = chair.get("/chair/activity").get_data(as_text=True)
    assert "会议审定" in html and "按分数线预填" in html
    rows = re.findall(r'<tr id="nom-(\d+)"[^>]*class="([^"]*)"', html)
    assert [int(n) for n, _ in rows] == [small.noms[k] for k in ("A1", "A2", "A3", "A4", "A5")]
    assert ["cut-line" in c for _, c in rows] == [False, True, False, False, False]
    assert html.count("未审定</span>") == 5
    assert chair.get("/chair/").status_code == 302


def test_prefill_with_htmx_returns_the_workspace_fragment(app, chair, small):
    resp = _post(chair, "/chair/activity/prefill", headers=HX)
    assert resp.status_code == 200
    body = resp.get_data(as_text=True)
    assert "<html" not in body and 'id="workspace"' in body
    assert "已按分数线预填 5 项审定" in body
    assert "HX-Request" in resp.headers.get("Vary", "")
    assert _decision(app, small.noms["A1"])[0] == "approve"
    assert _decision(app, small.noms["A3"])[0] == "decline"


def test_crossing_without_reason_is_422_with_the_row_and_nothing_changes(app, chair, small):
    a3 = small.noms["A3"]
    resp = _post(chair, f"/chair/decide/{a3}", {"outcome": "approve", "version": "0"}, headers=HX)
    assert resp.status_code == 422
    body = resp.get_data(as_text=True)
    assert body.lstrip().startswith(f'<tr id="nom-{a3}"') and "<html" not in body
    assert "须填写理由" in body and 'aria-invalid="true"' in body
    assert "HX-Trigger" not in resp.headers
    assert _decision(app, a3) is None

    # Plain form post: the whole page with the error, still 422.
    resp = _post(chair, f"/chair/decide/{a3}", {"outcome": "approve", "version": "0"})
    assert resp.status_code == 422 and "<html" in resp.get_data(as_text=True)
    assert "跨线调整须填写理由" in resp.get_data(as_text=True)

    resp = _post(chair, f"/chair/decide/{a3}", {"outcome": "approve", "version": "0", "reason": "全省影响大"},
                 headers=HX)
    assert resp.status_code == 200
    assert resp.headers["HX-Trigger"] == "decisions-changed"
    body = resp.get_data(as_text=True)
    assert "跨线" in body and "全省影响大" in body
    assert _decision(app, a3)[:3] == ("approve", "经专家评审、会议审定，同意推荐为2024年全国科普日优秀活动。", "全省影响大")
    with app.app_context():
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "decision.set"))
        assert event.reason == "全省影响大" and event.actor_id == small.users["chair"]


def test_no_js_decision_redirects_back_to_the_row(app, chair, small):
    a1 = small.noms["A1"]
    resp = _post(chair, f"/chair/decide/{a1}", {"outcome": "approve", "version": "0"})
    assert resp.status_code == 303
    assert resp.headers["Location"].endswith(f"/chair/activity#nom-{a1}")
    assert _decision(app, a1)[0] == "approve"


def test_a_long_table_is_paged_and_a_row_action_returns_to_its_page(app, chair, small, monkeypatch):
    """At national scale the table is shown a page at a time (here 2 rows a page): ranks and the cut line
    stay the whole category's, a plain POST from page 2 comes back to page 2, htmx swaps the workspace."""
    from app.deliberation import views as deliberation_views

    monkeypatch.setattr(deliberation_views, "PAGE_SIZE", 2)
    order = [small.noms[k] for k in ("A1", "A2", "A3", "A4", "A5")]
    first = chair.get("/chair/activity").get_data(as_text=True)
    assert [int(n) for n in re.findall(r'<tr id="nom-(\d+)"', first)] == order[:2]
    assert "第 1 / 3 页（每页 2 项，共 5 项）" in first and 'href="/chair/activity?page=2"' in first
    html = chair.get("/chair/activity?page=2").get_data(as_text=True)
    rows = re.findall(r'<tr id="nom-(\d+)"[^>]*>\s*<td class="num rank" data-label="排名">(\d+)', html)
    assert [(int(n), int(r)) for n, r in rows] == [(order[2], 3), (order[3], 4)]
    assert f'/chair/decide/{order[2]}?page=2' in html
    # the cut line (rank 2 of 2 slots) is on page 1: a link jumps there from any page
    assert f'href="/chair/activity#nom-{order[1]}"' in html and "跳到名额线（第 1 页）" in html
    assert chair.get("/chair/activity?page=99").get_data(as_text=True).count('<tr id="nom-') == 1  # the last page
    resp = _post(chair, f"/chair/decide/{order[2]}?page=2", {"outcome": "decline", "version": "0"})
    assert resp.status_code == 303 and resp.headers["Location"].endswith(f"/chair/activity?page=2#nom-{order[2]}")
    assert _decision(app, order[2])[0] == "decline"
    part = chair.get("/chair/activity?page=3", headers=HX).get_data(as_text=True)
    assert part.lstrip().startswith('<div id="workspace">') and f'<tr id="nom-{order[4]}"' in part


def test_stale_version_is_409(app, chair, small):
    a1 = small.noms["A1"]
    _post(chair, f"/chair/decide/{a1}", {"outcome": "approve", "version": "0"})
    resp = _post(chair, f"/chair/decide/{a1}", {"outcome": "decline", "version": "0", "reason": "x"}, headers=HX)
    assert resp.status_code == 409
    assert "已被他人修改" in resp.get_data(as_text=True)
    assert _decision(app, a1)[0] == "approve"


def test_opinion_inline_edit(app, chair, small):
    a1 = small.noms["A1"]
    _post(chair, f"/chair/decide/{a1}", {"outcome": "approve", "version": "0"})
    resp = _post(chair, f"/chair/opinion/{a1}", {"opinion": "经会议审定，同意推荐。<b>特别</b>", "version": "1"},
                 headers=HX)
    assert resp.status_code == 200
    body = resp.get_data(as_text=True)
    assert "经会议审定，同意推荐。&lt;b&gt;特别&lt;/b&gt;" in body and "<b>特别</b>" not in body
    assert _decision(app, a1)[1] == "经会议审定，同意推荐。<b>特别</b>"

    resp = _post(chair, f"/chair/opinion/{a1}", {"opinion": "意" * 301, "version": "2"}, headers=HX)
    assert resp.status_code == 422
    assert "不能超过 300 个字符" in resp.get_data(as_text=True) and "<details open>" in resp.get_data(as_text=True)
    assert _decision(app, a1)[1] == "经会议审定，同意推荐。<b>特别</b>"

    resp = _post(chair, f"/chair/opinion/{a1}", {"opinion": "无 JS 的修改", "version": "2"})
    assert resp.status_code == 303 and _decision(app, a1)[1] == "无 JS 的修改"


def test_fill_opinions_and_summary_fragment(app, chair, small):
    _post(chair, "/chair/activity/prefill")
    resp = _post(chair, "/chair/activity/fill-opinions", {"overwrite": "1"})
    assert resp.status_code == 303
    summary = chair.get("/chair/activity/summary", headers=HX)
    body = summary.get_data(as_text=True)
    assert summary.status_code == 200 and "<html" not in body and 'id="summary"' in body
    assert 'hx-trigger="decisions-changed from:body"' in body
    _post(chair, f"/chair/decide/{small.noms['A3']}", {"outcome": "approve", "version": "1", "reason": "补充"})
    body = chair.get("/chair/activity/summary", headers=HX).get_data(as_text=True)
    assert "株洲市科协：通过 2 个，超过其推荐名额 1 个" in body
    assert "超过推荐名额 2 个" in body


def test_seal_upload_is_admin_only_and_validated(app, chair, admin, small):
    seal = make_seal_png(size=300)
    resp = _post(chair, "/chair/seal", {"seal": (io.BytesIO(seal), "seal.png"), "category": "unit"},
                 content_type="multipart/form-data")
    assert resp.status_code == 403
    resp = _post(admin, "/chair/seal", {"seal": (io.BytesIO(b"GIF89a not a png"), "seal.png")},
                 content_type="multipart/form-data")
    assert resp.status_code == 422 and "无法识别该文件" in resp.get_data(as_text=True)
    assert chair.get("/chair/seal.png").status_code == 404
    resp = _post(admin, "/chair/seal", {"seal": (io.BytesIO(seal), "seal.png"), "category": "unit"},
                 content_type="multipart/form-data")
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/chair/unit")
    img = chair.get("/chair/seal.png")
    assert img.status_code == 200 and img.mimetype == "image/png" and img.data.startswith(b"\x89PNG")


def test_templates_and_approval_date(app, chair, admin, small):
    data = {"approve_template": "{year}年{category}，同意。", "decline_template": "不同意。"}
    assert _post(chair, "/chair/templates", data).status_code == 403
    assert _post(admin, "/chair/templates", {**data, "approve_template": "{oops}"}).status_code == 422
    assert _post(admin, "/chair/templates", data).status_code == 303
    assert _post(chair, "/chair/approval-date", {"approval_date": "2024/11/20"}).status_code == 422
    assert _post(chair, "/chair/approval-date", {"approval_date": "2024-12-02"}).status_code == 303
    with app.app_context():
        rnd = db.session.get(Round, small.round_id)
        assert rnd.opinion_approve_template == "{year}年{category}，同意。"
        assert rnd.approval_date.isoformat() == "2024-12-02"


def test_missing_csrf_token_is_refused(app, chair, small):
    resp = chair.post(f"/chair/decide/{small.noms['A1']}", data={"outcome": "approve"})
    assert resp.status_code == 400
    assert _decision(app, small.noms["A1"]) is None


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_after_finalize_nothing_changes_through_the_app(app, chair, admin, small, backend):
    for category in ("activity", "unit"):
        assert _post(chair, f"/chair/{category}/prefill").status_code == 303
    assert _post(chair, "/chair/publicize").status_code == 303
    assert _post(chair, "/chair/finalize").status_code == 422  # the confirmation box
    assert _post(chair, "/chair/finalize", {"confirm": "1"}).status_code == 303
    page = chair.get("/chair/activity").get_data(as_text=True)
    assert "已定稿" in page and "decide-form" not in page and "按分数线预填" not in page

    a1 = small.noms["A1"]
    before = _decision(app, a1)
    resp = _post(chair, f"/chair/decide/{a1}", {"outcome": "decline", "version": str(before[3]), "reason": "x"},
                 headers=HX)
    assert resp.status_code == 409 and "已定稿" in resp.get_data(as_text=True)
    assert _post(chair, f"/chair/opinion/{a1}", {"opinion": "改", "version": str(before[3])}).status_code == 409
    assert _post(admin, "/chair/activity/fill-opinions", {"overwrite": "1"}).status_code == 409
    assert _decision(app, a1) == before

    # A reviewer's score save is refused too (the scoring workspace checks the phase under the lock).
    reviewer = app.test_client()
    login(reviewer, "r1")
    with app.app_context():
        sheet_state = scoring.sheet_state(small.users["r1"], a1)
        tgt = scoring.target(a1)
        scores_before = _scores(small.users["r1"], a1)
    form = {f"score-{c.id}": "1" for c in tgt.rubric}
    form.update(comment="定稿后试图修改", version=str(sheet_state.version), action="save",
                csrf_token=csrf_token_from(reviewer.get("/reports/").get_data(as_text=True)))
    resp = reviewer.post(f"/review/nominations/{a1}/sheet", data=form, headers=HX)
    assert resp.status_code == 409
    with app.app_context():
        scores_after = _scores(small.users["r1"], a1)
    assert scores_after == scores_before

    # Reopening: not for the chair; the admin must give a reason; it is audited.
    assert _post(chair, "/chair/reopen", {"reason": "异议"}).status_code == 403
    assert _post(admin, "/chair/reopen", {"reason": ""}).status_code == 422
    assert _post(admin, "/chair/reopen", {"reason": "公示期收到实名异议"}).status_code == 303
    with app.app_context():
        assert db.session.get(Round, small.round_id).phase == "publicizing"
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "round.phase_back"))
        assert event.reason == "公示期收到实名异议" and event.actor_id == small.users["admin"]
    assert decisions.OUTCOME_LABELS["approve"] in chair.get("/chair/activity").get_data(as_text=True)


# --- the forms: cleaning, limits, version, methods ------------------------------------------------

def test_decision_forms_clean_text_and_refuse_without_writing(app, chair, admin, small):
    a1, a3 = small.noms["A1"], small.noms["A3"]
    # A crossing decision whose reason is too long: 422 beside the field, nothing stored.
    resp = _post(chair, f"/chair/decide/{a3}", {"outcome": "approve", "version": "0", "reason": "理" * 501},
                 headers=HX)
    assert resp.status_code == 422 and "理由不能超过 500 个字符" in resp.get_data(as_text=True)
    assert _decision(app, a3) is None
    # A reason of control characters only is no reason at all.
    resp = _post(chair, f"/chair/decide/{a3}", {"outcome": "approve", "version": "0", "reason": "\x00\u200b\x07"})
    assert resp.status_code == 422 and "须填写理由" in resp.get_data(as_text=True)
    assert _decision(app, a3) is None
    # Control characters never reach the database.
    resp = _post(chair, f"/chair/decide/{a3}", {"outcome": "approve", "version": "0", "reason": "全省\x00影响\u200b大"})
    assert resp.status_code == 303 and _decision(app, a3)[2] == "全省影响大"
    _post(chair, f"/chair/decide/{a1}", {"outcome": "approve", "version": "0"})
    resp = _post(chair, f"/chair/opinion/{a1}", {"opinion": "\ufeff同意\x00推荐。\r\n\x1b第二行 ", "version": "1"})
    assert resp.status_code == 303 and _decision(app, a1)[1] == "同意推荐。\n第二行"
    resp = _post(chair, f"/chair/opinion/{a1}", {"opinion": "\x00 \u200b", "version": "2"}, headers=HX)
    assert resp.status_code == 422 and "审定意见不能为空" in resp.get_data(as_text=True)
    assert _decision(app, a1)[1] == "同意推荐。\n第二行"
    resp = _post(admin, "/chair/templates", {"approve_template": "\x00", "decline_template": "不同意。"})
    assert resp.status_code == 422 and "审定意见模板不能为空" in resp.get_data(as_text=True)


@pytest.mark.parametrize("version", [None, "", "x", "-1"])
def test_decide_and_opinion_need_a_version(app, chair, small, version):
    a1 = small.noms["A1"]
    data = {"outcome": "approve"} if version is None else {"outcome": "approve", "version": version}
    for headers in (HX, {}):
        resp = _post(chair, f"/chair/decide/{a1}", data, headers=headers)
        assert resp.status_code == 400 and "版本号" in resp.get_data(as_text=True)
    assert _decision(app, a1) is None
    _post(chair, f"/chair/decide/{a1}", {"outcome": "approve", "version": "0"})
    before = _decision(app, a1)
    data = {"opinion": "改"} if version is None else {"opinion": "改", "version": version}
    assert _post(chair, f"/chair/opinion/{a1}", data).status_code == 400
    assert _decision(app, a1) == before


def test_deliberation_writes_refuse_other_methods(app, chair, small):
    a1 = small.noms["A1"]
    for url in (f"/chair/decide/{a1}", f"/chair/opinion/{a1}", "/chair/activity/prefill", "/chair/approval-date",
                "/chair/publicize", "/chair/finalize"):
        resp = chair.get(url)
        assert resp.status_code == 405 and "不支持此操作方式" in resp.get_data(as_text=True), url
    assert _decision(app, a1) is None


def test_reopen_reason_is_cleaned_and_required(app, admin, small):
    for category in ("activity", "unit"):
        assert _post(admin, f"/chair/{category}/prefill").status_code == 303
    assert _post(admin, "/chair/publicize").status_code == 303
    resp = _post(admin, "/chair/reopen", {"reason": "\x00\u200b"})
    assert resp.status_code == 422 and "重新开放必须填写理由" in resp.get_data(as_text=True)
    resp = _post(admin, "/chair/reopen", {"reason": "理" * 501})
    assert resp.status_code == 422
    with app.app_context():
        assert db.session.get(Round, small.round_id).phase == "publicizing"
    assert _post(admin, "/chair/reopen", {"reason": "收到\x00异议"}).status_code == 303
    with app.app_context():
        assert db.session.get(Round, small.round_id).phase == "deliberating"
        reasons = db.session.scalars(select(AuditEvent.reason).where(AuditEvent.reason.is_not(None))).all()
        assert "收到异议" in reasons
