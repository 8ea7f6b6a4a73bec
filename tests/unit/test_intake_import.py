"""Imports end to end at the service level and through `flask nominations import` (CliRunner):
read → plan → save, re-imports, over-long 简介, zips with photos, dry runs."""

import os
from datetime import date

import pytest
from sqlalchemy import func, select

from app.core import storage
from app.extensions import db
from app.intake import importer, nominations
from app.models import Attachment, AuditEvent, FormFinding, Nomination, Round
from tests import intake_fixtures
from tests.intake_fixtures import (
    ACTIVITY_FIELDS,
    make_form_docx,
    make_image,
    make_mp4,
    make_xlsx,
    make_zip,
    nominator,
)

intake_app = intake_fixtures.intake_app
BOTH = pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])


def _write(tmp_path, name, data) -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


def _import(paths, **options):
    rnd = db.session.scalar(select(Round))
    reading = importer.read_sources([importer.Source(os.path.basename(p), p) for p in paths])
    try:
        items = importer.plan(reading, rnd, **options)
        return reading, items, importer.save(reading, items, rnd)
    finally:
        reading.close()


def _three():
    """Three different photos (Word stores an image pasted twice only once)."""
    return [make_image("PNG", color=(60 * i, 90, 200)) for i in range(3)]


def _count(model=Nomination):
    return db.session.scalar(select(func.count()).select_from(model))


@BOTH
def test_docx_import_guesses_the_nominator_from_the_file_name_and_saves(intake_app, tmp_path):
    path = _write(tmp_path, "株洲市-科普进社区.docx", make_form_docx("activity", photos=_three()))
    with intake_app.app_context():
        _reading, [item], outcome = _import([path], received=date(2024, 10, 1))
        assert item.nominator_id == nominator("株洲市科协").id and "株洲市-科普进社区" in item.nominator_note
        assert item.action == "create" and len(outcome.created) == 1
        nom = db.session.get(Nomination, outcome.created[0][1])
        assert (nom.title, nom.host, nom.event_count, nom.people_served) == (
            "“科普进社区”系列活动", "株洲市科学技术协会", 8, 3000)
        assert nom.recommendation == "同意推荐。" and nom.recommendation_date.isoformat() == "2024-09-28"
        assert len(nom.photos) == 3 and all(os.path.isfile(storage.path_of(p.stored_name)) for p in nom.photos)
        assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "nomination.import"))
        # 形式审查 ran after the import: three photos but no video
        rules = {f.rule for f in db.session.scalars(select(FormFinding).where(FormFinding.status == "open"))}
        assert rules == {"no_video"}


def test_re_importing_the_same_file_skips_and_a_corrected_one_updates(intake_app, tmp_path):
    first = _write(tmp_path, "a/株洲-活动.docx", make_form_docx("activity", photos=_three()))
    with intake_app.app_context():
        _import([first])
        _r, [again], outcome = _import([first])
        assert again.action == "skip" and not outcome.created and _count() == 1
        assert _count(Attachment) == 3  # photos not doubled
        corrected = _write(tmp_path, "b/株洲-活动（修改稿）.docx",
                           make_form_docx("activity", {"people_served": "3,500人"}, photos=_three()))
        _r, [item], outcome = _import([corrected])
        assert item.action == "update" and item.changes == ["服务人数"]
        assert _count() == 1 and db.session.scalar(select(Nomination)).people_served == 3500
        assert _count(Attachment) == 3


def test_an_over_long_summary_is_kept_and_flagged_not_truncated_silently(intake_app, tmp_path):
    long = "活动" * 310  # 620 characters
    path = _write(tmp_path, "长沙.docx", make_form_docx("activity", {"summary": long}))
    with intake_app.app_context():
        _r, [item], outcome = _import([path])
        assert any("620 字" in w for w in item.warnings)
        nom = db.session.get(Nomination, outcome.created[0][1])
        assert len(nom.summary) == 500 and nom.summary_original == long
        finding = db.session.scalar(select(FormFinding).where(FormFinding.rule == "summary_too_long"))
        assert finding.blocking and finding.status == "open" and "620" in finding.message


NOWHERE = {"title": "科普教育基地", "address": "见附页"}  # names neither a nominator nor a place


def test_a_form_without_a_recognisable_nominator_waits_for_a_choice(intake_app, tmp_path):
    path = _write(tmp_path, "推荐表.docx", make_form_docx("unit", NOWHERE))
    with intake_app.app_context():
        _r, [item], outcome = _import([path])
        assert item.action == "reject" and "无法确定推荐单位" in item.errors[0]
        assert _count() == 0 and outcome.rejected
        chosen = nominator("湖南省教育厅").id
        _r, [item], outcome = _import([path], choices={0: {"nominator_id": chosen, "include": True}})
        assert item.action == "create" and db.session.scalar(select(Nomination)).nominator_id == chosen


def test_xlsx_rows_with_an_unknown_nominator_or_bad_numbers_are_rejected_alone(intake_app, tmp_path):
    headers = ["类别", "推荐单位", "名称", "主办单位", "活动场数", "服务人数", "推荐日期", "收到日期"]
    rows = [["优秀活动", "长沙市科协", "科普进社区", "长沙市科协", 5, "2,000", "2024-09-30", "2024-10-09"],
            ["优秀活动", "不存在的科协", "科普下乡", "某单位", 3, 100, None, None],
            ["优秀组织单位", "株洲市科协", "株洲市科技馆", None, "很多", 100, None, None]]
    path = _write(tmp_path, "汇总.xlsx", make_xlsx(headers, rows))
    with intake_app.app_context():
        _r, items, outcome = _import([path])
        assert [i.action for i in items] == ["create", "reject", "reject"]
        assert "不在推荐单位名单中" in items[1].errors[0]
        assert "活动场数" in items[2].errors[0]
        nom = db.session.scalar(select(Nomination))
        assert nom.title == "科普进社区" and nom.people_served == 2000
        late = db.session.scalar(select(FormFinding).where(FormFinding.rule == "late"))
        assert late and "2024-10-09" in late.message  # received after the deadline: flagged, not lost


def test_zip_with_forms_photos_and_a_video(intake_app, tmp_path):
    data = make_zip({
        "长沙市科协/科普进社区.docx": make_form_docx("activity", {"title": "科普进社区"}),
        "长沙市科协/科普进社区-1.jpg": make_image("JPEG"), "长沙市科协/科普进社区-2.png": make_image("PNG"),
        "长沙市科协/科普进社区-3.jpg": make_image("JPEG"), "长沙市科协/科普进社区.mp4": make_mp4(),
        "长沙市科协/科普进社区-4.jpg": b"this is text, not a photo",
        "长沙市科协/长沙市科技馆.docx": make_form_docx("unit", {"title": "长沙市科技馆"}),
        "说明.txt": b"readme",
    })
    path = _write(tmp_path, "长沙市科协材料.zip", data)
    with intake_app.app_context():
        reading, items, outcome = _import([path])
        assert {i.title: i.action for i in items} == {"科普进社区": "create", "长沙市科技馆": "create"}
        assert all(i.nominator_id == nominator("长沙市科协").id for i in items)
        assert any("说明.txt" in n for n in reading.notes)
        activity = db.session.scalar(select(Nomination).where(Nomination.title == "科普进社区"))
        assert len(activity.photos) == 3 and activity.video is not None and activity.video.mime == "video/mp4"
        warned = next(i for i in items if i.title == "科普进社区").warnings
        assert any("科普进社区-4.jpg" in w for w in warned)


def test_zip_with_a_path_traversal_name_is_rejected_and_writes_nothing(intake_app, tmp_path):
    data = make_zip({"长沙/表.docx": make_form_docx("activity"), "../../escaped.jpg": make_image()})
    path = _write(tmp_path, "evil.zip", data)
    with intake_app.app_context():
        reading, items, outcome = _import([path])
        assert items == [] and "不安全的文件路径" in reading.file_errors[0]
        assert _count() == 0
        upload_dir = intake_app.config["UPLOAD_FOLDER"]
        assert not os.path.isdir(upload_dir) or os.listdir(upload_dir) == []
    assert not any(p.name == "escaped.jpg" for p in tmp_path.parent.rglob("escaped.jpg"))


def test_old_doc_files_and_loose_photos_get_a_clear_message(intake_app, tmp_path):
    doc = _write(tmp_path, "旧表.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512)
    jpg = _write(tmp_path, "照片.jpg", make_image("JPEG"))
    with intake_app.app_context():
        reading, items, _o = _import([doc, jpg])
        assert "另存为 .docx" in reading.file_errors[0] and "详情页上传" in reading.file_errors[1]


# --- the CLI ------------------------------------------------------------------------------------------


def test_cli_dry_run_prints_and_saves_nothing(intake_app, tmp_path):
    good = _write(tmp_path, "株洲-科普进社区.docx", make_form_docx("activity"))
    unknown = _write(tmp_path, "无名.docx", make_form_docx("unit", NOWHERE))
    result = intake_app.test_cli_runner().invoke(args=["nominations", "import", good, unknown, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "[新增] 株洲-科普进社区.docx：优秀活动「“科普进社区”系列活动」 推荐单位：株洲市科协" in result.output
    assert "[拒绝] 无名.docx" in result.output and "无法确定推荐单位" in result.output
    assert "试运行（--dry-run），未保存任何内容" in result.output
    with intake_app.app_context():
        assert _count() == 0 and _count(AuditEvent) == 1  # only the admin account's creation


def test_cli_saves_reports_rejections_and_uses_the_nominator_option(intake_app, tmp_path):
    unit = _write(tmp_path, "推荐表.docx", make_form_docx("unit"))
    broken = _write(tmp_path, "坏文件.docx", b"PK\x03\x04 not really a docx")
    runner = intake_app.test_cli_runner()
    result = runner.invoke(args=["nominations", "import", unit, broken, "--nominator", "湖南省教育厅",
                                 "--received", "2024-10-07"])
    assert result.exit_code == 1, result.output  # something was rejected
    assert "已保存：新增 1 项" in result.output and "新增 #" in result.output
    assert "[拒绝] 「坏文件.docx」" in result.output
    with intake_app.app_context():
        nom = db.session.scalar(select(Nomination))
        assert nom.nominator_id == nominator("湖南省教育厅").id and nom.category == "unit"
        from app.intake.nominations import local_date

        assert local_date(nom.received_at).isoformat() == "2024-10-07"
    again = runner.invoke(args=["nominations", "import", unit, "--nominator", "湖南省教育厅"])
    assert again.exit_code == 0 and "[跳过]" in again.output and "新增 0 项" in again.output


def test_cli_refuses_an_unknown_nominator_or_round(intake_app, tmp_path):
    path = _write(tmp_path, "a.docx", make_form_docx("unit"))
    runner = intake_app.test_cli_runner()
    result = runner.invoke(args=["nominations", "import", path, "--nominator", "火星科协"])
    assert result.exit_code != 0 and "找不到推荐单位：火星科协" in result.output
    result = runner.invoke(args=["nominations", "import", path, "--round", "2019"])
    assert result.exit_code != 0 and "2019" in result.output


def test_cli_check_and_template(intake_app, tmp_path):
    path = _write(tmp_path, "株洲.docx", make_form_docx("activity", {**ACTIVITY_FIELDS, "recommendation": ""}))
    runner = intake_app.test_cli_runner()
    runner.invoke(args=["nominations", "import", path])
    result = runner.invoke(args=["nominations", "check"])
    assert result.exit_code == 0 and "缺少推荐意见" in result.output and "照片数量不符" in result.output
    out = tmp_path / "模板.xlsx"
    result = runner.invoke(args=["nominations", "template", str(out)])
    assert result.exit_code == 0 and out.stat().st_size > 1000


def test_an_import_refuses_exactly_what_the_form_refuses(intake_app, tmp_path):
    from app.intake import forms

    headers = ["类别", "推荐单位", "名称", "主办单位", "联系电话", "活动场数", "服务人数"]
    rows = [["优秀活动", "长沙市科协", "名" * 101, "长沙市科协", "13812345678", 5, 100],
            ["优秀活动", "长沙市科协", "科普下乡", "长沙市科协", "打电话", 5, 100],
            ["优秀活动", "长沙市科协", "科普进校园", "长沙市科协", "13812345678", 5, 100]]
    path = _write(tmp_path, "汇总.xlsx", make_xlsx(headers, rows))
    with intake_app.app_context():
        _r, items, outcome = _import([path])
        assert [i.action for i in items] == ["reject", "reject", "create"]
        form_says = {name: forms.first_errors(forms.check(forms.ActivityFields, {name: value}))[name]
                     for name, value in (("title", "名" * 101), ("contact_phone", "打电话"))}
        assert form_says["title"] == "活动名称不能超过 100 字（当前 101 字）"
        assert items[0].errors == [form_says["title"]]
        assert items[1].errors == [form_says["contact_phone"]]
        assert [n.title for n in db.session.scalars(select(Nomination))] == ["科普进校园"]


def test_an_import_is_one_operation_that_rechecks_once(intake_app, tmp_path, monkeypatch):
    from app.intake import form_check

    headers = ["类别", "推荐单位", "名称", "主办单位", "活动场数", "服务人数"]
    rows = [["优秀活动", "长沙市科协", f"科普活动{i}", "长沙市科协", 5, 100] for i in range(3)]
    path = _write(tmp_path, "汇总.xlsx", make_xlsx(headers, rows))
    real_run, calls = form_check.run, []

    def counted(*args, **kwargs):
        calls.append(args)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(form_check, "run", counted)
    with intake_app.app_context():
        _r, _items, outcome = _import([path])
        assert len(outcome.created) == 3 and len(calls) == 1

        # the forms are one transaction: a failure on the second form keeps none of the batch
        real_create = nominations.create

        def fails_second(*args, **kwargs):
            if _count() >= 4:
                raise RuntimeError("写入失败")
            return real_create(*args, **kwargs)

        monkeypatch.setattr(nominations, "create", fails_second)
        rows = [["优秀活动", "长沙市科协", f"第二批活动{i}", "长沙市科协", 5, 100] for i in range(2)]
        second = _write(tmp_path, "第二批.xlsx", make_xlsx(headers, rows))
        with pytest.raises(RuntimeError):
            _import([second])
        db.session.rollback()
        assert _count() == 3 and len(calls) == 1  # and a failed import is not checked
        assert len(db.session.scalars(select(AuditEvent).where(AuditEvent.action == "nomination.import")).all()) == 1


@pytest.mark.parametrize("fields,expected,why", [
    ({}, "株洲市科协", "根据单位名称和通讯地址，位于株洲市"),  # 株洲市科学技术馆, 株洲市天元区神农城
    ({"title": "醴陵市陶瓷博物馆", "address": "见附页"}, "株洲市科协", "根据单位名称，位于株洲市"),
    ({"title": "科普教育基地", "address": "浏阳市集里街道"}, "长沙市科协", "根据通讯地址，位于长沙市"),
    ({"title": "湖南省科普作家协会", "address": "长沙市开福区"}, "湖南省科普作家协会", "单位本身是推荐单位「湖南省科普作家协会」"),
    ({"title": "长沙市科学技术协会", "address": "株洲市"}, "长沙市科协", "单位本身是推荐单位「长沙市科协」"),
])
def test_a_unit_form_is_attributed_by_what_it_is_or_where_it_is(intake_app, tmp_path, fields, expected, why):
    path = _write(tmp_path, "推荐表.docx", make_form_docx("unit", fields))
    with intake_app.app_context():
        _r, [item], outcome = _import([path])
        assert item.action == "create" and item.nominator_id == nominator(expected).id
        assert item.nominator_note == why
        assert db.session.scalar(select(Nomination)).nominator_id == nominator(expected).id


@pytest.mark.parametrize("fields,says", [
    ({"title": "长沙市第一中学", "address": "株洲市天元区"}, "单位名称指向长沙市、通讯地址指向株洲市"),
    ({"title": "怀化市博物馆", "address": "怀化市鹤城区"}, "推荐单位名单中没有怀化市的推荐单位"),
])
def test_a_unit_form_that_places_it_ambiguously_still_asks(intake_app, tmp_path, fields, says):
    path = _write(tmp_path, "推荐表.docx", make_form_docx("unit", fields))
    with intake_app.app_context():
        _r, [item], outcome = _import([path])
        assert item.action == "reject" and item.nominator_id is None
        assert says in item.errors[0] and "无法确定推荐单位" in item.errors[0]
        chosen = nominator("湖南省教育厅").id
        _r, [item], _o = _import([path], choices={0: {"nominator_id": chosen, "include": True}})
        assert item.action == "create" and item.nominator_note == "由管理员选择"


def test_the_file_name_still_wins_over_the_place(intake_app, tmp_path):
    path = _write(tmp_path, "长沙市科协推荐.docx", make_form_docx("unit"))  # the form says 株洲
    with intake_app.app_context():
        _r, [item], _o = _import([path])
        assert item.nominator_id == nominator("长沙市科协").id
