"""Catalog tables.

An entry (资源) is the stable identity of a data resource with its resource code; its
metadata lives in versions. Every version is kept: a change to a published entry is a new
version that goes through review while the published one stays in force.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    literal_column,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from govshare.db import Base, utcnow
from govshare.orgs.models import Department, Jurisdiction


class CatalogKind(StrEnum):
    """Classification of the national catalog guide: 基础 / 主题 / 部门信息资源目录."""

    BASE = "base"
    THEME = "theme"
    DEPARTMENT = "department"

    @property
    def label(self) -> str:
        return {"base": "基础信息资源", "theme": "主题信息资源", "department": "部门信息资源"}[
            self.value
        ]

    @property
    def class_digit(self) -> str:
        return {"base": "1", "theme": "2", "department": "3"}[self.value]


class BaseDatabase(StrEnum):
    """The base databases whose base items are shared unconditionally (seed 003 art. 37(2))."""

    POPULATION = "population"
    LEGAL_PERSON = "legal_person"
    NATURAL_RESOURCES = "natural_resources"
    CREDIT = "credit"
    ELECTRONIC_LICENCE = "electronic_licence"

    @property
    def label(self) -> str:
        return {
            "population": "人口基础信息库",
            "legal_person": "法人基础信息库",
            "natural_resources": "自然资源和空间地理基础信息库",
            "credit": "社会信用信息库",
            "electronic_licence": "电子证照库",
        }[self.value]


class ResourceFormat(StrEnum):
    FILE = "file"
    SPREADSHEET = "spreadsheet"
    DATABASE = "database"
    IMAGE = "image"
    STREAMING = "streaming"
    SELF_DESCRIBING = "self_describing"
    INTERFACE = "interface"

    @property
    def label(self) -> str:
        return {
            "file": "电子文件",
            "spreadsheet": "电子表格",
            "database": "数据库",
            "image": "图形图像",
            "streaming": "流媒体",
            "self_describing": "自描述格式",
            "interface": "服务接口",
        }[self.value]


class ShareType(StrEnum):
    UNCONDITIONAL = "unconditional"
    CONDITIONAL = "conditional"
    NOT_SHARED = "not_shared"


class OpenType(StrEnum):
    UNCONDITIONAL = "unconditional"
    CONDITIONAL = "conditional"
    NOT_OPEN = "not_open"


class ShareMethod(StrEnum):
    """How shared data is delivered (seed 003 art. 14 and 38)."""

    QUERY = "query"
    VERIFICATION = "verification"
    BATCH = "batch"

    @property
    def label(self) -> str:
        return {"query": "数据查询接口", "verification": "数据核验", "batch": "批量交换"}[
            self.value
        ]


class UpdateFrequency(StrEnum):
    REALTIME = "realtime"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    YEARLY = "yearly"
    IRREGULAR = "irregular"

    @property
    def label(self) -> str:
        return {
            "realtime": "实时",
            "daily": "每日",
            "weekly": "每周",
            "monthly": "每月",
            "quarterly": "每季度",
            "yearly": "每年",
            "irregular": "不定期",
        }[self.value]


class DataGrade(StrEnum):
    """Data classification and grading, GB/T 43697-2024."""

    GENERAL = "general"
    IMPORTANT = "important"
    CORE = "core"

    @property
    def label(self) -> str:
        return {"general": "一般数据", "important": "重要数据", "core": "核心数据"}[self.value]


class SubjectKeyKind(StrEnum):
    PERSON = "person"  # 18-digit resident ID number
    ORGANIZATION = "organization"  # unified social credit code
    OTHER = "other"  # a declared key item

    @property
    def label(self) -> str:
        return {
            "person": "自然人（身份证号码）",
            "organization": "法人和其他组织（统一社会信用代码）",
            "other": "其他（自定义主键）",
        }[self.value]


class DataType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    DECIMAL = "decimal"
    DATE = "date"
    DATETIME = "datetime"
    BOOLEAN = "boolean"
    ID_NUMBER = "id_number"
    CREDIT_CODE = "credit_code"
    DIVISION_CODE = "division_code"
    PHONE = "phone"

    @property
    def label(self) -> str:
        return {
            "string": "字符型",
            "integer": "整数型",
            "decimal": "数值型",
            "date": "日期型",
            "datetime": "日期时间型",
            "boolean": "布尔型",
            "id_number": "身份证号码",
            "credit_code": "统一社会信用代码",
            "division_code": "行政区划代码",
            "phone": "电话号码",
        }[self.value]


class EntryStatus(StrEnum):
    DRAFT = "draft"  # never published yet
    PUBLISHED = "published"
    WITHDRAWN = "withdrawn"

    @property
    def label(self) -> str:
        return {"draft": "未发布", "published": "已发布", "withdrawn": "已撤销"}[self.value]


class VersionState(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    RETURNED = "returned"
    APPROVED = "approved"  # the version in force
    SUPERSEDED = "superseded"  # was in force, replaced by a later approved version
    DISCARDED = "discarded"  # a draft or returned version abandoned by its department

    @property
    def label(self) -> str:
        return {
            "draft": "草稿",
            "submitted": "待审核",
            "returned": "已退回",
            "approved": "现行",
            "superseded": "已被替代",
            "discarded": "已放弃",
        }[self.value]


class CatalogEntry(Base):
    __tablename__ = "catalog_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)  # 资源代码 前段码/后段码
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    jurisdiction_id: Mapped[int] = mapped_column(ForeignKey("jurisdictions.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=EntryStatus.DRAFT.value)
    current_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("catalog_versions.id", use_alter=True), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    published_at: Mapped[datetime | None]
    withdrawn_at: Mapped[datetime | None]
    withdrawn_by: Mapped[str | None] = mapped_column(String(128))
    withdrawn_reason: Mapped[str | None] = mapped_column(String(512))

    department: Mapped[Department] = relationship(lazy="joined")
    jurisdiction: Mapped[Jurisdiction] = relationship(lazy="joined")
    current_version: Mapped[CatalogVersion | None] = relationship(
        foreign_keys=[current_version_id], lazy="joined", post_update=True
    )


class CatalogVersion(Base):
    __tablename__ = "catalog_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("catalog_entries.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default=VersionState.DRAFT.value)
    change_note: Mapped[str] = mapped_column(String(512), default="")

    # classification
    catalog_kind: Mapped[str] = mapped_column(String(16))
    item_code: Mapped[str] = mapped_column(String(2))  # 项
    category_code: Mapped[str] = mapped_column(String(3))  # 目
    base_database: Mapped[str | None] = mapped_column(String(24))
    # core metadata
    name: Mapped[str] = mapped_column(String(128))
    summary: Mapped[str] = mapped_column(Text)
    resource_format: Mapped[str] = mapped_column(String(24))
    data_items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    subject_key_kind: Mapped[str] = mapped_column(String(16))
    subject_key_item: Mapped[str] = mapped_column(String(64))  # field name of the key item
    share_type: Mapped[str] = mapped_column(String(16))
    share_scope: Mapped[str] = mapped_column(Text, default="")  # conditional: 共享范围
    share_purpose: Mapped[str] = mapped_column(Text, default="")  # conditional: 使用用途
    share_basis: Mapped[str] = mapped_column(Text, default="")  # legal basis
    share_methods: Mapped[list[str]] = mapped_column(JSON)
    open_type: Mapped[str] = mapped_column(String(16))
    open_conditions: Mapped[str] = mapped_column(Text, default="")
    open_basis: Mapped[str] = mapped_column(Text, default="")
    update_frequency: Mapped[str] = mapped_column(String(16))
    related_codes: Mapped[list[str]] = mapped_column(JSON)
    data_grade: Mapped[str] = mapped_column(String(16))
    is_returned_data: Mapped[bool] = mapped_column(Boolean, default=False)  # 回流数据
    returned_from: Mapped[str] = mapped_column(String(128), default="")
    # workflow
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    submitted_at: Mapped[datetime | None]
    submitted_by: Mapped[str | None] = mapped_column(String(128))
    review_due: Mapped[date | None] = mapped_column(Date)
    review_due_provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    reviewed_at: Mapped[datetime | None]
    reviewed_by: Mapped[str | None] = mapped_column(String(128))
    review_comment: Mapped[str] = mapped_column(Text, default="")
    publish_date: Mapped[date | None] = mapped_column(Date)

    entry: Mapped[CatalogEntry] = relationship(foreign_keys=[entry_id], lazy="joined")

    __table_args__ = (
        Index("uq_catalog_versions_entry_number", "entry_id", "number", unique=True),
        Index("ix_catalog_versions_state", "state"),
    )


class CatalogSearch(Base):
    """One row per published entry: what search and facets read (kept in step on publish)."""

    __tablename__ = "catalog_search"

    entry_id: Mapped[int] = mapped_column(
        ForeignKey("catalog_entries.id"), primary_key=True, autoincrement=False
    )
    version_id: Mapped[int] = mapped_column(ForeignKey("catalog_versions.id"))
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)  # name, summary, item names, lower-cased codes
    department_id: Mapped[int] = mapped_column(Integer, index=True)
    jurisdiction_id: Mapped[int] = mapped_column(Integer, index=True)
    catalog_kind: Mapped[str] = mapped_column(String(16))
    share_type: Mapped[str] = mapped_column(String(16))
    open_type: Mapped[str] = mapped_column(String(16))
    resource_format: Mapped[str] = mapped_column(String(24))
    update_frequency: Mapped[str] = mapped_column(String(16))
    data_grade: Mapped[str] = mapped_column(String(16))
    published_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_catalog_search_published_at", "published_at"),
        # lets the in-memory search replica see cheaply whether the table changed (search.py)
        Index("ix_catalog_search_version_id", "version_id"),
        # search in the database (PostgreSQL, large catalogs): facet counts without a keyword
        Index(
            "ix_catalog_search_facets",
            "department_id",
            "catalog_kind",
            "share_type",
            "open_type",
            "resource_format",
            "update_frequency",
            "data_grade",
            "jurisdiction_id",
        ),
        # search in the database (PostgreSQL, large catalogs): substrings by character pairs
        Index(
            "ix_catalog_search_grams",
            func.govshare_grams(literal_column("text")),
            postgresql_using="gin",
        ).ddl_if(dialect="postgresql"),
    )


class ChangeTrigger(StrEnum):
    LAW = "law"  # 法律法规修订
    DUTY = "duty"  # 行政管理职能变更

    @property
    def label(self) -> str:
        return {"law": "法律法规修订", "duty": "行政管理职能变更"}[self.value]


class CatalogChangeEvent(Base):
    """A law or a department's duties changed: the department must file the catalog update
    within the rulebook's deadline (seed 003 art. 22; seed 002 §2(3))."""

    __tablename__ = "catalog_change_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    trigger: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text)
    occurred_on: Mapped[date] = mapped_column(Date)
    due: Mapped[date] = mapped_column(Date)
    due_provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_by: Mapped[str] = mapped_column(String(128))
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    resolution: Mapped[str] = mapped_column(Text, default="")
    #: versions submitted in answer to the event
    version_ids: Mapped[list[int]] = mapped_column(JSON, default=list)

    department: Mapped[Department] = relationship(lazy="joined")


class DemandStatus(StrEnum):
    OPEN = "open"
    MATCHED = "matched"
    CLOSED = "closed"

    @property
    def label(self) -> str:
        return {"open": "待对接", "matched": "已对接", "closed": "已关闭"}[self.value]


class CatalogDemand(Base):
    """A department's need for data held by others (需求清单, seed 003 art. 19)."""

    __tablename__ = "catalog_demands"

    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    title: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    data_items: Mapped[list[str]] = mapped_column(JSON)
    scenario: Mapped[str] = mapped_column(Text, default="")
    basis: Mapped[str] = mapped_column(Text, default="")
    expected_provider_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    status: Mapped[str] = mapped_column(String(16), default=DemandStatus.OPEN.value)
    matched_entry_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    match_note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    department: Mapped[Department] = relationship(foreign_keys=[department_id], lazy="joined")


class CatalogReport(Base):
    """A county's approved catalog change reported to the city (seed 003 art. 18-20, 23)."""

    __tablename__ = "catalog_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("catalog_versions.id"), index=True)
    from_jurisdiction_id: Mapped[int] = mapped_column(ForeignKey("jurisdictions.id"))
    to_jurisdiction_id: Mapped[int] = mapped_column(ForeignKey("jurisdictions.id"), index=True)
    due: Mapped[date] = mapped_column(Date)
    reported_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))

    version: Mapped[CatalogVersion] = relationship(lazy="joined")
    from_jurisdiction: Mapped[Jurisdiction] = relationship(
        foreign_keys=[from_jurisdiction_id], lazy="joined"
    )
