"""The review area's input forms: the score panel (its fields built per criterion at run time, as
pretalx builds its review form), 回避, reopening a sheet, and the assignment pages.

The numbers the forms enforce are the ones the templates render as `maxlength` and the score panel's
script reads back from the page, so a limit lives in one place.
"""

from __future__ import annotations

from decimal import Decimal

from wtforms import DecimalField, HiddenField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, NumberRange, Optional, StopValidation

from app.core.forms import Form, ValidationError, VersionField, limits, max_chars, reason_field
from app.models import CATEGORY_LABELS
from app.models.review import COMMENT_MAX
from app.review import assignments, recusals
from app.review.scoring import REOPEN_REASON_MAX, RubricItem, Target, parse_value

SHEET_ACTIONS = ("save", "submit", "next")


# --- the score panel ---------------------------------------------------------------------------

class ScoreField(DecimalField):
    """One criterion's score; blank is "not scored yet". The text is read and checked by scoring's own
    rule (full-width digits, "。" for a point, not negative, at most the criterion's max, a multiple of
    its step), so the form and a direct call of the operation can never disagree about a valid score.
    The min/max flags are what the template renders on the number input."""

    def __init__(self, item: RubricItem, **kwargs):
        super().__init__(item.name, validators=[Optional(), NumberRange(min=0, max=item.max_score)], **kwargs)
        self.item = item
        self.raw = ""
        self._parse_error = None

    def process_formdata(self, valuelist):
        self.raw = (valuelist[0] if valuelist else "") or ""
        self.data, self._parse_error = parse_value(self.raw, self.item)

    def pre_validate(self, form):
        if self._parse_error:
            raise StopValidation(self._parse_error)


class SheetForm(Form):
    """The fixed part of the score panel; `sheet_form()` adds one ScoreField per criterion."""

    comment = TextAreaField("评审意见", validators=[max_chars(COMMENT_MAX)])
    version = VersionField()
    action = StringField("操作", default="save")

    def score_fields(self) -> list[ScoreField]:
        return [f for f in self if isinstance(f, ScoreField)]

    @property
    def submit_flag(self) -> bool:
        return self.action_name == "submit"

    @property
    def action_name(self) -> str:
        # An unknown action is the harmless save, as the first button (what Enter presses) is.
        return self.action.data if self.action.data in SHEET_ACTIONS else "save"

    def raw_scores(self) -> dict[int, str]:
        """What the reviewer typed, per criterion id (the panel shows it back on a 422 or a 409)."""
        return {f.item.id: f.raw for f in self.score_fields()}

    def scores(self) -> dict[int, Decimal | None]:
        return {f.item.id: f.data for f in self.score_fields()}

    def field_errors(self) -> dict:
        """Errors keyed as the panel shows them: criterion id, or "comment"."""
        out: dict = {}
        for f in self.score_fields():
            if f.errors:
                out[f.item.id] = f.errors[0]
        if self.comment.errors:
            out["comment"] = self.comment.errors[0]
        return out


def score_field_name(criterion_id: int) -> str:
    return f"score-{criterion_id}"


def sheet_form(target: Target, **kwargs) -> SheetForm:
    """The score panel's form for one nomination: its rubric decides the fields."""
    fields = {score_field_name(item.id): ScoreField(item) for item in target.rubric}
    form_class = type("NominationSheetForm", (SheetForm,), fields)
    return form_class(**kwargs)


SHEET_LIMITS = limits(SheetForm)


# --- 回避 and reopening ----------------------------------------------------------------------------

class RecusalForm(Form):
    reason = reason_field("回避理由", limit=recusals.REASON_MAX)


class ReopenSheetForm(Form):
    reason = reason_field("退回理由", limit=REOPEN_REASON_MAX)


RECUSAL_LIMITS = limits(RecusalForm)
REOPEN_LIMITS = limits(ReopenSheetForm)


# --- assignments -------------------------------------------------------------------------------

def _category_choices():
    return [("", "全部类别"), *CATEGORY_LABELS.items()]


class WholeNumberField(IntegerField):
    """A whole number with one Chinese message for every way it can be wrong (not a number, out of range)."""

    def __init__(self, label, *, lo: int, hi: int, message: str, optional: bool = False, **kwargs):
        validators = [Optional()] if optional else [InputRequired(message=message)]
        validators.append(NumberRange(min=lo, max=hi, message=message))
        super().__init__(label, validators=validators, **kwargs)
        self.message = message

    def process_formdata(self, valuelist):
        text = (valuelist[0] if valuelist else "").strip()
        self.raw_data = [text] if text else []
        if not text:
            self.data = None
            return
        try:
            self.data = int(text)
        except ValueError:
            self.data = None
            raise ValueError(self.message) from None


K_MESSAGE = f"每件推荐对象的专家数应为 1–{assignments.K_MAX} 的整数"
CAP_MESSAGE = f"每位专家上限应为 1–{assignments.CAP_MAX} 的整数，或留空表示不限"


class AssignmentRunForm(Form):
    mode = SelectField("分配方式", choices=[("", "请选择"), *assignments.MODE_LABELS.items()],
                       validate_choice=False)
    k = WholeNumberField("每件专家数", lo=1, hi=assignments.K_MAX, message=K_MESSAGE, optional=True)
    cap = WholeNumberField("每位专家上限", lo=1, hi=assignments.CAP_MAX, message=CAP_MESSAGE, optional=True)
    scope = SelectField("范围", choices=_category_choices(), validate_choice=False)

    def validate_mode(self, field):
        if field.data not in assignments.MODES:
            raise StopValidation("请选择分配方式")

    def validate_k(self, field):
        if self.mode.data == "balanced" and field.data is None and not field.errors:
            raise ValidationError(K_MESSAGE)

    @property
    def category(self) -> str | None:
        return self.scope.data if self.scope.data in CATEGORY_LABELS else None

    def message(self) -> str:
        errors = self.first_errors()
        if "mode" in errors:
            return "请选择分配方式。"
        return "；".join(errors.values()) + "。"


class CellForm(Form):
    """One matrix checkbox toggled (htmx): `cell` names the pair, `a` lists the checked cells."""

    cell = HiddenField("单元格")
    category = HiddenField("类别")
    page = IntegerField("页码", validators=[Optional()])

    def validate_cell(self, field):
        if parse_pair(field.data) is None:
            raise ValidationError("请求无效。")


class MatrixPageForm(Form):
    category = HiddenField("类别")
    page = IntegerField("页码", validators=[Optional()])


PAIR_ACTIONS = ("assign", "unassign", "recuse", "unrecuse")


class PairForm(Form):
    reviewer = IntegerField("专家", validators=[Optional()])
    nomination = IntegerField("推荐对象", validators=[Optional()])
    page = IntegerField("页码", validators=[Optional()])
    action = StringField("操作")
    reason = reason_field("理由", limit=assignments.REASON_MAX, optional=True)
    recusal_reason = reason_field("回避理由", limit=recusals.REASON_MAX, optional=True)

    def validate_action(self, field):
        if field.data not in PAIR_ACTIONS:
            raise ValidationError("未知操作。")


PAIR_LIMITS = limits(PairForm)


def parse_pair(value: str | None) -> tuple[int, int] | None:
    from app.core.params import parse_id

    left, _, right = (value or "").partition("-")
    r, n = parse_id(left), parse_id(right)
    return None if r is None or n is None else (r, n)
