"""Shapes of the aggregation API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from govshare.ingestion.models import BatchMode

MAX_PUSH_ROWS = 10_000


class PushIn(BaseModel):
    """A push of rows by a department's business system (real-time aggregation)."""

    model_config = ConfigDict(extra="forbid")

    client_batch_id: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.:\-]+$",
        description="业务系统自己的批次号：重复推送同一批次号不会重复入库",
    )
    mode: BatchMode = BatchMode.VALID_ROWS
    rows: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_PUSH_ROWS)


class ErrorOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    row_number: int
    field: str
    column: str
    value: str
    reason: str
    severity: str


class BatchOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    entry_id: int
    department_id: int
    source: str
    mode: str
    status: str
    client_batch_id: str | None
    file_name: str
    encoding: str
    rows_total: int
    rows_loaded: int
    rows_unchanged: int
    rows_rejected: int
    message: str
    created_at: datetime
    created_by: str
    finished_at: datetime | None


class PushOut(BaseModel):
    batch: BatchOut
    duplicate: bool = Field(description="该批次号此前已推送过，本次未重复入库")
    errors: list[ErrorOut]
