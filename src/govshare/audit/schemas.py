"""Input and output models of the audit log API."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from govshare.audit.models import AuditCheckpoint, AuditEntry
from govshare.audit.service import VerifyResult

#: dates the log can hold (outside them a day cannot even be turned into a UTC instant)
EARLIEST = date(2000, 1, 1)
LATEST = date(2099, 12, 31)
MAX_ID = 2**31 - 1


class EntryFilter(BaseModel):
    """Filters of the entry list (query parameters of the API and of the page)."""

    model_config = ConfigDict(extra="ignore")

    actor: str | None = Field(None, max_length=128, description="操作人姓名（部分匹配）")
    action: str | None = Field(
        None, max_length=96, description="操作代码前缀，如 orgs: 或 orgs:user:"
    )
    department_id: int | None = Field(None, ge=1, le=MAX_ID, description="操作人所属部门")
    target_type: str | None = Field(None, max_length=64, description="对象类型")
    target_id: str | None = Field(None, max_length=128, description="对象标识")
    since: date | None = Field(None, ge=EARLIEST, le=LATEST, description="起始日期（含，北京时间）")
    until: date | None = Field(None, ge=EARLIEST, le=LATEST, description="截止日期（含，北京时间）")
    page: int = Field(1, ge=1, le=100_000)
    per_page: int = Field(50, ge=1, le=200)

    @field_validator("actor", "action", "target_type", "target_id", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        if isinstance(value, str):
            if "\x00" in value:
                raise ValueError("不能包含空字符")
            value = value.strip()
            return value or None
        return value

    @field_validator("department_id", "since", "until", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _range(self) -> EntryFilter:
        if self.since and self.until and self.since > self.until:
            raise ValueError("起始日期不能晚于截止日期")
        return self

    def query_args(self) -> dict[str, Any]:
        """Keyword arguments for ``repository.list_entries`` (without the paging)."""
        return self.model_dump(exclude={"page", "per_page"})


class EntryOut(BaseModel):
    seq: int
    occurred_at: datetime
    actor_type: str
    actor_id: int | None
    actor_name: str
    role: str
    department_id: int | None
    action: str
    target_type: str
    target_id: str
    ip: str
    details: Any = Field(description="操作详情（JSON）")
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, entry: AuditEntry) -> EntryOut:
        try:
            details: Any = json.loads(entry.details)
        except ValueError:
            details = entry.details
        return cls(
            seq=entry.seq,
            occurred_at=entry.occurred_at,
            actor_type=entry.actor_type,
            actor_id=entry.actor_id,
            actor_name=entry.actor_name,
            role=entry.role,
            department_id=entry.department_id,
            action=entry.action,
            target_type=entry.target_type,
            target_id=entry.target_id,
            ip=entry.ip,
            details=details,
            prev_hash=entry.prev_hash,
            hash=entry.hash,
        )


class EntryPage(BaseModel):
    items: list[EntryOut]
    page: int
    per_page: int
    has_next: bool


class VerifyOut(BaseModel):
    ok: bool
    checked: int = Field(description="校验通过的日志条数")
    first_bad_seq: int | None = Field(description="第一条被修改或缺失的日志序号")
    reason: str
    checkpoint_seq: int | None = Field(description="校验起点：最近一次清理检查点的序号")

    @classmethod
    def of(cls, result: VerifyResult) -> VerifyOut:
        return cls(
            ok=result.ok,
            checked=result.checked,
            first_bad_seq=result.first_bad_seq,
            reason=result.reason,
            checkpoint_seq=result.checkpoint_seq,
        )


class PurgeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    before: date = Field(ge=EARLIEST, le=LATEST, description="清理此日期（北京时间）之前的日志")


class CheckpointOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    created_at: datetime
    created_by: str
    purged_before: datetime
    last_seq: int
    last_hash: str
    entries_purged: int
    hash: str

    @classmethod
    def of(cls, cp: AuditCheckpoint) -> CheckpointOut:
        return cls.model_validate(cp)


class PurgeOut(BaseModel):
    purged: int = Field(description="清理的日志条数")
    checkpoint: CheckpointOut | None
    message: str


class PurgePolicyOut(BaseModel):
    retention_months: int
    latest_before: date = Field(description="清理截止日期最晚可选的日期")
