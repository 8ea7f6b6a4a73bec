"""The ranking methods against hand-computed cases, each on SQLite and on PostgreSQL."""

from __future__ import annotations

import math

import pytest

from app.extensions import db
from app.models import Nomination
from app.ranking import engine as ranking
from tests.ranking_fixtures import Scenario

pytestmark = pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield
        db.session.remove()


def by_title(rows):
    return {r.title: r for r in rows}


def order(rows):
    return [r.title for r in rows]


@pytest.fixture
def classic(ctx):
    """Totals chosen so mean, trimmed and median disagree and ties need every tie-break step."""
    s = Scenario()
    rs = s.panel(6)
    s.scored("N1", [80, 70, 90, 60, 100], rs)  # mean 80, trimmed 80, median 80, n=5
    s.scored("N2", [85, 85, 40, 85, 85], rs)  # mean 76, trimmed 85 (drop 40 and one 85), median 85
    s.scored("N3", [90, 70], rs)  # n=2 < 5: trimmed is the plain mean 80
    s.scored("N4", [80, 80, 80, 80], rs)  # 80, n=4, stdev 0
    s.scored("N7", [75, 85, 80, 80], rs)  # 80, n=4, stdev > 0: after N4
    s.scored("N8", [80, 80, 80, 80], rs)  # same as N4 in every respect: the higher id goes after
    s.nomination("N5")  # nobody scored it: last
    gone = s.scored("N6", [100, 100, 100, 100, 100], rs)
    gone.status = "withdrawn"
    db.session.commit()
    return s


def test_mean_ranks_with_every_tie_break(classic):
    rows = ranking.compute(classic.round.id, "activity", method="mean")
    assert order(rows) == ["N1", "N4", "N8", "N7", "N3", "N2", "N5"]
    assert [r.rank for r in rows] == [1, 2, 3, 4, 5, 6, 7]
    n1 = by_title(rows)["N1"]
    assert n1.aggregate == 80 and n1.mean == 80 and n1.n_scored == 5 and n1.n_assigned == 5
    assert n1.stdev == pytest.approx(math.sqrt(1000 / 4))  # sample stdev
    assert n1.spread == 40
    assert by_title(rows)["N3"].stdev == pytest.approx(math.sqrt(200))
    assert by_title(rows)["N4"].stdev == 0


def test_withdrawn_nominations_are_excluded(classic):
    rows = ranking.compute(classic.round.id, "activity", method="mean")
    assert "N6" not in order(rows)


def test_trimmed_drops_one_high_and_one_low_only_from_five(classic):
    rows = ranking.compute(classic.round.id, "activity", method="trimmed")
    t = by_title(rows)
    assert t["N2"].trimmed == 85  # (85+85+85)/3: one 85 and the 40 dropped
    assert t["N1"].trimmed == 80  # (70+80+90)/3
    assert t["N3"].trimmed == 80  # n = 2: plain mean
    assert t["N7"].trimmed == 80  # n = 4: plain mean, nothing dropped
    assert order(rows) == ["N2", "N1", "N4", "N8", "N7", "N3", "N5"]
    assert t["N2"].rank_mean == 6 and t["N2"].rank_trimmed == 1


def test_median_of_odd_and_even_counts(ctx):
    s = Scenario()
    rs = s.panel(5)
    s.scored("odd", [60, 95, 70], rs)  # middle value 70
    s.scored("even", [60, 95, 70, 75], rs)  # (70 + 75) / 2
    s.scored("one", [66.5], rs)
    rows = by_title(ranking.compute(s.round.id, "activity", method="median"))
    assert rows["odd"].median == 70
    assert rows["even"].median == 72.5
    assert rows["one"].median == 66.5
    assert rows["even"].rank == 1 and rows["odd"].rank == 2 and rows["one"].rank == 3
    assert rows["even"].rank_median == 1


def test_per_criterion_means(classic):
    n1 = by_title(ranking.compute(classic.round.id, "activity"))["N1"]
    # greedy splits of 80, 70, 90, 60, 100 over content 30 / format 20 / influence 30 / response 20
    assert n1.criterion_means == {"content": 30, "format": 20, "influence": 24, "response": 6}
    assert by_title(ranking.compute(classic.round.id, "activity"))["N5"].criterion_means == {}


def test_default_method_is_the_rounds(classic):
    classic.round.method = "median"
    db.session.commit()
    rows = ranking.compute(classic.round.id, "activity")
    assert all(r.aggregate == r.median for r in rows)


def test_zscore_standardizes_each_reviewer_and_a_single_score_counts_as_zero(ctx):
    s = Scenario()
    a, b, c = s.panel(3)
    x, y, z = s.nomination("X"), s.nomination("Y"), s.nomination("Z")
    s.sheet(a, x, 90)  # a: mean 80, population sd 10 → z(X) = 1, z(Y) = -1
    s.sheet(a, y, 70)
    s.sheet(b, x, 60)  # b: mean 60, sd sqrt(200/3) → z(X) = 0, z(Y) = -1.2247, z(Z) = +1.2247
    s.sheet(b, y, 50)
    s.sheet(b, z, 70)
    s.sheet(c, z, 40)  # c scored once: z = 0
    rows = ranking.compute(s.round.id, "activity", method="zscore")
    k = math.sqrt(1.5)  # 10 / sqrt(200/3)
    expect = {"X": 50 + 10 * (1 + 0) / 2, "Y": 50 + 10 * (-1 - k) / 2, "Z": 50 + 10 * (k + 0) / 2}
    got = by_title(rows)
    for title, value in expect.items():
        assert got[title].zscore == pytest.approx(value, abs=1e-9)
    assert order(rows) == ["Z", "X", "Y"]  # while the raw mean says X (75), Y (60), Z (55)
    assert [got[t].rank_mean for t in ("X", "Y", "Z")] == [1, 2, 3]
    assert [got[t].rank_zscore for t in ("Z", "X", "Y")] == [1, 2, 3]


def test_zscore_reviewer_without_spread_contributes_zero(ctx):
    s = Scenario()
    flat, other = s.panel(2)
    x, y = s.nomination("X"), s.nomination("Y")
    s.sheet(flat, x, 70)
    s.sheet(flat, y, 70)
    s.sheet(other, x, 90)
    s.sheet(other, y, 50)
    got = by_title(ranking.compute(s.round.id, "activity", method="zscore"))
    assert got["X"].zscore == pytest.approx(55)  # (0 + 1) / 2
    assert got["Y"].zscore == pytest.approx(45)


def test_zscore_is_clamped_to_0_100(ctx):
    s = Scenario()
    r = s.reviewer()
    for i in range(26):
        s.sheet(r, s.nomination(f"low{i}"), 10)
    s.sheet(r, s.nomination("outlier"), 100)  # z ≈ 5.1 → 101 before clamping
    got = by_title(ranking.compute(s.round.id, "activity", method="zscore"))
    assert got["outlier"].zscore == 100
    assert got["low0"].zscore == pytest.approx(50 + 10 * (10 - 360 / 27) / math.sqrt(12600 / 27 - (360 / 27) ** 2))


def test_drafts_toggle_counts_only_complete_drafts(ctx):
    s = Scenario()
    a, b, c = s.panel(3)
    nom = s.nomination("N")
    s.sheet(a, nom, 80)
    s.sheet(b, nom, 60, status="draft")
    s.sheet(c, nom, values={"content": 30, "format": 20, "influence": 30}, status="draft")  # incomplete
    official = ranking.compute(s.round.id, "activity")[0]
    assert (official.n_scored, official.mean, official.n_assigned) == (1, 80, 3)
    with_drafts = ranking.compute(s.round.id, "activity", include_drafts=True)[0]
    assert (with_drafts.n_scored, with_drafts.mean) == (2, 70)


def test_recused_and_unassigned_reviewers_do_not_count(ctx):
    s = Scenario()
    own = s.reviewer("own", affiliation=s.nominator)  # the nomination's own unit (回避)
    declared, ok, gone = s.panel(3)
    nom = s.nomination("N")
    s.sheet(own, nom, 100)
    s.sheet(declared, nom, 100)
    s.recuse(declared, nom)
    s.sheet(ok, nom, 60)
    s.sheet(gone, nom, 100, assign=False)  # a sheet without an assignment
    row = ranking.compute(s.round.id, "activity")[0]
    assert (row.n_assigned, row.n_scored, row.mean) == (1, 1, 60)


def test_flag_when_a_reviewer_is_far_from_the_rest(ctx):
    s = Scenario()
    rs = s.panel(4)
    s.scored("calm", [80, 82, 78, 85], rs)
    s.scored("split", [80, 82, 78, 60], rs)  # 60 vs mean of the others 80: 20 ≥ 15 % of 100
    s.scored("pair", [90, 76], rs)  # two reviewers 14 apart: below the threshold
    got = by_title(ranking.compute(s.round.id, "activity", method="mean"))
    assert not got["calm"].flagged and got["split"].flagged and not got["pair"].flagged
    assert got["split"].max_deviation == pytest.approx(20)


def test_categories_are_ranked_separately(ctx):
    s = Scenario()
    rs = s.panel(2)
    s.scored("activity-1", [70], rs)
    s.scored("unit-1", [90], rs, category="unit")
    assert order(ranking.compute(s.round.id, "activity")) == ["activity-1"]
    assert order(ranking.compute(s.round.id, "unit")) == ["unit-1"]


def test_unknown_method_or_category_is_refused(classic):
    from app.core.errors import UserError

    with pytest.raises(UserError):
        ranking.compute(classic.round.id, "activity", method="best")
    with pytest.raises(UserError):
        ranking.compute(classic.round.id, "prize")


def test_version_and_live_state(classic):
    from app.core.database import write_transaction
    from app.rounds import phases as rounds

    v = ranking.version(classic.round.id, "activity")
    with write_transaction():
        rounds.bump_ranking(classic.round.id, "activity")
    assert ranking.version(classic.round.id, "activity") == v + 1
    assert ranking.version(classic.round.id, "unit") == v
    state = ranking.live_state("activity")
    assert state.id == classic.round.id and state.version == v + 1 and state.slots("activity") == 40


def test_reviewer_totals_breakdown(ctx):
    s = Scenario()
    a, b, c, own = s.panel(3) + [s.reviewer("own", affiliation=s.nominator)]
    nom = s.nomination("N")
    s.sheet(a, nom, 75, comment="很好")
    s.sheet(b, nom, values={"content": 20, "format": 10}, status="draft", comment="草稿意见")
    s.assign(c, nom)
    s.assign(own, nom)
    rows = {r.username: r for r in ranking.reviewer_totals(s.round.id, nom.id)}
    assert rows["r1"].status == "submitted" and rows["r1"].counted and rows["r1"].total == 75
    assert rows["r1"].scores == {"content": 30, "format": 20, "influence": 25, "response": 0}
    assert rows["r1"].comment == "很好" and rows["r1"].submitted_at is not None
    assert rows["r2"].status == "draft" and rows["r2"].scores == {} and rows["r2"].comment == ""
    assert rows["r3"].status == "missing" and rows["own"].status == "recused"
    drafts = {r.username: r for r in ranking.reviewer_totals(s.round.id, nom.id, include_drafts=True)}
    assert drafts["r2"].scores["content"] == 20 and drafts["r2"].scores["influence"] is None
    assert not drafts["r2"].complete and not drafts["r2"].counted and drafts["r2"].total is None


def test_severity_shows_the_harsh_and_the_lenient(ctx):
    s = Scenario()
    fair, kind, harsh = s.panel(3)
    for i, base in enumerate([60, 70, 80, 90]):
        nom = s.nomination(f"N{i}")
        s.sheet(fair, nom, base)
        s.sheet(kind, nom, base + 8)
        s.sheet(harsh, nom, base - 8)
    got = {r.username: r for r in ranking.severity(s.round.id, "activity")}
    assert got["r1"].offset == pytest.approx(0) and got["r1"].leaning is None
    assert got["r2"].offset == pytest.approx(12) and got["r2"].leaning == "lenient"  # 8 - (0 - 8) / 2
    assert got["r3"].offset == pytest.approx(-12) and got["r3"].leaning == "harsh"
    assert got["r2"].mean == 83 and got["r1"].n == 4
    assert got["r1"].stdev == pytest.approx(math.sqrt(125))  # population sd of 60, 70, 80, 90
    assert got["r1"].panel_mean == pytest.approx(75)


def test_progress_per_reviewer_and_overall(ctx):
    s = Scenario()
    a, b = s.panel(2)
    own = s.reviewer("own", affiliation=s.nominator)
    n1, n2, n3 = s.nomination("N1"), s.nomination("N2"), s.nomination("N3")
    s.sheet(a, n1, 80)
    s.sheet(a, n2, 70, status="draft")
    s.assign(a, n3)
    s.sheet(b, n1, 80)
    s.assign(own, n1)  # recused by affiliation: not part of the work
    p = ranking.progress(s.round.id, "activity")
    assert (p.assigned, p.submitted, p.drafts) == (4, 2, 1)
    assert (p.nominations, p.nominations_complete, p.nominations_started) == (3, 1, 1)
    per = {r.username: r for r in p.reviewers}
    assert set(per) == {"r1", "r2"}
    assert (per["r1"].assigned, per["r1"].submitted, per["r1"].drafts, per["r1"].missing) == (3, 1, 1, 1)
    assert p.percent == 50


def test_empty_category(ctx):
    s = Scenario()
    assert ranking.compute(s.round.id, "unit") == []
    assert ranking.severity(s.round.id, "unit") == []
    p = ranking.progress(s.round.id, "unit")
    assert (p.assigned, p.nominations, p.reviewers) == (0, 0, [])


def test_no_score_rows_in_python(classic, monkeypatch):
    """compute() reads aggregates only: one row per nomination, never a Score object."""
    from sqlalchemy import event

    from app.models import Score

    loaded = []
    listener = lambda target, context: loaded.append(target)  # noqa: E731
    event.listen(Score, "load", listener)
    try:
        rows = ranking.compute(classic.round.id, "activity")
    finally:
        event.remove(Score, "load", listener)
    assert loaded == [] and len(rows) == db.session.query(Nomination).filter_by(status="active").count()
