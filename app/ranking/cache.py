"""One computation per ranking version: the computed ranking of (round, category, method, drafts,
rubric) kept under its RankingCounter version, shared by every chair, worker and server.

Why the version is enough: every write that may change a ranking bumps the counter in its own
transaction (scores, reopen, recusals, assignments, phase moves), so a ranking computed after reading
version v is at least as new as v. A poll reads the version first; rows stored under that version are
never older than that poll, which is the issue's "no chair sees a ranking older than the last poll".
Filters (kind, nominator, page) are applied to the cached rows afterwards (app/ranking/table.py), so
they need no key of their own.

Backends, chosen by RANKING_CACHE_URL (else a redis:// JOBS_URL or RATELIMIT_STORAGE_URI, which means
the deployment already runs Redis for every process):

* ``redis://…`` — the rows as JSON under ``kepu:ranking:<key>``; the per-key lock is ``SET NX PX``, so
  of N workers on any number of machines that see a new version, one computes and the others wait
  (bounded) for its result.
* ``file://`` (the embedded default) — a JSON file per key in the instance folder, locked with
  ``flock``: shared by the gunicorn workers of one machine, nothing to install.
* ``memory://`` — this process only (tests; a single process).

In front of any backend sits a small in-process copy: a poll of a version this process already holds
costs no decode at all. A waiter that gives up (LOCK_WAIT_SECONDS) computes by itself — slower, never
wrong.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import astuple, fields

from flask import current_app

from app.core import storage
from app.ranking.engine import CriterionInfo, RankRow

LOCK_WAIT_SECONDS = 20.0
LOCK_TTL_SECONDS = 60.0
ENTRY_TTL_SECONDS = 3600
MEMORY_ENTRIES = 16
_POLL = 0.01
_FIELDS = [f.name for f in fields(RankRow)]
_EXTENSION = "kepu_ranking_cache"

_stats_lock = threading.Lock()
STATS = {"computed": 0, "memory_hits": 0, "shared_hits": 0, "waited": 0, "recent_hits": 0}


def _count(name: str) -> None:
    with _stats_lock:
        STATS[name] += 1


def reset_stats() -> None:
    with _stats_lock:
        for k in STATS:
            STATS[k] = 0


def key(round_id: int, category: str, version: int, method: str, include_drafts: bool,
        criteria: list[CriterionInfo]) -> str:
    # The rubric is part of the key: before scoring starts it may change without a version bump. So is
    # the database: two deployments (or a test and a benchmark) may share one Redis.
    database = str(current_app.config.get("SQLALCHEMY_DATABASE_URI") or "")
    digest = hashlib.sha1(repr([database, *((c.id, c.max_score) for c in criteria)]).encode(),
                          usedforsecurity=False)
    return f"{round_id}-{category}-v{version}-{method}-{int(include_drafts)}-{digest.hexdigest()[:12]}"


def _series(k: str) -> str:
    """The key without its version: every version of one (round, category, method, drafts, rubric)."""
    head, _, rest = k.partition("-v")
    return f"latest-{head}-{rest.partition('-')[2]}"


def _version_of(k: str) -> int:
    return int(k.partition("-v")[2].partition("-")[0])


def clear() -> int:
    """Forget every stored ranking (after a restore, whose counters may go back to versions already
    cached with newer data). Returns the number of shared entries removed."""
    state = _state()
    with state.guard:
        state.local.clear()
    return state.backend.clear()


def encode(rows: list[RankRow]) -> bytes:
    return json.dumps([astuple(r) for r in rows], ensure_ascii=False, separators=(",", ":")).encode()


def decode(data: bytes) -> list[RankRow]:
    return [RankRow(**dict(zip(_FIELDS, values, strict=True))) for values in json.loads(data)]


# ----------------------------------------------------------------------------- backends


class MemoryBackend:
    """This process only: a dict and one lock per key."""

    def __init__(self):
        self._values: dict[str, bytes] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, k: str) -> bytes | None:
        return self._values.get(k)

    def put(self, k: str, data: bytes) -> None:
        with self._guard:
            self._values[k] = data
            while len(self._values) > MEMORY_ENTRIES:
                self._values.pop(next(iter(self._values)))

    def clear(self) -> int:
        with self._guard:
            n = len(self._values)
            self._values.clear()
        return n

    def acquire(self, k: str) -> object | None:
        with self._guard:
            lock = self._locks.setdefault(k, threading.Lock())
        return lock if lock.acquire(blocking=False) else None

    def release(self, k: str, token: object) -> None:
        token.release()
        with self._guard:
            self._locks.pop(k, None)


class FileBackend:
    """One JSON file per key, written atomically; the lock is flock on a sibling file (one machine)."""

    def __init__(self, folder: str):
        self.folder = folder
        os.makedirs(folder, exist_ok=True)

    def _path(self, k: str) -> str:
        return os.path.join(self.folder, f"{k}.json")

    def get(self, k: str) -> bytes | None:
        try:
            with open(self._path(k), "rb") as fh:
                return fh.read()
        except OSError:
            return None

    def put(self, k: str, data: bytes) -> None:
        storage.write_atomic(self._path(k), data)
        self._prune()

    def clear(self) -> int:
        removed = 0
        for name in os.listdir(self.folder):
            if name.endswith(".json"):
                try:
                    os.remove(os.path.join(self.folder, name))
                    removed += 1
                except OSError:
                    pass
        return removed

    def _prune(self) -> None:
        # Versions only move forward: keep the newest few files, drop the rest.
        try:
            names = [n for n in os.listdir(self.folder) if n.endswith((".json", ".lock"))]
        except OSError:
            return
        if len(names) <= 4 * MEMORY_ENTRIES:
            return
        paths = sorted((os.path.join(self.folder, n) for n in names), key=_mtime)
        for path in paths[: len(paths) - 2 * MEMORY_ENTRIES]:
            try:
                os.remove(path)
            except OSError:
                pass

    def acquire(self, k: str) -> object | None:
        fh = open(os.path.join(self.folder, f"{k}.lock"), "a")  # noqa: SIM115 — held until release()
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return None
        return fh

    def release(self, k: str, token: object) -> None:
        fcntl.flock(token, fcntl.LOCK_UN)
        token.close()


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


class RedisBackend:
    """Shared by every process on every machine; the lock expires if its holder dies."""

    _RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"

    def __init__(self, url: str):
        import redis

        self.client = redis.Redis.from_url(url)
        self._release = self.client.register_script(self._RELEASE)

    def get(self, k: str) -> bytes | None:
        return self.client.get(f"kepu:ranking:{k}")

    def put(self, k: str, data: bytes) -> None:
        self.client.set(f"kepu:ranking:{k}", data, ex=ENTRY_TTL_SECONDS)

    def acquire(self, k: str) -> object | None:
        token = os.urandom(8).hex()
        if self.client.set(f"kepu:ranking-lock:{k}", token, nx=True, px=int(LOCK_TTL_SECONDS * 1000)):
            return token
        return None

    def release(self, k: str, token: object) -> None:
        self._release(keys=[f"kepu:ranking-lock:{k}"], args=[token])

    def clear(self) -> int:
        names = list(self.client.scan_iter("kepu:ranking:*", count=500))
        return self.client.delete(*names) if names else 0

    def count_computation(self) -> None:
        self.client.incr("kepu:ranking:stats:computed")

    def computations(self) -> int:
        return int(self.client.get("kepu:ranking:stats:computed") or 0)


def _redis_url(config) -> str | None:
    for name in ("JOBS_URL", "RATELIMIT_STORAGE_URI"):
        value = config.get(name) or ""
        if value.startswith(("redis://", "rediss://")):
            return value
    return None


def build_backend(app):
    # Tests build many apps on many databases in one instance folder: each keeps its own copy.
    default = "memory://" if app.testing else "file://"
    url = app.config.get("RANKING_CACHE_URL") or _redis_url(app.config) or default
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisBackend(url)
    if url.startswith("memory://"):
        return MemoryBackend()
    if url.startswith("file://"):
        folder = url[len("file://"):] or os.path.join(app.instance_path, "ranking-cache")
        return FileBackend(folder)
    raise RuntimeError(f"不支持的 RANKING_CACHE_URL：{url}（应为 redis://…、file://… 或 memory://）")


class _State:
    def __init__(self, backend):
        self.backend = backend
        self.local: OrderedDict[str, list[RankRow]] = OrderedDict()
        self.guard = threading.Lock()


def _state() -> _State:
    app = current_app._get_current_object()
    state = app.extensions.get(_EXTENSION)
    if state is None:
        with _stats_lock:
            state = app.extensions.get(_EXTENSION)
            if state is None:
                state = app.extensions[_EXTENSION] = _State(build_backend(app))
    return state


def backend():
    return _state().backend


# ----------------------------------------------------------------------------- the one entry point


def _remember(state: _State, k: str, rows: list[RankRow]) -> list[RankRow]:
    with state.guard:
        state.local[k] = rows
        state.local.move_to_end(k)
        while len(state.local) > MEMORY_ENTRIES:
            state.local.popitem(last=False)
    return rows


def get_or_compute(k: str, compute: Callable[[], list[RankRow]]) -> list[RankRow]:
    """The rows stored under `k`, or computed once by whoever takes the key's lock first while the
    others wait for its result (at most LOCK_WAIT_SECONDS, then they compute themselves)."""
    state = _state()
    rows = state.local.get(k)
    if rows is not None:
        _count("memory_hits")
        return rows
    store = state.backend
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    waited = False
    while True:
        data = store.get(k)
        if data is not None:
            _count("waited" if waited else "shared_hits")
            return _remember(state, k, decode(data))
        token = store.acquire(k)
        if token is not None:
            try:
                data = store.get(k)  # computed by the previous holder between our get and acquire
                if data is not None:
                    _count("waited" if waited else "shared_hits")
                    return _remember(state, k, decode(data))
                rows = compute()
                _count("computed")
                if hasattr(store, "count_computation"):
                    store.count_computation()
                store.put(k, encode(rows))
                return _remember(state, k, rows)
            finally:
                store.release(k, token)
        if time.monotonic() >= deadline:
            rows = compute()
            _count("computed")
            return _remember(state, k, rows)
        waited = True
        time.sleep(_POLL)


def get_recent_or_compute(k: str, compute: Callable[[], list[RankRow]], max_age: float) -> tuple[list[RankRow], int]:
    """(rows, the version they were computed for): the rows of `k`'s version if stored, else — with
    max_age > 0 — the newest stored version of the same series if its computation started at most
    max_age seconds ago, else get_or_compute(k).

    Why: with hundreds of reviewers saving, the version moves several times a second and every poll
    would see a new one; computing each costs a core for a second. A window of one poll interval
    (RANKING_MAX_AGE_SECONDS = RANKING_POLL_SECONDS) caps the work at one computation per interval per
    series, and no chair sees a ranking whose data is older than one poll interval — or, when one
    computation takes longer than that, than the computation in flight: a series computes one version
    at a time, and polls that find it busy wait for its result instead of starting another (on a
    saturated machine parallel computations of successive versions only make each one slower).
    The caller tags its answer with the returned version, so the next poll after a quiet spell asks
    again. max_age = 0 (the default) is the strict rule: every version is computed."""
    version = _version_of(k)
    state = _state()
    rows = state.local.get(k)
    if rows is not None:
        _count("memory_hits")
        return rows, version
    if max_age <= 0:
        return get_or_compute(k, compute), version
    store = state.backend
    series = _series(k)
    seen = store.get(series)
    recent = _recent(state, k, version, seen, max_age)
    if recent is not None:
        return recent
    token = store.acquire(series)
    if token is None:
        # Another process computes this series now: its result is the freshest there will be soon.
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while time.monotonic() < deadline:
            time.sleep(_POLL)
            pointer = store.get(series)
            if pointer != seen:
                recent = _recent(state, k, version, pointer, float("inf"))
                if recent is not None:
                    return recent
        return get_or_compute(k, compute), version
    try:
        started = time.time()
        rows = get_or_compute(k, compute)
        _advance(store, series, version, started)
        return rows, version
    finally:
        store.release(series, token)


def _recent(state: _State, k: str, version: int, pointer: bytes | None,
            max_age: float) -> tuple[list[RankRow], int] | None:
    """The rows the series pointer names if their computation started within max_age (a version newer
    than `version` is newer data: another poll read the counter a moment later)."""
    if pointer is None:
        return None
    try:
        latest, started = json.loads(pointer)
        latest = int(latest)
    except (ValueError, TypeError):
        return None
    if time.time() - float(started) > max_age:
        return None
    other = k.replace(f"-v{version}-", f"-v{latest}-", 1)
    rows = state.local.get(other)
    if rows is None:
        data = state.backend.get(other)
        if data is None:
            return None
        rows = _remember(state, other, decode(data))
    _count("recent_hits")
    return rows, latest


def _advance(store, series: str, version: int, started: float) -> None:
    # Racing writers may store an older pointer after a newer one; the next window corrects it, and a
    # pointer is only ever used within max_age of its own start, so it can never serve stale data.
    current = store.get(series)
    if current is not None:
        with contextlib.suppress(ValueError, TypeError, IndexError):
            if int(json.loads(current)[0]) > version:
                return
    store.put(series, json.dumps([version, started]).encode())
