"""Sharing applications, their history, and the grants they produce.

One table holds both ways of asking for data: a **request** for unconditional data (granted
at once, or after the authority's compliance check where the rulebook asks for one) and an
**application** for conditional data (reviewed within the rulebook's working-day deadline).
Every state change goes through :func:`govshare.sharing.service.transition` and leaves an
:class:`ApplicationEvent`.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from govshare.db import Base, utcnow


class ApplicationKind(StrEnum):
    REQUEST = "request"  # unconditional data (无条件/强制共享)
    APPLICATION = "application"  # conditional data (有条件/条件共享)

    @property
    def label(self) -> str:
        return {"request": "共享请求", "application": "共享申请"}[self.value]


class ApplicationStatus(StrEnum):
    COMPLIANCE_CHECK = "compliance_check"  # the authority checks compliance first
    PENDING_REVIEW = "pending_review"
    SUPPLEMENT_REQUESTED = "supplement_requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"

    @property
    def label(self) -> str:
        return {
            "compliance_check": "合规审查中",
            "pending_review": "待审核",
            "supplement_requested": "待补正材料",
            "approved": "已同意",
            "rejected": "未同意",
            "withdrawn": "已撤回",
        }[self.value]

    @property
    def is_open(self) -> bool:
        return self in OPEN_STATUSES


OPEN_STATUSES = frozenset(
    {
        ApplicationStatus.COMPLIANCE_CHECK,
        ApplicationStatus.PENDING_REVIEW,
        ApplicationStatus.SUPPLEMENT_REQUESTED,
    }
)


class Scope(StrEnum):
    DATASET = "dataset"  # the whole dataset (batch exchange)
    PER_SUBJECT = "per_subject"  # lookups subject by subject (query, verification)

    @property
    def label(self) -> str:
        return {"dataset": "整体数据集", "per_subject": "按主体逐条查询或核验"}[self.value]


class ShareApplication(Base):
    """A consumer department's request or application for one catalog entry's data."""

    __tablename__ = "share_applications"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(32))
    consumer_department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    #: the consumer's business system that will use the data (optional)
    consumer_system: Mapped[str] = mapped_column(String(128), default="")
    entry_id: Mapped[int] = mapped_column(ForeignKey("catalog_entries.id"), index=True)
    provider_department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    #: the catalog version in force when the application was filed
    version_id: Mapped[int] = mapped_column(ForeignKey("catalog_versions.id"))
    #: data item fields asked for (least necessary: a grant never covers more)
    items: Mapped[list[str]] = mapped_column(JSON)
    scope: Mapped[str] = mapped_column(String(16))
    methods: Mapped[list[str]] = mapped_column(JSON)
    purpose: Mapped[str] = mapped_column(Text)
    scenario: Mapped[str] = mapped_column(Text)
    basis: Mapped[str] = mapped_column(Text, default="")
    period_start: Mapped[date]
    period_end: Mapped[date]
    #: who reviews, fixed from the provider's rulebook when filed: provider, authority,
    #: or authority_then_provider (compliance check, then the provider)
    reviewer: Mapped[str] = mapped_column(String(32))
    #: the running clock: the day it counts from, its length and its due date
    clock_from: Mapped[date | None]
    clock_days: Mapped[int] = mapped_column(Integer, default=0)
    due: Mapped[date | None]
    due_provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    #: working days that were left when material was asked for (for a clock that resumes)
    days_left_at_supplement: Mapped[int | None]
    supplement_asked: Mapped[bool] = mapped_column(Boolean, default=False)
    supplement_request: Mapped[str] = mapped_column(Text, default="")
    supplement_reply: Mapped[str] = mapped_column(Text, default="")
    decided_items: Mapped[list[str] | None] = mapped_column(JSON)
    conditions: Mapped[str] = mapped_column(Text, default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_share_applications_status_due", "status", "due"),)


class ApplicationEvent(Base):
    """One state change of an application: who, when, from what to what, and why."""

    __tablename__ = "share_application_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("share_applications.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    note: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class GrantStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    TERMINATED = "terminated"

    @property
    def label(self) -> str:
        return {"active": "有效", "suspended": "已暂停", "terminated": "已终止"}[self.value]


class Grant(Base):
    """What a consumer may receive of one entry: items, methods, purpose, period. Data
    services check every call against it; an expired, suspended or terminated grant stops
    working at once."""

    __tablename__ = "share_grants"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int | None] = mapped_column(
        ForeignKey("share_applications.id"), unique=True
    )
    consumer_department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    consumer_system: Mapped[str] = mapped_column(String(128), default="")
    entry_id: Mapped[int] = mapped_column(ForeignKey("catalog_entries.id"), index=True)
    items: Mapped[list[str]] = mapped_column(JSON)
    methods: Mapped[list[str]] = mapped_column(JSON)
    purpose: Mapped[str] = mapped_column(Text)
    scenario: Mapped[str] = mapped_column(Text)
    conditions: Mapped[str] = mapped_column(Text, default="")
    starts_on: Mapped[date]
    ends_on: Mapped[date]
    status: Mapped[str] = mapped_column(String(16), default=GrantStatus.ACTIVE.value)
    approved_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    status_changed_at: Mapped[datetime | None]
    status_changed_by: Mapped[str | None] = mapped_column(String(128))

    def in_force(self, today: date) -> bool:
        return self.status == GrantStatus.ACTIVE.value and self.starts_on <= today <= self.ends_on
