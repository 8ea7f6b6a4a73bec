"""公示 periods in 工作日 on the Chinese statutory calendar (package `chinese-calendar`: holidays and
the 调休 working weekends). The start day counts as the first day when it is a working day, as the
notices are written ("自9月27日起公示5个工作日"). A year the package has no data for yet (it is
published each November for the next year) cannot be computed: the admin then enters the end day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import chinese_calendar

DAYS_MIN, DAYS_MAX = 1, 30


class CalendarUnavailable(Exception):
    """The holiday calendar does not cover a year the period needs."""

    def __init__(self, year: int):
        super().__init__(year)
        self.year = year

    @property
    def message(self) -> str:
        return (f"节假日日历尚未包含 {self.year} 年的数据（国务院每年年底公布次年的放假安排），无法自动推算公示截止日期，"
                f"请手工填写公示截止日期。")


def is_workday(day: date) -> bool:
    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:
        raise CalendarUnavailable(day.year) from None


def end_date(start: date, days: int) -> date:
    """The last day of a `days`-工作日 公示 starting on `start` (counting `start` if it is a working day)."""
    if not DAYS_MIN <= days <= DAYS_MAX:
        raise ValueError(f"days must be within {DAYS_MIN}..{DAYS_MAX}")
    day, counted = start, 0
    while True:
        if is_workday(day):
            counted += 1
            if counted == days:
                return day
        day += timedelta(days=1)


@dataclass(frozen=True)
class Period:
    """A round's 公示 period as the pages show it. `end` is None when it cannot be known yet (no start,
    or no calendar data and no manual end); `problem` then says why."""

    start: date | None
    days: int
    end: date | None
    manual: bool = False
    problem: str = ""

    @property
    def known(self) -> bool:
        return self.start is not None and self.end is not None

    def state(self, today: date) -> str:
        """'unset' | 'before' | 'open' | 'closed'."""
        if not self.known:
            return "unset"
        if today < self.start:
            return "before"
        return "open" if today <= self.end else "closed"


def period(start: date | None, days: int, manual_end: date | None) -> Period:
    """The period from a round's columns. A manual end is used only where the calendar cannot compute
    one, so a stale hand-entered date never overrides the statutory calendar."""
    if start is None:
        return Period(None, days, None, problem="尚未设置公示起始日期。")
    try:
        return Period(start, days, end_date(start, days))
    except CalendarUnavailable as e:
        if manual_end is not None:
            return Period(start, days, manual_end, manual=True)
        return Period(start, days, None, problem=e.message)


def of_round(rnd) -> Period:
    return period(rnd.publicity_start, rnd.publicity_days or 5, rnd.publicity_end)
