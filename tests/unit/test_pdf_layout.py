"""Page layout of the documents, read back with pdfplumber: a 推荐表 at every field limit is one A4 page
(plus its photo page), no page ends with a heading or starts with a table's lone row, and the batch's
cover and 目录 point at the pages where each form really starts.

Set KEPU_PDF_DUMP=/some/dir to keep the PDFs for a look (pdftoppm -png -r 50)."""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from datetime import date
from types import SimpleNamespace

import pdfplumber
import pytest
from flask import render_template
from PIL import Image
from pypdf import PdfReader

from app.core import storage
from app.deliberation import operations as decisions
from app.demo.final import make_seal_png
from app.extensions import db
from app.models import Assignment, Attachment, Criterion, Decision, Nominator, ReviewSheet, Score, User
from app.models._base import utcnow
from app.models.nomination import ADDRESS_MAX, RECOMMENDATION_MAX, SHORT_MAX, SUMMARY_MAX, TITLE_MAX
from app.reports import documents
from app.reports.pdf import render_pdf
from tests.chair_fixtures import build_small_round
from tests.factories import make_nomination, make_round

FOOTER_RE = re.compile(r"^第\d+页共\d+页$")
SIGN_OFF = ("本人承诺", "评审专家（签字）", "评审委员会主任（签字）", "注：综合得分")
PROSE = ("本次活动围绕提升全民科学素质主题，组织科技工作者走进社区、学校和乡村，开展科普报告、科学实验、"
         "展览展示和互动体验，线上线下同步直播，群众参与热情高，社会反响良好，形成了可复制推广的经验。")


def _text(n: int, seed: str = PROSE) -> str:
    """Exactly n characters of Chinese prose (a value at its field limit)."""
    return (seed * (n // len(seed) + 1))[:n]


def _flat(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _dump(name: str, pdf: bytes) -> None:
    folder = os.environ.get("KEPU_PDF_DUMP")
    if folder:
        with open(os.path.join(folder, name + ".pdf"), "wb") as fh:
            fh.write(pdf)


# ----------------------------------------------------------------------------- the checker


@dataclass
class Line:
    top: float
    bottom: float
    text: str
    bold: bool  # every character of the line is bold: a heading, a group row or a table header


def _lines(page) -> list[Line]:
    """The page's text lines top to bottom (chars sharing a baseline), without the page-number footer."""
    rows: list[list[dict]] = []
    for ch in sorted(page.chars, key=lambda c: (round(c["bottom"]), c["x0"])):
        if not ch["text"].strip():
            continue
        if rows and abs(rows[-1][-1]["bottom"] - ch["bottom"]) < 2.5:
            rows[-1].append(ch)
        else:
            rows.append([ch])
    out = []
    for chars in rows:
        chars.sort(key=lambda c: c["x0"])
        text = "".join(c["text"] for c in chars)
        if FOOTER_RE.match(_flat(text)):
            continue
        out.append(Line(min(c["top"] for c in chars), max(c["bottom"] for c in chars), text,
                        all("Bold" in c["fontname"] for c in chars)))
    return out


def _first_table(page):
    tables = page.find_tables({"vertical_strategy": "lines", "horizontal_strategy": "lines"})
    return min(tables, key=lambda t: t.bbox[1]) if tables else None


def _row_texts(page, table) -> list[tuple[str, bool]]:
    """(text, all bold) of each row of a table, read from the characters inside the row's box."""
    out = []
    for row in table.rows:
        x0, top, x1, bottom = row.bbox
        chars = [c for c in page.chars if c["text"].strip() and x0 <= (c["x0"] + c["x1"]) / 2 <= x1
                 and top <= (c["top"] + c["bottom"]) / 2 <= bottom]
        if chars:
            out.append(("".join(c["text"] for c in chars), all("Bold" in c["fontname"] for c in chars)))
    return out


def layout_problems(pdf: bytes) -> list[str]:
    """What a reader would see as a bad break: a page whose last line is a heading (a title, a group
    heading, a group row, a table header: all-bold text), or a page that opens with a table carried
    over from the previous page holding a single row of content (a lone row, such as a 审定意见 row
    pushed off its form or a last row pushed away from its table), or a page that opens with the note
    and signature that close a table (the 专家评分表's sign-off away from its scores)."""
    problems = []
    with pdfplumber.open(io.BytesIO(pdf)) as doc:
        for number, page in enumerate(doc.pages, start=1):
            lines = _lines(page)
            if not lines:
                continue
            if number < len(doc.pages) and lines[-1].bold:
                problems.append(f"page {number} ends with a heading: {lines[-1].text}")
            if number > 1 and _flat(lines[0].text).startswith(SIGN_OFF):
                problems.append(f"page {number} starts with a sign-off: {lines[0].text}")
            table = _first_table(page)
            if number == 1 or table is None or any(line.bottom < table.bbox[1] for line in lines):
                continue  # a table that does not open the page was not carried over
            content = [text for text, bold in _row_texts(page, table) if not bold]
            if len(content) == 1:
                problems.append(f"page {number} starts with a lone row: {content[0][:40]}")
    return problems


def _pages(pdf: bytes) -> list[str]:
    return [_flat(p.extract_text() or "") for p in PdfReader(io.BytesIO(pdf)).pages]


def test_checker_sees_a_heading_ending_a_page_and_a_lone_row():
    """The checker must be able to fail: the same list without the keep rules breaks both ways."""
    def html(rows_before: int, css: str) -> str:
        rows = "".join(f"<tr><td>{i}</td><td>第{i}项活动</td></tr>" for i in range(rows_before))
        tail = "<tr><td>末</td><td>最后一行</td></tr>"
        return (f'<html lang="zh-CN"><head><meta charset="utf-8"><style>{css}</style></head><body>'
                f'<table class="list-table"><thead><tr><th>序号</th><th>名称</th></tr></thead><tbody>{rows}'
                f'</tbody></table><h2>二、省直单位</h2>'
                f'<table class="list-table"><thead><tr><th>序号</th><th>名称</th></tr></thead><tbody>{tail}'
                f"</tbody></table></body></html>")

    loose = "body h2 { break-after: auto !important; } body tbody tr { break-before: auto !important; }"
    found_heading = found_lone = False
    for n in range(20, 44):
        problems = layout_problems(render_pdf(html(n, loose)))
        found_heading |= any("ends with a heading" in p for p in problems)
        found_lone |= any("lone row" in p for p in problems)
        assert layout_problems(render_pdf(html(n, ""))) == [], n  # pdf.css's own rules prevent both
    assert found_heading and found_lone


# ----------------------------------------------------------------------------- 推荐表 at the limits


MAX_FIELDS = {
    "title": _text(TITLE_MAX, "“科学之夜”青少年科普嘉年华暨全国科普日主场系列活动"),
    "host": _text(TITLE_MAX, "湖南省科学技术协会、长沙市人民政府联合主办"),
    "contact_name": _text(SHORT_MAX, "欧阳科普"),
    "contact_title": _text(SHORT_MAX, "科普部部长兼学会办公室主任"),
    "contact_phone": _text(SHORT_MAX, "0731-84884352，"),
    "address": _text(ADDRESS_MAX, "湖南省长沙市岳麓区麓山南路科普大厦十二楼"),
    "summary": _text(SUMMARY_MAX),
    "recommendation": _text(RECOMMENDATION_MAX, "该活动主题鲜明、形式新颖、覆盖面广、社会影响大，同意推荐。"),
    "event_count": 1_000_000,
    "people_served": 999_999_999,
}
OPINION = _text(decisions.OPINION_MAX, "经专家评审、会议审定，同意推荐为2024年全国科普日优秀活动。")


def _add_photos(nomination_id: int, count: int = 5) -> None:
    for i in range(count):
        buf = io.BytesIO()
        Image.new("RGB", (800, 600), (40 * i, 120, 200 - 30 * i)).save(buf, "JPEG")
        stored = storage.save_bytes(buf.getvalue(), "jpg")
        db.session.add(Attachment(nomination_id=nomination_id, kind="photo", stored_name=stored,
                                  original_name=f"现场{i + 1}.jpg", mime="image/jpeg", size_bytes=len(buf.getvalue()),
                                  width=800, height=600, position=i))
    db.session.commit()


@pytest.fixture
def max_round(app):
    """A final round whose A1 (activity) and U1 (unit) have every field at its limit and a 300-字 审定意见."""
    with app.app_context():
        unit_fields = {k: v for k, v in MAX_FIELDS.items() if k != "host"}
        small = build_small_round(nomination_fields={"A1": MAX_FIELDS, "U1": unit_fields})
        long_name = db.session.get(Nominator, small.nominators["长沙市科协"])
        long_name.name = "长沙市科学技术协会（长沙市全民科学素质纲要实施工作办公室）"
        db.session.commit()
        for category in ("activity", "unit"):
            decisions.prefill_from_cut_line(small.round_id, category)
        for key in ("A1", "U1"):
            decisions.set_opinion(small.noms[key], OPINION)
        decisions.save_seal(small.round_id, make_seal_png(size=300))
        decisions.publicize(small.round_id)
        decisions.finalize(small.round_id)
        yield small


@pytest.mark.parametrize("key", ["A1", "U1"])
def test_form_at_every_limit_is_one_page_then_its_photo_page(max_round, key):
    nom = max_round.nom(key)
    alone = documents.nomination_form_pdf(nom.id).content
    _dump(f"form-max-{key}", alone)
    values = (nom.title, nom.contact_name, nom.contact_title, nom.contact_phone, nom.address, nom.summary,
              nom.recommendation, OPINION, "湖南省科学技术协会（盖章）", "2024年11月20日", "999999999")
    pages = _pages(alone)
    assert len(pages) == 1
    # Everything is on that page, the end of each long text and the 审定意见's date included.
    assert pages[0].startswith("附件2" if key == "A1" else "附件1")
    for value in values:
        assert _flat(value) in pages[0], value[:20]
    with pdfplumber.open(io.BytesIO(alone)) as doc:
        sizes = {round(c["size"], 1) for c in doc.pages[0].chars if c["text"].strip()}
    assert min(sizes) >= 8, sizes  # long values get smaller, never unreadable
    assert layout_problems(alone) == []

    _add_photos(nom.id)
    with_photos = documents.nomination_form_pdf(nom.id).content
    _dump(f"form-max-{key}-photos", with_photos)
    pages = _pages(with_photos)
    assert len(pages) == 2
    assert pages[0].startswith("附件2" if key == "A1" else "附件1") and "附：活动照片5张" in pages[0]
    assert all(_flat(value) in pages[0] for value in values)
    assert pages[1].startswith("活动照片") and "照片5" in pages[1]


def test_ordinary_form_keeps_the_notice_type_size(max_round):
    """Values of everyday length are set in 五号 (10.5 pt) like the notice's form; only long ones shrink."""
    nom = max_round.nom("A2")
    pdf = documents.nomination_form_pdf(nom.id).content
    assert len(_pages(pdf)) == 1
    with pdfplumber.open(io.BytesIO(pdf)) as doc:
        summary_chars = [c for c in doc.pages[0].chars if c["text"] in _flat(nom.summary)[:4]]
    assert summary_chars and all(round(c["size"], 1) == 10.5 for c in summary_chars)


# ----------------------------------------------------------------------------- documents long enough to break


NOMINATORS = [("长沙市科协", "city", 1), ("株洲市科协", "city", 2), ("湘潭市科协", "city", 3),
              ("湖南省教育厅", "member", 20), ("湖南省卫生健康委员会", "member", 21),
              ("湖南省气象学会", "society", 40), ("湖南省药学会", "society", 41)]


def _big_round(n_per_nominator: int, *, reviewers: int = 2):
    """A deliberating round whose nominations (both categories) are scored and approved, with titles
    and comments of varied length so rows differ in height and breaks fall in many places."""
    rnd = make_round("deliberating")
    rnd.slots_unit = rnd.slots_activity = 10_000
    rnd.approval_date = date(2024, 11, 20)
    people = [User(username=f"big{i}", display_name=f"专家{i}", role="reviewer", password_hash="x")
              for i in range(reviewers)]
    db.session.add_all(people)
    nominators = [Nominator(name=n, kind=k, position=p) for n, k, p in NOMINATORS]
    db.session.add_all(nominators)
    db.session.commit()
    criteria = {c: list(db.session.query(Criterion).filter_by(round_id=rnd.id, category=c)
                        .order_by(Criterion.position)) for c in ("unit", "activity")}
    i = 0
    for nominator in nominators:
        for j in range(n_per_nominator):
            for category in ("activity", "unit"):
                i += 1
                title = f"第{i}号" + _text(8 + (i * 7) % 40, "乡村振兴科技小院科普大篷车进校园")
                nom = make_nomination(rnd, nominator, title=title, category=category,
                                      host=f"{nominator.name}主办" if category == "activity" else None)
                db.session.add(Decision(nomination_id=nom.id, outcome="approve", opinion="同意推荐。"))
                for k, person in enumerate(people):
                    db.session.add(Assignment(reviewer_id=person.id, nomination_id=nom.id))
                    sheet = ReviewSheet(reviewer_id=person.id, nomination_id=nom.id, status="submitted",
                                        submitted_at=utcnow(),
                                        comment=_text(5 + (i * 13 + k * 29) % 120, "材料翔实，特色鲜明，建议推荐。"))
                    for c in criteria[category]:
                        sheet.scores.append(Score(criterion_id=c.id, value=c.max_score - (i + j + k) % 4))
                    db.session.add(sheet)
    db.session.commit()
    return rnd


DOCUMENTS = {
    "list": lambda rid: documents.public_list_pdf(rid, "activity"),
    "list-unit": lambda rid: documents.public_list_pdf(rid, "unit"),
    "report": lambda rid: documents.result_report_pdf(rid, "activity"),
    "sheets": lambda rid: documents.reviewer_sheets_pdf(rid, "unit"),
}


@pytest.mark.parametrize("per_nominator", [3, 5, 8])
def test_long_documents_never_end_a_page_on_a_heading_or_open_one_with_a_lone_row(app, per_nominator):
    with app.app_context():
        rnd = _big_round(per_nominator)
        for name, build in DOCUMENTS.items():
            pdf = build(rnd.id).content
            _dump(f"{name}-{per_nominator}", pdf)
            assert len(_pages(pdf)) >= 2, name  # long enough to break
            assert layout_problems(pdf) == [], name


def test_reviewer_sheet_sign_off_stays_with_its_table(app):
    """The real 专家评分表 template with 1..N lines: wherever the table ends, the 本人承诺 and the
    signature are on the page of its last rows (and the checker sees it when they are not)."""
    crits = [SimpleNamespace(id=i, name=f"指标{i}", max_score=25) for i in range(4)]
    def sheet(n):
        lines = [SimpleNamespace(title=f"第{i}号科普进社区活动", nominator_name="长沙市科协",
                                 scores={c.id: 20 for c in crits}, total=80, comment="材料翔实。")
                 for i in range(n)]
        return SimpleNamespace(reviewer=SimpleNamespace(display_name="专家甲"), category="activity",
                               criteria=crits, lines=lines, unsubmitted=0)

    loose = "<style>body .sign-off { break-before: auto !important; }</style></head>"
    found = False
    with app.app_context():
        for n in range(12, 19):
            html = render_template("pdf/reviewer_sheet.html", title="专家评分表", sheets=[sheet(n)])
            pdf = render_pdf(html)
            assert layout_problems(pdf) == [], n
            found |= any("sign-off" in p for p in layout_problems(render_pdf(html.replace("</head>", loose))))
    assert found


# ----------------------------------------------------------------------------- batch: cover and 目录


def _toc_entries(pdf: bytes) -> dict[str, int]:
    """Title → page number as printed in the 目录 (from the page headed 目录 up to the first form)."""
    out = {}
    with pdfplumber.open(io.BytesIO(pdf)) as doc:
        texts = [_flat(page.extract_text() or "") for page in doc.pages]
        first = texts.index(next(t for t in texts if t.startswith("目录")))
        end = next(i for i, t in enumerate(texts) if t.startswith(("附件1", "附件2")))
        assert first == 1 and end > first
        for page in doc.pages[first:end]:
            for table in page.find_tables():
                for row in table.extract():
                    cells = [_flat(c or "") for c in row]
                    if cells and cells[-1].isdigit():
                        out[cells[1]] = int(cells[-1])
    return out


def test_batch_cover_and_contents_point_at_each_form(app):
    with app.app_context():
        rnd = _big_round(4)
        decisions.save_seal(rnd.id, make_seal_png(size=300))
        noms = documents.queries.approved_nominations(rnd.id, "activity")
        _add_photos(noms[1].id, 3)  # one form with a photo page moves every later form by one page
        doc = documents.batch_forms_pdf(rnd.id, "activity")
        _dump("batch", doc.content)
        titles = [n.title for n in noms]
        pages = _pages(doc.content)

    cover = pages[0]
    for expected in ("2024年全国科普日优秀活动推荐表", "2024年评选", "优秀活动", f"共{len(noms)}份", "北京时间"):
        assert expected in cover, expected
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日", cover)
    starts = {}
    for number, text in enumerate(pages, start=1):
        if text.startswith("附件2"):
            title = next(t for t in titles if _flat(t) in text and t not in starts)
            starts[title] = number
    assert len(starts) == len(noms)
    assert _toc_entries(doc.content) == {_flat(t): n for t, n in starts.items()}
    assert layout_problems(doc.content) == []
