"""Data services (共享服务): published services, the usage ledger, per-day usage counters
and batch export jobs.

A service is what the operator (技术服务单位) publishes for a catalog entry so that business
systems can receive granted data by query, cross-verification or batch exchange (seed 003
art. 13). Every call is written to the usage ledger (使用台账, seed 000 art. 16, seed 001
art. 18) by the group committer in :mod:`govshare.dataservices.ledger` before its response is
sent.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from govshare.db import Base, utcnow

_BIGINT = BigInteger().with_variant(Integer, "sqlite")


class ServiceStatus(StrEnum):
    PUBLISHED = "published"
    WITHDRAWN = "withdrawn"

    @property
    def label(self) -> str:
        return {"published": "已发布", "withdrawn": "已停用"}[self.value]


class CallMethod(StrEnum):
    """How a call delivers data; the values are the grant's share methods."""

    QUERY = "query"
    VERIFICATION = "verification"
    BATCH = "batch"

    @property
    def label(self) -> str:
        return {"query": "数据查询", "verification": "数据核验", "batch": "批量交换"}[self.value]


class CallOutcome(StrEnum):
    OK = "ok"  # data (or a verification answer) delivered
    NOT_FOUND = "not_found"  # the call was allowed; no record for the subject
    REFUSED = "refused"  # no grant, grant not in force, item or method outside it
    LIMITED = "limited"  # quota or rate limit reached (429)
    ERROR = "error"  # the platform failed to answer (its record lookup failed): 500

    @property
    def label(self) -> str:
        return {
            "ok": "成功",
            "not_found": "无记录",
            "refused": "拒绝",
            "limited": "超出限额",
            "error": "平台出错",
        }[self.value]


class DataService(Base):
    """A published data service of one catalog entry."""

    __tablename__ = "data_services"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("catalog_entries.id"), index=True)
    provider_department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    #: the business scenarios the service is meant for (接口使用业务场景, seed 002 annex)
    scenario: Mapped[str] = mapped_column(String(256), default="")
    #: 对象分类: the subject kind of the entry (person / organization / other)
    subject_category: Mapped[str] = mapped_column(String(16))
    methods: Mapped[list[str]] = mapped_column(JSON)
    #: 调用指南 written by the operator (seed 003 art. 13)
    guide: Mapped[str] = mapped_column(Text, default="")
    #: defaults for grants that set none: calls per minute and per day
    rate_per_minute: Mapped[int | None] = mapped_column(Integer)
    daily_quota: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=ServiceStatus.PUBLISHED.value)
    published_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_by: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime | None]
    withdrawn_at: Mapped[datetime | None]
    withdrawn_by: Mapped[str | None] = mapped_column(String(128))
    withdrawn_reason: Mapped[str | None] = mapped_column(String(512))


class GrantLimit(Base):
    """Quota and rate limit set for one grant (else the service's, else the platform's)."""

    __tablename__ = "grant_limits"

    grant_id: Mapped[int] = mapped_column(ForeignKey("share_grants.id"), primary_key=True)
    rate_per_minute: Mapped[int | None] = mapped_column(Integer)
    daily_quota: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(128))


class UsageEntry(Base):
    """One call in the usage ledger (使用台账). Rows are only ever inserted."""

    __tablename__ = "usage_ledger"

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True)
    occurred_at: Mapped[datetime]
    #: local (Beijing) date of the call, for per-day statistics and quotas
    day: Mapped[date] = mapped_column(Date)
    call_id: Mapped[str] = mapped_column(String(32), unique=True)
    service_id: Mapped[int | None] = mapped_column(ForeignKey("data_services.id"))
    entry_id: Mapped[int | None] = mapped_column(Integer)
    grant_id: Mapped[int | None] = mapped_column(Integer)
    provider_department_id: Mapped[int | None] = mapped_column(Integer)
    consumer_department_id: Mapped[int] = mapped_column(Integer)
    credential_id: Mapped[int | None] = mapped_column(Integer)
    calling_system: Mapped[str] = mapped_column(String(128))
    #: the person at the calling system on whose behalf the call was made (经办人)
    calling_user: Mapped[str] = mapped_column(String(128))
    purpose: Mapped[str] = mapped_column(Text, default="")
    scenario: Mapped[str] = mapped_column(Text, default="")
    approved_by: Mapped[str] = mapped_column(String(128), default="")
    method: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))
    #: data items returned (or verified), as field names
    items: Mapped[list[str]] = mapped_column(JSON)
    #: HMAC-SM3 of each subject key queried (never the key itself), comma-separated
    subjects: Mapped[str] = mapped_column(Text, default="")
    subject_count: Mapped[int] = mapped_column(Integer, default=0)
    #: records delivered (rows of an export)
    volume: Mapped[int] = mapped_column(_BIGINT, default=0)
    export_id: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(512), default="")
    ip: Mapped[str] = mapped_column(String(64), default="")
    audit_seq: Mapped[int | None] = mapped_column(_BIGINT)

    __table_args__ = (
        Index("ix_usage_ledger_consumer_day", "consumer_department_id", "day"),
        Index("ix_usage_ledger_provider_day", "provider_department_id", "day"),
        Index("ix_usage_ledger_service_day", "service_id", "day"),
        Index("ix_usage_ledger_grant_day", "grant_id", "day"),
        Index("ix_usage_ledger_occurred_at", "occurred_at"),
    )


class GrantUsageDay(Base):
    """Calls counted per grant and Beijing day, kept by the ledger writer (daily quotas)."""

    __tablename__ = "grant_usage_days"

    grant_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    calls: Mapped[int] = mapped_column(_BIGINT, default=0)


class ExportStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    #: done, and its file deleted once its retention period was over
    EXPIRED = "expired"

    @property
    def label(self) -> str:
        return {
            "queued": "排队中",
            "running": "生成中",
            "done": "已完成",
            "failed": "失败",
            "expired": "文件已过期删除",
        }[self.value]


class ExportJob(Base):
    """A batch exchange: granted items of an entry (all, or changed since a date) written
    to a CSV or XLSX file with a manifest (row count, SM3 digest, signature)."""

    __tablename__ = "export_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("data_services.id"), index=True)
    grant_id: Mapped[int] = mapped_column(ForeignKey("share_grants.id"), index=True)
    consumer_department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    requested_by: Mapped[str] = mapped_column(String(128))
    credential_id: Mapped[int | None] = mapped_column(Integer)
    user_id: Mapped[int | None] = mapped_column(Integer)
    calling_user: Mapped[str] = mapped_column(String(128), default="")
    file_format: Mapped[str] = mapped_column(String(8))  # csv | xlsx
    items: Mapped[list[str]] = mapped_column(JSON)
    changed_since: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default=ExportStatus.QUEUED.value)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    #: the runner writing the file says it is alive (every :data:`exports.HEARTBEAT_EVERY`):
    #: a job whose heartbeat stopped was left by a process that died
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    rows: Mapped[int] = mapped_column(_BIGINT, default=0)
    size: Mapped[int] = mapped_column(_BIGINT, default=0)
    sm3: Mapped[str] = mapped_column(String(64), default="")
    file_name: Mapped[str] = mapped_column(String(256), default="")
    #: the signed manifest envelope (see govshare.signing)
    manifest: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str] = mapped_column(Text, default="")
    downloads: Mapped[int] = mapped_column(Integer, default=0)
