"""First credentials of an account, and the forced first password.

An account the admin creates (or resets) for a 推荐单位 gets either a one-time password, shown once to the
admin, or an invitation link `/accounts/invite/<token>` that expires (INVITE_DAYS). Only sha256(token)
is stored, so a database copy opens no account. Either way `must_change_password` is set: the user's
every page leads to 设置新密码 until they choose their own (app/accounts/views.py enforces it).

Passwords are hashed before the write transaction opens: scrypt takes tens of milliseconds, and a bulk
import of 45 units must not hold the SQLite write lock meanwhile.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app, url_for
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from app import mail
from app.accounts.passwords import validate_password
from app.audit import operations as audit
from app.core.database import locked, write_transaction
from app.core.errors import UserError
from app.core.time import aware, fmt_minute
from app.extensions import db
from app.models import User
from app.models._base import utcnow
from app.models.people import new_session_token

KINDS = {"otp": "一次性密码", "invite": "邀请链接"}
TOKEN_BYTES = 32
TOKEN_MAX = 100  # what the invite route accepts at all (token_urlsafe(32) is 43 characters)
# No 0/O, 1/l/I: the one-time password is read off paper and typed by hand.
_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz23456789"
# Stored as the password hash of an invited account: not a werkzeug hash (no "$"), so no password matches.
_NO_PASSWORD = "!invited"


class InvitationGone(UserError):
    status = 410


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_one_time_password() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    return "-".join(raw[i:i + 4] for i in range(0, 12, 4))


def invite_days() -> int:
    return int(current_app.config.get("INVITE_DAYS") or 7)


@dataclass
class Prepared:
    """A credential made outside the transaction: the secret (shown once) and what is stored."""

    kind: str
    secret: str
    password_hash: str
    token_hash: str | None
    expires_at: datetime | None


def prepare(kind: str) -> Prepared:
    if kind == "otp":
        secret = new_one_time_password()
        return Prepared(kind, secret, generate_password_hash(secret), None, None)
    if kind == "invite":
        secret = secrets.token_urlsafe(TOKEN_BYTES)
        return Prepared(kind, secret, f"{_NO_PASSWORD}:{secrets.token_hex(8)}", token_hash(secret),
                        utcnow() + timedelta(days=invite_days()))
    raise UserError("请选择一次性密码或邀请链接。", {"credential": "请选择"})


@dataclass
class Issued:
    """What the admin's printable list shows, once."""

    user_id: int
    username: str
    display_name: str
    unit: str
    email: str
    kind: str
    secret: str  # the one-time password, or the invitation's full link
    expires_at: datetime | None
    mailed: bool

    @property
    def kind_label(self) -> str:
        return KINDS[self.kind]

    @property
    def expires_text(self) -> str:
        return fmt_minute(self.expires_at)


def invite_url(token: str) -> str:
    return url_for("accounts.invite", token=token, _external=True)


def _invite_mail(user: User, url: str, expires_at: datetime) -> tuple[str, str]:
    unit = user.affiliation.name if user.affiliation else ""
    subject = "【科普日评选】推荐单位账号邀请"
    body = (f"{user.display_name}：\n\n"
            f"全国科普日优秀组织单位和优秀活动评审系统已为「{unit}」开设推荐单位账号。\n"
            f"用户名：{user.username}\n\n"
            f"请在 {fmt_minute(expires_at)}（北京时间）前打开下面的链接，设置您的登录密码：\n{url}\n\n"
            "该链接只能使用一次，请勿转发。链接过期后，请联系管理员重新发放。\n")
    return subject, body


def apply(user: User, prepared: Prepared, *, actor=None, mail_invite: bool = False, action: str = "user.credential"
          ) -> Issued:
    """Inside the caller's write transaction: give `user` the prepared credential. Their old password
    and every session stop working."""
    with write_transaction():
        user.password_hash = prepared.password_hash
        user.must_change_password = True
        user.invite_token_hash = prepared.token_hash
        user.invite_expires_at = prepared.expires_at
        user.session_token = new_session_token()
        secret, mailed = prepared.secret, False
        if prepared.kind == "invite":
            secret = invite_url(prepared.secret)
            if mail_invite and mail.is_valid_address(user.email):
                subject, body = _invite_mail(user, secret, prepared.expires_at)
                mailed = mail.send(user.email, subject, body) is not None
        audit.record(action, "user", user.id, actor=actor,
                     after={"credential": prepared.kind, "mailed": mailed,
                            "expires_at": prepared.expires_at.isoformat() if prepared.expires_at else None})
        db.session.flush()
    return Issued(user.id, user.username, user.display_name, user.affiliation.name if user.affiliation else "",
                  user.email, prepared.kind, secret, prepared.expires_at, mailed)


def issue(user_id: int, kind: str, *, actor=None, mail_invite: bool = False) -> Issued:
    """The admin's 重置密码 for one account: a new one-time password or invitation link."""
    prepared = prepare(kind)
    with write_transaction():
        user = locked(User, user_id)
        if user is None:
            raise UserError("找不到该用户。", status=404)
        if actor is not None and user.id == actor.id:
            raise UserError("不能为自己发放一次性密码或邀请链接，请在“修改密码”中修改。", status=409)
        return apply(user, prepared, actor=actor, mail_invite=mail_invite)


# ---------------------------------------------------------------------------------------------
# The invitation link and the forced first password

_GONE = "该邀请链接已过期，请联系管理员重新发放。"
_UNKNOWN = "该邀请链接无效或已被使用。如需登录，请使用已设置的密码，或联系管理员重新发放。"


def _by_token(token: str, *, lock: bool = False) -> User:
    if not token or len(token) > TOKEN_MAX:
        raise UserError(_UNKNOWN, status=404)
    stmt = select(User).where(User.invite_token_hash == token_hash(token))
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    user = db.session.scalar(stmt)
    if user is None or not user.active:
        raise UserError(_UNKNOWN, status=404)
    if user.invite_expires_at is None or aware(user.invite_expires_at) <= utcnow():
        raise InvitationGone(_GONE)
    return user


def invitation(token: str) -> User:
    """The account an invitation link opens; 404 unknown or used, 410 expired."""
    return _by_token(token)


def _set_own_password(user: User, password_hash: str, action: str) -> None:
    user.password_hash = password_hash
    user.must_change_password = False
    user.invite_token_hash = None
    user.invite_expires_at = None
    user.session_token = new_session_token()  # every other session (and the one-time password) ends
    audit.record(action, "user", user.id, actor=user)


def accept_invitation(token: str, new_password: str) -> User:
    """The invited user sets their password (the form has checked its strength and confirmation)."""
    validate_password(new_password)
    password_hash = generate_password_hash(new_password)
    with write_transaction():
        user = _by_token(token, lock=True)
        _set_own_password(user, password_hash, "user.invite_accept")
    return user


def set_first_password(user_id: int, new_password: str) -> User:
    """After signing in with a one-time password: their own password, no current one asked for."""
    validate_password(new_password)
    password_hash = generate_password_hash(new_password)
    with write_transaction():
        user = locked(User, user_id)
        if user is None or not user.active:
            raise UserError("找不到该用户。", status=404)
        if not user.must_change_password:
            raise UserError("您的密码已设置，如需修改请使用“修改密码”。", status=409)
        _set_own_password(user, password_hash, "user.first_password")
    return user
