"""公示 end dates on the statutory calendar, counting the start day (chinese-calendar)."""

from datetime import date

import pytest

from app.publicity import calendar


def test_five_working_days_across_national_day():
    # 9-27 Fri, 9-29 Sun is a 调休 working day, 9-30 Mon, 10-01..10-07 holiday, 10-08 Tue, 10-09 Wed.
    assert calendar.end_date(date(2024, 9, 27), 5) == date(2024, 10, 9)


def test_five_working_days_ending_on_a_working_saturday():
    # 10-08 Tue … 10-11 Fri, then Saturday 10-12 is a 调休 working day.
    assert calendar.is_workday(date(2024, 10, 12))
    assert calendar.end_date(date(2024, 10, 8), 5) == date(2024, 10, 12)


def test_an_ordinary_weekend_is_skipped():
    # Thu 2024-11-14, Fri, (Sat, Sun off), Mon, Tue, Wed 11-20.
    assert calendar.end_date(date(2024, 11, 14), 5) == date(2024, 11, 20)
    # a start on a Saturday counts from Monday
    assert calendar.end_date(date(2024, 11, 16), 1) == date(2024, 11, 18)


def test_three_working_days_like_the_national_list():
    assert calendar.end_date(date(2024, 9, 30), 3) == date(2024, 10, 9)


def test_a_year_the_calendar_lacks_asks_for_the_manual_end():
    with pytest.raises(calendar.CalendarUnavailable) as info:
        calendar.end_date(date(2099, 9, 27), 5)
    assert "2099" in info.value.message and "手工填写" in info.value.message
    p = calendar.period(date(2099, 9, 27), 5, None)
    assert p.end is None and not p.known and "手工填写公示截止日期" in p.problem
    manual = calendar.period(date(2099, 9, 27), 5, date(2099, 10, 10))
    assert manual.known and manual.manual and manual.end == date(2099, 10, 10)
    assert manual.state(date(2099, 10, 10)) == "open" and manual.state(date(2099, 10, 11)) == "closed"


def test_a_manual_end_never_overrides_the_calendar():
    p = calendar.period(date(2024, 9, 27), 5, date(2024, 12, 31))
    assert p.end == date(2024, 10, 9) and not p.manual


def test_period_states():
    p = calendar.period(date(2024, 9, 27), 5, None)
    assert p.state(date(2024, 9, 26)) == "before"
    assert p.state(date(2024, 9, 27)) == "open" and p.state(date(2024, 10, 9)) == "open"
    assert p.state(date(2024, 10, 10)) == "closed"
    assert calendar.period(None, 5, None).state(date(2024, 1, 1)) == "unset"
