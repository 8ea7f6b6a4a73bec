"""What the Redis-backed throttle tests share: scripts/bench_throttle.py's server helpers (PostgreSQL
migrated, gunicorn on a free port, the app's environment) and a Redis that must be there."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_throttle", ROOT / "scripts" / "bench_throttle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


def flushed_redis(url: str) -> None:
    """Empty the test's own Redis database; Redis is part of this machine, so unreachable fails."""
    try:
        bench.flush_redis(url)
    except Exception as e:  # noqa: BLE001 — the point is to fail loudly, never to skip
        pytest.fail(f"Redis is required at {url} but unreachable: {e}")
