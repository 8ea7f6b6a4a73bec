"""`flask stats robustness|agreement --round 2024 --category unit|activity [--json]`."""

from __future__ import annotations

import json

import pytest

from tests.chair_fixtures import build_small_round


@pytest.fixture
def small(app):
    with app.app_context():
        return build_small_round()


def test_robustness_json(app, small):
    result = app.test_cli_runner().invoke(args=["stats", "robustness", "--round", "2024", "--category", "activity",
                                                "--json", "--resamples", "200", "--seed", "5"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["resamples"] == 200 and data["seed"] == 5 and data["slots"] == 2
    assert data["counts"] == {"in": 2, "edge": 0, "out": 3, "none": 0}
    a1 = data["places"][str(small.noms["A1"])]
    assert a1["rank"] == 1 and a1["share"] == 1.0 and a1["label"] == "in"


def test_robustness_text_and_agreement(app, small):
    runner = app.test_cli_runner()
    text = runner.invoke(args=["stats", "robustness", "--category", "unit"])
    assert text.exit_code == 0, text.output
    assert "稳定入选 1，临界 0，稳定落选 1" in text.output and "≥ 90%" in text.output
    agree = runner.invoke(args=["stats", "agreement", "--category", "activity"])
    assert agree.exit_code == 0, agree.output
    assert "ICC(2,1)" in agree.output and "Koo & Li (2016)" in agree.output and "总分" in agree.output
    as_json = json.loads(runner.invoke(args=["stats", "agreement", "--category", "activity", "--json"]).output)
    total = as_json["agreement"][0]
    assert total["code"] == "total" and total["reviewers"] == 3 and total["complete"] == 5


def test_unknown_round_is_a_clear_error(app, small):
    result = app.test_cli_runner().invoke(args=["stats", "robustness", "--round", "1999", "--category", "unit"])
    assert result.exit_code != 0 and "找不到 1999 年的评选批次" in result.output
