"""Reviewer agreement against published and hand-checked values: Shrout & Fleiss (1979)'s 6 × 4 example,
Kendall's W worked by hand, Krippendorff's alpha equal to the `krippendorff` package on incomplete data."""

from __future__ import annotations

import krippendorff
import numpy as np
import pytest

from app.stats import agreement
from app.stats.robustness import Panel

# Shrout & Fleiss (1979), Table 2: rows are the six targets, columns the four judges.
SHROUT_FLEISS = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])
PUBLISHED = {"icc1_1": 0.17, "icc2_1": 0.29, "icc3_1": 0.71, "icc1_k": 0.44, "icc2_k": 0.62, "icc3_k": 0.91}


def test_icc_on_the_shrout_fleiss_example():
    got = agreement.icc(SHROUT_FLEISS)
    assert {k: round(v, 2) for k, v in got.items()} == PUBLISHED


def test_kendall_w_by_hand():
    # 3 judges rank 4 items (the values are the ranks themselves, 1 = lowest):
    #   judge A: 1 2 3 4, judge B: 1 3 2 4, judge C: 2 1 3 4
    # rank sums R = 4, 6, 8, 12; mean R = m (n + 1) / 2 = 7.5
    # S = 3.5² + 1.5² + 0.5² + 4.5² = 12.25 + 2.25 + 0.25 + 20.25 = 35
    # W = 12 S / (m² (n³ - n)) = 420 / (9 × 60) = 7 / 9
    items_by_judges = np.array([[1, 1, 2], [2, 3, 1], [3, 2, 3], [4, 4, 4]])
    assert agreement.kendall_w(items_by_judges) == pytest.approx(7 / 9)


def test_kendall_w_with_ties_by_hand():
    # 2 judges, 3 items; judge A ties items 2 and 3: ranks 1, 2.5, 2.5 (T_A = 2³ - 2 = 6); judge B: 1, 2, 3.
    # R = 2, 4.5, 5.5; mean 4; S = 4 + 0.25 + 2.25 = 6.5
    # W = 12 S / (m² (n³ - n) - m ΣT) = 78 / (4 × 24 - 2 × 6) = 78 / 84
    items_by_judges = np.array([[10, 1], [20, 2], [20, 3]])
    assert agreement.kendall_w(items_by_judges) == pytest.approx(78 / 84)


@pytest.mark.parametrize("seed", range(6))
def test_krippendorff_alpha_equals_the_package_on_incomplete_data(seed):
    rng = np.random.default_rng(seed)
    coders, units = 7, 60
    quality = rng.normal(70, 10, units)
    data = np.round((quality[None, :] + rng.normal(0, 6 + seed, (coders, units))) * 2) / 2
    data[rng.random(data.shape) < 0.35] = np.nan
    data[:, 0] = np.nan  # a unit nobody scored
    data[1:, 1] = np.nan  # a unit with a single value (not pairable)
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="interval")
    assert agreement.krippendorff_interval(data) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_complete_agreement_gives_one_everywhere():
    totals = np.array([90, 85, 85, 70, 60], dtype=float)
    panel = Panel.from_totals(np.arange(1, 6), np.repeat(np.arange(5), 4), np.tile([11, 12, 13, 14], 5),
                              np.repeat(totals, 4))
    (row,) = agreement.agreement(panel)
    assert row["icc"]["icc2_1"] == pytest.approx(1) and row["icc"]["icc2_k"] == pytest.approx(1)
    assert row["alpha"] == pytest.approx(1)
    assert row["kendall_w"] == pytest.approx(1)
    assert row["icc2_1_band"] == "优秀" and row["alpha_band"] == "可靠" and row["w_band"] == "很强"


def test_incomplete_assignments_use_alpha_only():
    # Each nomination scored by 3 of 6 reviewers in rotation: no nomination has every reviewer.
    rng = np.random.default_rng(3)
    noms, reviewers = [], []
    for i in range(30):
        for j in range(3):
            noms.append(i)
            reviewers.append(100 + (i + j) % 6)
    values = rng.normal(70, 8, len(noms))
    panel = Panel.from_totals(np.arange(1, 31), noms, reviewers, values)
    (row,) = agreement.agreement(panel)
    assert row["complete"] == 0 and row["icc"] is None and row["kendall_w"] is None
    assert row["alpha"] is not None
    text = agreement.in_words(row)
    assert "分配不完整" in text and "Krippendorff α" in text


def test_bands_follow_koo_and_li():
    assert [agreement.band(x, agreement.ICC_BANDS) for x in (0.2, 0.5, 0.74, 0.75, 0.9, 0.95)] == \
        ["差", "一般", "一般", "良好", "优秀", "优秀"]
    assert agreement.band(None, agreement.ICC_BANDS) == "无法计算"
    assert "Koo & Li (2016)" in agreement.BANDS_TEXT


def test_in_words_on_the_example_names_the_figures():
    noms = np.repeat(np.arange(6), 4)
    reviewers = np.tile([1, 2, 3, 4], 6)
    panel = Panel.from_totals(np.arange(1, 7), noms, reviewers, SHROUT_FLEISS.ravel().astype(float))
    (row,) = agreement.agreement(panel)
    text = agreement.in_words(row)
    assert "ICC(2,1) 为 0.29（差）" in text and "ICC(2,4) 为 0.62（一般）" in text
    assert "单个专家的评分信度低" in text
