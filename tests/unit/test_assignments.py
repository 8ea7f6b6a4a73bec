"""The assignment service against a real database (SQLite; one test also on PostgreSQL)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from app.core.errors import UserError
from app.extensions import db
from app.models import (
    Assignment,
    AuditEvent,
    Nomination,
    Nominator,
    RankingCounter,
    Recusal,
    ReviewSheet,
    Round,
    Score,
    User,
)
from app.review import assignments, recusals
from tests.admin_fixtures import add_sheet, build_world, count, events


def pairs(round_id=None) -> set[tuple[int, int]]:
    return {(r, n) for r, n in db.session.execute(select(Assignment.reviewer_id, Assignment.nomination_id))}


def loads(world, category=None) -> dict[int, int]:
    out = dict.fromkeys(world.reviewers.values(), 0)
    for r, n in pairs():
        if category is None or db.session.get(Nomination, n).category == category:
            out[r] = out.get(r, 0) + 1
    return out


@pytest.fixture
def world(app):
    with app.app_context():
        yield build_world()


def test_assign_all_skips_recusals_inactive_and_withdrawn(app, world):
    cs_unit = world.nominations["cs-unit-0"]
    r3, r4 = world.reviewers["r3"], world.reviewers["r4"]
    db.session.add(Recusal(reviewer_id=r3, nomination_id=cs_unit, reason="曾参与该单位活动策划"))
    withdrawn = db.session.get(Nomination, world.nominations["soc-activity-1"])
    withdrawn.status = "withdrawn"
    db.session.commit()

    result = assignments.assign_all(world.round_id)

    got = pairs()
    cs = {n for k, n in world.nominations.items() if k.startswith("cs-")}
    zz = {n for k, n in world.nominations.items() if k.startswith("zz-")}
    assert not {(world.reviewers["r1"], n) for n in cs} & got  # own unit
    assert not {(world.reviewers["r2"], n) for n in zz} & got
    assert (r3, cs_unit) not in got  # declared
    assert (r4, cs_unit) in got
    assert all(n != withdrawn.id for _, n in got)
    gone = db.session.scalar(select(User.id).where(User.username == "gone"))
    assert all(r != gone for r, _ in got)
    # 11 active nominations × 4 reviewers − r1's 4 − r2's 4 − 1 declared
    assert result.added == len(got) == 11 * 4 - 4 - 4 - 1
    [event] = events("assignment.run_all")
    assert event.after["added"] == result.added and event.after["category"] == "all"
    assert db.session.get(Round, world.round_id).assignment_mode == "all"


def test_assign_all_one_category_leaves_the_other_alone(app, world):
    assignments.assign_all(world.round_id, "unit")
    cats = {db.session.get(Nomination, n).category for _, n in pairs()}
    assert cats == {"unit"}
    assignments.assign_all(world.round_id, "activity")
    assert {db.session.get(Nomination, n).category for _, n in pairs()} == {"unit", "activity"}


def test_assign_balanced_gives_k_each_and_balances(app, world):
    result = assignments.assign_balanced(world.round_id, 2)
    got = pairs()
    per_nom = {n: sum(1 for _, x in got if x == n) for n in world.nominations.values()}
    assert set(per_nom.values()) == {2}
    load = loads(world)
    assert max(load.values()) - min(load.values()) <= 1
    assert sum(load.values()) == 24 and result.total == 24
    assert not {(world.reviewers["r1"], n) for k, n in world.nominations.items() if k.startswith("cs-")} & got
    rnd = db.session.get(Round, world.round_id)
    assert (rnd.assignment_mode, rnd.reviewers_per_nomination) == ("balanced", 2)
    [event] = events("assignment.run_balanced")
    assert event.after["k"] == 2 and event.after["total"] == 24


def test_assign_balanced_is_deterministic(app, world):
    assignments.assign_balanced(world.round_id, 3)
    first = pairs()
    db.session.execute(delete(Assignment))
    db.session.commit()
    assignments.assign_balanced(world.round_id, 3)
    assert pairs() == first


def test_k_larger_than_eligible_assigns_everyone_eligible_and_warns(app, world):
    result = assignments.assign_balanced(world.round_id, 4)
    cs_unit = world.nominations["cs-unit-0"]
    assert sum(1 for _, n in pairs() if n == cs_unit) == 3  # r1 recuses
    assert result.short and "只有 3 位专家可评审" in result.message()


def test_impossible_cap_is_a_chinese_error_naming_nominations_and_changes_nothing(app, world):
    assignments.assign_all(world.round_id)
    before = pairs()
    with pytest.raises(UserError) as exc:
        assignments.assign_balanced(world.round_id, 3, cap=2)
    assert "无法分配到足够的专家" in exc.value.message and "长沙市科协" in exc.value.message
    assert "需 3 位" in exc.value.message
    assert exc.value.field_errors == {"cap": "上限过低"}
    db.session.rollback()
    assert pairs() == before
    assert not events("assignment.run_balanced")


@pytest.mark.parametrize("k,cap,field", [(0, None, "k"), (51, None, "k"), ("3", None, "k"), (2, 0, "cap")])
def test_bad_k_or_cap(app, world, k, cap, field):
    with pytest.raises(UserError) as exc:
        assignments.assign_balanced(world.round_id, k, cap)
    assert field in exc.value.field_errors


def test_cap_respected_when_feasible(app, world):
    assignments.assign_balanced(world.round_id, 2, cap=6)
    assert max(loads(world).values()) <= 6


def test_rerun_after_scoring_keeps_assignments_with_sheets(app, world):
    assignments.assign_all(world.round_id)
    r3, r4 = world.reviewers["r3"], world.reviewers["r4"]
    noms = list(world.nominations.values())
    kept = [(r3, noms[0]), (r4, noms[1]), (r3, noms[2])]
    sheet_ids = [add_sheet(*kept[0]), add_sheet(*kept[1], status="draft"), add_sheet(*kept[2], scores=False,
                                                                                        status="draft")]
    scores_before = count(Score)

    result = assignments.assign_balanced(world.round_id, 1)

    got = pairs()
    assert set(kept) <= got
    assert result.kept_with_sheets == 3
    assert count(ReviewSheet) == 3 and count(Score) == scores_before
    assert all(db.session.get(ReviewSheet, s) is not None for s in sheet_ids)
    # Pinned pairs count toward coverage: nominations 0–2 need nobody else.
    for n in noms[:3]:
        assert sum(1 for _, x in got if x == n) == 1


def test_assignment_is_locked_after_reviewing(app, world):
    rnd = db.session.get(Round, world.round_id)
    rnd.phase = "deliberating"
    db.session.commit()
    for call in (lambda: assignments.assign_all(world.round_id),
                 lambda: assignments.assign_balanced(world.round_id, 2),
                 lambda: assignments.set_assignment(world.reviewers["r3"], world.nominations["cs-unit-0"], True)):
        with pytest.raises(UserError) as exc:
            call()
        assert exc.value.status == 409 and "会议审定" in exc.value.message
        db.session.rollback()
    assert count(Assignment) == 0


def test_set_assignment_refuses_recused_pairs(app, world):
    r1, cs_unit = world.reviewers["r1"], world.nominations["cs-unit-0"]
    with pytest.raises(UserError) as exc:
        assignments.set_assignment(r1, cs_unit, True)
    assert exc.value.status == 409 and "回避" in exc.value.message and "本单位推荐" in exc.value.message
    db.session.rollback()
    r3 = world.reviewers["r3"]
    recusals.declare_on_behalf(r3, cs_unit, "亲属任职")
    with pytest.raises(UserError, match="亲属任职"):
        assignments.set_assignment(r3, cs_unit, True)
    db.session.rollback()
    assert count(Assignment) == 0


def test_set_assignment_audits_each_change_and_bumps_the_ranking(app, world):
    r3, n = world.reviewers["r3"], world.nominations["zz-activity-0"]
    version = db.session.get(RankingCounter, (world.round_id, "activity")).version
    assert assignments.set_assignment(r3, n, True) is True
    assert assignments.set_assignment(r3, n, True) is False  # idempotent, no second event
    assert assignments.set_assignment(r3, n, False) is True
    add_ev, remove_ev = events("assignment.add"), events("assignment.remove")
    assert len(add_ev) == 1 and len(remove_ev) == 1
    assert add_ev[0].after["reviewer"] == "r3" and add_ev[0].object_id == n
    db.session.expire_all()
    assert db.session.get(RankingCounter, (world.round_id, "activity")).version == version + 2


def test_removing_a_scored_assignment_needs_a_reason_and_keeps_the_scores(app, world):
    r3, n = world.reviewers["r3"], world.nominations["soc-unit-0"]
    assignments.set_assignment(r3, n, True)
    sheet_id = add_sheet(r3, n)
    n_scores = count(Score)
    with pytest.raises(UserError) as exc:
        assignments.set_assignment(r3, n, False)
    assert exc.value.field_errors == {"reason": "必填"} and "评分记录会保留" in exc.value.message
    db.session.rollback()
    assert (r3, n) in pairs()

    assert assignments.set_assignment(r3, n, False, reason="专家临时出差，改由他人评审") is True
    assert (r3, n) not in pairs()
    assert db.session.get(ReviewSheet, sheet_id) is not None and count(Score) == n_scores
    [ev] = events("assignment.remove")
    assert ev.reason == "专家临时出差，改由他人评审" and ev.before["sheet_status"] == "submitted"
    # Assigning again brings the sheet back into play as it was.
    assignments.set_assignment(r3, n, True)
    assert (r3, n) in pairs() and count(Score) == n_scores


def test_inactive_reviewer_and_withdrawn_nomination_cannot_be_assigned(app, world):
    gone = db.session.scalar(select(User.id).where(User.username == "gone"))
    with pytest.raises(UserError, match="停用"):
        assignments.set_assignment(gone, world.nominations["soc-unit-0"], True)
    db.session.rollback()
    nom = db.session.get(Nomination, world.nominations["soc-unit-1"])
    nom.status = "withdrawn"
    db.session.commit()
    with pytest.raises(UserError, match="已撤回"):
        assignments.set_assignment(world.reviewers["r3"], nom.id, True)


def test_unknown_ids_are_404(app, world):
    for r, n in ((999, world.nominations["soc-unit-0"]), (world.reviewers["r3"], 999),
                 (db.session.scalar(select(User.id).where(User.username == "chair1")), world.nominations["soc-unit-0"])):
        with pytest.raises(UserError) as exc:
            assignments.set_assignment(r, n, True)
        assert exc.value.status == 404
        db.session.rollback()


def test_save_matrix_page_applies_the_shown_cells_only(app, world):
    r3, r4 = world.reviewers["r3"], world.reviewers["r4"]
    a, b, c = (world.nominations[k] for k in ("soc-unit-0", "soc-unit-1", "zz-unit-0"))
    assignments.set_assignment(r3, a, True)
    assignments.set_assignment(r4, a, True)
    assignments.set_assignment(r3, c, True)  # not on the page: untouched
    add_sheet(r4, a)  # worked: never removed from here
    before = len(events())

    added, removed, left = assignments.save_matrix_page(world.round_id, [r3, r4], [a, b], {(r4, b)})

    assert (added, removed, left) == (1, 1, 1)
    assert pairs() == {(r4, a), (r4, b), (r3, c)}
    assert len(events()) == before + 2  # one event per change


def test_save_matrix_page_refuses_a_recused_cell(app, world):
    r1, cs = world.reviewers["r1"], world.nominations["cs-unit-0"]
    with pytest.raises(UserError) as exc:
        assignments.save_matrix_page(world.round_id, [r1], [cs], {(r1, cs)})
    assert exc.value.status == 409 and "回避" in exc.value.message
    db.session.rollback()
    assert count(Assignment) == 0


def test_declare_and_withdraw_recusal(app, world):
    r3, n = world.reviewers["r3"], world.nominations["zz-unit-0"]
    assignments.set_assignment(r3, n, True)
    with pytest.raises(UserError) as exc:
        recusals.declare_on_behalf(r3, n, "  ")
    assert "recusal_reason" in exc.value.field_errors
    db.session.rollback()
    recusals.declare_on_behalf(r3, n, "与申报单位负责人系同学")
    assert recusals.recused_pairs(world.round_id)[(r3, n)] == "与申报单位负责人系同学"
    # The assignment stays (as when reviewers declare it themselves) but the pair is recused.
    assert (r3, n) in pairs()
    with pytest.raises(UserError) as exc:
        recusals.declare_on_behalf(r3, n, "again")
    assert exc.value.status == 409
    db.session.rollback()
    recusals.withdraw(r3, n)
    assert (r3, n) not in recusals.recused_pairs(world.round_id)
    assert [e.action for e in events() if e.action.startswith("recusal.")] == ["recusal.declare", "recusal.withdraw"]


def test_matrix_page_groups_pages_and_marks(app, world):
    assignments.assign_all(world.round_id)
    r1, r3 = world.reviewers["r1"], world.reviewers["r3"]
    add_sheet(r3, world.nominations["cs-unit-0"])
    m = assignments.matrix_page(world.round_id, "unit", page=1, per_page=4)
    assert m.total == 6 and m.pages == 2 and len(m.rows) == 4
    # Official order: cities by position, then societies.
    assert [n.nominator.name for n in m.rows][:2] == ["长沙市科协", "长沙市科协"]
    assert m.recused[(r1, world.nominations["cs-unit-0"])] == "本单位推荐"
    assert m.sheets[(r3, world.nominations["cs-unit-0"])] == ("submitted", 4)
    assert [u.username for u in m.reviewers] == ["r1", "r2", "r3", "r4"]
    assert m.loads[r3] == 6 and m.loads[r1] == 4
    last = assignments.matrix_page(world.round_id, "unit", page=99, per_page=4)
    assert last.page == 2 and [n.nominator.name for n in last.rows] == ["湖南省科普作家协会"] * 2


def test_summary_counts_uncovered(app, world):
    assignments.assign_all(world.round_id, "unit")
    s = assignments.summary(world.round_id)
    assert s["unit"] == {"nominations": 6, "assignments": 6 * 4 - 2 - 2, "uncovered": 0}
    assert s["activity"]["uncovered"] == 6


# ----------------------------------------------------------------------------- property test, with a database


@st.composite
def db_instances(draw):
    n_nominators = draw(st.integers(1, 3))
    affiliations = draw(st.lists(st.one_of(st.none(), st.integers(0, n_nominators - 1)), min_size=1, max_size=5))
    noms = draw(st.lists(st.tuples(st.integers(0, n_nominators - 1), st.sampled_from(["unit", "activity"])),
                         max_size=8))
    return n_nominators, affiliations, noms, draw(st.integers(1, 4)), draw(st.one_of(st.none(), st.integers(2, 8)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(db_instances())
def test_balanced_assignment_property_in_the_database(app, instance):
    n_nominators, affiliations, noms, k, cap = instance
    with app.app_context():
        for model in (Assignment, Nomination, User, Nominator, Round):
            db.session.execute(delete(model))
        db.session.commit()
        from tests.factories import make_nomination, make_nominator, make_round

        rnd = make_round("collecting")
        nominators = [make_nominator(f"推荐单位{i}", "member", i) for i in range(n_nominators)]
        for i, (who, cat) in enumerate(noms):
            make_nomination(rnd, nominators[who], title=f"推荐对象{i}", category=cat)
        for i, aff in enumerate(affiliations):
            u = User(username=f"rv{i}", display_name=f"专家{i}", role="reviewer", password_hash="x",
                     affiliation_id=nominators[aff].id if aff is not None else None)
            db.session.add(u)
        db.session.commit()
        try:
            assignments.assign_balanced(rnd.id, k, cap)
        except UserError as e:
            assert cap is not None and "无法分配到足够的专家" in e.message
            db.session.rollback()
            assert count(Assignment) == 0
            return
        got = pairs()
        reviewers = list(db.session.scalars(select(User)))
        all_noms = list(db.session.scalars(select(Nomination)))
        assert not any(u.affiliation_id == n.nominator_id and (u.id, n.id) in got for u in reviewers for n in all_noms)
        for n in all_noms:
            eligible = sum(1 for u in reviewers if u.affiliation_id != n.nominator_id)
            assert sum(1 for _, x in got if x == n.id) == min(k, eligible)
        load = [sum(1 for r, _ in got if r == u.id) for u in reviewers]
        if cap is not None:
            assert max(load) <= cap
        if all(u.affiliation_id is None for u in reviewers) and (cap is None or cap >= -(-len(got) // len(reviewers))):
            assert max(load) - min(load) <= 1
        assert db.session.scalar(select(AuditEvent.action).order_by(AuditEvent.id.desc()).limit(1)) == \
            "assignment.run_balanced"


# ----------------------------------------------------------------------------- both engines


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_assignment_service_on_both_engines(app_factory, backend):
    app = app_factory()
    with app.app_context():
        world = build_world("reviewing")
        r3, n = world.reviewers["r3"], world.nominations["zz-unit-0"]
        result = assignments.assign_balanced(world.round_id, 2, cap=6)
        assert result.total == 24 and max(loads(world).values()) <= 6
        first = pairs()
        assignments.assign_balanced(world.round_id, 2, cap=6)
        assert pairs() == first
        holder = next(r for r, x in first if x == n)
        add_sheet(holder, n)
        assignments.assign_all(world.round_id)
        assert (holder, n) in pairs()
        with pytest.raises(UserError):
            assignments.set_assignment(holder, n, False)
        db.session.rollback()
        assignments.set_assignment(holder, n, False, reason="测试")
        assert count(Score) == 4
        m = assignments.matrix_page(world.round_id, "unit")
        assert m.sheets[(holder, n)] == ("submitted", 4) and (holder, n) not in m.assigned
        assert count(AuditEvent, AuditEvent.action.like("assignment.%")) == 4
        assert r3 in m.loads
