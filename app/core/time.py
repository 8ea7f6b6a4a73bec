"""Beijing time: the one place that converts. Moments are stored as UTC (SQLite hands them back naive);
every page, CSV, PDF and file name shows them in Beijing time through these helpers."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

BEIJING = timezone(timedelta(hours=8), "北京时间")


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """A stored moment as an aware UTC datetime (SQLite returns naive UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def beijing(moment: datetime | None = None) -> datetime:
    """The moment (now when omitted) in Beijing time."""
    return aware(moment or utcnow()).astimezone(BEIJING)


def beijing_date(moment: datetime | None) -> date | None:
    return None if moment is None else beijing(moment).date()


def noon_utc(day: date) -> datetime:
    """A calendar day typed in Beijing as a stored moment (noon, so no time zone moves it to another day)."""
    return datetime.combine(day, time(12, 0), tzinfo=BEIJING).astimezone(UTC)


def fmt_minute(moment: datetime | None) -> str:
    return beijing(moment).strftime("%Y-%m-%d %H:%M") if moment else ""


def fmt_second(moment: datetime | None) -> str:
    return beijing(moment).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def file_stamp(moment: datetime | None = None) -> str:
    """For file names: 20241008-093000 in Beijing time."""
    return beijing(moment).strftime("%Y%m%d-%H%M%S")
