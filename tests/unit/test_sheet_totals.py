"""issue 15: a sheet keeps its total and number of values beside its scores, on both engines — the score
save writes them in its own row write (concurrent saves lose no update), ORM writers are kept right by
the session hook, and `flask ranking verify` finds (and --fix repairs) a hand-made difference."""

from __future__ import annotations

import random
import threading

import pytest
from sqlalchemy import text

from app.extensions import db
from app.models import ReviewSheet, Score, User
from app.review import scoring, totals
from tests.review_fixtures import build_world, stored_sheet

BOTH = pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])


def _figures(sheet_id: int) -> tuple[float, int]:
    row = db.session.execute(text("SELECT total, n_values FROM review_sheets WHERE id = :id"), {"id": sheet_id}).one()
    return float(row[0]), int(row[1])


@BOTH
def test_a_save_writes_the_sheet_total_and_count_with_its_scores(app, backend):
    with app.app_context():
        w = build_world(with_files=False)
        crit = w.criteria["activity"]
        rev = db.session.get(User, w.rev1)
        first = scoring.save_sheet(rev, w.act_b, {crit[0]: "25", crit[1]: "12.5"}, "", 0)
        assert _figures(first.id) == (37.5, 2)
        second = scoring.save_sheet(rev, w.act_b, {crit[0]: "20", crit[2]: "30", crit[3]: "15"}, "", first.version)
        assert _figures(second.id) == (65.0, 3)
        assert totals.verify() == []


@BOTH
def test_orm_writes_of_scores_keep_the_figures_right(app, backend):
    with app.app_context():
        w = build_world(with_files=False)
        crit = w.criteria["activity"]
        sheet = ReviewSheet(reviewer_id=w.rev3, nomination_id=w.act_c, status="submitted")
        sheet.scores = [Score(criterion_id=c, value=10.0) for c in crit]
        db.session.add(sheet)
        db.session.commit()
        assert (sheet.total, sheet.n_values) == (40.0, 4)  # expired by the hook, re-read
        sheet.scores[0].value = 20.0
        db.session.commit()
        assert _figures(sheet.id) == (50.0, 4)
        db.session.delete(sheet.scores[1])
        db.session.commit()
        assert _figures(sheet.id) == (40.0, 3)
        db.session.add(Score(sheet_id=sheet.id, criterion_id=crit[1], value=1.5))
        db.session.commit()
        assert _figures(sheet.id) == (41.5, 4)
        assert totals.verify() == []


@BOTH
def test_concurrent_saves_of_one_sheet_keep_total_equal_to_its_scores(app, backend):
    """Four threads, each in its own session, save the same sheet over and over (retrying on the 409 a
    stale version gets, as the page does). No acknowledged save is lost: the stored sheet is exactly the
    one with the highest acknowledged version, and its total is the sum of its scores."""
    with app.app_context():
        w = build_world(with_files=False)
        crit = w.criteria["activity"]
    acked: list[tuple[int, dict[int, float]]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        version = 0
        with app.app_context():
            try:
                for _ in range(12):
                    values = {c: rng.choice([None, 0, 5, 10, 12.5, 20]) for c in crit}
                    raw = {c: "" if v is None else str(v) for c, v in values.items()}
                    reviewer = db.session.get(User, w.rev1)
                    try:
                        state = scoring.save_sheet(reviewer, w.act_b, raw, f"线程{seed}", version)
                    except scoring.SheetConflict as e:
                        version = e.current.version
                        continue
                    version = state.version
                    with lock:
                        acked.append((state.version, dict(state.values)))
            except BaseException as e:  # noqa: BLE001 — reported by the main thread
                errors.append(e)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert acked, "no save was acknowledged"
    versions = [v for v, _ in acked]
    assert len(versions) == len(set(versions)), "two acknowledged saves claim the same version"
    with app.app_context():
        sheet, values = stored_sheet(w.rev1, w.act_b)
        last_version, last_values = max(acked, key=lambda a: a[0])
        assert sheet.version == last_version
        assert values == last_values
        assert _figures(sheet.id) == (float(sum(values.values())), len(values))
        assert totals.verify() == []


@BOTH
def test_flask_ranking_verify_finds_a_hand_made_difference_and_fix_repairs_it(app, backend):
    runner = app.test_cli_runner()
    with app.app_context():
        w = build_world(with_files=False)
        crit = w.criteria["activity"]
        state = scoring.save_sheet(db.session.get(User, w.rev1), w.act_b, {c: "10" for c in crit}, "", 0)
        db.session.remove()
    ok = runner.invoke(args=["ranking", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "一致" in ok.output

    with app.app_context():
        db.session.execute(text("UPDATE review_sheets SET total = total + 7, n_values = 3 WHERE id = :id"),
                           {"id": state.id})
        db.session.commit()
        version_before = db.session.execute(text(
            "SELECT version FROM ranking_counters WHERE round_id = :r AND category = 'activity'"),
            {"r": w.round_id}).scalar_one()
    bad = runner.invoke(args=["ranking", "verify", "--round", "2024"])
    assert bad.exit_code == 1
    assert f"评分表 {state.id}" in bad.output and "存储合计 47、3 项" in bad.output and "应为 40、4 项" in bad.output

    fixed = runner.invoke(args=["ranking", "verify", "--fix"])
    assert fixed.exit_code == 1 and "已按评分改正 1 张" in fixed.output
    again = runner.invoke(args=["ranking", "verify"])
    assert again.exit_code == 0, again.output
    with app.app_context():
        assert _figures(state.id) == (40.0, 4)
        version_after = db.session.execute(text(
            "SELECT version FROM ranking_counters WHERE round_id = :r AND category = 'activity'"),
            {"r": w.round_id}).scalar_one()
        assert version_after == version_before + 1  # the cached rankings of that version are left behind
        assert db.session.execute(text("SELECT COUNT(*) FROM audit_events WHERE action = 'sheet.totals_repair'")
                                  ).scalar_one() == 1


def test_verify_of_an_unknown_round_is_a_clear_error(app):
    result = app.test_cli_runner().invoke(args=["ranking", "verify", "--round", "1999"])
    assert result.exit_code != 0
    assert "1999" in result.output


@BOTH
def test_migration_0006_back_fills_the_figures_of_existing_sheets(app_factory, backend):
    app = app_factory(schema=False)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    with app.app_context():
        w = build_world(with_files=False)
        crit = w.criteria["activity"]
        sheet = ReviewSheet(reviewer_id=w.rev3, nomination_id=w.act_c, status="draft")
        sheet.scores = [Score(criterion_id=c, value=v) for c, v in zip(crit[:3], (10.0, 12.5, 3.0), strict=True)]
        db.session.add(sheet)
        db.session.commit()
        sheet_id = sheet.id
        db.session.remove()
    # Back to 0005 (the columns go) and up again: the rows written before 0006 get their figures.
    assert runner.invoke(args=["db", "downgrade", "0005"]).exit_code == 0
    up = runner.invoke(args=["db", "upgrade"])
    assert up.exit_code == 0, up.output
    with app.app_context():
        assert _figures(sheet_id) == (25.5, 3)
        assert totals.verify() == []
        db.session.remove()
    assert runner.invoke(args=["db", "downgrade", "base"]).exit_code == 0
