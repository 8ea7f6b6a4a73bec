"""The outbox pages' forms."""

from __future__ import annotations

from wtforms import StringField
from wtforms.validators import AnyOf, Optional

from app.core.forms import Form
from app.models.mail import MAIL_STATUS_LABELS


class OutboxFilterForm(Form):
    """A GET query string: no CSRF — it writes nothing."""

    class Meta:
        csrf = False

    status = StringField("状态", validators=[Optional(), AnyOf(tuple(MAIL_STATUS_LABELS), message="未知状态")])


class ResendForm(Form):
    """Only the CSRF token: the message is in the URL."""
