"""Input and output shapes of the orgs domain, shared by the JSON API and the web forms."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from govshare.orgs.models import Duty, Level
from govshare.permissions import Role

_DIVISION = r"^\d{6}(\d{3}(\d{3})?)?$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class JurisdictionIn(_In):
    code: str = Field(pattern=_DIVISION, description="行政区划代码（6、9 或 12 位）")
    name: str = Field(min_length=2, max_length=64)
    level: Level
    parent_code: str | None = Field(default=None, pattern=_DIVISION)
    rulebook: str | None = None


class JurisdictionUpdate(_In):
    name: str | None = Field(default=None, min_length=2, max_length=64)


class RulebookAssign(_In):
    rulebook: str | None = Field(default=None, description="规则名称；为空表示继承上级")


class JurisdictionOut(_Out):
    id: int
    code: str
    name: str
    level: Level
    parent_id: int | None
    rulebook: str | None


class DepartmentIn(_In):
    name: str = Field(min_length=2, max_length=128)
    short_name: str = Field(default="", max_length=32)
    credit_code: str = Field(min_length=18, max_length=18, description="统一社会信用代码")
    jurisdiction_code: str = Field(pattern=_DIVISION)
    is_data_authority: bool = False
    duties: str = Field(default="", max_length=4000)

    @field_validator("credit_code")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.upper()


class DepartmentUpdate(_In):
    name: str | None = Field(default=None, min_length=2, max_length=128)
    short_name: str | None = Field(default=None, max_length=32)
    duties: str | None = Field(default=None, max_length=4000)
    is_active: bool | None = None


class DepartmentOut(_Out):
    id: int
    name: str
    short_name: str
    credit_code: str
    jurisdiction_id: int
    is_data_authority: bool
    is_active: bool
    duties: str


class ContactIn(_In):
    duty: Duty
    name: str = Field(min_length=2, max_length=64)
    title: str = Field(default="", max_length=64)
    phone: str = Field(default="", max_length=32, pattern=r"^[0-9+\-() ]*$")
    mobile: str = Field(default="", max_length=32, pattern=r"^(1\d{10})?$")
    email: EmailStr | None = None
    note: str = Field(default="", max_length=256, description="变更原因")
    replaces_id: int | None = Field(default=None, description="被替换的备案记录")


class ContactEnd(_In):
    note: str = Field(min_length=2, max_length=256, description="撤销原因")


class ContactOut(_Out):
    id: int
    department_id: int
    duty: Duty
    name: str
    title: str
    phone: str
    mobile: str
    email: str
    note: str
    filed_at: datetime
    filed_by: str
    superseded_at: datetime | None
    superseded_by: str | None
    replaced_by_id: int | None


class UserIn(_In):
    username: str = Field(pattern=r"^[a-zA-Z0-9_.-]{3,64}$")
    display_name: str = Field(min_length=2, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    role: Role
    department_id: int | None = None
    phone: str = Field(default="", max_length=32)


class UserUpdate(_In):
    display_name: str | None = Field(default=None, min_length=2, max_length=64)
    role: Role | None = None
    department_id: int | None = None
    phone: str | None = Field(default=None, max_length=32)
    is_active: bool | None = None


class PasswordReset(_In):
    new_password: str = Field(min_length=1, max_length=256)


class PasswordChange(_In):
    old_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


class UserOut(_Out):
    id: int
    username: str
    display_name: str
    role: Role
    department_id: int | None
    phone: str
    is_active: bool
    must_change_password: bool
    last_login_at: datetime | None
    created_at: datetime


class LoginIn(_In):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class CredentialIn(_In):
    department_id: int
    system_name: str = Field(min_length=2, max_length=128)
    description: str = Field(default="", max_length=512)
    valid_days: int = Field(default=365, ge=1, le=730, description="有效期（天）")


class CredentialRevoke(_In):
    reason: str = Field(min_length=2, max_length=256)


class CredentialOut(_Out):
    id: int
    key_id: str
    department_id: int
    system_name: str
    description: str
    created_at: datetime
    created_by: str
    expires_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None
    revoke_reason: str | None
    last_used_at: datetime | None


class CredentialCreated(BaseModel):
    credential: CredentialOut
    token: str = Field(description="完整凭证，只显示这一次；平台只保存其哈希")


class WhoAmI(BaseModel):
    kind: str
    id: int | None
    name: str
    role: str
    role_label: str
    department_id: int | None
    department_name: str | None
    jurisdiction_id: int | None
    jurisdiction_name: str | None
    permissions: list[str]
    csrf_token: str | None = None
