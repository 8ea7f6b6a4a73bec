"""Accounts: creation, passwords, sign-in checks, deactivation. Sessions die with the session token."""

from __future__ import annotations

from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from app import mail
from app.accounts import credentials
from app.accounts.passwords import PASSWORD_MAX, PASSWORD_MIN, validate_password  # noqa: F401 (re-exported)
from app.audit import operations as audit
from app.core.database import write_transaction
from app.core.errors import UserError
from app.extensions import db
from app.models import ROLE_LABELS, Assignment, Nomination, Nominator, User
from app.models._base import utcnow
from app.models.people import new_session_token
from app.rounds import phases as rounds

USERNAME_MAX = 50
# A hash of a random password, checked when the username is unknown so timing does not reveal it.
_DUMMY_HASH = generate_password_hash("kepu-dummy-password")


def public(user: User) -> dict:
    return {"username": user.username, "display_name": user.display_name, "role": user.role,
            "active": user.active, "affiliation_id": user.affiliation_id, "email": user.email or "",
            "phone": user.phone or ""}


EMAIL_MAX = 200
PHONE_MAX = 50


def clean_contact(email: str | None, phone: str | None) -> tuple[str, str]:
    """An account's e-mail (one plain address, or none) and phone, as stored."""
    email, phone = (email or "").strip(), " ".join((phone or "").split())
    if email and not mail.is_valid_address(email):
        raise UserError(f"电子邮箱格式不正确：{email[:EMAIL_MAX]}。", {"email": "格式不正确"})
    if len(phone) > PHONE_MAX:
        raise UserError(f"联系电话不能超过 {PHONE_MAX} 个字符。", {"phone": "过长"})
    return email, phone


def _require_unit(role: str, affiliation_id: int | None) -> None:
    if role == "nominator" and affiliation_id is None:
        raise UserError("推荐单位账号必须绑定一个推荐单位。", {"affiliation_id": "请选择推荐单位"})


def create_user(username: str, display_name: str, role: str, password: str | None = None, *,
                affiliation: str | None = None, email: str = "", phone: str = "", password_hash: str | None = None,
                must_change: bool = False, actor=None) -> User:
    """One account. `password_hash` instead of `password`: a credential made beforehand
    (credentials.prepare). A 推荐单位 account needs its unit, and any first password it gets from the
    admin is replaced at first sign-in."""
    username = (username or "").strip()
    display_name = (display_name or "").strip() or username
    if len(display_name) > DISPLAY_NAME_MAX:
        raise UserError(f"姓名不能超过 {DISPLAY_NAME_MAX} 个字符。", {"display_name": f"不能超过 {DISPLAY_NAME_MAX} 字"})
    if not username or len(username) > USERNAME_MAX:
        raise UserError("用户名不能为空，且不超过 50 个字符。")
    if role not in ROLE_LABELS:
        raise UserError(f"未知角色：{role}。可选：{', '.join(ROLE_LABELS)}。")
    email, phone = clean_contact(email, phone)
    if password_hash is None:
        validate_password(password or "")
        password_hash = generate_password_hash(password)  # before the write lock: scrypt is slow on purpose
    with write_transaction():
        if db.session.scalar(select(User).where(User.username == username)):
            raise UserError(f"用户名 {username} 已存在。", status=409)
        affiliation_id = None
        if affiliation:
            nominator = db.session.scalar(select(Nominator).where(Nominator.name == affiliation))
            if nominator is None:
                raise UserError(f"找不到推荐单位：{affiliation}。", {"affiliation_id": "找不到该推荐单位"})
            affiliation_id = nominator.id
        _require_unit(role, affiliation_id)
        user = User(username=username, display_name=display_name, role=role, password_hash=password_hash,
                    affiliation_id=affiliation_id, email=email, phone=phone,
                    must_change_password=must_change or role == "nominator")
        db.session.add(user)
        db.session.flush()
        audit.record("user.create", "user", user.id, after=public(user), actor=actor)
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


def user_id_for(username: str) -> int | None:
    """The id of the account with this exact username, if any (the throttle's known-device check)."""
    return db.session.scalar(select(User.id).where(User.username == (username or "").strip()))


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


def set_password(user: User, new_password: str, *, actor=None, must_change: bool = False) -> None:
    """A new password; every session ends and an open invitation stops working. `must_change`: the
    password is the admin's, to be replaced by the user's own at the next sign-in."""
    validate_password(new_password)
    password_hash = generate_password_hash(new_password)
    with write_transaction():
        user = db.session.get(User, user.id)
        user.password_hash = password_hash
        user.session_token = new_session_token()
        user.must_change_password = must_change
        user.invite_token_hash = user.invite_expires_at = None
        audit.record("user.set_password", "user", user.id, actor=actor)


def change_own_password(user: User, current: str, new: str) -> None:
    """The form has checked the new password's length and its confirmation; the current one needs the hash."""
    if not check_password_hash(user.password_hash, current or ""):
        raise UserError("当前密码不正确。", {"current": "当前密码不正确"})
    set_password(user, new, actor=user)


def set_active(user: User, active: bool, *, actor=None) -> None:
    with write_transaction():
        user = db.session.get(User, user.id)
        before = public(user)
        user.active = active
        if not active:
            user.session_token = new_session_token()
        audit.record("user.activate" if active else "user.deactivate", "user", user.id,
                     before=before, after=public(user), actor=actor)


def by_username(username: str) -> User:
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        raise UserError(f"找不到用户：{username}。", status=404)
    return user


def list_users() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.role, User.username)))


# ---------------------------------------------------------------------------------------------
# Administration (the admin area's users page)

DISPLAY_NAME_MAX = 50
USERNAME_PATTERN = r"^[A-Za-z0-9_.\-]+$"


def get_user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise UserError("找不到该用户。", status=404)
    return user


def _nominator(affiliation_id: int | None) -> Nominator | None:
    if affiliation_id is None:
        return None
    nominator = db.session.get(Nominator, affiliation_id)
    if nominator is None:
        raise UserError("找不到该推荐单位。", {"affiliation_id": "找不到该推荐单位"})
    return nominator


def create_account(username: str, display_name: str, role: str, password: str | None, *,
                   affiliation_id: int | None = None, email: str = "", phone: str = "", credential: str = "password",
                   mail_invite: bool = False, actor=None):
    """The admin's create form, typed (accounts/forms.py checked the format); a taken username is a
    field error beside the username. `credential`: "password" (typed by the admin; returns the User),
    or "otp" / "invite" (returns the credentials.Issued shown once)."""
    prepared = credentials.prepare(credential) if credential != "password" else None
    with write_transaction():
        nominator = _nominator(affiliation_id)
        try:
            user = create_user(username, display_name, role, password, email=email, phone=phone,
                               affiliation=nominator.name if nominator else None, actor=actor,
                               password_hash=prepared.password_hash if prepared else None)
        except UserError as e:
            if e.status == 409:
                e.field_errors = {"username": "已存在"}
            raise
        if prepared is None:
            return user
        return credentials.apply(user, prepared, actor=actor, mail_invite=mail_invite)


def update_user(user_id: int, *, display_name: str, role: str, affiliation_id: int | None, email: str | None = None,
                phone: str | None = None, actor=None) -> User:
    """Display name, role, affiliation (回避; a 推荐单位 account's own unit) and contact. An admin cannot
    take away their own admin role. `email`/`phone` None: left as they are."""
    if role not in ROLE_LABELS:
        raise UserError("请选择角色。", {"role": "请选择角色"})
    with write_transaction():
        user = get_user(user_id)
        affiliation_id = nominator.id if (nominator := _nominator(affiliation_id)) else None
        _require_unit(role, affiliation_id)
        if actor is not None and user.id == actor.id and role != "admin":
            raise UserError("不能取消自己的管理员角色。", {"role": "不能修改自己的角色"}, status=409)
        email, phone = clean_contact(user.email if email is None else email, user.phone if phone is None else phone)
        before = public(user)
        user.display_name, user.role, user.affiliation_id = display_name, role, affiliation_id
        user.email, user.phone = email, phone
        after = public(user)
        if after != before:
            audit.record("user.update", "user", user.id, before=before, after=after, actor=actor)
        if after.get("affiliation_id") != before.get("affiliation_id"):
            _affiliation_moved(user.id)
    return user


def _affiliation_moved(reviewer_id: int) -> None:
    # Their own unit's nominations are recused (回避): every ranking they score in may change.
    scopes = db.session.execute(
        select(Nomination.round_id, Nomination.category).distinct()
        .join(Assignment, Assignment.nomination_id == Nomination.id).where(Assignment.reviewer_id == reviewer_id))
    for round_id, category in scopes:
        rounds.bump_ranking(round_id, category)


def admin_set_active(user_id: int, active: bool, *, actor=None) -> User:
    """Activate or deactivate someone else's account (deactivating ends their sessions)."""
    user = get_user(user_id)
    if actor is not None and user.id == actor.id and not active:
        raise UserError("不能停用自己的账号。", status=409)
    if user.active != active:
        set_active(user, active, actor=actor)
    return get_user(user_id)


def admin_reset_password(user_id: int, new_password: str, *, actor=None) -> User:
    """The admin sets a new password (its confirmation is the form's); every session of that user ends."""
    user = get_user(user_id)
    # A 推荐单位's password typed by the admin is a first password: the unit sets its own at sign-in.
    set_password(user, new_password, actor=actor, must_change=user.role == "nominator")
    return user
