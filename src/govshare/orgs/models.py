from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from govshare.db import Base, utcnow


class Level(StrEnum):
    PROVINCE = "province"
    CITY = "city"
    COUNTY = "county"
    TOWNSHIP = "township"

    @property
    def label(self) -> str:
        return {"province": "省级", "city": "市级", "county": "县级", "township": "乡镇级"}[
            self.value
        ]

    @property
    def depth(self) -> int:
        return list(Level).index(self)


class Duty(StrEnum):
    """Contact duties on file: seed 000 art. 5, seed 001 art. 23, seed 002 §6(1)."""

    HEAD = "head"  # 主要负责人（第一责任人）
    LEADER = "leader"  # 分管领导
    OFFICER = "officer"  # 专职人员 / 日常管理人员
    LIAISON = "liaison"  # 联系人

    @property
    def label(self) -> str:
        return DUTY_LABELS[self]


DUTY_LABELS = {
    Duty.HEAD: "主要负责人（第一责任人）",
    Duty.LEADER: "分管领导",
    Duty.OFFICER: "专职人员",
    Duty.LIAISON: "联系人",
}


class Jurisdiction(Base):
    __tablename__ = "jurisdictions"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(12), unique=True)  # administrative division code
    name: Mapped[str] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("jurisdictions.id"), index=True)
    rulebook: Mapped[str | None] = mapped_column(String(64))  # None: inherit from parent
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    parent: Mapped[Jurisdiction | None] = relationship(remote_side=[id], lazy="joined")

    @property
    def level_enum(self) -> Level:
        return Level(self.level)


class Department(Base):
    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    short_name: Mapped[str] = mapped_column(String(32), default="")
    credit_code: Mapped[str] = mapped_column(String(18), unique=True)  # 统一社会信用代码
    jurisdiction_id: Mapped[int] = mapped_column(ForeignKey("jurisdictions.id"), index=True)
    is_data_authority: Mapped[bool] = mapped_column(Boolean, default=False)
    duties: Mapped[str] = mapped_column(Text, default="")  # 主要职责（三定）摘要
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    jurisdiction: Mapped[Jurisdiction] = relationship(lazy="joined")

    __table_args__ = (
        Index("uq_departments_jurisdiction_name", "jurisdiction_id", "name", unique=True),
    )


class ContactFiling(Base):
    """A contact person on file (备案). Rows are never edited: a change supersedes the row."""

    __tablename__ = "contact_filings"

    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    duty: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(64), default="")
    phone: Mapped[str] = mapped_column(String(32), default="")
    mobile: Mapped[str] = mapped_column(String(32), default="")
    email: Mapped[str] = mapped_column(String(128), default="")
    note: Mapped[str] = mapped_column(String(256), default="")  # reason for the change
    filed_at: Mapped[datetime] = mapped_column(default=utcnow)
    filed_by: Mapped[str] = mapped_column(String(128))
    superseded_at: Mapped[datetime | None]
    superseded_by: Mapped[str | None] = mapped_column(String(128))
    replaced_by_id: Mapped[int | None] = mapped_column(ForeignKey("contact_filings.id"))

    @property
    def duty_label(self) -> str:
        return Duty(self.duty).label

    @property
    def is_current(self) -> bool:
        return self.superseded_at is None


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(32))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), index=True)
    phone: Mapped[str] = mapped_column(String(32), default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    department: Mapped[Department | None] = relationship(lazy="joined")


class UserSession(Base):
    """A web session; the cookie holds a random token, the table only its SHA-256."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(256), default="")
    ended_at: Mapped[datetime | None]


class AppCredential(Base):
    """An app credential for a department's business system.

    The secret is shown once; only its SHA-256 is stored. Credentials expire and can be revoked.
    """

    __tablename__ = "app_credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    system_name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(512), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(128))
    revoke_reason: Mapped[str | None] = mapped_column(String(256))
    last_used_at: Mapped[datetime | None]

    department: Mapped[Department] = relationship(lazy="joined")

    def status(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        return "active"
