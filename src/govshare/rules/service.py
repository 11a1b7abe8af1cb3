"""Rulebook resolution and assignment; the working-day calendar's data."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from govshare.audit import service as audit
from govshare.errors import NotFound, ValidationFailed
from govshare.orgs import repository as orgs_repo
from govshare.orgs.models import Jurisdiction
from govshare.principal import Principal
from govshare.rules.loader import NATIONAL, registry
from govshare.rules.models import DAY_KIND_LABELS, CalendarDay, CalendarYear, DayKind
from govshare.rules.rulebook import Rulebook
from govshare.rules.workdays import Due, WorkdayCalendar

# ---------------------------------------------------------------- rulebooks


@dataclass(frozen=True)
class EffectiveRulebook:
    book: Rulebook
    #: rulebook names applied, outermost first (the national default is always the base)
    chain: tuple[str, ...]
    #: the jurisdiction whose own rulebook setting is nearest (None: national default)
    set_by: Jurisdiction | None


def rulebook_chain(session: Session, jurisdiction: Jurisdiction | None) -> EffectiveRulebook:
    if jurisdiction is None:
        return EffectiveRulebook(registry().get(NATIONAL), (NATIONAL,), None)
    lineage = orgs_repo.jurisdiction_lineage(session, jurisdiction)
    names = [j.rulebook for j in lineage if j.rulebook]
    set_by = next((j for j in reversed(lineage) if j.rulebook), None)
    chain = (NATIONAL, *[n for n in names if n != NATIONAL])
    return EffectiveRulebook(registry().resolve(chain), chain, set_by)


def rulebook_for(session: Session, jurisdiction: Jurisdiction | None) -> Rulebook:
    return rulebook_chain(session, jurisdiction).book


def assign_rulebook(
    session: Session, actor: Principal, jurisdiction: Jurisdiction, name: str | None
) -> Jurisdiction:
    name = name or None
    if name is not None and name not in registry():
        raise ValidationFailed(f"没有名为 {name} 的规则", field="rulebook")
    before = jurisdiction.rulebook
    jurisdiction.rulebook = name
    rulebook_chain(session, jurisdiction)  # the merged chain must validate
    session.flush()
    audit.record(
        session,
        actor,
        "rules:rulebook:assign",
        "jurisdiction",
        jurisdiction.id,
        {"code": jurisdiction.code, "before": before, "after": name},
    )
    return jurisdiction


def longest_log_retention_months(session: Session) -> int:
    """Audit retention for the whole platform: the longest any jurisdiction's rulebook asks."""
    months = rulebook_for(session, None).logs.retention_months
    for j in orgs_repo.list_jurisdictions(session):
        months = max(months, rulebook_for(session, j).logs.retention_months)
    return months


# ---------------------------------------------------------------- calendar

HOLIDAY_NAMES = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "National Day": "国庆节",
    "Mid-autumn Festival": "中秋节",
    "Anti-Fascist 70th Day": "抗战胜利70周年纪念日",
}


def package_years() -> range:
    import chinese_calendar

    years = sorted({d.year for d in chinese_calendar.holidays})
    return range(years[0], years[-1] + 1)


def _package_year_days(year: int) -> list[tuple[date, DayKind, str]]:
    import chinese_calendar

    out = []
    d = date(year, 1, 1)
    while d.year == year:
        workday = chinese_calendar.is_workday(d)
        _on_holiday, raw_name = chinese_calendar.get_holiday_detail(d)
        name = HOLIDAY_NAMES.get(raw_name or "", raw_name or "")
        if workday:
            kind = DayKind.WORKDAY if d.weekday() < 5 else DayKind.ADJUSTED_WORKDAY
            if kind is DayKind.ADJUSTED_WORKDAY:
                name = f"{name}调休上班" if name else "调休上班"
            else:
                name = ""
        else:
            kind = DayKind.HOLIDAY if name else DayKind.WEEKEND
        out.append((d, kind, name))
        d += timedelta(days=1)
    return out


def _store_year(
    session: Session, year: int, days: list[tuple[date, DayKind, str]], source: str, by: str
) -> None:
    session.execute(
        delete(CalendarDay).where(
            CalendarDay.scope == "",
            CalendarDay.day >= date(year, 1, 1),
            CalendarDay.day <= date(year, 12, 31),
        )
    )
    session.add_all(
        CalendarDay(
            scope="",
            day=d,
            kind=k.value,
            is_workday=k.is_workday,
            name=n,
            source=source,
            updated_by=by,
        )
        for d, k, n in days
    )
    existing = session.get(CalendarYear, year)
    if existing is None:
        session.add(CalendarYear(year=year, source=source, loaded_by=by))
    else:
        existing.source, existing.loaded_by = source, by
    session.flush()


def seed_from_package(session: Session, actor: Principal) -> list[int]:
    """Load every year the chinese-calendar package knows and the table does not have."""
    have = set(session.scalars(select(CalendarYear.year)))
    added = [y for y in package_years() if y not in have]
    for year in added:
        _store_year(session, year, _package_year_days(year), "chinese-calendar", actor.name)
    if added:
        audit.record(
            session,
            actor,
            "rules:calendar:seed",
            "calendar",
            f"{added[0]}-{added[-1]}",
            {"years": added, "source": "chinese-calendar"},
        )
    return added


_KIND_BY_TEXT = (
    {k.value: k for k in DayKind}
    | {v: k for k, v in DAY_KIND_LABELS.items()}
    | {
        "调休": DayKind.ADJUSTED_WORKDAY,
        "调休工作日": DayKind.ADJUSTED_WORKDAY,
        "法定节假日": DayKind.HOLIDAY,
        "假日": DayKind.HOLIDAY,
    }
)
_HEADERS = {
    "日期": "date",
    "date": "date",
    "类型": "kind",
    "kind": "kind",
    "名称": "name",
    "name": "name",
    "说明": "name",
}


def _decode(content: bytes) -> str:
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return content.decode(enc)
        except UnicodeDecodeError:
            continue
    raise ValidationFailed("文件编码无法识别，请使用 UTF-8 或 GB18030 编码的 CSV", field="file")


@dataclass
class ImportResult:
    year: int
    days_listed: int
    holidays: int
    adjusted_workdays: int


def import_year_csv(
    session: Session, actor: Principal, content: bytes, *, scope: str = ""
) -> ImportResult:
    """Import one year's calendar from CSV (columns 日期,类型,名称).

    For the national calendar (scope ""), days not listed follow Monday-Friday and the year
    becomes known. For a jurisdiction's scope, only the listed days are stored as overrides.
    """
    if len(content) > 1_000_000:
        raise ValidationFailed("文件过大：一年的日历不应超过 1 MB", field="file")
    text = _decode(content)
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ValidationFailed("文件是空的", field="file") from None
    cols = [_HEADERS.get(h) for h in header]
    if "date" not in cols or "kind" not in cols:
        raise ValidationFailed("表头须包含“日期”和“类型”两列（可选“名称”）", field="file")
    listed: dict[date, tuple[DayKind, str]] = {}
    errors: list[str] = []
    for lineno, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        rec = {c: (row[i].strip() if i < len(row) else "") for i, c in enumerate(cols) if c}
        try:
            day = date.fromisoformat(rec["date"].replace("/", "-"))
        except ValueError:
            errors.append(f"第 {lineno} 行：日期“{rec['date']}”不是 YYYY-MM-DD 格式")
            continue
        kind = _KIND_BY_TEXT.get(rec["kind"])
        if kind is None:
            errors.append(
                f"第 {lineno} 行：类型“{rec['kind']}”无效，应为 工作日/休息日/节假日/调休上班"
            )
            continue
        if day in listed:
            errors.append(f"第 {lineno} 行：日期 {day} 重复")
            continue
        if kind is DayKind.WORKDAY and day.weekday() >= 5:
            kind = DayKind.ADJUSTED_WORKDAY
        if kind is DayKind.WEEKEND and day.weekday() < 5:
            kind = DayKind.HOLIDAY
        listed[day] = (kind, rec.get("name", "")[:64])
    if errors:
        raise ValidationFailed(
            "；".join(errors[:20]) + (" 等" if len(errors) > 20 else ""), field="file"
        )
    if not listed:
        raise ValidationFailed("文件中没有任何日期", field="file")
    years = {d.year for d in listed}
    if len(years) != 1:
        raise ValidationFailed(
            f"一次只能导入一个年度，文件中包含 {', '.join(map(str, sorted(years)))}", field="file"
        )
    year = years.pop()
    if scope:
        for d, (k, n) in listed.items():
            _upsert_day(session, scope, d, k, n, "import", actor.name)
        session.flush()
    else:
        days = []
        d = date(year, 1, 1)
        while d.year == year:
            if d in listed:
                days.append((d, *listed[d]))
            else:
                days.append((d, DayKind.WORKDAY if d.weekday() < 5 else DayKind.WEEKEND, ""))
            d += timedelta(days=1)
        _store_year(session, year, days, "import", actor.name)
    result = ImportResult(
        year=year,
        days_listed=len(listed),
        holidays=sum(1 for k, _ in listed.values() if k is DayKind.HOLIDAY),
        adjusted_workdays=sum(1 for k, _ in listed.values() if k is DayKind.ADJUSTED_WORKDAY),
    )
    audit.record(
        session,
        actor,
        "rules:calendar:import",
        "calendar_year",
        year,
        {
            "scope": scope,
            "days_listed": result.days_listed,
            "holidays": result.holidays,
            "adjusted_workdays": result.adjusted_workdays,
        },
    )
    return result


def _upsert_day(
    session: Session, scope: str, day: date, kind: DayKind, name: str, source: str, by: str
) -> tuple[CalendarDay | None, CalendarDay]:
    row = session.scalar(
        select(CalendarDay).where(CalendarDay.scope == scope, CalendarDay.day == day)
    )
    before = None
    if row is None:
        row = CalendarDay(scope=scope, day=day)
        session.add(row)
    else:
        before = CalendarDay(kind=row.kind, is_workday=row.is_workday, name=row.name)
    row.kind, row.is_workday, row.name = kind.value, kind.is_workday, name
    row.source, row.updated_by = source, by
    return before, row


def set_day(
    session: Session, actor: Principal, day: date, kind: DayKind, name: str = "", *, scope: str = ""
) -> CalendarDay:
    if kind is DayKind.WORKDAY and day.weekday() >= 5:
        raise ValidationFailed("周末上班的日子请选择“调休上班”", field="kind")
    if kind is DayKind.WEEKEND and day.weekday() < 5:
        raise ValidationFailed("周一至周五放假的日子请选择“节假日”", field="kind")
    if scope and orgs_repo.jurisdiction_by_code(session, scope) is None:
        raise NotFound(f"行政区划代码 {scope} 不存在")
    before, row = _upsert_day(session, scope, day, kind, name.strip()[:64], "manual", actor.name)
    session.flush()
    audit.record(
        session,
        actor,
        "rules:calendar:edit",
        "calendar_day",
        f"{scope or 'national'}:{day}",
        {
            "before": None
            if before is None
            else {"kind": before.kind, "is_workday": before.is_workday, "name": before.name},
            "after": {"kind": row.kind, "is_workday": row.is_workday, "name": row.name},
        },
    )
    return row


def calendar_for(session: Session, jurisdiction: Jurisdiction | None) -> WorkdayCalendar:
    if jurisdiction is None:
        return WorkdayCalendar(session)
    lineage = orgs_repo.jurisdiction_lineage(session, jurisdiction)
    return WorkdayCalendar(session, [j.code for j in reversed(lineage)])


def due_date(
    session: Session, received: date, days: int, jurisdiction_code: str | None = None
) -> Due:
    jurisdiction = None
    if jurisdiction_code:
        jurisdiction = orgs_repo.jurisdiction_by_code(session, jurisdiction_code)
        if jurisdiction is None:
            raise NotFound(f"行政区划代码 {jurisdiction_code} 不存在")
    if days < 0 or days > 365:
        raise ValidationFailed("工作日数应在 0 到 365 之间", field="days")
    return calendar_for(session, jurisdiction).due(received, days)


def known_years(session: Session) -> list[CalendarYear]:
    return list(session.scalars(select(CalendarYear).order_by(CalendarYear.year)))


def coverage_warnings(session: Session, today: date) -> list[str]:
    """Warnings for the authority: this year or next year has no calendar on file."""
    have = {y.year for y in known_years(session)}
    out = []
    for year in (today.year, today.year + 1):
        if year not in have:
            out.append(
                f"{year} 年的工作日历尚未导入：涉及该年的期限暂按周一至周五计算并标为“临时”，"
                f"请在国务院办公厅发布放假安排后导入或逐日维护。"
            )
    return out


def year_days(session: Session, year: int, scope: str = "") -> list[CalendarDay]:
    return list(
        session.scalars(
            select(CalendarDay)
            .where(CalendarDay.scope == scope)
            .where(CalendarDay.day >= date(year, 1, 1), CalendarDay.day <= date(year, 12, 31))
            .order_by(CalendarDay.day)
        )
    )
