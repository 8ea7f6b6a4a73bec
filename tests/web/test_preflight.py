"""The pre-flight of the phase moves (issue 11, items 2 and 3) over HTTP: what is unfinished is shown
before 会议审定 / 公示 / 定稿, moving on with gaps needs the box ticked and a reason (both audited with
the gaps' counts), a decision whose 审定意见 says the opposite refuses 公示 outright; the decision row
asks what to do with a hand-written opinion; the templates editor keeps what was typed."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.deliberation import operations as decisions
from app.extensions import db
from app.models import AuditEvent, Decision, FormFinding, ReviewSheet, Round
from app.rounds import preflight
from tests.chair_fixtures import build_decided_round
from tests.conftest import csrf_token_from, signed_in

HX = {"HX-Request": "true"}


@pytest.fixture
def small(app):
    with app.app_context():
        return build_decided_round()


_client = signed_in


@pytest.fixture
def chair(app, small):
    return _client(app, "chair")


@pytest.fixture
def admin(app, small):
    return _client(app, "admin")


def _post(client, url, data=None, headers=None, token_url="/chair/activity"):
    data = dict(data or {})
    data.setdefault("csrf_token", csrf_token_from(client.get(token_url).get_data(as_text=True)))
    return client.post(url, data=data, headers=headers or {})


def _phase(app, small) -> str:
    with app.app_context():
        return db.session.get(Round, small.round_id).phase


def _one_sheet_back_to_draft(app, small) -> None:
    with app.app_context():
        sheet = db.session.scalar(select(ReviewSheet).where(ReviewSheet.nomination_id == small.noms["A4"],
                                                            ReviewSheet.reviewer_id == small.users["r2"]))
        sheet.status = "draft"
        db.session.commit()


def _phase_events(app) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == "round.phase")
                                       .order_by(AuditEvent.id)))


def test_gaps_are_counted_by_the_preflight(app, small):
    with app.app_context():
        rnd = db.session.get(Round, small.round_id)
        assert preflight.check(rnd, "publicizing").clear
    _one_sheet_back_to_draft(app, small)
    with app.app_context():
        rnd = db.session.get(Round, small.round_id)
        db.session.add(FormFinding(round_id=rnd.id, nomination_id=small.noms["A5"], rule="missing_video",
                                   message="缺少活动视频", blocking=True, status="open"))
        db.session.add(FormFinding(round_id=rnd.id, nomination_id=small.noms["A4"], rule="missing_video",
                                   message="已豁免", blocking=True, status="waived"))
        db.session.get(Decision, db.session.scalar(
            select(Decision.id).where(Decision.nomination_id == small.noms["U2"]))).opinion = "  "
        db.session.commit()
        pf = preflight.check(rnd, "publicizing")
        assert pf.counts() == {"unsubmitted": 1, "short_scores": 1, "blocking_findings": 1, "missing_opinion": 1}
        assert not pf.hard
        unsubmitted = next(g for g in pf.gaps if g.code == "unsubmitted")
        assert unsubmitted.items == ["r2姓名（r2）：1 份未提交，其中草稿 1 份"]
        assert any("全省中小学科学教育成果展" in i and "2/3" in i for i in pf.gaps[1].items)
        # Before 定稿 a missing opinion is no longer a gap one may confirm past.
        final = preflight.check(rnd, "final")
        assert [g.code for g in final.hard] == ["missing_opinion"]


def test_publicize_with_gaps_needs_the_box_and_a_reason_and_audits_the_counts(app, chair, small):
    _one_sheet_back_to_draft(app, small)
    page = chair.get("/chair/preflight/publicizing?category=activity")
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'data-gap="unsubmitted" data-count="1"' in body and 'data-gap="short_scores" data-count="1"' in body
    assert "r2姓名（r2）：1 份未提交" in body and 'name="accept_gaps"' in body

    resp = _post(chair, "/chair/publicize", {"reason": "专家已口头确认分数"})
    assert resp.status_code == 422 and "请勾选确认" in resp.get_data(as_text=True)
    assert _phase(app, small) == "deliberating"
    resp = _post(chair, "/chair/publicize", {"accept_gaps": "1"}, headers=HX)
    body = resp.get_data(as_text=True)
    assert resp.status_code == 422 and body.lstrip().startswith('<section class="card preflight"')
    assert "必须填写理由" in body and 'aria-invalid="true"' in body and "checked" in body
    assert _phase(app, small) == "deliberating" and not _phase_events(app)

    resp = _post(chair, "/chair/publicize", {"accept_gaps": "1", "reason": "r2 专家出差，草稿分数已当面确认",
                                             "category": "activity"})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/chair/activity")
    assert _phase(app, small) == "publicizing"
    event = _phase_events(app)[-1]
    assert event.reason == "r2 专家出差，草稿分数已当面确认"
    assert event.after == {"phase": "publicizing", "gaps": {"unsubmitted": 1, "short_scores": 1}}


def test_without_gaps_it_is_still_one_confirm_never_one_click(app, chair, small):
    page = chair.get("/chair/activity").get_data(as_text=True)
    # The 公示 button only leads to the pre-flight page; it writes nothing.
    assert 'id="publicize" href="/chair/preflight/publicizing' in page
    body = chair.get("/chair/preflight/publicizing").get_data(as_text=True)
    assert "检查通过" in body and 'name="accept_gaps"' not in body and 'id="preflight-confirm"' in body
    resp = _post(chair, "/chair/publicize", headers=HX)
    assert resp.status_code == 200 and resp.headers["HX-Redirect"].endswith("/chair/unit")
    assert _phase(app, small) == "publicizing"
    assert _phase_events(app)[-1].after == {"phase": "publicizing"}
    body = chair.get("/chair/preflight/final").get_data(as_text=True)
    assert 'name="confirm"' in body
    assert _post(chair, "/chair/finalize").status_code == 422
    assert _phase(app, small) == "publicizing"


def test_a_contradicting_opinion_refuses_publicize_and_finalize_with_the_list(app, chair, admin, small):
    with app.app_context():
        dec = db.session.scalar(select(Decision).where(Decision.nomination_id == small.noms["A4"]))
        assert dec.outcome == "decline"
        dec.opinion = "经专家评审、会议审定，同意推荐。"  # as data from before this rule, or written around it
        db.session.commit()
    body = chair.get("/chair/preflight/publicizing").get_data(as_text=True)
    assert 'data-gap="contradictions"' in body and "全省中小学科学教育成果展" in body
    assert "preflight-confirm" not in body  # nothing to confirm: it must be fixed first
    resp = _post(chair, "/chair/publicize", {"accept_gaps": "1", "reason": "先公示"})
    assert resp.status_code == 409 and "审定结果与审定意见矛盾 1 项" in resp.get_data(as_text=True)
    assert _phase(app, small) == "deliberating"

    # Fixed through the template, the move goes through; a contradiction before 定稿 refuses that too.
    with app.app_context():
        decisions.fill_opinions(small.round_id, "activity", overwrite=True)
    assert _post(chair, "/chair/publicize").status_code == 303
    with app.app_context():
        dec = db.session.scalar(select(Decision).where(Decision.nomination_id == small.noms["A1"]))
        dec.opinion = "经审定，不予推荐。"
        db.session.commit()
    resp = _post(chair, "/chair/finalize", {"confirm": "1"})
    assert resp.status_code == 409 and "矛盾" in resp.get_data(as_text=True)
    assert _phase(app, small) == "publicizing"


def test_the_admin_moves_into_deliberating_through_the_same_preflight(app, admin, small):
    with app.app_context():
        db.session.get(Round, small.round_id).phase = "reviewing"
        db.session.commit()
    _one_sheet_back_to_draft(app, small)
    dash = admin.get("/admin/").get_data(as_text=True)
    assert 'href="/admin/phase/deliberating"' in dash
    body = admin.get("/admin/phase/deliberating").get_data(as_text=True)
    assert 'data-gap="unsubmitted" data-count="1"' in body and 'name="target" value="deliberating"' in body
    resp = _post(admin, "/admin/phase", {"target": "deliberating"}, token_url="/admin/")
    assert resp.status_code == 422 and 'data-gap="unsubmitted"' in resp.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Round, small.round_id).phase == "reviewing"
    resp = _post(admin, "/admin/phase", {"target": "deliberating", "accept_gaps": "y", "reason": "截止时间已到"},
                 token_url="/admin/")
    assert resp.status_code == 303
    assert _phase(app, small) == "deliberating"
    event = _phase_events(app)[-1]
    assert event.after == {"phase": "deliberating", "gaps": {"unsubmitted": 1, "short_scores": 1}}
    assert event.reason == "截止时间已到"


def test_changing_a_decision_with_a_hand_written_opinion_asks_first(app, chair, small):
    a2 = small.noms["A2"]
    with app.app_context():
        decisions.set_opinion(a2, "特别肯定其航天主题。")
        version = db.session.scalar(select(Decision.version).where(Decision.nomination_id == a2))
    resp = _post(chair, f"/chair/decide/{a2}", {"outcome": "decline", "reason": "名额调整", "version": version},
                 headers=HX)
    body = resp.get_data(as_text=True)
    assert resp.status_code == 409 and body.lstrip().startswith(f'<tr id="nom-{a2}"')
    assert "保留我的意见" in body and "改用模板意见" in body and 'name="reason" value="名额调整"' in body
    with app.app_context():
        assert db.session.scalar(select(Decision.outcome).where(Decision.nomination_id == a2)) == "approve"
    resp = _post(chair, f"/chair/decide/{a2}", {"outcome": "decline", "reason": "名额调整", "version": version,
                                               "opinion_choice": "template"})
    assert resp.status_code == 303
    with app.app_context():
        dec = db.session.scalar(select(Decision).where(Decision.nomination_id == a2))
        assert (dec.outcome, dec.opinion, dec.opinion_edited) == ("decline", "经审定，不予推荐。", False)


def test_a_template_with_an_unknown_placeholder_is_refused_beside_the_field_keeping_the_text(app, admin, small):
    resp = _post(admin, "/chair/templates", {"approve_template": "{name}，同意推荐。", "decline_template": "经审定，不予推荐。"})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert '<span class="field-error" id="approve-template-error">' in body and "未知占位符 {name}" in body
    assert ">{name}，同意推荐。</textarea>" in body
    with app.app_context():
        assert db.session.get(Round, small.round_id).opinion_approve_template != "{name}，同意推荐。"
