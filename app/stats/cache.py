"""Computed figures kept once per ranking version: JSON files in the stats folder (STATS_FOLDER, default
`stats/` beside the upload folder), as app/reports keeps its job records — a cache entry, not business
data: nothing joins it, a backup does not need it, no migration.

The key is (round, category, method, ranking version, resamples, seed). RankingCounter is bumped by every
write that may move the ranking, so an entry is never stale for its key; an entry of an older version
is kept as the "latest" to show (marked as such) while the new one is computed, then pruned.

A pending marker (created with O_EXCL, atomic on one file system) makes concurrent requests queue one
computation; a marker older than PENDING_STALE_SECONDS belongs to a consumer that died and is taken over.
"""

from __future__ import annotations

import json
import os
import re
import time

from flask import current_app

from app.core import storage

PENDING_STALE_SECONDS = 300
KEEP_VERSIONS = 2
_NAME = re.compile(r"^r(\d+)-(unit|activity)-([a-z]+)-B(\d+)-s(\d+)-v(\d+)\.json$")


def folder() -> str:
    path = current_app.config.get("STATS_FOLDER") or os.path.join(
        os.path.dirname(os.path.abspath(current_app.config["UPLOAD_FOLDER"])), "stats")
    os.makedirs(path, exist_ok=True)
    return path


def _stem(round_id: int, category: str, method: str, resamples: int, seed: int) -> str:
    return f"r{int(round_id)}-{category}-{method}-B{int(resamples)}-s{int(seed)}"


def name(round_id: int, category: str, method: str, version: int, resamples: int, seed: int) -> str:
    return f"{_stem(round_id, category, method, resamples, seed)}-v{int(version)}.json"


def load(filename: str) -> dict | None:
    try:
        with open(os.path.join(folder(), filename), encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def store(filename: str, data: dict) -> None:
    storage.write_atomic(os.path.join(folder(), filename), json.dumps(data, ensure_ascii=False, separators=(",", ":")))
    _prune(filename)


def latest(round_id: int, category: str, method: str, resamples: int, seed: int) -> dict | None:
    """The entry of the highest version present for these settings (any version)."""
    stem = _stem(round_id, category, method, resamples, seed)
    versions = [int(m.group(6)) for f in os.listdir(folder()) if (m := _NAME.match(f)) and f.startswith(stem + "-v")]
    for version in sorted(versions, reverse=True):
        data = load(f"{stem}-v{version}.json")
        if data is not None:
            return data
    return None


def _prune(filename: str) -> None:
    m = _NAME.match(filename)
    if not m:
        return
    stem = filename[: filename.rindex("-v")]
    mine = sorted((int(n.group(6)), f) for f in os.listdir(folder())
                  if (n := _NAME.match(f)) and f.startswith(stem + "-v"))
    for _version, old in mine[:-KEEP_VERSIONS]:
        try:
            os.remove(os.path.join(folder(), old))
        except OSError:
            pass


def _pending_path(filename: str) -> str:
    return os.path.join(folder(), filename + ".pending")


def claim(filename: str) -> bool:
    """True for the one caller that should queue the computation of `filename`."""
    path = _pending_path(filename)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            try:
                if time.time() - os.path.getmtime(path) < PENDING_STALE_SECONDS:
                    return False
                os.remove(path)
            except OSError:
                pass
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(str(time.time()))
        return True
    return False


def pending(filename: str) -> bool:
    try:
        return time.time() - os.path.getmtime(_pending_path(filename)) < PENDING_STALE_SECONDS
    except OSError:
        return False


def release(filename: str) -> None:
    try:
        os.remove(_pending_path(filename))
    except OSError:
        pass
