"""The 公示 documents: the list as PDF (both categories, official order, the period, how to object)
and the objections register as XLSX (admin only: it holds the objectors' names and phones)."""

from __future__ import annotations

import io

from flask import render_template
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from sqlalchemy import select

from app.core.spreadsheet_safety import append_row
from app.core.time import fmt_minute
from app.extensions import db
from app.models import CATEGORY_LABELS, User
from app.models.publicity import OBJECTION_RESULT_LABELS, OBJECTION_STATUS_LABELS
from app.publicity import queries
from app.reports.documents import CHINESE_NUMBERS, XLSX_MIME, Document, Source, safe_filename
from app.rounds import phases as rounds


def publicity_title(rnd) -> str:
    if rnd.phase == "final":
        return f"{rnd.year}年全国科普日优秀组织单位和优秀活动名单"
    return f"{rnd.year}年全国科普日优秀组织单位和优秀活动拟表扬名单公示"


def publicity_source(round_id: int) -> Source:
    rnd = rounds.get(round_id)
    pg = queries.page(rnd)
    title = publicity_title(rnd)
    html = render_template("pdf/publicity_list.html", title=title, year=rnd.year, final=pg.final, period=pg.period,
                           lists=list(pg.groups.items()), counts=pg.counts, chinese_numbers=CHINESE_NUMBERS,
                           CATEGORY_LABELS=CATEGORY_LABELS, sign_date=pg.period.start if not pg.final else None)
    return Source(html, {}, safe_filename(title + ".pdf"))


def publicity_pdf(round_id: int) -> Document:
    return publicity_source(round_id).render()


REGISTER_HEADERS = ["编号", "提出时间", "涉及推荐对象", "类别", "异议人", "单位", "联系电话", "电子邮箱", "异议事实",
                    "附件", "状态", "不予受理理由", "核实情况", "处理结果", "处理意见", "处理人", "处理时间"]


def register_xlsx(round_id: int) -> Document:
    rnd = rounds.get(round_id)
    rows = queries.objections(rnd.id)
    titles = queries.titles(o.nomination_id for o in rows)
    handler_ids = {o.handled_by_id for o in rows if o.handled_by_id}
    handlers = {u.id: u.display_name for u in db.session.scalars(select(User).where(User.id.in_(handler_ids)))} \
        if handler_ids else {}
    wb = Workbook()
    ws = wb.active
    ws.title = "异议登记"
    append_row(ws, REGISTER_HEADERS)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for o in rows:
        title, category = titles.get(o.nomination_id, ("", ""))
        # Everything the public typed goes through append_row: "=HYPERLINK(…)" stays text.
        append_row(ws, [o.id, fmt_minute(o.created_at), title, CATEGORY_LABELS.get(category, ""), o.name, o.unit,
                        o.phone, o.email, o.facts, "有" if o.attachment_name else "", OBJECTION_STATUS_LABELS[o.status],
                        o.reject_reason, o.verification, OBJECTION_RESULT_LABELS.get(o.result or "", ""), o.result_note,
                        handlers.get(o.handled_by_id, ""), fmt_minute(o.handled_at)])
    for letter, width in zip("ABCDEFGHIJKLMNOPQ", (6, 17, 36, 14, 10, 20, 15, 22, 50, 6, 12, 30, 40, 10, 30, 10, 17),
                             strict=True):
        ws.column_dimensions[letter].width = width
    for row in ws.iter_rows(min_row=2):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    ws.freeze_panes = "A2"
    buf = io.BytesIO()
    wb.save(buf)
    return Document(buf.getvalue(), safe_filename(f"{rnd.year}年全国科普日公示异议登记表.xlsx"), XLSX_MIME)
