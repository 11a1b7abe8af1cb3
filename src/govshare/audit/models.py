from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from govshare.db import Base


class AuditEntry(Base):
    """One audited event. Rows are only ever inserted (and purged as a prefix)."""

    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    occurred_at: Mapped[datetime]
    actor_type: Mapped[str] = mapped_column(String(16))  # user | credential | system | anonymous
    actor_id: Mapped[int | None]
    actor_name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(32))
    department_id: Mapped[int | None]
    action: Mapped[str] = mapped_column(String(96))
    target_type: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[str] = mapped_column(String(128))
    ip: Mapped[str] = mapped_column(String(64))
    details: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_audit_entries_occurred_at", "occurred_at"),
        Index("ix_audit_entries_action", "action"),
        Index("ix_audit_entries_actor", "actor_type", "actor_id"),
        Index("ix_audit_entries_target", "target_type", "target_id"),
        Index("ix_audit_entries_department_id", "department_id"),
    )


class AuditHead(Base):
    """Single row holding the chain's tip; updating it serialises appenders."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    last_hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """Recorded when entries older than the retention period are purged.

    The first remaining entry must follow ``last_seq``/``last_hash``; the checkpoint's own
    ``hash`` covers its fields, and the purge itself is an audit entry in the chain.
    """

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(128))
    purged_before: Mapped[datetime]
    last_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    last_hash: Mapped[str] = mapped_column(String(64))
    entries_purged: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    hash: Mapped[str] = mapped_column(String(64))
