"""The audit log reads in 科普部 staff's words: every action the app records has a Chinese name, keys are
field names, codes are their labels, ids are names, scores are numbers per criterion, and times (page,
CSV and the CSV's file name) are Beijing time. Built from events the real operations record."""

from __future__ import annotations

import ast
import csv
import io
import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from app.accounts import operations as users
from app.audit import queries as audit_log
from app.audit.readable import ACTION_LABELS, FIELD_LABELS, OBJECT_LABELS
from app.extensions import db
from app.intake import nominations
from app.models import AuditEvent, Criterion, Nomination, User
from app.review import scoring
from app.review.assignments import MODE_LABELS
from app.rounds import phases
from tests.admin_fixtures import Browser, build_world, events

APP = Path(__file__).resolve().parents[2] / "app"


# ----------------------------------------------------------------------------- every action has a label


def _literals(node) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _literals(node.body) + _literals(node.orelse)
    if isinstance(node, ast.JoinedStr):
        # f"assignment.run_{result.mode}": every mode the assignment runs have
        text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        assert text == "assignment.run_{}", f"an f-string action nobody expands here: {text}"
        return [text.format(mode) for mode in MODE_LABELS]
    return []


def recorded_actions() -> set[str]:
    """Every action string any operation can record, read from the source with ast: the literal (or
    both branches of a conditional, or an f-string) passed to record(); and, where a helper passes its
    own `action` parameter on, that parameter's default and every literal its callers give it."""
    trees = {p: ast.parse(p.read_text(encoding="utf-8")) for p in APP.rglob("*.py") if "audit" not in p.parts}
    found: set[str] = set()
    helpers: dict[str, int] = {}  # function name → position of its action parameter
    for tree in trees.values():
        for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
            params = [a.arg for a in fn.args.args + fn.args.kwonlyargs]
            for call in [n for n in ast.walk(fn) if isinstance(n, ast.Call)]:
                name = getattr(call.func, "attr", None) or getattr(call.func, "id", None)
                if name not in ("record", "_record") or not call.args or fn.name == "_record" and name == "_record":
                    continue
                first = call.args[0]
                if isinstance(first, ast.Name) and first.id in params:
                    helpers[fn.name] = params.index(first.id) if first.id in [a.arg for a in fn.args.args] else -1
                    defaults = dict(zip([a.arg for a in fn.args.args][-len(fn.args.defaults):] if fn.args.defaults
                                        else [], fn.args.defaults, strict=False))
                    defaults.update({a.arg: d for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults, strict=True)
                                     if d is not None})
                    if first.id in defaults:
                        found.update(_literals(defaults[first.id]))
                else:
                    found.update(_literals(first))
    assert {"end_sessions", "_decide", "_set_status", "attach", "_record"} <= set(helpers), helpers
    for tree in trees.values():
        for call in [n for n in ast.walk(tree) if isinstance(n, ast.Call)]:
            name = getattr(call.func, "attr", None) or getattr(call.func, "id", None)
            if name not in helpers:
                continue
            for kw in call.keywords:
                if kw.arg == "action":
                    found.update(_literals(kw.value))
            i = helpers[name]
            if 0 <= i < len(call.args):
                found.update(_literals(call.args[i]))
    return {a for a in found if re.fullmatch(r"[a-z_]+\.[a-z_]+", a)}


def test_every_recorded_action_has_a_chinese_label():
    actions = recorded_actions()
    # the scan finds the ones reached only through helpers, not just literal record() calls
    assert {"attachment.import", "form_finding.waive", "nomination.withdraw", "ops.backup", "user.logout",
            "assignment.run_balanced", "user.deactivate", "sheet.submit"} <= actions
    missing = sorted(a for a in actions if a not in ACTION_LABELS)
    assert not missing, f"actions without a Chinese label: {missing}"
    assert all(re.search(r"[\u4e00-\u9fff]", ACTION_LABELS[a]) for a in actions)


def test_every_object_type_has_a_label():
    types = set()
    for path in APP.rglob("*.py"):
        types.update(re.findall(r"record\([^,]+,\s*\"([a-z_]+)\"", path.read_text(encoding="utf-8")))
    assert types and types <= set(OBJECT_LABELS), types - set(OBJECT_LABELS)


# ----------------------------------------------------------------------------- real events, read


@pytest.fixture
def world(app):
    with app.app_context():
        return build_world("reviewing")


def _criteria(round_id, category) -> list[Criterion]:
    return list(db.session.scalars(select(Criterion).where(Criterion.round_id == round_id,
                                                           Criterion.category == category)
                                   .order_by(Criterion.position)))


def _submit_scores(world) -> int:
    """r3 scores an activity through the scoring service; returns the nomination id."""
    from app.review import assignments

    nom_id = world.nominations["soc-activity-0"]
    reviewer = db.session.get(User, world.reviewers["r3"])
    admin = users.by_username("admin1")
    assignments.set_assignment(reviewer.id, nom_id, True, actor=admin)
    crit = _criteria(world.round_id, "activity")
    values = {c.id: str(v) for c, v in zip(crit, (25, 18, 12.5, 20), strict=False)}
    scoring.save_sheet(reviewer, nom_id, values, "内容扎实", 0, submit=True)
    return nom_id


def test_scores_are_numbers_per_criterion_not_json(app, world):
    with app.app_context():
        _submit_scores(world)
        [ev] = events("sheet.submit")
        row = next(r for r in audit_log.search(audit_log.Filters(action="sheet.submit")).rows)
        changes = {c.label: c for c in row.changes}
        crit = _criteria(world.round_id, "activity")
        expected = f"{crit[0].name} 25，{crit[1].name} 18，{crit[2].name} 12.5，{crit[3].name} 20"
        assert changes["评分"].after == expected
        assert crit[0].name == "活动内容" and expected.startswith("活动内容 25，")
        assert changes["状态"].after == "已提交" and changes["评语"].after == "内容扎实"
        assert "{" not in changes["评分"].after and '"' not in changes["评分"].after
        assert row.object_label == "评分表" and "R3" in row.object_name and "湖南省科普作家协会activity0" in row.object_name
        assert ev.after["values"]  # stored exactly (codes and numbers); only the reading is in words


def test_nomination_edit_reads_with_field_names_and_names_for_ids(app, world):
    with app.app_context():
        admin = users.by_username("admin1")
        nom_id = world.nominations["cs-activity-0"]
        nom = db.session.get(Nomination, nom_id)
        version = nominations.version_of(nom)
        nominations.update(nom_id, {"title": "新的活动名称", "nominator_id": str(world.nominators["zz"])},
                           version=version, actor=admin)
        phases.change_phase(world.round_id, "collecting", reason="补充材料", actor=admin)
        rows = audit_log.search(audit_log.Filters()).rows
        edit = next(r for r in rows if r.event.action == "nomination.update")
        changes = {c.key: c for c in edit.changes}
        assert changes["title"].label == "活动名称"
        assert (changes["title"].before, changes["title"].after) == ("长沙市科协activity0", "新的活动名称")
        assert changes["nominator_id"].label == "推荐单位"
        assert (changes["nominator_id"].before, changes["nominator_id"].after) == ("长沙市科协", "株洲市科协")
        assert edit.object_name == "新的活动名称"
        back = next(r for r in rows if r.event.action == "round.phase_back")
        [phase] = back.changes
        assert (phase.label, phase.before, phase.after) == ("阶段", "专家评审", "材料收集")
        assert back.action_label == "退回阶段"


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_audit_page_shows_chinese_words_and_beijing_time(app, world):
    with app.app_context():
        _submit_scores(world)
        ev = events("sheet.submit")[0]
        ev.at = datetime(2024, 10, 1, 17, 30, 5, tzinfo=UTC)  # 2024-10-02 01:30:05 in Beijing
        db.session.commit()
    admin = Browser(app, "admin1")
    html = admin.get("/admin/audit?action=sheet.submit").get_data(as_text=True)
    assert "2024-10-02 01:30:05" in html and "北京时间" in html
    assert "提交评分" in html and ">评分</th>" in html and "活动内容 25，" in html and "已提交" in html
    assert "&#34;content&#34;" not in html and '"content"' not in html and ">values</th>" not in html
    # the date filter cuts Beijing days, not the server's
    assert "共 1 条" in admin.get("/admin/audit?action=sheet.submit&date_from=2024-10-02&date_to=2024-10-02")\
        .get_data(as_text=True)
    assert "共 0 条" in admin.get("/admin/audit?action=sheet.submit&date_to=2024-10-01").get_data(as_text=True)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_csv_is_readable_text_in_beijing_time(app, world, monkeypatch):
    with app.app_context():
        _submit_scores(world)
        ev = events("sheet.submit")[0]
        ev.at = datetime(2024, 10, 1, 17, 30, 5, tzinfo=UTC)
        db.session.commit()
    import app.core.time as clock

    monkeypatch.setattr(clock, "utcnow", lambda: datetime(2024, 10, 8, 16, 45, 0, tzinfo=UTC))
    admin = Browser(app, "admin1")
    resp = admin.get("/admin/audit.csv?action=sheet.submit")
    assert "filename=audit-20241009-004500.csv" in resp.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True).lstrip("\ufeff"))))
    header, row = rows[0], rows[1]
    assert row[0] == "2024-10-02 01:30:05" and row[2] == "提交评分"
    after = row[header.index("变更后")]
    assert after.startswith("评分：活动内容 25，") and "状态：已提交" in after and "评语：内容扎实" in after
    assert "{" not in after and "content" not in after
    assert "R3" in row[header.index("对象名称")]


def test_diff_labels_codes_and_values():
    changes = audit_log.diff({"phase": "collecting", "method": "mean", "quotas": {"city": {"unit": 8}}},
                             {"phase": "reviewing", "method": "zscore", "quotas": {"city": {"unit": 6}},
                              "list_unordered": True})
    got = [(c.label, c.before, c.after) for c in changes]
    assert got == [("阶段", "材料收集", "专家评审"), ("计分方法", "算术平均", "标准分（Z 分数）"),
                   ("推荐名额", "市州科协：优秀组织单位 8", "市州科协：优秀组织单位 6"), ("名单排名不分先后", "", "是")]


def test_confirmed_preflight_gaps_read_as_counted_words():
    changes = audit_log.diff({"phase": "deliberating"},
                             {"phase": "publicizing", "gaps": {"unsubmitted": 3, "blocking_findings": 1}})
    got = {c.label: c.after for c in changes}
    assert got["确认时的未完成事项"] == "未提交的评分表 3 项，未处理的阻断性形式审查问题 1 项"


def test_every_snapshot_key_the_operations_write_has_a_label(app, world):
    """Run a spread of real operations and check every key they recorded reads in Chinese."""
    with app.app_context():
        admin = users.by_username("admin1")
        _submit_scores(world)
        nom_id = world.nominations["zz-unit-0"]
        nominations.update(nom_id, {"title": "改名单位", "people_served": "1200"},
                           version=nominations.version_of(db.session.get(Nomination, nom_id)), actor=admin)
        users.update_user(world.reviewers["r4"], display_name="周四", role="chair", affiliation_id=world.nominators["cs"],
                          actor=admin)
        phases.change_phase(world.round_id, "collecting", reason="补材料", actor=admin)
        keys = set()
        for e in db.session.scalars(select(AuditEvent)):
            for side in (e.before, e.after):
                if isinstance(side, dict):
                    keys |= set(side)
        missing = sorted(k for k in keys if k not in FIELD_LABELS)
        assert not missing, missing
        rows = audit_log.search(audit_log.Filters(), per_page=500).rows
        for r in rows:
            for c in r.changes:
                assert re.search(r"[\u4e00-\u9fff]", c.label), (r.event.action, c.key)
        role = next(c for r in rows if r.event.action == "user.update" for c in r.changes if c.key == "role")
        assert (role.before, role.after) == ("评审专家", "评审委员会主任")
        aff = next(c for r in rows if r.event.action == "user.update" for c in r.changes if c.key == "affiliation_id")
        assert (aff.before, aff.after) == ("—", "长沙市科协")


def test_names_are_looked_up_per_page_not_per_row(app, world):
    with app.app_context():
        admin = users.by_username("admin1")
        for i in range(30):
            users.update_user(world.reviewers["r4"], display_name=f"周{i}", role="reviewer", affiliation_id=None,
                              actor=admin)
        from sqlalchemy import event

        statements = []

        def count(*_a, **_k):
            statements.append(1)

        event.listen(db.engine, "before_cursor_execute", count)
        try:
            page = audit_log.search(audit_log.Filters())
            [r.changes for r in page.rows]
            [r.object_name for r in page.rows]
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        assert len(page.rows) >= 30 and len(statements) <= 8


def test_day_filter_uses_beijing_midnight():
    assert audit_log._local_midnight_utc(date(2024, 10, 2)) == datetime(2024, 10, 1, 16, 0, tzinfo=UTC)


def test_the_log_filtered_up_to_the_last_day_of_the_calendar_is_not_a_500(app):
    from tests.conftest import login

    client = app.test_client()
    with app.app_context():
        from tests.factories import make_user

        make_user("audit-max", role="admin")
    login(client, "audit-max")
    resp = client.get("/admin/audit?date_to=9999-12-31")
    assert resp.status_code == 200
