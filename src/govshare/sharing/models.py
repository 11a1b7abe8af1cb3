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
    #: set when the grant was ordered in a dispute, or produced by a filed agreement
    dispute_id: Mapped[int | None] = mapped_column(ForeignKey("share_disputes.id"), index=True)
    agreement_id: Mapped[int | None] = mapped_column(ForeignKey("share_agreements.id"), unique=True)

    def in_force(self, today: date) -> bool:
        return self.status == GrantStatus.ACTIVE.value and self.starts_on <= today <= self.ends_on


# ---------------------------------------------------------------- disputes (争议)


class DisputeStatus(StrEnum):
    """A sharing dispute: the data authority coordinates, and what it cannot settle goes to
    the government at the same level (seed 000 art. 20, seed 003 art. 40, seed 004 art.
    16)."""

    OPEN = "open"
    COORDINATING = "coordinating"
    RESOLVED_GRANTED = "resolved_granted"
    RESOLVED_UPHELD = "resolved_upheld"
    ESCALATED = "escalated"
    DECIDED_BY_GOVERNMENT = "decided_by_government"

    @property
    def label(self) -> str:
        return {
            "open": "待协调",
            "coordinating": "协调中",
            "resolved_granted": "协调解决：决定共享",
            "resolved_upheld": "协调解决：维持不共享",
            "escalated": "已报本级人民政府",
            "decided_by_government": "本级人民政府已决定",
        }[self.value]

    @property
    def is_open(self) -> bool:
        """Still to be settled (at most one such dispute per application)."""
        return self in (DisputeStatus.OPEN, DisputeStatus.COORDINATING, DisputeStatus.ESCALATED)


class ShareDispute(Base):
    """A consumer's dispute over a rejected or unanswered application."""

    __tablename__ = "share_disputes"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("share_applications.id"), index=True)
    #: the application's id while the dispute is unsettled, else NULL: the database holds
    #: at most one unsettled dispute per application
    open_application_id: Mapped[int | None] = mapped_column(unique=True)
    consumer_department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    provider_department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    status: Mapped[str] = mapped_column(String(32))
    #: why it was raised: ``rejected`` or ``overdue`` (no reply within the deadline)
    grounds: Mapped[str] = mapped_column(String(16))
    consumer_statement: Mapped[str] = mapped_column(Text)
    provider_statement: Mapped[str] = mapped_column(Text, default="")
    coordination_record: Mapped[str] = mapped_column(Text, default="")
    #: granted, upheld or escalated
    outcome: Mapped[str | None] = mapped_column(String(16))
    escalation_record: Mapped[str] = mapped_column(Text, default="")
    government_decision: Mapped[str] = mapped_column(Text, default="")
    #: granted or upheld
    government_outcome: Mapped[str | None] = mapped_column(String(16))
    #: the coordination clock (working days on the provider's calendar)
    clock_from: Mapped[date | None]
    clock_days: Mapped[int] = mapped_column(Integer, default=0)
    due: Mapped[date | None]
    due_provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(128))


# ---------------------------------------------------------------- agreements (协议共享)


class AgreementStatus(StrEnum):
    DRAFT = "draft"
    FILED = "filed"  # filed with the authority (备案), term not begun
    ACTIVE = "active"
    ENDED = "ended"  # the term is over
    TERMINATED = "terminated"

    @property
    def label(self) -> str:
        return {
            "draft": "待签署备案",
            "filed": "已备案（未到期限）",
            "active": "履行中",
            "ended": "已到期",
            "terminated": "已终止",
        }[self.value]


class ShareAgreement(Base):
    """A long-term sharing agreement between two departments for specific data, filed with
    the data authority (协议共享, seed 004 art. 16(3)); filing produces its grant."""

    __tablename__ = "share_agreements"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    consumer_department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    consumer_system: Mapped[str] = mapped_column(String(128), default="")
    provider_department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("catalog_entries.id"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("catalog_versions.id"))
    items: Mapped[list[str]] = mapped_column(JSON)
    methods: Mapped[list[str]] = mapped_column(JSON)
    purpose: Mapped[str] = mapped_column(Text)
    scenario: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    starts_on: Mapped[date]
    ends_on: Mapped[date]
    consumer_signed_by: Mapped[str | None] = mapped_column(String(128))
    consumer_signed_at: Mapped[datetime | None]
    provider_signed_by: Mapped[str | None] = mapped_column(String(128))
    provider_signed_at: Mapped[datetime | None]
    filed_by: Mapped[str | None] = mapped_column(String(128))
    filed_at: Mapped[datetime | None]
    status_reason: Mapped[str] = mapped_column(Text, default="")
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
