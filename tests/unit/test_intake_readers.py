"""Readers with real files: .docx forms (merged cells, spaced labels, full-width punctuation), XLSX with
Chinese headers, zips (photo matching, GBK names, path traversal, bombs)."""

import io
import os
import zipfile
from datetime import date, datetime

import docx
import pytest
from openpyxl import load_workbook

from app.intake import zip_reader
from app.intake.docx_reader import read_docx
from app.intake.parsed import ReadError
from app.intake.xlsx_reader import COLUMNS, build_template, read_xlsx
from tests.intake_fixtures import SUMMARY, make_form_docx, make_image, make_xlsx, make_zip


def _one(data, name="表.docx"):
    forms, embedded = read_docx(data, name)
    assert len(forms) == 1
    return forms[0], embedded


def test_activity_form_with_merged_cells_and_full_width_text():
    form, embedded = _one(make_form_docx("activity", photos=[make_image("PNG"), make_image("JPEG")]))
    assert form.category == "activity" and form.form_year == 2024
    raw = form.raw
    assert raw["title"] == "“科普进社区”系列活动"  # merged across three columns, read once
    assert raw["host"] == "株洲市科学技术协会"  # label "主办单位：" with a full-width colon
    assert (raw["contact_name"], raw["contact_title"]) == ("王五", "科长")  # "联 系 人", "职  务"
    assert raw["event_count"] == "８" and raw["people_served"] == "3,000人"
    assert raw["summary"] == SUMMARY  # the printed instruction in brackets is dropped
    assert raw["recommendation"] == "同意推荐。"  # 盖章 and the date taken out
    assert raw["recommendation_date"] == date(2024, 9, 28)  # 二〇二四年九月二十八日
    assert len(form.media) == 2 and sorted(embedded) == [0, 1]
    assert "审定意见" not in str(raw)


def test_unit_form_with_a_vertically_merged_label():
    form, _ = _one(make_form_docx("unit", vertical_label=True, keep_instruction=False))
    assert form.category == "unit"
    assert form.raw["title"] == "株洲市科学技术馆"
    assert form.raw["event_count"] == "12" and form.raw["people_served"] == "1.2万人次"
    assert form.raw["summary"] == SUMMARY
    assert form.raw["recommendation_date"] == date(2024, 9, 30)


def test_the_kind_of_form_comes_from_its_labels_not_its_heading():
    unit, _ = _one(make_form_docx("unit", heading=False))
    activity, _ = _one(make_form_docx("activity", heading=False))
    assert (unit.category, activity.category) == ("unit", "activity")


def test_a_blank_date_leaves_the_date_empty():
    form, _ = _one(make_form_docx("activity", {"date": ""}))
    assert form.raw["recommendation_date"] is None and form.raw["recommendation"] == "同意推荐。"


def test_label_and_value_in_one_cell_and_several_forms_in_one_document():
    d = docx.Document()
    for title, people in (("科普大篷车进乡村", "800"), ("院士专家校园行", "1,500")):
        d.add_paragraph("2024年全国科普日优秀活动推荐表")
        t = d.add_table(rows=4, cols=2)
        t.cell(0, 0).text = "活动名称：" + title
        t.cell(0, 1).text = "主办单位： 湖南省科协"
        t.cell(1, 0).text = "联系人:赵六"
        t.cell(1, 1).text = "联系电话：13900001111"
        t.cell(2, 0).text = "活动场数"
        t.cell(2, 1).text = "3"
        t.cell(3, 0).text = "服务人数"
        t.cell(3, 1).text = people
    buf = io.BytesIO()
    d.save(buf)
    forms, _ = read_docx(buf.getvalue(), "合集.docx")
    assert [f.raw["title"] for f in forms] == ["科普大篷车进乡村", "院士专家校园行"]
    assert [f.raw["people_served"] for f in forms] == ["800", "1,500"]
    assert all(f.raw["host"] == "湖南省科协" and f.raw["contact_name"] == "赵六" for f in forms)
    assert forms[1].source == "合集.docx（第 2 份）"


def test_not_a_docx_is_a_clear_error():
    with pytest.raises(ReadError, match="不是 .docx"):
        read_docx(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "旧表.doc")
    with pytest.raises(ReadError, match="没有找到附件1或附件2"):
        d = docx.Document()
        d.add_paragraph("一份会议通知")
        buf = io.BytesIO()
        d.save(buf)
        read_docx(buf.getvalue(), "通知.docx")


# --- XLSX ---------------------------------------------------------------------------------------------


def test_xlsx_with_chinese_headers_both_categories():
    headers = ["序号", "类别", "推荐单位", "单位名称/活动名称", "主办单位（仅活动）", "联系人", "联系电话", "活动场数",
               "服务人数", "情况简介（不超过500字）", "推荐意见", "推荐日期"]
    rows = [
        [1, "优秀组织单位", "长沙市科协", "长沙市科技馆", None, "张三", "0731-1234567", 30, "5万", "简介一", "同意推荐",
         datetime(2024, 9, 30)],
        [2, "优秀活动", "株洲市科协", "科普进社区", "株洲市科协", "李四", "13812345678", "8", "3,000", "简介二",
         "同意", "2024年9月29日"],
        [None] * 12,
    ]
    forms = read_xlsx(make_xlsx(headers, rows, header_row=2), "汇总.xlsx")
    assert [f.category for f in forms] == ["unit", "activity"]
    assert forms[0].nominator_name == "长沙市科协" and forms[0].raw["people_served"] == "5万"
    assert forms[0].raw["recommendation_date"] == date(2024, 9, 30)
    assert forms[1].raw["host"] == "株洲市科协" and forms[1].raw["recommendation_date"] == "2024年9月29日"
    assert forms[1].source == "汇总.xlsx › 推荐对象 第 4 行"


def test_xlsx_with_one_sheet_per_category_needs_no_category_column():
    forms = read_xlsx(make_xlsx(["活动名称", "主办单位", "服务人数"], [["科普日主场活动", "省科协", 10000]],
                                title="优秀活动"), "活动.xlsx")
    assert forms[0].category == "activity" and forms[0].raw["people_served"] == 10000


def test_xlsx_without_a_header_row_is_refused():
    with pytest.raises(ReadError, match="表头"):
        read_xlsx(make_xlsx(["甲", "乙", "丙"], [[1, 2, 3]]), "随便.xlsx")


def test_template_has_chinese_headers_lists_and_reads_back():
    data = build_template(["长沙市科协", "株洲市科协"])
    wb = load_workbook(io.BytesIO(data))
    ws = wb["推荐对象"]
    assert [c.value for c in ws[1]] == [h for h, _f, _w in COLUMNS]
    assert [c.value for c in wb["推荐单位名单"]["A"]] == ["长沙市科协", "株洲市科协"]
    assert "填写说明" in wb.sheetnames
    ws.append(["优秀活动", "长沙市科协", "科普进校园", "长沙市教育局", "王五", "老师", "13800000000", "长沙市",
               5, 900, "简介", "同意推荐", "2024-09-30", "2024-10-07"])
    buf = io.BytesIO()
    wb.save(buf)
    [form] = read_xlsx(buf.getvalue(), "模板.xlsx")
    assert form.category == "activity" and form.received == date(2024, 10, 7)
    assert form.raw["contact_title"] == "老师" and form.raw["address"] == "长沙市"


# --- ZIP ----------------------------------------------------------------------------------------------


def test_zip_photos_match_by_folder_and_by_prefix(app):
    data = make_zip({
        "长沙市科协/科普进社区.docx": b"x", "长沙市科协/科普进社区-1.jpg": b"j", "长沙市科协/科普进社区_2.png": b"p",
        "长沙市科协/院士进校园.docx": b"x", "长沙市科协/院士进校园/现场.jpg": b"j", "长沙市科协/院士进校园/视频.mp4": b"v",
        "株洲/推荐表.docx": b"x", "株洲/照片/a.jpg": b"j", "孤儿.jpg": b"j", "__MACOSX/._a.jpg": b"junk",
    })
    with app.app_context():
        zf, members = zip_reader.open_zip(data, "材料.zip")
    assert "__MACOSX/._a.jpg" not in [m.name for m in members]
    forms = [m for m in members if zip_reader.kind_of(m) == "docx"]
    media = [m for m in members if zip_reader.kind_of(m) in ("photo", "video")]
    owned, unmatched = zip_reader.match_media(forms, media)
    names = {k: [m.base for m in v] for k, v in owned.items()}
    assert names["长沙市科协/科普进社区.docx"] == ["科普进社区-1.jpg", "科普进社区_2.png"]
    assert names["长沙市科协/院士进校园.docx"] == ["现场.jpg", "视频.mp4"]
    assert names["株洲/推荐表.docx"] == ["a.jpg"]
    assert [m.name for m in unmatched] == ["孤儿.jpg"]


def test_zip_names_from_chinese_windows_are_decoded(app):
    data = make_zip({"长沙/科普月.docx": b"x"}, gbk_names=True)
    with app.app_context():
        _zf, members = zip_reader.open_zip(data, "a.zip")
    assert [m.name for m in members] == ["长沙/科普月.docx"]


@pytest.mark.parametrize("name", ["../evil.docx", "a/../../evil.jpg", "/etc/passwd", "C:/Windows/x.docx",
                                  "..\\..\\evil.docx"])
def test_zip_with_a_path_traversal_name_is_refused(app, tmp_path, name):
    data = make_zip({"ok.docx": b"x", name: b"owned"})
    with app.app_context():
        with pytest.raises(ReadError, match="不安全的文件路径"):
            zip_reader.open_zip(data, "evil.zip")
    assert not (tmp_path.parent / "evil.docx").exists() and not (tmp_path / "evil.docx").exists()


def test_zip_bomb_is_refused_by_ratio_and_by_total_size(app_factory):
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("照片.jpg", b"\x00" * (20 * 1024 * 1024))
    app = app_factory({"IMPORT_MAX_ZIP_BYTES": 10 * 1024 * 1024})
    with app.app_context():
        with pytest.raises(ReadError, match="解压后超过"):
            zip_reader.open_zip(bomb.getvalue(), "bomb.zip")
    app2 = app_factory({"IMPORT_MAX_ZIP_BYTES": 100 * 1024 * 1024})
    with app2.app_context():
        with pytest.raises(ReadError, match="压缩比异常"):
            zip_reader.open_zip(bomb.getvalue(), "bomb.zip")


def test_zip_with_too_many_entries_is_refused(app_factory):
    app = app_factory({"IMPORT_MAX_ZIP_ENTRIES": 5})
    data = make_zip({f"{i}.jpg": b"x" for i in range(6)})
    with app.app_context():
        with pytest.raises(ReadError, match="超过上限 5 个"):
            zip_reader.open_zip(data, "many.zip")


def test_reading_a_member_stops_at_the_limit(app):
    data = make_zip({"big.jpg": os.urandom(5000)})
    with app.app_context():
        zf, [member] = zip_reader.open_zip(data, "a.zip")
        with pytest.raises(ReadError, match="超过"):
            zip_reader.read_member(zf, member, 4000)
        assert len(zip_reader.read_member(zf, member, 5000)) == 5000


def test_a_row_of_labels_over_a_row_of_values():
    d = docx.Document()
    t = d.add_table(rows=4, cols=3)
    for col, text in enumerate(("单位名称", "联系人", "联系电话")):
        t.cell(0, col).text = text
    for col, text in enumerate(("湘潭市科技馆", "刘七", "0731-58581234")):
        t.cell(1, col).text = text
    t.cell(2, 0).text, t.cell(2, 1).text, t.cell(2, 2).text = "服务人数", "5000", ""
    buf = io.BytesIO()
    d.save(buf)
    [form], _ = read_docx(buf.getvalue(), "表.docx")
    assert form.category == "unit"
    assert (form.raw["title"], form.raw["contact_name"], form.raw["contact_phone"]) == ("湘潭市科技馆", "刘七",
                                                                                        "0731-58581234")
    assert form.raw["people_served"] == "5000"
