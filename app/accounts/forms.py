"""The accounts area's forms: sign-in, one's own password, and the admin's user pages.
Every field rule and length limit is declared here once; templates render `maxlength` from them."""

from __future__ import annotations

from flask_wtf.file import FileField
from wtforms import BooleanField, HiddenField, PasswordField, StringField
from wtforms.validators import AnyOf, EqualTo, Length, Optional, Regexp, StopValidation

from app.accounts.operations import (
    DISPLAY_NAME_MAX,
    EMAIL_MAX,
    PASSWORD_MAX,
    PASSWORD_MIN,
    PHONE_MAX,
    USERNAME_MAX,
    USERNAME_PATTERN,
)
from app.core.forms import Form, WholeNumberField, max_chars, required
from app.models import ROLE_LABELS

_TOO_LONG = "用户名或密码过长。"


class LoginForm(Form):
    username = StringField("用户名", validators=[Length(max=USERNAME_MAX, message=_TOO_LONG)])
    password = PasswordField("密码", validators=[Length(max=PASSWORD_MAX, message=_TOO_LONG)])

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        if not self.username.data or not self.password.data:
            self.username.errors = [*self.username.errors, "请输入用户名和密码。"]
            return False
        return ok

    def message(self) -> str:
        errors = self.first_errors()
        return errors.get("username") or errors.get("password") or self.page_message()


def _new_password(label: str = "密码"):
    return PasswordField(label, validators=[
        Length(min=PASSWORD_MIN, message=f"密码至少需要 {PASSWORD_MIN} 个字符"),
        Length(max=PASSWORD_MAX, message=f"密码不能超过 {PASSWORD_MAX} 个字符")])


class AccountPasswordForm(Form):
    current = PasswordField("当前密码", validators=[required("请输入当前密码"), Length(max=PASSWORD_MAX)])
    new = _new_password("新密码")
    confirm = PasswordField("再次输入新密码", validators=[EqualTo("new", message="两次输入的新密码不一致")])


def _affiliation():
    # A <select> of nominators: any other value is forged or stale, so one message covers them all.
    return WholeNumberField("所在推荐单位", lo=1, blank_ok=True, message="找不到该推荐单位")


def _role():
    return StringField("角色", validators=[AnyOf(tuple(ROLE_LABELS), message="请选择角色")])


CREDENTIALS = {"password": "由管理员设定初始密码", "otp": "生成一次性密码（首次登录后须改密码）",
               "invite": "生成邀请链接（有效期内设置密码）"}


def _email():
    return StringField("电子邮箱", validators=[Optional(), max_chars(EMAIL_MAX)])


def _phone():
    return StringField("联系电话", validators=[Optional(), max_chars(PHONE_MAX)])


def _credential(choices=tuple(CREDENTIALS), default="password"):
    return StringField("登录凭据", default=default, validators=[AnyOf(choices, message="请选择登录凭据的发放方式")])


class _NominatorNeedsUnit:
    def validate_affiliation_id(self, field):
        if self.role.data == "nominator" and not (field.data or "").strip():
            raise StopValidation("推荐单位账号必须选择所属推荐单位")


class UserCreateForm(_NominatorNeedsUnit, Form):
    username = StringField("用户名（登录用）", validators=[
        required("用户名不能为空"), Length(max=USERNAME_MAX, message=f"用户名不能超过 {USERNAME_MAX} 个字符"),
        Regexp(USERNAME_PATTERN, message="用户名只能包含字母、数字、下划线、点和连字符")])
    display_name = StringField("姓名", validators=[Optional(), max_chars(DISPLAY_NAME_MAX)])
    role = _role()
    affiliation_id = _affiliation()
    email = _email()
    phone = _phone()
    credential = _credential()
    mail_invite = BooleanField("把邀请链接发到该账号的电子邮箱")
    password = PasswordField("初始密码（至少 8 个字符）", validators=[
        Optional(), Length(min=PASSWORD_MIN, message=f"密码至少需要 {PASSWORD_MIN} 个字符"),
        Length(max=PASSWORD_MAX, message=f"密码不能超过 {PASSWORD_MAX} 个字符")])

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        # Optional() ends the password's own chain when it is empty; only a typed credential needs it.
        if self.credential.data == "password" and not self.password.data:
            self.password.errors = [*self.password.errors, f"密码至少需要 {PASSWORD_MIN} 个字符"]
            return False
        return ok


class UserEditForm(_NominatorNeedsUnit, Form):
    display_name = StringField("姓名", validators=[required("姓名不能为空"), max_chars(DISPLAY_NAME_MAX)])
    role = _role()
    affiliation_id = _affiliation()
    email = _email()
    phone = _phone()


class CredentialForm(Form):
    """重置密码 by a new one-time password or invitation link."""

    credential = _credential(("otp", "invite"), "otp")
    mail_invite = BooleanField("把邀请链接发到该账号的电子邮箱")


class FirstPasswordForm(Form):
    """设置新密码: after a one-time password, or from an invitation link (no current password)."""

    new = _new_password("新密码（至少 8 个字符）")
    confirm = PasswordField("再次输入新密码", validators=[EqualTo("new", message="两次输入的新密码不一致")])


IMPORT_CREDENTIALS = {"otp": "一次性密码（打印后交给各单位）", "invite": "邀请链接"}


class RegistryImportForm(Form):
    file = FileField("推荐单位联系人表（.xlsx）")
    credential = _credential(tuple(IMPORT_CREDENTIALS), "otp")
    mail_invite = BooleanField("把邀请链接发到各单位的电子邮箱")

    def validate_file(self, field):
        if not getattr(field.data, "filename", None):
            raise StopValidation("请选择要导入的 .xlsx 文件")


class RegistryConfirmForm(Form):
    """The preview's 确认导入: the checked rows travel back signed (accounts/registry.py)."""

    payload = HiddenField("导入内容", validators=[required("导入内容缺失，请重新上传文件")])


class UserActiveForm(Form):
    active = HiddenField("启用", validators=[AnyOf(("0", "1"), message="无效的操作")])
    back = HiddenField("返回", validators=[Optional(), AnyOf(("list",), message="无效的操作")])


class UserPasswordForm(Form):
    password = _new_password("新密码（至少 8 个字符）")
    confirm = PasswordField("再次输入", validators=[EqualTo("password", message="两次输入的新密码不一致")])



def edit_form_for(user) -> UserEditForm:
    return UserEditForm(formdata=None, data={"display_name": user.display_name, "role": user.role,
                                             "affiliation_id": str(user.affiliation_id or ""),
                                             "email": user.email or "", "phone": user.phone or ""})
