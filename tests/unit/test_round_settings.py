"""Round settings (form rules and the typed operation), the rubric lock, the admin's phase moves and the
dashboard overview."""

from __future__ import annotations

import sys
import types

import pytest

from app.core.errors import Conflict, UserError
from app.extensions import db
from app.models import AuditEvent, Criterion, FormFinding, RankingCounter, Round
from app.models.round import DEFAULT_QUOTAS, DEFAULT_RUBRIC
from app.review import assignments
from app.rounds import moves, phases
from app.rounds import settings as round_settings
from app.rounds.forms import CriterionForm, RoundCreateForm, SettingsForm
from tests.admin_fixtures import add_sheet, build_world, count, events


@pytest.fixture
def world(app):
    with app.app_context():
        yield build_world("collecting")


def settings_form(rnd: Round, **kw) -> dict:
    data = {
        "name": rnd.name, "deadline": "2024-10-08", "slots_unit": "40", "slots_activity": "35",
        "method": "trimmed", "assignment_mode": "all", "reviewers_per_nomination": "",
        "opinion_approve_template": "经专家评审、会议审定，同意推荐为{year}年全国科普日{category}。",
        "opinion_decline_template": "经审定，不予推荐。", "list_unordered": "1",
    }
    for kind, quotas in DEFAULT_QUOTAS.items():
        data[f"quota_{kind}_unit"], data[f"quota_{kind}_activity"] = str(quotas["unit"]), str(quotas["activity"])
    data["version"] = str(rnd.version)
    data.update(kw)
    return data


def posted(app, form_class, data: dict):
    """The form as a view would see it for this POST body (CSRF is the app's, tested on the pages)."""
    with app.test_request_context(method="POST", data=data):
        form = form_class(meta={"csrf": False})
        form.validate_on_submit()
        return form


def save(app, rnd: Round, **kw) -> Round:
    """Parse the settings form like the view does, then call the operation with its typed values."""
    form = posted(app, SettingsForm, settings_form(rnd, **kw))
    assert not form.errors, form.errors
    return round_settings.update_settings(rnd.id, form.values(), version=form.version.data)


def test_update_settings_saves_and_audits_only_changed_keys(app, world):
    rnd = db.session.get(Round, world.round_id)
    version = db.session.get(RankingCounter, (rnd.id, "unit")).version
    save(app, rnd, slots_unit="30", method="zscore", quota_city_unit="7", assignment_mode="balanced",
         reviewers_per_nomination="3")
    db.session.expire_all()
    rnd = db.session.get(Round, world.round_id)
    assert (rnd.slots_unit, rnd.method, rnd.quota("city", "unit"), rnd.reviewers_per_nomination) == (30, "zscore", 7, 3)
    [ev] = events("round.settings")
    # The factory round has 40/40 slots: slots_activity (35 in the form) changed too; nothing else did.
    assert set(ev.after) == set(ev.before) == {"slots_unit", "slots_activity", "method", "quotas", "assignment_mode",
                                               "reviewers_per_nomination"}
    assert ev.before["slots_unit"] == 40 and ev.after["slots_unit"] == 30
    assert ev.after["quotas"]["city"]["unit"] == 7
    assert db.session.get(RankingCounter, (rnd.id, "unit")).version > version  # method/slots change the ranking


@pytest.mark.parametrize("field,value,message", [
    ("name", "", "批次名称不能为空"),
    ("slots_unit", "-3", "优秀组织单位名额应为整数"),
    ("slots_activity", "1000", "应在 0–999"),
    ("method", "best", "请选择计分方法"),
    ("quota_city_activity", "", "市州科协优秀活动推荐名额不能为空"),
    ("deadline", "2024/10/08", "格式应为 年-月-日"),
    ("assignment_mode", "random", "请选择分配方式"),
    ("opinion_approve_template", "同意推荐为{year}年{award}。", "未知占位符 {award}"),
    ("opinion_approve_template", "同意推荐为{year年。", "花括号不匹配"),
    ("opinion_decline_template", "", "不予推荐意见模板不能为空"),
    ("opinion_decline_template", "不" * 501, "不能超过 500"),
])
def test_settings_validation(app, world, field, value, message):
    rnd = db.session.get(Round, world.round_id)
    form = posted(app, SettingsForm, settings_form(rnd, **{field: value}))
    assert message in form.first_errors()[field]
    assert set(form.errors) == {field}  # nothing else is blamed


def test_balanced_mode_needs_k(app, world):
    rnd = db.session.get(Round, world.round_id)
    form = posted(app, SettingsForm, settings_form(rnd, assignment_mode="balanced"))
    assert form.first_errors()["reviewers_per_nomination"] == "每件专家数不能为空"


@pytest.mark.parametrize("value", ["\x00", "１２", "²", "1e2", "-0", "9" * 40])
def test_settings_numbers_are_ascii_digits_only(app, world, value):
    rnd = db.session.get(Round, world.round_id)
    form = posted(app, SettingsForm, settings_form(rnd, slots_unit=value))
    assert form.first_errors()["slots_unit"] in ("优秀组织单位名额应为整数", "优秀组织单位名额不能为空")


def test_a_control_character_inside_a_number_is_stripped_not_kept(app, world):
    rnd = db.session.get(Round, world.round_id)
    form = posted(app, SettingsForm, settings_form(rnd, slots_unit="4\x000"))
    assert not form.errors and form.values()["slots_unit"] == 40


def test_settings_text_is_cleaned_of_control_characters(app, world):
    rnd = db.session.get(Round, world.round_id)
    save(app, rnd, name="2024年\x00评选\u202e", opinion_decline_template="经审定，\x07不予推荐。\r\n")
    db.session.expire_all()
    rnd = db.session.get(Round, world.round_id)
    assert rnd.name == "2024年评选" and rnd.opinion_decline_template == "经审定，不予推荐。"


def test_settings_need_the_version_they_were_based_on(app, world):
    rnd = db.session.get(Round, world.round_id)
    data = settings_form(rnd, slots_unit="12")
    del data["version"]
    form = posted(app, SettingsForm, data)
    assert "缺少版本号" in form.first_errors()["version"]
    # A stale version: someone saved the round since this form was rendered.
    stale = rnd.version
    save(app, rnd, slots_unit="13")
    db.session.expire_all()
    rnd = db.session.get(Round, world.round_id)
    assert rnd.version == stale + 1
    form = posted(app, SettingsForm, settings_form(rnd, slots_unit="14", version=str(stale)))
    with pytest.raises(Conflict) as exc:
        round_settings.update_settings(rnd.id, form.values(), version=form.version.data)
    assert exc.value.status == 409 and "已被他人修改" in exc.value.message
    db.session.rollback()
    assert db.session.get(Round, world.round_id).slots_unit == 13
    assert len(events("round.settings")) == 1


def test_a_phase_change_makes_an_open_settings_form_stale(app, world):
    rnd = db.session.get(Round, world.round_id)
    before = rnd.version
    moves.admin_move(rnd.id, "setup", reason="名额要改")
    db.session.expire_all()
    assert db.session.get(Round, world.round_id).version == before + 1


def test_settings_are_read_only_once_final(app, world):
    rnd = db.session.get(Round, world.round_id)
    rnd.phase = "final"
    db.session.commit()
    with pytest.raises(UserError) as exc:
        save(app, rnd)
    assert exc.value.status == 409


def test_templates_lock_once_publicized_but_other_settings_do_not(app, world):
    rnd = db.session.get(Round, world.round_id)
    rnd.phase = "publicizing"
    db.session.commit()
    with pytest.raises(UserError) as exc:
        save(app, rnd, opinion_decline_template="经审定，暂不推荐。")
    assert exc.value.status == 409 and "审定意见模板不能再修改" in exc.value.message
    db.session.rollback()
    rnd = db.session.get(Round, world.round_id)
    save(app, rnd, slots_unit="41")
    assert db.session.get(Round, world.round_id).slots_unit == 41


def test_template_placeholders():
    assert round_settings.check_template("同意推荐为{year}年全国科普日{category}。") is None
    assert round_settings.check_template("{{year}} 字面量") is None
    assert "未知占位符" in round_settings.check_template("{0}")
    assert "未知占位符" in round_settings.check_template("{year.__class__}")


# ----------------------------------------------------------------------------- rubric


def crit(**kw):
    return {"name": "创新性", "max_score": "10", "step": "0.5", "guidance": "形式或内容有创新。", **kw}


def typed(**kw) -> dict:
    """The rubric form's typed values, parsed as the view parses them."""
    return {"name": "创新性", "max_score": 10.0, "step": 0.5, "guidance": "形式或内容有创新。", **kw}


def test_add_update_move_remove_criteria_are_audited(app, world):
    c = round_settings.add_criterion(world.round_id, "unit", **typed())
    assert (c.code, c.position, c.max_score) == ("c1", 4, 10.0)
    round_settings.update_criterion(c.id, **typed(name="创新性与示范性", max_score=15.0))
    round_settings.move_criterion(c.id, "up")
    names = [x.name for x in round_settings.rubric(world.round_id)["unit"]]
    assert names == ["活动内容", "活动形式", "活动影响力", "创新性与示范性", "群众反映"]
    round_settings.move_criterion(c.id, "down")
    round_settings.move_criterion(c.id, "down")  # already last: nothing happens
    round_settings.remove_criterion(c.id)
    assert count(Criterion, Criterion.round_id == world.round_id, Criterion.category == "unit") == 4
    actions = [e.action for e in events() if e.action.startswith("criterion.")]
    assert actions == ["criterion.create", "criterion.update", "criterion.reorder", "criterion.reorder",
                       "criterion.delete"]
    # The other category never moved.
    assert [x.position for x in round_settings.rubric(world.round_id)["activity"]] == [0, 1, 2, 3]


@pytest.mark.parametrize("field,value,message", [
    ("name", "", "指标名称不能为空"),
    ("name", "名" * 51, "不能超过 50"),
    ("max_score", "abc", "满分应为数字"),
    ("max_score", "0", "满分应大于 0"),
    ("max_score", "nan", "满分应大于 0"),
    ("max_score", "101", "满分不能超过 100"),
    ("step", "-1", "评分步长应大于 0"),
    ("step", "20", "评分步长不能大于满分"),
    ("step", "0.3", "整数倍"),
    ("guidance", "说" * 1001, "不能超过 1000"),
])
def test_criterion_validation(app, world, field, value, message):
    form = posted(app, CriterionForm, crit(**{field: value}))
    assert message in form.first_errors()[field]
    assert set(form.errors) == {field}


def test_criterion_form_gives_typed_values_and_cleans_text(app):
    form = posted(app, CriterionForm, crit(name=" 创新\x00性 ", guidance="第一行\r\n\u200b第二行"))
    assert not form.errors
    assert form.values() == {"name": "创新性", "max_score": 10.0, "step": 0.5, "guidance": "第一行\n第二行"}


def test_duplicate_names_and_last_criterion(app, world):
    with pytest.raises(UserError) as exc:
        round_settings.add_criterion(world.round_id, "unit", **typed(name="活动内容"))
    assert exc.value.status == 409
    db.session.rollback()
    items = round_settings.rubric(world.round_id)["activity"]
    for c in items[:-1]:
        round_settings.remove_criterion(c.id)
    with pytest.raises(UserError, match="至少保留一项"):
        round_settings.remove_criterion(items[-1].id)


def test_rubric_locked_once_reviewing(app, world):
    rnd = db.session.get(Round, world.round_id)
    c = round_settings.rubric(rnd.id)["unit"][0]
    rnd.phase = "reviewing"
    db.session.commit()
    assert round_settings.rubric_editable(rnd) is False
    for call in (lambda: round_settings.add_criterion(rnd.id, "unit", **typed()),
                 lambda: round_settings.update_criterion(c.id, **typed()),
                 lambda: round_settings.remove_criterion(c.id),
                 lambda: round_settings.move_criterion(c.id, "down")):
        with pytest.raises(UserError) as exc:
            call()
        assert exc.value.status == 409 and "评分指标不能再修改" in exc.value.message
        db.session.rollback()
    assert not [e for e in events() if e.action.startswith("criterion.")]


def test_rubric_locked_by_any_score_even_back_in_collecting(app, world):
    rnd = db.session.get(Round, world.round_id)
    assignments.set_assignment(world.reviewers["r3"], world.nominations["soc-unit-0"], True)
    add_sheet(world.reviewers["r3"], world.nominations["soc-unit-0"])
    assert round_settings.rubric_editable(rnd) is False
    with pytest.raises(UserError, match="已有专家评分"):
        round_settings.add_criterion(rnd.id, "activity", **typed())


# ----------------------------------------------------------------------------- phases


def test_forward_to_reviewing_needs_assignments(app, world, monkeypatch):
    monkeypatch.setattr(moves, "_form_check_guard", lambda: None)  # 形式审查 is tested below
    with pytest.raises(UserError) as exc:
        moves.admin_move(world.round_id, "reviewing")
    assert exc.value.status == 409 and "尚未分配评审专家" in exc.value.message
    db.session.rollback()
    assert db.session.get(Round, world.round_id).phase == "collecting"
    assignments.assign_all(world.round_id)
    moves.admin_move(world.round_id, "reviewing")
    assert db.session.get(Round, world.round_id).phase == "reviewing"
    [ev] = events("round.phase")
    assert ev.before == {"phase": "collecting"} and ev.after == {"phase": "reviewing"}


def test_forward_to_reviewing_runs_the_form_check_guard(app, world, monkeypatch):
    assignments.assign_all(world.round_id)
    db.session.add(FormFinding(round_id=world.round_id, nomination_id=world.nominations["soc-unit-0"],
                               rule="photos", message="照片不足 3 张", blocking=True, status="open"))
    db.session.commit()
    calls = []

    def fake_guard(rnd):
        calls.append(rnd.id)
        raise Conflict("形式审查还有 1 项阻断性问题未处理")

    fake = types.ModuleType("app.intake.form_check")
    fake.guard_reviewing = fake_guard
    monkeypatch.setitem(sys.modules, "app.intake.form_check", fake)
    import app.intake as services_pkg

    monkeypatch.setattr(services_pkg, "form_check", fake, raising=False)
    with pytest.raises(UserError, match="形式审查"):
        moves.admin_move(world.round_id, "reviewing")
    assert calls == [world.round_id]
    db.session.rollback()
    assert db.session.get(Round, world.round_id).phase == "collecting"


def test_real_form_check_guard_blocks_on_open_blocking_findings(app, world):
    pytest.importorskip("app.intake.form_check")
    assignments.assign_all(world.round_id)
    # The test nominations have no photos: the intake area's 形式审查 finds blocking problems.
    with pytest.raises(UserError) as exc:
        moves.admin_move(world.round_id, "reviewing")
    assert exc.value.status == 409 and "形式审查" in exc.value.message
    db.session.rollback()
    assert db.session.get(Round, world.round_id).phase == "collecting"
    assert not events("round.phase")


def test_back_needs_a_reason_and_is_audited(app, world):
    with pytest.raises(UserError) as exc:
        moves.admin_move(world.round_id, "setup", reason="  ")
    assert exc.value.field_errors == {"reason": "必填"}
    moves.admin_move(world.round_id, "setup", reason="名额设置有误，需要更正")
    [ev] = events("round.phase_back")
    assert ev.reason == "名额设置有误，需要更正" and ev.after == {"phase": "setup"}


def test_admin_does_not_move_past_deliberating_or_skip(app, world):
    rnd = db.session.get(Round, world.round_id)
    with pytest.raises(UserError, match="逐级"):
        moves.admin_move(rnd.id, "deliberating")
    db.session.rollback()
    rnd = db.session.get(Round, world.round_id)
    rnd.phase = "deliberating"
    db.session.commit()
    with pytest.raises(UserError) as exc:
        moves.admin_move(rnd.id, "publicizing")
    assert exc.value.status == 409 and "会议审定页面" in exc.value.message
    db.session.rollback()
    moves.admin_move(rnd.id, "reviewing", reason="补充一位专家的评分")
    assert db.session.get(Round, world.round_id).phase == "reviewing"


def test_phase_moves_offered(app, world):
    rnd = db.session.get(Round, world.round_id)
    moves = phases.phase_moves(rnd)
    assert (moves["next"], moves["back"], moves["chair_next"]) == ("reviewing", "setup", None)
    rnd.phase = "publicizing"
    moves = phases.phase_moves(rnd)
    assert (moves["next"], moves["back"], moves["chair_next"]) == (None, "deliberating", "final")
    rnd.phase = "final"
    assert phases.phase_moves(rnd)["chair_next"] is None
    db.session.rollback()


# ----------------------------------------------------------------------------- creation and overview


def test_create_round_with_default_rubric(app):
    with app.app_context():
        rnd = round_settings.create_round(2025, "")
        assert rnd.name == "2025年全国科普日优秀组织单位和优秀活动评选" and rnd.phase == "setup"
        rubric = round_settings.rubric(rnd.id)
        assert [c.max_score for c in rubric["unit"]] == [30, 20, 30, 20]
        assert [(c.code, c.name, c.step, c.guidance) for c in rubric["activity"]] == [
            (d["code"], d["name"], d["step"], d["guidance"]) for d in DEFAULT_RUBRIC]
        assert rnd.quotas == DEFAULT_QUOTAS and rnd.quotas is not DEFAULT_QUOTAS
        assert count(RankingCounter, RankingCounter.round_id == rnd.id) == 2
        with pytest.raises(UserError) as exc:
            round_settings.create_round(2025, "")
        assert exc.value.status == 409
        assert "年份应为整数" in posted(app, RoundCreateForm, {"year": "20x5"}).first_errors()["year"]
        assert "应在 2000–2100" in posted(app, RoundCreateForm, {"year": "1999"}).first_errors()["year"]
        assert count(AuditEvent, AuditEvent.action == "round.create") == 1


def test_overview_counts(app, world):
    assignments.assign_all(world.round_id)
    add_sheet(world.reviewers["r3"], world.nominations["soc-unit-0"])
    add_sheet(world.reviewers["r4"], world.nominations["soc-unit-0"], status="draft")
    db.session.add(FormFinding(round_id=world.round_id, nomination_id=None, rule="quota", message="超额",
                               blocking=True, status="open"))
    db.session.commit()
    o = round_settings.overview(world.round_id)
    assert o["nominations"]["unit"] == {"active": 6, "withdrawn": 0}
    assert o["nominators"] == 3 and o["reviewers"] == 4
    assert o["assignments"] == 12 * 4 - 4 - 4
    assert (o["submitted"], o["drafts"], o["findings_blocking"]) == (1, 1, 1)
    assert o["progress"] == round(100 * 1 / o["assignments"])
