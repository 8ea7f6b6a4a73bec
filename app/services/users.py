"""Accounts: creation, passwords, sign-in checks, deactivation. Sessions die with the session token."""

from __future__ import annotations

from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from ..database import write_transaction
from ..extensions import db
from ..models import ROLE_LABELS, Nominator, User
from ..models._base import utcnow
from ..models.people import new_session_token
from ..web.errors import UserError
from . import audit

USERNAME_MAX = 50
PASSWORD_MIN = 8
PASSWORD_MAX = 128
# A hash of a random password, checked when the username is unknown so timing does not reveal it.
_DUMMY_HASH = generate_password_hash("kepu-dummy-password")


def _public(user: User) -> dict:
    return {"username": user.username, "display_name": user.display_name, "role": user.role,
            "active": user.active, "affiliation_id": user.affiliation_id}


def validate_password(password: str) -> None:
    if len(password) < PASSWORD_MIN:
        raise UserError(f"密码至少需要 {PASSWORD_MIN} 个字符。", {"password": f"至少 {PASSWORD_MIN} 个字符"})
    if len(password) > PASSWORD_MAX:
        raise UserError(f"密码不能超过 {PASSWORD_MAX} 个字符。", {"password": "过长"})


def create_user(username: str, display_name: str, role: str, password: str, *,
                affiliation: str | None = None, actor=None) -> User:
    username = (username or "").strip()
    display_name = (display_name or "").strip() or username
    if not username or len(username) > USERNAME_MAX:
        raise UserError("用户名不能为空，且不超过 50 个字符。")
    if role not in ROLE_LABELS:
        raise UserError(f"未知角色：{role}。可选：{', '.join(ROLE_LABELS)}。")
    validate_password(password)
    with write_transaction():
        if db.session.scalar(select(User).where(User.username == username)):
            raise UserError(f"用户名 {username} 已存在。", status=409)
        affiliation_id = None
        if affiliation:
            nominator = db.session.scalar(select(Nominator).where(Nominator.name == affiliation))
            if nominator is None:
                raise UserError(f"找不到推荐单位：{affiliation}。")
            affiliation_id = nominator.id
        user = User(username=username, display_name=display_name[:50], role=role,
                    password_hash=generate_password_hash(password), affiliation_id=affiliation_id)
        db.session.add(user)
        db.session.flush()
        audit.record("user.create", "user", user.id, after=_public(user), actor=actor)
    return user


def authenticate(username: str, password: str) -> User | None:
    """The user if the credentials are right and the account is active; None otherwise."""
    user = db.session.scalar(select(User).where(User.username == (username or "").strip()))
    if user is None:
        check_password_hash(_DUMMY_HASH, password or "")
        return None
    if not check_password_hash(user.password_hash, password or "") or not user.active:
        return None
    return user


def record_login(user: User) -> None:
    with write_transaction():
        user = db.session.get(User, user.id)
        user.last_login_at = utcnow()
        audit.record("user.login", "user", user.id, actor=user)


def end_sessions(user: User, *, action: str = "user.logout", actor=None) -> None:
    """Rotate the session token: every cookie issued before now stops working."""
    with write_transaction():
        user = db.session.get(User, user.id)
        user.session_token = new_session_token()
        audit.record(action, "user", user.id, actor=actor or user)


def set_password(user: User, new_password: str, *, actor=None) -> None:
    validate_password(new_password)
    with write_transaction():
        user = db.session.get(User, user.id)
        user.password_hash = generate_password_hash(new_password)
        user.session_token = new_session_token()
        audit.record("user.set_password", "user", user.id, actor=actor)


def change_own_password(user: User, current: str, new: str, confirm: str) -> None:
    if not check_password_hash(user.password_hash, current or ""):
        raise UserError("当前密码不正确。", {"current": "当前密码不正确"})
    if new != confirm:
        raise UserError("两次输入的新密码不一致。", {"confirm": "不一致"})
    set_password(user, new, actor=user)


def set_active(user: User, active: bool, *, actor=None) -> None:
    with write_transaction():
        user = db.session.get(User, user.id)
        before = _public(user)
        user.active = active
        if not active:
            user.session_token = new_session_token()
        audit.record("user.activate" if active else "user.deactivate", "user", user.id,
                     before=before, after=_public(user), actor=actor)


def by_username(username: str) -> User:
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        raise UserError(f"找不到用户：{username}。", status=404)
    return user


def list_users() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.role, User.username)))
