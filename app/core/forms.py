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

from flask_wtf import FlaskForm
from wtforms import Field, HiddenField, IntegerField, PasswordField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange, ValidationError

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
                      NumberRange(min=0, message="版本号无效：请刷新页面后重试。"), *(validators or [])]
        super().__init__(label, validators=validators, **kwargs)

    def process_formdata(self, valuelist):
        try:
            super().process_formdata(valuelist)
        except ValueError as e:
            self.data = None
            raise ValueError("版本号无效：请刷新页面后重试。") from e


class Form(FlaskForm):
    """Base class of every form in the app."""

    class Meta:
        locales = ["zh"]

        def bind_field(self, form, unbound_field, options):
            cleaner = _filter_for(unbound_field.field_class)
            if cleaner is not None:
                filters = [cleaner, *unbound_field.kwargs.get("filters", ())]
                options = {**options, "filters": filters}
                unbound_field.kwargs.pop("filters", None)
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


__all__ = ["Form", "VersionField", "ValidationError", "Field", "clean_text", "clean_line", "max_chars",
           "required", "reason_field", "limits"]
