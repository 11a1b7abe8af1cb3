"""Routes of the catalog's import and export: the Excel template, bulk import (JSON API and
page), export of a search to XLSX, and the DCAT-AP 3 JSON-LD of the published catalog."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from govshare.catalog import exchange
from govshare.db import china_today
from govshare.deps import DbSession, require
from govshare.errors import DomainError, ValidationFailed
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.web import redirect, render

#: under /api/v1
api_router = APIRouter(tags=["catalog"])
#: pages and downloads
page_router = APIRouter(prefix="/catalog")

Reader = Annotated[Principal, Depends(require(Perm.CATALOG_READ))]
Editor = Annotated[Principal, Depends(require(Perm.CATALOG_EDIT))]
Exporter = Annotated[Principal, Depends(require(Perm.CATALOG_EXPORT))]

FILTER_KEYS = tuple(exchange.ExportFilters.model_fields)


class ImportedEntry(BaseModel):
    entry_id: int
    version_id: int
    code: str
    name: str


class ImportOut(BaseModel):
    created: int
    entries: list[ImportedEntry]


class ImportErrorBody(BaseModel):
    code: str
    message: str
    field: str | None
    rows: list[exchange.RowErrorOut]


class ImportErrorOut(BaseModel):
    error: ImportErrorBody


def xlsx_response(content: bytes, filename: str) -> Response:
    """An XLSX download with a UTF-8 file name (RFC 6266 / 5987) and an ASCII fallback."""
    fallback = "govshare.xlsx"
    disposition = f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"
    return Response(
        content,
        media_type=exchange.XLSX_MEDIA_TYPE,
        headers={"Content-Disposition": disposition, "Cache-Control": "no-store"},
    )


def read_upload(upload: UploadFile | None) -> tuple[bytes, str]:
    """At most the size limit (plus one byte, so an oversized file is recognized)."""
    if upload is None or not upload.filename:
        raise ValidationFailed("请选择要导入的 Excel 文件（.xlsx）", field="file")
    content = upload.file.read(exchange.MAX_FILE_BYTES + 1)
    return content, upload.filename


def _summary(result: exchange.ImportResult) -> str:
    shown = len(result.errors_shown())
    more = f"（仅列出前 {shown} 处）" if len(result.errors) > shown else ""
    return f"导入文件有 {len(result.errors)} 处错误{more}，未创建任何目录资源；请修改后重新导入"


# ---------------------------------------------------------------- JSON API


@api_router.post(
    "/catalog/import",
    response_model=ImportOut,
    status_code=201,
    responses={422: {"model": ImportErrorOut, "description": "文件无效或有错误行，未创建任何资源"}},
)
def import_api(
    db: DbSession, principal: Editor, file: Annotated[UploadFile, File(description="导入模板")]
) -> Any:
    """批量导入目录（Excel 模板）：全部行无误时作为本部门草稿创建，否则不创建任何资源并
    返回逐行错误（工作表、行号、列名、填写的值、原因）。"""
    content, filename = read_upload(file)
    result = exchange.import_entries(db, principal, content, filename)
    if not result.ok:
        body = ImportErrorOut(
            error=ImportErrorBody(
                code="validation_failed",
                message=_summary(result),
                field="file",
                rows=[exchange.RowErrorOut(**e.as_dict()) for e in result.errors_shown()],
            )
        )
        return JSONResponse(body.model_dump(), status_code=422)
    return ImportOut(
        created=len(result.created),
        entries=[
            ImportedEntry(entry_id=v.entry_id, version_id=v.id, code=v.entry.code, name=v.name)
            for v in result.created
        ],
    )


@api_router.get("/catalog/dcat.jsonld", response_class=Response)
def dcat_jsonld(request: Request, db: DbSession, _p: Reader) -> Response:
    """已发布目录的 DCAT-AP 3 JSON-LD 表示。"""
    doc = exchange.dcat_catalog(db, str(request.base_url))
    return Response(
        json.dumps(doc, ensure_ascii=False, indent=1),
        media_type="application/ld+json",
        headers={"Cache-Control": "no-store"},
    )


# ---------------------------------------------------------------- downloads


@page_router.get("/template.xlsx")
def template_download(db: DbSession, principal: Editor) -> Response:
    return xlsx_response(exchange.template_xlsx(db, principal), "政务数据资源目录导入模板.xlsx")


@page_router.get("/export.xlsx")
def export_download(request: Request, db: DbSession, principal: Exporter) -> Response:
    filters = exchange.parse_filters({k: request.query_params.get(k, "") for k in FILTER_KEYS})
    content, _count = exchange.export_xlsx(db, principal, filters)
    return xlsx_response(content, f"政务数据资源目录_{china_today().strftime('%Y%m%d')}.xlsx")


# ---------------------------------------------------------------- the import page


def _page(request: Request, extra: dict[str, Any] | None = None, status: int = 200) -> HTMLResponse:
    ctx: dict[str, Any] = {
        "max_entries": exchange.MAX_ENTRIES,
        "max_mb": exchange.MAX_FILE_BYTES // 1024 // 1024,
        "max_cell": exchange.MAX_CELL_CHARS,
        "errors": [],
        "report": "",
    }
    ctx.update(extra or {})
    return render(request, "catalog/import.html", ctx, status_code=status, section="catalog_work")


@page_router.get("/import", response_class=HTMLResponse)
def import_page(request: Request, _p: Editor) -> Response:
    return _page(request)


@page_router.post("/import", response_class=HTMLResponse)
def import_submit(
    request: Request,
    db: DbSession,
    principal: Editor,
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    try:
        content, filename = read_upload(file)
        result = exchange.import_entries(db, principal, content, filename)
    except ValidationFailed as exc:
        db.rollback()
        return _page(request, {"error": exc.message}, exc.status_code)
    except DomainError:
        db.rollback()
        raise
    if not result.ok:
        rows = [e.as_dict() for e in result.errors_shown()]
        return _page(
            request,
            {
                "error": _summary(result),
                "errors": result.errors_shown(),
                "report": json.dumps(rows, ensure_ascii=False),
                "filename": filename,
            },
            422,
        )
    codes = [v.entry.code for v in result.created]
    span = codes[0] if len(codes) == 1 else f"{codes[0]} 至 {codes[-1]}"
    return redirect(
        "/catalog/import",
        f"已导入 {len(codes)} 条目录资源草稿（资源代码 {span}），请逐条核对后提交审核",
    )


@page_router.post("/import/errors.xlsx")
def import_error_report(
    _p: Editor,
    report: Annotated[str, Form(max_length=2_000_000)] = "",
) -> Response:
    """The error list shown on the import page, as a workbook (posted back by the page)."""
    if not report:
        raise ValidationFailed("没有可下载的错误报告，请先导入文件", field="report")
    try:
        raw = json.loads(report)
    except ValueError:
        raise ValidationFailed("错误报告的格式不正确", field="report") from None
    rows = exchange.parse_report_rows(raw)
    return xlsx_response(exchange.error_report_xlsx(rows), "目录导入错误报告.xlsx")
