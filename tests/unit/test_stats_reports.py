"""The internal result report PDF and the ranking XLSX carry the 稳健性 column and the agreement
section (issue 14), read back from the real files."""

from __future__ import annotations

import io
import re

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from app.reports import documents, spreadsheets
from tests.chair_fixtures import build_small_round


@pytest.fixture
def small(app):
    with app.app_context():
        yield build_small_round()


def test_result_report_pdf_has_the_column_and_the_section(app, small):
    with app.app_context():
        doc = documents.result_report_pdf(small.round_id, "activity")
    text = re.sub(r"\s+", "", "".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(doc.content)).pages))
    assert "稳健性" in text and "稳定入选" in text and "稳定落选" in text
    assert "稳健性与专家评分一致性" in text
    assert "ICC(2,1)" in text and "Krippendorff" in text and "KendallW" in text
    assert "KooLi(2016)" in text.replace("&", "") and "基于排名版本" in text
    assert "方法敏感性" in text


def test_ranking_xlsx_has_the_columns_and_the_sheet(app, small):
    with app.app_context():
        doc = spreadsheets.ranking_xlsx(small.round_id, "activity")
    wb = load_workbook(io.BytesIO(doc.content))
    ws = wb["排名"]
    header = [c.value for c in ws[1]]
    col = header.index("稳健性")
    assert header[col + 1] == "线内比例" and header[col + 2] == "排名区间（5%–95%）"
    labels = [ws.cell(row=i, column=col + 1).value for i in range(2, ws.max_row + 1)]
    assert labels == ["稳定入选", "稳定入选", "稳定落选", "稳定落选", "稳定落选"]
    assert ws.cell(row=2, column=col + 2).value == 1.0
    sheet = wb["稳健性与一致性"]
    assert [c.value for c in sheet[1]][:6] == ["指标", "专家人数", "推荐对象", "全部专家均评", "ICC(1,1)", "ICC(2,1)"]
    names = [sheet.cell(row=i, column=1).value for i in range(2, 7)]
    assert names[0] == "总分" and len([n for n in names if n]) == 5  # the totals and the four criteria
    values = [c.value for row in sheet.iter_rows() for c in row if c.value is not None]
    assert any(isinstance(v, str) and "Koo & Li" in v for v in values)
    assert "方法敏感性" in values
