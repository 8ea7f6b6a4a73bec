"""XLSX exports re-read with openpyxl: the same numbers as ranking.compute, Chinese headers, a frozen
header row, sensible widths; the approved list in the published order without personal data."""

from __future__ import annotations

import io

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from app.deliberation import operations as decisions
from app.extensions import db
from app.models import Criterion, ReviewSheet, Score, User
from app.ranking import engine as ranking
from app.reports import spreadsheets
from app.rounds import phases as rounds
from tests.chair_fixtures import build_small_round


def _book(doc):
    assert doc.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert doc.filename.endswith(".xlsx")
    return load_workbook(io.BytesIO(doc.content))


def _same(cell, value) -> bool:
    return cell is None if value is None else cell == pytest.approx(value)


def _records(ws) -> tuple[list[str], list[dict]]:
    rows = list(ws.iter_rows(values_only=True))
    headers = list(rows[0])
    return headers, [dict(zip(headers, r, strict=True)) for r in rows[1:]]


@pytest.mark.parametrize("category", ["unit", "activity"])
def test_ranking_xlsx_matches_ranking_compute_on_the_demo_round(demo_app, category):
    with demo_app.app_context():
        rnd = rounds.require_current_round()
        expected = ranking.compute(rnd.id, category)
        criteria = list(db.session.scalars(select(Criterion).where(
            Criterion.round_id == rnd.id, Criterion.category == category).order_by(Criterion.position)))
        # Per-reviewer totals straight from the score rows, to check the reviewer columns.
        totals: dict[tuple[int, str], float] = {}
        for nom_id, username, value in db.session.execute(
            select(ReviewSheet.nomination_id, User.username, Score.value)
            .join(User, User.id == ReviewSheet.reviewer_id).join(Score, Score.sheet_id == ReviewSheet.id)
            .where(ReviewSheet.status == "submitted")
        ):
            totals[(nom_id, username)] = totals.get((nom_id, username), 0.0) + value
        doc = spreadsheets.ranking_xlsx(rnd.id, category)

    wb = _book(doc)
    assert wb.sheetnames == ["排名", "评分明细", "说明", "稳健性与一致性"]  # the last: issue 14
    ws = wb["排名"]
    assert ws.freeze_panes == "A2"
    headers, records = _records(ws)
    assert headers[:2] == ["排名", "活动名称" if category == "activity" else "单位名称"]
    assert "综合得分（去掉最高最低分后平均）" in headers and "标准差" in headers
    assert all(ws.column_dimensions[c].width and ws.column_dimensions[c].width >= 6 for c in "ABCDEF")
    assert ws["A1"].font.bold
    assert len(records) == len(expected) > 0
    reviewer_columns = [h for h in headers if h and "（expert" in h]
    assert len(reviewer_columns) == 7
    checked_reviewer_cells = 0
    for row, rec in zip(expected, records, strict=True):
        assert rec["排名"] == row.rank
        assert rec[headers[1]] == row.title
        assert rec["推荐单位"] == row.nominator_name
        assert _same(rec["综合得分（去掉最高最低分后平均）"], row.aggregate)
        assert _same(rec["平均分"], row.mean)
        assert _same(rec["去掉最高最低分后平均"], row.trimmed)
        assert _same(rec["中位数"], row.median)
        assert _same(rec["标准分（0–100）"], row.zscore)
        assert rec["有效评分数"] == row.n_scored and rec["分配数"] == row.n_assigned
        assert _same(rec["标准差"], row.stdev)
        assert _same(rec["极差"], row.spread)
        for c in criteria:
            assert _same(rec[f"{c.name}平均"], row.criterion_means.get(c.code))
        for header in reviewer_columns:
            username = header.split("（")[-1].rstrip("）")
            want = totals.get((row.nomination_id, username))
            assert _same(rec[header], want)
            checked_reviewer_cells += want is not None
    assert checked_reviewer_cells > len(records)  # the reviewer columns are really filled

    detail_headers, detail = _records(wb["评分明细"])
    assert detail_headers[:3] == ["排名", headers[1], "评审专家"]
    assert len(detail) == sum(r.n_scored for r in expected)
    for rec in detail[:20]:
        parts = [rec[f"{c.name}（{c.max_score:g}）"] for c in criteria]
        assert rec["合计"] == pytest.approx(sum(parts))


def test_ranking_xlsx_shows_decisions(app):
    with app.app_context():
        small = build_small_round()
        decisions.prefill_from_cut_line(small.round_id, "activity")
        wb = _book(spreadsheets.ranking_xlsx(small.round_id, "activity"))
    _, records = _records(wb["排名"])
    assert [r["审定结果"] for r in records] == ["通过", "通过", "不通过", "不通过", "不通过"]
    assert [r["主办单位"] for r in records][0] == "长沙市科协主办"


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_approved_list_xlsx_in_published_order_without_personal_data(app, backend):
    with app.app_context():
        small = build_small_round()
        for category in ("activity", "unit"):
            decisions.prefill_from_cut_line(small.round_id, category)
        decisions.decide(small.noms["A5"], "approve", reason="学会代表性")
        doc = spreadsheets.approved_list_xlsx(small.round_id)
        single = spreadsheets.approved_list_xlsx(small.round_id, "unit")
        phones = {small.nom(k).contact_phone for k in small.noms}
        names = {small.nom(k).contact_name for k in small.noms}
    wb = _book(doc)
    assert wb.sheetnames == ["优秀组织单位", "优秀活动"]
    headers, records = _records(wb["优秀活动"])
    assert headers == ["序号", "推荐单位类别", "推荐单位", "活动名称", "主办单位", "审定意见"]
    assert [(r["序号"], r["推荐单位类别"], r["推荐单位"]) for r in records] == [
        (1, "市州", "长沙市科协"), (2, "市州", "株洲市科协"), (3, "省级学会", "湖南省气象学会")]
    assert wb["优秀活动"].freeze_panes == "A2"
    cells = {str(v) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for v in row}
    assert not (cells & phones) and not (cells & names)
    assert _book(single).sheetnames == ["优秀组织单位"]


def test_user_text_that_looks_like_a_formula_stays_text(app):
    import zipfile

    evil = '=HYPERLINK("http://127.0.0.1/x","点我")'
    with app.app_context():
        small = build_small_round(nomination_fields={"A1": {"title": evil}})
        sheet = db.session.scalar(select(ReviewSheet).where(ReviewSheet.nomination_id == small.noms["A2"]))
        sheet.comment = "=1+1"
        db.session.commit()
        decisions.prefill_from_cut_line(small.round_id, "activity")
        docs = [spreadsheets.ranking_xlsx(small.round_id, "activity"),
                spreadsheets.approved_list_xlsx(small.round_id, "activity")]
    for doc in docs:
        with zipfile.ZipFile(io.BytesIO(doc.content)) as z:
            for name in z.namelist():
                if name.startswith("xl/worksheets/"):
                    assert b"<f>" not in z.read(name), name
        values = {c.value for ws in _book(doc).worksheets for row in ws.iter_rows() for c in row}
        assert evil in values
    assert "=1+1" in {c.value for row in _book(docs[0])["评分明细"].iter_rows() for c in row}
