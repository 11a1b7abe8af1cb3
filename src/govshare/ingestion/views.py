"""Aggregation pages: upload a file, preview the column mapping, load it, see the batch."""

from __future__ import annotations

import csv
import io
import re
import secrets
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from govshare.config import get_settings
from govshare.deps import DbSession, require
from govshare.errors import DomainError, NotFound, ValidationFailed
from govshare.ingestion import readers, service, sources
from govshare.ingestion.models import BatchMode, BatchSource, BatchStatus
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.web import redirect, render

router = APIRouter(prefix="/ingestion")

Uploader = Annotated[Principal, Depends(require(Perm.INGEST_UPLOAD))]
Reader = Annotated[Principal, Depends(require(Perm.INGEST_READ))]
TOKEN = re.compile(r"^[0-9a-f]{32}$")
#: a previewed file not confirmed within this time is removed (the user uploads it again)
UPLOAD_TTL_SECONDS = 24 * 3600


def upload_dir() -> Path:
    path = get_settings().var_dir / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def sweep_uploads(now: float | None = None) -> int:
    """Remove previewed files older than a day (abandoned previews); returns how many."""
    cutoff = (time.time() if now is None else now) - UPLOAD_TTL_SECONDS
    removed = 0
    for path in upload_dir().iterdir():
        try:
            if TOKEN.match(path.name) and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue  # confirmed by another request meanwhile
    return removed


def _upload_page(
    request: Request,
    db: DbSession,
    principal: Principal,
    *,
    error: DomainError | None = None,
    entry_id: int | None = None,
) -> Response:
    return render(
        request,
        "ingestion/upload.html",
        {
            "entries": service.own_entries(db, principal),
            "entry_id": entry_id,
            "modes": [(m.value, m.label) for m in BatchMode],
            "error": error.message if error else None,
            "max_mb": get_settings().max_upload_bytes // 1024 // 1024,
        },
        status_code=error.status_code if error else 200,
        section="ingestion",
    )


@router.get("/upload", response_class=HTMLResponse)
def upload_form(
    request: Request, db: DbSession, principal: Uploader, entry_id: int | None = None
) -> Response:
    return _upload_page(request, db, principal, entry_id=entry_id)


@router.post("/upload", response_class=HTMLResponse)
def upload(
    request: Request,
    db: DbSession,
    principal: Uploader,
    entry_id: Annotated[int, Form()],
    mode: Annotated[str, Form()] = "valid_rows",
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Keep the file in var/uploads and show its column mapping and first rows."""
    limit = get_settings().max_upload_bytes
    sweep_uploads()
    token = secrets.token_hex(16)
    path = upload_dir() / token
    try:
        entry = service.target_entry(db, principal, entry_id)
        service.check_mode(mode)
        if file is None or not file.filename:
            raise ValidationFailed("请选择要上传的文件", field="file")
        size = 0
        with path.open("wb") as out:
            while chunk := file.file.read(1024 * 1024):
                size += len(chunk)
                if size > limit:
                    raise ValidationFailed(
                        f"文件超过 {limit // 1024 // 1024} MB，请用 govshare import 命令导入大文件",
                        field="file",
                    )
                out.write(chunk)
        assert entry.current_version is not None
        shown = readers.preview(path, entry.current_version.data_items, max_bytes=limit)
    except DomainError as exc:
        path.unlink(missing_ok=True)
        return _upload_page(request, db, principal, error=exc, entry_id=entry_id)
    return render(
        request,
        "ingestion/preview.html",
        {
            "entry": entry,
            "preview": shown,
            "token": token,
            "mode": mode,
            "file_name": Path(file.filename).name[:200],
            "mode_label": BatchMode(mode).label,
            "advice": sources.advice_for_entry(db, entry),
        },
        section="ingestion",
    )


@router.post("/upload/confirm", response_class=HTMLResponse)
def upload_confirm(
    request: Request,
    db: DbSession,
    principal: Uploader,
    entry_id: Annotated[int, Form()],
    token: Annotated[str, Form()],
    mode: Annotated[str, Form()],
    file_name: Annotated[str, Form()] = "",
) -> Response:
    """Load the previewed file as one batch, then show the batch."""
    if not TOKEN.match(token):
        raise NotFound("上传的文件不存在或已过期，请重新上传")
    path = upload_dir() / token
    if not path.exists():
        raise NotFound("上传的文件不存在或已过期，请重新上传")
    try:
        entry = service.target_entry(db, principal, entry_id)
        assert entry.current_version is not None
        limit = get_settings().max_upload_bytes
        with readers.open_table(path, entry.current_version.data_items, max_bytes=limit) as table:
            if table.header.missing_required:
                raise ValidationFailed(
                    "文件缺少必填信息项：" + "、".join(table.header.missing_required), field="file"
                )
            names = {f: table.header.columns[i] for i, f in table.header.mapping.items()}
            outcome = service.load_rows(
                db,
                principal,
                entry,
                table,
                source=BatchSource.UPLOAD,
                mode=service.check_mode(mode),
                file_name=file_name,
                encoding=table.encoding or "",
                column_names=names,
            )
    except DomainError as exc:
        return _upload_page(request, db, principal, error=exc, entry_id=entry_id)
    finally:
        path.unlink(missing_ok=True)
    return redirect(f"/ingestion/batches/{outcome.batch.id}", outcome.batch.message)


@router.get("/batches", response_class=HTMLResponse)
def batches(request: Request, db: DbSession, principal: Reader) -> Response:
    return render(
        request,
        "ingestion/batches.html",
        {"batches": service.batches_for(db, principal), "Status": BatchStatus},
        section="ingestion",
    )


@router.get("/batches/{batch_id}", response_class=HTMLResponse)
def batch_detail(request: Request, db: DbSession, principal: Reader, batch_id: int) -> Response:
    batch = service.get_batch(db, principal, batch_id)
    return render(
        request,
        "ingestion/batch.html",
        {
            "batch": batch,
            "errors": service.errors_of(db, batch.id, limit=500),
            "source_label": BatchSource(batch.source).label,
            "mode_label": BatchMode(batch.mode).label,
            "status_label": BatchStatus(batch.status).label,
        },
        section="ingestion",
    )


def _safe(value: str) -> str:
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


@router.get("/batches/{batch_id}/errors.csv")
def batch_errors_csv(db: DbSession, principal: Reader, batch_id: int) -> Response:
    """The error report: row number, column, value, reason (UTF-8 with BOM for Excel)."""
    batch = service.get_batch(db, principal, batch_id)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["行号", "列", "值", "原因", "级别"])
    for e in service.errors_of(db, batch.id, limit=service.MAX_STORED_ERRORS):
        writer.writerow(
            [
                e.row_number,
                _safe(e.column),
                _safe(e.value),
                e.reason,
                "错误" if e.severity == "error" else "提示",
            ]
        )
    body: Any = "\ufeff" + buf.getvalue()
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="batch-{batch.id}-errors.csv"'},
    )
