"""nominations service: the form limits, create/update/withdraw, audit, stale edits, phases."""

from datetime import date

import pytest
from sqlalchemy import select

from app.core.errors import Conflict, UserError
from app.extensions import db
from app.intake import nominations
from app.intake.text import parse_count, parse_date
from app.models import AuditEvent, Nomination, Round
from tests import intake_fixtures
from tests.intake_fixtures import nominator

intake_app = intake_fixtures.intake_app

BOTH = pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])

GOOD = {"title": "科普进社区", "host": "长沙市科协", "contact_name": "张三", "contact_title": "部长",
        "contact_phone": "0731-88886666", "address": "长沙市芙蓉区", "event_count": "12", "people_served": "3000",
        "summary": "简介" * 100, "recommendation": "同意推荐。", "recommendation_date": "2024-09-30"}


def _round():
    return db.session.scalar(select(Round))


@pytest.mark.parametrize("text,expected", [("1,200", 1200), ("1.2万人次", 12000), ("约3000人", 3000), ("10余场", 10),
                                           ("８", 8), ("", None), (15, 15), (12.0, 12)])
def test_counts_are_read_the_way_forms_write_them(text, expected):
    assert parse_count(text) == expected


@pytest.mark.parametrize("text", ["-5", "3.5", "很多", "1.23456万"])
def test_counts_that_are_not_non_negative_integers_are_refused(text):
    with pytest.raises(ValueError, match="不小于 0 的整数"):
        parse_count(text)


@pytest.mark.parametrize("text,expected", [("2024-09-30", date(2024, 9, 30)), ("2024年9月30日", date(2024, 9, 30)),
                                           ("２０２４．１０．８", date(2024, 10, 8)),
                                           ("二〇二四年十月八日", date(2024, 10, 8)), ("", None)])
def test_dates_in_every_usual_spelling(text, expected):
    assert parse_date(text) == expected


def test_validation_limits_match_the_form():
    c = nominations.validate_fields("activity", {**GOOD, "summary": "字" * 501, "recommendation": "意" * 501,
                                                 "title": "名" * 101, "event_count": "-1", "people_served": "2.5",
                                                 "contact_phone": "打电话", "recommendation_date": "九月底"})
    assert set(c.errors) == {"summary", "recommendation", "title", "event_count", "people_served", "contact_phone",
                             "recommendation_date"}
    assert "不能超过 500 字（当前 501 字）" in c.errors["summary"]
    assert "不能超过 100 字" in c.errors["title"]
    ok = nominations.validate_fields("activity", {**GOOD, "summary": "字" * 500})
    assert ok.ok and ok.values["summary"] == "字" * 500 and ok.values["event_count"] == 12


def test_windows_line_breaks_do_not_count_double():
    text = "\r\n".join(["字"] * 200)  # what a browser posts from a textarea
    assert len(text) > 500
    c = nominations.validate_fields("unit", {"title": "x", "summary": text})
    assert c.ok and len(c.values["summary"]) == 399


def test_missing_fields_are_listed_not_refused():
    c = nominations.validate_fields("activity", {"title": "只有名称"})
    assert c.ok
    assert set(nominations.missing_labels(c, "activity")) >= {"主办单位", "联系人", "联系电话", "活动场数", "推荐意见"}


@BOTH
def test_create_update_withdraw_are_audited(intake_app):
    with intake_app.app_context():
        rnd = _round()
        nom = nominations.create(rnd.id, nominator("长沙市科协").id, "activity", GOOD)
        assert nom.id and nom.event_count == 12 and nom.recommendation_date == date(2024, 9, 30)
        version = nominations.version_of(nom)
        nominations.update(nom.id, {**GOOD, "people_served": "1.5万"}, version=version)
        assert db.session.get(Nomination, nom.id).people_served == 15000
        nominations.withdraw(nom.id, "推荐单位来函撤回")
        assert db.session.get(Nomination, nom.id).status == "withdrawn"
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.object_type == "nomination")
                                    .order_by(AuditEvent.id)).all()
        assert [e.action for e in events] == ["nomination.create", "nomination.update", "nomination.withdraw"]
        assert events[1].before == {"people_served": 3000} and events[1].after == {"people_served": 15000}
        assert events[2].reason == "推荐单位来函撤回"


@BOTH
def test_bad_input_stores_nothing(intake_app):
    with intake_app.app_context():
        rnd = _round()
        with pytest.raises(UserError) as e:
            nominations.create(rnd.id, nominator("长沙市科协").id, "unit", {**GOOD, "summary": "字" * 501})
        assert e.value.status == 422 and "summary" in e.value.field_errors
        with pytest.raises(UserError) as e:
            nominations.create(rnd.id, None, "unit", GOOD)
        assert "nominator_id" in e.value.field_errors
        assert db.session.scalar(select(Nomination)) is None
        assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "nomination.create")) is None


def test_a_stale_edit_is_refused(intake_app):
    with intake_app.app_context():
        nom = nominations.create(_round().id, nominator("长沙市科协").id, "activity", GOOD)
        old = nominations.version_of(nom)
        nominations.update(nom.id, {**GOOD, "title": "改过的名称"}, version=old)
        with pytest.raises(Conflict):
            nominations.update(nom.id, {**GOOD, "title": "另一个人的修改"}, version=old)
        assert db.session.get(Nomination, nom.id).title == "改过的名称"


def test_withdraw_needs_a_reason_and_reinstate_brings_it_back(intake_app):
    with intake_app.app_context():
        nom = nominations.create(_round().id, nominator("长沙市科协").id, "activity", GOOD)
        with pytest.raises(UserError, match="理由"):
            nominations.withdraw(nom.id, "  ")
        nominations.withdraw(nom.id, "重复推荐")
        with pytest.raises(Conflict):
            nominations.withdraw(nom.id, "再撤一次")
        nominations.reinstate(nom.id, "误撤回")
        assert db.session.get(Nomination, nom.id).status == "active"


def test_nothing_changes_once_the_committee_meets(intake_app):
    with intake_app.app_context():
        rnd = _round()
        nom = nominations.create(rnd.id, nominator("长沙市科协").id, "activity", GOOD)
        rnd.phase = "deliberating"
        db.session.commit()
        with pytest.raises(Conflict, match="会议审定"):
            nominations.update(nom.id, {**GOOD, "title": "迟到的修改"}, version=nominations.version_of(nom))
        with pytest.raises(Conflict):
            nominations.create(rnd.id, nominator("长沙市科协").id, "unit", GOOD)


def test_quota_usage_counts_active_nominations_against_overrides(intake_app):
    with intake_app.app_context():
        rnd = _round()
        society = nominator("湖南省科普作家协会")
        for i in range(2):
            nominations.create(rnd.id, society.id, "activity", {**GOOD, "title": f"活动{i}"})
        rows = {q.nominator.name: q for q in nominations.quota_usage(rnd, "activity")}
        assert (rows["湖南省科普作家协会"].count, rows["湖南省科普作家协会"].quota) == (2, 1)
        assert rows["湖南省科普作家协会"].over and not rows["长沙市科协"].over
        society.quota_activity = 3
        db.session.commit()
        rows = {q.nominator.name: q for q in nominations.quota_usage(rnd, "activity")}
        assert rows["湖南省科普作家协会"].quota == 3 and not rows["湖南省科普作家协会"].over


def test_source_key_ignores_spacing_and_punctuation():
    a = nominations.source_key_for("长沙市科协", "activity", "“科普进社区” 活动")
    b = nominations.source_key_for("长沙市 科协", "activity", "科普进社区活动")
    assert a == b
    assert a != nominations.source_key_for("长沙市科协", "unit", "科普进社区活动")


def test_an_edit_without_a_version_is_refused_and_writes_nothing(intake_app):
    with intake_app.app_context():
        nom = nominations.create(_round().id, nominator("长沙市科协").id, "activity", GOOD)
        for version in (None, ""):
            with pytest.raises(UserError) as e:
                nominations.update(nom.id, {**GOOD, "title": "没有版本号的修改"}, version=version)
            assert e.value.status == 422 and "版本号" in e.value.message
        db.session.expire_all()
        assert db.session.get(Nomination, nom.id).title == "科普进社区"
        assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "nomination.update")) is None


def _observer():
    """A second connection of the test database: what other requests see and whether they must wait."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db.engine.url)

    def committed_title(nomination_id):
        with engine.connect() as conn:
            return conn.execute(text("SELECT title FROM nominations WHERE id = :id"), {"id": nomination_id}).scalar()

    def round_row_free(round_id):
        """Could a writer take the round row right now without waiting? (SQLite: the database lock.)"""
        with engine.connect() as conn:
            try:
                if engine.dialect.name == "sqlite":
                    conn.exec_driver_sql("PRAGMA busy_timeout = 0")
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                    conn.exec_driver_sql("ROLLBACK")
                else:
                    conn.execute(text("SELECT id FROM rounds WHERE id = :id FOR UPDATE NOWAIT"), {"id": round_id})
                    conn.rollback()
            except Exception:  # noqa: BLE001 — "database is locked" / LockNotAvailable
                return False
            return True

    return engine, committed_title, round_row_free


@BOTH
def test_an_edit_commits_before_its_check_which_holds_nothing_a_score_save_needs(intake_app, monkeypatch):
    """形式审查 reads the whole round (at national scale, 7,000 titles): it runs after the edit has
    committed, outside any write transaction, with the round row free for score saves."""
    from app.core.database import in_write_transaction
    from app.intake import form_check

    with intake_app.app_context():
        nom = nominations.create(_round().id, nominator("长沙市科协").id, "activity", GOOD)
        engine, committed_title, round_row_free = _observer()
        real_compute, seen = form_check.compute, []

        def observed(rnd):
            seen.append((in_write_transaction(), committed_title(nom.id), round_row_free(rnd.id)))
            return real_compute(rnd)

        monkeypatch.setattr(form_check, "compute", observed)
        nominations.update(nom.id, {**GOOD, "title": "改过的名称"}, version=nominations.version_of(nom))
        nominations.withdraw(nom.id, "重复报送")
        engine.dispose()
        assert seen == [(False, "改过的名称", True)] * 2


@BOTH
def test_a_failed_check_after_the_commit_keeps_the_edit(intake_app, monkeypatch, caplog):
    from app.intake import form_check

    with intake_app.app_context():
        nom = nominations.create(_round().id, nominator("长沙市科协").id, "activity", GOOD)
        version = nominations.version_of(nom)

        def broken(*_a, **_k):
            raise RuntimeError("形式审查失败")

        monkeypatch.setattr(form_check, "run", broken)
        nominations.update(nom.id, {**GOOD, "title": "已保存的修改"}, version=version)
        db.session.rollback()
        db.session.expire_all()
        assert db.session.get(Nomination, nom.id).title == "已保存的修改"
        assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "nomination.update")) is not None
        assert "形式审查 after an intake write failed" in caplog.text


def test_a_write_that_fails_is_not_checked(intake_app, monkeypatch):
    from app.intake import form_check

    with intake_app.app_context():
        nom = nominations.create(_round().id, nominator("长沙市科协").id, "activity", GOOD)
        calls = []
        monkeypatch.setattr(form_check, "run", lambda *a, **k: calls.append(a))
        with pytest.raises(Conflict):
            nominations.update(nom.id, {**GOOD, "title": "过期版本"}, version="0" * 16)
        assert calls == []


@BOTH
def test_duplicates_are_found_after_an_edit(intake_app):
    from app.models import FormFinding

    with intake_app.app_context():
        a = nominations.create(_round().id, nominator("长沙市科协").id, "activity", GOOD)
        b = nominations.create(_round().id, nominator("株洲市科协").id, "activity",
                               {**GOOD, "title": "青少年科技创新大赛"})

        def open_duplicates():
            db.session.expire_all()
            return {f.nomination_id for f in db.session.scalars(select(FormFinding).where(
                FormFinding.rule == "duplicate", FormFinding.status == "open"))}

        assert open_duplicates() == set()
        nominations.update(b.id, {**GOOD, "title": "2024年“科普进社区”"}, version=nominations.version_of(b))
        assert open_duplicates() == {a.id, b.id}
        nominations.update(b.id, {**GOOD, "title": "青少年科技创新大赛"}, version=nominations.version_of(b))
        assert open_duplicates() == set()


def test_a_control_character_is_stripped_by_the_one_cleaning_filter(intake_app):
    with intake_app.app_context():
        nom = nominations.create(_round().id, nominator("长沙市科协").id, "activity",
                                 {**GOOD, "title": "科普\x00进\u200b社区\x07", "summary": "第一行\r\n第二\x0b行"})
        assert nom.title == "科普进社区" and nom.summary == "第一行\n第二行"


def test_edits_queue_one_check_per_round_for_the_job_consumer(app_factory, tmp_path):
    """With a real queue (not immediate), an edit only queues the check; edits made while one waits
    add nothing; the consumer's run clears the slot and brings the findings up to date."""
    from app.jobs import get_jobs
    from app.models import FormFinding
    from tests.factories import make_round

    app = app_factory({"JOBS_IMMEDIATE": False, "JOBS_URL": "sqlite:///" + str(tmp_path / "jobs.sqlite3")})
    with app.app_context():
        make_round("collecting")
        for pos, (name, short, kind) in enumerate(intake_fixtures.NOMINATORS, start=1):
            db.session.add(intake_fixtures.Nominator(name=name, short_name=short, kind=kind, position=pos))
        db.session.commit()
        huey = get_jobs().huey
        huey.flush()
        a = nominations.create(_round().id, nominator("长沙市科协").id, "activity", GOOD)
        b = nominations.create(_round().id, nominator("株洲市科协").id, "activity", {**GOOD, "title": "科技周"})
        nominations.update(b.id, {**GOOD, "title": "2024年“科普进社区”"}, version=nominations.version_of(b))
        assert huey.pending_count() == 1  # three writes, one waiting check
        assert db.session.scalar(select(FormFinding.id).limit(1)) is None  # nothing checked in the request

        def findings():
            db.session.rollback()  # end this session's read snapshot: the consumer committed elsewhere
            return {(f.nomination_id, f.rule) for f in db.session.scalars(
                select(FormFinding).where(FormFinding.status == "open"))}

        huey.execute(huey.dequeue())
        assert {(a.id, "duplicate"), (b.id, "duplicate")} <= findings()
        nominations.update(b.id, {**GOOD, "title": "科技周"}, version=nominations.version_of(b))
        assert huey.pending_count() == 1  # the slot was released: the next write queues again
        huey.execute(huey.dequeue())
        assert not {rule for _nid, rule in findings()} & {"duplicate"}
