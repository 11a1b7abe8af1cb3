"""Timeliness and quality of aggregated data: pages and JSON API.

``api_router`` is mounted under ``/api/v1``; ``page_router`` serves the pages. Both call
the same functions in :mod:`govshare.ingestion.quality`, so what a caller sees is scoped
the same way: the authority its jurisdiction and below, a department its own entries.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from govshare.catalog import lists as catalog_lists
from govshare.db import china_today
from govshare.deps import DbSession, require
from govshare.ingestion import quality
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.web import render

api_router = APIRouter(tags=["ingestion"])
page_router = APIRouter()

QualityReader = Annotated[Principal, Depends(require(Perm.QUALITY_READ))]
DepartmentId = Annotated[int | None, Query(ge=1, le=catalog_lists.MAX_ID)]


# ---------------------------------------------------------------- JSON API


@api_router.get("/ingestion/quality/entries", response_model=list[quality.EntryQuality])
def api_entries(
    db: DbSession, principal: QualityReader, department_id: DepartmentId = None
) -> list[quality.EntryQuality]:
    """各目录资源的数据质量：完整性、有效性（近 90 天批次）、重复、及时性与综合得分。"""
    if department_id is not None:
        quality.department_in_scope(db, principal, department_id)
    return quality.entry_measures(db, principal, department_id=department_id)


@api_router.get("/ingestion/quality/entries/{entry_id}", response_model=quality.EntryDetail)
def api_entry(db: DbSession, principal: QualityReader, entry_id: int) -> quality.EntryDetail:
    """一个目录资源的数据质量、各信息项填充率和最近的汇聚批次。"""
    return quality.entry_detail(db, principal, entry_id)


@api_router.get("/ingestion/quality/departments", response_model=list[quality.DepartmentQuality])
def api_departments(db: DbSession, principal: QualityReader) -> list[quality.DepartmentQuality]:
    """按部门汇总的数据质量（逾期资源多的部门在前）。"""
    return quality.department_measures(db, principal)


@api_router.get("/ingestion/quality/late", response_model=list[quality.EntryQuality])
def api_late(db: DbSession, principal: QualityReader) -> list[quality.EntryQuality]:
    """未按更新周期汇聚的目录资源，逾期工作日多的在前。"""
    return quality.late_entries(db, principal)


# ---------------------------------------------------------------- pages


@page_router.get("/ingestion/quality", response_class=HTMLResponse)
def quality_page(
    request: Request, db: DbSession, principal: QualityReader, department_id: DepartmentId = None
) -> Response:
    """The authority: departments with drill-down; a department: its own entries."""
    today = china_today()
    scope = quality.scope_for(db, principal)
    department = None
    if department_id is not None:
        department = quality.department_in_scope(db, principal, department_id)
    overview = department is None and quality.sees_all_departments(scope)
    rows = quality.entry_measures(
        db, principal, today=today, department_id=department.id if department else None
    )
    departments = quality.by_department(rows) if overview else []
    return render(
        request,
        "ingestion/quality.html",
        {
            "today": today,
            "overview": overview,
            "department": department,
            "departments": departments,
            "rows": [] if overview else rows,
            "summary": quality.totals(rows),
            "window_days": quality.WINDOW_DAYS,
            "rules": _rules(),
        },
        section="ingestion_quality",
    )


@page_router.get("/ingestion/quality/late", response_class=HTMLResponse)
def late_page(request: Request, db: DbSession, principal: QualityReader) -> Response:
    today = china_today()
    return render(
        request,
        "ingestion/quality_late.html",
        {"today": today, "rows": quality.late_entries(db, principal, today=today)},
        section="ingestion_quality",
    )


@page_router.get("/ingestion/quality/entries/{entry_id}", response_class=HTMLResponse)
def entry_page(
    request: Request, db: DbSession, principal: QualityReader, entry_id: int
) -> Response:
    today = china_today()
    return render(
        request,
        "ingestion/quality_entry.html",
        {
            "today": today,
            "e": quality.entry_detail(db, principal, entry_id, today=today),
            "window_days": quality.WINDOW_DAYS,
        },
        section="ingestion_quality",
    )


def _rules() -> list[tuple[str, str]]:
    return [(f.label, rule.text) for f, rule in quality.FREQUENCY_RULES.items()]
