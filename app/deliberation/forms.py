"""The deliberation page's input forms. Their limits are the operations' own constants, and the
template renders `maxlength` from them."""

from __future__ import annotations

from flask_wtf.file import FileField
from wtforms import HiddenField, StringField, TextAreaField
from wtforms.validators import Length

from app.core.forms import Form, IsoDateField, ValidationError, VersionField, limits, required
from app.deliberation import operations as decisions
from app.rounds import settings as round_rules


def _chars(limit: int, what: str) -> Length:
    # Length, like core's max_chars, sets the maxlength flag; the wording is the operations' own.
    return Length(max=limit, message=f"{what}不能超过 {limit} 个字符。")


def _text(label: str, limit: int, *, empty: str | None = None, line: bool = False):
    validators = [_chars(limit, label)]
    if empty:
        validators.insert(0, required(empty))
    return (StringField if line else TextAreaField)(label, validators=validators)


class _OnPage(Form):
    """Forms posted from the category page carry the category to return to."""

    category = HiddenField("类别")


class DecideForm(Form):
    outcome = StringField("审定结果")
    reason = _text("理由", decisions.REASON_MAX, line=True)
    # Set only when the page asked what to do with a hand-written 审定意见 (keep / template).
    opinion_choice = StringField("审定意见处理方式")
    version = VersionField()

    def validate_opinion_choice(self, field):
        if (field.data or "") not in ("", *decisions.OPINION_CHOICES):
            raise ValidationError("未知的审定意见处理方式。")

    def validate_outcome(self, field):
        if field.data not in decisions.OUTCOMES:
            raise ValidationError("审定结果只能是通过或不通过。")


class OpinionForm(Form):
    opinion = _text("审定意见", decisions.OPINION_MAX, empty="审定意见不能为空。")
    version = VersionField()


class BulkForm(_OnPage):
    """预填 / 按模板填写: nothing but the CSRF token and, for the latter, whether to overwrite."""

    overwrite = StringField("覆盖已填写的意见")

    @property
    def overwrite_flag(self) -> bool:
        return self.overwrite.data == "1"


def _placeholders_known(form, field):
    # The round settings' rule, so both editors of the templates say the same thing.
    if not field.data:
        raise ValidationError("审定意见模板不能为空。")
    problem = round_rules.check_template(field.data)
    if problem:
        raise ValidationError(f"{field.label.text}{problem}。")


class TemplatesForm(_OnPage):
    approve_template = TextAreaField("通过意见模板", validators=[
        required("审定意见模板不能为空。"), _chars(decisions.TEMPLATE_MAX, "审定意见模板"), _placeholders_known])
    decline_template = TextAreaField("不通过意见模板", validators=[
        required("审定意见模板不能为空。"), _chars(decisions.TEMPLATE_MAX, "审定意见模板"), _placeholders_known])


class ApprovalDateForm(_OnPage):
    approval_date = IsoDateField("审定日期", message="日期格式应为 YYYY-MM-DD。")

    def validate_approval_date(self, field):
        if field.date is None:
            raise ValidationError("日期格式应为 YYYY-MM-DD。")


class SealForm(_OnPage):
    seal = FileField("印章图片")

    def read(self) -> bytes:
        """At most one byte over the limit, so the operation can refuse an oversized file without
        reading all of it."""
        upload = self.seal.data
        return upload.read(decisions.SEAL_MAX_BYTES + 1) if upload else b""


class PhaseForm(_OnPage):
    """进入公示 from its pre-flight page: with open gaps, the box that accepts them and the reason
    (rounds/preflight.py decides whether they are needed)."""

    accept_gaps = StringField("仍要继续")
    reason = _text("理由", decisions.REASON_MAX)

    @property
    def gaps_accepted(self) -> bool:
        return self.accept_gaps.data == "1"


class FinalizeForm(PhaseForm):
    confirm = StringField("确认")

    def validate_confirm(self, field):
        if field.data != "1":
            raise ValidationError("请勾选确认后再定稿。")


class ReopenForm(_OnPage):
    reason = _text("理由", decisions.REASON_MAX, empty="重新开放必须填写理由。")


LIMITS = {**limits(DecideForm), **limits(OpinionForm), **limits(TemplatesForm),
          "reopen_reason": limits(ReopenForm)["reason"], "phase_reason": limits(PhaseForm)["reason"]}

__all__ = ["DecideForm", "OpinionForm", "BulkForm", "TemplatesForm", "ApprovalDateForm", "SealForm", "PhaseForm",
           "FinalizeForm", "ReopenForm", "LIMITS"]
