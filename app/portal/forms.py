"""The portal's WTForms. The 附件 fields are the intake declarations (app.intake.forms UnitFields /
ActivityFields — one home for every limit); the portal adds CSRF, the optimistic version and which
button was pressed, and leaves out 收到日期 (the system stamps the arrival)."""

from __future__ import annotations

from wtforms import HiddenField, StringField, TextAreaField
from wtforms.fields import FileField
from wtforms.validators import ValidationError

from app.core.forms import Form
from app.intake import forms as intake_forms
from app.intake.forms import DayField, Filled, MaxChars
from app.intake.limits import REASON_MAX
from app.models.nomination import RETURN_NOTE_MAX

OPS = {"save": "保存草稿", "submit": "提交"}


def _op(form, field):
    if field.data not in OPS:
        raise ValidationError("请选择“保存草稿”或“提交”")


class _PortalPage(Form):
    op = StringField("操作", [_op], default="save")

    def values(self) -> dict:
        """The typed 附件 values for the portal operations."""
        skip = ("csrf_token", "version", "op", "received_date")
        return {name: f.data for name, f in self._fields.items() if name not in skip}


class _Versioned:
    version = HiddenField("版本", [Filled("缺少版本号：请刷新页面后重试。")])


class UnitNewForm(intake_forms.UnitFields, _PortalPage):
    pass


class ActivityNewForm(intake_forms.ActivityFields, _PortalPage):
    pass


class UnitEditForm(_Versioned, UnitNewForm):
    pass


class ActivityEditForm(_Versioned, ActivityNewForm):
    pass


def nomination_form(category: str, *, edit: bool) -> type[Form]:
    if category == "unit":
        return UnitEditForm if edit else UnitNewForm
    return ActivityEditForm if edit else ActivityNewForm


PhotoForm = intake_forms.PhotoForm  # the same upload form as the admin's


class StampedForm(Form):
    stamped = FileField("盖章件", [intake_forms._some_files("请选择盖章件文件（PDF 或 JPG/PNG 图片）")])


class ConfirmForm(Form):
    """A button that writes (撤回, 删除, 受理): CSRF and POST only."""


class MoveForm(Form):
    step = StringField("方向", [Filled("请选择方向")])

    def validate_step(self, field):
        if field.data not in ("-1", "1"):
            raise ValidationError("方向只能是前移或后移")


class ReturnForm(Form):
    note = TextAreaField("退回说明", [Filled("请填写退回说明（推荐单位会看到）"), MaxChars(RETURN_NOTE_MAX)])


class ExtensionForm(Form):
    nominator_id = StringField("推荐单位", [Filled("请选择推荐单位")])
    until = DayField("延期至", [Filled("请填写延期截止日期")])
    reason = TextAreaField("延期理由", [Filled("请填写延期理由"), MaxChars(REASON_MAX)])
