"""Real files for the intake tests: 附件1/附件2 .docx forms built with python-docx (merged cells,
spaced labels, full-width punctuation), XLSX sheets with Chinese headers, images, zips."""

from __future__ import annotations

import io
import zipfile

import docx
from openpyxl import Workbook
from PIL import Image

SUMMARY = ("本次活动以“提升全民科学素质，协力建设科技强国”为主题，组织科技工作者走进社区、学校，"
           "开展科普报告、科学实验展示和应急科普体验等活动，群众参与踊跃，反响良好。")
UNIT_FIELDS = {
    "title": "株洲市科学技术馆", "contact_name": "李四", "contact_title": "馆长", "contact_phone": "0731-22334455",
    "address": "株洲市天元区神农城", "event_count": "12", "people_served": "1.2万人次", "summary": SUMMARY,
    "recommendation": "该单位组织有力，成效显著，同意推荐。", "date": "2024年9月30日",
}
ACTIVITY_FIELDS = {
    "title": "“科普进社区”系列活动", "host": "株洲市科学技术协会", "contact_name": "王五", "contact_title": "科长",
    "contact_phone": "13812345678", "address": "株洲市芦淞区建设中路", "event_count": "８",
    "people_served": "3,000人", "summary": SUMMARY, "recommendation": "同意推荐。", "date": "二〇二四年九月二十八日",
}


def _merge_row(table, row, start, end):
    return table.cell(row, start).merge(table.cell(row, end))


def make_form_docx(category: str = "activity", fields: dict | None = None, *, photos: list[bytes] = (),
                   vertical_label: bool = False, keep_instruction: bool = True, heading: bool = True) -> bytes:
    """A filled 附件1 (unit) or 附件2 (activity) laid out like the notice: labels with spaces and
    full-width colons, values in merged cells, the 简介 box below its label (or, with vertical_label,
    beside a label merged over two rows), 推荐意见 with 盖章 and the date, 审定意见 left empty."""
    base = UNIT_FIELDS if category == "unit" else ACTIVITY_FIELDS
    f = {**base, **(fields or {})}
    d = docx.Document()
    if heading:
        d.add_paragraph("附件1" if category == "unit" else "附件2")
        d.add_paragraph("2024年全国科普日优秀组织单位推荐表" if category == "unit" else "2024年全国科普日优秀活动推荐表")
    rows = 10 if category == "activity" else 9
    t = d.add_table(rows=rows, cols=4)
    r = 0
    t.cell(r, 0).text = "单位名称" if category == "unit" else "活动名称"
    _merge_row(t, r, 1, 3).text = f["title"]
    r += 1
    if category == "activity":
        t.cell(r, 0).text = "主办单位："
        _merge_row(t, r, 1, 3).text = f["host"]
        r += 1
    for left, right in ((("联 系 人", "contact_name"), ("职  务", "contact_title")),
                        (("联系电话：", "contact_phone"), ("通讯地址：", "address")),
                        (("组织开展的活动场数" if category == "unit" else "活动场数", "event_count"),
                         ("服务人数", "people_served"))):
        t.cell(r, 0).text, t.cell(r, 1).text = left[0], f[left[1]]
        t.cell(r, 2).text, t.cell(r, 3).text = right[0], f[right[1]]
        r += 1
    label = "组  织  情  况  简  介" if category == "unit" else "活  动  情  况  简  介"
    instruction = "（简述活动形式、活动影响力、活动内容、群众反映等情况，不超过500字，并附上活动精彩照片3-5张及活动视频）"
    summary_text = (instruction + "\n" if keep_instruction else "") + f["summary"]
    if vertical_label:
        label_cell = t.cell(r, 0).merge(t.cell(r + 1, 0))
        label_cell.text = label
        value = t.cell(r, 1).merge(t.cell(r + 1, 3))
        value.text = summary_text
        summary_cell = value
    else:
        _merge_row(t, r, 0, 3).text = label
        summary_cell = _merge_row(t, r + 1, 0, 3)
        summary_cell.text = summary_text
    for photo in photos:
        summary_cell.add_paragraph().add_run().add_picture(io.BytesIO(photo), width=docx.shared.Cm(4))
    r += 2
    t.cell(r, 0).text = "市州科协\n或省级学会或\n省直单位\n推荐意见"
    rec = _merge_row(t, r, 1, 3)
    rec.text = f["recommendation"] + "\n\n      盖章                  " + (f["date"] or "年    月    日")
    r += 1
    t.cell(r, 0).text = "湖南省科协\n审定意见"
    _merge_row(t, r, 1, 3).text = "\n      盖章                  年    月    日"
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


def make_image(fmt: str = "PNG", size=(64, 48), color=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, fmt)
    return out.getvalue()


def make_xlsx(headers: list[str], rows: list[list], title: str = "推荐对象", header_row: int = 1) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = title
    for _ in range(header_row - 1):
        ws.append(["2024年全国科普日推荐汇总表"])
    ws.append(headers)
    for row in rows:
        ws.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


class _GbkInfo(zipfile.ZipInfo):
    """What Windows' built-in zipper writes on a Chinese system: GBK names without the UTF-8 flag."""

    def _encodeFilenameFlags(self):
        return self.filename.encode("gbk"), self.flag_bits


def make_zip(entries: dict[str, bytes], *, gbk_names: bool = False) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            if gbk_names:
                info = _GbkInfo(name)
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data)
            else:
                zf.writestr(name, data)
    return out.getvalue()


def make_mp4(size: int = 2048) -> bytes:
    return b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * size


def make_webm(size: int = 2048) -> bytes:
    return b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\x82\x84webm" + b"\x00" * size


# --- app fixtures (import into a test module with `from tests.intake_fixtures import intake_app`) -----

import pytest  # noqa: E402

from app.extensions import db  # noqa: E402
from app.models import Nominator  # noqa: E402

NOMINATORS = [("长沙市科协", "长沙", "city"), ("株洲市科协", "株洲", "city"), ("湖南省教育厅", "省教育厅", "member"),
              ("湖南省科普作家协会", "省科普作协", "society")]


@pytest.fixture
def intake_app(app_factory):
    """A round in 材料收集 (deadline 2024-10-08), four nominators and an admin `admin`."""
    from tests.factories import make_round, make_user

    app = app_factory()
    with app.app_context():
        make_round("collecting")
        for pos, (name, short, kind) in enumerate(NOMINATORS, start=1):
            db.session.add(Nominator(name=name, short_name=short, kind=kind, position=pos))
        db.session.commit()
        make_user("admin", role="admin")
    return app


def nominator(name: str) -> Nominator:
    return db.session.query(Nominator).filter_by(name=name).one()
