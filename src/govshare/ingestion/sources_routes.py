"""One data item, one source (一数一源): repeat-collection flags and conflicts.

``api_router`` is mounted under ``/api/v1``; ``page_router`` serves the pages under
``/ingestion/sources``. Both call the same functions in :mod:`govshare.ingestion.sources`
(seed 003 art. 24; seed 004 art. 7 and 15).
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.catalog import lists
from govshare.catalog.models import CatalogEntry
from govshare.db import china_today
from govshare.deps import DbSession, require
from govshare.errors import DomainError, NotFound
from govshare.ingestion import sources
from govshare.ingestion.source_models import ConflictStatus, ItemSource
from govshare.orgs.models import Department
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.web import FormDict, optional_int, parse_labeled, redirect, render

api_router = APIRouter(tags=["ingestion"])
page_router = APIRouter()

Reader = Annotated[Principal, Depends(require(Perm.SOURCE_READ))]
Manager = Annotated[Principal, Depends(require(Perm.SOURCE_MANAGE))]

PAGE_ROWS = 200
M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: dict[str, Any]) -> M:
    """An input model from form fields, with this module's fields named in Chinese."""
    return parse_labeled(model, data, sources.FIELD_LABELS)


def _designation_out(row: ItemSource | None, data: sources.DesignateIn) -> sources.DesignationOut:
    if row is None:
        return sources.DesignationOut(
            subject_kind=data.subject_kind,
            item_name=sources.normalise_name(data.item_name),
            role="default",
            source_entry_id=None,
            basis="",
            designated_by=None,
            designated_at=None,
        )
    return sources.DesignationOut(
        subject_kind=row.subject_kind,
        item_name=row.item_name,
        role=row.role,
        source_entry_id=row.source_entry_id,
        basis=row.basis,
        designated_by=row.designated_by,
        designated_at=row.designated_at,
    )


# ================================================================ JSON API


@api_router.get("/ingestion/sources/items", response_model=list[sources.ItemOut])
def api_items(db: DbSession, principal: Reader, item: str = "") -> list[sources.ItemOut]:
    """多个资源都含有的信息项及其数据来源（默认最早发布的资源，或数据主管部门指定）。"""
    return sources.list_items(db, principal, item=item)


@api_router.get("/ingestion/sources/flags", response_model=list[sources.FlagOut])
def api_flags(
    db: DbSession, principal: Reader, department_id: int | None = None
) -> list[sources.FlagOut]:
    """重复采集提示（《南阳市政务数据共享管理暂行办法》第二十四条、《内乡县政务信息资源共享管理办法（试行）》第七条）：他部门为来源、本资源却在汇聚的信息项。"""
    return sources.list_flags(db, principal, department_id=department_id)


@api_router.get("/ingestion/sources/summary", response_model=sources.SourceSummary)
def api_summary(db: DbSession, principal: Reader) -> sources.SourceSummary:
    """工作台摘要：重复采集数、待核实冲突数及前几项。"""
    return sources.dashboard_summary(db, principal)


@api_router.get("/ingestion/sources/advice/{entry_id}", response_model=list[sources.Advice])
def api_advice(db: DbSession, principal: Reader, entry_id: int) -> list[sources.Advice]:
    """向某资源汇聚数据前：哪些信息项应通过共享申请向来源部门获取。"""
    entry = lists.fetch(db, CatalogEntry, entry_id)
    if entry is None:
        raise NotFound("目录资源不存在")
    return sources.advice_for_entry(db, entry)


@api_router.post("/ingestion/sources/designations", response_model=sources.DesignationOut)
def api_designate(
    db: DbSession, principal: Manager, data: sources.DesignateIn
) -> sources.DesignationOut:
    """数据主管部门指定信息项的来源资源、标记共用标识项，或恢复默认。"""
    row = sources.designate(
        db,
        principal,
        data.subject_kind,
        data.item_name,
        data.action,
        data.source_entry_id,
        data.basis,
    )
    return _designation_out(row, data)


@api_router.get("/ingestion/sources/exemptions", response_model=list[sources.ExemptionOut])
def api_exemptions(db: DbSession, principal: Reader) -> list[sources.ExemptionOut]:
    """依法豁免的重复采集（法律法规另有规定的除外）。"""
    return sources.list_exemptions(db, principal)


@api_router.post(
    "/ingestion/sources/exemptions", response_model=sources.ExemptionOut, status_code=201
)
def api_grant_exemption(
    db: DbSession, principal: Manager, data: sources.ExemptionIn
) -> sources.ExemptionOut:
    """依法律法规规定，允许某资源自行采集他部门为来源的信息项（须写明依据）。"""
    row = sources.grant_exemption(db, principal, data.entry_id, data.item_name, data.basis)
    return sources.exemption_out(db, principal, row)


@api_router.post("/ingestion/sources/exemptions/{exemption_id}/revoke", status_code=204)
def api_revoke_exemption(db: DbSession, principal: Manager, exemption_id: int) -> Response:
    """撤销豁免。"""
    sources.revoke_exemption(db, principal, exemption_id)
    return Response(status_code=204)


@api_router.post("/ingestion/sources/detect", response_model=sources.DetectionResult)
def api_detect(
    db: DbSession, principal: Manager, data: sources.DetectIn
) -> sources.DetectionResult:
    """比对来源部门与重复采集部门的数据，更新冲突清单（《内乡县政务信息资源共享管理办法（试行）》第十五条）。"""
    ids = set(data.entry_ids) if data.entry_ids is not None else None
    return sources.detect(db, principal, ids)


@api_router.get("/ingestion/sources/conflicts", response_model=sources.ConflictPage)
def api_conflicts(
    db: DbSession,
    principal: Reader,
    status: Annotated[ConflictStatus | None, Query()] = None,
    department_id: int | None = None,
    item: str = "",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> sources.ConflictPage:
    """数据冲突清单：同一主体同一信息项，来源部门与其他部门的数据不一致。"""
    return sources.list_conflicts(
        db,
        principal,
        status=status.value if status else None,
        department_id=department_id,
        item=item,
        limit=limit,
        offset=offset,
    )


@api_router.post(
    "/ingestion/sources/conflicts/{conflict_id}/resolve", response_model=sources.ConflictOut
)
def api_resolve(
    db: DbSession, principal: Manager, conflict_id: int, data: sources.ResolveIn
) -> sources.ConflictOut:
    """数据主管部门会同有关部门核实后，写明处理意见（如：以某部门数据为准，已通知某部门更正）。"""
    conflict = sources.resolve_conflict(db, principal, conflict_id, data.note)
    return sources.conflict_out(db, conflict)


# ================================================================ pages


def _sources_page(
    request: Request,
    db: Session,
    principal: Principal,
    *,
    item: str = "",
    extra: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    items = sources.list_items(db, principal, item=item)
    flags = sources.list_flags(db, principal)
    own = [f for f in flags if f.department_id == principal.department_id]
    ctx: dict[str, Any] = {
        "items": items,
        "flags": flags,
        "own_flags": own,
        "exemptions": sources.list_exemptions(db, principal),
        "item": item,
        "can_manage": principal.can(Perm.SOURCE_MANAGE),
        "kind_options": [("person", "自然人"), ("organization", "法人和其他组织")],
        "cite": sources.CITE,
        "form": {},
    }
    ctx.update(extra or {})
    return render(
        request, "ingestion/sources.html", ctx, status_code=status, section="ingestion_sources"
    )


@page_router.get("/ingestion/sources", response_class=HTMLResponse)
def sources_page(request: Request, db: DbSession, principal: Reader, item: str = "") -> Response:
    return _sources_page(request, db, principal, item=item[:64])


def _error_ctx(exc: DomainError, form: dict[str, str], where: str) -> dict[str, Any]:
    return {"error": exc.message, "error_field": exc.field, "form": form, "error_where": where}


@page_router.post("/ingestion/sources/designate", response_class=HTMLResponse)
def sources_designate(
    request: Request, db: DbSession, principal: Manager, form: FormDict
) -> Response:
    try:
        data = parse(sources.DesignateIn, dict(form))
        sources.designate(
            db,
            principal,
            data.subject_kind,
            data.item_name,
            data.action,
            data.source_entry_id,
            data.basis,
        )
    except DomainError as exc:
        db.rollback()
        return _sources_page(
            request,
            db,
            principal,
            extra=_error_ctx(exc, form, form.get("item_name", "")),
            status=exc.status_code,
        )
    done = {
        "source": "已指定来源",
        "identifying": "已标记为共用标识项",
        "default": "已恢复默认来源",
    }
    return redirect("/ingestion/sources", f"{data.item_name}：{done[data.action]}")


@page_router.post("/ingestion/sources/exemptions", response_class=HTMLResponse)
def sources_exempt(request: Request, db: DbSession, principal: Manager, form: FormDict) -> Response:
    try:
        data = parse(sources.ExemptionIn, dict(form))
        sources.grant_exemption(db, principal, data.entry_id, data.item_name, data.basis)
    except DomainError as exc:
        db.rollback()
        where = f"exempt-{form.get('entry_id', '')}-{form.get('item_name', '')}"
        return _sources_page(
            request, db, principal, extra=_error_ctx(exc, form, where), status=exc.status_code
        )
    return redirect("/ingestion/sources", f"{data.item_name}：已依法豁免")


@page_router.post(
    "/ingestion/sources/exemptions/{exemption_id}/revoke", response_class=HTMLResponse
)
def sources_unexempt(
    request: Request, db: DbSession, principal: Manager, exemption_id: int
) -> Response:
    sources.revoke_exemption(db, principal, exemption_id)
    return redirect("/ingestion/sources", "已撤销豁免")


@page_router.post("/ingestion/sources/detect", response_class=HTMLResponse)
def sources_detect(request: Request, db: DbSession, principal: Manager) -> Response:
    result = sources.detect(db, principal)
    message = (
        f"核验 {result.pairs_checked} 组重复采集：新发现 {result.opened} 项冲突，"
        f"重新打开 {result.reopened} 项，更新 {result.updated} 项，自动关闭 {result.closed} 项"
    )
    if result.pairs_skipped:
        message += f"；{len(result.pairs_skipped)} 组因数据类型不同未比对"
    if result.pairs_truncated:
        cap = sources.CONFLICT_CAP
        message += f"；{len(result.pairs_truncated)} 组超过 {cap} 项，仅保存前 {cap} 项"
    return redirect("/ingestion/sources/conflicts", message)


def _filters(status: str, department_id: str, item: str) -> tuple[str | None, int | None, str]:
    st = status if status in {s.value for s in ConflictStatus} else None
    try:
        dept = int(department_id) if department_id else None
    except ValueError:
        dept = None
    return st, dept, item.strip()[:64]


def _department_options(db: Session, principal: Principal) -> list[tuple[int, str]]:
    scope = lists.visible_to(db, principal, Perm.SOURCE_MANAGE)
    rows = db.scalars(
        select(Department).where(scope.clause(Department.id)).order_by(Department.name)
    )
    return [(d.id, f"{d.jurisdiction.name} · {d.name}") for d in rows]


def _conflicts_page(
    request: Request,
    db: Session,
    principal: Principal,
    *,
    status: str = "open",
    department_id: str = "",
    item: str = "",
    page: int = 1,
    extra: dict[str, Any] | None = None,
    code: int = 200,
) -> Response:
    st, dept, name = _filters(status, department_id, item)
    page = max(1, min(page, 100_000))
    result = sources.list_conflicts(
        db,
        principal,
        status=st,
        department_id=dept,
        item=name,
        limit=PAGE_ROWS,
        offset=(page - 1) * PAGE_ROWS,
    )
    query = {"status": st or "", "department_id": dept or "", "item": name}
    ctx: dict[str, Any] = {
        "result": result,
        "status": st or "",
        "department_id": dept,
        "item": name,
        "page": page,
        "has_next": page * PAGE_ROWS < result.total,
        "base_url": "/ingestion/sources/conflicts?" + urlencode(query),
        "csv_url": "/ingestion/sources/conflicts.csv?" + urlencode(query),
        "status_options": [(s.value, s.label) for s in ConflictStatus],
        "department_options": _department_options(db, principal),
        "can_manage": principal.can(Perm.SOURCE_MANAGE),
        "cite": sources.CITE_CONFLICT,
        "form": {},
    }
    ctx.update(extra or {})
    return render(
        request,
        "ingestion/sources_conflicts.html",
        ctx,
        status_code=code,
        section="ingestion_sources",
    )


@page_router.get("/ingestion/sources/conflicts", response_class=HTMLResponse)
def conflicts_page(
    request: Request,
    db: DbSession,
    principal: Reader,
    status: str = "open",
    department_id: str = "",
    item: str = "",
    page: int = 1,
) -> Response:
    return _conflicts_page(
        request, db, principal, status=status, department_id=department_id, item=item, page=page
    )


@page_router.post("/ingestion/sources/conflicts/{conflict_id}/resolve", response_class=HTMLResponse)
def conflicts_resolve(
    request: Request, db: DbSession, principal: Manager, conflict_id: int, form: FormDict
) -> Response:
    try:
        data = parse(sources.ResolveIn, {"note": form.get("note", "")})
        sources.resolve_conflict(db, principal, conflict_id, data.note)
    except DomainError as exc:
        db.rollback()
        if exc.status_code in (403, 404):
            raise
        ctx = _error_ctx(exc, form, f"conflict-{conflict_id}")
        return _conflicts_page(request, db, principal, extra=ctx, code=exc.status_code)
    return redirect("/ingestion/sources/conflicts", "已记录处理意见")


@page_router.get("/ingestion/sources/conflicts.csv")
def conflicts_csv(
    db: DbSession, principal: Reader, status: str = "", department_id: str = "", item: str = ""
) -> Response:
    st, _dept, name = _filters(status, department_id, item)
    dept = optional_int(department_id, "department_id")
    body = sources.conflicts_csv(db, principal, status=st, department_id=dept, item=name)
    filename = f"source-conflicts-{china_today():%Y%m%d}.csv"
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


__all__ = ["api_router", "page_router"]
