"""Tables of one data item, one source (一数一源).

- ``ingest_item_sources``: the authority's decision about one data item (identified within
  a subject kind by its normalised Chinese name): the entry designated as its source, or
  the item marked as a shared identifying item (姓名, 企业名称 ...) that everyone carries to
  identify the subject. Items without a row take the default source (the entry that first
  listed them). See :mod:`govshare.ingestion.sources`.
- ``ingest_item_exemptions``: an entry allowed to collect an item itself because a law or
  regulation says so (seed 003 art. 24 and seed 004 art. 7: "法律法规另有规定的除外").
- ``ingest_source_conflicts``: subjects on which the source and a repeating collector hold
  different values of the same item, for the authority to verify with the departments
  (seed 004 art. 15).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from govshare.db import Base, utcnow


class ItemRole(StrEnum):
    SOURCE = "source"  # an entry designated as the item's source
    IDENTIFYING = "identifying"  # carried by everyone to identify the subject: never flagged

    @property
    def label(self) -> str:
        return {"source": "指定来源", "identifying": "共用标识项"}[self.value]


class ConflictStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"

    @property
    def label(self) -> str:
        return {"open": "待核实", "resolved": "已处理"}[self.value]


class ItemSource(Base):
    """The authority's designation for one data item (one row per subject kind and name)."""

    __tablename__ = "ingest_item_sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_kind: Mapped[str] = mapped_column(String(16))
    item_name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    source_entry_id: Mapped[int | None] = mapped_column(ForeignKey("catalog_entries.id"))
    basis: Mapped[str] = mapped_column(Text, default="")
    designated_at: Mapped[datetime] = mapped_column(default=utcnow)
    designated_by: Mapped[str] = mapped_column(String(128))

    __table_args__ = (
        Index("uq_ingest_item_sources_item", "subject_kind", "item_name", unique=True),
    )


class ItemExemption(Base):
    """An entry that may collect an item another department is the source of, because a
    law or regulation requires it to (its basis is recorded)."""

    __tablename__ = "ingest_item_exemptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_kind: Mapped[str] = mapped_column(String(16))
    item_name: Mapped[str] = mapped_column(String(64))
    entry_id: Mapped[int] = mapped_column(ForeignKey("catalog_entries.id"), index=True)
    basis: Mapped[str] = mapped_column(Text)
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
    granted_by: Mapped[str] = mapped_column(String(128))

    __table_args__ = (
        Index(
            "uq_ingest_item_exemptions_item",
            "subject_kind",
            "item_name",
            "entry_id",
            unique=True,
        ),
    )


class SourceConflict(Base):
    """One subject on which two sources of the same item disagree."""

    __tablename__ = "ingest_source_conflicts"

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_kind: Mapped[str] = mapped_column(String(16))
    item_name: Mapped[str] = mapped_column(String(64))
    key_value: Mapped[str] = mapped_column(String(128))
    source_entry_id: Mapped[int] = mapped_column(ForeignKey("catalog_entries.id"))
    source_field: Mapped[str] = mapped_column(String(64))
    source_value: Mapped[str] = mapped_column(String(512))
    other_entry_id: Mapped[int] = mapped_column(ForeignKey("catalog_entries.id"), index=True)
    other_field: Mapped[str] = mapped_column(String(64))
    other_value: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), default=ConflictStatus.OPEN.value)
    first_detected_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_detected_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    resolution: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (
        Index(
            "uq_ingest_source_conflicts_subject",
            "source_entry_id",
            "other_entry_id",
            "subject_kind",
            "item_name",
            "key_value",
            unique=True,
        ),
        Index("ix_ingest_source_conflicts_status", "status", "item_name"),
    )
