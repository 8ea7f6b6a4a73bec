"""The ranking page's parameters, ETag, filtering, paging and cut line (pure Python over ranked rows)."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import MultiDict

from app.core.errors import UserError
from app.ranking import charts
from app.ranking.engine import RankRow, ReviewerSeverity, ReviewerTotal
from app.ranking.table import Params, build, etag, fingerprint, matches


def row(rank: int, kind: str = "city", nominator: int = 1, aggregate: float | None = 80.0) -> RankRow:
    return RankRow(
        nomination_id=100 + rank, title=f"N{rank}", host=None, nominator_id=nominator,
        nominator_name=f"单位{nominator}", nominator_kind=kind, nominator_position=nominator, rank=rank,
        aggregate=aggregate, n_scored=3, n_assigned=5, mean=aggregate, trimmed=aggregate, median=aggregate,
        zscore=50.0, rank_mean=rank, rank_trimmed=rank, rank_zscore=rank, stdev=1.0, spread=2.0,
        criterion_means={}, flagged=False, rank_median=rank,
    )


def test_params_defaults_and_query_round_trip():
    p = Params.parse(MultiDict(), "trimmed")
    assert (p.method, p.method_given, p.drafts, p.kind, p.nominator, p.page) == ("trimmed", False, False, "", None, 1)
    assert p.query() == {}
    q = Params.parse(MultiDict({"method": "zscore", "drafts": "1", "kind": "society", "nominator": "7", "page": "3"}),
                     "trimmed")
    assert q.query() == {"method": "zscore", "drafts": "1", "kind": "society", "nominator": 7, "page": 3}
    assert q.query(page=None) == {"method": "zscore", "drafts": "1", "kind": "society", "nominator": 7}


@pytest.mark.parametrize("args", [{"method": "best"}, {"kind": "x"}, {"page": "0"}, {"page": "-2"},
                                  {"nominator": "1.5"}, {"page": "many"}])
def test_bad_params_are_400(args):
    with pytest.raises(UserError) as err:
        Params.parse(MultiDict(args), "mean")
    assert err.value.status == 400


def test_fingerprint_changes_with_every_input():
    prints = {
        fingerprint(b"", 40, "reviewing", "trimmed"),
        fingerprint(b"", 41, "reviewing", "trimmed"),
        fingerprint(b"", 40, "deliberating", "trimmed"),
        fingerprint(b"", 40, "reviewing", "mean"),
        fingerprint(b"drafts=1", 40, "reviewing", "trimmed"),
        fingerprint(b"page=2", 40, "reviewing", "trimmed"),
    }
    assert len(prints) == 6
    assert fingerprint("page=2", 1) == fingerprint(b"page=2", 1)
    assert etag(1, "unit", 7, "abc", 3) == "1-unit-7-abc-3"


def test_if_none_match_is_an_exact_token_test():
    assert matches('"1-unit-7-abc-3"', "1-unit-7-abc-3")
    assert matches('W/"1-unit-7-abc-3"', "1-unit-7-abc-3")  # weak comparison for If-None-Match
    assert matches('"x", "1-unit-7-abc-3"', "1-unit-7-abc-3") and matches("*", "1-unit-7-abc-3")
    assert not matches('"1-unit-7-abc-33"', "1-unit-7-abc-3")
    assert not matches('"1-unit-7-abc-3', "1-unit-7-abc-3x") and not matches(None, "t") and not matches("", "t")


def test_paging_and_the_cut_line_over_the_whole_list():
    rows = [row(r) for r in range(1, 24)]
    page1 = build(rows, Params.parse(MultiDict(), "mean"), slots=12, page_size=10)
    assert [r.rank for r in page1.rows] == list(range(1, 11)) and page1.pages == 3
    assert page1.cut_id == 112 and page1.cut_page == 2
    page3 = build(rows, Params.parse(MultiDict({"page": "9"}), "mean"), slots=12, page_size=10)
    assert page3.page == 3 and [r.rank for r in page3.rows] == [21, 22, 23]
    assert page3.page_numbers() == [1, 2, 3]


def test_no_cut_line_when_nobody_is_below_it():
    rows = [row(r) for r in range(1, 6)]
    table = build(rows, Params.parse(MultiDict(), "mean"), slots=10, page_size=100)
    assert table.cut_id is None and table.cut_page is None


def test_filters_keep_ranks_and_move_the_cut_to_the_last_visible_row_inside():
    rows = [row(r, kind="city" if r % 2 else "society", nominator=1 if r % 2 else 2) for r in range(1, 11)]
    table = build(rows, Params.parse(MultiDict({"kind": "society"}), "mean"), slots=5, page_size=100)
    assert [r.rank for r in table.rows] == [2, 4, 6, 8, 10]
    assert table.cut_id == 104  # rank 4: the last society row inside the 5 slots
    assert table.total == 5 and table.category_total == 10
    assert [o.kind for o in table.nominators] == ["city", "society"]  # every nominator stays selectable
    by_nominator = build(rows, Params.parse(MultiDict({"nominator": "1"}), "mean"), slots=5, page_size=100)
    assert [r.rank for r in by_nominator.rows] == [1, 3, 5, 7, 9]


def test_page_numbers_elide_the_middle():
    rows = [row(r) for r in range(1, 701)]
    table = build(rows, Params.parse(MultiDict({"page": "30"}), "mean"), slots=40, page_size=10)
    assert table.page_numbers() == [1, None, 28, 29, 30, 31, 32, None, 70]


def test_totals_chart_scales_bars_to_full_marks():
    totals = [ReviewerTotal(1, "甲", "a", "submitted", True, True, 100.0, {}, "", None, None),
              ReviewerTotal(2, "乙", "b", "submitted", True, True, 50.0, {}, "", None, None),
              ReviewerTotal(3, "丙", "c", "missing", False, False, None, {}, "", None, None)]
    chart = charts.totals_chart(totals, 100.0, 75.0)
    assert [b.width for b in chart.bars] == [charts.PLOT_W, charts.PLOT_W / 2]
    assert chart.marker_x == charts.LABEL_W + charts.PLOT_W * 0.75
    assert charts.totals_chart(totals[2:], 100.0, None) is None


def test_severity_chart_marks_the_panel_mean():
    sev = [ReviewerSeverity(1, "甲", "a", 10, 80.0, 5.0, 70.0, 90.0, 6.0, 10, 75.0, 6.0, "lenient"),
           ReviewerSeverity(2, "乙", "b", 10, 70.0, 5.0, 60.0, 80.0, -6.0, 10, 75.0, 6.0, "harsh")]
    chart = charts.severity_chart(sev, 100.0)
    assert [w.css for w in chart.bars] == ["sev-lenient", "sev-harsh"]
    assert chart.bars[0].x_low < chart.bars[0].x_mean < chart.bars[0].x_high
    assert chart.bars[1].x_mean < chart.marker_x < chart.bars[0].x_mean
