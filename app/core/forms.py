"""The base every input form builds on (WTForms through flask-wtf).

- One cleaning filter for every free-text field: CRLF → LF, control and zero-width characters (NUL
  included) dropped, NBSP and ideographic spaces to plain spaces, line ends and ends trimmed. Single-line
  fields (`StringField`) also fold inner runs of whitespace; `TextAreaField` keeps its line breaks.
  Passwords are never touched.
- Messages are Chinese (WTForms' own `zh` catalogue, plus ours for the limits we declare).
- `Length(max=…)` sets the `maxlength` flag, so a template renders `maxlength` from the same number the
  validator enforces; `limits()` hands the same numbers to JavaScript.
- `validate_on_submit()` is true only for POST/PUT/PATCH/DELETE — the methods CSRF protection covers —
  so a view's write branch can never run for another method.
"""

from __future__ import annotations

import re
from datetime import date

from flask_wtf import FlaskForm
from wtforms import Field, HiddenField, IntegerField, PasswordField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange, StopValidation, ValidationError

from app.core.errors import UserError
from app.core.params import MAX_ID

# C0 and C1 controls except TAB/LF/CR, DEL, zero-width and direction marks, line/paragraph separators, BOM.
_CONTROL = re.compile(
    r"[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2028\u2029"
    r"\u2060-\u2064\ufeff]"
)
_ALL_SPACE = re.compile(r"\s+")


def clean_text(value) -> str:
    """Multi-line text as a person meant it (see the module docstring)."""
    if value is None:
        return ""
    text = str(value).replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ").replace("\u3000", " ")
    text = _CONTROL.sub("", text)
    lines = [line.replace("\t", " ").rstrip() for line in text.split("\n")]
    return "\n".join(lines).strip()


def clean_line(value) -> str:
    """A single-line value: inner runs of whitespace (a pasted newline included) fold to one space."""
    return _ALL_SPACE.sub(" ", clean_text(value)).strip()


def _filter_for(field_class) -> callable | None:
    if issubclass(field_class, PasswordField):
        return None
    if issubclass(field_class, TextAreaField):
        return _keep_none(clean_text)
    if issubclass(field_class, (StringField, HiddenField)):
        return _keep_none(clean_line)
    return None


def _keep_none(fn):
    def apply(value):
        return value if value is None else fn(value)

    apply.__name__ = fn.__name__
    return apply


def max_chars(limit: int) -> Length:
    return Length(max=limit, message=f"不能超过 {limit} 字")


def required(message: str = "请填写此项") -> InputRequired:
    return InputRequired(message=message)


def reason_field(label: str = "原因", *, limit: int, optional: bool = False) -> TextAreaField:
    """A free-text reason (going back a phase, reopening, 回避, crossing the cut line)."""
    validators = [max_chars(limit)]
    if not optional:
        validators.insert(0, required(f"请填写{label}"))
    return TextAreaField(label, validators=validators)


class VersionField(IntegerField):
    """The optimistic-lock version a write was based on. A form without it is refused: a write that
    does not say which version it saw could silently overwrite someone else's change."""

    widget = HiddenField.widget

    def __init__(self, label="版本", validators=None, **kwargs):
        validators = [InputRequired(message="缺少版本号：请刷新页面后重试。"),
                      NumberRange(min=0, max=MAX_ID, message="版本号无效：请刷新页面后重试。"), *(validators or [])]
        super().__init__(label, validators=validators, **kwargs)

    def process_formdata(self, valuelist):
        try:
            super().process_formdata(valuelist)
        except ValueError as e:
            self.data = None
            raise ValueError("版本号无效：请刷新页面后重试。") from e
        # Out of range is refused here: NumberRange's isnan() overflows on a 400-digit number, and
        # the database could not bind one beyond the integer column.
        if self.data is not None and not 0 <= self.data <= MAX_ID:
            self.data = None
            raise ValueError("版本号无效：请刷新页面后重试。")


class WholeNumberField(StringField):
    """A whole number typed as text, kept as typed in `.data` (so a refused value comes back in the
    input) with the parsed int in `.number`. Only ASCII digits count — str.isdigit() also takes '²',
    which int() refuses — and the range is checked here, so no caller meets an overflow.
    `message` replaces every refusal (for a select whose only wrong value is a forged one)."""

    def __init__(self, label=None, validators=None, *, lo: int = 0, hi: int = MAX_ID, blank_ok: bool = False,
                 message: str | None = None, **kwargs):
        kwargs.setdefault("render_kw", {"maxlength": len(str(hi)), "inputmode": "numeric"})
        super().__init__(label, validators, **kwargs)
        self.lo, self.hi, self.blank_ok, self.message = lo, hi, blank_ok, message
        self.number: int | None = None

    def pre_validate(self, form):
        self.number = None
        text = (self.data or "").strip()
        label = self.label.text
        if not text:
            if self.blank_ok:
                return
            raise StopValidation(self.message or f"{label}不能为空")
        if not (text.isascii() and text.isdigit()) or len(text) > len(str(self.hi)) + 2:
            raise StopValidation(self.message or f"{label}应为整数")
        value = int(text)
        if not self.lo <= value <= self.hi:
            raise StopValidation(self.message or f"{label}应在 {self.lo}–{self.hi} 之间")
        self.number = value


class IsoDateField(StringField):
    """A date typed as 年-月-日 (what <input type="date"> sends); `.date` is the parsed date or None."""

    def __init__(self, label=None, validators=None, *, message: str | None = None, **kwargs):
        super().__init__(label, validators, **kwargs)
        self.message = message
        self.date = None

    def pre_validate(self, form):
        self.date = None
        text = (self.data or "").strip()
        if not text:
            return
        try:
            self.date = date.fromisoformat(text) if len(text) == 10 else None
        except ValueError:
            self.date = None
        if self.date is None:
            raise StopValidation(self.message or f"{self.label.text}格式应为 年-月-日")


class Form(FlaskForm):
    """Base class of every form in the app."""

    class Meta:
        locales = ["zh"]

        def bind_field(self, form, unbound_field, options):
            cleaner = _filter_for(unbound_field.field_class)
            if cleaner is not None:
                filters = [cleaner, *unbound_field.kwargs.get("filters", ())]
                # bind() lets options override the declaration's kwargs, which are shared by every
                # instance of the form class and so must not be changed here.
                options = {**options, "filters": filters}
            return unbound_field.bind(form=form, **options)

    def first_errors(self) -> dict[str, str]:
        """{field name: its first message}, the shape the page templates show beside each field."""
        out: dict[str, str] = {}
        for name, messages in self.errors.items():
            if messages:
                first = messages[0]
                out[name] = first if isinstance(first, str) else str(next(iter(first.values()), [""])[0])
        return out

    def error_message(self) -> str:
        errors = self.first_errors()
        if "csrf_token" in errors:
            return "页面已过期或缺少安全校验（CSRF），请刷新页面后重试。"
        return "提交的内容有误，请检查标出的项目。" if errors else ""

    def page_message(self) -> str:
        """The page's one-line message: the CSRF refusal, or what is wrong with fields that have no
        place on the page to show it (hidden ones: the version, a target), else the generic line."""
        errors = self.first_errors()
        if "csrf_token" in errors:
            return self.error_message()
        hidden = [errors[name] for name, field in self._fields.items()
                  if name in errors and isinstance(field.widget, type(HiddenField.widget))]
        return "；".join(hidden) if hidden else self.error_message()

    def validate_or_refuse(self) -> None:
        """For a view whose refusals are rendered by the error handler: raise before anything is written.
        A forged request (no CSRF token, no or a bad version) is a 400; wrong input is a 422 naming
        the field."""
        if self.validate_on_submit():
            return
        errors = self.first_errors()
        if "csrf_token" in errors:
            raise UserError(self.error_message(), status=400)
        if "version" in errors:
            raise UserError(errors["version"], status=400)
        raise UserError(next(iter(errors.values())), errors)

    def add_errors(self, field_errors: dict[str, str]) -> None:
        """Put an operation's refusals (a duplicate name, say) beside the fields they concern."""
        for name, message in (field_errors or {}).items():
            field = self._fields.get(name)
            if field is not None:
                field.errors = [*field.errors, message] if isinstance(field.errors, list) else [message]


def limits(form_class) -> dict[str, int]:
    """The `maxlength` of every length-limited field of a form class, for `data-` attributes and JS."""
    out = {}
    for name, unbound in vars(form_class).items():
        kwargs = getattr(unbound, "kwargs", None)
        if kwargs is None:
            continue
        for v in kwargs.get("validators") or ():
            if isinstance(v, Length) and v.max and v.max > 0:
                out[name] = v.max
    return out


__all__ = ["Form", "VersionField", "WholeNumberField", "IsoDateField", "ValidationError", "Field", "clean_text", "clean_line", "max_chars",
           "required", "reason_field", "limits"]
