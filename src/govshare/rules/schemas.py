"""Input and output shapes of the rules domain, shared by the JSON API and the web forms."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from govshare.rules.models import DAY_KIND_LABELS, DayKind

#: a jurisdiction's administrative division code (6, 9 or 12 digits), or "" for national
SCOPE_PATTERN = r"^(\d{6}(\d{3}(\d{3})?)?)?$"

#: every spelling of a day kind accepted in CSV files, forms, the API and the CLI
KIND_ALIASES: dict[str, DayKind] = (
    {k.value: k for k in DayKind}
    | {v: k for k, v in DAY_KIND_LABELS.items()}
    | {
        "调休": DayKind.ADJUSTED_WORKDAY,
        "调休工作日": DayKind.ADJUSTED_WORKDAY,
        "补班": DayKind.ADJUSTED_WORKDAY,
        "法定节假日": DayKind.HOLIDAY,
        "假日": DayKind.HOLIDAY,
        "节日": DayKind.HOLIDAY,
        "放假": DayKind.HOLIDAY,
        "周末": DayKind.WEEKEND,
    }
)


def parse_kind(text: str) -> DayKind | None:
    return KIND_ALIASES.get(text.strip().lower()) or KIND_ALIASES.get(text.strip())


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# ---------------------------------------------------------------- rulebooks


class RulebookAssign(_In):
    rulebook: str | None = Field(
        default=None, max_length=64, description="规则名称；为空（null）表示继承上级行政区的规则"
    )


class RulebookBrief(_Out):
    name: str
    title: str
    issuer: str
    issued: date | None
    source: str
    summary: str
    conditional_reply_days: int = Field(description="有条件共享申请的答复时限（工作日）")
    share_type_names: list[str] = Field(description="无条件 / 有条件 / 不予共享三类的名称")
    jurisdictions: list[str] = Field(description="直接指定使用本规则的行政区划代码")


class JurisdictionRef(_Out):
    code: str
    name: str
    rulebook: str | None = Field(description="本级自行指定的规则；null 表示继承")


class EffectiveRulebookOut(BaseModel):
    jurisdiction: JurisdictionRef
    chain: list[str] = Field(description="依次合并的规则，national 为基础")
    set_by: str | None = Field(description="最近一级自行指定规则的行政区划代码")
    lineage: list[JurisdictionRef] = Field(description="自最上级到本级的行政区")
    rulebook: dict[str, Any] = Field(description="合并后的完整规则")


# ---------------------------------------------------------------- calendar


class CalendarYearOut(_Out):
    year: int
    source: str
    loaded_at: datetime
    loaded_by: str


class CalendarDayOut(BaseModel):
    day: date
    weekday: int = Field(description="1 = 周一 … 7 = 周日")
    kind: DayKind
    kind_label: str
    is_workday: bool
    name: str
    known: bool = Field(description="false：该年日历未导入，按周一至周五推定")
    scope: str = Field(description="提供本日数据的范围：空为全国日历，否则为行政区划代码")


class CalendarDaysOut(BaseModel):
    year: int
    scope: str
    known: bool = Field(description="该年度全国工作日历是否已导入")
    days: list[CalendarDayOut]


class DayIn(_In):
    kind: DayKind = Field(
        description="workday / weekend / holiday / adjusted_workday（或中文名称）"
    )
    name: str = Field(default="", max_length=64)
    scope: str = Field(default="", pattern=SCOPE_PATTERN, description="行政区划代码；空为全国")

    @field_validator("kind", mode="before")
    @classmethod
    def _kind(cls, v: object) -> object:
        if isinstance(v, str):
            return parse_kind(v) or v
        return v


class DayForm(DayIn):
    day: date


class DueIn(_In):
    received: date
    days: int = Field(ge=0, le=365)
    jurisdiction: str | None = Field(default=None, pattern=SCOPE_PATTERN)


class DueOut(BaseModel):
    received: date
    days: int
    due: date
    provisional: bool
    uncovered_years: list[int]


class ImportOut(BaseModel):
    year: int
    scope: str
    days_listed: int
    holidays: int
    adjusted_workdays: int
