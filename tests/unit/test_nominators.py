"""The 推荐单位 registry: validation, official order, XLSX import (Chinese headers, re-import)."""

from __future__ import annotations

import io

import pytest
from openpyxl import Workbook, load_workbook

from app.core.errors import UserError
from app.extensions import db
from app.intake import nominators
from app.models import Nominator
from tests.admin_fixtures import count, events
from tests.factories import make_nomination, make_round, make_user


def xlsx(rows, headers=("名称", "类型", "排序", "优秀组织单位名额", "优秀活动名额"), title_rows=()) -> bytes:
    book = Workbook()
    sheet = book.active
    for row in title_rows:
        sheet.append(list(row))
    sheet.append(list(headers))
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def form(**kw):
    base = {"name": "长沙市科协", "short_name": "长沙", "kind": "city", "position": "1", "quota_unit": "",
            "quota_activity": ""}
    base.update(kw)
    return base


def test_create_update_and_audit(app):
    with app.app_context():
        n = nominators.create(form(quota_unit="10"))
        assert (n.kind, n.position, n.quota_unit, n.quota_activity) == ("city", 1, 10, None)
        nominators.update(n.id, form(name="长沙市科学技术协会", quota_unit="", quota_activity="7"))
        db.session.expire_all()
        n = db.session.get(Nominator, n.id)
        assert (n.name, n.quota_unit, n.quota_activity) == ("长沙市科学技术协会", None, 7)
        [created] = events("nominator.create")
        [updated] = events("nominator.update")
        assert created.after["quota_unit"] == 10
        assert updated.before["name"] == "长沙市科协" and updated.after["name"] == "长沙市科学技术协会"
        nominators.update(n.id, form(name="长沙市科学技术协会", quota_unit="", quota_activity="7"))
        assert len(events("nominator.update")) == 1  # nothing changed, nothing logged


@pytest.mark.parametrize("field,value,message", [
    ("name", "", "名称不能为空"),
    ("name", "长" * 101, "不能超过 100"),
    ("short_name", "短" * 51, "简称不能超过"),
    ("kind", "县科协", "类型应为"),
    ("position", "abc", "排序应为整数"),
    ("position", "10000", "排序应在"),
    ("quota_unit", "-1", "优秀组织单位名额应在"),
    ("quota_activity", "1.5", "优秀活动名额应为整数"),
])
def test_validation_messages(app, field, value, message):
    with app.app_context():
        with pytest.raises(UserError) as exc:
            nominators.create(form(**{field: value}))
        assert message in exc.value.field_errors[field]
        assert count(Nominator) == 0 and not events()


def test_duplicate_name_is_409(app):
    with app.app_context():
        nominators.create(form())
        other = nominators.create(form(name="株洲市科协", position="2"))
        with pytest.raises(UserError) as exc:
            nominators.create(form())
        assert exc.value.status == 409 and exc.value.field_errors == {"name": "已存在"}
        with pytest.raises(UserError) as exc:
            nominators.update(other.id, form())
        assert exc.value.status == 409


def test_official_order_is_kind_then_position_and_blank_position_goes_last(app):
    with app.app_context():
        nominators.create(form(name="湖南省科普作家协会", kind="省级学会", position="1"))
        nominators.create(form(name="株洲市科协", kind="市州科协", position="2"))
        nominators.create(form(name="省教育厅", kind="省直单位", position="1"))
        nominators.create(form(name="长沙市科协", kind="city", position="1"))
        nominators.create(form(name="湘潭市科协", kind="city", position=""))
        names = [n.name for n in nominators.list_nominators()]
        assert names == ["长沙市科协", "株洲市科协", "湘潭市科协", "省教育厅", "湖南省科普作家协会"]
        assert nominators.list_nominators()[2].position == 3


def test_import_creates_then_updates_by_name_without_duplicates(app):
    with app.app_context():
        data = xlsx([
            ("长沙市科协", "市州科协", 1, None, None),
            ("株洲市科协", "市州科协", 2, 9, None),
            ("省教育厅", "省直单位", 1, None, 3),
            ("湖南省科普作家协会", "省级学会", 1, None, None),
        ], title_rows=[("2024年推荐单位名单",)])
        result = nominators.import_xlsx(data)
        assert len(result.created) == 4 and not result.updated
        zz = db.session.query(Nominator).filter_by(name="株洲市科协").one()
        assert (zz.kind, zz.position, zz.quota_unit) == ("city", 2, 9)

        again = nominators.import_xlsx(xlsx([
            ("长沙市科协", "市州科协", 1, None, None),
            ("株洲市科协", "市州科协", 2, 8, None),  # quota changed
            ("湘潭市科协", "市州科协", 3, None, None),  # new
        ]))
        assert again.created == ["湘潭市科协"] and again.updated == ["株洲市科协"]
        assert again.unchanged == ["长沙市科协"]
        assert count(Nominator) == 5
        db.session.expire_all()
        assert db.session.get(Nominator, zz.id).quota_unit == 8
        [first, second] = events("nominator.import")
        assert first.after["created"] == 4 and second.after == {**second.after, "created": 1, "updated": 1,
                                                                 "unchanged": 1}


def test_import_tolerates_full_width_digits_spaces_and_aliases(app):
    with app.app_context():
        nominators.import_xlsx(xlsx([(" 长沙市科协 ", "市州", "１", "８", " "), ("湖南省农学会", " 学会", "２", "", "")]))
        cs = db.session.query(Nominator).filter_by(name="长沙市科协").one()
        assert (cs.kind, cs.position, cs.quota_unit, cs.quota_activity) == ("city", 1, 8, None)
        assert db.session.query(Nominator).filter_by(name="湖南省农学会").one().kind == "society"


def test_import_missing_columns_keep_existing_values(app):
    with app.app_context():
        nominators.create(form(quota_unit="5", short_name="长沙"))
        nominators.import_xlsx(xlsx([("长沙市科协", "市州科协")], headers=("名称", "类型")))
        n = db.session.query(Nominator).filter_by(name="长沙市科协").one()
        assert (n.quota_unit, n.short_name, n.position) == (5, "长沙", 1)


def test_import_with_a_bad_row_saves_nothing_and_names_the_rows(app):
    with app.app_context():
        data = xlsx([
            ("长沙市科协", "市州科协", 1, None, None),
            ("株洲市科协", "县级", 2, None, None),
            ("", "市州科协", 3, None, None),
            ("长沙市科协", "市州科协", 4, None, None),
            ("湘潭市科协", "市州科协", 3, "很多", None),
        ])
        with pytest.raises(UserError) as exc:
            nominators.import_xlsx(data)
        msg = exc.value.message
        assert "未导入任何数据" in msg
        assert "第 3 行：类型应为" in msg and "第 4 行：名称不能为空" in msg
        assert "第 5 行：名称「长沙市科协」在表格中重复" in msg and "第 6 行：优秀组织单位名额应为整数" in msg
        assert count(Nominator) == 0 and not events()


@pytest.mark.parametrize("data,message", [
    (b"name,kind\n", "请上传 .xlsx"),
    (b"PK\x03\x04not really a zip", "无法读取"),
    (xlsx([("长沙市科协",)], headers=("名称",)), "缺少「类型」列"),
    (xlsx([], headers=("单位", "种类")), "找不到表头"),
    (xlsx([]), "没有数据行"),
])
def test_import_rejects_bad_files(app, data, message):
    with app.app_context():
        with pytest.raises(UserError) as exc:
            nominators.import_xlsx(data)
        assert message in exc.value.message


def test_import_size_limit(app):
    with app.app_context():
        with pytest.raises(UserError) as exc:
            nominators.import_xlsx(b"PK" + b"0" * nominators.IMPORT_MAX_BYTES)
        assert exc.value.status == 413


def test_template_round_trips(app):
    with app.app_context():
        nominators.create(form(quota_unit="6"))
        data = nominators.template_xlsx()
        sheet = load_workbook(io.BytesIO(data)).active
        rows = list(sheet.iter_rows(values_only=True))
        assert rows[0][:3] == ("名称", "简称", "类型")
        assert rows[1][0] == "长沙市科协" and rows[1][2] == "市州科协"
        result = nominators.import_xlsx(data)
        assert result.unchanged == ["长沙市科协"]


def test_delete_only_when_unused(app):
    with app.app_context():
        used = nominators.create(form())
        spare = nominators.create(form(name="株洲市科协"))
        affiliated = nominators.create(form(name="湘潭市科协"))
        make_nomination(make_round("collecting"), used)
        make_user("expert", "reviewer", affiliation="湘潭市科协")
        for n in (used, affiliated):
            with pytest.raises(UserError) as exc:
                nominators.delete(n.id)
            assert exc.value.status == 409 and "不能删除" in exc.value.message
        nominators.delete(spare.id)
        assert count(Nominator) == 2
        assert events("nominator.delete")[0].before["name"] == "株洲市科协"


EVIL_NAMES = ('=HYPERLINK("http://127.0.0.1/x","点我")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)")


def _formula_cells(data: bytes) -> list[str]:
    """Sheets whose XML holds a formula, and the cells a spreadsheet would read as formulas on edit."""
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as z:
        bad = [n for n in z.namelist() if n.startswith("xl/worksheets/") and b"<f>" in z.read(n)]
    book = load_workbook(io.BytesIO(data))
    for ws in book.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if isinstance(c.value, str) and c.value[:1] in "=+-@" and not c.quotePrefix:
                    bad.append(f"{ws.title}!{c.coordinate}")
    return bad


def test_the_registry_template_and_the_import_template_keep_formula_like_names_as_text(app):
    from app.intake import xlsx_reader

    with app.app_context():
        for i, name in enumerate(EVIL_NAMES):
            nominators.create(form(name=name, short_name=f"简称{i}", position=str(i + 1)))
        names = [n.name for n in nominators.list_nominators()]
        for data in (nominators.template_xlsx(), xlsx_reader.build_template(names)):
            assert _formula_cells(data) == []
            values = {c.value for ws in load_workbook(io.BytesIO(data)).worksheets for row in ws.iter_rows() for c in row}
            assert set(EVIL_NAMES) <= values  # shown exactly as typed
        assert nominators.import_xlsx(nominators.template_xlsx()).unchanged == sorted(names, key=names.index)


@pytest.mark.parametrize("value,expected", [
    ("=1+1", "'=1+1"), ("+86 731", "'+86 731"), ("-x", "'-x"), ("@a", "'@a"), ("\t=1", "'\t=1"), ("＝1", "'＝1"),
    ("科普=1", "科普=1"), ("", ""), (None, None), (-3, -3), (2.5, 2.5),
])
def test_one_rule_neutralises_csv_values(value, expected):
    from app.core.spreadsheet_safety import neutralise

    assert neutralise(value) == expected
