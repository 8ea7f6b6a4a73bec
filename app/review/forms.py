"""The review area's input forms: the score panel (its fields built per criterion at run time, as
pretalx builds its review form), 回避, reopening a sheet, and the assignment pages.

The numbers the forms enforce are the ones the templates render as `maxlength` and the score panel's
script reads back from the page, so a limit lives in one place.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from wtforms import DecimalField, Field, HiddenField, StringField, TextAreaField
from wtforms.validators import NumberRange, Optional, StopValidation

from app.core.forms import (
    Form,
    ValidationError,
    VersionField,
    WholeNumberField,
    clean_line,
    limits,
    max_chars,
    reason_field,
)
from app.core.params import parse_id
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

    class Meta:
        # The app-wide CSRFProtect has already checked this request's token before the view runs (a
        # request without it is a 400 and never reaches here); checking it again per form would sign
        # and verify the token twice on the hottest path of the system.
        csrf = False

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
    return _sheet_form_class(target.rubric)(**kwargs)


@lru_cache(maxsize=256)
def _sheet_form_class(rubric: tuple[RubricItem, ...]) -> type[SheetForm]:
    # Building a form class costs more than the whole save's SQL; a rubric (plain frozen values,
    # so a changed criterion is another key) gets its class once per process.
    fields = {score_field_name(item.id): ScoreField(item) for item in rubric}
    return type("NominationSheetForm", (SheetForm,), fields)


SHEET_LIMITS = limits(SheetForm)


# --- 回避 and reopening ----------------------------------------------------------------------------

class RecusalForm(Form):
    reason = reason_field("回避理由", limit=recusals.REASON_MAX)


class ReopenSheetForm(Form):
    reason = reason_field("退回理由", limit=REOPEN_REASON_MAX)


RECUSAL_LIMITS = limits(RecusalForm)
REOPEN_LIMITS = limits(ReopenSheetForm)


# --- assignments -------------------------------------------------------------------------------

K_MESSAGE = f"每件推荐对象的专家数应为 1–{assignments.K_MAX} 的整数"
CAP_MESSAGE = f"每位专家上限应为 1–{assignments.CAP_MAX} 的整数，或留空表示不限"


class ValueList(Field):
    """Every value posted under one name (checkboxes named "a", the page's hidden "row"/"col" ids),
    each through the one cleaning filter."""

    def process_formdata(self, valuelist):
        self.data = [clean_line(v) for v in valuelist]

    def _value(self):
        return ""


class IdList(ValueList):
    """Repeated ids; a forged one (not a whole number) refuses the form."""

    def pre_validate(self, form):
        self.numbers = [parse_id(v) for v in self.data or []]
        if any(n is None for n in self.numbers):
            raise StopValidation("页面数据已过期，请刷新后重试。")


class AssignmentRunForm(Form):
    # Plain text checked against the operation's own lists (the <select>s are written in the template).
    mode = StringField("分配方式")
    k = WholeNumberField("每件专家数", lo=1, hi=assignments.K_MAX, blank_ok=True, message=K_MESSAGE)
    cap = WholeNumberField("每位专家上限", lo=1, hi=assignments.CAP_MAX, blank_ok=True, message=CAP_MESSAGE)
    scope = StringField("范围")

    def validate_mode(self, field):
        if field.data not in assignments.MODES:
            raise StopValidation("请选择分配方式")

    def validate_k(self, field):
        if self.mode.data == "balanced" and self.k.number is None:
            raise ValidationError(K_MESSAGE)

    @property
    def category(self) -> str | None:
        return self.scope.data if self.scope.data in CATEGORY_LABELS else None

    def message(self) -> str:
        errors = self.first_errors()
        if "csrf_token" in errors:
            return self.error_message()
        if "mode" in errors:
            return "请选择分配方式。"
        return "；".join(errors.values()) + "。"


class CellForm(Form):
    """One matrix checkbox toggled (htmx): `cell` names the pair; it is assigned when `a`, the list of
    checked cells the row posts, contains it."""

    cell = HiddenField("单元格")
    a = ValueList("已选")
    category = HiddenField("类别")
    page = WholeNumberField("页码", lo=1, blank_ok=True, message="页码无效")

    def validate_cell(self, field):
        if parse_pair(field.data) is None:
            raise ValidationError("请求无效。")

    @property
    def pair(self) -> tuple[int, int]:
        return parse_pair(self.cell.data)

    @property
    def wanted(self) -> bool:
        return self.cell.data in set(self.checked())

    def checked(self) -> list[str]:
        return self.a.data or []


class MatrixPageForm(Form):
    """The no-JavaScript save of one matrix page: the shown rows and columns, and the checked cells."""

    col = IdList("专家")
    row = IdList("推荐对象")
    a = ValueList("已选")
    category = HiddenField("类别")
    page = WholeNumberField("页码", lo=1, blank_ok=True, message="页码无效")

    def validate_a(self, field):
        if any(parse_pair(v) is None for v in field.data or []):
            raise ValidationError("请求无效。")

    def reviewer_ids(self) -> list[int]:
        return self.col.numbers

    def nomination_ids(self) -> list[int]:
        return self.row.numbers

    def checked(self) -> set[tuple[int, int]]:
        return {parse_pair(v) for v in self.a.data or []}


PAIR_ACTIONS = ("assign", "unassign", "recuse", "unrecuse")


class PairForm(Form):
    reviewer = WholeNumberField("专家", lo=1, message="请求无效。")
    nomination = WholeNumberField("推荐对象", lo=1, message="请求无效。")
    page = WholeNumberField("页码", lo=1, blank_ok=True, message="页码无效")
    action = StringField("操作")
    reason = reason_field("理由", limit=assignments.REASON_MAX, optional=True)
    recusal_reason = reason_field("回避理由", limit=recusals.REASON_MAX, optional=True)

    def validate_action(self, field):
        if field.data not in PAIR_ACTIONS:
            raise ValidationError("未知操作。")

    def malformed(self) -> bool:
        """A forged request (no such action, no ids): 400, not a message beside a field."""
        errors = self.first_errors()
        return any(name in errors for name in ("action", "reviewer", "nomination", "csrf_token"))


PAIR_LIMITS = limits(PairForm)


def parse_pair(value: str | None) -> tuple[int, int] | None:
    left, _, right = (value or "").partition("-")
    r, n = parse_id(left), parse_id(right)
    return None if r is None or n is None else (r, n)
