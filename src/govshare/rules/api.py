"""JSON API of the rules domain: rulebooks and the working-day calendar (under /api/v1)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile

from govshare.deps import DbSession, require
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.rules import schemas
from govshare.rules import service as rules_service
from govshare.rules.models import DayKind
from govshare.rules.workdays import DayInfo, Due

router = APIRouter(tags=["rules"])

RulebookReader = Annotated[Principal, Depends(require(Perm.RULEBOOK_READ))]
RulebookAssigner = Annotated[Principal, Depends(require(Perm.RULEBOOK_ASSIGN))]
CalendarReader = Annotated[Principal, Depends(require(Perm.CALENDAR_READ))]
CalendarManager = Annotated[Principal, Depends(require(Perm.CALENDAR_MANAGE))]
Scope = Annotated[
    str, Query(pattern=schemas.SCOPE_PATTERN, description="行政区划代码；不填为全国日历")
]


# ---------------------------------------------------------------- rulebooks


def _effective_out(effective: rules_service.EffectiveRulebook) -> schemas.EffectiveRulebookOut:
    jurisdiction = effective.lineage[-1]
    return schemas.EffectiveRulebookOut(
        jurisdiction=schemas.JurisdictionRef.model_validate(jurisdiction),
        chain=list(effective.chain),
        set_by=effective.set_by.code if effective.set_by else None,
        lineage=[schemas.JurisdictionRef.model_validate(j) for j in effective.lineage],
        rulebook=effective.book.model_dump(mode="json"),
    )


@router.get("/rulebooks", response_model=list[schemas.RulebookBrief])
def list_rulebooks(db: DbSession, _p: RulebookReader) -> list[schemas.RulebookBrief]:
    """所有内置规则（国家默认规则在前）及直接指定使用它们的行政区。"""
    return [
        schemas.RulebookBrief(
            name=u.book.name,
            title=u.book.title,
            issuer=u.book.issuer,
            issued=u.book.issued,
            source=u.book.source,
            summary=u.book.summary,
            conditional_reply_days=u.book.sharing.conditional_reply.working_days,
            share_type_names=[
                u.book.share_types.unconditional.name,
                u.book.share_types.conditional.name,
                u.book.share_types.not_shared.name,
            ],
            jurisdictions=[j.code for j in u.assigned],
        )
        for u in rules_service.rulebook_usage(db)
    ]


@router.get("/rulebooks/{name}")
def get_rulebook(name: str, _p: RulebookReader) -> dict[str, Any]:
    """一本规则合并国家默认规则后的完整内容。"""
    return rules_service.get_rulebook(name).model_dump(mode="json")


@router.get("/jurisdictions/{code}/rulebook", response_model=schemas.EffectiveRulebookOut)
def get_jurisdiction_rulebook(
    code: str, db: DbSession, _p: RulebookReader
) -> schemas.EffectiveRulebookOut:
    """行政区实际适用的规则及其规则链。"""
    return _effective_out(rules_service.effective_for_code(db, code))


@router.put("/jurisdictions/{code}/rulebook", response_model=schemas.EffectiveRulebookOut)
def put_jurisdiction_rulebook(
    code: str, body: schemas.RulebookAssign, db: DbSession, principal: RulebookAssigner
) -> schemas.EffectiveRulebookOut:
    """为行政区指定规则；rulebook 为 null 表示继承上级。"""
    jurisdiction = rules_service.jurisdiction_by_code(db, code)
    rules_service.assign_rulebook(db, principal, jurisdiction, body.rulebook)
    return _effective_out(rules_service.rulebook_chain(db, jurisdiction))


# ---------------------------------------------------------------- calendar


def _day_out(d: DayInfo) -> schemas.CalendarDayOut:
    return schemas.CalendarDayOut(
        day=d.day,
        weekday=d.day.isoweekday(),
        kind=DayKind(d.kind),
        kind_label=d.kind_label,
        is_workday=d.is_workday,
        name=d.name,
        known=d.known,
        scope=d.scope,
    )


def _due_out(due: Due) -> schemas.DueOut:
    return schemas.DueOut(
        received=due.received,
        days=due.days,
        due=due.due,
        provisional=due.provisional,
        uncovered_years=list(due.uncovered_years),
    )


@router.get("/calendar/years", response_model=list[schemas.CalendarYearOut])
def calendar_years(db: DbSession, _p: CalendarReader) -> list[schemas.CalendarYearOut]:
    """已导入全国工作日历的年度及其来源（chinese-calendar / import）。"""
    return [schemas.CalendarYearOut.model_validate(y) for y in rules_service.known_years(db)]


@router.get("/calendar/days", response_model=schemas.CalendarDaysOut)
def calendar_days(
    db: DbSession,
    _p: CalendarReader,
    year: Annotated[int, Query(ge=1900, le=2999, description="年度")],
    scope: Scope = "",
) -> schemas.CalendarDaysOut:
    """某年每一天（含指定行政区及其上级的本地调整）。"""
    view = rules_service.year_view(db, year, scope or None)
    return schemas.CalendarDaysOut(
        year=view.year, scope=scope, known=view.known, days=[_day_out(d) for d in view.days]
    )


@router.put("/calendar/days/{day}", response_model=schemas.CalendarDayOut)
def put_calendar_day(
    day: date, body: schemas.DayIn, db: DbSession, principal: CalendarManager
) -> schemas.CalendarDayOut:
    """设置某一天的类型（全国日历，或 scope 指定行政区的本地调整）。"""
    rules_service.set_day(db, principal, day, body.kind, body.name, scope=body.scope)
    cal = rules_service.calendar_for(
        db, rules_service.jurisdiction_by_code(db, body.scope) if body.scope else None
    )
    return _day_out(cal.info(day))


@router.post("/calendar/import", response_model=schemas.ImportOut)
def import_calendar(
    db: DbSession,
    principal: CalendarManager,
    file: Annotated[UploadFile, File(description="CSV：日期,类型,名称（UTF-8 或 GB18030）")],
    scope: Annotated[str, Form(pattern=schemas.SCOPE_PATTERN)] = "",
) -> schemas.ImportOut:
    """导入一个年度的工作日历 CSV（不超过 1 MB）。"""
    content = file.file.read(rules_service.MAX_CSV_BYTES + 1)
    result = rules_service.import_year_csv(db, principal, content, scope=scope)
    return schemas.ImportOut(
        year=result.year,
        scope=result.scope,
        days_listed=result.days_listed,
        holidays=result.holidays,
        adjusted_workdays=result.adjusted_workdays,
    )


@router.get("/calendar/due", response_model=schemas.DueOut)
def calendar_due(
    db: DbSession,
    _p: CalendarReader,
    received: Annotated[date, Query(alias="from", description="收到日期（当日不计）")],
    days: Annotated[int, Query(ge=0, le=365, description="工作日数")],
    jurisdiction: Annotated[str | None, Query(pattern=schemas.SCOPE_PATTERN)] = None,
) -> schemas.DueOut:
    """计算期限：收到之日不计，自次日起第 N 个工作日。跨入未导入年度的结果标为 provisional。"""
    return _due_out(rules_service.due_date(db, received, days, jurisdiction or None))
