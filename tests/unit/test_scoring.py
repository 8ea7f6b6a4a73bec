"""The scoring service: validation, versions, submission, reopening, 回避, the queue, audit, phase."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.core.errors import UserError
from app.extensions import db
from app.models import AuditEvent, Nomination, RankingCounter, Recusal, ReviewSheet, Score, User
from app.review import queue as review_queue
from app.review import recusals, scoring
from app.review.scoring import RubricItem, SheetConflict, parse_value
from app.rounds import phases as rounds
from tests.review_fixtures import build_world, stored_sheet

ITEM = RubricItem(id=1, code="content", name="活动内容", max_score=30, step=0.5, guidance="", position=0)


@pytest.mark.parametrize("raw, expected", [
    (None, None), ("", None), ("  ", None), ("0", Decimal("0")), ("30", Decimal("30")), ("25.5", Decimal("25.5")),
    ("２５．５", Decimal("25.5")), ("25。5", Decimal("25.5")), (" 7 ", Decimal("7")), (".5", Decimal("0.5")),
])
def test_parse_value_accepts(raw, expected):
    assert parse_value(raw, ITEM) == (expected, None)


@pytest.mark.parametrize("raw, message", [
    ("-1", "不能小于 0"), ("30.5", "不能超过满分 30"), ("25.3", "须为 0.5 的整数倍"), ("abc", "请输入数字"),
    ("1e1", "请输入数字"), ("nan", "请输入数字"), ("12345678901234", "请输入数字"), ("2,5", "请输入数字"),
])
def test_parse_value_rejects_with_chinese_message(raw, message):
    value, error = parse_value(raw, ITEM)
    assert value is None and error.startswith(message)


def test_step_of_a_tenth_is_exact():
    item = RubricItem(2, "x", "x", 10, 0.1, "", 0)
    assert parse_value("7.3", item) == (Decimal("7.3"), None)
    assert parse_value("7.35", item)[1] == "须为 0.1 的整数倍"


@pytest.fixture
def w(app):
    with app.app_context():
        yield build_world(with_files=False)


def _user(uid) -> User:
    return db.session.get(User, uid)


def _audits(action=None) -> list[AuditEvent]:
    stmt = select(AuditEvent).order_by(AuditEvent.id)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    return list(db.session.scalars(stmt))


def _raw(criteria, values):
    return {cid: (None if v is None else str(v)) for cid, v in zip(criteria, values, strict=True)}


def _counter(round_id, category) -> int:
    return db.session.scalar(select(RankingCounter.version).where(RankingCounter.round_id == round_id,
                                                                  RankingCounter.category == category))


def test_first_save_creates_version_1_then_each_save_bumps(w):
    crit = w.criteria["activity"]
    sheet = scoring.save_sheet(_user(w.rev1), w.act_b, _raw(crit, [20, 15, None, None]), "初评", 0)
    assert (sheet.version, sheet.status, sheet.comment) == (1, "draft", "初评")
    sheet = scoring.save_sheet(_user(w.rev1), w.act_b, _raw(crit, [20, 15.5, 25, None]), "初评", 1)
    assert sheet.version == 2
    _, values = stored_sheet(w.rev1, w.act_b)
    assert values == {crit[0]: 20, crit[1]: 15.5, crit[2]: 25}


def test_blank_removes_a_value_and_absent_keys_count_as_blank(w):
    crit = w.criteria["activity"]
    scoring.save_sheet(_user(w.rev1), w.act_b, _raw(crit, [20, 15, 25, 18]), "", 0)
    scoring.save_sheet(_user(w.rev1), w.act_b, {crit[0]: "20", crit[1]: ""}, "", 1)
    _, values = stored_sheet(w.rev1, w.act_b)
    assert values == {crit[0]: 20}


def test_invalid_values_store_nothing_and_name_every_bad_field(w):
    crit = w.criteria["activity"]
    with pytest.raises(UserError) as e:
        scoring.save_sheet(_user(w.rev1), w.act_b, _raw(crit, [31, "x", 10.3, 5]), "", 0)
    assert e.value.status == 422
    assert set(e.value.field_errors) == {crit[0], crit[1], crit[2]}
    assert stored_sheet(w.rev1, w.act_b) == (None, {})
    assert _audits("sheet.save") == []


def test_comment_limit_counts_a_line_break_once(w):
    crit = w.criteria["activity"]
    ok = ("甲" * 499 + "\r\n") * 2  # 1,000 characters once CRLF is one line break
    sheet = scoring.save_sheet(_user(w.rev1), w.act_b, _raw(crit, [1, 1, 1, 1]), ok[:-2], 0)
    assert len(sheet.comment) == 999
    with pytest.raises(UserError) as e:
        scoring.save_sheet(_user(w.rev1), w.act_b, _raw(crit, [1, 1, 1, 1]), "乙" * 1001, 1)
    assert "comment" in e.value.field_errors and "1001" in e.value.field_errors["comment"]


def test_stale_version_is_a_conflict_carrying_what_is_stored(w):
    crit = w.criteria["activity"]
    scoring.save_sheet(_user(w.rev1), w.act_b, _raw(crit, [20, 15, None, None]), "甲窗口", 0)
    scoring.save_sheet(_user(w.rev1), w.act_b, _raw(crit, [21, 15, None, None]), "甲窗口", 1)
    with pytest.raises(SheetConflict) as e:
        scoring.save_sheet(_user(w.rev1), w.act_b, _raw(crit, [5, 5, 5, 5]), "乙窗口", 1)
    assert e.value.status == 409
    assert e.value.current.version == 2
    assert e.value.current.values == {crit[0]: 21, crit[1]: 15}
    assert e.value.current.comment == "甲窗口"
    sheet, values = stored_sheet(w.rev1, w.act_b)
    assert sheet.version == 2 and values == {crit[0]: 21, crit[1]: 15}


def test_creating_from_two_windows_conflicts_instead_of_failing(w):
    crit = w.criteria["activity"]
    scoring.save_sheet(_user(w.rev1), w.act_b, _raw(crit, [20, None, None, None]), "", 0)
    with pytest.raises(SheetConflict):
        scoring.save_sheet(_user(w.rev1), w.act_b, _raw(crit, [10, None, None, None]), "", 0)


def test_resending_what_is_stored_is_neither_a_write_nor_a_conflict(w):
    crit = w.criteria["activity"]
    scoring.save_sheet(_user(w.rev1), w.act_b, _raw(crit, [20, 15, None, None]), "同样", 0)
    before = _counter(w.round_id, "activity"), len(_audits())
    # The same content with the current version (a blur after the autosave) and with a stale one
    # (a retry whose answer was lost): both answer with the stored sheet, write nothing.
    for version in (1, 0):
        sheet = scoring.save_sheet(_user(w.rev1), w.act_b, _raw(crit, ["20", "15.0", "", None]), "同样", version)
        assert sheet.version == 1
    assert (_counter(w.round_id, "activity"), len(_audits())) == before


def test_submit_needs_every_criterion_and_then_the_sheet_is_read_only(w):
    crit = w.criteria["activity"]
    with pytest.raises(UserError) as e:
        scoring.save_sheet(_user(w.rev1), w.act_b, _raw(crit, [20, None, 25, None]), "", 0, submit=True)
    assert e.value.status == 422
    assert set(e.value.field_errors) == {crit[1], crit[3]}
    assert "活动形式" in e.value.message and "群众反映" in e.value.message
    assert stored_sheet(w.rev1, w.act_b) == (None, {})

    sheet = scoring.save_sheet(_user(w.rev1), w.act_b, _raw(crit, [20, 15, 25, 18]), "好", 0, submit=True)
    assert sheet.status == "submitted" and sheet.submitted_at is not None
    with pytest.raises(SheetConflict) as e:
        scoring.save_sheet(_user(w.rev1), w.act_b, _raw(crit, [1, 1, 1, 1]), "改", 1)
    assert "已提交" in e.value.message
    assert stored_sheet(w.rev1, w.act_b)[1] == {crit[0]: 20, crit[1]: 15, crit[2]: 25, crit[3]: 18}


def test_every_save_and_submit_is_audited_with_before_and_after(w):
    crit = w.criteria["activity"]
    scoring.save_sheet(_user(w.rev1), w.act_b, _raw(crit, [20, None, None, None]), "一", 0)
    scoring.save_sheet(_user(w.rev1), w.act_b, _raw(crit, [20, 15, 25, 18]), "二", 1, submit=True)
    first, second = _audits("sheet.save")[0], _audits("sheet.submit")[0]
    assert first.before is None
    assert first.after == {"values": {"content": 20.0}, "comment": "一", "status": "draft"}
    assert first.actor_id == w.rev1 and first.round_id == w.round_id
    assert second.before == first.after
    assert second.after["values"] == {"content": 20.0, "format": 15.0, "influence": 25.0, "response": 18.0}
    assert second.after["status"] == "submitted"


def test_a_save_bumps_only_its_own_category_ranking(w):
    crit = w.criteria["activity"]
    unit_before, act_before = _counter(w.round_id, "unit"), _counter(w.round_id, "activity")
    scoring.save_sheet(_user(w.rev1), w.act_b, _raw(crit, [20, None, None, None]), "", 0)
    assert (_counter(w.round_id, "unit"), _counter(w.round_id, "activity")) == (unit_before, act_before + 1)


@pytest.mark.parametrize("who, nomination, message", [
    ("rev2", "unit_a", "所在单位"),      # 长沙 reviewer, 长沙 nomination: affiliation 回避
    ("chair", "act_b", "未分配"),        # not assigned at all
])
def test_recused_or_unassigned_gets_403_and_nothing_is_stored(w, who, nomination, message):
    uid, nid = getattr(w, who), getattr(w, nomination)
    category = "unit" if nomination == "unit_a" else "activity"
    with pytest.raises(UserError) as e:
        scoring.save_sheet(_user(uid), nid, _raw(w.criteria[category], [1, 1, 1, 1]), "", 0)
    assert e.value.status == 403 and message in e.value.message
    assert stored_sheet(uid, nid) == (None, {})


def test_unknown_nomination_is_404(w):
    with pytest.raises(UserError) as e:
        scoring.save_sheet(_user(w.rev1), 999_999, {}, "", 0)
    assert e.value.status == 404


def test_scores_are_refused_outside_reviewing_and_nothing_is_stored(w):
    crit = w.criteria["activity"]
    scoring.save_sheet(_user(w.rev1), w.act_b, _raw(crit, [20, None, None, None]), "", 0)
    rounds.change_phase(w.round_id, "deliberating")
    with pytest.raises(UserError) as e:
        scoring.save_sheet(_user(w.rev1), w.act_b, _raw(crit, [5, 5, 5, 5]), "晚了", 1)
    assert e.value.status == 409 and e.value.message == "评审阶段已结束，评分未保存。"
    with pytest.raises(UserError):
        scoring.save_sheet(_user(w.rev3), w.act_b, _raw(crit, [5, 5, 5, 5]), "", 0)
    assert stored_sheet(w.rev1, w.act_b)[1] == {crit[0]: 20}
    assert stored_sheet(w.rev3, w.act_b) == (None, {})


# --- reopening -----------------------------------------------------------------------------------

def _submitted(w, reviewer="rev1"):
    crit = w.criteria["activity"]
    return scoring.save_sheet(_user(getattr(w, reviewer)), w.act_b, _raw(crit, [20, 15, 25, 18]), "", 0, submit=True)


def test_reopen_needs_a_reason_and_is_audited(w):
    sheet_id = _submitted(w).id
    with pytest.raises(UserError) as e:
        scoring.reopen_sheet(sheet_id, "  ", _user(w.admin))
    assert e.value.field_errors == {"reason": "请填写退回理由"}
    sheet = scoring.reopen_sheet(sheet_id, "第二项分数录入有误", _user(w.admin))
    assert (sheet.status, sheet.version, sheet.submitted_at) == ("draft", 2, None)
    event = _audits("sheet.reopen")[0]
    assert event.reason == "第二项分数录入有误" and event.actor_id == w.admin
    assert event.before["status"] == "submitted" and event.after["status"] == "draft"
    # The reviewer can now correct it, on the new version.
    crit = w.criteria["activity"]
    assert scoring.save_sheet(_user(w.rev1), w.act_b, _raw(crit, [20, 16, 25, 18]), "", 2).version == 3


def test_reopen_refuses_drafts_and_closed_rounds(w):
    crit = w.criteria["activity"]
    draft = scoring.save_sheet(_user(w.rev3), w.act_b, _raw(crit, [1, None, None, None]), "", 0)
    with pytest.raises(UserError) as e:
        scoring.reopen_sheet(draft.id, "理由", _user(w.admin))
    assert e.value.status == 409
    sheet_id = _submitted(w).id
    rounds.change_phase(w.round_id, "deliberating")
    with pytest.raises(UserError) as e:
        scoring.reopen_sheet(sheet_id, "理由", _user(w.admin))
    assert e.value.status == 409


# --- 回避 ------------------------------------------------------------------------------------------

def test_declaring_a_conflict_needs_a_reason_and_leaves_the_queue(w):
    rev1 = _user(w.rev1)
    crit = w.criteria["activity"]
    scoring.save_sheet(rev1, w.act_b, _raw(crit, [9, None, None, None]), "草稿", 0)
    with pytest.raises(UserError) as e:
        recusals.declare(rev1, w.act_b, "")
    assert e.value.field_errors == {"reason": "请填写回避理由"}
    with pytest.raises(UserError):
        recusals.declare(rev1, w.act_b, "长" * 501)
    recusals.declare(_user(w.rev1), w.act_b, "本人参与了该活动的组织")
    rev1 = _user(w.rev1)
    assert w.act_b not in [i.nomination_id for i in review_queue.queue(rev1, w.round_id)]
    assert review_queue.denial(rev1, db.session.get(Nomination, w.act_b)) == "declared"
    # The draft is kept (the record stays) but can no longer be changed.
    assert stored_sheet(w.rev1, w.act_b)[1] == {crit[0]: 9}
    with pytest.raises(UserError) as e:
        scoring.save_sheet(rev1, w.act_b, _raw(crit, [9, 9, None, None]), "", 1)
    assert e.value.status == 403
    event = _audits("recusal.declare")[0]
    assert event.reason == "本人参与了该活动的组织" and event.actor_id == w.rev1
    with pytest.raises(UserError) as e:
        recusals.declare(_user(w.rev1), w.act_b, "再次")
    assert e.value.status == 409
    assert db.session.scalar(select(func.count()).select_from(Recusal)) == 1


def test_every_place_agrees_on_who_is_recused(w):
    """One rule, read everywhere: the recused pairs recusals lists are exactly those the queue hides,
    the page refuses, the save gate refuses, the ranking SQL excludes, and the breakdown marks."""
    from app.models import Assignment
    from app.ranking import engine as ranking

    recusals.declare(_user(w.rev1), w.act_b, "曾参与策划")
    pairs = set(db.session.execute(select(Assignment.reviewer_id, Assignment.nomination_id)).all())
    recused = set(recusals.recused_pairs(w.round_id))
    assert recused & pairs  # the world has both kinds: an own-unit pair and the declared one
    for reviewer_id, nomination_id in sorted(pairs):
        reviewer, nom = _user(reviewer_id), db.session.get(Nomination, nomination_id)
        expected = (reviewer_id, nomination_id) in recused
        assert recusals.is_recused(reviewer, nom) is expected
        queued = nomination_id in [i.nomination_id for i in review_queue.queue(reviewer, w.round_id)]
        assert queued is not expected or nom.status != "active"
        assert (review_queue.denial(reviewer, nom) in ("affiliation", "declared")) is expected
        if expected:
            with pytest.raises(UserError) as e:
                scoring.check_access(reviewer, nomination_id)
            assert e.value.status == 403 and "回避" in e.value.message
        marks = {t.reviewer_id: t.status == "recused"
                 for t in ranking.reviewer_totals(w.round_id, nomination_id, include_drafts=True)}
        assert marks.get(reviewer_id) is expected


def test_declaring_for_an_unassigned_nomination_is_403(w):
    with pytest.raises(UserError) as e:
        recusals.declare(_user(w.chair), w.act_b, "理由")
    assert e.value.status == 403


# --- the queue -------------------------------------------------------------------------------------

def test_queue_hides_affiliation_conflicts_and_orders_unit_first(w):
    assert [i.nomination_id for i in review_queue.queue(_user(w.rev1), w.round_id)] == [w.unit_a, w.act_c, w.act_b]
    assert [i.nomination_id for i in review_queue.queue(_user(w.rev2), w.round_id)] == [w.act_b]


def test_queue_filters_and_progress(w):
    crit = w.criteria["activity"]
    rev1 = _user(w.rev1)
    scoring.save_sheet(rev1, w.act_b, _raw(crit, [20, 15, 25, 18]), "", 0, submit=True)
    scoring.save_sheet(_user(w.rev1), w.act_c, _raw(crit, [10, None, None, None]), "", 0)
    rev1 = _user(w.rev1)
    q = review_queue.queue
    assert [i.nomination_id for i in q(rev1, w.round_id, category="activity")] == [w.act_c, w.act_b]
    assert [i.nomination_id for i in q(rev1, w.round_id, nominator_id=w.zhuzhou)] == [w.act_b]
    assert [i.nomination_id for i in q(rev1, w.round_id, state="unscored")] == [w.unit_a]
    assert [i.nomination_id for i in q(rev1, w.round_id, state="in_progress")] == [w.act_c]
    assert [i.nomination_id for i in q(rev1, w.round_id, state="unsubmitted")] == [w.unit_a, w.act_c]
    assert [i.nomination_id for i in q(rev1, w.round_id, state="submitted")] == [w.act_b]
    b = next(i for i in q(rev1, w.round_id) if i.nomination_id == w.act_b)
    assert (b.state, b.total, b.n_scores) == ("submitted", 78.0, 4)
    p = review_queue.progress(rev1, w.round_id)
    assert (p["all"].total, p["all"].submitted, p["all"].in_progress, p["all"].unscored) == (3, 1, 1, 1)
    assert (p["activity"].total, p["unit"].total) == (2, 1)
    assert review_queue.nominator_options(rev1, w.round_id) == [(w.changsha, "长沙市科协"), (w.zhuzhou, "株洲市科协")]


def test_next_unsubmitted_moves_forward_wraps_and_skips_submitted(w):
    crit = w.criteria["activity"]
    scoring.save_sheet(_user(w.rev1), w.act_c, _raw(crit, [20, 15, 25, 18]), "", 0, submit=True)
    rev1 = _user(w.rev1)
    # queue order: unit_a, act_c (submitted), act_b
    assert review_queue.first_unsubmitted(rev1, w.round_id) == w.unit_a
    assert review_queue.next_unsubmitted(rev1, w.round_id, w.unit_a) == w.act_b
    assert review_queue.next_unsubmitted(rev1, w.round_id, w.act_b) == w.unit_a
    nav = review_queue.navigation(rev1, w.round_id, w.act_c)
    assert (nav.position, nav.count, nav.previous_id, nav.next_id) == (2, 3, w.unit_a, w.act_b)


def test_nothing_left_means_no_next(w):
    crit = w.criteria["activity"]
    rev2 = _user(w.rev2)  # only act_b is theirs
    assert review_queue.next_unsubmitted(rev2, w.round_id, w.act_b) is None
    scoring.save_sheet(rev2, w.act_b, _raw(crit, [20, 15, 25, 18]), "", 0, submit=True)
    assert review_queue.first_unsubmitted(_user(w.rev2), w.round_id) is None


def test_submitted_sheet_stays_one_row_per_criterion(w):
    crit = w.criteria["activity"]
    scoring.save_sheet(_user(w.rev1), w.act_b, _raw(crit, [20, 15, 25, 18]), "", 0)
    scoring.save_sheet(_user(w.rev1), w.act_b, _raw(crit, [21, 16, 26, 19]), "", 1, submit=True)
    assert db.session.scalar(select(func.count()).select_from(Score)) == 4
    assert db.session.scalar(select(func.count()).select_from(ReviewSheet)) == 1
