from __future__ import annotations

import secrets
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Integer, String
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models._base import Timestamps

ROLES = ("admin", "chair", "reviewer", "nominator")
ROLE_LABELS = {"admin": "管理员", "chair": "评审委员会主任", "reviewer": "评审专家", "nominator": "推荐单位"}
NOMINATOR_KINDS = ("city", "member", "society")
KIND_LABELS = {"city": "市州科协", "member": "省直单位", "society": "省级学会"}


def new_session_token() -> str:
    return secrets.token_urlsafe(24)


class Nominator(Timestamps, db.Model):
    __tablename__ = "nominators"
    __table_args__ = (
        CheckConstraint("kind IN ('city','member','society')", name="kind"),
        CheckConstraint("(quota_unit IS NULL OR quota_unit >= 0) AND (quota_activity IS NULL OR quota_activity >= 0)", name="quota"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    short_name: Mapped[str] = mapped_column(String(50), default="")
    kind: Mapped[str] = mapped_column(String(10))
    position: Mapped[int] = mapped_column(Integer, default=0)
    quota_unit: Mapped[int | None] = mapped_column(Integer)
    quota_activity: Mapped[int | None] = mapped_column(Integer)

    @property
    def kind_label(self) -> str:
        return KIND_LABELS[self.kind]


class User(UserMixin, Timestamps, db.Model):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('admin','chair','reviewer','nominator')", name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(50), unique=True)
    display_name: Mapped[str] = mapped_column(String(50))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(10))
    affiliation_id: Mapped[int | None] = mapped_column(ForeignKey("nominators.id", ondelete="SET NULL"))
    active: Mapped[bool] = mapped_column(default=True)
    # flask-login's alternative id: rotating it signs out every existing session of this user.
    session_token: Mapped[str] = mapped_column(String(64), default=new_session_token, unique=True)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A one-time password or an invitation link must be replaced by the user's own password first.
    must_change_password: Mapped[bool] = mapped_column(default=False, server_default=sa_false())
    # sha256 of the invitation link's token (the token itself is shown once), and when it stops working.
    invite_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    invite_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    email: Mapped[str] = mapped_column(String(200), default="", server_default="")
    phone: Mapped[str] = mapped_column(String(50), default="", server_default="")

    affiliation: Mapped[Nominator | None] = relationship()

    def get_id(self) -> str:
        return self.session_token

    @property
    def is_active(self) -> bool:  # flask-login refuses inactive users
        return bool(self.active)

    @property
    def role_label(self) -> str:
        return ROLE_LABELS[self.role]
