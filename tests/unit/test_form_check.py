"""形式审查: every rule triggers on a bad nomination and stays quiet on a good one; findings are
idempotent; resolve/waive are audited; the guard blocks the move to reviewing."""

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from app.core.errors import Conflict, UserError
from app.extensions import db
from app.intake import form_check, nominations
from app.models import Attachment, AuditEvent, FormFinding, Round, User
from app.rounds import phases as rounds
from tests import intake_fixtures
from tests.factories import make_nomination
from tests.intake_fixtures import nominator

intake_app = intake_fixtures.intake_app

BOTH = pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
_counter = [0]


def _round() -> Round:
    return db.session.scalar(select(Round))


def good(title="科普进社区", who="长沙市科协", category="activity", photos=3, video=True, **fields):
    """A nomination that passes every rule unless told otherwise."""
    defaults = dict(host=who, received_at=datetime(2024, 10, 1, 4, tzinfo=UTC), event_count=10, people_served=2000)
    defaults.update(fields)
    nom = make_nomination(_round(), nominator(who), title=title, category=category, **defaults)
    for i in range(photos):
        _counter[0] += 1
        nom.attachments.append(Attachment(kind="photo", stored_name=f"p{_counter[0]}.jpg", mime="image/jpeg",
                                          position=i))
    if video:
        _counter[0] += 1
        nom.attachments.append(Attachment(kind="video", stored_name=f"v{_counter[0]}.mp4", mime="video/mp4",
                                          position=9))
    db.session.commit()
    return nom


def rules_of(nom) -> set[str]:
    return {rule for (nid, rule) in form_check.compute(_round()) if nid == nom.id}


def test_a_clean_nomination_has_no_findings(intake_app):
    with intake_app.app_context():
        assert rules_of(good()) == set()


def test_summary_too_long(intake_app):
    with intake_app.app_context():
        long = good("超长简介", summary="字" * 500, summary_original="字" * 620)
        short = good("正常简介", summary="字" * 500)
        assert "summary_too_long" in rules_of(long) and "620" in form_check.compute(_round())[(long.id,
                                                                                              "summary_too_long")]
        assert "summary_too_long" not in rules_of(short)


@pytest.mark.parametrize("photos,flagged", [(0, True), (2, True), (3, False), (5, False), (6, True)])
def test_photo_count(intake_app, photos, flagged):
    with intake_app.app_context():
        assert ("photo_count" in rules_of(good(photos=photos))) is flagged


def test_no_video(intake_app):
    with intake_app.app_context():
        assert "no_video" in rules_of(good("无视频", video=False))
        assert "no_video" not in rules_of(good("有视频", video=True))


def test_no_recommendation_or_no_date(intake_app):
    with intake_app.app_context():
        assert "no_recommendation" in rules_of(good("无意见", recommendation="  "))
        assert "no_recommendation_date" in rules_of(good("无日期", recommendation_date=None))
        ok = rules_of(good("齐全"))
        assert not ok & {"no_recommendation", "no_recommendation_date"}


def test_zero_events_or_people(intake_app):
    with intake_app.app_context():
        assert "counts_zero" in rules_of(good("零场", event_count=0))
        assert "counts_zero" in rules_of(good("零人", people_served=0))
        assert "counts_zero" not in rules_of(good("有场次"))


def test_people_per_event_far_from_the_rest(intake_app):
    with intake_app.app_context():
        normal = [good(f"活动{i}", event_count=10, people_served=1500 + 150 * i) for i in range(8)]
        odd = good("离谱的活动", event_count=2, people_served=900_000)
        assert "people_outlier" in rules_of(odd)
        assert all("people_outlier" not in rules_of(n) for n in normal)
        message = form_check.compute(_round())[(odd.id, "people_outlier")]
        assert "450,000" in message and "稳健 z" in message


def test_a_spread_of_plausible_numbers_is_not_an_outlier(intake_app):
    with intake_app.app_context():
        # Real categories span an order of magnitude: 50 to 800 people per event.
        for i, per in enumerate([50, 80, 120, 200, 260, 300, 450, 600, 800]):
            good(f"活动{i}", event_count=10, people_served=per * 10)
        assert not any(rule == "people_outlier" for (_nid, rule) in form_check.compute(_round()))


def test_over_quota_flags_the_ones_received_last(intake_app):
    with intake_app.app_context():
        first = good("学会活动一", who="湖南省科普作家协会", received_at=datetime(2024, 9, 20, tzinfo=UTC))
        second = good("学会活动二", who="湖南省科普作家协会", received_at=datetime(2024, 9, 25, tzinfo=UTC))
        assert "over_quota" not in rules_of(first)
        assert "over_quota" in rules_of(second)
        assert "名额为 1 项" in form_check.compute(_round())[(second.id, "over_quota")]
        nominator("湖南省科普作家协会").quota_activity = 2  # an approved extra place
        db.session.commit()
        assert "over_quota" not in rules_of(second)


def test_within_quota_and_withdrawn_do_not_count(intake_app):
    with intake_app.app_context():
        first = good("学会活动一", who="湖南省科普作家协会")
        second = good("学会活动二", who="湖南省科普作家协会")
        nominations.withdraw(first.id, "换一个推荐")
        assert "over_quota" not in rules_of(second)


def test_late_by_received_date_or_recommendation_date(intake_app):
    with intake_app.app_context():
        late = good("晚到", received_at=datetime(2024, 10, 9, 2, tzinfo=UTC))  # 10:00 Beijing, 10月9日
        late_signed = good("落款晚", recommendation_date=date(2024, 10, 10))
        on_time = good("按时", received_at=datetime(2024, 10, 8, 15, 59, tzinfo=UTC))  # 23:59 Beijing, 10月8日
        assert "late" in rules_of(late) and "late" in rules_of(late_signed)
        assert "late" not in rules_of(on_time)


def test_the_same_activity_from_two_nominators(intake_app):
    with intake_app.app_context():
        a = good("“科普进社区”系列活动", who="长沙市科协", host="长沙市科学技术协会")
        b = good("2024年全国科普日科普进社区活动", who="湖南省教育厅", host="长沙市科学技术协会")
        assert "duplicate" in rules_of(a) and "duplicate" in rules_of(b)
        assert f"编号 {b.id}" in form_check.compute(_round())[(a.id, "duplicate")]


def test_same_name_different_host_or_numbered_siblings_are_not_duplicates(intake_app):
    with intake_app.app_context():
        a = good("全国科普日主场活动", who="长沙市科协", host="长沙市科协")
        b = good("全国科普日主场活动", who="株洲市科协", host="株洲市科协")
        c = good("长沙市第一中学", who="长沙市科协", category="unit", host=None)
        d = good("长沙市第二中学", who="长沙市科协", category="unit", host=None)
        for n in (a, b, c, d):
            assert "duplicate" not in rules_of(n)


def test_similar_unit_names_are_duplicates(intake_app):
    with intake_app.app_context():
        a = good("湖南省地质博物馆", who="湖南省教育厅", category="unit", host=None)
        b = good("湖南省地质博物馆（湖南省地质科普基地）", who="湖南省科普作家协会", category="unit", host=None)
        c = good("湖南 省 地质博物馆", who="长沙市科协", category="unit", host=None)
        assert "duplicate" in rules_of(a) and "duplicate" in rules_of(c)
        assert "duplicate" not in rules_of(b)  # the added words make it only 0.6 similar: left to people


def test_incomplete_contact_details(intake_app):
    with intake_app.app_context():
        assert "incomplete" in rules_of(good("缺电话", contact_phone=""))
        assert "incomplete" not in rules_of(good("齐全"))


@BOTH
def test_run_is_idempotent_and_follows_the_data(intake_app):
    with intake_app.app_context():
        rnd = _round()
        nom = good("无视频", video=False, recommendation="")
        first = form_check.run(rnd.id)
        assert first["added"] == 2 and first["open_blocking"] == 1 and first["open_warnings"] == 1
        again = form_check.run(rnd.id)
        assert (again["added"], again["reopened"], again["auto_resolved"]) == (0, 0, 0)
        assert len(db.session.scalars(select(FormFinding)).all()) == 2
        # fixing the data resolves the finding on the next run
        nominations.update(nom.id, {**_fields(nom), "recommendation": "同意推荐。"}, version=nominations.version_of(nom))
        statuses = {f.rule: f.status for f in db.session.scalars(select(FormFinding))}
        assert statuses == {"no_recommendation": "resolved", "no_video": "open"}


def _fields(nom):
    return {k: getattr(nom, k) for k in nominations.FIELDS}


@BOTH
def test_waived_stays_waived_and_resolved_reopens_if_still_there(intake_app):
    with intake_app.app_context():
        rnd = _round()
        admin = db.session.scalar(select(User))
        good("无视频", video=False, recommendation="")
        form_check.run(rnd.id)
        by_rule = {f.rule: f for f in db.session.scalars(select(FormFinding))}
        with pytest.raises(UserError, match="说明"):
            form_check.waive(by_rule["no_video"].id, "")
        form_check.waive(by_rule["no_video"].id, "视频已通过网盘提交", actor=admin)
        form_check.resolve(by_rule["no_recommendation"].id, "已电话催补", actor=admin)
        result = form_check.run(rnd.id)
        assert result["reopened"] == 1
        by_rule = {f.rule: db.session.get(FormFinding, f.id) for f in by_rule.values()}
        assert by_rule["no_video"].status == "waived" and by_rule["no_video"].resolved_by_id == admin.id
        assert by_rule["no_recommendation"].status == "open"
        actions = [e.action for e in db.session.scalars(select(AuditEvent).where(
            AuditEvent.object_type == "form_finding").order_by(AuditEvent.id))]
        assert actions == ["form_finding.waive", "form_finding.resolve"]
        with pytest.raises(Conflict):
            form_check.waive(by_rule["no_video"].id, "再豁免一次")


@BOTH
def test_guard_blocks_the_move_to_reviewing_until_blocking_findings_are_handled(intake_app):
    with intake_app.app_context():
        rnd = _round()
        late_one = good("晚到的活动", received_at=datetime(2024, 10, 20, tzinfo=UTC))  # a warning only
        bad = good("缺照片的活动", photos=1)
        form_check.run(rnd.id)
        with pytest.raises(Conflict, match="照片数量不符"):
            rounds.change_phase(rnd.id, "reviewing", guard=form_check.guard_reviewing)
        assert db.session.get(Round, rnd.id).phase == "collecting"
        finding = db.session.scalar(select(FormFinding).where(FormFinding.nomination_id == bad.id))
        form_check.waive(finding.id, "照片已现场核实")
        rounds.change_phase(rnd.id, "reviewing", guard=form_check.guard_reviewing)
        assert db.session.get(Round, rnd.id).phase == "reviewing"
        assert late_one.id


def test_guard_recomputes_instead_of_trusting_a_stale_table(intake_app):
    with intake_app.app_context():
        rnd = _round()
        good("从未检查过的活动", photos=0)  # inserted directly: no finding rows exist yet
        assert db.session.scalar(select(FormFinding)) is None
        with pytest.raises(Conflict):
            rounds.change_phase(rnd.id, "reviewing", guard=form_check.guard_reviewing)


def test_guard_leaves_other_moves_alone(intake_app):
    with intake_app.app_context():
        rnd = _round()
        good("缺照片", photos=0)
        rnd.phase = "reviewing"
        db.session.commit()
        rounds.change_phase(rnd.id, "collecting", reason="补材料", guard=form_check.guard_reviewing)
        assert form_check.guard_for("deliberating") is None


def _pairwise(keys):
    """The check as it was: every pair through _similar (difflib)."""
    return [(i, j) for i in range(len(keys)) for j in range(i + 1, len(keys)) if form_check._similar(keys[i], keys[j])]


def test_the_indexed_duplicate_search_finds_exactly_what_comparing_every_pair_finds():
    import random

    rng = random.Random(11)
    alphabet = "科普进社区校园乡村健康安全应急防灾天文航天海洋生态环保能源智能数字实验创新青少年"
    keys = ["", "a", "科", "科普", "湖南省地质博物馆", "湖南省地质博物馆湖南省地质科普基地", "长沙市第一中学",
            "长沙市第二中学", "第3期科普讲座", "第4期科普讲座", "科普科普科普", "普科普科普科"]
    for _ in range(300):
        base = "".join(rng.choice(alphabet) for _ in range(rng.randint(2, 16)))
        keys.append(base)
        for _ in range(rng.randint(0, 3)):
            chars = list(base)
            op = rng.random()
            if op < 0.35 and chars:
                chars[rng.randrange(len(chars))] = rng.choice(alphabet + "一二三123")
            elif op < 0.7:
                chars.insert(rng.randrange(len(chars) + 1), rng.choice(alphabet))
            elif chars:
                del chars[rng.randrange(len(chars))]
            keys.append("".join(chars))
    rng.shuffle(keys)
    expected = _pairwise(keys)
    assert len(expected) > 100  # the sample has plenty of near-duplicates to find
    assert form_check._similar_pairs(keys) == expected


def test_duplicate_messages_list_the_others_in_the_order_received(intake_app):
    with intake_app.app_context():
        a = good("科普进社区", who="长沙市科协", host="长沙市科协")
        b = good("科普进社区活动", who="株洲市科协", host="长沙市科协")
        c = good("2024年科普进社区", who="湖南省教育厅", host="长沙市科协")
        found = form_check.compute(_round())
        assert found[(a.id, "duplicate")].index(f"编号 {b.id}") < found[(a.id, "duplicate")].index(f"编号 {c.id}")
        assert found[(c.id, "duplicate")].index(f"编号 {a.id}") < found[(c.id, "duplicate")].index(f"编号 {b.id}")


@BOTH
def test_a_check_overtaken_by_an_edit_writes_nothing_and_never_checks_inside_the_lock(intake_app, monkeypatch):
    """An edit that commits while a check computes makes that check stale: it is dropped (the edit
    queued a check of its own) rather than redone inside the write transaction."""
    from app.core.database import in_write_transaction

    with intake_app.app_context():
        rnd = _round()
        nom = good("无视频", video=False)
        real_compute, calls = form_check.compute, []

        def overtaken(r):
            calls.append(in_write_transaction())
            db.session.add(AuditEvent(action="nomination.update", object_type="nomination", object_id=nom.id,
                                      round_id=r.id))
            db.session.commit()  # another request's edit, committed meanwhile
            return real_compute(r)

        monkeypatch.setattr(form_check, "compute", overtaken)
        result = form_check.run(rnd.id)
        assert result["superseded"] and calls == [False, False, False]
        assert db.session.scalar(select(FormFinding.id).limit(1)) is None
        monkeypatch.setattr(form_check, "compute", real_compute)
        assert form_check.run(rnd.id)["added"] >= 1
