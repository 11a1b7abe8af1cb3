"""Aggregated records: browse, show as of a date, and deletion requests; pages and JSON API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.catalog.models import CatalogEntry, UpdateFrequency
from govshare.db import china_today
from govshare.deps import DbSession, require
from govshare.errors import DomainError, ValidationFailed
from govshare.ingestion import records
from govshare.ingestion.models import DeletionRequest, DeletionStatus
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.web import FormDict, redirect, render

api_router = APIRouter(tags=["ingestion"])
page_router = APIRouter()

Reader = Annotated[Principal, Depends(require(Perm.RECORD_READ))]
Requester = Annotated[Principal, Depends(require(Perm.RECORD_DELETE_REQUEST))]
Reviewer = Annotated[Principal, Depends(require(Perm.RECORD_DELETE_REVIEW))]


# ---------------------------------------------------------------- shapes


class RecordPageOut(BaseModel):
    entry_id: int
    code: str
    key_field: str
    columns: list[dict[str, Any]]
    total: int
    page: int
    has_next: bool
    rows: list[dict[str, Any]]


class ChangeOut(BaseModel):
    operation: str
    changed_at: datetime
    changed_by: str
    batch_id: int | None
    reason: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class RecordOut(BaseModel):
    entry_id: int
    key: str
    as_of: date | None
    exists: bool
    deleted: bool
    values: dict[str, Any] | None
    changes: list[ChangeOut]


class DeletionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    entry_id: int
    keys: list[str] = Field(min_length=1, max_length=records.MAX_KEYS)
    reason: str = Field(min_length=4, max_length=2000)


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    decision: Literal["approve", "reject"]
    comment: str = Field(default="", max_length=2000)


class DeletionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    entry_id: int
    department_id: int
    keys: list[str]
    reason: str
    status: str
    requested_at: datetime
    requested_by: str
    reviewed_at: datetime | None
    reviewed_by: str | None
    review_comment: str
    rows_deleted: int


def _page_out(p: records.RecordPage) -> RecordPageOut:
    return RecordPageOut(
        entry_id=p.entry.id,
        code=p.entry.code,
        key_field=p.key_field,
        columns=[{"field": f, "name": n, "removed": r} for f, n, r in p.columns],
        total=p.total,
        page=p.page,
        has_next=p.has_next,
        rows=p.rows,
    )


def _record_out(v: records.RecordView) -> RecordOut:
    return RecordOut(
        entry_id=v.entry.id,
        key=v.key,
        as_of=v.as_of,
        exists=v.values is not None,
        deleted=v.deleted,
        values=v.values,
        changes=[
            ChangeOut(
                operation=c.operation,
                changed_at=c.changed_at,
                changed_by=c.changed_by,
                batch_id=c.batch_id,
                reason=c.reason,
                before=c.before,
                after=c.after,
            )
            for c in v.changes
        ],
    )


def _as_of(value: str) -> date | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ValidationFailed("日期格式应为 YYYY-MM-DD", field="as_of") from None
    if day > china_today():
        raise ValidationFailed("不能查询未来日期的数据", field="as_of")
    return day


# ---------------------------------------------------------------- JSON API


@api_router.get("/ingestion/entries/{entry_id}/records", response_model=RecordPageOut)
def api_records(
    db: DbSession,
    principal: Reader,
    entry_id: int,
    key: str = "",
    page: int = 1,
    include_deleted: bool = False,
) -> RecordPageOut:
    """浏览某目录资源已汇聚的数据（按主键精确或前缀查询，每页 50 条）；每次查询记入审计日志。"""
    entry = records.readable_entry(db, principal, entry_id)
    return _page_out(
        records.browse(db, principal, entry, key=key, page=page, include_deleted=include_deleted)
    )


@api_router.get("/ingestion/entries/{entry_id}/record", response_model=RecordOut)
def api_record(
    db: DbSession, principal: Reader, entry_id: int, key: str, as_of: str = ""
) -> RecordOut:
    """一条记录及其全部变更；指定 as_of（YYYY-MM-DD）则返回该日结束时的取值。"""
    entry = records.readable_entry(db, principal, entry_id)
    return _record_out(records.record(db, principal, entry, key, as_of=_as_of(as_of)))


@api_router.get("/ingestion/deletions", response_model=list[DeletionOut])
def api_deletions(db: DbSession, principal: Reader, status: str = "") -> list[DeletionRequest]:
    return records.list_requests(db, principal, status=status)


@api_router.post("/ingestion/deletions", response_model=DeletionOut, status_code=201)
def api_request_deletion(db: DbSession, principal: Requester, data: DeletionIn) -> DeletionRequest:
    """部门申请删除本部门资源的记录（写明理由），由数据主管部门审核；批准后记录标记删除，历史保留。"""
    entry = records.readable_entry(db, principal, data.entry_id)
    return records.request_deletion(
        db, principal, entry, records.parse_keys(data.keys), data.reason
    )


@api_router.get("/ingestion/deletions/{request_id}", response_model=DeletionOut)
def api_deletion(db: DbSession, principal: Reader, request_id: int) -> DeletionRequest:
    return records.get_request(db, principal, request_id)


@api_router.post("/ingestion/deletions/{request_id}/review", response_model=DeletionOut)
def api_review_deletion(
    db: DbSession, principal: Reviewer, request_id: int, data: ReviewIn
) -> DeletionRequest:
    req = records.get_request(db, principal, request_id)
    return records.review_deletion(db, principal, req, data.decision, data.comment)


@api_router.post("/ingestion/deletions/{request_id}/withdraw", response_model=DeletionOut)
def api_withdraw_deletion(db: DbSession, principal: Requester, request_id: int) -> DeletionRequest:
    req = records.get_request(db, principal, request_id)
    records.withdraw_deletion(db, principal, req)
    return req


# ---------------------------------------------------------------- pages


@page_router.get("/ingestion/records", response_class=HTMLResponse)
def records_index(request: Request, db: DbSession, principal: Reader) -> Response:
    return render(
        request,
        "ingestion/records_index.html",
        {"entries": records.readable_entries(db, principal), "Freq": UpdateFrequency},
        section="ingestion_records",
    )


@page_router.get("/ingestion/records/{entry_id}", response_class=HTMLResponse)
def records_page(
    request: Request,
    db: DbSession,
    principal: Reader,
    entry_id: int,
    key: str = "",
    page: int = 1,
    deleted: str = "",
) -> Response:
    entry = records.readable_entry(db, principal, entry_id)
    shown = records.browse(db, principal, entry, key=key, page=page, include_deleted=deleted == "1")
    return render(
        request,
        "ingestion/records.html",
        {
            "p": shown,
            "version": entry.current_version,
            "may_request": principal.can(Perm.RECORD_DELETE_REQUEST)
            and principal.department_id == entry.department_id,
        },
        section="ingestion_records",
    )


@page_router.get("/ingestion/records/{entry_id}/record", response_class=HTMLResponse)
def record_page(
    request: Request, db: DbSession, principal: Reader, entry_id: int, key: str, as_of: str = ""
) -> Response:
    entry = records.readable_entry(db, principal, entry_id)
    error = None
    try:
        day = _as_of(as_of)
    except ValidationFailed as exc:
        error, day = exc.message, None
    view = records.record(db, principal, entry, key, as_of=day)
    return render(
        request,
        "ingestion/record.html",
        {
            "v": view,
            "error": error,
            "as_of": as_of if error is None else "",
            "may_request": principal.can(Perm.RECORD_DELETE_REQUEST)
            and principal.department_id == entry.department_id,
        },
        section="ingestion_records",
    )


def _deletions_page(
    request: Request,
    db: Session,
    principal: Principal,
    *,
    status: str = "",
    error: DomainError | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    own: list[CatalogEntry] = []
    if principal.can(Perm.RECORD_DELETE_REQUEST) and principal.department_id is not None:
        own = [
            e
            for e in records.readable_entries(db, principal)
            if e.department_id == principal.department_id
        ]
    reqs = records.list_requests(db, principal, status=status)
    return render(
        request,
        "ingestion/deletions.html",
        {
            "requests": reqs,
            "entries": {
                e.id: e
                for e in db.scalars(
                    select(CatalogEntry).where(CatalogEntry.id.in_({r.entry_id for r in reqs}))
                )
            },
            "own_entries": own,
            "status": status,
            "statuses": [(s.value, s.label) for s in DeletionStatus],
            "Status": DeletionStatus,
            "error": error.message if error else None,
            "form": form or {},
        },
        status_code=error.status_code if error else 200,
        section="ingestion_deletions",
    )


@page_router.get("/ingestion/deletions", response_class=HTMLResponse)
def deletions(request: Request, db: DbSession, principal: Reader, status: str = "") -> Response:
    if status and status not in {s.value for s in DeletionStatus}:
        status = ""
    return _deletions_page(request, db, principal, status=status)


@page_router.post("/ingestion/deletions", response_class=HTMLResponse)
def deletions_file(
    request: Request, db: DbSession, principal: Requester, form: FormDict
) -> Response:
    try:
        try:
            entry_id = int(form.get("entry_id", ""))
        except ValueError:
            raise ValidationFailed("请选择目录资源", field="entry_id") from None
        entry = records.readable_entry(db, principal, entry_id)
        req = records.request_deletion(
            db, principal, entry, records.parse_keys(form.get("keys", "")), form.get("reason", "")
        )
    except DomainError as exc:
        db.rollback()
        return _deletions_page(request, db, principal, error=exc, form=dict(form))
    return redirect(
        f"/ingestion/deletions/{req.id}",
        f"已提交删除申请（{len(req.keys)} 条），待数据主管部门审核",
    )


def _deletion_page(
    request: Request,
    db: Session,
    principal: Principal,
    req: DeletionRequest,
    *,
    error: DomainError | None = None,
) -> Response:
    return render(
        request,
        "ingestion/deletion.html",
        {
            "r": req,
            "entry": db.get(CatalogEntry, req.entry_id),
            "status_label": DeletionStatus(req.status).label,
            "may_review": req.status == DeletionStatus.PENDING.value
            and records.may_review(db, principal, req),
            "may_withdraw": req.status == DeletionStatus.PENDING.value
            and principal.can(Perm.RECORD_DELETE_REQUEST)
            and principal.department_id == req.department_id,
            "error": error.message if error else None,
        },
        status_code=error.status_code if error else 200,
        section="ingestion_deletions",
    )


@page_router.get("/ingestion/deletions/{request_id}", response_class=HTMLResponse)
def deletion_page(request: Request, db: DbSession, principal: Reader, request_id: int) -> Response:
    return _deletion_page(request, db, principal, records.get_request(db, principal, request_id))


@page_router.post("/ingestion/deletions/{request_id}/review", response_class=HTMLResponse)
def deletion_review(
    request: Request, db: DbSession, principal: Reviewer, request_id: int, form: FormDict
) -> Response:
    req = records.get_request(db, principal, request_id)
    decision = form.get("decision", "")
    try:
        records.review_deletion(db, principal, req, decision, form.get("comment", ""))
    except DomainError as exc:
        db.rollback()
        return _deletion_page(
            request, db, principal, records.get_request(db, principal, request_id), error=exc
        )
    if decision == "approve":
        return redirect(
            f"/ingestion/deletions/{req.id}", f"已批准，{req.rows_deleted} 条记录已标记删除"
        )
    return redirect(f"/ingestion/deletions/{req.id}", "已驳回删除申请")


@page_router.post("/ingestion/deletions/{request_id}/withdraw", response_class=HTMLResponse)
def deletion_withdraw(
    request: Request, db: DbSession, principal: Requester, request_id: int
) -> Response:
    req = records.get_request(db, principal, request_id)
    try:
        records.withdraw_deletion(db, principal, req)
    except DomainError as exc:
        db.rollback()
        return _deletion_page(
            request, db, principal, records.get_request(db, principal, request_id), error=exc
        )
    return redirect(f"/ingestion/deletions/{req.id}", "已撤回删除申请")
