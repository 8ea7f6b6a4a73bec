"""The kept ranking (app/ranking/upkeep.py) equals the one-statement computation from the scores after
every kind of write that moves a ranking, on SQLite and PostgreSQL; a fold touches only what changed;
concurrent polls of a new version — in one process or in five — compute it once."""

from __future__ import annotations

import random
import threading
from types import SimpleNamespace

import pytest
from sqlalchemy import select, text

from app.accounts import operations as accounts
from app.core.errors import UserError
from app.extensions import db
from app.intake import nominations as intake
from app.models import Assignment, Nomination, RankingChange, ReviewSheet, User
from app.ranking import engine as ranking
from app.ranking import kept, upkeep
from app.review import assignments, recusals, scoring
from tests.factories import make_nomination, make_nominator, make_round
from tests.review_fixtures import HX, quick_user, signed_in

BOTH = pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
FIELDS = ("nomination_id", "rank", "n_scored", "n_assigned", "mean", "trimmed", "median", "zscore", "rank_mean",
          "rank_trimmed", "rank_median", "rank_zscore", "stdev", "spread", "flagged", "max_deviation",
          "nominator_id", "title")


def _world(n_noms: int = 14, n_reviewers: int = 7) -> SimpleNamespace:
    rnd = make_round("reviewing")
    units = [make_nominator("长沙市科协", "city", 1), make_nominator("省卫生健康委员会", "member", 20),
             make_nominator("省营养学会", "society", 30)]
    noms = [make_nomination(rnd, units[i % 3], f"活动{i:02d}").id for i in range(n_noms)]
    reviewers = [quick_user(f"r{i}", affiliation_id=units[1].id if i == 0 else None).id for i in range(n_reviewers)]
    admin = quick_user("admin1", role="admin")
    quick_user("chair1", role="chair")
    db.session.add_all(Assignment(reviewer_id=r, nomination_id=n) for r in reviewers for n in noms)
    db.session.commit()
    rubric = scoring.target(noms[0]).rubric
    return SimpleNamespace(round_id=rnd.id, noms=noms, reviewers=reviewers, admin=admin.id, units=[u.id for u in units],
                           rubric=rubric)


def _values(w, rng: random.Random, full: bool = True) -> dict:
    level = rng.choice([0.55, 0.7, 0.7, 0.8, 0.8, 0.9, 1.0])
    out = {}
    for c in w.rubric:
        if not full and rng.random() < 0.5:
            continue
        out[c.id] = str(min(c.max_score, round(c.max_score * min(1.0, level + rng.choice([-0.1, 0, 0, 0.05])) * 2) / 2))
    return out


def _step(w, rng: random.Random) -> str:
    """One random write through the real operation; an operation that refuses (a submitted sheet, a
    recused pair, a pair with work…) changes nothing, which the comparison checks as well."""
    reviewer = rng.choice(w.reviewers)
    nom = rng.choice(w.noms)
    admin = db.session.get(User, w.admin)
    roll = rng.random()
    try:
        if roll < 0.45:
            state = scoring.sheet_state(reviewer, nom)
            scoring.save_sheet(db.session.get(User, reviewer), nom, _values(w, rng, full=rng.random() < 0.8), "",
                               state.version, submit=rng.random() < 0.6)
            return "save"
        if roll < 0.55:
            sheet = db.session.scalar(select(ReviewSheet).where(ReviewSheet.status == "submitted").limit(1)
                                      .offset(rng.randint(0, 3)))
            if sheet is not None:
                scoring.reopen_sheet(sheet.id, "重新评分", admin)
            return "reopen"
        if roll < 0.65:
            if recusals.declared(reviewer, nom):
                recusals.withdraw(reviewer, nom, actor=admin)
            else:
                recusals.declare_on_behalf(reviewer, nom, "亲属关系", actor=admin)
            return "recusal"
        if roll < 0.75:
            assigned = db.session.scalar(select(Assignment.id).where(Assignment.reviewer_id == reviewer,
                                                                     Assignment.nomination_id == nom)) is not None
            assignments.set_assignment(reviewer, nom, not assigned, reason="调整分配", actor=admin)
            return "assignment"
        if roll < 0.83:
            if db.session.get(Nomination, nom).status == "active":
                intake.withdraw(nom, "推荐单位撤回", actor=admin)
            else:
                intake.reinstate(nom, "恢复", actor=admin)
            return "status"
        if roll < 0.88:
            user = db.session.get(User, reviewer)
            unit = rng.choice([None, *w.units])
            accounts.update_user(reviewer, display_name=user.display_name, role="reviewer", affiliation_id=unit,
                                 actor=admin)
            return "affiliation"
        # A change the aggregates never read (only the version moves).
        from app.core.database import write_transaction
        from app.rounds import phases as rounds

        with write_transaction():
            rounds.bump_ranking(w.round_id, "activity", [])
        return "nothing"
    except UserError:
        return "refused"
    finally:
        db.session.remove()


def _expected(round_id: int, method: str, drafts: bool) -> list[dict]:
    rows = ranking.compute(round_id, "activity", method=method, include_drafts=drafts)
    return [_plain(r) for r in rows], {r.nomination_id: r.criterion_means for r in rows}


def _plain(r) -> dict:
    return {f: (round(getattr(r, f), 9) if isinstance(getattr(r, f), float) else getattr(r, f)) for f in FIELDS}


def _kept(round_id: int, method: str, drafts: bool):
    crit = ranking.criteria_of(round_id, "activity")
    upkeep.ensure(round_id, "activity", drafts, crit)
    rows = kept.rows(round_id, "activity", crit, method=method, drafts=drafts)
    means = kept.with_criterion_means(rows, round_id, "activity", drafts=drafts, criteria=crit)
    return [_plain(r) for r in rows], {r.nomination_id: r.criterion_means for r in means}


def _assert_same(round_id: int) -> None:
    for drafts in (False, True):
        for method in ("mean", "trimmed", "median", "zscore"):
            want, want_means = _expected(round_id, method, drafts)
            got, got_means = _kept(round_id, method, drafts)
            assert got == want, (method, drafts)
            assert {k: {c: round(v, 9) for c, v in m.items()} for k, m in got_means.items()} == \
                   {k: {c: round(v, 9) for c, v in m.items()} for k, m in want_means.items()}, (method, drafts)


@BOTH
def test_the_kept_ranking_equals_a_computation_from_the_scores_after_every_write(app):
    with app.app_context():
        w = _world()
        rng = random.Random(15)
        _assert_same(w.round_id)  # the first fold computes the whole category
        kinds: dict[str, int] = {}
        for i in range(90):
            kind = _step(w, rng)
            kinds[kind] = kinds.get(kind, 0) + 1
            if i % 3 == 2:
                _assert_same(w.round_id)
        _assert_same(w.round_id)
        # the random walk really went through every kind of write
        assert {"save", "reopen", "recusal", "assignment", "status", "affiliation", "nothing"} <= set(kinds), kinds
        assert kinds["save"] >= 15, kinds


def test_a_save_folds_in_only_its_nomination(app, monkeypatch):
    with app.app_context():
        w = _world()
        rng = random.Random(3)
        for r in w.reviewers[1:5]:  # r0 belongs to a nominating unit (回避)
            for n in w.noms:
                scoring.save_sheet(db.session.get(User, r), n, _values(w, rng), "", 0, submit=True)
        crit = ranking.criteria_of(w.round_id, "activity")
        upkeep.ensure(w.round_id, "activity", False, crit)
        folds: list = []
        real = upkeep._fold
        monkeypatch.setattr(upkeep, "_fold", lambda scope, c, touched: (folds.append(touched), real(scope, c, touched)))
        scoring.save_sheet(db.session.get(User, w.reviewers[5]), w.noms[3], _values(w, rng), "", 0, submit=True)
        upkeep.ensure(w.round_id, "activity", False, crit)
        assert folds == [[w.noms[3]]]
        # nothing changed since: no fold at all, one read
        upkeep.ensure(w.round_id, "activity", False, crit)
        assert len(folds) == 1
        # a phase-wide bump (no nomination named) recomputes the category whole
        from app.core.database import write_transaction
        from app.rounds import phases as rounds

        with write_transaction():
            rounds.bump_ranking(w.round_id, "activity")
        upkeep.ensure(w.round_id, "activity", False, crit)
        assert folds[-1] is None
        _assert_same(w.round_id)


def test_changes_every_mark_has_passed_are_pruned(app):
    with app.app_context():
        w = _world(n_noms=4, n_reviewers=3)
        crit = ranking.criteria_of(w.round_id, "activity")
        rng = random.Random(1)
        for r in w.reviewers:
            scoring.save_sheet(db.session.get(User, r), w.noms[0], _values(w, rng), "", 0, submit=True)
        upkeep.ensure(w.round_id, "activity", False, crit)
        upkeep.ensure(w.round_id, "activity", True, crit)
        assert db.session.scalar(select(db.func.count(RankingChange.id))) == 0
        scoring.save_sheet(db.session.get(User, w.reviewers[1]), w.noms[1], _values(w, rng), "", 0)
        upkeep.ensure(w.round_id, "activity", True, crit)
        # the submitted-only ranking has not read it yet: kept for it
        assert db.session.scalar(select(db.func.count(RankingChange.id))) == 1
        upkeep.ensure(w.round_id, "activity", False, crit)
        assert db.session.scalar(select(db.func.count(RankingChange.id))) == 0


@BOTH
def test_a_mark_left_far_behind_no_longer_holds_the_change_log_and_folds_whole(app, monkeypatch):
    """The ranking with drafts, opened once and never again, must not keep every later save's change."""
    monkeypatch.setattr(upkeep, "KEEP_VERSIONS", 3)
    with app.app_context():
        w = _world(n_noms=6, n_reviewers=3)
        crit = ranking.criteria_of(w.round_id, "activity")
        rng = random.Random(5)
        upkeep.ensure(w.round_id, "activity", False, crit)
        upkeep.ensure(w.round_id, "activity", True, crit)
        for i in range(3):
            scoring.save_sheet(db.session.get(User, w.reviewers[i]), w.noms[i], _values(w, rng), "", 0)
            upkeep.ensure(w.round_id, "activity", False, crit)
        # three versions behind: still held for the drafts view
        assert db.session.scalar(select(db.func.count(RankingChange.id))) == 3
        for i in range(3):
            scoring.save_sheet(db.session.get(User, w.reviewers[i]), w.noms[i + 3], _values(w, rng), "", 0,
                               submit=True)
            upkeep.ensure(w.round_id, "activity", False, crit)
        assert db.session.scalar(select(db.func.count(RankingChange.id))) == 0
        drafts_mark = db.session.execute(text(
            "SELECT version FROM ranking_marks WHERE round_id = :r AND drafts = :d"), {"r": w.round_id, "d": True}).scalar()
        assert drafts_mark == -1
        folds: list = []
        real = upkeep._fold
        monkeypatch.setattr(upkeep, "_fold", lambda scope, c, touched: (folds.append(touched), real(scope, c, touched)))
        upkeep.ensure(w.round_id, "activity", True, crit)
        assert folds == [None]
        _assert_same(w.round_id)


def test_a_rubric_change_recomputes_whole(app):
    with app.app_context():
        w = _world(n_noms=3, n_reviewers=3)
        crit = ranking.criteria_of(w.round_id, "activity")
        upkeep.ensure(w.round_id, "activity", False, crit)
        changed = [ranking.CriterionInfo(c.id, c.code, c.name, c.max_score + 5) for c in crit]
        before = upkeep.computations(w.round_id)
        upkeep.ensure(w.round_id, "activity", False, changed)
        assert upkeep.computations(w.round_id) == before + 1


# --- one computation per version ---------------------------------------------------------------


def _scored_world(app):
    with app.app_context():
        w = _world(n_noms=30, n_reviewers=5)
        rng = random.Random(9)
        for r in w.reviewers[1:4]:  # r0 belongs to a nominating unit (回避)
            for n in w.noms:
                scoring.save_sheet(db.session.get(User, r), n, _values(w, rng), "", 0, submit=True)
        db.session.remove()
        return w


def _save(app, w, nomination_id: int) -> None:
    with app.app_context():
        scoring.save_sheet(db.session.get(User, w.reviewers[4]), nomination_id,
                           _values(w, random.Random(nomination_id)), "", 0, submit=True)
        db.session.remove()


def _slow_fold(monkeypatch, delay: float = 0.2):
    """The real fold, made slow so concurrent polls overlap it (the assertions hold either way)."""
    import time

    real = upkeep._fold

    def slow(*args):
        time.sleep(delay)
        return real(*args)

    monkeypatch.setattr(upkeep, "_fold", slow)


def _poll_at_once(clients, url="/rankings/activity") -> list:
    barrier = threading.Barrier(len(clients))
    out: list = [None] * len(clients)

    def poll(i, client):
        barrier.wait(10)
        out[i] = client.get(url, headers=HX)

    threads = [threading.Thread(target=poll, args=(i, c)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def _assert_same_app(app, w) -> None:
    with app.app_context():
        _assert_same(w.round_id)
        db.session.remove()


def _computations(app, w) -> int:
    with app.app_context():
        n = upkeep.computations(w.round_id)
        db.session.remove()
        return n


@BOTH
def test_five_concurrent_polls_of_a_new_version_compute_once(app, monkeypatch):
    w = _scored_world(app)
    chairs = [signed_in(app, "chair1") for _ in range(5)]
    assert chairs[0].get("/rankings/activity", headers=HX).status_code == 200  # the first, whole fold
    _slow_fold(monkeypatch)
    for nom in w.noms[:2]:
        _save(app, w, nom)  # a new version
        before = _computations(app, w)
        answers = _poll_at_once(chairs)
        assert [r.status_code for r in answers] == [200] * 5
        assert _computations(app, w) == before + 1
        assert len({r.headers["ETag"] for r in answers}) == 1
    # a poll between changes: the ETag answers 304, nothing is computed or read
    again = chairs[0].get("/rankings/activity", headers={**HX, "If-None-Match": answers[0].headers["ETag"]})
    assert again.status_code == 304
    assert _computations(app, w) == before + 1


@BOTH
def test_concurrent_first_polls_of_a_never_ranked_category_compute_once(app, monkeypatch, backend):
    """The first fold is claimed like any other (its mark row is written first, on its own): the polls
    that arrive meanwhile wait for it, none folds again and all show the same version. On PostgreSQL
    they wait outside any lock; SQLite's one writer queues their claims behind the fold anyway."""
    w = _scored_world(app)
    chairs = [signed_in(app, "chair1") for _ in range(5)]
    _slow_fold(monkeypatch, delay=0.5)
    claims: list[bool] = []
    real_claim = upkeep._claim
    monkeypatch.setattr(upkeep, "_claim", lambda *a: (claims.append(real_claim(*a)), claims[-1])[1])
    answers = _poll_at_once(chairs)
    assert [r.status_code for r in answers] == [200] * 5
    assert _computations(app, w) == 1
    if backend == "postgres":
        assert claims.count(True) == 1  # a poll that came later found the fold claimed (or done) and waited
    assert len({r.headers["ETag"] for r in answers}) == 1
    with app.app_context():
        assert db.session.execute(text("SELECT claimed_at FROM ranking_marks WHERE round_id = :r AND drafts = :d"),
                                  {"r": w.round_id, "d": False}).scalar() is None
    _assert_same_app(app, w)


@BOTH
def test_workers_of_separate_apps_share_one_computation(app_factory, tmp_path, monkeypatch):
    """Five apps on one database stand for five gunicorn workers (or servers): the kept ranking lives in
    the database, so between them they fold a new version once."""
    from app import create_app
    from tests.conftest import _base_config

    first = app_factory()
    w = _scored_world(first)
    url = first.config["SQLALCHEMY_DATABASE_URI"]
    workers = [first] + [create_app(_base_config(tmp_path, url)) for _ in range(4)]
    chairs = [signed_in(a, "chair1") for a in workers]
    assert chairs[0].get("/rankings/activity", headers=HX).status_code == 200
    _slow_fold(monkeypatch)
    for nom in w.noms[2:4]:
        _save(first, w, nom)
        before = _computations(first, w)
        answers = _poll_at_once(chairs)
        assert [r.status_code for r in answers] == [200] * 5
        assert _computations(first, w) == before + 1
        assert len({r.get_data(as_text=True).split('name="csrf_token"')[0] for r in answers}) == 1


def test_a_new_version_is_never_answered_with_the_old_rows(app):
    w = _scored_world(app)
    chair = signed_in(app, "chair1")
    first = chair.get("/rankings/activity?method=mean", headers=HX).get_data(as_text=True)
    with app.app_context():
        crit = ranking.criteria_of(w.round_id, "activity")
        upkeep.ensure(w.round_id, "activity", False, crit)
        before = kept.entry(w.round_id, "activity", crit, method="mean", drafts=False, nomination_id=w.noms[7])
        db.session.remove()
    _save(app, w, w.noms[7])
    page = chair.get("/rankings/activity?method=mean", headers=HX).get_data(as_text=True)
    with app.app_context():
        after = kept.entry(w.round_id, "activity", crit, method="mean", drafts=False, nomination_id=w.noms[7])
        assert after.n_scored == before.n_scored + 1
        want = next(r for r in ranking.compute(w.round_id, "activity", method="mean") if r.nomination_id == w.noms[7])
        assert after.mean == pytest.approx(want.mean) and after.rank == want.rank
    assert page != first and f'data-nomination-id="{w.noms[7]}" data-rank="{want.rank}"' in page


def test_verify_finds_a_hand_made_difference_in_the_kept_ranking(app):
    from click.testing import CliRunner

    from app.ranking.cli import ranking_cli

    w = _scored_world(app)
    with app.app_context():
        crit = ranking.criteria_of(w.round_id, "activity")
        upkeep.ensure(w.round_id, "activity", False, crit)
        db.session.commit()
    runner = app.test_cli_runner() if hasattr(app, "test_cli_runner") else CliRunner()
    clean = runner.invoke(ranking_cli, ["verify"])
    assert clean.exit_code == 0, clean.output
    with app.app_context():
        db.session.execute(text("UPDATE ranking_entries SET mean = mean + 1, k_mean = k_mean - 1 "
                                "WHERE nomination_id = :n"), {"n": w.noms[5]})
        db.session.commit()
    found = runner.invoke(ranking_cli, ["verify"])
    assert found.exit_code == 1 and "排名" in found.output, found.output
    fixed = runner.invoke(ranking_cli, ["verify", "--fix"])
    assert fixed.exit_code == 1 and "已重算 1 个实时排名" in fixed.output, fixed.output  # still 1: a cron job notices
    assert runner.invoke(ranking_cli, ["verify"]).exit_code == 0
    with app.app_context():
        from app.models import AuditEvent

        assert db.session.scalar(select(db.func.count(AuditEvent.id)).where(AuditEvent.action == "ranking.rebuild")) == 1


# --- the page: paging, filters and the cut line over the whole category ---------------------------


def _ladder(n: int, kinds=None):
    """n nominations, one reviewer each with a distinct total: nomination i ranks i (1-based)."""
    from app.models import Nominator

    rnd = make_round("reviewing")
    units = {k: make_nominator(f"单位{k}", k, i + 1) for i, k in enumerate(("city", "member", "society"))}
    reviewer = quick_user("solo")
    ids = []
    for i in range(n):
        kind = (kinds or (lambda _i: "city"))(i)
        nom = make_nomination(rnd, units[kind], f"N{i + 1}")
        db.session.add(Assignment(reviewer_id=reviewer.id, nomination_id=nom.id))
        ids.append(nom.id)
    db.session.commit()
    rubric = scoring.target(ids[0]).rubric
    for i, nid in enumerate(ids):
        share = 1 - i / (n + 5)
        values = {c.id: str(round(c.max_score * share * 2) / 2) for c in rubric}
        scoring.save_sheet(db.session.get(User, reviewer.id), nid, values, "", 0, submit=True)
    crit = ranking.criteria_of(rnd.id, "activity")
    upkeep.ensure(rnd.id, "activity", False, crit)
    assert db.session.scalar(select(db.func.count()).select_from(Nominator)) == 3
    return rnd.id, ids, crit


def _page(round_id, crit, **kw):
    args = dict(method="mean", drafts=False, kind="", nominator=None, page=1, slots=12, page_size=10)
    args.update(kw)
    return kept.table_page(round_id, "activity", crit, **args)


def test_paging_and_the_cut_line_over_the_whole_list(app):
    with app.app_context():
        rid, ids, crit = _ladder(23)
        page1 = _page(rid, crit)
        assert [r.rank for r in page1.rows] == list(range(1, 11)) and page1.pager.pages == 3
        assert [r.nomination_id for r in page1.rows] == ids[:10]
        assert page1.cut_id == ids[11] and page1.cut_page == 2
        page3 = _page(rid, crit, page=9)  # clamped
        assert page3.pager.page == 3 and [r.rank for r in page3.rows] == [21, 22, 23]
        assert page3.pager.page_numbers() == [1, 2, 3]
        # every shown method's rank is the row's place in the whole category (the page shows no median
        # rank unless it is ranked by the median)
        assert all(r.rank_mean == r.rank_trimmed == r.rank and r.rank_median is None for r in page3.rows)
        by_median = _page(rid, crit, method="median", page=3)
        assert [r.rank_median for r in by_median.rows] == [21, 22, 23]


def test_no_cut_line_when_nobody_is_below_it(app):
    with app.app_context():
        rid, _, crit = _ladder(5)
        table = _page(rid, crit, slots=10, page_size=100)
        assert table.cut_id is None and table.cut_page is None
        exact = _page(rid, crit, slots=5, page_size=100)
        assert exact.cut_id is None


def test_filters_keep_ranks_and_move_the_cut_to_the_last_visible_row_inside(app):
    with app.app_context():
        rid, ids, crit = _ladder(10, kinds=lambda i: "city" if i % 2 == 0 else "society")
        table = _page(rid, crit, kind="society", slots=5, page_size=100)
        assert [r.rank for r in table.rows] == [2, 4, 6, 8, 10]
        assert table.cut_id == ids[3]  # rank 4: the last society row inside the 5 slots
        assert table.pager.total == 5 and table.category_total == 10
        assert [o.kind for o in table.nominators] == ["city", "society"]  # every nominator stays selectable
        city = table.nominators[0].id
        by_nominator = _page(rid, crit, nominator=city, slots=5, page_size=100)
        assert [r.rank for r in by_nominator.rows] == [1, 3, 5, 7, 9]
        assert by_nominator.cut_id == ids[4] and by_nominator.cut_page == 1
        deep = _page(rid, crit, kind="society", slots=5, page_size=2, page=3)
        assert [r.rank for r in deep.rows] == [10] and deep.cut_page == 1


def test_ranks_of_a_page_deep_in_a_large_category(app):
    """Each method's ranks on a page are counted in one walk of its index (LAG segments and a running
    sum): the same numbers as a window over the whole category, on every page."""
    with app.app_context():
        w = _world(n_noms=60, n_reviewers=6)
        rng = random.Random(4)
        for r in w.reviewers[1:]:
            for n in w.noms:
                if rng.random() < 0.8:
                    scoring.save_sheet(db.session.get(User, r), n, _values(w, rng), "", 0, submit=True)
        crit = ranking.criteria_of(w.round_id, "activity")
        upkeep.ensure(w.round_id, "activity", False, crit)
        for method in ("mean", "median", "zscore"):
            whole = {r.nomination_id: r for r in kept.rows(w.round_id, "activity", crit, method=method, drafts=False)}
            for page in (1, 3, 6):
                for kind in ("", "member"):
                    table = kept.table_page(w.round_id, "activity", crit, method=method, drafts=False, kind=kind,
                                              nominator=None, page=page, slots=20, page_size=10)
                    assert table.rows
                    for r in table.rows:
                        ref = whole[r.nomination_id]
                        assert (r.rank, r.rank_mean, r.rank_trimmed, r.rank_zscore) == \
                               (ref.rank, ref.rank_mean, ref.rank_trimmed, ref.rank_zscore)
                        assert r.rank_median == (ref.rank_median if method == "median" else None)


def test_a_poll_does_not_queue_behind_another_fold_when_the_rows_are_fresh(app):
    """While another process folds (its claim on the mark), a poll waits briefly and then answers with the
    rows as they are instead of queueing behind it; with no fold under way it folds itself."""
    import time

    with app.app_context():
        w = _world(n_noms=6, n_reviewers=4)
        crit = ranking.criteria_of(w.round_id, "activity")
        shown = upkeep.ensure(w.round_id, "activity", False, crit)
        rng = random.Random(2)
        scoring.save_sheet(db.session.get(User, w.reviewers[1]), w.noms[0], _values(w, rng), "", 0, submit=True)
        newer = ranking.version(w.round_id, "activity")
        assert newer > shown

        def mark(**values):
            sets = ", ".join(f"{k} = :{k}" for k in values)
            db.session.execute(text(f"UPDATE ranking_marks SET {sets} WHERE round_id = :r AND drafts = :d"),
                               {**values, "r": w.round_id, "d": False})
            db.session.commit()

        before = upkeep.computations(w.round_id)
        mark(claimed_at=time.time(), folded_at=time.time() - 1)  # someone folds; the rows are 1 s old
        t0 = time.monotonic()
        assert upkeep.ensure(w.round_id, "activity", False, crit, live=True) == shown
        assert time.monotonic() - t0 >= upkeep.FOLD_WAIT_SECONDS * 0.9  # it did wait for the other fold first
        assert upkeep.computations(w.round_id) == before
        mark(folded_at=time.time() - 60)  # still someone else's fold under way: no queueing behind it
        assert upkeep.ensure(w.round_id, "activity", False, crit, live=True) == shown
        mark(claimed_at=None)  # that fold ended without a result (the process died): this poll folds
        assert upkeep.ensure(w.round_id, "activity", False, crit, live=True) == newer
        assert upkeep.computations(w.round_id) == before + 1
        assert db.session.scalar(text("SELECT claimed_at FROM ranking_marks WHERE drafts = :d"), {"d": False}) is None
        # a claim left by a fold that died is taken over
        scoring.save_sheet(db.session.get(User, w.reviewers[2]), w.noms[1], _values(w, rng), "", 0, submit=True)
        mark(claimed_at=time.time() - upkeep.CLAIM_SECONDS - 1, folded_at=time.time())
        assert upkeep.ensure(w.round_id, "activity", False, crit, live=True) > newer
        _assert_same(w.round_id)


def test_with_a_max_age_a_poll_answers_from_rows_folded_within_it(app):
    """RANKING_MAX_AGE_SECONDS (national scale): a stream of saves costs one fold per interval; once the
    interval has passed, the next poll folds everything since."""
    import time

    with app.app_context():
        w = _world(n_noms=6, n_reviewers=4)
        crit = ranking.criteria_of(w.round_id, "activity")
        shown = upkeep.ensure(w.round_id, "activity", False, crit, reuse_within=5)  # the first fold: whole
        rng = random.Random(8)
        scoring.save_sheet(db.session.get(User, w.reviewers[1]), w.noms[2], _values(w, rng), "", 0, submit=True)
        before = upkeep.computations(w.round_id)
        assert upkeep.ensure(w.round_id, "activity", False, crit, reuse_within=5) == shown
        assert upkeep.computations(w.round_id) == before
        db.session.execute(text("UPDATE ranking_marks SET folded_at = :t WHERE drafts = :d"),
                           {"t": time.time() - 6, "d": False})
        db.session.commit()
        assert upkeep.ensure(w.round_id, "activity", False, crit, reuse_within=5) > shown
        assert upkeep.computations(w.round_id) == before + 1
        _assert_same(w.round_id)
