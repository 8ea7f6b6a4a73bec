"""The XLSX template (one row per nomination, both categories) and its reader.

The reader is forgiving about the sheet it gets: the header row may be in the first few rows, headers
may carry notes in brackets ("情况简介（不超过500字）"), and a workbook with one sheet per category
("优秀组织单位", "优秀活动") needs no 类别 column.
"""

from __future__ import annotations

import io
import re
import zipfile
from datetime import datetime

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from app.core.spreadsheet_safety import neutralise_cells
from app.intake import zip_reader
from app.intake.parsed import ParsedForm, ReadError, category_from_word
from app.intake.text import clean_text, norm_label, parse_date

# (header, field, width): the template's columns in order.
COLUMNS = [
    ("类别", "category", 14),
    ("推荐单位", "nominator", 22),
    ("单位名称/活动名称", "title", 30),
    ("主办单位（仅优秀活动）", "host", 24),
    ("联系人", "contact_name", 10),
    ("职务", "contact_title", 12),
    ("联系电话", "contact_phone", 16),
    ("通讯地址", "address", 28),
    ("活动场数", "event_count", 10),
    ("服务人数", "people_served", 12),
    ("情况简介（不超过500字）", "summary", 60),
    ("推荐意见", "recommendation", 30),
    ("推荐日期", "recommendation_date", 14),
    ("收到日期", "received", 14),
]
HEADERS = {
    "类别": "category", "评选类别": "category", "推荐类别": "category",
    "推荐单位": "nominator", "推荐单位名称": "nominator",
    "单位名称活动名称": "title", "单位活动名称": "title", "名称": "title", "单位名称": "title",
    "活动名称": "title", "推荐对象": "title", "推荐对象名称": "title",
    "主办单位": "host", "主办方": "host",
    "联系人": "contact_name", "联系人姓名": "contact_name", "职务": "contact_title", "职务职称": "contact_title",
    "联系电话": "contact_phone", "电话": "contact_phone", "手机": "contact_phone",
    "通讯地址": "address", "通信地址": "address", "联系地址": "address", "地址": "address",
    "活动场数": "event_count", "组织开展的活动场数": "event_count", "场数": "event_count", "活动场次": "event_count",
    "服务人数": "people_served", "服务人次": "people_served",
    "情况简介": "summary", "简介": "summary", "组织情况简介": "summary", "活动情况简介": "summary",
    "推荐意见": "recommendation", "推荐日期": "recommendation_date", "推荐意见日期": "recommendation_date",
    "收到日期": "received", "报送日期": "received", "收件日期": "received",
}
_BRACKETS = re.compile(r"[（(][^）)]*[）)]")
MAX_ROWS = 5000
HELP = [
    "填写说明",
    "1. 每行填写一个推荐对象；优秀组织单位（附件1）和优秀活动（附件2）可填在同一张表中，用“类别”列区分。",
    "2. 类别填“优秀组织单位”或“优秀活动”；推荐单位须与系统中的推荐单位名称一致（可从下拉列表选择）。",
    "3. 单位名称/活动名称不超过100字；主办单位只有优秀活动需要填写。",
    "4. 活动场数、服务人数填不小于0的整数（也可写“1.2万”）。",
    "5. 情况简介、推荐意见均不超过500字；推荐日期、收到日期写成 2024-09-30 或 2024年9月30日。",
    "6. 照片和视频请在系统中逐项上传，或与 Word 推荐表一起打包成 .zip 导入。",
    "7. 同一推荐单位、类别和名称的推荐对象重复导入时不会重复建立：内容有变化时更新，无变化时跳过。",
]


def build_template(nominator_names: list[str]) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = "推荐对象"
    header_fill = PatternFill("solid", fgColor="F2DCDB")
    for col, (header, _field, width) in enumerate(COLUMNS, start=1):
        cell = ws.cell(row=1, column=col, value=header)
        cell.font = Font(bold=True)
        cell.fill = header_fill
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        ws.column_dimensions[get_column_letter(col)].width = width
    ws.freeze_panes = "A2"
    for col, (_h, name, _w) in enumerate(COLUMNS, start=1):
        if name in ("summary", "recommendation", "address", "title"):
            for row in range(2, 202):
                ws.cell(row=row, column=col).alignment = Alignment(wrap_text=True, vertical="top")
    kinds = DataValidation(type="list", formula1='"优秀组织单位,优秀活动"', allow_blank=True)
    kinds.error = "请选择“优秀组织单位”或“优秀活动”。"
    ws.add_data_validation(kinds)
    kinds.add("A2:A1000")
    lists = wb.create_sheet("推荐单位名单")
    for row, name in enumerate(nominator_names, start=1):
        neutralise_cells([lists.cell(row=row, column=1, value=name)])
    lists.column_dimensions["A"].width = 36
    if nominator_names:
        names = DataValidation(type="list", formula1=f"'推荐单位名单'!$A$1:$A${len(nominator_names)}",
                               allow_blank=True)
        names.showErrorMessage = False  # a new name is reported by the import, not blocked while typing
        ws.add_data_validation(names)
        names.add("B2:B1000")
    help_sheet = wb.create_sheet("填写说明")
    for row, line in enumerate(HELP, start=1):
        help_sheet.cell(row=row, column=1, value=line).font = Font(bold=(row == 1))
    help_sheet.column_dimensions["A"].width = 100
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _header_field(value) -> str | None:
    if value is None:
        return None
    return HEADERS.get(norm_label(_BRACKETS.sub("", str(value))))


def _find_header(rows: list[tuple]) -> tuple[int, dict[int, str]] | None:
    for r, row in enumerate(rows[:10]):
        mapping = {}
        for c, value in enumerate(row):
            name = _header_field(value)
            if name and name not in mapping.values():
                mapping[c] = name
        if "title" in mapping.values() and len(mapping) >= 3:
            return r, mapping
    return None


def _value(value):
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, str):
        return clean_text(value)
    return value


def read_xlsx(data: bytes, source: str, *, file_index: int = 0) -> list[ParsedForm]:
    """One form per non-empty row of every sheet with a recognisable header row."""
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ReadError(f"「{source}」不是 .xlsx 文件（旧版 .xls 请先另存为 .xlsx）。")
    zip_reader.check_package(data, source)
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # noqa: BLE001 — openpyxl raises many kinds for a broken workbook
        raise ReadError(f"「{source}」无法作为 Excel 工作簿打开，文件可能已损坏。") from None
    forms: list[ParsedForm] = []
    found_header = False
    try:
        for ws in wb.worksheets:
            rows = []
            for row in ws.iter_rows(values_only=True):
                rows.append(row)
                if len(rows) > MAX_ROWS + 10:
                    raise ReadError(f"「{source}」的工作表「{ws.title}」超过 {MAX_ROWS} 行，请分批导入。")
            header = _find_header(rows)
            if header is None:
                continue
            found_header = True
            header_row, mapping = header
            sheet_category = category_from_word(ws.title.replace("推荐表", ""))
            for r in range(header_row + 1, len(rows)):
                row = rows[r]
                values = {name: _value(row[c]) for c, name in mapping.items() if c < len(row)}
                if not any(v not in (None, "") for v in values.values()):
                    continue
                where = f"{source} › {ws.title} 第 {r + 1} 行"
                form = ParsedForm(source=where, file_index=file_index)
                word = values.pop("category", None)
                form.category = category_from_word(word) if word else sheet_category
                if word and form.category is None:
                    form.notes.append(f"类别「{word}」无法识别（应为优秀组织单位或优秀活动）。")
                form.nominator_name = clean_text(values.pop("nominator", "") or "")
                received = values.pop("received", None)
                try:
                    form.received = parse_date(received)
                except ValueError:
                    form.notes.append(f"收到日期「{received}」无法识别，按导入当天计。")
                form.raw = {k: ("" if v is None else v) for k, v in values.items()}
                forms.append(form)
    finally:
        wb.close()
    if not found_header:
        raise ReadError(f"「{source}」中没有找到表头（至少需要“单位名称/活动名称”等列），请使用系统提供的导入模板。")
    return forms
