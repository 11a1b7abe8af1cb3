"""Timeliness and quality of aggregated data, per entry and per department.

What the seeds ask for:

- Departments keep their data complete, accurate, timely and usable and answer for its
  quality; the data authority supervises it (seed 003 art. 27 and 31; seed 000 art. 15 and
  22; seed 002 §3(4); seed 001 art. 8). Aggregation is "complete and accurate", in real
  time while business data is produced (seed 003 art. 29; seed 001 art. 13).
- Shared data is uploaded and updated "within the time limit the catalog sets" (seed 004
  art. 12, art. 14); the authority evaluates each department's "quantity and update
  timeliness" (seed 004 art. 24) and failing to update on time is a violation (seed 004
  art. 26(4); seed 003 art. 67(1)). The regular checks cover "data aggregation quality"
  (seed 000 art. 29).
- Data of a higher level returned to a lower level (回流, seed 003 art. 29; seed 000
  art. 30(5)) is marked in the catalog; the listings show it with its origin.

The measures (all computed in SQL, one ``COUNT`` query per data table):

- **completeness** (完整性): filled required cells ÷ (live rows × required items). A cell
  is filled when it is not NULL and, for text items, not the empty string (the loader trims
  cells and stores a blank one as NULL; an empty string can only come from elsewhere, e.g.
  data written before validation existed). Live rows are rows that are not tombstones
  (``_deleted``).
- **validity** (有效性): rows that passed validation ÷ rows submitted, over the entry's
  finished batches (committed or rejected) of the last :data:`WINDOW_DAYS` days; an entry
  with no batch in that window is judged on its latest batch. A row whose key repeats an
  earlier row of the same batch passed validation and is counted as a duplicate instead.
- **duplicates** (重复): rows refused because their key repeated within a batch
  (``rows_duplicate``), count and rate over the same window.
- **timeliness** (及时性): see :data:`FREQUENCY_RULES` below.
- **overall** (综合): the arithmetic mean of completeness, validity and timeliness (1 on
  time, 0 late) that can be judged. The seeds list completeness, accuracy and timeliness
  side by side without weights (seed 003 art. 27, seed 000 art. 15), so they weigh the
  same; duplicates are shown but not scored, since duplicate rows never reach the table.

Timeliness (a platform rule: no seed gives a working-day deadline for updating data, they
refer to "the time limit the catalog sets", i.e. the declared update frequency, seed 004
art. 12): the next aggregation is due, counted from the last aggregation (or, for an entry
never aggregated, from its first publication):

- realtime (实时) and daily (每日): by the first working day after it (seed 003 art. 29:
  real-time aggregation, so a working day without any push is late);
- weekly: 7 calendar days; monthly: 1 calendar month; quarterly: 3 months; yearly: 12
  months (a month end is clamped: 31 January + 1 month = 28 or 29 February); a due date
  that falls on a day off moves to the next working day, as periods do under the Civil
  Code art. 203;
- irregular (不定期): never late, not judged.

Lateness is counted in working days of the calendar of the department's jurisdiction
(working days after the due date up to today, at least one once the due date has passed);
for the calendar-day rules the calendar days are shown too. The last aggregation is the
finish time of the latest committed batch that delivered at least one valid row (a batch
whose rows were all unchanged counts: the department did report).
"""

from __future__ import annotations

import calendar as _months
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import false, func, select
from sqlalchemy.orm import Session

from govshare.catalog import lists as catalog_lists
from govshare.catalog.models import CatalogEntry, DataType, EntryStatus, UpdateFrequency
from govshare.db import LOCAL_TZ, china_today
from govshare.errors import NotFound, PermissionDenied
from govshare.ingestion import tables
from govshare.ingestion.models import BatchSource, BatchStatus, DataTable, IngestBatch
from govshare.orgs import repository as orgs_repo
from govshare.orgs.models import Department, Jurisdiction
from govshare.permissions import Perm, Role
from govshare.principal import Principal
from govshare.rules import service as rules_service
from govshare.rules.workdays import WorkdayCalendar

#: validity and duplicates are measured over the batches of this many days up to today
WINDOW_DAYS = 90
#: batches shown on an entry's page
RECENT_BATCHES = 20
#: entries listed in the home-page summary
WORST = 5
#: text item types: an empty string is not a filled cell
TEXT_TYPES = frozenset(
    {
        DataType.STRING.value,
        DataType.ID_NUMBER.value,
        DataType.CREDIT_CODE.value,
        DataType.DIVISION_CODE.value,
        DataType.PHONE.value,
    }
)
_SCAN_LIMIT = 3 * 366


@dataclass(frozen=True)
class FrequencyRule:
    """When the next aggregation is due after the last one."""

    working_days: int = 0  # > 0: due after this many working days
    months: int = 0  # > 0: due after this many calendar months
    days: int = 0  # > 0: due after this many calendar days
    text: str = ""

    @property
    def judged(self) -> bool:
        return bool(self.working_days or self.months or self.days)

    @property
    def unit(self) -> Literal["working_days", "calendar_days", "none"]:
        if self.working_days:
            return "working_days"
        return "calendar_days" if self.judged else "none"


#: the platform's timeliness rule per declared update frequency (see the module docstring)
FREQUENCY_RULES: dict[UpdateFrequency, FrequencyRule] = {
    UpdateFrequency.REALTIME: FrequencyRule(
        working_days=1, text="实时汇聚：超过 1 个工作日没有汇聚即逾期"
    ),
    UpdateFrequency.DAILY: FrequencyRule(working_days=1, text="每日：上次汇聚后 1 个工作日内"),
    UpdateFrequency.WEEKLY: FrequencyRule(days=7, text="每周：上次汇聚后 7 日内"),
    UpdateFrequency.MONTHLY: FrequencyRule(months=1, text="每月：上次汇聚后 1 个月内"),
    UpdateFrequency.QUARTERLY: FrequencyRule(months=3, text="每季度：上次汇聚后 3 个月内"),
    UpdateFrequency.YEARLY: FrequencyRule(months=12, text="每年：上次汇聚后 12 个月内"),
    UpdateFrequency.IRREGULAR: FrequencyRule(text="不定期：不判定逾期"),
}
ROLL_NOTE = "按自然日计算的到期日逢节假日顺延至下一个工作日"

# ---------------------------------------------------------------- shapes


class Timeliness(BaseModel):
    status: Literal["on_time", "late", "not_judged"]
    label: str
    rule: str
    unit: Literal["working_days", "calendar_days", "none"]
    #: finish time of the latest committed batch that delivered rows
    last_aggregated_at: datetime | None
    #: the day the clock counts from: the last aggregation, else the first publication
    counted_from: date | None
    counted_from_kind: Literal["aggregation", "publication", "none"]
    due: date | None
    late_working_days: int
    late_calendar_days: int
    #: a day of the count lies in a year whose official calendar is not on file
    provisional: bool


class EntryQuality(BaseModel):
    entry_id: int
    code: str
    name: str
    department_id: int
    department_name: str
    jurisdiction_name: str
    update_frequency: str
    update_frequency_label: str
    is_returned_data: bool
    returned_from: str
    live_rows: int
    required_items: int
    required_cells: int
    filled_required_cells: int
    completeness: float | None
    window_label: str
    batches_counted: int
    rows_submitted: int
    rows_valid: int
    rows_invalid: int
    validity: float | None
    duplicates: int
    duplicate_rate: float | None
    timeliness: Timeliness
    overall: float | None


class ItemFill(BaseModel):
    field: str
    name: str
    data_type: str
    data_type_label: str
    required: bool
    filled: int
    fill_rate: float | None


class BatchRow(BaseModel):
    id: int
    source: str
    source_label: str
    status: str
    status_label: str
    file_name: str
    rows_total: int
    rows_loaded: int
    rows_unchanged: int
    rows_rejected: int
    rows_duplicate: int
    created_by: str
    finished_at: datetime | None


class EntryDetail(EntryQuality):
    items: list[ItemFill]
    recent_batches: list[BatchRow]


class DepartmentQuality(BaseModel):
    department_id: int
    department_name: str
    jurisdiction_name: str
    entries: int
    late: int
    on_time: int
    not_judged: int
    live_rows: int
    completeness: float | None
    rows_submitted: int
    rows_valid: int
    validity: float | None
    duplicates: int
    duplicate_rate: float | None
    timeliness: float | None
    overall: float | None
    #: the most late of its entries, in working days (0: none late)
    max_late_working_days: int


@dataclass(frozen=True)
class DashboardSummary:
    """What the home page shows: how many entries are late, the worst few, the averages."""

    entries: int
    late: int
    not_judged: int
    completeness: float | None
    validity: float | None
    timeliness: float | None
    overall: float | None
    worst: list[EntryQuality]


# ---------------------------------------------------------------- who sees what


def scope_for(session: Session, principal: Principal) -> catalog_lists.Scope:
    """The authority sees its jurisdiction and those below, the platform and the technical
    service unit everything, a department's staff their own department."""
    if not principal.can(Perm.QUALITY_READ):
        raise PermissionDenied()
    if principal.can(Perm.CATALOG_REVIEW):
        if principal.jurisdiction_id is None:
            return catalog_lists.Scope(everything=principal.kind == "system")
        ids = orgs_repo.jurisdiction_subtree_ids(session, principal.jurisdiction_id)
        return catalog_lists.Scope(jurisdiction_ids=frozenset(ids))
    if principal.role is Role.OPERATOR:
        return catalog_lists.Scope(everything=True)
    if principal.department_id is not None:
        return catalog_lists.Scope(department_id=principal.department_id)
    return catalog_lists.Scope()


def sees_all_departments(scope: catalog_lists.Scope) -> bool:
    return scope.everything or scope.jurisdiction_ids is not None


def department_in_scope(session: Session, principal: Principal, department_id: int) -> Department:
    """A department whose quality the principal may see (404 otherwise)."""
    scope = scope_for(session, principal)
    department = catalog_lists.fetch(session, Department, department_id)
    if department is None or not scope.includes(department):
        raise NotFound("部门不存在")
    return department


def _entries(
    session: Session,
    scope: catalog_lists.Scope,
    *,
    department_id: int | None = None,
    entry_id: int | None = None,
) -> list[tuple[CatalogEntry, DataTable]]:
    q = (
        select(CatalogEntry, DataTable)
        .join(DataTable, DataTable.entry_id == CatalogEntry.id)
        .where(CatalogEntry.status == EntryStatus.PUBLISHED.value)
        .where(scope.clause(CatalogEntry.department_id))
        .order_by(CatalogEntry.department_id, CatalogEntry.code)
    )
    if department_id is not None:
        q = q.where(CatalogEntry.department_id == department_id)
    if entry_id is not None:
        q = q.where(CatalogEntry.id == entry_id)
    return [(e, t) for e, t in session.execute(q).unique().all()]


# ---------------------------------------------------------------- dates


def _local_date(ts: datetime) -> date:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(LOCAL_TZ).date()


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=LOCAL_TZ)


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later, clamped to the month's end."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, _months.monthrange(year, month)[1]))


class _Calendars:
    """Working-day calendars per jurisdiction, loaded once per call."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._by_id: dict[int, WorkdayCalendar] = {}

    def of(self, jurisdiction: Jurisdiction) -> WorkdayCalendar:
        if jurisdiction.id not in self._by_id:
            self._by_id[jurisdiction.id] = rules_service.calendar_for(self.session, jurisdiction)
        return self._by_id[jurisdiction.id]


def _next_working_day(cal: WorkdayCalendar, day: date) -> tuple[date, bool]:
    """``day`` or the first working day after it; and whether a year was not on file."""
    provisional = False
    for _ in range(_SCAN_LIMIT):
        info = cal.info(day)
        provisional |= not info.known
        if info.is_workday:
            return day, provisional
        day += timedelta(days=1)
    raise ValueError("no working day found within three years")


def due_date(rule: FrequencyRule, cal: WorkdayCalendar, counted_from: date) -> tuple[date, bool]:
    """When the next aggregation is due under ``rule``; and whether it is provisional."""
    if rule.working_days:
        due = cal.due(counted_from, rule.working_days)
        return due.due, due.provisional
    if rule.months:
        return _next_working_day(cal, add_months(counted_from, rule.months))
    return _next_working_day(cal, counted_from + timedelta(days=rule.days))


def timeliness(
    frequency: str,
    cal: WorkdayCalendar,
    today: date,
    last_aggregated_at: datetime | None,
    published_on: date | None,
) -> Timeliness:
    """Judge one entry's timeliness on ``today`` (see the module docstring for the rule)."""
    try:
        rule = FREQUENCY_RULES[UpdateFrequency(frequency)]
    except ValueError:
        rule = FrequencyRule(text="未知更新周期：不判定逾期")
    if last_aggregated_at is not None:
        counted_from: date | None = _local_date(last_aggregated_at)
        kind: Literal["aggregation", "publication", "none"] = "aggregation"
    elif published_on is not None:
        counted_from, kind = published_on, "publication"
    else:
        counted_from, kind = None, "none"
    base = {
        "rule": rule.text + (f"（{ROLL_NOTE}）" if rule.unit == "calendar_days" else ""),
        "unit": rule.unit,
        "last_aggregated_at": last_aggregated_at,
        "counted_from": counted_from,
        "counted_from_kind": kind,
    }
    if not rule.judged or counted_from is None:
        if not rule.judged:
            label = "不定期，不评价" if frequency == UpdateFrequency.IRREGULAR else "不评价"
        else:
            label = "尚未发布，不评价"
        return Timeliness(
            status="not_judged",
            label=label,
            due=None,
            late_working_days=0,
            late_calendar_days=0,
            provisional=False,
            **base,
        )
    try:
        due, provisional = due_date(rule, cal, counted_from)
    except ValueError:  # three years without a working day: a broken calendar
        return Timeliness(
            status="not_judged",
            label="工作日历异常，无法判定",
            due=None,
            late_working_days=0,
            late_calendar_days=0,
            provisional=True,
            **base,
        )
    if due >= today:
        label = "今日到期" if due == today else f"按时（{due.isoformat()} 到期）"
        return Timeliness(
            status="on_time",
            label=label,
            due=due,
            late_working_days=0,
            late_calendar_days=0,
            provisional=provisional,
            **base,
        )
    late_wd = max(-cal.working_days_left(today, due), 1)
    late_cd = (today - due).days
    provisional |= any(not cal.is_known_year(y) for y in range(due.year, today.year + 1))
    label = f"逾期 {late_wd} 个工作日"
    if rule.unit == "calendar_days":
        label += f"（{late_cd} 日）"
    return Timeliness(
        status="late",
        label=label,
        due=due,
        late_working_days=late_wd,
        late_calendar_days=late_cd,
        provisional=provisional,
        **base,
    )


# ---------------------------------------------------------------- SQL


def _required_fields(entry: CatalogEntry, registry: DataTable) -> list[str]:
    version = entry.current_version
    items = version.data_items if version is not None else []
    return [it["field"] for it in items if it.get("required") and it["field"] in registry.columns]


def count_filled(
    session: Session, registry: DataTable, fields: Sequence[str]
) -> tuple[int, dict[str, int]]:
    """Live rows of an entry's table and the filled cells of each of ``fields``: one query
    (``COUNT(*)`` and ``COUNT(column)``; an empty text cell counts as not filled)."""
    data, _history = tables.tables_for(registry)
    columns: list[Any] = [func.count()]
    for name in fields:
        col = data.c[name]
        text = registry.columns.get(name, {}).get("type") in TEXT_TYPES
        columns.append(func.count(func.nullif(col, "") if text else col))
    row = session.execute(select(*columns).where(data.c._deleted == false())).one()
    return int(row[0]), {name: int(row[i + 1]) for i, name in enumerate(fields)}


@dataclass
class _BatchSums:
    batches: int = 0
    total: int = 0
    rejected: int = 0
    duplicate: int = 0
    label: str = "暂无汇聚批次"


_FINISHED = (BatchStatus.COMMITTED.value, BatchStatus.REJECTED.value)


def _batch_sums(
    session: Session, entry_ids: Sequence[int], today: date
) -> tuple[dict[int, _BatchSums], dict[int, datetime]]:
    """Per entry: the sums over the window (or its latest batch), and its last aggregation."""
    if not entry_ids:
        return {}, {}
    start = today - timedelta(days=WINDOW_DAYS)
    end = _day_start(today + timedelta(days=1))
    finished = (
        IngestBatch.entry_id.in_(entry_ids),
        IngestBatch.status.in_(_FINISHED),
        IngestBatch.finished_at.is_not(None),
        IngestBatch.finished_at < end,
    )
    sums: dict[int, _BatchSums] = {}
    window = session.execute(
        select(
            IngestBatch.entry_id,
            func.count(),
            func.sum(IngestBatch.rows_total),
            func.sum(IngestBatch.rows_rejected),
            func.sum(IngestBatch.rows_duplicate),
        )
        .where(*finished, IngestBatch.finished_at >= _day_start(start))
        .group_by(IngestBatch.entry_id)
    )
    label = f"近 {WINDOW_DAYS} 天（{start.isoformat()} 起）"
    for entry_id, n, total, rejected, duplicate in window:
        sums[entry_id] = _BatchSums(
            int(n), int(total or 0), int(rejected or 0), int(duplicate or 0), label
        )
    missing = [i for i in entry_ids if i not in sums]
    if missing:
        latest_ids = (
            select(func.max(IngestBatch.id)).where(*finished).group_by(IngestBatch.entry_id)
        )
        for b in session.scalars(
            select(IngestBatch).where(
                IngestBatch.id.in_(latest_ids), IngestBatch.entry_id.in_(missing)
            )
        ):
            when = _local_date(b.finished_at) if b.finished_at else None
            sums[b.entry_id] = _BatchSums(
                1,
                b.rows_total,
                b.rows_rejected,
                b.rows_duplicate,
                f"最近一批（{when.isoformat() if when else ''}，近 {WINDOW_DAYS} 天无批次）",
            )
    last: dict[int, datetime] = {}
    for entry_id, at in session.execute(
        select(IngestBatch.entry_id, func.max(IngestBatch.finished_at))
        .where(
            IngestBatch.entry_id.in_(entry_ids),
            IngestBatch.status == BatchStatus.COMMITTED.value,
            IngestBatch.finished_at < end,
            IngestBatch.rows_loaded + IngestBatch.rows_unchanged > 0,
        )
        .group_by(IngestBatch.entry_id)
    ):
        if at is not None:
            last[entry_id] = at if at.tzinfo else at.replace(tzinfo=UTC)
    return sums, last


# ---------------------------------------------------------------- measures


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _mean(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _timeliness_score(t: Timeliness) -> float | None:
    return {"on_time": 1.0, "late": 0.0}.get(t.status)


def _published_on(entry: CatalogEntry) -> date | None:
    if entry.published_at is not None:
        return _local_date(entry.published_at)
    version = entry.current_version
    return version.publish_date if version is not None else None


def _measure(
    entry: CatalogEntry,
    registry: DataTable,
    counts: tuple[int, dict[str, int]],
    sums: _BatchSums,
    last: datetime | None,
    cal: WorkdayCalendar,
    today: date,
) -> EntryQuality:
    version = entry.current_version
    assert version is not None
    rows, filled = counts
    required = _required_fields(entry, registry)
    cells = rows * len(required)
    filled_cells = sum(filled.get(f, 0) for f in required)
    invalid = max(sums.rejected - sums.duplicate, 0)
    valid = sums.total - invalid
    when = timeliness(version.update_frequency, cal, today, last, _published_on(entry))
    completeness = _ratio(filled_cells, cells)
    validity = _ratio(valid, sums.total)
    try:
        frequency_label = UpdateFrequency(version.update_frequency).label
    except ValueError:
        frequency_label = version.update_frequency
    return EntryQuality(
        entry_id=entry.id,
        code=entry.code,
        name=version.name,
        department_id=entry.department_id,
        department_name=entry.department.name,
        jurisdiction_name=entry.department.jurisdiction.name,
        update_frequency=version.update_frequency,
        update_frequency_label=frequency_label,
        is_returned_data=bool(version.is_returned_data),
        returned_from=version.returned_from or "",
        live_rows=rows,
        required_items=len(required),
        required_cells=cells,
        filled_required_cells=filled_cells,
        completeness=completeness,
        window_label=sums.label,
        batches_counted=sums.batches,
        rows_submitted=sums.total,
        rows_valid=valid,
        rows_invalid=invalid,
        validity=validity,
        duplicates=sums.duplicate,
        duplicate_rate=_ratio(sums.duplicate, sums.total),
        timeliness=when,
        overall=_mean([completeness, validity, _timeliness_score(when)]),
    )


def _measure_all(
    session: Session,
    pairs: list[tuple[CatalogEntry, DataTable]],
    today: date,
    *,
    all_items: bool = False,
) -> list[tuple[EntryQuality, dict[str, int]]]:
    sums, last = _batch_sums(session, [e.id for e, _ in pairs], today)
    calendars = _Calendars(session)
    out = []
    for entry, registry in pairs:
        if entry.current_version is None:
            continue
        if all_items:
            fields = [
                it["field"]
                for it in entry.current_version.data_items
                if it["field"] in registry.columns
            ]
        else:
            fields = _required_fields(entry, registry)
        counts = count_filled(session, registry, fields)
        cal = calendars.of(entry.department.jurisdiction)
        row = _measure(
            entry,
            registry,
            counts,
            sums.get(entry.id, _BatchSums()),
            last.get(entry.id),
            cal,
            today,
        )
        out.append((row, counts[1]))
    return out


def entry_measures(
    session: Session,
    principal: Principal,
    *,
    today: date | None = None,
    department_id: int | None = None,
) -> list[EntryQuality]:
    """Every published entry with a data table in the principal's scope, by department and
    code (optionally of one department)."""
    scope = scope_for(session, principal)
    pairs = _entries(session, scope, department_id=department_id)
    return [row for row, _ in _measure_all(session, pairs, today or china_today())]


def entry_detail(
    session: Session, principal: Principal, entry_id: int, *, today: date | None = None
) -> EntryDetail:
    """One entry's measures, the fill rate of every item and its recent batches."""
    scope = scope_for(session, principal)
    if not 1 <= entry_id <= catalog_lists.MAX_ID:
        raise NotFound("目录资源不存在或没有数据表")
    pairs = _entries(session, scope, entry_id=entry_id)
    if not pairs:
        raise NotFound("目录资源不存在或没有数据表")
    entry = pairs[0][0]
    assert entry.current_version is not None
    (row, filled), *_rest = _measure_all(session, pairs, today or china_today(), all_items=True)
    items = [
        ItemFill(
            field=it["field"],
            name=it["name"],
            data_type=it["data_type"],
            data_type_label=_type_label(it["data_type"]),
            required=bool(it.get("required")),
            filled=filled.get(it["field"], 0),
            fill_rate=_ratio(filled.get(it["field"], 0), row.live_rows),
        )
        for it in entry.current_version.data_items
        if it["field"] in filled
    ]
    batches = session.scalars(
        select(IngestBatch)
        .where(IngestBatch.entry_id == entry.id)
        .order_by(IngestBatch.id.desc())
        .limit(RECENT_BATCHES)
    )
    recent = [
        BatchRow(
            id=b.id,
            source=b.source,
            source_label=_label(BatchSource, b.source),
            status=b.status,
            status_label=_label(BatchStatus, b.status),
            file_name=b.file_name or b.client_batch_id or "",
            rows_total=b.rows_total,
            rows_loaded=b.rows_loaded,
            rows_unchanged=b.rows_unchanged,
            rows_rejected=b.rows_rejected,
            rows_duplicate=b.rows_duplicate,
            created_by=b.created_by,
            finished_at=b.finished_at,
        )
        for b in batches
    ]
    return EntryDetail(**row.model_dump(), items=items, recent_batches=recent)


def _type_label(data_type: str) -> str:
    try:
        return DataType(data_type).label
    except ValueError:
        return data_type


def _label(enum: type[BatchSource] | type[BatchStatus], value: str) -> str:
    try:
        return str(enum(value).label)
    except ValueError:
        return value


@dataclass(frozen=True)
class Totals:
    """Measures aggregated over several entries (a department, or all in scope)."""

    entries: int
    late: int
    on_time: int
    not_judged: int
    live_rows: int
    completeness: float | None
    rows_submitted: int
    rows_valid: int
    validity: float | None
    duplicates: int
    duplicate_rate: float | None
    timeliness: float | None
    overall: float | None
    max_late_working_days: int


def totals(rows: Sequence[EntryQuality]) -> Totals:
    """Completeness weighted by live rows, validity and duplicates pooled over submitted
    rows, timeliness the share of judged entries on time, overall their mean."""
    weighted = [(r.completeness, r.live_rows) for r in rows if r.completeness is not None]
    weight = sum(n for _, n in weighted)
    completeness = sum(c * n for c, n in weighted) / weight if weight else None
    submitted = sum(r.rows_submitted for r in rows)
    valid = sum(r.rows_valid for r in rows)
    duplicates = sum(r.duplicates for r in rows)
    late = sum(r.timeliness.status == "late" for r in rows)
    on_time = sum(r.timeliness.status == "on_time" for r in rows)
    validity = _ratio(valid, submitted)
    timely = _ratio(on_time, late + on_time)
    return Totals(
        entries=len(rows),
        late=late,
        on_time=on_time,
        not_judged=len(rows) - late - on_time,
        live_rows=sum(r.live_rows for r in rows),
        completeness=completeness,
        rows_submitted=submitted,
        rows_valid=valid,
        validity=validity,
        duplicates=duplicates,
        duplicate_rate=_ratio(duplicates, submitted),
        timeliness=timely,
        overall=_mean([completeness, validity, timely]),
        max_late_working_days=max((r.timeliness.late_working_days for r in rows), default=0),
    )


def by_department(rows: Sequence[EntryQuality]) -> list[DepartmentQuality]:
    groups: dict[int, list[EntryQuality]] = {}
    for r in rows:
        groups.setdefault(r.department_id, []).append(r)
    out = []
    for members in groups.values():
        first = members[0]
        t = totals(members)
        out.append(
            DepartmentQuality(
                department_id=first.department_id,
                department_name=first.department_name,
                jurisdiction_name=first.jurisdiction_name,
                **t.__dict__,
            )
        )
    out.sort(key=lambda d: (-d.late, -d.max_late_working_days, d.department_name))
    return out


def department_measures(
    session: Session, principal: Principal, *, today: date | None = None
) -> list[DepartmentQuality]:
    """Per department in scope: its entries' measures aggregated (most late first)."""
    return by_department(entry_measures(session, principal, today=today))


def sort_late(rows: Iterable[EntryQuality]) -> list[EntryQuality]:
    late = [r for r in rows if r.timeliness.status == "late"]
    late.sort(
        key=lambda r: (
            -r.timeliness.late_working_days,
            -r.timeliness.late_calendar_days,
            r.department_name,
            r.code,
        )
    )
    return late


def late_entries(
    session: Session, principal: Principal, *, today: date | None = None
) -> list[EntryQuality]:
    """Late entries in scope, the most late first."""
    return sort_late(entry_measures(session, principal, today=today))


def worst_entries(rows: Sequence[EntryQuality], limit: int = WORST) -> list[EntryQuality]:
    """Late entries first (most late first), then the lowest overall below 100%."""
    late = sort_late(rows)
    rest = [
        r for r in rows if r.timeliness.status != "late" and r.overall is not None and r.overall < 1
    ]
    rest.sort(key=lambda r: (r.overall if r.overall is not None else 1.0, r.code))
    return (late + rest)[:limit]


def dashboard_summary(
    session: Session, principal: Principal, *, today: date | None = None, limit: int = WORST
) -> DashboardSummary:
    """The home page's quality card for ``principal`` (its scope, as on the quality page)."""
    rows = entry_measures(session, principal, today=today)
    t = totals(rows)
    return DashboardSummary(
        entries=t.entries,
        late=t.late,
        not_judged=t.not_judged,
        completeness=t.completeness,
        validity=t.validity,
        timeliness=t.timeliness,
        overall=t.overall,
        worst=worst_entries(rows, limit),
    )
