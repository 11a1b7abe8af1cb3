from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Boolean, Date, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from govshare.db import Base, utcnow


class DayKind(StrEnum):
    WORKDAY = "workday"  # ordinary Monday-Friday
    WEEKEND = "weekend"  # ordinary Saturday/Sunday
    HOLIDAY = "holiday"  # statutory holiday or a rest day moved into it
    ADJUSTED_WORKDAY = "adjusted_workday"  # 调休上班: a weekend day worked

    @property
    def label(self) -> str:
        return DAY_KIND_LABELS[self]

    @property
    def is_workday(self) -> bool:
        return self in (DayKind.WORKDAY, DayKind.ADJUSTED_WORKDAY)


DAY_KIND_LABELS = {
    DayKind.WORKDAY: "工作日",
    DayKind.WEEKEND: "休息日",
    DayKind.HOLIDAY: "节假日",
    DayKind.ADJUSTED_WORKDAY: "调休上班",
}


class CalendarDay(Base):
    """One day of the official calendar.

    ``scope`` is "" for the national calendar, or a jurisdiction's division code for a local
    override (a local holiday). A year counts as known only once it is in ``calendar_years``.
    """

    __tablename__ = "calendar_days"

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(12), default="")
    day: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(24))
    is_workday: Mapped[bool] = mapped_column(Boolean)
    name: Mapped[str] = mapped_column(String(64), default="")
    source: Mapped[str] = mapped_column(String(32))  # chinese-calendar | import | manual
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str] = mapped_column(String(128), default="")

    __table_args__ = (Index("uq_calendar_days_scope_day", "scope", "day", unique=True),)


class CalendarYear(Base):
    """A year whose national working-day calendar is on file."""

    __tablename__ = "calendar_years"

    year: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    source: Mapped[str] = mapped_column(String(32))
    loaded_at: Mapped[datetime] = mapped_column(default=utcnow)
    loaded_by: Mapped[str] = mapped_column(String(128), default="")
