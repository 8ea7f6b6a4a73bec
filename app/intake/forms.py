"""The WTForms of the intake pages — and the one validation of intake data.

Each form comes in two layers:

- a *fields* class (plain `wtforms.Form`, no request, no CSRF): the field declarations with their limits,
  written once. Operations check their input through it with `check(FieldsClass, mapping)`, so a docx /
  xlsx / zip import and `flask nominations import` are refused exactly where the page form refuses;
- a *page* form (`app.core.forms.Form` + the fields class): adds CSRF, the method rule of
  `validate_on_submit()` and what only the page has (推荐单位 picker, optimistic version).

Both layers bind fields through core's Meta, so every free-text field goes through the one cleaning
filter (`app.core.forms.clean_text` / `clean_line`). Templates read `maxlength` from the bound field's
flags, never from a number of their own.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import date, datetime

from werkzeug.datastructures import MultiDict
from wtforms import Field, HiddenField, MultipleFileField, StringField, TextAreaField
from wtforms import Form as DataForm
from wtforms.fields import FileField
from wtforms.validators import Length, StopValidation, ValidationError
from wtforms.widgets import TextInput

from app.core.forms import Form, clean_line
from app.intake.limits import (
    ADDRESS_MAX,
    COUNT_MAX,
    NOMINATOR_NAME_MAX,
    NOMINATOR_SHORT_MAX,
    NOTE_MAX,
    POSITION_MAX,
    QUOTA_MAX,
    REASON_MAX,
    RECOMMENDATION_MAX,
    SHORT_MAX,
    SUMMARY_MAX,
    TITLE_MAX,
    YEAR_MAX,
    YEAR_MIN,
)
from app.intake.text import parse_count, parse_date

# --- validators and fields ------------------------------------------------------------------------------


class MaxChars(Length):
    """core's `max_chars` with the field's name and the current count in the message, because a 500-字
    简介 is long enough that "too long" alone does not tell the admin how much to cut. Still a `Length`,
    so it sets the `maxlength` flag the templates render."""

    def __init__(self, limit: int):
        super().__init__(max=limit)

    def __call__(self, form, field):
        n = len(field.data or "")
        if n > self.max:
            raise ValidationError(f"{field.label.text}不能超过 {self.max} 字（当前 {n} 字）")


class Filled:
    """Required after cleaning: "  " or a lone control character is not an answer (InputRequired would
    accept the raw text)."""

    field_flags = {"required": True}

    def __init__(self, message: str | None = None):
        self.message = message

    def __call__(self, form, field):
        if not field.data:
            raise StopValidation(self.message or f"请填写{field.label.text}")


class _Typed(Field):
    """A text input read into a typed value; the raw text is kept for re-display after an error."""

    widget = TextInput()
    raw_text: str | None = None

    def parse(self, text: str):
        raise NotImplementedError

    def process_formdata(self, valuelist):
        self.raw_text = clean_line(valuelist[0]) if valuelist else ""
        self.data = None
        try:
            self.data = self.parse(self.raw_text)
        except ValueError as e:
            raise ValueError(str(e)) from None

    def _value(self):
        if self.raw_text is not None:
            return self.raw_text
        if isinstance(self.data, date):
            return self.data.isoformat()
        return "" if self.data is None else str(self.data)


class CountField(_Typed):
    """活动场数 / 服务人数 as forms write them ("1.2万人次", "约3000人"); blank → None (a gap, not an error)."""

    def parse(self, text):
        try:
            number = parse_count(text)
        except ValueError as e:
            raise ValueError(f"{self.label.text}：{e}") from None
        if number is not None and number > COUNT_MAX:
            raise ValueError(f"{self.label.text}过大")
        return number


class DayField(_Typed):
    """A date as typed (2024-09-30, 2024年9月30日, 二〇二四年九月三十日) or a spreadsheet serial number."""

    def parse(self, text):
        if text.isdigit() and 30_000 < int(text) < 80_000:
            day = parse_date(int(text))
        else:
            day = parse_date(text)
        if day and not YEAR_MIN <= day.year <= YEAR_MAX:
            raise ValueError("日期超出合理范围")
        return day


class BoundedIntField(_Typed):
    """A whole number within bounds (full-width digits accepted); blank → None."""

    def __init__(self, label, *, lo: int, hi: int, **kwargs):
        super().__init__(label, **kwargs)
        self.lo, self.hi = lo, hi

    def parse(self, text):
        text = unicodedata.normalize("NFKC", text).strip()
        if text == "":
            return None
        if not text.lstrip("-").isdigit():
            raise ValueError(f"{self.label.text}应为整数")
        value = int(text)
        if not self.lo <= value <= self.hi:
            raise ValueError(f"{self.label.text}应在 {self.lo}–{self.hi} 之间")
        return value


class ChoiceTextField(_Typed):
    """A code typed as itself or as one of its everyday names (市州 → city)."""

    def __init__(self, label, *, aliases: Mapping[str, str], message: str, **kwargs):
        super().__init__(label, **kwargs)
        self.aliases, self.message = aliases, message

    def parse(self, text):
        code = self.aliases.get(clean_line(unicodedata.normalize("NFKC", text)))
        if code is None:
            raise ValueError(self.message)
        return code


_PHONE_OK = re.compile(r"^[0-9０-９\s+\-－—()（）、,，/;；转分机ext.]+$", re.IGNORECASE)


def _phone(form, field):
    phone = field.data or ""
    if phone and (not _PHONE_OK.match(phone) or len(re.findall(r"\d", phone)) < 7):
        raise ValidationError("联系电话应为数字（可含区号、短横线），至少 7 位")


class FoldedStringField(StringField):
    """Registry names compare NFKC-folded (full-width letters and digits as half-width). Folded while
    reading, so core's cleaning filter still runs after it (a `filters=` argument would not survive:
    core's bind_field pops it from the shared declaration on first use)."""

    def process_formdata(self, valuelist):
        super().process_formdata([unicodedata.normalize("NFKC", v) for v in valuelist])


def _id_or_blank(form, field):
    from app.core.params import parse_id

    if field.data and parse_id(field.data) is None:
        raise ValidationError("请选择推荐单位")


class _Data(DataForm):
    """Fields classes bind through core's Meta (the cleaning filter) without needing a request.

    A page form lists its fields class FIRST among its bases: core's Form has methods (`summary()`)
    whose names are also field names here (附件 简介 is `summary`), and the field must win."""

    class Meta:
        locales = ["zh"]
        bind_field = Form.Meta.bind_field


# --- nominations (附件1 / 附件2) -------------------------------------------------------------------------

_TITLE = [Filled(), MaxChars(TITLE_MAX)]
_SUMMARY = [MaxChars(SUMMARY_MAX)]


class _NominationFields(_Data):
    contact_name = StringField("联系人", [MaxChars(SHORT_MAX)])
    contact_title = StringField("职务", [MaxChars(SHORT_MAX)])
    contact_phone = StringField("联系电话", [MaxChars(SHORT_MAX), _phone])
    address = StringField("通讯地址", [MaxChars(ADDRESS_MAX)])
    people_served = CountField("服务人数")
    recommendation = TextAreaField("推荐意见", [MaxChars(RECOMMENDATION_MAX)])
    recommendation_date = DayField("推荐日期")
    received_date = DayField("收到日期")


class UnitFields(_NominationFields):
    """附件1 优秀组织单位推荐表."""

    title = StringField("单位名称", _TITLE)
    event_count = CountField("组织开展的活动场数")
    summary = TextAreaField("组织情况简介", _SUMMARY)


class ActivityFields(_NominationFields):
    """附件2 优秀活动推荐表 (附件1 plus 主办单位)."""

    title = StringField("活动名称", _TITLE)
    host = StringField("主办单位", [MaxChars(TITLE_MAX)])
    event_count = CountField("活动场数")
    summary = TextAreaField("活动情况简介", _SUMMARY)


NOMINATION_FIELDS = {"unit": UnitFields, "activity": ActivityFields}


class _NominationPage(Form):
    nominator_id = StringField("推荐单位", [Filled("请选择推荐单位"), _id_or_blank])

    def values(self) -> dict:
        """The typed values for nominations.create/update."""
        return {name: f.data for name, f in self._fields.items() if name not in ("csrf_token", "version")}


class UnitForm(UnitFields, _NominationPage):
    pass


class ActivityForm(ActivityFields, _NominationPage):
    pass


class _Versioned:
    # version_of() is a hash, not a counter, so this is a required hidden string rather than core's
    # integer VersionField: an edit that does not say which version it saw is refused, never applied.
    version = HiddenField("版本", [Filled("缺少版本号：请刷新页面后重试。")])


class UnitEditForm(_Versioned, UnitForm):
    pass


class ActivityEditForm(_Versioned, ActivityForm):
    pass


def nomination_form(category: str, *, edit: bool = False) -> type[Form]:
    if edit:
        return UnitEditForm if category == "unit" else ActivityEditForm
    return UnitForm if category == "unit" else ActivityForm


# --- withdraw / reinstate, 形式审查 decisions -----------------------------------------------------------


class WithdrawFields(_Data):
    reason = TextAreaField("撤回理由", [Filled("撤回必须填写理由"), MaxChars(REASON_MAX)])


class ReinstateFields(_Data):
    reason = TextAreaField("说明", [MaxChars(REASON_MAX)])


class WithdrawForm(WithdrawFields, Form):
    pass


class ReinstateForm(ReinstateFields, Form):
    pass


class NoteFields(_Data):
    """Resolve / reopen: the note is optional."""

    note = TextAreaField("说明", [MaxChars(NOTE_MAX)])


class WaiveFields(_Data):
    """Waive: accepting a problem as is needs the reason."""

    note = TextAreaField("说明", [Filled("请填写说明"), MaxChars(NOTE_MAX)])


class _FindingPage(Form):
    ctx = HiddenField()
    next = HiddenField()


class NoteForm(NoteFields, _FindingPage):
    pass


class WaiveForm(WaiveFields, _FindingPage):
    pass


def finding_form(op: str) -> type[Form]:
    return WaiveForm if op == "waive" else NoteForm


class ConfirmForm(Form):
    """A button that writes (run the check, delete an attachment or a 推荐单位): CSRF and POST only."""


# --- uploads and imports --------------------------------------------------------------------------------


def _real_files(data) -> list:
    """The uploaded files of a file field. A part sent without a file name reaches the form as text, not
    as a FileStorage, and may sit among real files."""
    return [f for f in (data if isinstance(data, list) else [data]) if getattr(f, "filename", None)]


def _some_files(message: str):
    def check_(form, field):
        if not _real_files(field.data):
            raise StopValidation(message)

    return check_


class PhotoForm(Form):
    photos = MultipleFileField("照片", [_some_files("请选择照片")])

    def files(self) -> list:
        return _real_files(self.photos.data)


class VideoForm(Form):
    video = FileField("视频", [_some_files("请选择视频文件")])


class ImportForm(Form):
    files = MultipleFileField("文件", [_some_files("请选择要导入的文件（.docx、.xlsx 或 .zip）")])
    nominator_id = StringField("推荐单位", [_id_or_blank])
    received_date = DayField("收到日期")

    def uploads(self) -> list:
        return _real_files(self.files.data)


class PreviewForm(Form):
    """The preview page's buttons; the per-row picks (nominator-N, include-N) are read by the view."""

    op = StringField("操作", [Filled("请选择操作")])


# --- 推荐单位 registry ---------------------------------------------------------------------------------

KIND_ALIASES = {
    "市州科协": "city", "市州": "city", "市州科学技术协会": "city", "city": "city",
    "省直单位": "member", "省直": "member", "成员单位": "member", "省纲要办成员单位": "member", "member": "member",
    "省级学会": "society", "学会": "society", "society": "society",
}


class NominatorFields(_Data):
    name = FoldedStringField("名称", [Filled("名称不能为空"), MaxChars(NOMINATOR_NAME_MAX)])
    short_name = FoldedStringField("简称", [MaxChars(NOMINATOR_SHORT_MAX)])
    kind = ChoiceTextField("类型", aliases=KIND_ALIASES, message="类型应为 市州科协、省直单位 或 省级学会")
    position = BoundedIntField("排序", lo=0, hi=POSITION_MAX)
    quota_unit = BoundedIntField("优秀组织单位名额", lo=0, hi=QUOTA_MAX)
    quota_activity = BoundedIntField("优秀活动名额", lo=0, hi=QUOTA_MAX)


class NominatorForm(NominatorFields, Form):
    def values(self) -> dict:
        return {name: f.data for name, f in self._fields.items() if name != "csrf_token"}


class NominatorImportForm(Form):
    file = FileField("文件", [_some_files("请选择文件")])


# --- checking a mapping (imports, operations) -----------------------------------------------------------


def _as_text(value) -> str:
    """A typed value (an import's int, date or spreadsheet float) as the text a person would have typed."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def check(fields_class: type[DataForm], values: Mapping) -> DataForm:
    """Validate `values` (form strings or an import's typed values) through a fields class: the same
    declarations, cleaning and messages as the page form. Read `.data` / `first_errors(form)`."""
    names = fields_class()._fields.keys()
    form = fields_class(formdata=MultiDict({name: _as_text(values.get(name)) for name in names}))
    form.validate()
    return form


def first_errors(form) -> dict[str, str]:
    return {name: messages[0] for name, messages in form.errors.items() if messages}


def maxlengths(form) -> dict[str, int]:
    """{field: maxlength} of a bound form (inherited fields included), for data- attributes and JS."""
    return {name: f.flags.maxlength for name, f in form._fields.items() if getattr(f.flags, "maxlength", None)}


def template_limits() -> dict[str, int]:
    """The limits the intake templates render as `maxlength` (and the 简介 counter), read from the
    declarations above so a template never carries a number of its own."""
    return {"reason": maxlengths(WithdrawFields())["reason"], "note": maxlengths(WaiveFields())["note"],
            "summary": maxlengths(UnitFields())["summary"]}
