"""Shapes of the sharing API: what a consumer files, what reviewers send, what comes back.

Text fields are checked by the service (it gives the Chinese message, e.g. a rejection
without a reason is refused there), so the inputs here only bound their sizes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from govshare.sharing import service
from govshare.sharing.models import ApplicationStatus, GrantStatus
from govshare.sharing.queries import ApplicationRow, GrantRow


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApplicationCreate(_In):
    """A consumer department's request (unconditional data) or application (conditional)."""

    entry_id: int = Field(gt=0, lt=2**31)
    items: list[str] = Field(
        default_factory=list, max_length=500, description="所需信息项（字段名），最少够用"
    )
    scope: str = Field(max_length=16, description="dataset 整体数据集 / per_subject 按主体")
    methods: list[str] = Field(
        default_factory=list, max_length=3, description="query / verification / batch"
    )
    purpose: str = Field(default="", max_length=4000)
    scenario: str = Field(default="", max_length=4000)
    basis: str = Field(default="", max_length=4000, description="申请依据（有条件共享必填）")
    period_start: date
    period_end: date
    consumer_system: str = Field(default="", max_length=128)

    def to_service(self) -> service.ApplicationIn:
        return service.ApplicationIn(**self.model_dump())


class NoteIn(_In):
    note: str = Field(default="", max_length=4000)


class ReasonIn(_In):
    reason: str = Field(default="", max_length=4000)


class SupplementIn(_In):
    missing: str = Field(default="", max_length=4000, description="需要补正的全部材料")


class ResubmitIn(_In):
    reply: str = Field(default="", max_length=4000, description="补正说明")


class ApproveIn(_In):
    items: list[str] | None = Field(
        default=None, max_length=500, description="同意的信息项；省略为全部所申请的"
    )
    conditions: str = Field(default="", max_length=4000)


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    action: str
    action_label: str
    from_status: str | None
    to_status: str
    actor: str
    at: datetime
    note: str
    details: dict[str, Any]


class GrantOut(BaseModel):
    id: int
    application_id: int | None
    consumer_department_id: int
    consumer_department: str
    consumer_system: str
    entry_id: int
    entry_code: str
    entry_name: str
    provider_department_id: int
    provider_department: str
    items: list[str]
    methods: list[str]
    purpose: str
    scenario: str
    conditions: str
    starts_on: date
    ends_on: date
    status: str
    status_label: str
    approved_by: str
    created_at: datetime


class ApplicationOut(BaseModel):
    id: int
    kind: str
    status: str
    status_label: str
    consumer_department_id: int
    consumer_department: str
    consumer_system: str
    entry_id: int
    entry_code: str
    entry_name: str
    provider_department_id: int
    provider_department: str
    items: list[str]
    scope: str
    methods: list[str]
    purpose: str
    scenario: str
    basis: str
    period_start: date
    period_end: date
    reviewer: str
    due: date | None
    due_provisional: bool
    days_left: int | None = Field(description="按提供部门工作日历计算的剩余工作日，负数为逾期")
    overdue: bool = Field(description="到期日次日起为逾期")
    supplement_asked: bool
    supplement_request: str
    supplement_reply: str
    decided_items: list[str] | None
    conditions: str
    reason: str
    decided_at: datetime | None
    decided_by: str | None
    created_at: datetime
    created_by: str
    events: list[EventOut] | None = None
    grant: GrantOut | None = None


def grant_out(row: GrantRow) -> GrantOut:
    g = row.grant
    return GrantOut(
        id=g.id,
        application_id=g.application_id,
        consumer_department_id=g.consumer_department_id,
        consumer_department=row.consumer,
        consumer_system=g.consumer_system,
        entry_id=g.entry_id,
        entry_code=row.entry_code,
        entry_name=row.entry_name,
        provider_department_id=row.provider_department_id,
        provider_department=row.provider,
        items=list(g.items),
        methods=list(g.methods),
        purpose=g.purpose,
        scenario=g.scenario,
        conditions=g.conditions,
        starts_on=g.starts_on,
        ends_on=g.ends_on,
        status=g.status,
        status_label=GrantStatus(g.status).label,
        approved_by=g.approved_by,
        created_at=g.created_at,
    )


def application_out(
    row: ApplicationRow,
    events: list[Any] | None = None,
    grant: GrantRow | None = None,
) -> ApplicationOut:
    a = row.app
    return ApplicationOut(
        id=a.id,
        kind=a.kind,
        status=a.status,
        status_label=ApplicationStatus(a.status).label,
        consumer_department_id=a.consumer_department_id,
        consumer_department=row.consumer,
        consumer_system=a.consumer_system,
        entry_id=a.entry_id,
        entry_code=row.entry_code,
        entry_name=row.entry_name,
        provider_department_id=a.provider_department_id,
        provider_department=row.provider,
        items=list(a.items),
        scope=a.scope,
        methods=list(a.methods),
        purpose=a.purpose,
        scenario=a.scenario,
        basis=a.basis,
        period_start=a.period_start,
        period_end=a.period_end,
        reviewer=a.reviewer,
        due=a.due,
        due_provisional=a.due_provisional,
        days_left=row.days_left,
        overdue=row.overdue,
        supplement_asked=a.supplement_asked,
        supplement_request=a.supplement_request,
        supplement_reply=a.supplement_reply,
        decided_items=list(a.decided_items) if a.decided_items is not None else None,
        conditions=a.conditions,
        reason=a.reason,
        decided_at=a.decided_at,
        decided_by=a.decided_by,
        created_at=a.created_at,
        created_by=a.created_by,
        events=(
            [
                EventOut(
                    action=e.action,
                    action_label=service.ACTION_LABELS.get(e.action, e.action),
                    from_status=e.from_status,
                    to_status=e.to_status,
                    actor=e.actor,
                    at=e.at,
                    note=e.note,
                    details=dict(e.details or {}),
                )
                for e in events
            ]
            if events is not None
            else None
        ),
        grant=grant_out(grant) if grant is not None else None,
    )
