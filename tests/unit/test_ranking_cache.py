"""issue 15: one ranking computation per version. N chairs polling a new version at once cost one
computation (the others wait for it), on the in-process, file (one machine, several workers) and Redis
(several machines) backends; a new version is never answered with the old rows."""

from __future__ import annotations

import threading
import time

import pytest

from app.extensions import db
from app.models import User
from app.ranking import cache as ranking_cache
from app.ranking import engine as ranking
from app.review import scoring
from tests.review_fixtures import HX, build_world, signed_in

REDIS_URL = "redis://127.0.0.1:6379/0"


def _world(app):
    with app.app_context():
        w = build_world(with_files=False)
        crit = w.criteria["activity"]
        for rev, values in ((w.rev1, "10"), (w.rev3, "20")):
            scoring.save_sheet(db.session.get(User, rev), w.act_b, {c: values for c in crit}, "", 0, submit=True)
        db.session.remove()
        return w


def _slow_compute(monkeypatch, delay: float = 0.2):
    """The real computation, made slow so the concurrent polls overlap it (the assertions hold either way)."""
    real = ranking.compute

    def slow(*args, **kwargs):
        time.sleep(delay)
        return real(*args, **kwargs)

    monkeypatch.setattr(ranking, "compute", slow)


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


def _save(app, w, value: str) -> None:
    with app.app_context():
        crit = w.criteria["activity"]
        state = scoring.sheet_state(w.rev4, w.act_b)
        scoring.save_sheet(db.session.get(User, w.rev4), w.act_b, {c: value for c in crit}, "", state.version)
        db.session.remove()


def test_five_concurrent_polls_of_a_new_version_compute_once(app, monkeypatch):
    w = _world(app)
    chairs = [signed_in(app, "chair1") for _ in range(5)]
    _slow_compute(monkeypatch)
    for round_no in range(2):
        _save(app, w, str(5 + round_no))  # a new version
        ranking_cache.reset_stats()
        answers = _poll_at_once(chairs)
        assert [r.status_code for r in answers] == [200] * 5
        assert ranking_cache.STATS["computed"] == 1, ranking_cache.STATS
        assert len({r.headers["ETag"] for r in answers}) == 1
        bodies = {r.get_data(as_text=True).split('name="csrf_token"')[0] for r in answers}
        assert all("株洲科普嘉年华" in b for b in bodies)
    # A poll between changes: the ETag answers 304, nothing is computed or read.
    ranking_cache.reset_stats()
    again = chairs[0].get("/rankings/activity", headers={**HX, "If-None-Match": answers[0].headers["ETag"]})
    assert again.status_code == 304
    assert ranking_cache.STATS["computed"] == 0


def test_a_new_version_is_never_answered_with_the_old_rows(app):
    w = _world(app)
    chair = signed_in(app, "chair1")
    with app.app_context():
        crit = ranking.criteria_of(w.round_id, "activity")

    def mean_of_b() -> float:
        with app.app_context():
            rnd = ranking.live_state("activity")
            k = ranking_cache.key(rnd.id, "activity", rnd.version, "mean", False, crit)
            rows = ranking_cache.get_or_compute(k, lambda: ranking.compute(rnd.id, "activity", method="mean",
                                                                           per_criterion=False))
            return next(r.mean for r in rows if r.nomination_id == w.act_b)

    assert mean_of_b() == 60.0  # (40 + 80) / 2
    assert chair.get("/rankings/activity?method=mean", headers=HX).status_code == 200
    with app.app_context():
        crit_ids = w.criteria["activity"]
        full = dict(zip(crit_ids, ("30", "20", "30", "20"), strict=True))
        scoring.save_sheet(db.session.get(User, w.rev4), w.act_b, full, "", 0, submit=True)
        db.session.remove()
    assert mean_of_b() == pytest.approx((40 + 80 + 100) / 3)
    page = chair.get("/rankings/activity?method=mean", headers=HX).get_data(as_text=True)
    assert "73.33" in page


@pytest.mark.parametrize("store", ["file", "redis"])
def test_workers_of_separate_apps_share_one_computation(app_factory, tmp_path, monkeypatch, store):
    """Five apps on one database stand for five gunicorn workers (each with its own in-process copy):
    the shared backend's lock makes them compute a new version once between them."""
    url = f"file://{tmp_path / 'ranking-cache'}" if store == "file" else REDIS_URL
    first = app_factory({"RANKING_CACHE_URL": url})
    w = _world(first)
    workers = [first] + [app_factory({"RANKING_CACHE_URL": url}, schema=False) for _ in range(4)]
    if store == "redis":
        pytest.importorskip("redis")
        with first.app_context():
            ranking_cache.clear()
    chairs = [signed_in(a, "chair1") for a in workers]
    _slow_compute(monkeypatch)
    for value in ("7", "8"):
        _save(first, w, value)
        ranking_cache.reset_stats()
        answers = _poll_at_once(chairs)
        assert [r.status_code for r in answers] == [200] * 5
        assert ranking_cache.STATS["computed"] == 1, ranking_cache.STATS
        assert ranking_cache.STATS["shared_hits"] + ranking_cache.STATS["waited"] == 4, ranking_cache.STATS
