"""The robustness bootstrap, leave-one-reviewer-out and method sides: the vectorised bootstrap equals a
plain loop over the same draws, unanimous reviewers give 100 % 稳定, pure noise gives mostly 临界, the
point ranking is the SQL ranking, and one seed gives the same shares on SQLite and PostgreSQL."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from app import create_app
from app.extensions import db
from app.ranking import engine as ranking
from app.stats import queries as stats_queries
from app.stats import report, robustness
from app.stats.robustness import Panel
from tests.conftest import PG_URL, _base_config, _pg_reset
from tests.ranking_fixtures import Scenario
from tests.unit.test_ranking_backends import build_round, current_round_id


def _panel(rows: list[list[float]], reviewers: list[list[int]] | None = None) -> Panel:
    noms, who, values = [], [], []
    for i, totals in enumerate(rows):
        for j, t in enumerate(totals):
            noms.append(i)
            who.append(reviewers[i][j] if reviewers else j + 1)
            values.append(t)
    return Panel.from_totals(np.arange(1, len(rows) + 1), noms, who, values)


def _noisy(n_noms: int, n_reviewers: int, seed: int, spread: float = 8.0, noise: float = 6.0) -> Panel:
    rng = np.random.default_rng(seed)
    quality = rng.normal(75, spread, n_noms)
    totals = np.round((quality[:, None] + rng.normal(0, noise, (n_noms, n_reviewers))) * 2) / 2
    # a few nominations with fewer sheets, one with a single sheet, one with none
    rows = [list(r) for r in totals]
    rows[3], rows[7], rows[11] = rows[3][:3], rows[7][:1], []
    return _panel(rows)


def _reference(panel: Panel, method: str, slots: int, B: int, seed: int):
    """The same draws as bootstrap() (group by sheet count, one chunk each), aggregated and ranked with
    plain Python: statistics.median, sorted() with the official order as the tie-break."""
    z = robustness.sheet_z(panel.totals, panel.sheet_reviewer)
    agg, sd, n = robustness.point_aggregates(panel, method, z=z)
    order = list(robustness.point_order(panel, agg, sd, n))
    place = {nom: k for k, nom in enumerate(order)}
    rng = np.random.default_rng(seed)
    N = panel.n_nominations
    values = np.full((B, N), -np.inf)
    for count, rows, t, zv in robustness._sorted_groups(panel, z):
        if count == 0:
            continue
        if count == 1:
            for g, nom in enumerate(rows):
                v = t[g, 0] if method != "zscore" else min(100, max(0, 50 + 10 * zv[g, 0]))
                values[:, nom] = np.floor(v * 1e9 + 0.5)
            continue
        assert robustness.CHUNK_ELEMENTS // (B * count) >= len(rows)  # one chunk: the same stream
        idx = rng.integers(0, count, size=(count, len(rows), B), dtype=np.int8)
        for b in range(B):
            for g, nom in enumerate(rows):
                draw = [int(i) for i in idx[:, g, b]]
                ts = [t[g, i] for i in draw]
                if method == "mean" or (method == "trimmed" and count < robustness.TRIM_MIN):
                    v = sum(ts) / count
                elif method == "trimmed":
                    v = (sum(ts) - max(ts) - min(ts)) / (count - 2)
                elif method == "median":
                    v = statistics.median(ts)
                else:
                    v = min(100, max(0, 50 + 10 * sum(zv[g, i] for i in draw) / count))
                values[b, nom] = np.floor(v * 1e9 + 0.5)
    above = np.zeros(N)
    ranks = np.zeros((B, N), dtype=int)
    for b in range(B):
        ranked = sorted(range(N), key=lambda nom: (-values[b, nom], place[nom]))
        for r, nom in enumerate(ranked, start=1):
            ranks[b, nom] = r
            above[nom] += r <= slots and n[nom] > 0
    return above / B, ranks


@pytest.mark.parametrize("method", robustness.METHODS)
def test_vectorised_bootstrap_equals_a_plain_loop(method):
    panel = _noisy(24, 6, seed=5)
    B, slots, seed = 60, 8, 99
    share, lo, hi = robustness.bootstrap(panel, method, slots, resamples=B, seed=seed)
    ref_share, ref_ranks = _reference(panel, method, slots, B, seed)
    scored = panel.counts() > 0
    np.testing.assert_array_equal(share[scored], ref_share[scored])
    assert np.isnan(share[~scored]).all()
    # inverted-CDF quantiles of the resampled ranks
    srt = np.sort(ref_ranks, axis=0)
    np.testing.assert_array_equal(lo, srt[int(np.ceil(0.05 * B)) - 1])
    np.testing.assert_array_equal(hi, srt[int(np.ceil(0.95 * B)) - 1])


def test_same_seed_same_shares_other_seed_other_shares():
    panel = _noisy(40, 7, seed=1)
    a = robustness.bootstrap(panel, "trimmed", 12, resamples=200, seed=3)
    b = robustness.bootstrap(panel, "trimmed", 12, resamples=200, seed=3)
    c = robustness.bootstrap(panel, "trimmed", 12, resamples=200, seed=4)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(np.nan_to_num(a[0]), np.nan_to_num(c[0]))


def test_unanimous_reviewers_give_every_place_stable():
    totals = [95, 90, 90, 88, 80, 80, 75, 70, 65, 60]
    panel = _panel([[t] * 7 for t in totals])
    places, _ = robustness.analyse(panel, "trimmed", 4, resamples=300)
    assert {p.label for p in places} == {"in", "out"}
    assert [p.share for p in places] == [1.0] * 4 + [0.0] * 6
    assert all(p.rank_lo == p.rank == p.rank_hi for p in places)
    assert all(not p.movers for p in places)


def test_pure_noise_gives_mostly_edge():
    rng = np.random.default_rng(11)
    panel = _panel([list(np.round(rng.uniform(50, 100, 7) * 2) / 2) for _ in range(60)])
    places, _ = robustness.analyse(panel, "mean", 20, resamples=500)
    edge = sum(p.label == "edge" for p in places)
    assert edge / len(places) > 0.5, edge


def test_labels_and_thresholds():
    assert [robustness.label_of(x) for x in (1.0, 0.9, 0.899, 0.5, 0.101, 0.1, 0.0, None)] == \
        ["in", "in", "edge", "edge", "edge", "out", "out", "none"]


def test_leave_one_reviewer_out_names_the_reviewer_who_moves_it():
    # Slots 2. B's 85 rests on reviewer 3's 95; without reviewer 3, B (80) falls below C (84).
    panel = _panel([[90, 90, 90], [80, 80, 95], [84, 84, 84], [60, 60, 60]])
    places, _ = robustness.analyse(panel, "mean", 2, resamples=100)
    a, b, c, d = places
    assert [p.above for p in places] == [True, True, False, False]
    assert b.movers == [{"reviewer_id": 3, "scored": True, "to": "out"}]
    assert c.movers == [{"reviewer_id": 3, "scored": True, "to": "in"}]
    assert a.movers == [] and d.movers == []


def test_method_sides_differ_where_the_methods_do():
    # One harsh outlier sinks X under the mean but not under the trimmed mean or the median.
    rows = [[90, 90, 90, 90, 40], [85, 85, 85, 85, 85], [80, 80, 80, 80, 80]]
    panel = _panel(rows)
    sides = robustness.method_sides(panel, 1)
    assert sides["mean"].tolist() == [False, True, False]
    assert sides["trimmed"].tolist() == [True, False, False]
    assert sides["median"].tolist() == [True, False, False]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_point_ranking_is_the_sql_ranking(app, backend):
    with app.app_context():
        build_round()
        round_id = current_round_id()
        data = stats_queries.panel(round_id, "activity")
        for method in robustness.METHODS:
            sql_rows = ranking.compute(round_id, "activity", method=method)
            ours = robustness.point_ranks(data.panel, method)
            by_id = dict(zip(data.panel.nomination_ids.tolist(), ours.tolist(), strict=True))
            assert {r.nomination_id: r.rank for r in sql_rows} == by_id, method


def _shares(url: str, tmp_path) -> dict:
    app = create_app(_base_config(tmp_path, url))
    with app.app_context():
        db.create_all()
        build_round()
        data = report.build(current_round_id(), "activity", resamples=400, seed=21)
        db.session.remove()
        db.engine.dispose()
    return {k: v for k, v in data.items() if k not in ("computed_at", "computed_at_text")}


@pytest.mark.postgres
def test_the_same_seed_gives_the_same_shares_on_sqlite_and_postgresql(tmp_path):
    _pg_reset(PG_URL)
    pg = _shares(PG_URL, tmp_path)
    sqlite = _shares("sqlite:///" + str(tmp_path / "same.sqlite3"), tmp_path)
    assert sqlite == pg
    shares = [p["share"] for p in sqlite["places"].values() if p["share"] is not None]
    assert 0 < sum(0.1 < s < 0.9 for s in shares) < len(shares)  # the data has 临界 places to compare


def test_a_unanimous_round_in_the_database_is_all_stable_with_agreement_one(app):
    with app.app_context():
        s = Scenario()
        s.round.slots_activity = 3
        db.session.commit()
        panel = s.panel(5)
        for i, total in enumerate([92, 88, 88, 80, 75, 70, 66, 60]):
            s.scored(f"A{i}", [total] * 5, panel)
        data = report.build(s.round.id, "activity", resamples=200)
        labels = [p["label"] for p in data["places"].values()]
        assert labels.count("in") == 3 and labels.count("out") == 5 and "edge" not in labels
        total = data["agreement"][0]
        assert total["icc"]["icc2_1"] == pytest.approx(1) and total["alpha"] == pytest.approx(1)
        assert total["kendall_w"] == pytest.approx(1)
        assert data["sensitivity"]["changed"] == []


def test_the_sort_key_stays_exact_for_large_totals():
    scale, bits = robustness._key_scale(1e6 + 1, 7000)
    assert (1e6 * scale + 2) * 2.0 ** bits < 2.0 ** 53 and scale >= 1e4
    # Unanimous reviewers with totals a rubric of 1,000,000 points could give: still a clean cut.
    totals = [999_999.5, 999_999.0, 999_998.5, 999_998.0, 10.0]
    places, _ = robustness.analyse(_panel([[t] * 3 for t in totals]), "mean", 2, resamples=50)
    assert [p.share for p in places] == [1.0, 1.0, 0.0, 0.0, 0.0]
