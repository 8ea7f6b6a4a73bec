"""The rounds area's forms: the phase move, round creation, the settings page and the rubric.
Every field rule and length limit is declared here once; templates render `maxlength` from them."""

from __future__ import annotations

import math

from wtforms import BooleanField, HiddenField, StringField, TextAreaField
from wtforms.validators import AnyOf, StopValidation, ValidationError

from app.core.forms import (
    Form,
    IsoDateField,
    VersionField,
    WholeNumberField,
    max_chars,
    reason_field,
    required,
)
from app.models import CATEGORY_LABELS, KIND_LABELS, METHOD_LABELS, PHASES
from app.review.assignments import MODES
from app.rounds import phases
from app.rounds import settings as rules

CRITERION_ACTIONS = ("save", "up", "down", "delete")


class PhaseForm(Form):
    """Forward (no reason) or back one phase (reason required — a rule of the move, phases.py); into
    会议审定 past the pre-flight, whose open gaps need accept_gaps and the reason (rounds/preflight.py)."""

    target = HiddenField("目标阶段", validators=[required("未知阶段"), AnyOf(PHASES, message="未知阶段")])
    reason = reason_field("退回理由", limit=phases.REASON_MAX, optional=True)
    accept_gaps = BooleanField("仍要继续")


class RoundCreateForm(Form):
    year = WholeNumberField("年份", lo=2000, hi=2100)
    name = StringField("批次名称", validators=[max_chars(rules.NAME_MAX)])


def _template_ok(label: str):
    def check(form, field):
        problem = rules.check_template(field.data or "")
        if problem:
            raise ValidationError(f"{label}{problem}")

    return check


class SettingsForm(Form):
    version = VersionField()
    name = StringField("批次名称", validators=[required("批次名称不能为空"), max_chars(rules.NAME_MAX)])
    deadline = IsoDateField("材料截止日期", message="截止日期格式应为 年-月-日，如 2024-10-08")
    slots_unit = WholeNumberField(f"{CATEGORY_LABELS['unit']}名额", hi=rules.SLOTS_MAX)
    slots_activity = WholeNumberField(f"{CATEGORY_LABELS['activity']}名额", hi=rules.SLOTS_MAX)
    method = StringField("计分方法", validators=[AnyOf(tuple(METHOD_LABELS), message="请选择计分方法")])
    list_unordered = BooleanField("名单排名不分先后")
    assignment_mode = StringField("分配方式", validators=[AnyOf(tuple(MODES), message="请选择分配方式")])
    reviewers_per_nomination = WholeNumberField("每件专家数", lo=1, hi=rules.K_MAX, blank_ok=True)
    opinion_approve_template = TextAreaField("同意推荐", validators=[
        required("同意推荐意见模板不能为空"), max_chars(rules.TEMPLATE_MAX), _template_ok("同意推荐意见模板")])
    opinion_decline_template = TextAreaField("不予推荐", validators=[
        required("不予推荐意见模板不能为空"), max_chars(rules.TEMPLATE_MAX), _template_ok("不予推荐意见模板")])

    def validate_reviewers_per_nomination(self, field):
        if self.assignment_mode.data == "balanced" and field.number is None and not field.errors:
            raise StopValidation("每件专家数不能为空")

    def quota_field(self, kind: str, category: str):
        return self[quota_name(kind, category)]

    def values(self) -> dict:
        """The typed values update_settings takes (call after validation)."""
        return {
            "name": self.name.data, "deadline": self.deadline.date, "slots_unit": self.slots_unit.number,
            "slots_activity": self.slots_activity.number, "method": self.method.data,
            "quotas": {kind: {cat: self.quota_field(kind, cat).number for cat in CATEGORY_LABELS}
                       for kind in KIND_LABELS},
            "assignment_mode": self.assignment_mode.data,
            "reviewers_per_nomination": self.reviewers_per_nomination.number,
            "opinion_approve_template": self.opinion_approve_template.data,
            "opinion_decline_template": self.opinion_decline_template.data,
            "list_unordered": bool(self.list_unordered.data),
        }


def quota_name(kind: str, category: str) -> str:
    return f"quota_{kind}_{category}"


# One quota field per nominator kind and category (quota_city_unit, …); FormMeta takes fields set later.
for _kind, _kind_label in KIND_LABELS.items():
    for _cat, _cat_label in CATEGORY_LABELS.items():
        setattr(SettingsForm, quota_name(_kind, _cat),
                WholeNumberField(f"{_kind_label}{_cat_label}推荐名额", hi=rules.QUOTA_MAX))


def settings_form_for(rnd) -> SettingsForm:
    """The settings form filled from the round (GET)."""
    data = {"version": rnd.version, "name": rnd.name, "deadline": rnd.deadline.isoformat() if rnd.deadline else "",
            "slots_unit": str(rnd.slots_unit), "slots_activity": str(rnd.slots_activity), "method": rnd.method,
            "list_unordered": bool(rnd.list_unordered), "assignment_mode": rnd.assignment_mode,
            "reviewers_per_nomination": str(rnd.reviewers_per_nomination or ""),
            "opinion_approve_template": rnd.opinion_approve_template,
            "opinion_decline_template": rnd.opinion_decline_template}
    for kind in KIND_LABELS:
        for cat in CATEGORY_LABELS:
            data[quota_name(kind, cat)] = str(rnd.quota(kind, cat))
    return SettingsForm(formdata=None, data=data)


class ScoreNumberField(StringField):
    """A positive finite number typed as text (满分, 步长); `.number` is the float or None."""

    def __init__(self, label=None, validators=None, **kwargs):
        kwargs.setdefault("render_kw", {"maxlength": 6, "inputmode": "decimal"})
        super().__init__(label, validators, **kwargs)
        self.number: float | None = None

    def pre_validate(self, form):
        self.number = None
        label = self.label.text
        try:
            value = float((self.data or "").strip())
        except ValueError:
            raise StopValidation(f"{label}应为数字") from None
        if not math.isfinite(value) or value <= 0:
            raise StopValidation(f"{label}应大于 0")
        self.number = value


class CriterionForm(Form):
    name = StringField("指标名称", validators=[required("指标名称不能为空"), max_chars(rules.CRITERION_NAME_MAX)])
    max_score = ScoreNumberField("满分")
    step = ScoreNumberField("评分步长")
    guidance = TextAreaField("评分说明", validators=[max_chars(rules.GUIDANCE_MAX)])

    def validate_max_score(self, field):
        if field.number is not None and field.number > rules.CRITERION_MAX_SCORE:
            raise ValidationError(f"满分不能超过 {rules.CRITERION_MAX_SCORE}")

    def validate_step(self, field):
        mx, step = self.max_score.number, field.number
        if not mx or not step or self.max_score.errors:
            return
        if step > mx:
            raise ValidationError("评分步长不能大于满分")
        if abs(mx / step - round(mx / step)) > 1e-9:
            raise ValidationError("满分应为评分步长的整数倍（如满分 30、步长 0.5）")

    def values(self) -> dict:
        return {"name": self.name.data, "max_score": self.max_score.number, "step": self.step.number,
                "guidance": self.guidance.data or ""}


class CriterionActionForm(Form):
    """Which button of a criterion's form was pressed; only "save" needs the fields (CriterionForm)."""

    action = StringField("操作", default="save", validators=[AnyOf(CRITERION_ACTIONS, message="未知的操作")])
