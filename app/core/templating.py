"""Filters and globals every template may use."""

from __future__ import annotations

import re
from datetime import date, datetime

from flask import Flask

from app.core.time import fmt_minute
from app.models import CATEGORY_LABELS, KIND_LABELS, METHOD_LABELS, PHASE_LABELS

_MOBILE = re.compile(r"^(\d{3})\d{4}(\d{4})$")


def mask_phone(value: str | None) -> str:
    """138****5678 for mobiles; a landline keeps its area code and last four digits."""
    if not value:
        return ""
    digits = re.sub(r"\D", "", value)
    m = _MOBILE.match(digits)
    if m:
        return f"{m.group(1)}****{m.group(2)}"
    if len(digits) >= 7:
        return digits[:4] + "*" * (len(digits) - 8) + digits[-4:] if len(digits) > 8 else "****" + digits[-4:]
    return "****"


def cn_date(value: date | datetime | None) -> str:
    if not value:
        return ""
    return f"{value.year}年{value.month}月{value.day}日"


def cn_datetime(value: datetime | None) -> str:
    return fmt_minute(value)


def fmt_score(value) -> str:
    if value is None:
        return "—"
    value = float(value)
    return f"{value:.0f}" if value == int(value) else f"{value:.2f}".rstrip("0").rstrip(".")


def init_app(app: Flask) -> None:
    app.jinja_env.filters.update(
        mask_phone=mask_phone, cn_date=cn_date, cn_datetime=cn_datetime, score=fmt_score,
    )
    app.jinja_env.globals.update(
        CATEGORY_LABELS=CATEGORY_LABELS, KIND_LABELS=KIND_LABELS, PHASE_LABELS=PHASE_LABELS,
        METHOD_LABELS=METHOD_LABELS,
    )
    init_assets(app)


def _htmx_integrity(app: Flask) -> str:
    import os

    path = os.path.join(app.static_folder, "vendor", "htmx", "INTEGRITY")
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def init_assets(app: Flask) -> None:
    app.jinja_env.globals["HTMX_INTEGRITY"] = _htmx_integrity(app)
