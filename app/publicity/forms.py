"""Forms of the 公示: the public objection form, the staff's handling forms and the admin's settings.
Limits are the model's constants (app/models/publicity.py); templates render `maxlength` from them."""

from __future__ import annotations

import re

from flask_wtf.file import FileField
from wtforms import BooleanField, StringField, TextAreaField
from wtforms.validators import Optional, Regexp, ValidationError

from app.core.forms import Form, IsoDateField, WholeNumberField, max_chars, required
from app.models.publicity import (
    EMAIL_MAX,
    FACTS_MAX,
    NAME_MAX,
    NOTE_MAX,
    NOTICE_BODY_MAX,
    NOTICE_NUMBER_MAX,
    NOTICE_RECIPIENTS_MAX,
    OBJECTION_RESULTS,
    PHONE_MAX,
    UNIT_MAX,
)
from app.publicity import calendar
from app.publicity.operations import ATTACHMENT_MAX_BYTES

FACTS_MIN = 10


def _version() -> WholeNumberField:
    # The range is checked on the text (WholeNumberField), so a forged huge number is a field error.
    return WholeNumberField("版本", message="版本号无效：请刷新页面后重试。")


_PHONE = re.compile(r"^[0-9+\-() ]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ObjectionForm(Form):
    nomination_id = WholeNumberField("异议涉及的推荐对象", message="请从公示名单中选择异议涉及的推荐对象")
    name = StringField("姓名", validators=[required("请填写真实姓名（匿名异议不予受理）"), max_chars(NAME_MAX)])
    unit = StringField("工作单位", validators=[Optional(), max_chars(UNIT_MAX)])
    phone = StringField("联系电话", validators=[required("请填写联系电话"), max_chars(PHONE_MAX),
                                             Regexp(_PHONE, message="联系电话只能包含数字、空格和 + - ( )")])
    email = StringField("电子邮箱", validators=[Optional(), max_chars(EMAIL_MAX),
                                             Regexp(_EMAIL, message="电子邮箱格式不正确")])
    facts = TextAreaField("异议事实和理由", validators=[required("请填写异议的具体事实和理由"), max_chars(FACTS_MAX)])
    attachment = FileField("证明材料（可选，PDF、JPG 或 PNG，不超过 10 MB）")
    pledge = BooleanField("本人承诺以上内容属实，并以真实身份提出异议", validators=[required("请勾选承诺")])

    def validate_phone(self, field):
        if len(re.sub(r"\D", "", field.data or "")) < 7:
            raise ValidationError("联系电话至少 7 位数字")

    def validate_facts(self, field):
        if len(field.data or "") < FACTS_MIN:
            raise ValidationError(f"异议事实不少于 {FACTS_MIN} 字")

    def read_attachment(self) -> tuple[bytes, str] | None:
        """At most one byte over the limit, so the operation can refuse an oversized file unread."""
        upload = self.attachment.data
        if not upload or not getattr(upload, "filename", ""):
            return None
        return upload.read(ATTACHMENT_MAX_BYTES + 1), upload.filename


class HandleForm(Form):
    """受理: nothing but the version the page showed."""

    version = _version()


class RejectForm(Form):
    reason = TextAreaField("不予受理的理由", validators=[required("请填写不予受理的理由"), max_chars(NOTE_MAX)])
    version = _version()


class NoteForm(Form):
    note = TextAreaField("核实情况", validators=[required("请填写核实情况"), max_chars(NOTE_MAX)])
    version = _version()


class ConcludeForm(Form):
    result = StringField("处理结果", validators=[required("请选择处理结果")])
    note = TextAreaField("处理意见", validators=[required("请填写处理意见"), max_chars(NOTE_MAX)])
    version = _version()

    def validate_result(self, field):
        if field.data not in OBJECTION_RESULTS:
            raise ValidationError("处理结果只能是维持推荐或撤销推荐")


class PeriodForm(Form):
    start = IsoDateField("公示起始日期")
    days = WholeNumberField("公示天数（工作日）", lo=calendar.DAYS_MIN, hi=calendar.DAYS_MAX)
    manual_end = IsoDateField("公示截止日期（仅当节假日日历未包含该年份时手工填写）")
    version = _version()


class NoticeForm(Form):
    number = StringField("发文字号", validators=[required("请填写发文字号"), max_chars(NOTICE_NUMBER_MAX)])
    recipients = TextAreaField("主送机关", validators=[required("请填写主送机关"), max_chars(NOTICE_RECIPIENTS_MAX)])
    body_template = TextAreaField("正文模板", validators=[required("请填写正文模板"), max_chars(NOTICE_BODY_MAX)])
    version = _version()
