"""Working-day arithmetic on the official calendar.

Counting rule: the day a request is received is not counted; counting starts the next day;
the deadline is the N-th working day after receipt. A day in a year whose calendar is not on
file is judged by Monday-Friday and makes the result *provisional*.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.rules.models import CalendarDay, CalendarYear, DayKind

MAX_SCAN_DAYS = 3 * 366


@dataclass(frozen=True)
class DayInfo:
    day: date
    is_workday: bool
    kind: str
    name: str
    known: bool  # False: the year is not on file and the weekday rule was used
    #: where the day comes from: "" the national calendar (or the weekday rule), else the
    #: division code of the jurisdiction whose local override applies
    scope: str = ""

    @property
    def kind_label(self) -> str:
        try:
            return DayKind(self.kind).label
        except ValueError:
            return self.kind


@dataclass(frozen=True)
class Due:
    received: date
    days: int
    due: date
    provisional: bool
    uncovered_years: tuple[int, ...]

    def as_line(self) -> str:
        return self.due.isoformat() + (" provisional" if self.provisional else "")


def weekday_rule(day: date) -> bool:
    return day.weekday() < 5


def add_working_days(received: date, days: int, info: Callable[[date], DayInfo]) -> Due:
    if days < 0:
        raise ValueError("days must be >= 0")
    current = received
    counted = 0
    uncovered: set[int] = set()
    scanned = 0
    while counted < days:
        current += timedelta(days=1)
        scanned += 1
        if scanned > MAX_SCAN_DAYS:
            raise ValueError("no working days found within three years")
        d = info(current)
        if not d.known:
            uncovered.add(current.year)
        if d.is_workday:
            counted += 1
    return Due(received, days, current, bool(uncovered), tuple(sorted(uncovered)))


class WorkdayCalendar:
    """The calendar as seen from one jurisdiction: its local overrides, then its ancestors',
    then the national calendar. Years are loaded from the database on first use."""

    def __init__(self, session: Session, scopes: Iterable[str] = ()) -> None:
        self.session = session
        #: most specific first; the national scope "" always last
        self.scopes = [s for s in scopes if s] + [""]
        self._years: dict[int, dict[date, DayInfo]] = {}
        self._known: dict[int, bool] = {}

    def _load(self, year: int) -> dict[date, DayInfo]:
        if year in self._years:
            return self._years[year]
        known = self.session.get(CalendarYear, year) is not None
        rows = self.session.execute(
            select(
                CalendarDay.scope,
                CalendarDay.day,
                CalendarDay.is_workday,
                CalendarDay.kind,
                CalendarDay.name,
            )
            .where(CalendarDay.scope.in_(self.scopes))
            .where(CalendarDay.day >= date(year, 1, 1), CalendarDay.day <= date(year, 12, 31))
        ).all()
        rank = {s: i for i, s in enumerate(self.scopes)}
        best: dict[date, tuple[int, DayInfo]] = {}
        for scope, day, is_workday, kind, name in rows:
            r = rank[scope]
            if day not in best or r < best[day][0]:
                best[day] = (
                    r,
                    DayInfo(day, is_workday, kind, name, known or scope != "", scope),
                )
        self._years[year] = {d: v for d, (_, v) in best.items()}
        self._known[year] = known
        return self._years[year]

    def info(self, day: date) -> DayInfo:
        days = self._load(day.year)
        if day in days:
            return days[day]
        workday = weekday_rule(day)
        return DayInfo(day, workday, "workday" if workday else "weekend", "", self._known[day.year])

    def days_of_year(self, year: int) -> list[DayInfo]:
        """Every day of ``year`` as seen from this calendar's jurisdiction."""
        out, d = [], date(year, 1, 1)
        while d.year == year:
            out.append(self.info(d))
            d += timedelta(days=1)
        return out

    def is_known_year(self, year: int) -> bool:
        self._load(year)
        return self._known[year]

    def due(self, received: date, days: int) -> Due:
        return add_working_days(received, days, self.info)

    def working_days_left(self, today: date, due: date) -> int:
        """Working days from tomorrow up to and including ``due``; negative when overdue
        (minus the working days since the due date)."""
        if due >= today:
            n, d = 0, today
            while d < due:
                d += timedelta(days=1)
                n += self.info(d).is_workday
            return n
        n, d = 0, due
        while d < today:
            d += timedelta(days=1)
            n += self.info(d).is_workday
        return -n
