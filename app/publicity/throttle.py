"""Per-address limit on objections, on the limiter storage the sign-in throttle uses (Redis in
production, so it holds across workers and machines). Like the sign-in throttle, an attempt is counted
up front with one atomic increment — attempts in flight cannot slip past — and an objection the
operation refused (out of the period, not on the list) gives its unit back."""

from __future__ import annotations

import math
import time

from flask import current_app
from flask_limiter.util import get_remote_address
from limits import parse

from app.accounts.throttle import wait_text
from app.extensions import limiter

_SCOPE = "objection"
DEFAULT_LIMIT = "5 per hour"


def _item():
    return parse(current_app.config.get("OBJECTION_RATE_LIMIT") or DEFAULT_LIMIT)


def reserve() -> str | None:
    """Count one objection from this address; the Chinese refusal when its allowance is used up."""
    if not limiter.enabled:
        return None
    item, address = _item(), get_remote_address()
    if limiter.limiter.hit(item, _SCOPE, address):
        return None
    reset_at = limiter.limiter.get_window_stats(item, _SCOPE, address).reset_time
    return f"同一网络地址提交异议过于频繁，请 {wait_text(max(1, math.ceil(reset_at - time.time())))}后再试。"


def refund() -> None:
    if not limiter.enabled:
        return
    item = _item()
    key = item.key_for(_SCOPE, get_remote_address())
    storage = limiter.limiter.storage
    if storage.get(key) > 0:
        storage.incr(key, item.get_expiry(), amount=-1)
