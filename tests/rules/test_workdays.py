"""Working-day arithmetic without a database, and the chinese-calendar facts the calendar
tests rely on (checked against the package itself, not assumed)."""

from __future__ import annotations

from datetime import date, timedelta

import chinese_calendar
import pytest

from govshare.rules import service as rules_service
from govshare.rules.models import DayKind
from govshare.rules.schemas import parse_kind
from govshare.rules.workdays import MAX_SCAN_DAYS, DayInfo, Due, add_working_days, weekday_rule


def weekdays_known(day: date) -> DayInfo:
    workday = weekday_rule(day)
    return DayInfo(day, workday, "workday" if workday else "weekend", "", True)


def weekdays_known_until_2026(day: date) -> DayInfo:
    info = weekdays_known(day)
    return DayInfo(info.day, info.is_workday, info.kind, "", day.year <= 2026)


def test_day_of_receipt_is_not_counted() -> None:
    # 2026-03-06 is a Friday: one working day later is the next Monday
    assert date(2026, 3, 6).weekday() == 4
    due = add_working_days(date(2026, 3, 6), 1, weekdays_known)
    assert due.due == date(2026, 3, 9)
    # received on a Monday, one working day: Tuesday, not Monday itself
    assert add_working_days(date(2026, 3, 9), 1, weekdays_known).due == date(2026, 3, 10)


def test_ten_weekdays_span_two_weekends() -> None:
    due = add_working_days(date(2026, 3, 4), 10, weekdays_known)  # a Wednesday
    assert due.due == date(2026, 3, 18)
    assert not due.provisional
    assert due.uncovered_years == ()


def test_zero_days_is_the_day_of_receipt_and_negative_is_refused() -> None:
    assert add_working_days(date(2026, 3, 7), 0, weekdays_known).due == date(2026, 3, 7)
    with pytest.raises(ValueError, match="days"):
        add_working_days(date(2026, 3, 7), -1, weekdays_known)


def test_unknown_days_make_the_result_provisional() -> None:
    due = add_working_days(date(2026, 12, 30), 3, weekdays_known_until_2026)
    # Dec 31 (Thu), Jan 1 (Fri, guessed), Jan 4 (Mon, guessed)
    assert due.due == date(2027, 1, 4)
    assert due.provisional
    assert due.uncovered_years == (2027,)
    assert due.as_line() == "2027-01-04 provisional"
    inside = add_working_days(date(2026, 12, 28), 2, weekdays_known_until_2026)
    assert inside.as_line() == "2026-12-30"
    assert not inside.provisional


def test_a_calendar_without_working_days_stops() -> None:
    def never(day: date) -> DayInfo:
        return DayInfo(day, False, "holiday", "", True)

    with pytest.raises(ValueError, match="three years"):
        add_working_days(date(2026, 1, 1), 1, never)
    assert MAX_SCAN_DAYS >= 3 * 365


def test_due_line_format() -> None:
    due = Due(date(2026, 9, 30), 10, date(2026, 10, 20), False, ())
    assert due.as_line() == "2026-10-20"


# ---------------------------------------------------------------- the package's 2026 facts


def test_chinese_calendar_2026_national_day_facts() -> None:
    """The dates the calendar tests use, as the chinese-calendar package has them."""
    for d in (date(2026, 10, 1) + timedelta(days=i) for i in range(7)):
        assert chinese_calendar.get_holiday_detail(d) == (True, "National Day"), d
    assert chinese_calendar.is_workday(date(2026, 10, 8))
    # make-up working days on a weekend around National Day
    assert date(2026, 9, 20).weekday() == 6  # Sunday
    assert chinese_calendar.get_holiday_detail(date(2026, 9, 20)) == (False, "National Day")
    assert date(2026, 10, 10).weekday() == 5  # Saturday
    assert chinese_calendar.get_holiday_detail(date(2026, 10, 10)) == (False, "National Day")
    assert chinese_calendar.get_holiday_detail(date(2026, 9, 25)) == (True, "Mid-autumn Festival")
    assert chinese_calendar.get_holiday_detail(date(2026, 9, 19)) == (True, None)  # a Saturday
    assert max(rules_service.package_years()) == 2026
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(date(2027, 1, 4))


def test_package_year_days_classify_2026() -> None:
    days = {d: (k, n) for d, k, n in rules_service._package_year_days(2026)}
    assert len(days) == 365
    assert days[date(2026, 10, 1)] == (DayKind.HOLIDAY, "国庆节")
    assert days[date(2026, 10, 3)] == (DayKind.HOLIDAY, "国庆节")  # a Saturday inside the break
    assert days[date(2026, 9, 25)] == (DayKind.HOLIDAY, "中秋节")
    assert days[date(2026, 10, 10)] == (DayKind.ADJUSTED_WORKDAY, "国庆节调休上班")
    assert days[date(2026, 9, 20)] == (DayKind.ADJUSTED_WORKDAY, "国庆节调休上班")
    assert days[date(2026, 2, 14)] == (DayKind.ADJUSTED_WORKDAY, "春节调休上班")
    assert days[date(2026, 9, 19)] == (DayKind.WEEKEND, "")
    assert days[date(2026, 10, 8)] == (DayKind.WORKDAY, "")
    workdays = sum(1 for k, _ in days.values() if k.is_workday)
    assert workdays == sum(
        1 for d in days if chinese_calendar.is_workday(d)
    )  # the same count as the package


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-10-01", date(2026, 10, 1)),
        ("2026/10/1", date(2026, 10, 1)),
        ("2026.1.5", date(2026, 1, 5)),
        ("2026年10月1日", date(2026, 10, 1)),
        ("20261001", date(2026, 10, 1)),
        (" 2026-10-01 ", date(2026, 10, 1)),
        ("2026-13-01", None),
        ("2026-02-30", None),
        ("10/01/2026", None),
        ("", None),
    ],
)
def test_parse_day(text: str, expected: date | None) -> None:
    assert rules_service.parse_day(text) == expected


def test_parse_kind_accepts_chinese_and_codes() -> None:
    assert parse_kind("节假日") is DayKind.HOLIDAY
    assert parse_kind("调休上班") is DayKind.ADJUSTED_WORKDAY
    assert parse_kind("补班") is DayKind.ADJUSTED_WORKDAY
    assert parse_kind("休息日") is DayKind.WEEKEND
    assert parse_kind("工作日") is DayKind.WORKDAY
    assert parse_kind(" Holiday ") is DayKind.HOLIDAY
    assert parse_kind("放个假") is None
