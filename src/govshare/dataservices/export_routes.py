"""Batch exchange (批量交换): JSON API under /api/v1 and the page /dataservices/exports.

- ``POST /api/v1/dataservices/{service_id}/exports`` (app credential with X-Govshare-User,
  or a logged-in department user): ask for an export; 202 with the job, or the refusal
  (403/404/410/429, ledgered and audited like every call).
- ``GET /api/v1/dataservices/exports`` and ``/{job_id}``: the department's jobs.
- ``GET /api/v1/dataservices/exports/{job_id}/download``: the file, streamed from disk;
  ``/manifest``: the signed manifest ``<file>.manifest.json``. Only the department that
  asked sees its jobs (404 for others); the file is refused once the grant is no longer in
  force. Each download is audited.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from govshare.audit import service as audit
from govshare.dataservices import exports
from govshare.dataservices import gateway as gw
from govshare.dataservices.models import ExportJob, ExportStatus
from govshare.deps import DbSession, client_ip, csrf_protect, get_principal, require
from govshare.errors import Conflict, NotAuthenticated, NotFound, PermissionDenied, ValidationFailed
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.web import FormDict, redirect, render

api_router = APIRouter(tags=["dataservices"])
page_router = APIRouter()

Consumer = Annotated[Principal, Depends(require(Perm.SERVICE_CALL))]


def batch_caller(
    request: Request, service_id: int, db: DbSession, _csrf: None = Depends(csrf_protect)
) -> Principal:
    """Who asks for an export: an app credential or a logged-in user with SERVICE_CALL.
    A bearer token that is not a valid credential is audited like a refused gateway call
    (an anonymous ``dataservices:call:batch`` entry: no consumer is known, no ledger row)."""
    try:
        principal = get_principal(request, db)
    except NotAuthenticated as exc:
        ip = client_ip(request)
        audit.record(
            db,
            Principal.anonymous(ip),
            "dataservices:call:batch",
            "data_service",
            service_id,
            {
                "call_id": exports.new_call_id(),
                "outcome": "refused",
                "reason": exc.message,
            },
        )
        db.commit()
        raise
    if principal.kind == "anonymous":
        raise NotAuthenticated()
    if not principal.can(Perm.SERVICE_CALL):
        raise PermissionDenied()
    return principal


batch_caller.required_perm = Perm.SERVICE_CALL  # type: ignore[attr-defined]  # authz matrix
BatchCaller = Annotated[Principal, Depends(batch_caller)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "应用凭证无效、已过期或已吊销，或未登录"},
    403: {"description": "无共享授权、授权未生效或已暂停/终止/到期、信息项或方式不在授权内"},
    404: {"description": "共享服务或任务不存在"},
    410: {"description": "共享服务已停用"},
    422: {"description": "请求格式有误或未注明经办人"},
    429: {"description": "超出共享授权的日限额（Retry-After 头给出可重试的秒数）"},
}


class ExportIn(BaseModel):
    format: Literal["csv", "xlsx"] = Field(default="csv", description="csv（UTF-8 带 BOM）或 xlsx")
    since: date | None = Field(
        default=None,
        description="只导出最后更新时间在该日（北京时间）或之后的记录；不填为全量",
    )
    items: list[str] | None = Field(
        default=None, min_length=1, description="信息项字段名；默认为全部已授权信息项"
    )


class ExportItem(BaseModel):
    field: str
    name: str


class ExportOut(BaseModel):
    id: int
    status: str
    status_label: str
    service_id: int
    service: str
    entry_name: str
    grant_id: int
    purpose: str
    format: str
    items: list[ExportItem]
    since: date | None
    requested_by: str
    calling_user: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    rows: int
    size: int
    sm3: str
    file_name: str
    signed: bool
    error: str
    downloads: int
    links: dict[str, str]
    manifest: dict[str, Any] | None = None


def _ts(value: Any) -> str | None:
    from govshare.audit.service import format_ts

    return format_ts(value) if value is not None else None


def export_out(row: exports.JobRow, with_manifest: bool = False) -> ExportOut:
    job = row.job
    base = f"/api/v1/dataservices/exports/{job.id}"
    links = {"self": base}
    if job.status == ExportStatus.DONE.value:
        links["download"] = base + "/download"
        links["manifest"] = base + "/manifest"
    return ExportOut(
        id=job.id,
        status=job.status,
        status_label=row.status_label,
        service_id=job.service_id,
        service=row.service_name,
        entry_name=row.entry_name,
        grant_id=job.grant_id,
        purpose=row.purpose,
        format=job.file_format,
        items=[ExportItem(field=f, name=row.item_names.get(f, f)) for f in job.items],
        since=job.changed_since,
        requested_by=job.requested_by,
        calling_user=job.calling_user,
        created_at=_ts(job.created_at) or "",
        started_at=_ts(job.started_at),
        finished_at=_ts(job.finished_at),
        rows=job.rows,
        size=job.size,
        sm3=job.sm3,
        file_name=job.file_name if job.status == ExportStatus.DONE.value else "",
        signed=row.signed,
        error=job.error,
        downloads=job.downloads,
        links=links,
        manifest=job.manifest if with_manifest else None,
    )


def _calling_user(request: Request) -> str:
    return gw.calling_user(request)


def _refusal(exc: gw.CallError) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return JSONResponse(
        gw.error_body(exc.code, exc.message), status_code=exc.status, headers=headers
    )


@api_router.post(
    "/dataservices/{service_id}/exports",
    summary="批量交换：提交导出任务（全量或某日以来变更的记录）",
    status_code=202,
    responses=_ERRORS,
    response_model=ExportOut,
)
def create_export(
    service_id: int, body: ExportIn, request: Request, principal: BatchCaller, db: DbSession
) -> Response:
    """后台生成 CSV 或 XLSX 文件，只含已授权的信息项，不含已删除的记录；完成后可下载文件和
    带行数、SM3 摘要与平台签名的清单。应用凭证调用须在 X-Govshare-User 头注明经办人。
    拒绝的请求与每次调用一样写入使用台账和审计日志。"""
    requester = exports.requester_for(db, principal, _calling_user(request), client_ip(request))
    try:
        job = exports.request_export(
            db,
            requester,
            service_id,
            file_format=body.format,
            since=body.since,
            items=body.items,
        )
    except gw.CallError as exc:
        return _refusal(exc)
    out = export_out(exports.job_rows(db, [job])[0])
    return JSONResponse(
        out.model_dump(mode="json"),
        status_code=202,
        headers={"Location": out.links["self"]},
    )


@api_router.get(
    "/dataservices/exports",
    summary="本部门的批量交换任务",
    response_model=list[ExportOut],
)
def list_exports(principal: Consumer, db: DbSession) -> list[ExportOut]:
    assert principal.department_id is not None
    jobs = exports.department_jobs(db, principal.department_id)
    return [export_out(r) for r in exports.job_rows(db, jobs)]


def _job(db: Session, principal: Principal, job_id: int) -> ExportJob:
    job = exports.job_for(db, principal, job_id)
    if job is None:
        raise NotFound("批量交换任务不存在")
    return job


@api_router.get(
    "/dataservices/exports/{job_id}",
    summary="批量交换任务：状态、行数、SM3 摘要、签名清单",
    response_model=ExportOut,
)
def get_export(job_id: int, principal: Consumer, db: DbSession) -> ExportOut:
    job = _job(db, principal, job_id)
    return export_out(exports.job_rows(db, [job])[0], with_manifest=True)


def _done(job: ExportJob) -> None:
    if job.status == ExportStatus.EXPIRED.value:
        raise Conflict(job.error or "导出文件已超过保存期限并已删除，请重新提交批量交换任务")
    if job.status != ExportStatus.DONE.value:
        label = ExportStatus(job.status).label
        raise Conflict(f"批量交换任务{label}，没有可下载的文件")


def download(job_id: int, request: Request, principal: Consumer, db: DbSession) -> Response:
    """The file of a finished job (streamed from disk); audited."""
    job = _job(db, principal, job_id)
    _done(job)
    exports.check_still_granted(db, job)
    path = exports.export_path(job)
    if not path.is_file():
        raise NotFound("导出文件已不存在，请重新提交批量交换任务")
    exports.record_download(db, principal, job, _calling_user(request))
    return FileResponse(
        path,
        filename=job.file_name,
        media_type=exports.MEDIA_TYPES.get(job.file_format, "application/octet-stream"),
        headers={"X-Govshare-SM3": job.sm3, "X-Govshare-Rows": str(job.rows)},
    )


def manifest(job_id: int, principal: Consumer, db: DbSession) -> Response:
    """The (signed) manifest, to be kept next to the file as ``<file>.manifest.json``."""
    job = _job(db, principal, job_id)
    _done(job)
    body = json.dumps(job.manifest, ensure_ascii=False, indent=2) + "\n"
    name = job.file_name + ".manifest.json"
    return Response(
        body.encode("utf-8"),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


api_router.add_api_route(
    "/dataservices/exports/{job_id}/download",
    download,
    methods=["GET"],
    summary="下载批量交换文件（授权不在有效期内时拒绝）",
    responses={200: {"description": "CSV 或 XLSX 文件"}, **_ERRORS},
    response_class=FileResponse,
)
api_router.add_api_route(
    "/dataservices/exports/{job_id}/manifest",
    manifest,
    methods=["GET"],
    summary="下载签名清单（<文件名>.manifest.json，可用 govshare verify-signature 验证）",
    responses={200: {"description": "签名清单"}, **_ERRORS},
)


# ---------------------------------------------------------------- page

FORMAT_LABELS = {"csv": "CSV（UTF-8）", "xlsx": "Excel（XLSX）"}


def human_size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / 1024 / 1024:.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n} 字节"


def _page(
    request: Request,
    db: Session,
    principal: Principal,
    *,
    error: str = "",
    status_code: int = 200,
    form: dict[str, str] | None = None,
) -> Response:
    assert principal.department_id is not None
    jobs = exports.department_jobs(db, principal.department_id)
    rows = exports.job_rows(db, jobs)
    return render(
        request,
        "dataservices/exports.html",
        {
            "choices": exports.batch_choices(db, principal.department_id),
            "rows": rows,
            "active": any(r.job.status in exports.ACTIVE for r in rows),
            "error": error,
            "form": form or {},
            "format_labels": FORMAT_LABELS,
            "human_size": human_size,
        },
        status_code=status_code,
        section="ds_exports",
    )


@page_router.get("/dataservices/exports")
def exports_page(request: Request, principal: Consumer, db: DbSession) -> Response:
    return _page(request, db, principal)


@page_router.get("/dataservices/exports/jobs")
def exports_jobs_fragment(request: Request, principal: Consumer, db: DbSession) -> Response:
    """The jobs table alone (HTMX polls it every 3 s while a job is queued or running)."""
    assert principal.department_id is not None
    rows = exports.job_rows(db, exports.department_jobs(db, principal.department_id))
    return render(
        request,
        "dataservices/_export_jobs.html",
        {
            "rows": rows,
            "active": any(r.job.status in exports.ACTIVE for r in rows),
            "format_labels": FORMAT_LABELS,
            "human_size": human_size,
        },
        section="ds_exports",
    )


def _form_since(value: str) -> date | None:
    value = value.strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationFailed("变更起始日期应为 YYYY-MM-DD 格式", field="since") from None


@page_router.post("/dataservices/exports")
def exports_create(
    request: Request, principal: Consumer, db: DbSession, form: FormDict
) -> Response:
    try:
        raw_id = form.get("service_id", "").strip()
        if not raw_id.isdigit():
            raise ValidationFailed("请选择共享服务", field="service_id")
        file_format = form.get("file_format", "csv")
        if file_format not in exports.FORMATS:
            raise ValidationFailed("请选择文件格式", field="file_format")
        since = _form_since(form.get("since", ""))
    except ValidationFailed as exc:
        return _page(request, db, principal, error=exc.message, status_code=422, form=form)
    requester = exports.requester_for(db, principal, "", client_ip(request))
    try:
        job = exports.request_export(
            db, requester, int(raw_id), file_format=file_format, since=since, items=None
        )
    except gw.CallError as exc:
        return _page(request, db, principal, error=exc.message, status_code=exc.status, form=form)
    return redirect(
        "/dataservices/exports",
        flash=f"已提交批量交换任务第 {job.id} 号，文件生成后可在下方下载",
    )


page_router.add_api_route("/dataservices/exports/{job_id}/download", download, methods=["GET"])
page_router.add_api_route("/dataservices/exports/{job_id}/manifest", manifest, methods=["GET"])
