"""The robustness and agreement figures of one round × category as one JSON-able dict, computed once per
ranking version (cache.py), in the request for a small category and by the huey task (tasks.py) for a
large one. Pages, documents and the CLI read them through `current()` / `build()`."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np
from sqlalchemy import func, select

from app.core.time import fmt_minute, utcnow
from app.extensions import db
from app.models import METHOD_LABELS, Nomination, Round
from app.ranking import engine as ranking
from app.stats import agreement, cache, robustness
from app.stats import queries as stats_queries

# A category with more active nominations than this is computed by the job consumer, not the request.
INLINE_MAX = 2000
METHOD_ORDER = robustness.METHODS
THRESHOLDS_TEXT = (f"在 {{resamples}} 次重抽样中位于分数线以上的比例 ≥ {robustness.STABLE_IN:.0%} 为“稳定入选”，"
                   f"≤ {robustness.STABLE_OUT:.0%} 为“稳定落选”，其余为“临界”。排名区间为重抽样名次的 5 %–95 % 分位。")


def _round(round_id: int) -> Round:
    return db.session.get(Round, round_id)


def settings(round_id: int, category: str, method: str | None = None, resamples: int | None = None,
             seed: int | None = None) -> tuple[str, int, int]:
    method = method or _round(round_id).method
    return (method, int(resamples or robustness.DEFAULT_RESAMPLES),
            int(robustness.DEFAULT_SEED if seed is None else seed))


def _titles(round_id: int, category: str) -> dict[int, str]:
    return dict(db.session.execute(select(Nomination.id, Nomination.title).where(
        Nomination.round_id == round_id, Nomination.category == category)).all())


def digest(data: stats_queries.CategoryData, titles: dict[int, str], slots: int, method: str, resamples: int,
           seed: int) -> str:
    """Everything the figures depend on. A decision bumps the ranking version without changing any of
    it: the figures of the previous version are then taken over instead of computed again."""
    h = hashlib.sha256()
    p = data.panel
    for array in (p.nomination_ids, p.sheet_nom, p.sheet_reviewer, np.ascontiguousarray(p.values)):
        h.update(array.tobytes())
    h.update(json.dumps([slots, method, resamples, seed, robustness.STABLE_IN, robustness.STABLE_OUT,
                         list(p.criteria), sorted(data.reviewer_names.items()), sorted(titles.items()),
                         [c.name for c in data.criteria]], ensure_ascii=False).encode())
    return h.hexdigest()


def build(round_id: int, category: str, *, method: str | None = None, resamples: int | None = None,
          seed: int | None = None, version: int | None = None,
          prefetched: tuple[stats_queries.CategoryData, dict[int, str]] | None = None) -> dict:
    """Compute everything from the database now (version read first: the data is at least that new)."""
    method, resamples, seed = settings(round_id, category, method, resamples, seed)
    version = ranking.version(round_id, category) if version is None else version
    rnd = _round(round_id)
    slots = rnd.slots(category)
    data, titles = prefetched or (stats_queries.panel(round_id, category), _titles(round_id, category))
    panel = data.panel
    places, sides = robustness.analyse(panel, method, slots, resamples=resamples, seed=seed)
    names = data.reviewer_names
    out_places = {}
    for p in places:
        d = asdict(p)
        d["title"] = titles.get(p.nomination_id, "")
        for mv in d["movers"]:
            mv["reviewer_name"] = names.get(mv["reviewer_id"], str(mv["reviewer_id"]))
        out_places[str(p.nomination_id)] = d
    changed = []
    official = sides[method]
    for i, nid in enumerate(panel.nomination_ids):
        row = {m: bool(sides[m][i]) for m in METHOD_ORDER}
        if len(set(row.values())) > 1:
            changed.append({"nomination_id": int(nid), "title": titles.get(int(nid), ""),
                            "official_rank": out_places[str(int(nid))]["rank"], "sides": row})
    changed.sort(key=lambda r: (r["official_rank"] is None, r["official_rank"] or 0))
    counts = {m: {"in": int((sides[m] & ~official).sum()), "out": int((~sides[m] & official).sum())}
              for m in METHOD_ORDER}
    crit_names = {c.code: c.name for c in data.criteria}
    agree = agreement.agreement(panel, crit_names)
    labels = [p.label for p in places]
    return {
        "round_id": round_id, "category": category, "method": method, "method_label": METHOD_LABELS[method],
        "version": version, "digest": digest(data, titles, slots, method, resamples, seed), "resamples": resamples, "seed": seed, "slots": slots,
        "computed_at": utcnow().isoformat(), "computed_at_text": fmt_minute(utcnow()),
        "thresholds": {"stable_in": robustness.STABLE_IN, "stable_out": robustness.STABLE_OUT,
                       "interval": list(robustness.INTERVAL)},
        "thresholds_text": THRESHOLDS_TEXT.format(resamples=resamples),
        "counts": {k: labels.count(k) for k in robustness.LABELS},
        "places": out_places,
        "sensitivity": {"methods": [{"code": m, "label": METHOD_LABELS[m]} for m in METHOD_ORDER],
                        "counts": counts, "changed": changed},
        "agreement": agree, "agreement_text": agreement.in_words(agree[0]),
        "bands_text": agreement.BANDS_TEXT,
    }


def active_count(round_id: int, category: str) -> int:
    return int(db.session.scalar(select(func.count()).select_from(Nomination).where(
        Nomination.round_id == round_id, Nomination.category == category, Nomination.status == "active")) or 0)


@dataclass
class Current:
    """What a page shows: the figures of the current version, or an older one while it is computed."""

    status: str  # ready | pending
    data: dict | None  # current version's, else the latest older one (or None)
    version: int

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    def place(self, nomination_id: int) -> dict | None:
        return (self.data or {}).get("places", {}).get(str(nomination_id))


def compute_and_store(round_id: int, category: str, method: str, resamples: int, seed: int,
                      claimed_version: int | None = None) -> dict:
    """Compute and cache under the version read now; release the marker of the version that was claimed
    (the ranking may have moved on while the task waited in the queue)."""
    version = ranking.version(round_id, category)
    claimed = cache.name(round_id, category, method, version if claimed_version is None else claimed_version,
                         resamples, seed)
    try:
        data = build(round_id, category, method=method, resamples=resamples, seed=seed, version=version)
        cache.store(cache.name(round_id, category, method, version, resamples, seed), data)
    finally:
        cache.release(claimed)
    return data


def current(round_id: int, category: str, *, method: str | None = None, resamples: int | None = None,
            seed: int | None = None, inline_max: int | None = None) -> Current:
    """The cached figures of this ranking version; computed now when the category is small, queued to
    the job consumer when it is large (the page then polls)."""
    from flask import current_app

    method, resamples, seed = settings(round_id, category, method, resamples, seed)
    version = ranking.version(round_id, category)
    filename = cache.name(round_id, category, method, version, resamples, seed)
    data = cache.load(filename)
    if data is not None:
        return Current("ready", data, version)
    # While the consumer computes this version, a poll does not read the sheets again.
    taken, prefetched = (None, None) if cache.pending(filename) else _take_over(
        round_id, category, method, resamples, seed, version, filename)
    if taken is not None:
        return Current("ready", taken, version)
    limit = inline_max if inline_max is not None else current_app.config.get("STATS_INLINE_MAX", INLINE_MAX)
    if active_count(round_id, category) <= limit:
        data = build(round_id, category, method=method, resamples=resamples, seed=seed, version=version,
                     prefetched=prefetched)
        cache.store(filename, data)
        return Current("ready", data, version)
    if cache.claim(filename):
        from app.jobs import get_jobs

        try:
            get_jobs().tasks["compute_robustness"](round_id, category, method, resamples, seed, version)
        except Exception:
            cache.release(filename)
            raise
        data = cache.load(filename)  # JOBS_IMMEDIATE: already done
        if data is not None:
            return Current("ready", data, version)
    return Current("pending", cache.latest(round_id, category, method, resamples, seed), version)


def _take_over(round_id: int, category: str, method: str, resamples: int, seed: int, version: int,
               filename: str) -> tuple[dict | None, tuple | None]:
    """(the latest cached figures, stored under this version, when nothing they depend on has changed —
    one read of the counted sheets, no bootstrap; the data read for the check, which build() reuses)."""
    previous = cache.latest(round_id, category, method, resamples, seed)
    if previous is None or previous.get("version", 0) > version:
        return None, None
    prefetched = (stats_queries.panel(round_id, category), _titles(round_id, category))
    if previous.get("digest") != digest(*prefetched, _round(round_id).slots(category), method, resamples, seed):
        return None, prefetched
    data = {**previous, "version": version}
    cache.store(filename, data)
    return data, prefetched


def for_document(round_id: int, category: str) -> dict:
    """The figures for a PDF or XLSX: the cached ones of this version, else computed now (documents of a
    large category are rendered by the job consumer already, so this never runs in a web worker for one)."""
    method, resamples, seed = settings(round_id, category)
    version = ranking.version(round_id, category)
    filename = cache.name(round_id, category, method, version, resamples, seed)
    data = cache.load(filename)
    if data is not None:
        return data
    data, prefetched = _take_over(round_id, category, method, resamples, seed, version, filename)
    if data is None:
        data = build(round_id, category, method=method, resamples=resamples, seed=seed, version=version,
                     prefetched=prefetched)
        cache.store(filename, data)
    return data
