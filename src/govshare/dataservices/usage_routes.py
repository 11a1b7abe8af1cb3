"""The usage ledger (使用台账) and call statistics, in the JSON API and the pages.

API (under /api/v1): ``GET /dataservices/ledger`` (one page, newest first),
``GET /dataservices/ledger.csv`` (the whole filtered ledger, streamed) and
``GET /dataservices/stats``. Pages: ``/dataservices/ledger`` and ``/dataservices/stats``.
Who sees which calls is decided by :mod:`govshare.dataservices.usage`.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.dataservices import usage
from govshare.dataservices.models import CallMethod, CallOutcome, DataService
from govshare.db import china_today
from govshare.deps import DbSession, require
from govshare.errors import DomainError, PermissionDenied, ValidationFailed
from govshare.orgs.models import Department
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.web import FormDict, redirect, render

api_router = APIRouter(tags=["dataservices"])
page_router = APIRouter()

LedgerReader = Annotated[Principal, Depends(require(Perm.LEDGER_READ))]
StatsReader = Annotated[Principal, Depends(require(Perm.STATS_READ))]
#: tracing a subject is the data authority's supervision (seed 004 art. 18)
Tracer = Annotated[Principal, Depends(require(Perm.SHARE_CHECK))]

_VIEW_HELP = (
    "查看范围：consumer 本部门调用（默认）；provider 本部门数据被使用；"
    "authority 监督追溯（数据主管部门：辖区及下级的全部调用）"
)


def _common(
    view: str,
    since: str,
    until: str,
    service_id: str,
    grant_id: str,
    consumer_department_id: str,
    provider_department_id: str,
    method: str,
    outcome: str,
) -> dict[str, str]:
    return {
        "view": view,
        "since": since,
        "until": until,
        "service_id": service_id,
        "grant_id": grant_id,
        "consumer_department_id": consumer_department_id,
        "provider_department_id": provider_department_id,
        "method": method,
        "outcome": outcome,
    }


def ledger_params(
    view: Annotated[str, Query(description=_VIEW_HELP)] = "",
    since: Annotated[str, Query(description="起始日期（北京时间），YYYY-MM-DD")] = "",
    until: Annotated[str, Query(description="截止日期（北京时间），YYYY-MM-DD")] = "",
    service_id: Annotated[str, Query(description="共享服务编号")] = "",
    grant_id: Annotated[str, Query(description="共享授权编号")] = "",
    consumer_department_id: Annotated[str, Query(description="使用部门编号")] = "",
    provider_department_id: Annotated[str, Query(description="提供部门编号")] = "",
    method: Annotated[str, Query(description="调用方式：query、verification、batch")] = "",
    outcome: Annotated[
        str, Query(description="调用结果：ok、not_found、refused、limited、error")
    ] = "",
    user: Annotated[str, Query(description="经办人（包含此文字）")] = "",
    call_id: Annotated[str, Query(description="调用编号")] = "",
    subject: Annotated[
        str,
        Query(
            description="按主体追溯：身份证号码或统一社会信用代码（仅数据主管部门，记入审计日志）"
        ),
    ] = "",
    subject_hash: Annotated[str, Query(description="按主体追溯：主体标识摘要（32 位）")] = "",
) -> dict[str, str]:
    params = _common(
        view,
        since,
        until,
        service_id,
        grant_id,
        consumer_department_id,
        provider_department_id,
        method,
        outcome,
    )
    return params | {
        "user": user,
        "call_id": call_id,
        "subject": subject,
        "subject_hash": subject_hash,
    }


def stats_params(
    view: Annotated[str, Query(description=_VIEW_HELP)] = "",
    days: Annotated[str, Query(description="统计最近多少天（默认 30，不给起止日期时使用）")] = "",
    since: Annotated[str, Query(description="起始日期（北京时间），YYYY-MM-DD")] = "",
    until: Annotated[str, Query(description="截止日期（北京时间），YYYY-MM-DD，默认今天")] = "",
    service_id: Annotated[str, Query(description="共享服务编号")] = "",
    grant_id: Annotated[str, Query(description="共享授权编号")] = "",
    consumer_department_id: Annotated[str, Query(description="使用部门编号")] = "",
    provider_department_id: Annotated[str, Query(description="提供部门编号")] = "",
    method: Annotated[str, Query(description="调用方式：query、verification、batch")] = "",
    outcome: Annotated[
        str, Query(description="调用结果：ok、not_found、refused、limited、error")
    ] = "",
) -> dict[str, str]:
    params = _common(
        view,
        since,
        until,
        service_id,
        grant_id,
        consumer_department_id,
        provider_department_id,
        method,
        outcome,
    )
    return params | {"days": days}


LedgerParams = Annotated[dict[str, str], Depends(ledger_params)]
StatsParams = Annotated[dict[str, str], Depends(stats_params)]


# ---------------------------------------------------------------- API models


class CallOut(BaseModel):
    id: int
    call_id: str
    occurred_at: str
    day: str
    service_id: int | None
    service: str
    entry_id: int | None
    grant_id: int | None
    provider_department_id: int | None
    provider: str
    consumer_department_id: int
    consumer: str
    credential_id: int | None
    calling_system: str
    calling_user: str
    purpose: str
    scenario: str
    approved_by: str
    method: str
    method_label: str
    outcome: str
    outcome_label: str
    items: list[str]
    item_names: list[str]
    subject_count: int
    subjects: list[str]
    volume: int
    export_id: int | None
    reason: str
    ip: str


class LedgerOut(BaseModel):
    view: str
    filters: dict[str, str]
    per_page: int
    items: list[CallOut]
    #: pass as ``before`` for the next (older) page; null on the last page
    next_before: int | None


class GroupOut(BaseModel):
    key: str | int | None
    label: str
    calls: int
    ok: int
    not_found: int
    refused: int
    limited: int
    error: int
    volume: int
    per_day: float


class DayOut(BaseModel):
    day: str
    calls: int
    by_method: dict[str, int]


class StatsOut(BaseModel):
    view: str
    filters: dict[str, str]
    since: str
    until: str
    days: int
    calls: int
    ok: int
    not_found: int
    refused: int
    limited: int
    error: int
    volume: int
    subjects: int
    per_day: float
    by_method: list[GroupOut]
    by_outcome: list[GroupOut]
    by_service: list[GroupOut]
    by_consumer: list[GroupOut]
    by_provider: list[GroupOut]
    by_scenario: list[GroupOut]
    daily: list[DayOut]


# ---------------------------------------------------------------- API


@api_router.get(
    "/dataservices/ledger",
    summary="使用台账：共享服务调用记录（最新在前，每页 50 条）",
    response_model=LedgerOut,
)
def ledger_api(
    db: DbSession,
    principal: LedgerReader,
    params: LedgerParams,
    before: Annotated[
        int | None, Query(ge=1, description="上一页返回的 next_before：取更早的一页")
    ] = None,
) -> dict[str, Any]:
    """本部门的调用（使用方）、本部门数据被谁使用（提供方），或数据主管部门对辖区内
    全部调用的监督追溯。每条记录含用途、调用系统和经办人、授权审批人、返回的信息项、
    主体标识摘要（不含主体标识本身）、时间、方式、结果和数据量。"""
    f = usage.parse_filter(principal, params)
    page = usage.list_calls(db, principal, f, before=before)
    return {
        "view": f.view.value,
        "filters": f.params(),
        "per_page": page.per_page,
        "items": [r.out() for r in page.rows],
        "next_before": page.next_before,
    }


@api_router.get(
    "/dataservices/ledger.csv",
    summary="导出使用台账（CSV，UTF-8 带 BOM）",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "CSV 文件"}},
)
def ledger_csv(db: DbSession, principal: LedgerReader, params: LedgerParams) -> Response:
    """按筛选条件导出全部调用记录（最新在前），逐批读取、边读边发送。导出记入审计日志。"""
    f = usage.parse_filter(principal, params)
    query = usage.export_query(db, principal, f)
    usage.record_export(db, principal, f)
    name = f"usage-ledger-{f.view.value}-{china_today():%Y%m%d}.csv"
    return StreamingResponse(
        usage.csv_chunks(db.get_bind(), query),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@api_router.get(
    "/dataservices/stats",
    summary="调用统计：按方式、结果、服务、部门、场景和日期",
    response_model=StatsOut,
)
def stats_api(db: DbSession, principal: StatsReader, params: StatsParams) -> dict[str, Any]:
    """统计期间（默认最近 30 天）内的调用次数、结果、数据量和日均调用（频次），按调用方式、
    共享服务、使用部门、提供部门、应用场景和日期分组：掌握调用类型、数量、频次和应用场景
    （夏“放管服”组办〔2021〕12号 第四部分（四））。"""
    f = usage.parse_filter(principal, params, stats=True)
    return usage.statistics(db, principal, f).out()


# ---------------------------------------------------------------- pages


def _service_options(db: Session) -> list[tuple[int, str]]:
    rows = db.execute(select(DataService.id, DataService.name).order_by(DataService.name))
    return [(i, n) for i, n in rows]


def _department_options(db: Session) -> list[tuple[int, str]]:
    rows = db.execute(
        select(Department.id, Department.name)
        .where(Department.is_active.is_(True))
        .order_by(Department.jurisdiction_id, Department.name)
    )
    return [(i, n) for i, n in rows]


def _options() -> dict[str, Any]:
    return {
        "method_options": [(m.value, m.label) for m in CallMethod],
        "outcome_options": [(o.value, o.label) for o in CallOutcome],
    }


def _url(path: str, params: dict[str, str]) -> str:
    return f"{path}?{urlencode(params)}"


def _ledger_ctx(
    db: Session,
    principal: Principal,
    f: usage.LedgerFilter,
    page: usage.LedgerPage | None,
) -> dict[str, Any]:
    params = f.params()
    views = usage.ledger_views(principal)
    ctx: dict[str, Any] = {
        "views": views,
        "view": f.view,
        "f": f,
        "page": page,
        "rows": page.rows if page else [],
        "may_trace": usage.View.AUTHORITY in views,
        "export_url": _url("/api/v1/dataservices/ledger.csv", params),
        "base_url": _url("/dataservices/ledger", params),
        "next_url": (
            _url("/dataservices/ledger", params | {"before": str(page.next_before)})
            if page and page.next_before
            else ""
        ),
        "service_options": _service_options(db),
        "department_options": _department_options(db),
    }
    return ctx | _options()


def _wants_table(request: Request) -> bool:
    return request.headers.get("hx-target") == "ledger-table" and not request.headers.get(
        "hx-history-restore-request"
    )


def _ledger_error_page(
    request: Request,
    db: Session,
    principal: Principal,
    exc: DomainError,
    view: usage.View | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    allowed = usage.ledger_views(principal)
    f = usage.LedgerFilter(
        view=view if view in allowed else usage.choose_view(principal, "", allowed)
    )
    ctx = _ledger_ctx(db, principal, f, None) | {
        "error": exc.message,
        "error_field": exc.field,
    }
    return render(
        request,
        "dataservices/ledger.html",
        ctx | (extra or {}),
        status_code=exc.status_code,
        section="ds_ledger",
    )


@page_router.get("/dataservices/ledger", response_class=HTMLResponse)
def ledger_page(request: Request, db: DbSession, principal: LedgerReader) -> Response:
    raw = dict(request.query_params)
    try:
        f = usage.parse_filter(principal, raw)
        before = raw.get("before", "").strip()
        if before and not before.isdigit():
            raise ValidationFailed("页码：应为正整数", field="before")
        page = usage.list_calls(db, principal, f, before=int(before) if before else None)
    except ValidationFailed as exc:
        requested = raw.get("view", "")
        view = usage.View(requested) if requested in set(usage.View) else None
        return _ledger_error_page(request, db, principal, exc, view)
    ctx = _ledger_ctx(db, principal, f, page)
    template = (
        "dataservices/_ledger_table.html" if _wants_table(request) else "dataservices/ledger.html"
    )
    return render(request, template, ctx, section="ds_ledger")


@page_router.post("/dataservices/ledger/trace", response_class=HTMLResponse)
def ledger_trace(request: Request, db: DbSession, principal: Tracer, form: FormDict) -> Response:
    """The trace box: the key is hashed here and never put in a link; the listing it
    redirects to is audited as a trace."""
    subject = form.get("subject", "").strip()
    try:
        if not usage.may_trace(principal):
            raise PermissionDenied("只有数据主管部门可以按主体追溯共享数据的使用")
        if not subject:
            raise ValidationFailed("请填写要追溯的身份证号码或统一社会信用代码", field="subject")
        f = usage.parse_filter(
            principal,
            {
                "view": usage.View.AUTHORITY.value,
                "since": form.get("since", ""),
                "until": form.get("until", ""),
                "subject": subject,
            },
        )
    except ValidationFailed as exc:
        return _ledger_error_page(
            request, db, principal, exc, usage.View.AUTHORITY, {"trace_form": form}
        )
    return redirect(_url("/dataservices/ledger", f.params()))


def _stats_ctx(db: Session, principal: Principal, f: usage.LedgerFilter) -> dict[str, Any]:
    stats = usage.statistics(db, principal, f)
    params = f.params()
    return {
        "views": usage.stats_views(principal),
        "view": f.view,
        "f": f,
        "stats": stats,
        "chart": stats.chart(),
        "periods": usage.STATS_PERIODS,
        "ledger_url": (
            _url("/dataservices/ledger", params)
            if principal.can(Perm.LEDGER_READ) and f.view in usage.ledger_views(principal)
            else ""
        ),
        "service_options": _service_options(db),
        "department_options": _department_options(db),
    } | _options()


@page_router.get("/dataservices/stats", response_class=HTMLResponse)
def stats_page(request: Request, db: DbSession, principal: StatsReader) -> Response:
    raw = dict(request.query_params)
    error: DomainError | None = None
    try:
        f = usage.parse_filter(principal, raw, stats=True)
    except ValidationFailed as exc:
        error = exc
        requested = raw.get("view", "")
        keep = {"view": requested} if requested in set(usage.View) else {}
        f = usage.parse_filter(principal, keep, stats=True)
    ctx = _stats_ctx(db, principal, f)
    if error is not None:
        ctx |= {"error": error.message, "error_field": error.field}
    custom = error is None and bool(raw.get("since"))
    ctx["days_param"] = "" if custom else (raw.get("days") if error is None else "") or "30"
    return render(
        request,
        "dataservices/stats.html",
        ctx,
        status_code=error.status_code if error else 200,
        section="ds_stats",
    )
