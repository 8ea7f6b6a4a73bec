"""The stats cache: one file per (round, category, method, version, resamples, seed), the two newest
versions kept, one pending claim per computation, a claim left by a dead consumer taken over."""

from __future__ import annotations

import os
import time

from app.stats import cache


def test_store_load_latest_and_prune(app):
    with app.app_context():
        names = [cache.name(1, "unit", "trimmed", v, 1000, 14) for v in (3, 4, 5)]
        for v, n in zip((3, 4, 5), names, strict=True):
            cache.store(n, {"version": v})
        assert cache.load(names[0]) is None  # pruned: the two newest versions stay
        assert cache.load(names[2]) == {"version": 5}
        assert cache.latest(1, "unit", "trimmed", 1000, 14) == {"version": 5}
        assert cache.latest(1, "activity", "trimmed", 1000, 14) is None
        assert cache.latest(1, "unit", "trimmed", 1000, 15) is None  # another seed is another entry
        other = cache.name(1, "unit", "mean", 9, 1000, 14)
        cache.store(other, {"version": 9})
        assert cache.load(names[1]) == {"version": 4}  # another method prunes only its own files


def test_one_claim_and_a_stale_claim_is_taken_over(app):
    with app.app_context():
        name = cache.name(2, "activity", "mean", 1, 1000, 14)
        assert cache.claim(name) is True
        assert cache.claim(name) is False and cache.pending(name)
        old = time.time() - cache.PENDING_STALE_SECONDS - 5
        os.utime(os.path.join(cache.folder(), name + ".pending"), (old, old))
        assert not cache.pending(name)
        assert cache.claim(name) is True
        cache.release(name)
        assert not cache.pending(name) and cache.claim(name) is True


def test_the_folder_is_beside_the_uploads_unless_configured(app, tmp_path):
    with app.app_context():
        assert cache.folder() == str(tmp_path / "stats")
    app.config["STATS_FOLDER"] = str(tmp_path / "elsewhere")
    with app.app_context():
        assert cache.folder() == str(tmp_path / "elsewhere") and os.path.isdir(cache.folder())
