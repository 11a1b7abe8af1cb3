"""Catalog search: the JSON API (``GET /api/v1/catalog/search``) and the browse page
(``GET /catalog``), both thin over ``catalog.search.search``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from govshare.catalog import search as catalog_search
from govshare.catalog.models import (
    CatalogKind,
    DataGrade,
    OpenType,
    ResourceFormat,
    ShareType,
    UpdateFrequency,
)
from govshare.deps import DbSession, require
from govshare.errors import DomainError, ValidationFailed
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.web import render

api_router = APIRouter(tags=["catalog"])
page_router = APIRouter()

Reader = Annotated[Principal, Depends(require(Perm.CATALOG_READ))]

EXPORT_URL = "/catalog/export.xlsx"


# ---------------------------------------------------------------- JSON


class FacetValueOut(BaseModel):
    value: str = Field(description="筛选取值（提供部门为部门 ID）")
    label: str = Field(description="显示名称；共享、开放类型按本行政区规则命名")
    count: int = Field(description="在其他筛选条件下的资源数")


class SearchHitOut(BaseModel):
    entry_id: int
    code: str = Field(description="资源代码")
    name: str
    department_id: int
    department_name: str
    catalog_kind: CatalogKind
    catalog_kind_label: str
    share_type: ShareType
    share_type_name: str = Field(description="共享类型名称（按本行政区规则）")
    open_type: OpenType
    open_type_name: str
    resource_format: ResourceFormat
    resource_format_label: str
    update_frequency: UpdateFrequency
    update_frequency_label: str
    data_grade: DataGrade
    data_grade_label: str
    published_at: datetime
    snippet: str = Field(description="摘要片段")
    highlights: list[tuple[int, int]] = Field(
        description="片段中命中关键词的位置：[起, 止)（字符下标）"
    )


class SearchOut(BaseModel):
    items: list[SearchHitOut]
    total: int
    facets: dict[str, list[FacetValueOut]] = Field(
        description="分面：department_id、catalog_kind、share_type、open_type、"
        "resource_format、update_frequency、data_grade；每个分面的计数不受其自身筛选影响"
    )
    page: int
    per_page: int
    has_next: bool


def _out(result: catalog_search.SearchResult) -> SearchOut:
    return SearchOut(
        items=[
            SearchHitOut.model_validate(
                {
                    **{k: getattr(hit, k) for k in SearchHitOut.model_fields if k != "highlights"},
                    "highlights": list(hit.highlights),
                }
            )
            for hit in result.items
        ],
        total=result.total,
        facets={
            facet: [FacetValueOut(value=v.value, label=v.label, count=v.count) for v in values]
            for facet, values in result.facets.items()
        },
        page=result.page,
        per_page=result.per_page,
        has_next=result.has_next,
    )


@api_router.get("/catalog/search", response_model=SearchOut)
def search_api(
    db: DbSession,
    principal: Reader,
    q: Annotated[str, Query(max_length=catalog_search.MAX_QUERY_LENGTH)] = "",
    department_id: Annotated[int | None, Query(ge=1)] = None,
    jurisdiction_id: Annotated[int | None, Query(ge=1)] = None,
    catalog_kind: CatalogKind | None = None,
    share_type: ShareType | None = None,
    open_type: OpenType | None = None,
    resource_format: ResourceFormat | None = None,
    update_frequency: UpdateFrequency | None = None,
    data_grade: DataGrade | None = None,
    sort: Literal["relevance", "date"] = "relevance",
    page: Annotated[int, Query(ge=1, le=catalog_search.MAX_PAGE)] = 1,
    per_page: Annotated[int, Query(ge=1, le=catalog_search.MAX_PER_PAGE)] = 20,
) -> SearchOut:
    """检索已发布的目录：关键词（空格分隔，须全部命中，支持两字中文词）与分面筛选。"""
    result = catalog_search.search(
        db,
        principal,
        q=q,
        department_id=department_id,
        jurisdiction_id=jurisdiction_id,
        catalog_kind=catalog_kind,
        share_type=share_type,
        open_type=open_type,
        resource_format=resource_format,
        update_frequency=update_frequency,
        data_grade=data_grade,
        sort=sort,
        page=page,
        per_page=per_page,
    )
    return _out(result)


# ---------------------------------------------------------------- the browse page

_INT_PARAMS = ("department_id", "jurisdiction_id", "page", "per_page")
_STR_PARAMS = (
    "catalog_kind",
    "share_type",
    "open_type",
    "resource_format",
    "update_frequency",
    "data_grade",
    "sort",
)


def _page_params(request: Request) -> dict[str, Any]:
    """Query-string parameters as the search takes them (blank ones are absent)."""
    raw = request.query_params
    params: dict[str, Any] = {"q": raw.get("q", "")[: catalog_search.MAX_QUERY_LENGTH * 2]}
    for name in _STR_PARAMS:
        if raw.get(name):
            params[name] = raw[name]
    for name in _INT_PARAMS:
        value = raw.get(name, "").strip()
        if value:
            if not value.isdigit() or len(value) > 9:
                label = {"department_id": "提供部门", "jurisdiction_id": "行政区"}.get(name, "页码")
                raise ValidationFailed(f"{label}取值无效", field=name)
            params[name] = int(value)
    return params


def _wants_results(request: Request) -> bool:
    return request.headers.get("hx-target") == "catalog-results" and not request.headers.get(
        "hx-history-restore-request"
    )


@page_router.get("/catalog", response_class=HTMLResponse)
def catalog_page(request: Request, db: DbSession, principal: Reader) -> Response:
    """目录检索与浏览。"""
    try:
        result: catalog_search.SearchResult | None = catalog_search.search(
            db, principal, **_page_params(request)
        )
        error = ""
        status = 200
    except DomainError as exc:
        if _wants_results(request):
            raise
        result, error, status = None, exc.message, exc.status_code
    query = result.query if result else catalog_search.SearchQuery()
    ctx = {
        "result": result,
        "query": query,
        "error": error,
        "facet_titles": catalog_search.FACETS,
        "sorts": catalog_search.SORTS,
        "export_url": EXPORT_URL
        + ("?" + query.query_string(page=False) if query.query_string(page=False) else ""),
    }
    template = "catalog/search_results.html" if _wants_results(request) else "catalog/search.html"
    response = render(request, template, ctx, status_code=status, section="catalog")
    response.headers["Vary"] = "HX-Request, HX-Target"
    return response
