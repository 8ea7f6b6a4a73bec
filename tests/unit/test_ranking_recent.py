"""issue 15, national scale: with RANKING_MAX_AGE_SECONDS a poll may be answered with the ranking computed
within the last poll interval for an earlier version — never with an older one — so reviewers saving
several times a second cost one computation per interval, not one per version."""

from __future__ import annotations

import json
import time

from app.ranking import cache as ranking_cache
from app.ranking import engine as ranking
from tests.review_fixtures import HX, signed_in
from tests.unit.test_ranking_cache import _save, _world


def _version_in(tag: str) -> int:
    return int(tag.strip('"').split("-")[2])


def test_a_poll_within_the_window_reuses_the_recent_ranking(app):
    app.config["RANKING_MAX_AGE_SECONDS"] = 600
    w = _world(app)
    chair = signed_in(app, "chair1")
    first = chair.get("/rankings/activity", headers=HX)
    assert first.status_code == 200
    tag = first.headers["ETag"]
    _save(app, w, "5")  # the version moves
    with app.app_context():
        current = ranking.live_state("activity").version
    assert current > _version_in(tag)

    ranking_cache.reset_stats()
    again = chair.get("/rankings/activity", headers={**HX, "If-None-Match": tag})
    # The ranking of the earlier version is a few seconds old: the chair already has it.
    assert again.status_code == 304 and again.headers["ETag"] == tag
    assert ranking_cache.STATS["computed"] == 0
    other = signed_in(app, "chair1").get("/rankings/activity", headers=HX)
    assert other.status_code == 200 and _version_in(other.headers["ETag"]) == _version_in(tag)
    assert ranking_cache.STATS["computed"] == 0 and ranking_cache.STATS["recent_hits"] >= 1


def test_a_ranking_older_than_the_window_is_computed_again(app):
    app.config["RANKING_MAX_AGE_SECONDS"] = 5
    w = _world(app)
    chair = signed_in(app, "chair1")
    tag = chair.get("/rankings/activity", headers=HX).headers["ETag"]
    _save(app, w, "6")
    with app.app_context():
        # The recent ranking's computation started longer ago than the window.
        rnd = ranking.live_state("activity")
        k = ranking_cache.key(rnd.id, "activity", rnd.version, rnd.method, False,
                              ranking.criteria_of(rnd.id, "activity"))
        store = ranking_cache.backend()
        series = ranking_cache._series(k)
        latest, _ = json.loads(store.get(series))
        store.put(series, json.dumps([latest, time.time() - 6]).encode())
        current = rnd.version

    ranking_cache.reset_stats()
    fresh = chair.get("/rankings/activity", headers={**HX, "If-None-Match": tag})
    assert fresh.status_code == 200
    assert _version_in(fresh.headers["ETag"]) == current
    assert ranking_cache.STATS["computed"] == 1


def test_without_a_window_every_version_is_computed(app):
    assert not app.config.get("RANKING_MAX_AGE_SECONDS")
    w = _world(app)
    chair = signed_in(app, "chair1")
    tag = chair.get("/rankings/activity", headers=HX).headers["ETag"]
    _save(app, w, "7")
    ranking_cache.reset_stats()
    fresh = chair.get("/rankings/activity", headers={**HX, "If-None-Match": tag})
    assert fresh.status_code == 200 and fresh.headers["ETag"] != tag
    assert ranking_cache.STATS["computed"] == 1
