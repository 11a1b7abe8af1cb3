"""Lists derived from the catalog.

- Change events (变更触发): a law changed or a department's duties changed; the department
  must file the catalog update within the rulebook's deadline (seed 003 art. 22: 5 working
  days; seed 002 §2(3): 10). Each event shows its clock; overdue open events are what
  supervision counts (seed 000 art. 30(1), seed 003 art. 62(8)).
- Demand list (需求清单, seed 003 art. 19): data a department needs from others; the
  authority matches demands against published entries. The supply–demand list
  (供需对接清单, seed 002 §2(2)) shows each demand with its matched entries, or the best
  candidates, or marks it as a gap (缺口).
- Responsibility list (责任清单, seed 003 art. 21): derived, no table: for each published
  entry, which department collects which data items at what frequency.

Services ``flush()``, never commit, and audit every change.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import ColumnElement, false, or_, select, true, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from govshare.audit import service as audit
from govshare.catalog import service as catalog_service
from govshare.catalog.models import (
    CatalogChangeEvent,
    CatalogDemand,
    CatalogEntry,
    CatalogSearch,
    CatalogVersion,
    ChangeTrigger,
    DataType,
    DemandStatus,
    EntryStatus,
    SubjectKeyKind,
    UpdateFrequency,
    VersionState,
)
from govshare.db import LOCAL_TZ, Base, china_today, utcnow
from govshare.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from govshare.orgs import repository as orgs_repo
from govshare.orgs.models import Department, Jurisdiction
from govshare.permissions import Perm, Role
from govshare.principal import Principal
from govshare.rules import service as rules_service
from govshare.rules.rulebook import Rulebook
from govshare.rules.workdays import WorkdayCalendar

#: versions that count as "the department filed the update" (submitted for review or
#: approved, possibly replaced since)
FILED_STATES = (VersionState.SUBMITTED, VersionState.APPROVED, VersionState.SUPERSEDED)
MAX_ITEMS = 100
MAX_MATCHES = 50
SUGGESTION_LIMIT = 5
_CANDIDATE_ROWS = 500
#: the largest id a table holds (PostgreSQL ``integer``); larger ids are simply not found
MAX_ID = 2**31 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
_T = TypeVar("_T", bound=Base)


def fetch(session: Session, model: type[_T], row_id: int | None) -> _T | None:
    """``session.get`` that answers None for an id no table can hold."""
    if row_id is None or not 1 <= row_id <= MAX_ID:
        return None
    return session.get(model, row_id)


#: labels of this module's input fields, for form error messages
FIELD_LABELS: dict[str, str] = {
    "department_id": "部门",
    "trigger": "变更类型",
    "description": "说明",
    "occurred_on": "发生日期",
    "resolution": "办结说明",
    "version_ids": "目录版本",
    "title": "需求名称",
    "data_items": "需要的信息项",
    "scenario": "应用场景",
    "basis": "需求依据",
    "expected_provider_id": "期望提供部门",
    "reason": "原因",
    "entry_ids": "对接资源",
    "entry_codes": "资源代码",
    "note": "对接说明",
}

# ---------------------------------------------------------------- input models

_SPLIT = re.compile(r"[\r\n,，、;；]+")


def split_list(value: Any) -> Any:
    """A list from a form field: one value a line, or separated by 、，；."""
    if isinstance(value, str):
        return [p.strip() for p in _SPLIT.split(value) if p.strip()]
    if isinstance(value, list):
        return [v.strip() if isinstance(v, str) else v for v in value if v != ""]
    return value


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ChangeIn(_In):
    """A law or a department's duties changed (变更触发)."""

    department_id: Id | None = Field(default=None, description="部门；部门用户不填，即本部门")
    trigger: ChangeTrigger = Field(description="law 法律法规修订 / duty 行政管理职能变更")
    description: str = Field(min_length=4, max_length=4000, description="变更内容")
    occurred_on: date = Field(description="法律法规修改或职能变更之日")


class ResolveIn(_In):
    resolution: str = Field(default="", max_length=4000, description="办结说明")
    version_ids: list[Id] = Field(
        default_factory=list, max_length=MAX_MATCHES, description="为此提交的目录版本"
    )

    @field_validator("version_ids", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        return split_list(v)


class DemandIn(_In):
    """A department's need for data held by other departments (需求清单)."""

    title: str = Field(min_length=2, max_length=128, description="需求名称")
    description: str = Field(default="", max_length=4000)
    data_items: list[str] = Field(
        min_length=1, max_length=MAX_ITEMS, description="需要的信息项名称"
    )
    scenario: str = Field(min_length=4, max_length=4000, description="应用场景")
    basis: str = Field(default="", max_length=4000, description="需求依据（履职依据）")
    expected_provider_id: Id | None = Field(default=None, description="期望提供部门")

    @field_validator("data_items", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        return split_list(v)


class DemandUpdate(_In):
    """Fields to change; fields left out stay as they are."""

    title: str | None = Field(default=None, min_length=2, max_length=128)
    description: str | None = Field(default=None, max_length=4000)
    data_items: list[str] | None = Field(default=None, min_length=1, max_length=MAX_ITEMS)
    scenario: str | None = Field(default=None, min_length=4, max_length=4000)
    basis: str | None = Field(default=None, max_length=4000)
    expected_provider_id: Id | None = None

    @field_validator("data_items", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        return split_list(v)


class CloseIn(_In):
    reason: str = Field(min_length=4, max_length=512)


class MatchIn(_In):
    entry_ids: list[Id] = Field(default_factory=list, max_length=MAX_MATCHES)
    entry_codes: list[str] = Field(
        default_factory=list, max_length=MAX_MATCHES, description="也可用资源代码指定"
    )
    note: str = Field(default="", max_length=4000)

    @field_validator("entry_ids", "entry_codes", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        return split_list(v)


# ---------------------------------------------------------------- output models


class ChangeOut(BaseModel):
    id: int
    department_id: int
    department_name: str
    jurisdiction_name: str
    trigger: str
    trigger_label: str
    description: str
    occurred_on: date
    due: date
    due_provisional: bool
    #: the rule: working days and its citation (rulebook of the department's jurisdiction)
    working_days: int
    cite: str
    cite_note: str
    recorded_at: datetime
    recorded_by: str
    status: Literal["open", "resolved"]
    #: working days left (>0), due today (0), overdue by N working days (<0); None: resolved
    days_left: int | None
    overdue: bool
    clock_label: str
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str
    version_ids: list[int]
    #: the day the department first submitted a linked version; on time: filed by the due date
    filed_on: date | None
    on_time: bool | None


class DemandOut(BaseModel):
    id: int
    department_id: int
    department_name: str
    title: str
    description: str
    data_items: list[str]
    scenario: str
    basis: str
    expected_provider_id: int | None
    expected_provider_name: str | None
    status: str
    status_label: str
    matched_entry_ids: list[int]
    match_note: str
    created_at: datetime
    created_by: str
    updated_at: datetime


class EntryRef(BaseModel):
    entry_id: int
    code: str
    name: str
    department_id: int
    department_name: str
    share_type: str
    share_type_name: str
    status: str
    published: bool


class Suggestion(EntryRef):
    #: the demand's item names found in the entry
    matched_items: list[str]
    #: keywords of the demand's title found in the entry
    title_hits: list[str]
    from_expected_provider: bool


class SupplyDemandRow(BaseModel):
    demand: DemandOut
    #: "demand": filed by the principal's department; "supply": asks the principal's
    #: department for data; "": seen as the authority or the platform
    side: Literal["demand", "supply", ""]
    matched: list[EntryRef]
    suggestions: list[Suggestion]
    #: wanted items that no matched (published) entry holds; for a demand not matched yet,
    #: those that no candidate holds either (the items nobody in the catalog supplies)
    uncovered_items: list[str]
    gap: bool
    state: Literal["matched", "suggested", "gap"]
    state_label: str


class SupplyDemandList(BaseModel):
    rows: list[SupplyDemandRow]
    total: int
    matched: int
    suggested: int
    gaps: int


class ResponsibilityItem(BaseModel):
    name: str
    field: str
    required: bool
    data_type: str
    data_type_label: str


class ResponsibilityRow(BaseModel):
    entry_id: int
    code: str
    name: str
    version_number: int
    department_id: int
    department_name: str
    credit_code: str
    jurisdiction_name: str
    items: list[ResponsibilityItem]
    update_frequency: str
    update_frequency_label: str
    subject_key_kind: str
    subject_key_kind_label: str
    subject_key_item: str
    is_returned_data: bool
    returned_from: str
    publish_date: date | None


# ---------------------------------------------------------------- who sees what


@dataclass(frozen=True)
class Scope:
    """The departments whose events and demands a principal sees."""

    everything: bool = False
    jurisdiction_ids: frozenset[int] | None = None
    department_id: int | None = None

    def clause(self, column: InstrumentedAttribute[int]) -> ColumnElement[bool]:
        if self.everything:
            return true()
        if self.jurisdiction_ids is not None:
            return column.in_(
                select(Department.id).where(Department.jurisdiction_id.in_(self.jurisdiction_ids))
            )
        if self.department_id is not None:
            return column == self.department_id
        return false()

    def includes(self, department: Department) -> bool:
        if self.everything:
            return True
        if self.jurisdiction_ids is not None:
            return department.jurisdiction_id in self.jurisdiction_ids
        return self.department_id == department.id


def visible_to(session: Session, principal: Principal, authority_perm: Perm) -> Scope:
    """An authority (``authority_perm``) sees its jurisdiction and those below it; the
    platform and the technical service unit see everything (read-only for the latter); a
    department's staff see their own department."""
    if principal.can(authority_perm):
        if principal.jurisdiction_id is None:
            return Scope(everything=principal.kind == "system")
        ids = orgs_repo.jurisdiction_subtree_ids(session, principal.jurisdiction_id)
        return Scope(jurisdiction_ids=frozenset(ids))
    if principal.role is Role.OPERATOR and principal.can(Perm.CATALOG_LISTS):
        return Scope(everything=True)
    if principal.department_id is not None and principal.can(Perm.CATALOG_LISTS):
        return Scope(department_id=principal.department_id)
    return Scope()


def _authority_over(
    session: Session, principal: Principal, department: Department, perm: Perm
) -> bool:
    return principal.can(perm) and catalog_service.covers(
        session, principal, department.jurisdiction_id
    )


class _Books:
    """Rulebooks and calendars per jurisdiction, resolved once per call."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._books: dict[int, Rulebook] = {}
        self._calendars: dict[int, WorkdayCalendar] = {}

    def book(self, jurisdiction: Jurisdiction) -> Rulebook:
        if jurisdiction.id not in self._books:
            self._books[jurisdiction.id] = rules_service.rulebook_for(self.session, jurisdiction)
        return self._books[jurisdiction.id]

    def calendar(self, jurisdiction: Jurisdiction) -> WorkdayCalendar:
        if jurisdiction.id not in self._calendars:
            self._calendars[jurisdiction.id] = rules_service.calendar_for(
                self.session, jurisdiction
            )
        return self._calendars[jurisdiction.id]

    def share_type_name(self, jurisdiction_id: int, share_type: str) -> str:
        jurisdiction = self.session.get(Jurisdiction, jurisdiction_id)
        if jurisdiction is None:
            return share_type
        return catalog_service.share_type_name(self.book(jurisdiction), share_type)


def _active_department(session: Session, department_id: int | None, field: str) -> Department:
    department = fetch(session, Department, department_id)
    if department is None or not department.is_active:
        raise ValidationFailed("部门不存在或已停用", field=field)
    return department


def _local_date(ts: datetime) -> date:
    return ts.astimezone(LOCAL_TZ).date()


def _day_start(day: date) -> datetime:
    """The first instant of a China-time day."""
    return datetime.combine(day, time.min, tzinfo=LOCAL_TZ)


# ---------------------------------------------------------------- change events


def update_rule(session: Session, department: Department) -> tuple[int, str, str]:
    """The department's deadline to file a catalog update: working days, citation, note."""
    rule = rules_service.rulebook_for(session, department.jurisdiction).catalog
    deadline = rule.update_after_change
    return deadline.working_days, deadline.cite.text, deadline.cite.note


def record_change(
    session: Session,
    actor: Principal,
    department_id: int | None,
    trigger: ChangeTrigger | str,
    description: str,
    occurred_on: date,
) -> CatalogChangeEvent:
    """Record that a law or a department's duties changed; the clock starts on that day."""
    if not actor.can(Perm.CATALOG_CHANGE_RECORD):
        raise PermissionDenied("只有部门数据专员、主要负责人或数据主管部门可以登记变更")
    department = _active_department(session, department_id or actor.department_id, "department_id")
    if department.id != actor.department_id and not _authority_over(
        session, actor, department, Perm.CATALOG_REVIEW
    ):
        raise PermissionDenied("只能为本部门登记变更事项")
    try:
        kind = ChangeTrigger(trigger)
    except ValueError:
        raise ValidationFailed(
            "变更类型应为“法律法规修订”或“行政管理职能变更”", field="trigger"
        ) from None
    description = description.strip()
    if len(description) < 4:
        raise ValidationFailed("请写明变更内容（至少 4 个字）", field="description")
    if occurred_on > china_today():
        raise ValidationFailed("发生日期不能晚于今天", field="occurred_on")
    if occurred_on.year < 2000:
        raise ValidationFailed("发生日期应在 2000 年以后", field="occurred_on")
    days, cite, _note = update_rule(session, department)
    try:
        due = rules_service.calendar_for(session, department.jurisdiction).due(occurred_on, days)
    except ValueError:  # three years without a working day: a broken calendar
        raise ValidationFailed(
            "自发生日期起三年内没有工作日，请检查工作日历", field="occurred_on"
        ) from None
    event = CatalogChangeEvent(
        department_id=department.id,
        trigger=kind.value,
        description=description,
        occurred_on=occurred_on,
        due=due.due,
        due_provisional=due.provisional,
        recorded_by=actor.name,
        version_ids=[],
    )
    session.add(event)
    session.flush()
    audit.record(
        session,
        actor,
        "catalog:change:record",
        "catalog_change_event",
        event.id,
        {
            "department": department.name,
            "trigger": kind.value,
            "occurred_on": occurred_on.isoformat(),
            "due": due.due.isoformat(),
            "provisional": due.provisional,
            "working_days": days,
            "cite": cite,
        },
    )
    return event


def may_resolve(session: Session, principal: Principal, event: CatalogChangeEvent) -> bool:
    own = (
        principal.can(Perm.CATALOG_CHANGE_RECORD) and principal.department_id == event.department_id
    )
    return own or _authority_over(session, principal, event.department, Perm.CATALOG_REVIEW)


def may_close_change(session: Session, principal: Principal, event: CatalogChangeEvent) -> bool:
    """The authority may close an event without versions, giving a reason."""
    return _authority_over(session, principal, event.department, Perm.CATALOG_REVIEW)


def get_change(session: Session, principal: Principal, event_id: int) -> CatalogChangeEvent:
    event = fetch(session, CatalogChangeEvent, event_id)
    scope = visible_to(session, principal, Perm.CATALOG_REVIEW)
    if event is None or not scope.includes(event.department):
        raise NotFound("变更事项不存在")
    return event


def candidate_versions(session: Session, event: CatalogChangeEvent) -> list[CatalogVersion]:
    """The department's versions filed (submitted or approved) since the event occurred."""
    return list(
        session.scalars(
            select(CatalogVersion)
            .join(CatalogEntry, CatalogEntry.id == CatalogVersion.entry_id)
            .where(CatalogEntry.department_id == event.department_id)
            .where(CatalogVersion.state.in_([s.value for s in FILED_STATES]))
            .where(CatalogVersion.submitted_at >= _day_start(event.occurred_on))
            .order_by(CatalogVersion.submitted_at.desc(), CatalogVersion.id.desc())
        )
    )


def _filed_versions(
    session: Session, event: CatalogChangeEvent, version_ids: list[int]
) -> list[CatalogVersion]:
    out: list[CatalogVersion] = []
    for vid in dict.fromkeys(version_ids):
        version = fetch(session, CatalogVersion, vid)
        if version is None:
            raise ValidationFailed(f"目录版本 {vid} 不存在", field="version_ids")
        entry = version.entry
        label = f"{entry.code} 第 {version.number} 版"
        if entry.department_id != event.department_id:
            raise ValidationFailed(
                f"目录版本 {label} 不是{event.department.name}的目录，不能用于办结本部门的变更事项",
                field="version_ids",
            )
        if version.state not in [s.value for s in FILED_STATES] or version.submitted_at is None:
            raise ValidationFailed(
                f"目录版本 {label} 为“{VersionState(version.state).label}”，"
                "须已提交审核或已通过审核",
                field="version_ids",
            )
        if _local_date(version.submitted_at) < event.occurred_on:
            raise ValidationFailed(
                f"目录版本 {label} 提交于变更发生（{event.occurred_on.isoformat()}）之前，"
                "不是为此次变更提交的更新",
                field="version_ids",
            )
        out.append(version)
    return out


def resolve_change(
    session: Session,
    actor: Principal,
    event_id: int,
    resolution: str,
    version_ids: list[int],
) -> CatalogChangeEvent:
    """Resolved when the department links the catalog versions it filed for the change, or
    the authority closes the event with a reason."""
    event = get_change(session, actor, event_id)
    if not may_resolve(session, actor, event):
        raise PermissionDenied("只有本部门或数据主管部门可以办结变更事项")
    if event.resolved_at is not None:
        raise Conflict("该变更事项已办结")
    versions = _filed_versions(session, event, version_ids)
    resolution = resolution.strip()
    if not versions:
        if not _authority_over(session, actor, event.department, Perm.CATALOG_REVIEW):
            raise ValidationFailed(
                "请选择为此次变更提交审核的本部门目录版本（先变更目录并提交审核）",
                field="version_ids",
            )
        if len(resolution) < 4:
            raise ValidationFailed(
                "数据主管部门直接办结时须写明理由（至少 4 个字）", field="resolution"
            )
    now = utcnow()
    result = session.execute(
        update(CatalogChangeEvent)
        .where(CatalogChangeEvent.id == event.id)
        .where(CatalogChangeEvent.resolved_at.is_(None))
        .values(
            resolved_at=now,
            resolved_by=actor.name,
            resolution=resolution,
            version_ids=[v.id for v in versions],
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("该变更事项刚刚已被他人办结，请刷新后查看")
    session.refresh(event)
    audit.record(
        session,
        actor,
        "catalog:change:resolve",
        "catalog_change_event",
        event.id,
        {
            "department": event.department.name,
            "versions": [f"{v.entry.code}#{v.number}" for v in versions],
            "resolution": resolution,
            "due": event.due.isoformat(),
        },
    )
    return event


def clock(calendar: WorkdayCalendar, today: date, due: date) -> tuple[int, str]:
    """Signed working days to the due date and its label. A deadline that has passed is
    overdue by at least one working day even on the weekend right after it."""
    if due == today:
        return 0, "今日到期"
    left = calendar.working_days_left(today, due)
    if due > today:
        return left, f"剩余 {left} 个工作日"
    left = min(left, -1)
    return left, f"已逾期 {-left} 个工作日"


def change_out(
    session: Session,
    event: CatalogChangeEvent,
    *,
    today: date | None = None,
    books: _Books | None = None,
) -> ChangeOut:
    books = books or _Books(session)
    today = today or china_today()
    department = event.department
    jurisdiction = department.jurisdiction
    deadline = books.book(jurisdiction).catalog.update_after_change
    filed_on = None
    if event.version_ids:
        stamps = session.scalars(
            select(CatalogVersion.submitted_at).where(CatalogVersion.id.in_(event.version_ids))
        ).all()
        days = [_local_date(ts) for ts in stamps if ts is not None]
        filed_on = min(days) if days else None
    if event.resolved_at is None:
        days_left, label = clock(books.calendar(jurisdiction), today, event.due)
        overdue = days_left < 0
        on_time = None
    else:
        days_left, overdue = None, False
        on_time = filed_on <= event.due if filed_on else None
        label = "已办结" + ("（按期）" if on_time else "（逾期办结）" if on_time is False else "")
    return ChangeOut(
        id=event.id,
        department_id=department.id,
        department_name=department.name,
        jurisdiction_name=jurisdiction.name,
        trigger=event.trigger,
        trigger_label=ChangeTrigger(event.trigger).label,
        description=event.description,
        occurred_on=event.occurred_on,
        due=event.due,
        due_provisional=event.due_provisional,
        working_days=deadline.working_days,
        cite=deadline.cite.text,
        cite_note=deadline.cite.note,
        recorded_at=event.recorded_at,
        recorded_by=event.recorded_by,
        status="open" if event.resolved_at is None else "resolved",
        days_left=days_left,
        overdue=overdue,
        clock_label=label,
        resolved_at=event.resolved_at,
        resolved_by=event.resolved_by,
        resolution=event.resolution,
        version_ids=list(event.version_ids or []),
        filed_on=filed_on,
        on_time=on_time,
    )


def list_changes(
    session: Session, principal: Principal, open_only: bool = False, *, today: date | None = None
) -> list[ChangeOut]:
    """The department's own events, or all in the authority's jurisdiction and below; open
    events first, nearest deadline first."""
    if not principal.can(Perm.CATALOG_LISTS):
        raise PermissionDenied()
    scope = visible_to(session, principal, Perm.CATALOG_REVIEW)
    q = select(CatalogChangeEvent).where(scope.clause(CatalogChangeEvent.department_id))
    if open_only:
        q = q.where(CatalogChangeEvent.resolved_at.is_(None))
    events = list(session.scalars(q))
    events.sort(
        key=lambda e: (
            e.resolved_at is not None,
            e.due if e.resolved_at is None else date.max,
            -(e.resolved_at.timestamp() if e.resolved_at else 0),
            -e.id,
        )
    )
    books = _Books(session)
    today = today or china_today()
    return [change_out(session, e, today=today, books=books) for e in events]


def overdue_changes(session: Session, today: date | None = None) -> list[CatalogChangeEvent]:
    """Open events past their due date (for supervision)."""
    return list(
        session.scalars(
            select(CatalogChangeEvent)
            .where(CatalogChangeEvent.resolved_at.is_(None))
            .where(CatalogChangeEvent.due < (today or china_today()))
            .order_by(CatalogChangeEvent.due, CatalogChangeEvent.id)
        )
    )


# ---------------------------------------------------------------- demands


def _clean_items(items: list[str] | str) -> list[str]:
    """Item names, stripped, without blanks and repeats (a string is split like a form)."""
    names: list[str] = split_list(items) if isinstance(items, str) else items
    out = list(dict.fromkeys(i.strip() for i in names if i and i.strip()))
    if not out:
        raise ValidationFailed("请至少列出一个需要的信息项", field="data_items")
    if len(out) > MAX_ITEMS:
        raise ValidationFailed(f"信息项不能超过 {MAX_ITEMS} 个", field="data_items")
    for item in out:
        if len(item) > 64:
            raise ValidationFailed(f"信息项“{item[:16]}…”过长（最多 64 个字）", field="data_items")
    return out


def _check_title(title: str) -> str:
    title = title.strip()
    if not 2 <= len(title) <= 128:
        raise ValidationFailed("需求名称应为 2 到 128 个字", field="title")
    return title


def _check_scenario(scenario: str) -> str:
    scenario = scenario.strip()
    if len(scenario) < 4:
        raise ValidationFailed("请写明应用场景（至少 4 个字）", field="scenario")
    return scenario


def _check_provider(session: Session, provider_id: int | None, demander_id: int) -> int | None:
    if provider_id is None:
        return None
    provider = _active_department(session, provider_id, "expected_provider_id")
    if provider.id == demander_id:
        raise ValidationFailed("期望提供部门不能是本部门", field="expected_provider_id")
    return provider.id


def _may_file(actor: Principal, demand: CatalogDemand) -> bool:
    return actor.can(Perm.DEMAND_FILE) and actor.department_id == demand.department_id


def file_demand(
    session: Session,
    actor: Principal,
    title: str,
    description: str,
    data_items: list[str] | str,
    scenario: str,
    basis: str = "",
    expected_provider_id: int | None = None,
) -> CatalogDemand:
    """A department records data it needs from other departments (seed 003 art. 19)."""
    if not actor.can(Perm.DEMAND_FILE) or actor.department_id is None:
        raise PermissionDenied("只有部门数据专员或主要负责人可以提出数据需求")
    department = _active_department(session, actor.department_id, "department_id")
    demand = CatalogDemand(
        department_id=department.id,
        title=_check_title(title),
        description=description.strip(),
        data_items=_clean_items(data_items),
        scenario=_check_scenario(scenario),
        basis=basis.strip(),
        expected_provider_id=_check_provider(session, expected_provider_id, department.id),
        status=DemandStatus.OPEN.value,
        matched_entry_ids=[],
        match_note="",
        created_by=actor.name,
    )
    session.add(demand)
    session.flush()
    audit.record(
        session,
        actor,
        "catalog:demand:file",
        "catalog_demand",
        demand.id,
        {
            "department": department.name,
            "title": demand.title,
            "data_items": demand.data_items,
            "expected_provider_id": demand.expected_provider_id,
        },
    )
    return demand


def _demand_scope(session: Session, principal: Principal) -> Scope:
    return visible_to(session, principal, Perm.DEMAND_MATCH)


def _own_entry_ids(session: Session, department_id: int) -> set[int]:
    return set(
        session.scalars(select(CatalogEntry.id).where(CatalogEntry.department_id == department_id))
    )


def _supply_side(session: Session, principal: Principal) -> list[CatalogDemand]:
    """Demands that ask the principal's department for data: naming it as the expected
    provider, or matched to its entries."""
    dept = principal.department_id
    if dept is None or not principal.can(Perm.CATALOG_LISTS):
        return []
    named = list(
        session.scalars(
            select(CatalogDemand)
            .where(CatalogDemand.expected_provider_id == dept)
            .where(CatalogDemand.department_id != dept)
        )
    )
    own_entries = _own_entry_ids(session, dept)
    matched = [
        d
        for d in session.scalars(
            select(CatalogDemand)
            .where(CatalogDemand.status == DemandStatus.MATCHED.value)
            .where(CatalogDemand.department_id != dept)
        )
        if own_entries.intersection(d.matched_entry_ids or [])
    ]
    seen: dict[int, CatalogDemand] = {d.id: d for d in named}
    for d in matched:
        seen.setdefault(d.id, d)
    return sorted(seen.values(), key=lambda d: d.id, reverse=True)


def list_demands(
    session: Session, principal: Principal, status: DemandStatus | str | None = None
) -> list[CatalogDemand]:
    """The department's own demands, or all in the authority's jurisdiction and below."""
    if not principal.can(Perm.CATALOG_LISTS):
        raise PermissionDenied()
    q = select(CatalogDemand).where(
        _demand_scope(session, principal).clause(CatalogDemand.department_id)
    )
    if status:
        try:
            q = q.where(CatalogDemand.status == DemandStatus(status).value)
        except ValueError:
            raise ValidationFailed("需求状态应为 open、matched 或 closed", field="status") from None
    return list(session.scalars(q.order_by(CatalogDemand.id.desc())))


def demands_to_provide(session: Session, principal: Principal) -> list[CatalogDemand]:
    """Other departments' demands addressed to the principal's department."""
    return [d for d in _supply_side(session, principal) if d.status != DemandStatus.CLOSED]


def get_demand(session: Session, principal: Principal, demand_id: int) -> CatalogDemand:
    demand = fetch(session, CatalogDemand, demand_id)
    if demand is None or not principal.can(Perm.CATALOG_LISTS):
        raise NotFound("数据需求不存在")
    if _demand_scope(session, principal).includes(demand.department):
        return demand
    if any(d.id == demand.id for d in _supply_side(session, principal)):
        return demand
    raise NotFound("数据需求不存在")


def may_match(session: Session, principal: Principal, demand: CatalogDemand) -> bool:
    return _authority_over(session, principal, demand.department, Perm.DEMAND_MATCH)


def may_close(session: Session, principal: Principal, demand: CatalogDemand) -> bool:
    return _may_file(principal, demand) or may_match(session, principal, demand)


def update_demand(
    session: Session, actor: Principal, demand_id: int, changes: DemandUpdate
) -> CatalogDemand:
    """The filing department edits a demand that is still open."""
    demand = get_demand(session, actor, demand_id)
    if not _may_file(actor, demand):
        raise PermissionDenied("只能修改本部门提出的数据需求")
    if demand.status != DemandStatus.OPEN:
        raise Conflict(
            f"{DemandStatus(demand.status).label}的需求不能修改；如需变更，请关闭后重新提出"
        )
    given = changes.model_fields_set
    labels = {
        "title": "需求名称",
        "description": "说明",
        "data_items": "信息项",
        "scenario": "应用场景",
        "basis": "需求依据",
        "expected_provider_id": "期望提供部门",
    }
    values: dict[str, Any] = {}
    if "title" in given:
        values["title"] = _check_title(changes.title or "")
    if "description" in given:
        values["description"] = (changes.description or "").strip()
    if "data_items" in given:
        values["data_items"] = _clean_items(changes.data_items or [])
    if "scenario" in given:
        values["scenario"] = _check_scenario(changes.scenario or "")
    if "basis" in given:
        values["basis"] = (changes.basis or "").strip()
    if "expected_provider_id" in given:
        values["expected_provider_id"] = _check_provider(
            session, changes.expected_provider_id, demand.department_id
        )
    changed = [labels[k] for k, v in values.items() if getattr(demand, k) != v]
    for k, v in values.items():
        setattr(demand, k, v)
    session.flush()
    audit.record(
        session,
        actor,
        "catalog:demand:update",
        "catalog_demand",
        demand.id,
        {"title": demand.title, "changed": changed},
    )
    return demand


def close_demand(session: Session, actor: Principal, demand_id: int, reason: str) -> CatalogDemand:
    """The filing department or the authority closes a demand, with a reason (kept in the
    demand's note and in the audit log)."""
    demand = get_demand(session, actor, demand_id)
    if not may_close(session, actor, demand):
        raise PermissionDenied("只有提出需求的部门或数据主管部门可以关闭数据需求")
    if demand.status == DemandStatus.CLOSED:
        raise Conflict("该需求已关闭")
    reason = reason.strip()
    if len(reason) < 4:
        raise ValidationFailed("关闭需求须写明原因（至少 4 个字）", field="reason")
    before = demand.status
    note = f"关闭原因：{reason}（{actor.name}）"
    demand.match_note = f"{demand.match_note}\n{note}" if demand.match_note else note
    demand.status = DemandStatus.CLOSED.value
    session.flush()
    audit.record(
        session,
        actor,
        "catalog:demand:close",
        "catalog_demand",
        demand.id,
        {"title": demand.title, "from": before, "reason": reason},
    )
    return demand


def entry_ids_for_codes(session: Session, codes: list[str]) -> list[int]:
    out: list[int] = []
    for code in dict.fromkeys(c.strip() for c in codes if c.strip()):
        entry_id = session.scalar(select(CatalogEntry.id).where(CatalogEntry.code == code))
        if entry_id is None:
            raise ValidationFailed(f"资源代码 {code} 不存在", field="entry_codes")
        out.append(entry_id)
    return out


def match_demand(
    session: Session,
    actor: Principal,
    demand_id: int,
    entry_ids: list[int],
    note: str = "",
) -> CatalogDemand:
    """The authority matches a demand with published entries of other departments."""
    demand = get_demand(session, actor, demand_id)
    if not may_match(session, actor, demand):
        raise PermissionDenied("只有本级或上级数据主管部门可以对接数据需求")
    if demand.status == DemandStatus.CLOSED:
        raise Conflict("已关闭的需求不能对接")
    ids = list(dict.fromkeys(entry_ids))
    if not ids:
        raise ValidationFailed("请至少选择一个对接的目录资源", field="entry_ids")
    if len(ids) > MAX_MATCHES:
        raise ValidationFailed(f"对接资源不能超过 {MAX_MATCHES} 个", field="entry_ids")
    codes: list[str] = []
    for entry_id in ids:
        entry = fetch(session, CatalogEntry, entry_id)
        if entry is None:
            raise ValidationFailed(f"目录资源 {entry_id} 不存在", field="entry_ids")
        if entry.status != EntryStatus.PUBLISHED:
            raise ValidationFailed(
                f"目录资源 {entry.code} 为“{EntryStatus(entry.status).label}”，"
                "只能对接已发布的资源",
                field="entry_ids",
            )
        if entry.department_id == demand.department_id:
            raise ValidationFailed(
                f"目录资源 {entry.code} 是需求部门自己的资源，不能用于对接其对外数据需求",
                field="entry_ids",
            )
        codes.append(entry.code)
    before = demand.status
    demand.matched_entry_ids = ids
    demand.match_note = note.strip()
    demand.status = DemandStatus.MATCHED.value
    session.flush()
    audit.record(
        session,
        actor,
        "catalog:demand:match",
        "catalog_demand",
        demand.id,
        {"title": demand.title, "from": before, "entries": codes, "note": demand.match_note},
    )
    return demand


def demand_out(session: Session, demand: CatalogDemand) -> DemandOut:
    provider = (
        session.get(Department, demand.expected_provider_id)
        if demand.expected_provider_id
        else None
    )
    return DemandOut(
        id=demand.id,
        department_id=demand.department_id,
        department_name=demand.department.name,
        title=demand.title,
        description=demand.description,
        data_items=list(demand.data_items or []),
        scenario=demand.scenario,
        basis=demand.basis,
        expected_provider_id=demand.expected_provider_id,
        expected_provider_name=provider.name if provider else None,
        status=demand.status,
        status_label=DemandStatus(demand.status).label,
        matched_entry_ids=list(demand.matched_entry_ids or []),
        match_note=demand.match_note,
        created_at=demand.created_at,
        created_by=demand.created_by,
        updated_at=demand.updated_at,
    )


# ---------------------------------------------------------------- matching


#: words too general to tell resources apart; a demand's title is cut at them
_TITLE_CUT = re.compile(
    r"[\s,，、;；:：/()（）<>《》“”\"'·.。!！?？\-_]+"
    r"|需求|数据|信息|资料|情况|查询|核验|共享|获取|申请|提供|有关|相关|部门|的|和|及|与|等"
)


def title_keywords(title: str) -> list[str]:
    """Keywords of a demand's title: the pieces left between general words, 2+ characters."""
    return list(dict.fromkeys(p.lower() for p in _TITLE_CUT.split(title) if len(p) >= 2))


def _entry_ref(
    session: Session, entry: CatalogEntry, books: _Books, name: str | None = None
) -> dict[str, Any]:
    version = entry.current_version
    share_type = version.share_type if version else ""
    return {
        "entry_id": entry.id,
        "code": entry.code,
        "name": name or (version.name if version else entry.code),
        "department_id": entry.department_id,
        "department_name": entry.department.name,
        "share_type": share_type,
        "share_type_name": books.share_type_name(entry.jurisdiction_id, share_type)
        if share_type
        else "",
        "status": entry.status,
        "published": entry.status == EntryStatus.PUBLISHED,
    }


def suggest_matches(
    session: Session,
    demand: CatalogDemand,
    *,
    limit: int = SUGGESTION_LIMIT,
    books: _Books | None = None,
) -> list[Suggestion]:
    """Published entries of other departments whose search text holds the demand's item
    names or title keywords; most item names first, then the expected provider's."""
    books = books or _Books(session)
    items = [i.lower() for i in demand.data_items or [] if i.strip()]
    keywords = [k for k in title_keywords(demand.title) if k not in items]
    terms = list(dict.fromkeys(items + keywords))
    if not terms:
        return []
    rows = session.scalars(
        select(CatalogSearch)
        .where(CatalogSearch.department_id != demand.department_id)
        .where(or_(*[CatalogSearch.text.contains(t, autoescape=True) for t in terms]))
        .order_by(CatalogSearch.code)
        .limit(_CANDIDATE_ROWS)
    ).all()
    scored: list[tuple[tuple[int, int, int, str], CatalogSearch, list[str], list[str]]] = []
    originals = {i.lower(): i for i in demand.data_items or []}
    for row in rows:
        hit_items = [originals[i] for i in items if i in row.text]
        hit_words = [k for k in keywords if k in row.text]
        if not hit_items and not hit_words:
            continue
        expected = row.department_id == demand.expected_provider_id
        key = (-len(hit_items), -int(expected), -len(hit_words), row.code)
        scored.append((key, row, hit_items, hit_words))
    scored.sort(key=lambda t: t[0])
    out: list[Suggestion] = []
    for _key, row, hit_items, hit_words in scored[:limit]:
        entry = session.get(CatalogEntry, row.entry_id)
        if entry is None:
            continue
        out.append(
            Suggestion(
                **_entry_ref(session, entry, books, row.name),
                matched_items=hit_items,
                title_hits=hit_words,
                from_expected_provider=row.department_id == demand.expected_provider_id,
            )
        )
    return out


def suggestions_for(session: Session, principal: Principal, demand_id: int) -> list[Suggestion]:
    return suggest_matches(session, get_demand(session, principal, demand_id))


def _entry_text(session: Session, entry: CatalogEntry) -> str:
    row = session.get(CatalogSearch, entry.id)
    if row is not None:
        return row.text
    version = entry.current_version
    return " ".join(it["name"] for it in version.data_items).lower() if version else ""


def supply_demand_row(
    session: Session,
    demand: CatalogDemand,
    *,
    side: Literal["demand", "supply", ""] = "",
    books: _Books | None = None,
) -> SupplyDemandRow:
    books = books or _Books(session)
    matched: list[EntryRef] = []
    texts: list[str] = []
    for entry_id in demand.matched_entry_ids or []:
        entry = session.get(CatalogEntry, entry_id)
        if entry is None:
            continue
        matched.append(EntryRef(**_entry_ref(session, entry, books)))
        if entry.status == EntryStatus.PUBLISHED:
            texts.append(_entry_text(session, entry))
    in_force = demand.status == DemandStatus.MATCHED and bool(texts)
    suggestions = [] if in_force else suggest_matches(session, demand, books=books)
    if in_force:
        uncovered = [i for i in demand.data_items if not any(i.lower() in t for t in texts)]
    else:
        offered = {i for s in suggestions for i in s.matched_items}
        uncovered = [i for i in demand.data_items if i not in offered]
    state: Literal["matched", "suggested", "gap"]
    if in_force:
        state, label = "matched", "已对接" + ("（部分信息项未覆盖）" if uncovered else "")
    elif suggestions:
        state, label = "suggested", "待对接（有候选资源）"
    else:
        state, label = "gap", "缺口"
    return SupplyDemandRow(
        demand=demand_out(session, demand),
        side=side,
        matched=matched,
        suggestions=suggestions,
        uncovered_items=uncovered,
        gap=state == "gap",
        state=state,
        state_label=label,
    )


def supply_demand_list(session: Session, principal: Principal) -> SupplyDemandList:
    """供需对接清单: every open or matched demand the principal sees, with its matched
    entries or the best candidates; a demand with neither is a gap (缺口) for the authority
    to coordinate (seed 002 §2(2))."""
    if not principal.can(Perm.CATALOG_LISTS):
        raise PermissionDenied()
    live = [DemandStatus.OPEN.value, DemandStatus.MATCHED.value]
    own = [d for d in list_demands(session, principal) if d.status in live]
    sides: dict[int, Literal["demand", "supply", ""]] = {}
    demands: list[CatalogDemand] = []
    for d in own:
        sides[d.id] = "demand" if d.department_id == principal.department_id else ""
        demands.append(d)
    for d in _supply_side(session, principal):
        if d.status in live and d.id not in sides:
            sides[d.id] = "supply"
            demands.append(d)
    books = _Books(session)
    rows = [supply_demand_row(session, d, side=sides[d.id], books=books) for d in demands]
    order = {"gap": 0, "suggested": 1, "matched": 2}
    rows.sort(key=lambda r: (order[r.state], -r.demand.id))
    return SupplyDemandList(
        rows=rows,
        total=len(rows),
        matched=sum(r.state == "matched" for r in rows),
        suggested=sum(r.state == "suggested" for r in rows),
        gaps=sum(r.state == "gap" for r in rows),
    )


# ---------------------------------------------------------------- responsibility list


def responsibility_list(
    session: Session, principal: Principal, department_id: int | None = None
) -> list[ResponsibilityRow]:
    """责任清单 (seed 003 art. 21): for each published entry, the department that collects
    and aggregates which data items at what frequency; by department, then resource code."""
    if not principal.can(Perm.CATALOG_LISTS):
        raise PermissionDenied()
    q = (
        select(CatalogEntry)
        .join(Department, Department.id == CatalogEntry.department_id)
        .join(Jurisdiction, Jurisdiction.id == Department.jurisdiction_id)
        .where(CatalogEntry.status == EntryStatus.PUBLISHED.value)
        .order_by(Jurisdiction.code, Department.name, Department.id, CatalogEntry.code)
    )
    if department_id is not None:
        if not 1 <= department_id <= MAX_ID:
            return []
        q = q.where(CatalogEntry.department_id == department_id)
    rows: list[ResponsibilityRow] = []
    for entry in session.scalars(q).unique():
        version = entry.current_version
        if version is None:
            continue
        department = entry.department
        rows.append(
            ResponsibilityRow(
                entry_id=entry.id,
                code=entry.code,
                name=version.name,
                version_number=version.number,
                department_id=department.id,
                department_name=department.name,
                credit_code=department.credit_code,
                jurisdiction_name=department.jurisdiction.name,
                items=[
                    ResponsibilityItem(
                        name=it["name"],
                        field=it["field"],
                        required=bool(it.get("required")),
                        data_type=it.get("data_type", "string"),
                        data_type_label=DataType(it.get("data_type", "string")).label,
                    )
                    for it in version.data_items
                ],
                update_frequency=version.update_frequency,
                update_frequency_label=UpdateFrequency(version.update_frequency).label,
                subject_key_kind=version.subject_key_kind,
                subject_key_kind_label=SubjectKeyKind(version.subject_key_kind).label,
                subject_key_item=version.subject_key_item,
                is_returned_data=version.is_returned_data,
                returned_from=version.returned_from,
                publish_date=version.publish_date,
            )
        )
    return rows


CSV_HEADER = [
    "责任部门",
    "统一社会信用代码",
    "行政区",
    "资源代码",
    "资源名称",
    "信息项名称",
    "字段名",
    "数据类型",
    "是否必填",
    "更新周期",
    "主体标识",
    "回流数据",
    "回流来源",
]


def csv_cell(value: object) -> str:
    """Text for a spreadsheet cell: formulas are neutralised (CSV injection)."""
    s = "" if value is None else str(value)
    return "'" + s if s[:1] in ("=", "+", "-", "@", "\t", "\r") else s


def responsibility_csv(
    session: Session, principal: Principal, department_id: int | None = None
) -> bytes:
    """The responsibility list as CSV, one line per data item (UTF-8 with BOM, so that
    spreadsheet programs read the Chinese text); audited as an export."""
    rows = responsibility_list(session, principal, department_id)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_HEADER)
    lines = 0
    for row in rows:
        for item in row.items:
            writer.writerow(
                csv_cell(v)
                for v in (
                    row.department_name,
                    row.credit_code,
                    row.jurisdiction_name,
                    row.code,
                    row.name,
                    item.name,
                    item.field,
                    item.data_type_label,
                    "是" if item.required else "否",
                    row.update_frequency_label,
                    row.subject_key_kind_label,
                    "是" if row.is_returned_data else "否",
                    row.returned_from,
                )
            )
            lines += 1
    audit.record(
        session,
        principal,
        "catalog:list:export",
        "catalog_list",
        "responsibility",
        {"department_id": department_id, "entries": len(rows), "rows": lines},
    )
    return ("\ufeff" + buf.getvalue()).encode("utf-8")
