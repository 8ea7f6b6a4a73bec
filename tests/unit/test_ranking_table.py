"""The ranking page's parameters and ETag, and its charts (pure Python; the page of rows itself:
tests/unit/test_ranking_upkeep.py)."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import MultiDict

from app.core.errors import UserError
from app.ranking import charts
from app.ranking.engine import ReviewerSeverity, ReviewerTotal
from app.ranking.table import Params, etag, fingerprint, matches


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
