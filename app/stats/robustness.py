"""How sure is the cut line: a seeded bootstrap over reviewers, leave-one-reviewer-out and the
sensitivity of the line to the aggregation method, in numpy on one category's counted sheets.

The aggregates are the ranking's (app/ranking/engine.py documents them; the point ranking here is
tested equal to the SQL one on both engines):

* mean; trimmed = drop one highest and one lowest total when n >= 5, else the mean; median (the mean
  of the two middle totals when n is even); zscore = 50 + 10 * mean z, clamped to 0..100, where each
  sheet's z is standardised against its reviewer's totals in the whole category.
* Tie-break of the point ranking: aggregate (to 1e-9) desc, more counted sheets, lower sample stdev,
  lower nomination id; a nomination without a counted sheet ranks last.

Bootstrap: for every nomination, its n counted sheets are resampled with replacement (n draws), B times;
each resample of the category is ranked and compared with the cut line (the award slots). A sheet's z
keeps its reviewer's standardisation from the full data (re-standardising every resample would move
every reviewer's mean at once and measure something else). Ties inside a resample (aggregates equal
to 1e-9) keep the official order instead of re-computing each resample's stdev: at 7,000 × 1,000 that
would double the cost for a difference only in exact ties.

Vectorised: nominations with the same sheet count form a group; all n × g × B resample indices of a
chunk of a group are drawn at once (int8) and each aggregate is n elementwise passes over (g, B) slabs;
each resample is then ranked with one argsort of exact float keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

METHODS = ("mean", "trimmed", "median", "zscore")
DEFAULT_RESAMPLES = 1000
# A constant, not the ranking version: a decision bumps the version without changing a score, and the
# chair must not see the shares move because somebody approved a nomination.
DEFAULT_SEED = 14
# Labels. share = fraction of resamples in which the nomination is above the cut line.
STABLE_IN = 0.9  # share >= 0.9 → 稳定入选
STABLE_OUT = 0.1  # share <= 0.1 → 稳定落选; in between → 临界
LABELS = {"in": "稳定入选", "edge": "临界", "out": "稳定落选", "none": "无评分"}
INTERVAL = (0.05, 0.95)
ORDER_DECIMALS = 9
ZERO_VARIANCE = 1e-9
TRIM_MIN = 5
# Elements (B × g × n) per chunk: a few MB, so each step runs in cache instead of over 400 MB at once.
CHUNK_ELEMENTS = 1 << 20
RANK_ROWS = 100


def label_of(share: float | None) -> str:
    if share is None:
        return "none"
    if share >= STABLE_IN:
        return "in"
    if share <= STABLE_OUT:
        return "out"
    return "edge"


@dataclass
class Panel:
    """The counted sheets of one round × category: one row per sheet, ordered by nomination then reviewer."""

    nomination_ids: np.ndarray  # (N,) ascending
    sheet_nom: np.ndarray  # (S,) index into nomination_ids
    sheet_reviewer: np.ndarray  # (S,) reviewer user id
    values: np.ndarray  # (S, C) criterion values in rubric order
    criteria: tuple[str, ...] = ()

    @classmethod
    def from_totals(cls, nomination_ids, sheet_nom, sheet_reviewer, totals) -> Panel:
        return cls(np.asarray(nomination_ids, dtype=np.int64), np.asarray(sheet_nom, dtype=np.int64),
                   np.asarray(sheet_reviewer, dtype=np.int64),
                   np.asarray(totals, dtype=np.float64).reshape(-1, 1), ("total",))

    @property
    def totals(self) -> np.ndarray:
        # Summed here in rubric order, not by the database: the same doubles on SQLite and PostgreSQL.
        return self.values.sum(axis=1) if self.values.shape[1] != 1 else self.values[:, 0].copy()

    @property
    def n_nominations(self) -> int:
        return len(self.nomination_ids)

    def counts(self) -> np.ndarray:
        return np.bincount(self.sheet_nom, minlength=self.n_nominations)

    def reviewers(self) -> np.ndarray:
        return np.unique(self.sheet_reviewer)


def sheet_z(totals: np.ndarray, reviewer: np.ndarray) -> np.ndarray:
    """Each total standardised against its reviewer's totals (population stdev); 0 for a reviewer with a
    single total or no spread — the ranking's rule."""
    ids, inv = np.unique(reviewer, return_inverse=True)
    n = np.bincount(inv, minlength=len(ids)).astype(float)
    mean = np.bincount(inv, weights=totals, minlength=len(ids)) / n
    var = np.bincount(inv, weights=totals * totals, minlength=len(ids)) / n - mean * mean
    ok = (n > 1) & (var > ZERO_VARIANCE)
    sd = np.sqrt(np.where(ok, var, 1.0))
    return np.where(ok[inv], (totals - mean[inv]) / sd[inv], 0.0)


def _rounded(x: np.ndarray) -> np.ndarray:
    return np.round(x, ORDER_DECIMALS)


def _padded(index: np.ndarray, values: np.ndarray, n_rows: int, counts: np.ndarray) -> np.ndarray:
    """(n_rows, max count) with each row's values in sheet order, NaN after them."""
    width = int(counts.max()) if len(counts) and counts.max() > 0 else 1
    out = np.full((n_rows, width), np.nan)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(len(index)) - starts[index]
    out[index, pos] = values
    return out


def point_aggregates(panel: Panel, method: str, mask: np.ndarray | None = None,
                     z: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(aggregate, sample stdev, n) per nomination, over the sheets in `mask` (default: all)."""
    totals = panel.totals
    if z is None:
        z = sheet_z(totals, panel.sheet_reviewer)
    keep = np.ones(len(totals), bool) if mask is None else mask
    idx, t, zz = panel.sheet_nom[keep], totals[keep], z[keep]
    n_rows = panel.n_nominations
    n = np.bincount(idx, minlength=n_rows)
    s1 = np.bincount(idx, weights=t, minlength=n_rows)
    s2 = np.bincount(idx, weights=t * t, minlength=n_rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        var_pop = s2 / n - mean * mean
        sd = np.where(n >= 2, np.sqrt(np.maximum(var_pop, 0) * n / np.maximum(n - 1, 1)), np.nan)
        if method == "mean":
            agg = mean
        elif method == "trimmed":
            padded = _padded(idx, t, n_rows, n)
            hi, lo = np.nanmax(padded, axis=1, initial=-np.inf), np.nanmin(padded, axis=1, initial=np.inf)
            agg = np.where(n >= TRIM_MIN, (s1 - hi - lo) / (n - 2), mean)
        elif method == "median":
            padded = np.sort(_padded(idx, t, n_rows, n), axis=1)  # NaN sort last
            rows = np.arange(n_rows)
            lo_i, hi_i = np.maximum((n + 1) // 2 - 1, 0), np.maximum((n + 2) // 2 - 1, 0)
            agg = (padded[rows, lo_i] + padded[rows, hi_i]) / 2
        elif method == "zscore":
            zm = np.bincount(idx, weights=zz, minlength=n_rows) / n
            agg = np.clip(50 + 10 * zm, 0, 100)
        else:
            raise ValueError(method)
    agg = np.where(n > 0, agg, np.nan)
    return agg, sd, n


def point_order(panel: Panel, agg: np.ndarray, sd: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Nomination indices in official rank order (the SQL ranking's tie-break)."""
    agg_key = np.where(n > 0, _rounded(np.nan_to_num(agg)), -np.inf)
    sd_key = np.where(np.isnan(sd), np.inf, _rounded(np.nan_to_num(sd)))
    return np.lexsort((panel.nomination_ids, sd_key, -n, -agg_key))


def ranks_from_order(order: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(1, len(order) + 1)
    return ranks


def point_ranks(panel: Panel, method: str, mask: np.ndarray | None = None,
                z: np.ndarray | None = None) -> np.ndarray:
    agg, sd, n = point_aggregates(panel, method, mask, z)
    return ranks_from_order(point_order(panel, agg, sd, n))


def above_line(ranks: np.ndarray, n: np.ndarray, slots: int) -> np.ndarray:
    return (ranks <= slots) & (n > 0)


# ----------------------------------------------------------------------------- bootstrap


def _sorted_groups(panel: Panel, z: np.ndarray):
    """Per sheet count n: the nominations (indices) and their totals sorted ascending, with z aligned."""
    counts = panel.counts()
    totals = panel.totals
    padded_t = _padded(panel.sheet_nom, totals, panel.n_nominations, counts)
    padded_z = _padded(panel.sheet_nom, z, panel.n_nominations, counts)
    for n in np.unique(counts):
        rows = np.flatnonzero(counts == n)
        if n == 0:
            yield 0, rows, None, None
            continue
        t = padded_t[rows, :n]
        order = np.argsort(t, axis=1, kind="stable")
        yield int(n), rows, np.take_along_axis(t, order, 1), np.take_along_axis(padded_z[rows, :n], order, 1)


def _key_scale(largest: float, n_columns: int) -> tuple[float, int]:
    """The quantum of the sort key (1e-9, the ranking's, unless the key would not fit a double's 53
    bits exactly next to the column number) and the bits the column number takes."""
    col_bits = max(1, int(n_columns).bit_length())
    scale = 10.0 ** ORDER_DECIMALS
    while scale > 1 and (largest * scale + 2) * 2.0 ** col_bits >= 2.0 ** 53:
        scale /= 10
    return scale, col_bits


MEDIAN_COUNTING_MAX = 15


def _median_indices(idx: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The indices (into the sorted totals) of the two middle draws — positions (n+1)//2 and (n+2)//2.

    For a small n by counting: the middle index is the number of k whose count of draws <= k falls
    short of the position — n² elementwise int8 passes, cheaper than sorting along the short axis.
    """
    pos_lo, pos_hi = (n + 1) // 2, (n + 2) // 2
    if n > MEDIAN_COUNTING_MAX:
        s = np.sort(idx, axis=0)
        return s[pos_lo - 1], s[pos_hi - 1]
    lo = np.zeros(idx.shape[1:], dtype=np.int8)
    hi = np.zeros(idx.shape[1:], dtype=np.int8)
    for k in range(n - 1):
        below = (idx <= k).sum(axis=0, dtype=np.int8)
        lo += below < pos_lo
        hi += below < pos_hi
    return lo, hi


def _resample_aggregates(method: str, n: int, t: np.ndarray, zv: np.ndarray, B: int,
                         rng: np.random.Generator) -> np.ndarray:
    """(g, B) aggregates of g nominations with n sheets each: all n × g × B indices drawn at once.

    Laid out draw-major (n, g, B) so every reduction is n elementwise passes over contiguous (g, B)
    slabs (numpy reduces a short last axis an order of magnitude slower), and each nomination's B
    resamples land in one contiguous row of the result.
    """
    g = t.shape[0]
    if n == 1:
        # One sheet resampled is that sheet: draw nothing.
        one = t[:, 0] if method != "zscore" else np.clip(50 + 10 * zv[:, 0], 0, 100)
        return np.broadcast_to(one[:, None], (g, B))
    dtype = np.int8 if n < 127 else np.int32
    idx = rng.integers(0, n, size=(n, g, B), dtype=dtype)
    offsets = (np.arange(g, dtype=np.intp) * n)[:, None]
    flat_t = t.ravel()
    if method == "median":
        lo_i, hi_i = _median_indices(idx, n)
        return (np.take(flat_t, lo_i + offsets) + np.take(flat_t, hi_i + offsets)) / 2
    source = zv.ravel() if method == "zscore" else flat_t
    total = np.take(source, idx[0] + offsets)
    trim = method == "trimmed" and n >= TRIM_MIN
    if trim:
        highest, lowest = total.copy(), total.copy()
    for j in range(1, n):
        drawn = np.take(source, idx[j] + offsets)
        total += drawn
        if trim:
            np.maximum(highest, drawn, out=highest)
            np.minimum(lowest, drawn, out=lowest)
    if method == "zscore":
        return np.clip(50 + 10 * (total / n), 0, 100)
    if trim:
        return (total - highest - lowest) / (n - 2)
    return total / n


@dataclass
class Place:
    nomination_id: int
    rank: int | None  # official (point) rank; None without a counted sheet
    n_scored: int
    above: bool
    share: float | None  # of resamples above the line
    rank_lo: int | None  # 5 % quantile of the resampled ranks
    rank_hi: int | None  # 95 %
    label: str  # in | edge | out | none
    movers: list[dict] = field(default_factory=list)  # {reviewer_id, scored, to}: absence flips the side

    @property
    def label_text(self) -> str:
        return LABELS[self.label]


def bootstrap(panel: Panel, method: str, slots: int, *, resamples: int = DEFAULT_RESAMPLES,
              seed: int = DEFAULT_SEED, official_order: np.ndarray | None = None,
              z: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(share above the line, rank 5 %, rank 95 %) per nomination (NaN / 0 without a counted sheet)."""
    if method not in METHODS:
        raise ValueError(method)
    B, N = int(resamples), panel.n_nominations
    z = sheet_z(panel.totals, panel.sheet_reviewer) if z is None else z
    counts = panel.counts()
    if official_order is None:
        agg, sd, n = point_aggregates(panel, method, z=z)
        official_order = point_order(panel, agg, sd, n)
    place = ranks_from_order(official_order) - 1  # official place (0-based) of each nomination
    rng = np.random.default_rng(seed)
    # Row r = the r-th nomination in group order (by sheet count, then id), column b = resample b;
    # -1 for a nomination without a counted sheet (every aggregate is >= 0).
    values_t = np.full((N, B), -1.0)
    row_nom = np.empty(N, dtype=np.intp)
    r = 0
    for n, rows, t, zv in _sorted_groups(panel, z):
        row_nom[r:r + len(rows)] = rows
        if n > 0:
            step = max(1, CHUNK_ELEMENTS // (B * n))
            for start in range(0, len(rows), step):
                part = slice(start, start + step)
                g = len(rows[part])
                values_t[r + start:r + start + g] = _resample_aggregates(method, n, t[part], zv[part], B, rng)
        r += len(rows)
    above = np.zeros(N, dtype=np.int64)
    ranks_t = np.empty((N, B), dtype=np.int32)  # rank of row r's nomination in every resample
    scored = counts[row_nom] > 0
    places = np.arange(1, N + 1, dtype=np.int32)
    largest = float(values_t.max()) if values_t.size else 0.0
    scale, col_bits = _key_scale(largest + 1, N)  # + 1: a nomination without a sheet sits at -1
    top = np.floor(largest * scale + 0.5) + 1
    tie_break = place[row_nom].astype(np.float64)[None, :]
    for b0 in range(0, B, RANK_ROWS):
        # One exact float key per cell: (quantised aggregate, descending) then the official place, so a
        # quicksort of unique keys gives what a stable sort by the aggregate alone over the official
        # order would: a tie keeps the official order.
        q = np.floor(values_t[:, b0:b0 + RANK_ROWS].T * scale + 0.5)
        key = (top - q) * float(1 << col_bits) + tie_break
        order = np.argsort(key, axis=1)
        ranks = np.empty(key.shape, dtype=np.int32)
        np.put_along_axis(ranks, order, places[None, :], axis=1)
        above += ((ranks <= slots) & scored[None, :]).sum(axis=0)
        ranks_t[:, b0:b0 + RANK_ROWS] = ranks.T
    k_lo = max(int(np.ceil(INTERVAL[0] * B)) - 1, 0)
    k_hi = min(max(int(np.ceil(INTERVAL[1] * B)) - 1, 0), B - 1)
    part = np.partition(ranks_t, (k_lo, k_hi), axis=1)
    share = np.empty(N)
    lo = np.empty(N, dtype=np.int64)
    hi = np.empty(N, dtype=np.int64)
    share[row_nom], lo[row_nom], hi[row_nom] = above / B, part[:, k_lo], part[:, k_hi]
    share[counts == 0] = np.nan
    return share, lo, hi


# ----------------------------------------------------------------------------- leave one out, methods


def leave_one_out(panel: Panel, method: str, slots: int, z: np.ndarray | None = None) -> dict[int, list[dict]]:
    """For each nomination index: the reviewers whose absence (all their sheets of the category removed)
    moves it across the line, with the side it would go to."""
    z = sheet_z(panel.totals, panel.sheet_reviewer) if z is None else z
    agg, sd, n = point_aggregates(panel, method, z=z)
    base = above_line(ranks_from_order(point_order(panel, agg, sd, n)), n, slots)
    out: dict[int, list[dict]] = {}
    for reviewer in panel.reviewers():
        mask = panel.sheet_reviewer != reviewer
        a2, sd2, n2 = point_aggregates(panel, method, mask=mask, z=z)
        side = above_line(ranks_from_order(point_order(panel, a2, sd2, n2)), n2, slots)
        scored = np.zeros(panel.n_nominations, bool)
        scored[panel.sheet_nom[~mask]] = True
        for i in np.flatnonzero(side != base):
            out.setdefault(int(i), []).append(
                {"reviewer_id": int(reviewer), "scored": bool(scored[i]), "to": "in" if side[i] else "out"})
    return out


def method_sides(panel: Panel, slots: int, z: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Above the line (bool per nomination) under each method."""
    z = sheet_z(panel.totals, panel.sheet_reviewer) if z is None else z
    out = {}
    for method in METHODS:
        agg, sd, n = point_aggregates(panel, method, z=z)
        out[method] = above_line(ranks_from_order(point_order(panel, agg, sd, n)), n, slots)
    return out


def analyse(panel: Panel, method: str, slots: int, *, resamples: int = DEFAULT_RESAMPLES,
            seed: int = DEFAULT_SEED) -> tuple[list[Place], dict[str, np.ndarray]]:
    """Every nomination's Place (in nomination id order) and the method sides."""
    z = sheet_z(panel.totals, panel.sheet_reviewer)
    agg, sd, n = point_aggregates(panel, method, z=z)
    order = point_order(panel, agg, sd, n)
    ranks = ranks_from_order(order)
    base = above_line(ranks, n, slots)
    share, lo, hi = bootstrap(panel, method, slots, resamples=resamples, seed=seed, official_order=order, z=z)
    movers = leave_one_out(panel, method, slots, z=z)
    places = []
    for i, nid in enumerate(panel.nomination_ids):
        scored = n[i] > 0
        s = float(share[i]) if scored else None
        places.append(Place(
            nomination_id=int(nid), rank=int(ranks[i]) if scored else None, n_scored=int(n[i]), above=bool(base[i]),
            share=s, rank_lo=int(lo[i]) if scored else None, rank_hi=int(hi[i]) if scored else None,
            label=label_of(s), movers=movers.get(i, []),
        ))
    return places, method_sides(panel, slots, z=z)
