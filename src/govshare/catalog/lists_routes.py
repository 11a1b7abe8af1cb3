"""JSON API and pages of the lists derived from the catalog: change events with their
clocks, the demand list, the supply–demand list and the responsibility list.

``api_router`` is mounted under ``/api/v1``; ``page_router`` serves the pages. Both call
the same functions in :mod:`govshare.catalog.lists`.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.catalog import lists
from govshare.catalog.models import (
    CatalogChangeEvent,
    ChangeTrigger,
    DemandStatus,
    VersionState,
)
from govshare.db import china_today
from govshare.deps import DbSession, require
from govshare.errors import DomainError
from govshare.orgs import repository as orgs_repo
from govshare.orgs.models import Department
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.web import FormDict, optional_int, parse_labeled, redirect, render

api_router = APIRouter(tags=["catalog"])
page_router = APIRouter()

ListReader = Annotated[Principal, Depends(require(Perm.CATALOG_LISTS))]
ChangeRecorder = Annotated[Principal, Depends(require(Perm.CATALOG_CHANGE_RECORD))]
DemandFiler = Annotated[Principal, Depends(require(Perm.DEMAND_FILE))]
DemandMatcher = Annotated[Principal, Depends(require(Perm.DEMAND_MATCH))]

PAGE_ROWS = 500
M = TypeVar("M", bound=BaseModel)


# ---------------------------------------------------------------- form helpers


async def _multi_form(request: Request) -> dict[str, list[str]]:
    """Every value of every form field (checkbox groups send one field many times)."""
    form = await request.form()
    out: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if isinstance(value, str) and key != "csrf_token":
            out.setdefault(key, []).append(value)
    return out


MultiForm = Annotated[dict[str, list[str]], Depends(_multi_form)]


def parse(model: type[M], data: dict[str, Any]) -> M:
    """An input model from form fields, with this module's fields named in Chinese."""
    return parse_labeled(model, data, lists.FIELD_LABELS)


def _error_ctx(exc: DomainError, form: dict[str, str]) -> dict[str, Any]:
    return {"error": exc.message, "error_field": exc.field, "form": form}


def _department_options(session: Session, principal: Principal) -> list[tuple[int, str]]:
    return [
        (d.id, f"{d.jurisdiction.name} · {d.name}")
        for d in orgs_repo.list_departments(session, principal)
    ]


def _recordable_departments(session: Session, principal: Principal) -> list[tuple[int, str]]:
    """Departments the principal may record a change event for."""
    if not principal.can(Perm.CATALOG_CHANGE_RECORD):
        return []
    if principal.can(Perm.CATALOG_REVIEW):
        scope = lists.visible_to(session, principal, Perm.CATALOG_REVIEW)
        rows = session.scalars(
            select(Department)
            .where(scope.clause(Department.id))
            .where(Department.is_active.is_(True))
            .order_by(Department.jurisdiction_id, Department.name)
        )
        return [(d.id, f"{d.jurisdiction.name} · {d.name}") for d in rows]
    if principal.department_id is None:
        return []
    d = session.get(Department, principal.department_id)
    return [(d.id, d.name)] if d else []


# ================================================================ JSON API


@api_router.get("/catalog/changes", response_model=list[lists.ChangeOut])
def api_list_changes(
    db: DbSession, principal: ListReader, open_only: bool = False
) -> list[lists.ChangeOut]:
    """变更事项（法律法规修订、职能变更）及其更新目录的时限：本部门的，或数据主管部门辖区内的。"""
    return lists.list_changes(db, principal, open_only)


@api_router.post("/catalog/changes", response_model=lists.ChangeOut, status_code=201)
def api_record_change(
    db: DbSession, principal: ChangeRecorder, data: lists.ChangeIn
) -> lists.ChangeOut:
    """登记变更事项；截止日期按本级规则（如《南阳市政务数据共享管理暂行办法》第二十二条：5个工作日）计算。"""
    event = lists.record_change(
        db, principal, data.department_id, data.trigger, data.description, data.occurred_on
    )
    return lists.change_out(db, event)


@api_router.post("/catalog/changes/{event_id}/resolve", response_model=lists.ChangeOut)
def api_resolve_change(
    db: DbSession, principal: ChangeRecorder, event_id: int, data: lists.ResolveIn
) -> lists.ChangeOut:
    """办结变更事项：部门关联为此提交的目录版本，或数据主管部门写明理由直接办结。"""
    event = lists.resolve_change(db, principal, event_id, data.resolution, data.version_ids)
    return lists.change_out(db, event)


@api_router.get("/catalog/demands", response_model=list[lists.DemandOut])
def api_list_demands(
    db: DbSession,
    principal: ListReader,
    status: Annotated[DemandStatus | None, Query()] = None,
) -> list[lists.DemandOut]:
    """需求清单：本部门提出的，或数据主管部门辖区内的。"""
    return [lists.demand_out(db, d) for d in lists.list_demands(db, principal, status)]


@api_router.post("/catalog/demands", response_model=lists.DemandOut, status_code=201)
def api_file_demand(db: DbSession, principal: DemandFiler, data: lists.DemandIn) -> lists.DemandOut:
    """提出数据需求（《南阳市政务数据共享管理暂行办法》第十九条）。"""
    demand = lists.file_demand(
        db,
        principal,
        data.title,
        data.description,
        data.data_items,
        data.scenario,
        data.basis,
        data.expected_provider_id,
    )
    return lists.demand_out(db, demand)


@api_router.patch("/catalog/demands/{demand_id}", response_model=lists.DemandOut)
def api_update_demand(
    db: DbSession, principal: DemandFiler, demand_id: int, data: lists.DemandUpdate
) -> lists.DemandOut:
    """修改本部门尚未对接的数据需求。"""
    return lists.demand_out(db, lists.update_demand(db, principal, demand_id, data))


@api_router.post("/catalog/demands/{demand_id}/close", response_model=lists.DemandOut)
def api_close_demand(
    db: DbSession, principal: DemandFiler, demand_id: int, data: lists.CloseIn
) -> lists.DemandOut:
    """关闭数据需求（提出部门或数据主管部门，须写明原因）。"""
    return lists.demand_out(db, lists.close_demand(db, principal, demand_id, data.reason))


@api_router.post("/catalog/demands/{demand_id}/match", response_model=lists.DemandOut)
def api_match_demand(
    db: DbSession, principal: DemandMatcher, demand_id: int, data: lists.MatchIn
) -> lists.DemandOut:
    """数据主管部门将需求与已发布的目录资源对接。"""
    ids = list(data.entry_ids) + lists.entry_ids_for_codes(db, data.entry_codes)
    return lists.demand_out(db, lists.match_demand(db, principal, demand_id, ids, data.note))


@api_router.get("/catalog/demands/{demand_id}/suggestions", response_model=list[lists.Suggestion])
def api_demand_suggestions(
    db: DbSession, principal: ListReader, demand_id: int
) -> list[lists.Suggestion]:
    """候选资源：信息项名称或需求名称关键词出现在已发布资源中的（不含需求部门自己的资源）。"""
    return lists.suggestions_for(db, principal, demand_id)


@api_router.get("/catalog/lists/supply-demand", response_model=lists.SupplyDemandList)
def api_supply_demand(db: DbSession, principal: ListReader) -> lists.SupplyDemandList:
    """供需对接清单：已对接的资源、候选资源，或缺口。"""
    return lists.supply_demand_list(db, principal)


@api_router.get("/catalog/lists/responsibility", response_model=list[lists.ResponsibilityRow])
def api_responsibility(
    db: DbSession, principal: ListReader, department_id: int | None = None
) -> list[lists.ResponsibilityRow]:
    """责任清单（《南阳市政务数据共享管理暂行办法》第二十一条）：各部门须采集汇聚的信息项与更新周期。"""
    return lists.responsibility_list(db, principal, department_id)


# ================================================================ pages

# ---------------------------------------------------------------- change events


def _changes_page(
    request: Request,
    db: Session,
    principal: Principal,
    *,
    open_only: bool = False,
    extra: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    rows = lists.list_changes(db, principal, open_only)
    events: dict[int, CatalogChangeEvent] = {}
    for r in rows:
        event = db.get(CatalogChangeEvent, r.id)
        if event is not None and r.status == "open":
            events[r.id] = event
    resolvable = {eid for eid, e in events.items() if lists.may_resolve(db, principal, e)}
    candidates = {eid: lists.candidate_versions(db, events[eid]) for eid in resolvable}
    closable = {eid for eid in resolvable if lists.may_close_change(db, principal, events[eid])}
    rule = None
    if principal.department_id is not None:
        own = db.get(Department, principal.department_id)
        if own is not None:
            rule = lists.update_rule(db, own)
    ctx: dict[str, Any] = {
        "rows": rows,
        "open_only": open_only,
        "resolvable": resolvable,
        "candidates": candidates,
        "closable": closable,
        "state_labels": {s.value: s.label for s in VersionState},
        "department_options": _recordable_departments(db, principal),
        "trigger_options": [(t.value, t.label) for t in ChangeTrigger],
        "rule": rule,
        "today": china_today(),
        "overdue": sum(1 for r in rows if r.overdue),
        "open_count": sum(1 for r in rows if r.status == "open"),
        "form": {},
    }
    ctx.update(extra or {})
    return render(
        request, "catalog/changes_list.html", ctx, status_code=status, section="catalog_changes"
    )


@page_router.get("/catalog/changes", response_class=HTMLResponse)
def changes_page(
    request: Request, db: DbSession, principal: ListReader, open_only: int = 0
) -> Response:
    return _changes_page(request, db, principal, open_only=bool(open_only))


@page_router.post("/catalog/changes", response_class=HTMLResponse)
def changes_record(
    request: Request, db: DbSession, principal: ChangeRecorder, form: FormDict
) -> Response:
    try:
        data = parse(lists.ChangeIn, dict(form))
        event = lists.record_change(
            db, principal, data.department_id, data.trigger, data.description, data.occurred_on
        )
        due = event.due.isoformat() + ("（临时）" if event.due_provisional else "")
    except DomainError as exc:
        db.rollback()
        return _changes_page(
            request, db, principal, extra=_error_ctx(exc, form), status=exc.status_code
        )
    return redirect("/catalog/changes", f"已登记变更事项，须在 {due} 前提交目录更新")


@page_router.post("/catalog/changes/{event_id}/resolve", response_class=HTMLResponse)
def changes_resolve(
    request: Request,
    db: DbSession,
    principal: ChangeRecorder,
    event_id: int,
    form: FormDict,
    multi: MultiForm,
) -> Response:
    try:
        lists.get_change(db, principal, event_id)
        data = parse(
            lists.ResolveIn,
            {"resolution": form.get("resolution", ""), "version_ids": multi.get("version_ids", [])},
        )
        lists.resolve_change(db, principal, event_id, data.resolution, data.version_ids)
    except DomainError as exc:
        db.rollback()
        if exc.status_code == 404:
            raise
        ctx = _error_ctx(exc, form) | {"error_event": event_id}
        return _changes_page(request, db, principal, extra=ctx, status=exc.status_code)
    return redirect("/catalog/changes", "变更事项已办结")


# ---------------------------------------------------------------- demands


def _demands_page(
    request: Request,
    db: Session,
    principal: Principal,
    *,
    status: str = "",
    extra: dict[str, Any] | None = None,
    code: int = 200,
) -> Response:
    demands = lists.list_demands(db, principal, status or None)
    is_authority = principal.can(Perm.DEMAND_MATCH)
    own = [d for d in demands if d.department_id == principal.department_id]
    others = [d for d in demands if d.department_id != principal.department_id]
    suggestions = {
        d.id: lists.suggest_matches(db, d)
        for d in others
        if is_authority and d.status == DemandStatus.OPEN
    }
    ctx: dict[str, Any] = {
        "own": [lists.demand_out(db, d) for d in own],
        "others": [lists.demand_out(db, d) for d in others],
        "to_provide": [lists.demand_out(db, d) for d in lists.demands_to_provide(db, principal)],
        "suggestions": suggestions,
        "matchable": {d.id for d in others if lists.may_match(db, principal, d)},
        "is_authority": is_authority,
        "can_file": principal.can(Perm.DEMAND_FILE) and principal.department_id is not None,
        "provider_options": [
            o for o in _department_options(db, principal) if o[0] != principal.department_id
        ],
        "status": status,
        "status_options": [(s.value, s.label) for s in DemandStatus],
        "form": {},
    }
    ctx.update(extra or {})
    return render(
        request, "catalog/demands_list.html", ctx, status_code=code, section="catalog_demands"
    )


@page_router.get("/catalog/demands", response_class=HTMLResponse)
def demands_page(
    request: Request, db: DbSession, principal: ListReader, status: str = ""
) -> Response:
    if status not in {s.value for s in DemandStatus}:
        status = ""
    return _demands_page(request, db, principal, status=status)


def _demand_form(form: dict[str, str]) -> dict[str, Any]:
    return {k: v for k, v in form.items() if k in lists.DemandIn.model_fields}


@page_router.post("/catalog/demands", response_class=HTMLResponse)
def demands_file(
    request: Request, db: DbSession, principal: DemandFiler, form: FormDict
) -> Response:
    try:
        data = parse(lists.DemandIn, _demand_form(form))
        demand = lists.file_demand(
            db,
            principal,
            data.title,
            data.description,
            data.data_items,
            data.scenario,
            data.basis,
            data.expected_provider_id,
        )
    except DomainError as exc:
        db.rollback()
        return _demands_page(
            request, db, principal, extra=_error_ctx(exc, form), code=exc.status_code
        )
    return redirect(f"/catalog/demands/{demand.id}", f"已提出数据需求：{demand.title}")


def _demand_page(
    request: Request,
    db: Session,
    principal: Principal,
    demand_id: int,
    *,
    extra: dict[str, Any] | None = None,
    code: int = 200,
) -> Response:
    demand = lists.get_demand(db, principal, demand_id)
    row = lists.supply_demand_row(db, demand)
    may_match = lists.may_match(db, principal, demand)
    # candidates for the authority even once matched (to re-match)
    suggestions = row.suggestions or (lists.suggest_matches(db, demand) if may_match else [])
    ctx: dict[str, Any] = {
        "row": row,
        "d": row.demand,
        "suggestions": suggestions,
        "suggestion_ids": {s.entry_id for s in suggestions},
        "may_edit": principal.can(Perm.DEMAND_FILE)
        and principal.department_id == demand.department_id
        and demand.status == DemandStatus.OPEN,
        "may_close": lists.may_close(db, principal, demand)
        and demand.status != DemandStatus.CLOSED,
        "may_match": may_match and demand.status != DemandStatus.CLOSED,
        "provider_options": [
            o for o in _department_options(db, principal) if o[0] != demand.department_id
        ],
        "form": {},
    }
    ctx.update(extra or {})
    return render(
        request, "catalog/demands_detail.html", ctx, status_code=code, section="catalog_demands"
    )


@page_router.get("/catalog/demands/{demand_id}", response_class=HTMLResponse)
def demand_page(request: Request, db: DbSession, principal: ListReader, demand_id: int) -> Response:
    return _demand_page(request, db, principal, demand_id)


@page_router.post("/catalog/demands/{demand_id}", response_class=HTMLResponse)
def demand_update(
    request: Request, db: DbSession, principal: DemandFiler, demand_id: int, form: FormDict
) -> Response:
    try:
        lists.get_demand(db, principal, demand_id)
        data = parse(lists.DemandUpdate, _demand_form(form))
        # the edit form sends every field: a cleared optional field is a change
        cleared = {"description": "", "basis": "", "expected_provider_id": None}
        data = data.model_copy(
            update={k: v for k, v in cleared.items() if k not in data.model_fields_set}
        )
        lists.update_demand(db, principal, demand_id, data)
    except DomainError as exc:
        db.rollback()
        if exc.status_code == 404:
            raise
        return _demand_page(
            request, db, principal, demand_id, extra=_error_ctx(exc, form), code=exc.status_code
        )
    return redirect(f"/catalog/demands/{demand_id}", "已保存需求")


@page_router.post("/catalog/demands/{demand_id}/close", response_class=HTMLResponse)
def demand_close(
    request: Request, db: DbSession, principal: DemandFiler, demand_id: int, form: FormDict
) -> Response:
    try:
        lists.get_demand(db, principal, demand_id)
        data = parse(lists.CloseIn, {"reason": form.get("reason", "")})
        lists.close_demand(db, principal, demand_id, data.reason)
    except DomainError as exc:
        db.rollback()
        if exc.status_code == 404:
            raise
        return _demand_page(
            request, db, principal, demand_id, extra=_error_ctx(exc, form), code=exc.status_code
        )
    return redirect(f"/catalog/demands/{demand_id}", "需求已关闭")


@page_router.post("/catalog/demands/{demand_id}/match", response_class=HTMLResponse)
def demand_match(
    request: Request,
    db: DbSession,
    principal: DemandMatcher,
    demand_id: int,
    form: FormDict,
    multi: MultiForm,
) -> Response:
    try:
        lists.get_demand(db, principal, demand_id)
        data = parse(
            lists.MatchIn,
            {
                "entry_ids": multi.get("entry_ids", []),
                "entry_codes": form.get("entry_codes", ""),
                "note": form.get("note", ""),
            },
        )
        ids = list(data.entry_ids) + lists.entry_ids_for_codes(db, data.entry_codes)
        demand = lists.match_demand(db, principal, demand_id, ids, data.note)
    except DomainError as exc:
        db.rollback()
        if exc.status_code == 404:
            raise
        return _demand_page(
            request, db, principal, demand_id, extra=_error_ctx(exc, form), code=exc.status_code
        )
    back = form.get("back", "")
    url = back if back in ("/catalog/demands", "/catalog/lists/supply-demand") else None
    return redirect(url or f"/catalog/demands/{demand.id}", f"需求“{demand.title}”已对接")


# ---------------------------------------------------------------- derived lists


@page_router.get("/catalog/lists/supply-demand", response_class=HTMLResponse)
def supply_demand_page(
    request: Request, db: DbSession, principal: ListReader, state: str = ""
) -> Response:
    result = lists.supply_demand_list(db, principal)
    rows = [r for r in result.rows if not state or r.state == state]
    return render(
        request,
        "catalog/lists_supply_demand.html",
        {
            "result": result,
            "rows": rows,
            "state": state if state in ("matched", "suggested", "gap") else "",
            "is_authority": principal.can(Perm.DEMAND_MATCH),
        },
        section="catalog_supply",
    )


@page_router.get("/catalog/lists/responsibility", response_class=HTMLResponse)
def responsibility_page(
    request: Request, db: DbSession, principal: ListReader, department_id: str = ""
) -> Response:
    dept = optional_int(department_id, "department_id")
    rows = lists.responsibility_list(db, principal, dept)
    groups: dict[int, list[lists.ResponsibilityRow]] = {}
    for r in rows[:PAGE_ROWS]:
        groups.setdefault(r.department_id, []).append(r)
    return render(
        request,
        "catalog/lists_responsibility.html",
        {
            "groups": list(groups.values()),
            "total": len(rows),
            "truncated": len(rows) > PAGE_ROWS,
            "page_rows": PAGE_ROWS,
            "department_id": dept,
            "department_options": _department_options(db, principal),
            "csv_url": "/catalog/lists/responsibility.csv"
            + (f"?department_id={dept}" if dept else ""),
        },
        section="catalog_resp",
    )


@page_router.get("/catalog/lists/responsibility.csv")
def responsibility_csv(db: DbSession, principal: ListReader, department_id: str = "") -> Response:
    dept = optional_int(department_id, "department_id")
    body = lists.responsibility_csv(db, principal, dept)
    name = f"responsibility-{china_today():%Y%m%d}.csv"
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


__all__ = ["api_router", "page_router"]
