"""The 表扬通报: "关于表扬2024年全国科普日优秀组织单位和优秀活动的通报", drafted from the final lists in
the layout of GB/T 9704-2012 (党政机关公文格式): 发文机关标志 in red, 发文字号, the red separator line,
标题, 主送机关, 正文, 附件说明, 落款 and 成文日期 with the seal, then 附件1/附件2 with the lists.

Two renderings of one `NoticeData`: a PDF (WeasyPrint, the vendored open fonts) and an editable .docx
(python-docx) naming the fonts offices have installed — 方正小标宋简体 for the title, 仿宋_GB2312 三号
for the text, 黑体 for the 附件 headings — since the office will retouch the text before issuing it."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date

from docx import Document as DocxDocument
from docx.enum.section import WD_SECTION
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_LINE_SPACING
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt, RGBColor
from flask import render_template

from app.core.time import beijing_date
from app.deliberation import operations as decisions
from app.models import CATEGORIES, CATEGORY_LABELS
from app.publicity import queries as publicity
from app.reports import queries
from app.reports.documents import CHINESE_NUMBERS, SEAL_NAME, SEAL_SRC, Document, Source, safe_filename
from app.rounds import phases as rounds

DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
ISSUER = "湖南省科学技术协会"
RED = RGBColor(0xE6, 0x00, 0x12)
TITLE_FONT, TEXT_FONT, HEADING_FONT = "方正小标宋简体", "仿宋_GB2312", "黑体"
TEXT_PT = 16  # 三号
TITLE_PT = 22  # 二号
LINE_PT = 28.95  # 22 lines of 28 characters on the GB/T 9704 type area


@dataclass
class Annex:
    number: int
    category: str
    title: str
    groups: list = field(default_factory=list)


@dataclass
class NoticeData:
    year: int
    title: str
    number: str
    recipients: str
    paragraphs: list[str]
    annexes: list[Annex]
    counts: dict[str, int]
    issue_date: date | None
    draft: bool
    seal: bytes | None

    @property
    def filename_stem(self) -> str:
        return self.title + ("（草稿）" if self.draft else "")


def fill(template: str, year: int, counts: dict[str, int]) -> str:
    """Placeholders by plain replacement (never str.format on text the admin typed)."""
    return (template.replace("{year}", str(year)).replace("{unit_count}", str(counts.get("unit", 0)))
            .replace("{activity_count}", str(counts.get("activity", 0))))


def data(round_id: int) -> NoticeData:
    rnd = rounds.get(round_id)
    settings = publicity.notice_settings(rnd.id)
    annexes = [Annex(i, c, f"{rnd.year}年全国科普日{CATEGORY_LABELS[c]}名单", queries.approved_groups(rnd.id, c))
               for i, c in enumerate(CATEGORIES, start=1)]
    counts = {a.category: sum(g.count for g in a.groups) for a in annexes}
    body = fill(settings.body_template, rnd.year, counts)
    final = rnd.phase == "final"
    return NoticeData(
        year=rnd.year, title=f"关于表扬{rnd.year}年全国科普日优秀组织单位和优秀活动的通报",
        number=settings.number or "〔　　〕号", recipients=settings.recipients,
        paragraphs=[p.strip() for p in body.split("\n") if p.strip()], annexes=annexes, counts=counts,
        issue_date=beijing_date(rnd.finalized_at) if final else None, draft=not final,
        seal=decisions.seal_bytes(rnd) if final else None,
    )


# ----------------------------------------------------------------------------- HTML / PDF


def notice_html(nd: NoticeData) -> str:
    return render_template("pdf/notice.html", nd=nd, chinese_numbers=CHINESE_NUMBERS, issuer=ISSUER,
                           seal_src=SEAL_SRC if nd.seal else None)


def notice_source(round_id: int) -> Source:
    nd = data(round_id)
    extra = {SEAL_NAME: nd.seal} if nd.seal else {}
    return Source(notice_html(nd), extra, safe_filename(nd.filename_stem + ".pdf"))


def notice_pdf(round_id: int) -> Document:
    return notice_source(round_id).render()


# ----------------------------------------------------------------------------- .docx


def _font(run, name: str, size: float, *, bold: bool = False, color: RGBColor | None = None) -> None:
    run.font.name = name
    run.font.size = Pt(size)
    run.font.bold = bold
    rpr = run._element.get_or_add_rPr()
    fonts = rpr.find(qn("w:rFonts"))
    if fonts is None:
        fonts = OxmlElement("w:rFonts")
        rpr.insert(0, fonts)
    for attr in ("w:ascii", "w:hAnsi", "w:eastAsia", "w:cs"):
        fonts.set(qn(attr), name)
    if color is not None:
        run.font.color.rgb = color


def _para(doc, text: str = "", *, font: str = TEXT_FONT, size: float = TEXT_PT, align=None, indent: bool = False,
          bold: bool = False, color=None, space_after: float = 0):
    p = doc.add_paragraph()
    fmt = p.paragraph_format
    fmt.line_spacing_rule = WD_LINE_SPACING.EXACTLY
    fmt.line_spacing = Pt(max(LINE_PT, size * 1.3))
    fmt.space_before, fmt.space_after = Pt(0), Pt(space_after)
    if indent:
        fmt.first_line_indent = Pt(size * 2)
    if align is not None:
        p.alignment = align
    if text:
        _font(p.add_run(text), font, size, bold=bold, color=color)
    return p


def _red_rule(paragraph) -> None:
    """The red separator line under the 发文字号: a bottom border of the paragraph."""
    ppr = paragraph._element.get_or_add_pPr()
    borders = OxmlElement("w:pBdr")
    bottom = OxmlElement("w:bottom")
    for k, v in (("w:val", "single"), ("w:sz", "18"), ("w:space", "1"), ("w:color", "E60012")):
        bottom.set(qn(k), v)
    borders.append(bottom)
    ppr.append(borders)


def _date_text(day: date | None) -> str:
    return f"{day.year}年{day.month}月{day.day}日" if day else "　　年　月　日"


def notice_docx(round_id: int) -> Document:
    nd = data(round_id)
    doc = DocxDocument()
    section = doc.sections[0]
    section.page_width, section.page_height = Mm(210), Mm(297)
    section.top_margin, section.bottom_margin = Mm(37), Mm(35)
    section.left_margin, section.right_margin = Mm(28), Mm(26)
    normal = doc.styles["Normal"]
    normal.font.name, normal.font.size = TEXT_FONT, Pt(TEXT_PT)
    normal.element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), TEXT_FONT)

    if nd.draft:
        _para(doc, "（草稿：名单尚未定稿）", font=HEADING_FONT, size=12, align=WD_ALIGN_PARAGRAPH.RIGHT)
    _para(doc, ISSUER, font=TITLE_FONT, size=36, align=WD_ALIGN_PARAGRAPH.CENTER, color=RED, space_after=18)
    number = _para(doc, nd.number, align=WD_ALIGN_PARAGRAPH.CENTER, space_after=4)
    _red_rule(number)
    _para(doc)
    _para(doc, nd.title, font=TITLE_FONT, size=TITLE_PT, align=WD_ALIGN_PARAGRAPH.CENTER, space_after=LINE_PT)
    _para(doc, nd.recipients)
    for text in nd.paragraphs:
        _para(doc, text, indent=True)
    _para(doc)
    for i, annex in enumerate(nd.annexes):
        label = "附件：" if i == 0 else "　　　"
        p = _para(doc, f"{label}{annex.number}．{annex.title}")
        p.paragraph_format.left_indent = Pt(TEXT_PT * 2)
    _para(doc)
    _para(doc, ISSUER, align=WD_ALIGN_PARAGRAPH.RIGHT).paragraph_format.right_indent = Pt(TEXT_PT * 4)
    date_p = _para(doc, _date_text(nd.issue_date), align=WD_ALIGN_PARAGRAPH.RIGHT)
    date_p.paragraph_format.right_indent = Pt(TEXT_PT * 4)
    if nd.seal:
        seal_p = _para(doc, align=WD_ALIGN_PARAGRAPH.RIGHT)
        seal_p.paragraph_format.right_indent = Pt(TEXT_PT * 4)
        seal_p.add_run().add_picture(io.BytesIO(nd.seal), width=Mm(42))

    for annex in nd.annexes:
        doc.add_section(WD_SECTION.NEW_PAGE)
        _para(doc, f"附件{annex.number}", font=HEADING_FONT, size=TEXT_PT)
        _para(doc)
        _para(doc, annex.title, font=TITLE_FONT, size=TITLE_PT, align=WD_ALIGN_PARAGRAPH.CENTER, space_after=4)
        _para(doc, "（排名不分先后）", font=TEXT_FONT, size=TEXT_PT, align=WD_ALIGN_PARAGRAPH.CENTER,
              space_after=LINE_PT / 2)
        if not annex.groups:
            _para(doc, "（无）", align=WD_ALIGN_PARAGRAPH.CENTER)
        for g_index, group in enumerate(annex.groups):
            _para(doc, f"{CHINESE_NUMBERS[g_index]}、{group.heading}（{group.count}个）", font=HEADING_FONT)
            for nominator in group.nominators:
                for item in nominator.items:
                    text = f"{item.number}．{item.title}"
                    if annex.category == "activity" and item.host:
                        text += f"（{item.host}）"
                    elif annex.category == "activity":
                        text += f"（{nominator.name}）"
                    _para(doc, text, indent=True)
    buf = io.BytesIO()
    doc.save(buf)
    return Document(buf.getvalue(), safe_filename(nd.filename_stem + ".docx"), DOCX_MIME)


__all__ = ["DOCX_MIME", "NoticeData", "data", "fill", "notice_docx", "notice_html", "notice_pdf", "notice_source"]
