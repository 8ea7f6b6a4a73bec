"""The audit log's filter form (a GET query string: no CSRF — it writes nothing)."""

from __future__ import annotations

from werkzeug.datastructures import MultiDict
from wtforms import StringField
from wtforms.validators import ValidationError

from app.audit.queries import Filters
from app.core.forms import Form, IsoDateField, WholeNumberField, max_chars

ACTOR_MAX = 50
ACTION_MAX = 50
OBJECT_TYPE_MAX = 30


class AuditFilterForm(Form):
    class Meta:
        csrf = False

    actor = StringField("操作人", validators=[max_chars(ACTOR_MAX)])
    action = StringField("操作", validators=[max_chars(ACTION_MAX)])
    object_type = StringField("对象类型", validators=[max_chars(OBJECT_TYPE_MAX)])
    object_id = WholeNumberField("对象编号", lo=1, blank_ok=True, message="对象编号应为整数")
    date_from = IsoDateField("开始日期")
    date_to = IsoDateField("结束日期")

    def validate_date_to(self, field):
        if field.date and self.date_from.date and self.date_from.date > field.date:
            field.date = None
            raise ValidationError("结束日期不能早于开始日期")

    def filters(self) -> Filters:
        """What was given and valid; a refused value is left out (and explained beside its field)."""
        def ok(f):
            return not f.errors

        return Filters(actor=self.actor.data or "" if ok(self.actor) else "",
                       action=self.action.data or "" if ok(self.action) else "",
                       object_type=self.object_type.data or "" if ok(self.object_type) else "",
                       object_id=self.object_id.number, date_from=self.date_from.date, date_to=self.date_to.date)


def parse(args) -> tuple[Filters, dict[str, str]]:
    """Query-string values -> (Filters, {field: message}); a bad value is dropped and explained, never a 500."""
    form = AuditFilterForm(formdata=args if hasattr(args, "getlist") else MultiDict(args))
    form.validate()
    return form.filters(), form.first_errors()
