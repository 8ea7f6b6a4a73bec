"""Reviewer agreement of one category, on the totals and on each criterion, with the reading in words.

* ICC (Shrout & Fleiss 1979): two-way ANOVA of the nominations × reviewers matrix, on the nominations
  every reviewer of the category scored (a complete block). ICC(2,1) is the reliability of one
  reviewer's score (reviewers a random sample, their severity counts as error), ICC(2,k) that of the
  panel's mean of k. ICC(1,·) and ICC(3,·) are computed too (the CLI and tests show all six).
* Krippendorff's alpha, interval metric, over all counted sheets: it needs no complete block, so it is
  the figure for incomplete assignments (and agrees with the ICC(2,1) in spirit).
* Kendall's W with the tie correction, on the same complete block: do the reviewers put the nominations
  in the same order?

Bands (stated on the page): ICC after Koo & Li (2016): < 0.5 差, 0.5–0.75 一般, 0.75–0.9 良好, ≥ 0.9 优秀;
alpha after Krippendorff (2004): ≥ 0.8 可靠, 0.667–0.8 仅可作初步结论, < 0.667 不可靠; W after Schmidt
(1997): < 0.3 很弱, 0.3–0.5 弱, 0.5–0.7 中等, 0.7–0.9 强, ≥ 0.9 很强.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import rankdata

from app.stats.robustness import Panel

ICC_BANDS = ((0.5, "差"), (0.75, "一般"), (0.9, "良好"), (math.inf, "优秀"))
ALPHA_BANDS = ((0.667, "不可靠"), (0.8, "仅可作初步结论"), (math.inf, "可靠"))
W_BANDS = ((0.3, "很弱"), (0.5, "弱"), (0.7, "中等"), (0.9, "强"), (math.inf, "很强"))
BANDS_TEXT = ("ICC 按 Koo & Li (2016)：低于 0.5 为差，0.5–0.75 一般，0.75–0.9 良好，0.9 以上优秀；"
              "Krippendorff α 按 Krippendorff (2004)：0.8 以上可靠，0.667–0.8 仅可作初步结论，低于 0.667 不可靠；"
              "Kendall W 按 Schmidt (1997)：低于 0.3 很弱，0.3–0.5 弱，0.5–0.7 中等，0.7–0.9 强，0.9 以上很强。")
MIN_UNITS = 2


def band(value: float | None, bands) -> str:
    if value is None or not math.isfinite(value):
        return "无法计算"
    return next(word for limit, word in bands if value < limit)


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def icc(matrix: np.ndarray) -> dict[str, float | None]:
    """The six Shrout & Fleiss ICCs of a complete targets × raters matrix (no missing value)."""
    x = np.asarray(matrix, dtype=float)
    n, k = x.shape
    grand = x.mean()
    rows, cols = x.mean(axis=1), x.mean(axis=0)
    ss_rows = k * ((rows - grand) ** 2).sum()
    ss_cols = n * ((cols - grand) ** 2).sum()
    ss_within = ((x - rows[:, None]) ** 2).sum()
    ss_error = ss_within - ss_cols
    bms = ss_rows / (n - 1)
    jms = ss_cols / (k - 1)
    wms = ss_within / (n * (k - 1))
    ems = ss_error / ((n - 1) * (k - 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {
            "icc1_1": (bms - wms) / (bms + (k - 1) * wms),
            "icc2_1": (bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n),
            "icc3_1": (bms - ems) / (bms + (k - 1) * ems),
            "icc1_k": (bms - wms) / bms,
            "icc2_k": (bms - ems) / (bms + (jms - ems) / n),
            "icc3_k": (bms - ems) / bms,
        }
    return {key: _finite(v) for key, v in out.items()}


def krippendorff_interval(data: np.ndarray) -> float | None:
    """Krippendorff's alpha, interval metric, of a coders × units matrix with NaN for a missing value.

    Only pairable values count (units with at least two values). Over ordered pairs of one unit,
    sum (v_i - v_j)^2 = 2 (m * sum v^2 - (sum v)^2), so both disagreements are sums, not pair loops.
    """
    x = np.asarray(data, dtype=float)
    present = ~np.isnan(x)
    m = present.sum(axis=0)
    pairable = m >= 2
    if not pairable.any():
        return None
    v = np.where(present, x, 0.0)[:, pairable]
    m = m[pairable].astype(float)
    s1, s2 = v.sum(axis=0), (v * v).sum(axis=0)
    n = m.sum()
    d_observed = (2 * (m * s2 - s1 * s1) / (m - 1)).sum() / n
    t1, t2 = s1.sum(), s2.sum()
    d_expected = 2 * (n * t2 - t1 * t1) / (n * (n - 1))
    if d_expected <= 0:
        return None
    return float(1 - d_observed / d_expected)


def kendall_w(matrix: np.ndarray) -> float | None:
    """Kendall's W of a complete items × raters matrix, ranks averaged over ties, tie-corrected."""
    x = np.asarray(matrix, dtype=float)
    n, m = x.shape
    if n < 2 or m < 2:
        return None
    ranks = rankdata(x, axis=0)  # each rater ranks the items
    r_sum = ranks.sum(axis=1)
    s = ((r_sum - r_sum.mean()) ** 2).sum()
    ties = 0.0
    for j in range(m):
        _, t = np.unique(x[:, j], return_counts=True)
        ties += float((t ** 3 - t).sum())
    denominator = m * m * (n ** 3 - n) - m * ties
    if denominator <= 0:
        return None
    return float(12 * s / denominator)


def _matrix(panel: Panel, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """reviewers × nominations with NaN where there is no counted sheet, and the reviewer ids."""
    reviewers, r_index = np.unique(panel.sheet_reviewer, return_inverse=True)
    out = np.full((len(reviewers), panel.n_nominations), np.nan)
    out[r_index, panel.sheet_nom] = values
    return out, reviewers


def measure(panel: Panel, values: np.ndarray) -> dict:
    """ICC / W on the complete block, alpha on everything, for one value per sheet."""
    data, reviewers = _matrix(panel, values)
    k = len(reviewers)
    scored = ~np.isnan(data).all(axis=0)
    complete = ~np.isnan(data).any(axis=0)
    block = data[:, complete].T  # nominations × reviewers
    out = {"reviewers": int(k), "nominations": int(scored.sum()), "complete": int(complete.sum()),
           "sheets": int(len(values)), "icc": None, "kendall_w": None,
           "alpha": krippendorff_interval(data) if k >= 2 else None}
    if k >= 2 and block.shape[0] >= MIN_UNITS:
        out["icc"] = icc(block)
        out["kendall_w"] = kendall_w(block)
    return out


def agreement(panel: Panel, criterion_names: dict[str, str] | None = None) -> list[dict]:
    """One row for the totals, then one per criterion: the figures and their bands."""
    names = criterion_names or {}
    rows = [("total", "总分", panel.totals)]
    if panel.criteria != ("total",):
        rows += [(code, names.get(code, code), panel.values[:, i]) for i, code in enumerate(panel.criteria)]
    out = []
    for code, name, values in rows:
        m = measure(panel, values)
        i2 = m["icc"] or {}
        out.append({"code": code, "name": name, **m,
                    "icc2_1_band": band(i2.get("icc2_1"), ICC_BANDS) if m["icc"] else None,
                    "icc2_k_band": band(i2.get("icc2_k"), ICC_BANDS) if m["icc"] else None,
                    "alpha_band": band(m["alpha"], ALPHA_BANDS),
                    "w_band": band(m["kendall_w"], W_BANDS) if m["icc"] else None})
    return out


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def in_words(row: dict) -> str:
    """The totals' row as one or two plain Chinese sentences for the chair."""
    parts = []
    if row["icc"]:
        i = row["icc"]
        parts.append(
            f"基于 {row['reviewers']} 位专家均已评分的 {row['complete']} 个推荐对象：单个专家评分的信度 ICC(2,1) 为 "
            f"{_fmt(i['icc2_1'])}（{row['icc2_1_band']}），{row['reviewers']} 位专家平均分的信度 ICC(2,{row['reviewers']}) 为 "
            f"{_fmt(i['icc2_k'])}（{row['icc2_k_band']}）；排序一致性 Kendall W 为 {_fmt(row['kendall_w'])}（{row['w_band']}）。")
    else:
        parts.append("专家分配不完整（没有足够的由全部专家评分的推荐对象），不计算 ICC 与 Kendall W，以 Krippendorff α 为准。")
    parts.append(f"全部 {row['sheets']} 份有效评分的 Krippendorff α（等距）为 {_fmt(row['alpha'])}（{row['alpha_band']}）。")
    if row["icc"] and (row["icc"]["icc2_1"] or 0) < 0.5:
        parts.append("单个专家的评分信度低：换一位专家，分数可能明显不同，线附近的名次应结合稳健性一并讨论。")
    return "".join(parts)
