from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime
from sqlalchemy.orm import Mapped, mapped_column

from app.core.time import utcnow  # noqa: F401  (models and operations import it from here)


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


CATEGORIES = ("unit", "activity")
CATEGORY_LABELS = {"unit": "优秀组织单位", "activity": "优秀活动"}
