"""Input and output shapes of the catalog, shared by the JSON API, the pages and imports."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from govshare.catalog.models import (
    BaseDatabase,
    CatalogKind,
    DataGrade,
    DataType,
    OpenType,
    ResourceFormat,
    ShareMethod,
    ShareType,
    SubjectKeyKind,
    UpdateFrequency,
)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class DataItem(_In):
    """One data item (信息项) of a resource."""

    name: str = Field(min_length=1, max_length=64, description="信息项名称（中文）")
    field: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$", description="英文字段名")
    data_type: DataType = DataType.STRING
    length: int | None = Field(default=None, ge=1, le=65535)
    required: bool = False
    description: str = Field(default="", max_length=512)
    personal: bool = Field(default=False, description="个人信息")
    sensitive: bool = Field(default=False, description="敏感个人信息")
    share_type: ShareType | None = Field(default=None, description="本项共享类型；空则同资源")
    enumeration: list[str] = Field(
        default_factory=list, max_length=200, description="取值范围（枚举值）；空则不限"
    )
    checkdigit_warn: bool = Field(
        default=False,
        description="统一社会信用代码校验位不符时仅提示、照常入库（默认拒绝该行）",
    )

    @field_validator("enumeration", mode="before")
    @classmethod
    def _split_enumeration(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = re.split(r"[、,，;；|\n]+", v)
        if isinstance(v, list):
            v = list(dict.fromkeys(str(x).strip() for x in v if str(x).strip()))
            if any(len(x) > 64 for x in v):
                raise ValueError("取值范围中每个值最多 64 个字")
        return v

    @model_validator(mode="after")
    def _checkdigit_only_for_credit_codes(self) -> DataItem:
        if self.checkdigit_warn and self.data_type != DataType.CREDIT_CODE:
            raise ValueError(f"信息项“{self.name}”不是统一社会信用代码类型，不能设置“校验位仅提示”")
        return self


#: data item settings stored only when set (older versions do not carry them)
ITEM_OPTIONAL = ("enumeration", "checkdigit_warn")


class VersionIn(_In):
    """The metadata of a catalog entry (the national catalog guide's core metadata)."""

    catalog_kind: CatalogKind
    item_code: str = Field(pattern=r"^\d{2}$", description="分类：项（2 位）")
    category_code: str = Field(default="000", pattern=r"^\d{3}$", description="分类：目（3 位）")
    base_database: BaseDatabase | None = None
    name: str = Field(min_length=2, max_length=128)
    summary: str = Field(min_length=10, max_length=4000)
    resource_format: ResourceFormat
    data_items: list[DataItem] = Field(min_length=1, max_length=500)
    subject_key_kind: SubjectKeyKind
    subject_key_item: str = Field(min_length=1, max_length=64, description="主键信息项的字段名")
    share_type: ShareType
    share_scope: str = Field(default="", max_length=4000)
    share_purpose: str = Field(default="", max_length=4000)
    share_basis: str = Field(default="", max_length=4000)
    share_methods: list[ShareMethod] = Field(default_factory=list)
    open_type: OpenType = OpenType.NOT_OPEN
    open_conditions: str = Field(default="", max_length=4000)
    open_basis: str = Field(default="", max_length=4000)
    update_frequency: UpdateFrequency
    related_codes: list[str] = Field(default_factory=list, max_length=50)
    data_grade: DataGrade = DataGrade.GENERAL
    is_returned_data: bool = False
    returned_from: str = Field(default="", max_length=128)
    is_classified: bool = Field(
        default=False,
        description="涉密数据：不得在平台登记（《2024年政务数据资源管理办法》第二十条）",
    )
    change_note: str = Field(default="", max_length=512, description="本次变更说明")

    @field_validator("share_methods")
    @classmethod
    def _unique_methods(cls, v: list[ShareMethod]) -> list[ShareMethod]:
        return list(dict.fromkeys(v))


class EntryCreate(VersionIn):
    department_id: int | None = Field(default=None, description="提供部门；部门用户不填，即本部门")


class SubmitIn(_In):
    note: str = Field(default="", max_length=512)


class ReviewIn(_In):
    decision: Literal["approve", "return"]
    comment: str = Field(default="", max_length=4000, description="审核意见；退回时必填")


class WithdrawIn(_In):
    reason: str = Field(min_length=4, max_length=512)


class NewVersionIn(_In):
    change_note: str = Field(min_length=2, max_length=512)


class VersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    entry_id: int
    number: int
    state: str
    change_note: str
    catalog_kind: str
    item_code: str
    category_code: str
    base_database: str | None
    name: str
    summary: str
    resource_format: str
    data_items: list[dict[str, Any]]
    subject_key_kind: str
    subject_key_item: str
    share_type: str
    share_scope: str
    share_purpose: str
    share_basis: str
    share_methods: list[str]
    open_type: str
    open_conditions: str
    open_basis: str
    update_frequency: str
    related_codes: list[str]
    data_grade: str
    is_returned_data: bool
    returned_from: str
    created_at: datetime
    created_by: str
    submitted_at: datetime | None
    submitted_by: str | None
    review_due: date | None
    review_due_provisional: bool
    reviewed_at: datetime | None
    reviewed_by: str | None
    review_comment: str
    publish_date: date | None


class EntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    department_id: int
    jurisdiction_id: int
    status: str
    current_version_id: int | None
    created_at: datetime
    created_by: str
    published_at: datetime | None
    withdrawn_at: datetime | None
    withdrawn_reason: str | None


class EntryDetail(BaseModel):
    entry: EntryOut
    current: VersionOut | None
    pending: VersionOut | None = Field(description="正在编辑或审核中的新版本")
    share_type_name: str
    open_type_name: str


class FieldChange(BaseModel):
    field: str
    label: str
    before: Any
    after: Any


class VersionDiff(BaseModel):
    from_version: int
    to_version: int
    changes: list[FieldChange]
