"""The password rule, in one place: the admin's forms, one's own change, the invitation and the forced
first password all check it."""

from __future__ import annotations

from app.core.errors import UserError

PASSWORD_MIN = 8
PASSWORD_MAX = 128


def validate_password(password: str) -> None:
    if len(password or "") < PASSWORD_MIN:
        raise UserError(f"密码至少需要 {PASSWORD_MIN} 个字符。", {"password": f"至少 {PASSWORD_MIN} 个字符"})
    if len(password) > PASSWORD_MAX:
        raise UserError(f"密码不能超过 {PASSWORD_MAX} 个字符。", {"password": "过长"})
