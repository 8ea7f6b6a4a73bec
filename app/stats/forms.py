"""The 稳健性 filter of the deliberation page (a GET query string: no CSRF — it writes nothing)."""

from __future__ import annotations

from wtforms import SelectField
from wtforms.fields.choices import SelectChoice

from app.core.forms import Form

# 临界 first: the ones to discuss.
FILTERS = (("", "全部（按排名）"), ("edge", "只看临界"), ("edge-first", "临界优先"), ("in", "只看稳定入选"),
           ("out", "只看稳定落选"))


class RobustFilterForm(Form):
    class Meta:
        csrf = False

    robust = SelectField("稳健性", choices=[SelectChoice(v, label) for v, label in FILTERS], default="", validate_choice=True)

    def choice(self) -> str:
        return (self.robust.data or "") if not self.robust.errors else ""
