"""Sign-in throttle that holds under concurrency and across workers: per address and per account.

flask-limiter's `deduct_when` tests the counter before the request and deducts after the response, so
attempts already in flight all pass the test: measured with 8 concurrent bad logins against 4 gunicorn
workers on Redis, "5 per minute" let 10 of 40 through. Here every attempt is counted up front with one
atomic increment (Redis INCR), and a successful sign-in gives its unit back — so only failures use up
the allowance, and at most the limit of attempts can be in flight or done per window.

The rules (the login page's messages say how long to wait):

1. Per address (LOGIN_RATE_LIMIT, 5 per minute): every attempt from one client address, whatever the
   account. Once used up, every attempt from that address is refused — the right password too — until
   the window ends. A correct password gives its unit back.
2. Per account (LOGIN_ACCOUNT_RATE_LIMIT, 10 per 5 minutes): attempts at one username from anywhere,
   so an attacker spreading guesses over many addresses is slowed as well. Once used up, the account
   refuses sign-in — the right password too, else the lock would only delay a guesser — until its
   window ends: at most 5 minutes, so nobody can lock a colleague out for long with a few bad guesses.
3. A browser that has signed in to the account before carries a signed "known device" cookie for it
   and is exempt from rule 2 (never from rule 1): an attacker keeping the account locked from
   elsewhere does not lock out its owner at their usual desk. The cookie cannot be forged without the
   SECRET_KEY and only ever lifts the per-account rule.

Usernames are hashed into the counter key: bounded length, and nothing a user types ends up in a
Redis key. Unknown usernames are counted exactly like real ones (no hint of which accounts exist).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from flask import current_app, request
from flask_limiter.util import get_remote_address
from itsdangerous import BadSignature, URLSafeTimedSerializer
from limits import parse

from app.extensions import limiter

_SCOPE = "login"
_ACCOUNT_SCOPE = "login-account"
ACCOUNT_RATE_LIMIT = "10 per 5 minutes"
DEVICE_COOKIE = "kepu_device"
DEVICE_MAX_AGE = 180 * 24 * 3600
DEVICE_IDS_MAX = 5  # a shared office computer remembers the last few accounts signed in on it


@dataclass(frozen=True)
class Refusal:
    """Why an attempt was refused and for how long (seconds), for the Chinese message."""

    scope: str  # "address" | "account"
    wait_seconds: int

    @property
    def message(self) -> str:
        wait = wait_text(self.wait_seconds)
        if self.scope == "account":
            return f"该账号登录失败次数过多，已暂时锁定，请 {wait}后再试。"
        return f"登录尝试过于频繁，请 {wait}后再试。"


def wait_text(seconds: int) -> str:
    seconds = max(1, int(seconds))
    if seconds < 60:
        return f"{seconds} 秒"
    return f"{math.ceil(seconds / 60)} 分钟"


def _address_item():
    return parse(current_app.config["LOGIN_RATE_LIMIT"])


def _account_item():
    return parse(current_app.config.get("LOGIN_ACCOUNT_RATE_LIMIT") or ACCOUNT_RATE_LIMIT)


def account_key(username: str) -> str:
    return hashlib.sha256((username or "").strip().casefold().encode()).hexdigest()[:32]


def _wait(item, *identifiers) -> int:
    reset_at = limiter.limiter.get_window_stats(item, *identifiers).reset_time
    return max(1, math.ceil(reset_at - time.time()))


def _refund(item, *identifiers) -> None:
    key = item.key_for(*identifiers)
    storage = limiter.limiter.storage
    # Only while the window that took the unit is still open; a fresh window must not start below zero.
    if storage.get(key) > 0:
        storage.incr(key, item.get_expiry(), amount=-1)


def reserve_login_attempt() -> Refusal | None:
    """Count one attempt for this client address; a Refusal when its allowance is used up."""
    if not limiter.enabled:
        return None
    item = _address_item()
    if limiter.limiter.hit(item, _SCOPE, get_remote_address()):
        return None
    return Refusal("address", _wait(item, _SCOPE, get_remote_address()))


def refund_login_attempt() -> None:
    """Give back the address unit of an attempt that succeeded (or was refused without a password check)."""
    if limiter.enabled:
        _refund(_address_item(), _SCOPE, get_remote_address())


def reserve_account_attempt(username: str, user_id_hint: int | None = None) -> Refusal | None:
    """Count one attempt at this account; a Refusal when its allowance is used up. A browser known to
    the account (rule 3) is not counted."""
    if not limiter.enabled or (user_id_hint is not None and user_id_hint in known_device_ids()):
        return None
    item = _account_item()
    key = account_key(username)
    if limiter.limiter.hit(item, _ACCOUNT_SCOPE, key):
        return None
    return Refusal("account", _wait(item, _ACCOUNT_SCOPE, key))


def refund_account_attempt(username: str, user_id_hint: int | None = None) -> None:
    if not limiter.enabled or (user_id_hint is not None and user_id_hint in known_device_ids()):
        return
    _refund(_account_item(), _ACCOUNT_SCOPE, account_key(username))


# ---------------------------------------------------------------------------------------------
# The known-device cookie (rule 3)


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="kepu-known-device")


def known_device_ids() -> list[int]:
    raw = request.cookies.get(DEVICE_COOKIE)
    if not raw:
        return []
    try:
        ids = _serializer().loads(raw, max_age=DEVICE_MAX_AGE)
    except BadSignature:
        return []
    return [i for i in ids if isinstance(i, int)] if isinstance(ids, list) else []


def remember_device(response, user_id: int) -> None:
    """After a successful sign-in: this browser is now known to the account."""
    ids = [user_id] + [i for i in known_device_ids() if i != user_id]
    response.set_cookie(DEVICE_COOKIE, _serializer().dumps(ids[:DEVICE_IDS_MAX]), max_age=DEVICE_MAX_AGE,
                        httponly=True, samesite="Lax", secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),
                        path="/login")
