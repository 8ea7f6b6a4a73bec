"""Many reviewers saving at once through the app, on SQLite and PostgreSQL: every acknowledged save
is what the database holds (or was superseded by a later acknowledged one), every other answer is a
409, and nothing answers 500 or "database is locked"."""

from __future__ import annotations

import threading
from collections import defaultdict

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Assignment, AuditEvent, RankingCounter
from tests.review_fixtures import (
    build_world,
    form_data,
    page_token,
    post_sheet,
    quick_user,
    signed_in,
    stored_sheet,
    version_in,
)

THREADS = 16
SAVES_PER_THREAD = 10
REVIEWERS = 8  # two threads per reviewer: two windows on the same sheet


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_concurrent_saves_lose_nothing_and_never_fail(app, backend):
    with app.app_context():
        w = build_world(with_files=False)
        names = [f"crowd{i}" for i in range(REVIEWERS)]
        ids = {}
        for name in names:
            user = quick_user(name)
            ids[name] = user.id
            db.session.add_all(Assignment(reviewer_id=user.id, nomination_id=n) for n in (w.act_b, w.unit_a))
        db.session.commit()
        counters_before = dict(db.session.execute(
            select(RankingCounter.category, RankingCounter.version).where(RankingCounter.round_id == w.round_id)).all())

    # Half the reviewers score an activity, half a unit, so both ranking counters are contended.
    plan = [(names[i % REVIEWERS], w.act_b if i % REVIEWERS < REVIEWERS // 2 else w.unit_a) for i in range(THREADS)]
    clients = [signed_in(app, name) for name, _ in plan]
    tokens = [page_token(client, nid) for client, (_, nid) in zip(clients, plan, strict=True)]
    results: list[list[tuple]] = [[] for _ in range(THREADS)]
    start = threading.Barrier(THREADS)

    def work(t: int):
        name, nid = plan[t]
        criteria = w.criteria["activity" if nid == w.act_b else "unit"]
        version = 0
        start.wait()
        for k in range(SAVES_PER_THREAD):
            # Distinct per thread and save, all valid: 0..19.5 in steps of 0.5 fits every criterion.
            values = [(t * 3 + k) % 20, t % 20, k % 20 + 0.5, (t + k) % 20]
            resp = post_sheet(clients[t], nid, form_data(tokens[t], criteria, values, version=version,
                                                         comment=f"线程{t}第{k}次"))
            body = resp.get_data(as_text=True)
            results[t].append((resp.status_code, name, nid, dict(zip(criteria, map(float, values), strict=True)),
                               f"线程{t}第{k}次", version_in(body) if resp.status_code in (200, 409) else None, body))
            if resp.status_code in (200, 409):
                version = version_in(body)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)

    answers = [r for rs in results for r in rs]
    assert len(answers) == THREADS * SAVES_PER_THREAD
    bad = [(status, body[:300]) for status, *_, body in answers if status not in (200, 409)]
    assert bad == []
    assert not any("database is locked" in body for *_, body in answers)

    acks = defaultdict(list)
    for status, name, nid, values, comment, version, _ in answers:
        if status == 200:
            acks[(name, nid)].append((version, values, comment))
    n_acks = sum(len(a) for a in acks.values())
    assert n_acks >= len(acks) == REVIEWERS  # every sheet got saved at least once
    assert n_acks > THREADS  # and the windows really raced (many saves got through)

    with app.app_context():
        for (name, nid), sheet_acks in acks.items():
            versions = [v for v, _, _ in sheet_acks]
            assert len(set(versions)) == len(versions), "two acknowledged saves shared a version: one was lost"
            last_version, last_values, last_comment = max(sheet_acks, key=lambda a: a[0])
            sheet, stored = stored_sheet(ids[name], nid)
            assert sheet.version == last_version
            assert stored == last_values and sheet.comment == last_comment
        # One audit event and one ranking bump per acknowledged save, no more, no less.
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)
                                 .where(AuditEvent.action == "sheet.save")) == n_acks
        counters_after = dict(db.session.execute(
            select(RankingCounter.category, RankingCounter.version).where(RankingCounter.round_id == w.round_id)).all())
        bumps = sum(counters_after[c] - counters_before[c] for c in counters_after)
        assert bumps == n_acks
