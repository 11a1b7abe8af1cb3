"""The working-day calendar in the database: official 2026 days from chinese-calendar, due
dates, provisional years, CSV import, single-day edits, local overrides, audit."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.audit.models import AuditEntry
from govshare.errors import NotFound, PermissionDenied, ValidationFailed
from govshare.permissions import Role
from govshare.rules import service as rules_service
from govshare.rules.models import CalendarDay, CalendarYear, DayKind
from tests.conftest import Factory, platform

CSV_2027 = (
    "日期,类型,名称\n"
    "2027-01-01,节假日,元旦\n"
    "2027-02-06,调休上班,春节调休上班\n"
    "2027-02-08,节假日,春节\n"
).encode()


def due(db: Session, received: date, days: int, code: str | None = None) -> rules_service.Due:
    return rules_service.due_date(db, received, days, code)


# ---------------------------------------------------------------- due dates on 2026


def test_national_day_is_skipped_and_the_saturday_make_up_day_counts(cal2026: Session) -> None:
    # received Wed 2026-09-30; Oct 1-7 are the National Day holiday (not counted);
    # Oct 8 Thu (1), Oct 9 Fri (2), Oct 10 Sat make-up working day (3), Oct 11 Sun rest,
    # Oct 12-16 (4-8), Oct 17-18 weekend, Oct 19 (9), Oct 20 (10)
    result = due(cal2026, date(2026, 9, 30), 10)
    assert result.due == date(2026, 10, 20)
    assert not result.provisional
    assert result.uncovered_years == ()
    assert result.as_line() == "2026-10-20"


def test_a_weekend_make_up_day_is_a_working_day(cal2026: Session) -> None:
    # Fri 2026-10-09 + 1: Saturday 2026-10-10 is worked (调休上班)
    assert due(cal2026, date(2026, 10, 9), 1).due == date(2026, 10, 10)
    # Fri 2026-09-18 + 1: Sat 09-19 is a rest day, Sun 09-20 is a make-up working day
    assert due(cal2026, date(2026, 9, 18), 1).due == date(2026, 9, 20)
    # the same on the weekday rule alone would be the next Monday
    assert due(cal2026, date(2026, 3, 6), 1).due == date(2026, 3, 9)


def test_day_of_receipt_is_not_counted(cal2026: Session) -> None:
    # Friday 2026-03-06 (an ordinary week), one working day: Monday 2026-03-09
    assert due(cal2026, date(2026, 3, 6), 1).due == date(2026, 3, 9)
    # received on the first day of the holiday: the first working day after it
    assert due(cal2026, date(2026, 10, 1), 1).due == date(2026, 10, 8)
    # Mid-autumn (Sep 25-27) then the make-up and normal days: Thu 09-24 + 2 = Tue 09-29
    assert due(cal2026, date(2026, 9, 24), 2).due == date(2026, 9, 29)


def test_a_due_date_in_2027_is_provisional_on_weekdays(cal2026: Session) -> None:
    # Fri 2026-12-25: Dec 28-31 (1-4), Jan 1 2027 Fri guessed a working day (5),
    # Jan 4-8 (6-10); 2027 is not in chinese-calendar nor in the table
    result = due(cal2026, date(2026, 12, 25), 10)
    assert result.due == date(2027, 1, 8)
    assert result.provisional
    assert result.uncovered_years == (2027,)
    assert result.as_line() == "2027-01-08 provisional"
    # a period that ends before the new year is not provisional
    assert not due(cal2026, date(2026, 12, 25), 4).provisional


def test_importing_2027_makes_it_final(cal2026: Session) -> None:
    rules_service.import_year_csv(cal2026, platform(), CSV_2027)
    result = due(cal2026, date(2026, 12, 25), 10)
    # Jan 1 is now a holiday: Dec 28-31 (1-4), Jan 4-8 (5-9), Jan 11 (10)
    assert result.due == date(2027, 1, 11)
    assert not result.provisional
    assert result.as_line() == "2027-01-11"
    # the imported make-up Saturday counts: Fri 2027-02-05 + 1 = Sat 02-06
    assert due(cal2026, date(2027, 2, 5), 1).due == date(2027, 2, 6)


def test_working_days_left(cal2026: Session) -> None:
    cal = rules_service.calendar_for(cal2026, None)
    assert cal.working_days_left(date(2026, 9, 30), date(2026, 10, 20)) == 10
    assert cal.working_days_left(date(2026, 10, 20), date(2026, 10, 20)) == 0
    # on a holiday with the due date the first working day after it
    assert cal.working_days_left(date(2026, 10, 1), date(2026, 10, 8)) == 1
    # overdue: Oct 21 and Oct 22 are working days after the due date
    assert cal.working_days_left(date(2026, 10, 22), date(2026, 10, 20)) == -2
    # overdue across the holiday: Oct 8, 9, 10 (Sat, worked) after Sep 30
    assert cal.working_days_left(date(2026, 10, 11), date(2026, 9, 30)) == -3


def test_days_and_range_are_checked(cal2026: Session) -> None:
    with pytest.raises(ValidationFailed, match="0 到 365"):
        due(cal2026, date(2026, 1, 5), 366)
    with pytest.raises(NotFound, match="行政区划代码 999999 不存在"):
        due(cal2026, date(2026, 1, 5), 1, "999999")


# ---------------------------------------------------------------- seeding


def test_seed_from_package_is_idempotent(db: Session, seed_years: Callable[..., list[int]]) -> None:
    assert seed_years(2025, 2026, 2031) == [2025, 2026]  # 2031 is not in the package
    assert seed_years(2026) == []
    years = rules_service.known_years(db)
    assert [(y.year, y.source) for y in years] == [
        (2025, "chinese-calendar"),
        (2026, "chinese-calendar"),
    ]
    oct1 = db.scalar(select(CalendarDay).where(CalendarDay.day == date(2026, 10, 1)))
    assert oct1 is not None
    assert (oct1.kind, oct1.is_workday, oct1.name, oct1.scope) == ("holiday", False, "国庆节", "")


def test_seed_everything_covers_2004_to_2026(db: Session) -> None:
    added = rules_service.seed_from_package(db, platform())
    assert added == list(range(2004, 2027))
    assert rules_service.seed_from_package(db, platform()) == []
    # the 2015 Anti-Fascist day off, a one-off holiday, is on file
    info = rules_service.calendar_for(db, None).info(date(2015, 9, 3))
    assert (info.kind, info.name, info.known) == ("holiday", "抗战胜利70周年纪念日", True)


def test_seed_needs_calendar_manage(db: Session, factory: Factory) -> None:
    officer = factory.principal(factory.user(Role.DEPT_OFFICER))
    with pytest.raises(PermissionDenied):
        rules_service.seed_from_package(db, officer, years=[2026])


# ---------------------------------------------------------------- year view


def test_year_view_lists_special_days(cal2026: Session) -> None:
    view = rules_service.year_view(cal2026, 2026)
    assert view.known
    assert view.source is not None
    assert view.source.source == "chinese-calendar"
    assert len(view.days) == 365
    special = {d.day: (d.kind, d.name) for d in view.special}
    assert special[date(2026, 10, 1)] == ("holiday", "国庆节")
    assert special[date(2026, 10, 10)] == ("adjusted_workday", "国庆节调休上班")
    assert date(2026, 10, 11) not in special  # an ordinary Sunday
    assert date(2026, 10, 12) not in special  # an ordinary Monday
    unknown = rules_service.year_view(cal2026, 2027)
    assert not unknown.known
    assert unknown.special == []
    assert unknown.workdays == 261  # Monday-Friday in 2027
    assert all(not d.known for d in unknown.days)


# ---------------------------------------------------------------- CSV import


def test_import_a_national_year(cal2026: Session) -> None:
    result = rules_service.import_year_csv(cal2026, platform(), CSV_2027)
    assert (result.year, result.days_listed, result.holidays, result.adjusted_workdays) == (
        2027,
        3,
        2,
        1,
    )
    year = cal2026.get(CalendarYear, 2027)
    assert year is not None
    assert year.source == "import"
    days = rules_service.year_days(cal2026, 2027)
    assert len(days) == 365  # unlisted days follow Monday-Friday
    by_day = {d.day: d for d in days}
    assert (by_day[date(2027, 1, 1)].kind, by_day[date(2027, 1, 1)].name) == ("holiday", "元旦")
    assert by_day[date(2027, 2, 6)].is_workday
    assert by_day[date(2027, 1, 2)].kind == "weekend"
    assert by_day[date(2027, 1, 4)].kind == "workday"


def test_reimport_replaces_the_year(cal2026: Session) -> None:
    rules_service.import_year_csv(cal2026, platform(), CSV_2027)
    rules_service.import_year_csv(cal2026, platform(), "日期,类型\n2027-01-04,节假日\n".encode())
    cal = rules_service.calendar_for(cal2026, None)
    assert cal.info(date(2027, 1, 1)).is_workday  # no longer listed: an ordinary Friday
    assert not cal.info(date(2027, 1, 4)).is_workday


def test_import_accepts_gbk_and_alternative_spellings(cal2026: Session) -> None:
    content = "日期,类型,名称\r\n2027/1/1,节假日,元旦\r\n2027年2月6日,调休,春节调休上班\r\n"
    result = rules_service.import_year_csv(cal2026, platform(), content.encode("gbk"))
    assert (result.year, result.holidays, result.adjusted_workdays) == (2027, 1, 1)
    names = {d.day: d.name for d in rules_service.year_days(cal2026, 2027) if d.name}
    assert names == {date(2027, 1, 1): "元旦", date(2027, 2, 6): "春节调休上班"}


def test_import_accepts_a_utf8_bom_and_normalises_kinds(cal2026: Session) -> None:
    # "工作日" on a Saturday is a make-up day; "休息日" on a weekday is a holiday
    content = "\ufeff日期,类型,名称\n2027-02-06,工作日,\n2027-02-08,休息日,\n".encode()
    result = rules_service.import_year_csv(cal2026, platform(), content)
    assert (result.holidays, result.adjusted_workdays) == (1, 1)
    kinds = {d.day: d.kind for d in rules_service.year_days(cal2026, 2027)}
    assert kinds[date(2027, 2, 6)] == DayKind.ADJUSTED_WORKDAY
    assert kinds[date(2027, 2, 8)] == DayKind.HOLIDAY


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "文件是空的"),
        (b"\n\n", "文件是空的"),
        ("日期,类型,名称\n".encode(), "文件中没有任何日期"),
        ("day,what\n2027-01-01,节假日\n".encode(), "表头须包含“日期”和“类型”两列"),
        (
            "日期,类型,名称\n2027-01-01,节假日,元旦\n2027-13-01,节假日,\n".encode(),
            "第 3 行：日期“2027-13-01”不是 YYYY-MM-DD 格式",
        ),
        (
            "日期,类型,名称\n2027-01-01,放个假,元旦\n".encode(),
            "第 2 行：类型“放个假”无效，应为 工作日/休息日/节假日/调休上班",
        ),
        (
            "日期,类型,名称\n2027-01-01,节假日,元旦\n2028-01-01,节假日,元旦\n".encode(),
            "一次只能导入一个年度，文件中包含 2027, 2028",
        ),
        (
            "日期,类型\n2027-01-01,节假日\n2027-01-01,工作日\n".encode(),
            "第 3 行：日期 2027-01-01 重复",
        ),
        (b"\xff\xff\x80\x80", "文件编码无法识别，请使用 UTF-8 或 GB18030 编码的 CSV"),
        ("日期,类型\n2027-01-01\x00,节假日\n".encode(), "文件不是 CSV 文本文件"),
        (b"x" * 1_000_001, "文件过大"),
    ],
)
def test_import_errors_change_nothing(cal2026: Session, content: bytes, message: str) -> None:
    with pytest.raises(ValidationFailed) as exc:
        rules_service.import_year_csv(cal2026, platform(), content)
    assert message in exc.value.message
    assert exc.value.field == "file"
    assert cal2026.get(CalendarYear, 2027) is None
    assert rules_service.year_days(cal2026, 2027) == []


def test_import_reports_every_bad_row(cal2026: Session) -> None:
    content = "日期,类型\n2027-01-01,节假日\nabc,节假日\n2027-01-02,x\n".encode()
    with pytest.raises(ValidationFailed) as exc:
        rules_service.import_year_csv(cal2026, platform(), content)
    assert "第 3 行" in exc.value.message
    assert "第 4 行" in exc.value.message


def test_import_needs_calendar_manage_and_a_real_scope(cal2026: Session, factory: Factory) -> None:
    officer = factory.principal(factory.user(Role.DEPT_OFFICER))
    with pytest.raises(PermissionDenied):
        rules_service.import_year_csv(cal2026, officer, CSV_2027)
    with pytest.raises(NotFound, match="行政区划代码 999999 不存在"):
        rules_service.import_year_csv(cal2026, platform(), CSV_2027, scope="999999")


def test_template_round_trips_to_the_package_year(cal2026: Session) -> None:
    content = rules_service.template_csv()
    assert content.startswith("\ufeff日期,类型,名称\r\n".encode())
    assert "2026-10-01,节假日,国庆节".encode() in content
    assert "2026-10-10,调休上班,国庆节调休上班".encode() in content
    before = [(d.day, d.kind, d.name) for d in rules_service.year_days(cal2026, 2026)]
    rules_service.import_year_csv(cal2026, platform(), content)
    cal2026.expire_all()
    after = [(d.day, d.kind, d.name) for d in rules_service.year_days(cal2026, 2026)]
    assert after == before
    assert cal2026.get(CalendarYear, 2026).source == "import"  # type: ignore[union-attr]


# ---------------------------------------------------------------- single days, local days


def test_set_day_changes_due_dates_and_is_audited(cal2026: Session, factory: Factory) -> None:
    authority = factory.authority()
    row = rules_service.set_day(
        cal2026, authority, date(2026, 10, 9), DayKind.HOLIDAY, " 临时放假 "
    )
    assert (row.kind, row.is_workday, row.name, row.source) == (
        "holiday",
        False,
        "临时放假",
        "manual",
    )
    # Oct 8 (1), Oct 10 (2), Oct 12-16 (3-7), Oct 19-21 (8-10)
    assert due(cal2026, date(2026, 9, 30), 10).due == date(2026, 10, 21)
    cal2026.commit()
    entry = cal2026.scalar(select(AuditEntry).where(AuditEntry.action == "rules:calendar:edit"))
    assert entry is not None
    assert entry.target_type == "calendar_day"
    assert entry.target_id == "national:2026-10-09"
    assert entry.actor_name == authority.name
    assert '"before":{"is_workday":true,"kind":"workday","name":""}' in entry.details
    assert '"after":{"is_workday":false,"kind":"holiday","name":"临时放假"}' in entry.details


def test_set_day_rules(cal2026: Session, factory: Factory) -> None:
    with pytest.raises(ValidationFailed, match="调休上班") as exc:
        rules_service.set_day(cal2026, platform(), date(2026, 10, 17), DayKind.WORKDAY)
    assert exc.value.field == "kind"
    with pytest.raises(ValidationFailed, match="节假日"):
        rules_service.set_day(cal2026, platform(), date(2026, 10, 16), DayKind.WEEKEND)
    with pytest.raises(ValidationFailed, match="本来就是工作日"):
        rules_service.set_day(cal2026, platform(), date(2026, 10, 16), DayKind.ADJUSTED_WORKDAY)
    with pytest.raises(NotFound):
        rules_service.set_day(
            cal2026, platform(), date(2026, 10, 16), DayKind.HOLIDAY, scope="999999"
        )
    officer = factory.principal(factory.user(Role.DEPT_OFFICER))
    with pytest.raises(PermissionDenied):
        rules_service.set_day(cal2026, officer, date(2026, 10, 16), DayKind.HOLIDAY)


def test_a_make_up_saturday_set_by_hand_counts(cal2026: Session) -> None:
    rules_service.set_day(cal2026, platform(), date(2026, 3, 7), DayKind.ADJUSTED_WORKDAY)
    assert due(cal2026, date(2026, 3, 6), 1).due == date(2026, 3, 7)


def test_local_override_applies_to_the_jurisdiction_and_below(
    cal2026: Session, factory: Factory
) -> None:
    city = factory.jurisdiction("某市", code="419900")
    county = factory.jurisdiction("某县", level="county", parent=city, code="419901")
    other = factory.jurisdiction("另一市", code="429900")
    rules_service.set_day(
        cal2026, platform(), date(2026, 10, 9), DayKind.HOLIDAY, "本市纪念日", scope=city.code
    )
    # national and the other city: unchanged
    assert due(cal2026, date(2026, 9, 30), 10).due == date(2026, 10, 20)
    assert due(cal2026, date(2026, 9, 30), 10, other.code).due == date(2026, 10, 20)
    # the city and its county lose Oct 9: the tenth working day is Oct 21
    assert due(cal2026, date(2026, 9, 30), 10, city.code).due == date(2026, 10, 21)
    assert due(cal2026, date(2026, 9, 30), 10, county.code).due == date(2026, 10, 21)
    # the county's own override beats the city's: it works on Oct 9 after all
    rules_service.set_day(
        cal2026, platform(), date(2026, 10, 9), DayKind.WORKDAY, "", scope=county.code
    )
    assert due(cal2026, date(2026, 9, 30), 10, county.code).due == date(2026, 10, 20)
    info = rules_service.calendar_for(cal2026, city).info(date(2026, 10, 9))
    assert (info.kind, info.name, info.scope) == ("holiday", "本市纪念日", city.code)
    # the national calendar rows are untouched
    national = {d.day: d.kind for d in rules_service.year_days(cal2026, 2026)}
    assert national[date(2026, 10, 9)] == "workday"


def test_local_import_stores_only_listed_days(cal2026: Session, factory: Factory) -> None:
    city = factory.jurisdiction("某市", code="419900")
    content = "日期,类型,名称\n2027-01-04,节假日,本地假日\n".encode()
    result = rules_service.import_year_csv(cal2026, platform(), content, scope=city.code)
    assert result.scope == city.code
    assert cal2026.get(CalendarYear, 2027) is None  # the national 2027 is still not on file
    assert [d.day for d in rules_service.year_days(cal2026, 2027, city.code)] == [date(2027, 1, 4)]
    # Thu 2026-12-31 + 2 for the city: Jan 1 (guessed), Jan 4 is the local holiday, Jan 5
    local = due(cal2026, date(2026, 12, 31), 2, city.code)
    assert local.due == date(2027, 1, 5)
    assert local.provisional  # Jan 1 and Jan 5 are still guesses
    assert due(cal2026, date(2026, 12, 31), 2).due == date(2027, 1, 4)


def test_coverage_warnings(cal2026: Session) -> None:
    warnings = rules_service.coverage_warnings(cal2026, date(2026, 11, 1))
    assert len(warnings) == 1
    assert warnings[0].startswith("2027 年的工作日历尚未导入")
    rules_service.import_year_csv(cal2026, platform(), CSV_2027)
    assert rules_service.coverage_warnings(cal2026, date(2026, 11, 1)) == []
