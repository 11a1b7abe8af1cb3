"""Aggregation tables: the registry of each entry's data table, import batches, row errors.

The data tables themselves (``data_<entry id>`` and ``data_<entry id>_history``) are not
declared here: their columns follow the entry's data items and are created and altered by
:mod:`govshare.ingestion.tables` when a catalog version is approved.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from govshare.db import Base, utcnow


class DataTable(Base):
    """The data table of a published catalog entry and the columns it has."""

    __tablename__ = "ingest_tables"

    entry_id: Mapped[int] = mapped_column(
        ForeignKey("catalog_entries.id"), primary_key=True, autoincrement=False
    )
    table_name: Mapped[str] = mapped_column(String(64), unique=True)
    #: field -> {"type": data type, "length": int | None, "since_version": n, "removed": bool}
    columns: Mapped[dict[str, Any]] = mapped_column(JSON)
    key_field: Mapped[str] = mapped_column(String(64))
    version_number: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    altered_at: Mapped[datetime] = mapped_column(default=utcnow)


class BatchSource(StrEnum):
    UPLOAD = "upload"
    PUSH = "push"
    CLI = "cli"

    @property
    def label(self) -> str:
        return {"upload": "文件上传", "push": "接口推送", "cli": "命令行导入"}[self.value]


class BatchMode(StrEnum):
    VALID_ROWS = "valid_rows"  # valid rows land, invalid rows are reported
    ALL_OR_NOTHING = "all_or_nothing"

    @property
    def label(self) -> str:
        return {"valid_rows": "有效行入库", "all_or_nothing": "全部有效才入库"}[self.value]


class BatchStatus(StrEnum):
    RUNNING = "running"
    COMMITTED = "committed"
    REJECTED = "rejected"  # all-or-nothing with errors, or a file refused whole

    @property
    def label(self) -> str:
        return {"running": "导入中", "committed": "已入库", "rejected": "已拒绝"}[self.value]


class IngestBatch(Base):
    """One aggregation batch: a file, a push or a CLI import into one entry's data table."""

    __tablename__ = "ingest_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("catalog_entries.id"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    source: Mapped[str] = mapped_column(String(16))
    mode: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=BatchStatus.RUNNING.value)
    #: a pushing system's own batch id: a retried push with the same id is not loaded twice
    client_batch_id: Mapped[str | None] = mapped_column(String(128))
    file_name: Mapped[str] = mapped_column(String(256), default="")
    encoding: Mapped[str] = mapped_column(String(16), default="")
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_loaded: Mapped[int] = mapped_column(Integer, default=0)
    rows_unchanged: Mapped[int] = mapped_column(Integer, default=0)
    rows_rejected: Mapped[int] = mapped_column(Integer, default=0)
    #: rejected rows whose key repeats an earlier row of the same batch (counted in rejected)
    rows_duplicate: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    finished_at: Mapped[datetime | None]

    __table_args__ = (
        Index(
            "uq_ingest_batches_client_batch",
            "department_id",
            "entry_id",
            "client_batch_id",
            unique=True,
        ),
    )


class IngestError(Base):
    """A rejected cell of a batch: row number, column, value and the reason in Chinese."""

    __tablename__ = "ingest_errors"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("ingest_batches.id"), index=True)
    row_number: Mapped[int] = mapped_column(Integer)
    field: Mapped[str] = mapped_column(String(64))
    column: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(512))
    reason: Mapped[str] = mapped_column(String(512))
    severity: Mapped[str] = mapped_column(String(8), default="error")


class DeletionStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"

    @property
    def label(self) -> str:
        return {
            "pending": "待审核",
            "approved": "已批准",
            "rejected": "已驳回",
            "withdrawn": "已撤回",
        }[self.value]


class DeletionRequest(Base):
    """A department's request to delete records of its entry (seed 001 art. 18: no record is
    deleted outside an approved process). Approved by the authority, the records become
    tombstones (``_deleted``) and their last values stay in the history table."""

    __tablename__ = "ingest_deletion_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("catalog_entries.id"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    #: the key values of the records to delete
    keys: Mapped[list[str]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=DeletionStatus.PENDING.value)
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    requested_by: Mapped[str] = mapped_column(String(128))
    reviewed_at: Mapped[datetime | None]
    reviewed_by: Mapped[str | None] = mapped_column(String(128))
    review_comment: Mapped[str] = mapped_column(Text, default="")
    rows_deleted: Mapped[int] = mapped_column(Integer, default=0)
