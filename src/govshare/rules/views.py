"""Pages of the rules domain: rulebooks, their assignment, and the working-day calendar."""

from __future__ import annotations

import calendar as pycalendar
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from govshare.deps import DbSession, require
from govshare.errors import DomainError
from govshare.orgs import repository as orgs_repo
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.rules import schemas
from govshare.rules import service as rules_service
from govshare.rules.loader import registry
from govshare.rules.models import DAY_KIND_LABELS, DayKind
from govshare.rules.workdays import DayInfo
from govshare.web import FormDict, parse_form, redirect, render

router = APIRouter()

RulebookReader = Annotated[Principal, Depends(require(Perm.RULEBOOK_READ))]
RulebookAssigner = Annotated[Principal, Depends(require(Perm.RULEBOOK_ASSIGN))]
CalendarReader = Annotated[Principal, Depends(require(Perm.CALENDAR_READ))]
CalendarManager = Annotated[Principal, Depends(require(Perm.CALENDAR_MANAGE))]

WEEKDAYS = "一二三四五六日"
KIND_OPTIONS = [(k.value, label) for k, label in DAY_KIND_LABELS.items()]
CSS_BY_KIND = {
    DayKind.HOLIDAY.value: "cal-holiday",
    DayKind.ADJUSTED_WORKDAY.value: "cal-adjusted",
    DayKind.WEEKEND.value: "cal-weekend",
}


# ---------------------------------------------------------------- rulebooks


@router.get("/rules/rulebooks", response_class=HTMLResponse)
def rulebooks_page(request: Request, db: DbSession, principal: RulebookReader) -> Response:
    return render(
        request,
        "rules/rulebooks.html",
        {
            "usages": rules_service.rulebook_usage(db),
            "can_assign": principal.can(Perm.RULEBOOK_ASSIGN),
        },
        section="rulebooks",
    )


@router.get("/rules/rulebooks/{name}", response_class=HTMLResponse)
def rulebook_page(request: Request, name: str, _p: RulebookReader) -> Response:
    book = rules_service.get_rulebook(name)
    return render(
        request,
        "rules/rulebook.html",
        {"book": book, "sections": rules_service.describe_rulebook(book)},
        section="rulebooks",
    )


def _assign_page(
    request: Request,
    db: Session,
    code: str,
    *,
    selected: str | None = None,
    error: DomainError | None = None,
) -> Response:
    effective = rules_service.effective_for_code(db, code)
    jurisdiction = effective.lineage[-1]
    ctx: dict[str, Any] = {
        "jurisdiction": jurisdiction,
        "effective": effective,
        "options": [(n, f"{registry().get(n).title}（{n}）") for n in registry().names()],
        "selected": jurisdiction.rulebook if selected is None else selected,
    }
    if error is not None:
        ctx |= {"error": error.message, "error_field": error.field}
    return render(
        request,
        "rules/assign.html",
        ctx,
        status_code=error.status_code if error else 200,
        section="rulebooks",
    )


@router.get("/rules/jurisdictions/{code}/rulebook", response_class=HTMLResponse)
def assign_page(request: Request, code: str, db: DbSession, _p: RulebookAssigner) -> Response:
    return _assign_page(request, db, code)


@router.post("/rules/jurisdictions/{code}/rulebook", response_class=HTMLResponse)
def assign_submit(
    request: Request, code: str, db: DbSession, principal: RulebookAssigner, form: FormDict
) -> Response:
    jurisdiction = rules_service.jurisdiction_by_code(db, code)
    try:
        data = parse_form(schemas.RulebookAssign, form)
        rules_service.assign_rulebook(db, principal, jurisdiction, data.rulebook)
    except DomainError as exc:
        return _assign_page(request, db, code, selected=form.get("rulebook", ""), error=exc)
    what = f"规则 {data.rulebook}" if data.rulebook else "继承上级行政区的规则"
    return redirect(f"/rules/jurisdictions/{code}/rulebook", f"{jurisdiction.name}已改为{what}")


# ---------------------------------------------------------------- calendar


def _months(year: int, days: tuple[DayInfo, ...]) -> list[dict[str, Any]]:
    """Twelve month grids (weeks from Monday) of ``DayInfo`` or None for padding."""
    by_day = {d.day: d for d in days}
    cal = pycalendar.Calendar(firstweekday=0)
    return [
        {
            "month": month,
            "weeks": [
                [by_day[d] if d.month == month else None for d in week]
                for week in cal.monthdatescalendar(year, month)
            ],
        }
        for month in range(1, 13)
    ]


def _calendar_page(
    request: Request,
    db: Session,
    principal: Principal,
    *,
    year: int | None = None,
    scope: str = "",
    error: DomainError | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    today = date.today()
    year = year or today.year
    jurisdictions = orgs_repo.list_jurisdictions(db)
    if scope and not any(j.code == scope for j in jurisdictions):
        scope = ""
    view = rules_service.year_view(db, year, scope or None)
    known = rules_service.known_years(db)
    years = sorted({y.year for y in known} | {today.year - 1, today.year, today.year + 1, year})
    ctx: dict[str, Any] = {
        "view": view,
        "year": year,
        "scope": scope,
        "today": today,
        "months": _months(year, view.days),
        "known_years": known,
        "year_options": [(y, f"{y} 年") for y in years],
        "scope_options": [(j.code, f"{j.name}（{j.code}）") for j in jurisdictions],
        "kind_options": KIND_OPTIONS,
        "css": CSS_BY_KIND,
        "weekdays": WEEKDAYS,
        "can_manage": principal.can(Perm.CALENDAR_MANAGE),
        "warnings": rules_service.coverage_warnings(db, today)
        if principal.can(Perm.CALENDAR_MANAGE)
        else [],
        "form": form or {},
        "max_kb": rules_service.MAX_CSV_BYTES // 1000,
    }
    if error is not None:
        ctx |= {"error": error.message, "error_field": error.field}
        status_code = error.status_code
    return render(request, "rules/calendar.html", ctx, status_code=status_code, section="calendar")


def _query_int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


@router.get("/rules/calendar", response_class=HTMLResponse)
def calendar_page(request: Request, db: DbSession, principal: CalendarReader) -> Response:
    q = request.query_params
    year = _query_int(q.get("year"))
    if year is not None and not 1900 <= year <= 2999:
        year = None
    return _calendar_page(request, db, principal, year=year, scope=q.get("scope", ""))


@router.get("/rules/calendar/due", response_class=HTMLResponse)
def calendar_due_fragment(request: Request, db: DbSession, _p: CalendarReader) -> Response:
    """The due-date calculator's result (an HTMX fragment)."""
    try:
        data = parse_form(schemas.DueIn, dict(request.query_params))
        due = rules_service.due_date(db, data.received, data.days, data.jurisdiction)
    except DomainError as exc:
        return render(
            request, "rules/_due.html", {"error": exc.message}, status_code=exc.status_code
        )
    return render(request, "rules/_due.html", {"due": due})


@router.get("/rules/calendar/template.csv")
def calendar_template(_p: CalendarReader) -> Response:
    return Response(
        rules_service.template_csv(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="calendar-template.csv"'},
    )


@router.post("/rules/calendar/import", response_class=HTMLResponse)
def calendar_import(
    request: Request,
    db: DbSession,
    principal: CalendarManager,
    file: Annotated[UploadFile, File()],
    scope: Annotated[str, Form()] = "",
) -> Response:
    try:
        content = file.file.read(rules_service.MAX_CSV_BYTES + 1)
        result = rules_service.import_year_csv(db, principal, content, scope=scope)
    except DomainError as exc:
        return _calendar_page(request, db, principal, scope=scope, error=exc)
    where = f"（行政区 {result.scope} 的本地调整）" if result.scope else ""
    return redirect(
        f"/rules/calendar?year={result.year}" + (f"&scope={result.scope}" if result.scope else ""),
        f"已导入 {result.year} 年工作日历{where}：列出 {result.days_listed} 天，"
        f"其中节假日 {result.holidays} 天、调休上班 {result.adjusted_workdays} 天",
    )


@router.post("/rules/calendar/day", response_class=HTMLResponse)
def calendar_set_day(
    request: Request, db: DbSession, principal: CalendarManager, form: FormDict
) -> Response:
    try:
        data = parse_form(schemas.DayForm, form)
        row = rules_service.set_day(db, principal, data.day, data.kind, data.name, scope=data.scope)
    except DomainError as exc:
        year = rules_service.parse_day(form.get("day", ""))
        return _calendar_page(
            request,
            db,
            principal,
            year=year.year if year else None,
            scope=form.get("scope", ""),
            error=exc,
            form=form,
        )
    where = f"（行政区 {data.scope}）" if data.scope else ""
    return redirect(
        f"/rules/calendar?year={data.day.year}" + (f"&scope={data.scope}" if data.scope else ""),
        f"已将 {data.day.isoformat()}{where} 设为{DayKind(row.kind).label}"
        + (f"（{row.name}）" if row.name else ""),
    )
