"""Races, proven on SQLite (BEGIN IMMEDIATE) and PostgreSQL (row locks): a save against a phase
change (the phase is read inside the save's own write transaction, under a lock the phase change holds
exclusively, so the save waits and then refuses) and two windows saving one sheet at once."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from app.core.errors import UserError
from app.extensions import db
from app.models import User
from app.review import scoring
from tests.review_fixtures import build_world, stored_sheet

BOTH = pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])


@BOTH
def test_a_save_blocked_by_a_phase_change_refuses_after_it(app, backend):
    with app.app_context():
        w = build_world(with_files=False)
        crit = w.criteria["activity"]
        # The phase change, held open in its own connection, as rounds.change_phase would hold it.
        conn = db.engine.connect()
        conn.begin()
        if backend == "postgres":
            conn.execute(text("SELECT id FROM rounds WHERE id = :id FOR UPDATE"), {"id": w.round_id})
        conn.execute(text("UPDATE rounds SET phase = 'deliberating' WHERE id = :id"), {"id": w.round_id})

    outcome = {}

    def save():
        with app.app_context():
            try:
                reviewer = db.session.get(User, w.rev1)
                scoring.save_sheet(reviewer, w.act_b, {c: "10" for c in crit}, "抢在阶段变更之后", 0)
                outcome["saved"] = True
            except UserError as e:
                outcome["error"] = (e.status, e.message)
            finally:
                db.session.remove()

    worker = threading.Thread(target=save)
    worker.start()
    time.sleep(0.6)
    assert worker.is_alive(), "the save must wait for the phase change, not run beside it"
    conn.commit()
    conn.close()
    worker.join(20)
    assert not worker.is_alive()
    assert outcome == {"error": (409, "评审阶段已结束，评分未保存。")}
    with app.app_context():
        assert stored_sheet(w.rev1, w.act_b) == (None, {})


@BOTH
def test_a_save_holding_the_round_finishes_before_the_phase_changes(app, backend):
    """The other order: a phase change that arrives while a save holds its transaction waits for it."""
    with app.app_context():
        w = build_world(with_files=False)
        crit = w.criteria["activity"]
        conn = db.engine.connect()
        conn.begin()
        if backend == "postgres":
            conn.execute(text("SELECT id FROM rounds WHERE id = :id FOR SHARE"), {"id": w.round_id})
        else:
            # What a save's BEGIN IMMEDIATE holds on SQLite: the database's write lock.
            conn.execute(text("UPDATE ranking_counters SET version = version WHERE round_id = :id"),
                         {"id": w.round_id})

    changed = {}

    def change():
        with app.app_context():
            from app.rounds import phases as rounds

            rounds.change_phase(w.round_id, "deliberating")
            changed["at"] = time.monotonic()
            db.session.remove()

    worker = threading.Thread(target=change)
    worker.start()
    time.sleep(0.6)
    assert worker.is_alive(), "the phase change must wait for the save in progress"
    released = time.monotonic()
    conn.commit()
    conn.close()
    worker.join(20)
    assert changed["at"] >= released
    with app.app_context():
        with pytest.raises(UserError):
            scoring.save_sheet(db.session.get(User, w.rev1), w.act_b, {c: "10" for c in crit}, "", 0)


@BOTH
@pytest.mark.parametrize("existing", [False, True], ids=["create", "update"])
def test_two_windows_racing_on_one_sheet_one_wins_one_conflicts(app, backend, existing, monkeypatch):
    """Window A holds its transaction open at its last statement; window B saves meanwhile with the
    same version. B must get a 409 carrying A's values, never overwrite them, never fail."""
    from app.rounds import phases as rounds

    with app.app_context():
        w = build_world(with_files=False)
        crit = w.criteria["activity"]
        if existing:
            scoring.save_sheet(db.session.get(User, w.rev1), w.act_b, {crit[0]: "1"}, "", 0)
    version = 1 if existing else 0
    real_bump = rounds.bump_ranking
    a_in_bump = threading.Event()

    def slow_bump(*args, **kwargs):
        if threading.current_thread().name == "A":
            a_in_bump.set()
            time.sleep(0.8)
        return real_bump(*args, **kwargs)

    monkeypatch.setattr(rounds, "bump_ranking", slow_bump)
    outcome = {}

    def save(name, value):
        with app.app_context():
            try:
                sheet = scoring.save_sheet(db.session.get(User, w.rev1), w.act_b, {crit[0]: value}, name, version)
                outcome[name] = ("saved", sheet.version)
            except scoring.SheetConflict as e:
                outcome[name] = ("conflict", e.current.version, e.current.values, e.current.comment)
            except Exception as e:  # noqa: BLE001 - the test reports anything else as a failure
                outcome[name] = ("error", repr(e))
            finally:
                db.session.remove()

    a = threading.Thread(target=save, args=("A", "20"), name="A")
    b = threading.Thread(target=save, args=("B", "5"), name="B")
    a.start()
    assert a_in_bump.wait(10)
    b.start()
    a.join(20)
    b.join(20)
    assert outcome["A"] == ("saved", version + 1)
    assert outcome["B"] == ("conflict", version + 1, {crit[0]: 20.0}, "A")
    with app.app_context():
        sheet, values = stored_sheet(w.rev1, w.act_b)
        assert (sheet.version, sheet.comment, values) == (version + 1, "A", {crit[0]: 20.0})
