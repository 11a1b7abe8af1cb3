"""Pages and JSON API of agreement sharing (协议共享) and of grant supervision.

- Agreements (seed 004 art. 16(3)): departments with a long-term need for specific data
  sign an agreement and file it with the data authority (报…备案); filing produces the
  grant for the agreement's term. The consumer drafts, both sides sign, the authority
  over the provider's jurisdiction files or terminates it.
- Grants: the data authority suspends, resumes or terminates a grant when it finds misuse
  (seed 003 art. 41); a provider may not end a sharing service on its own (seed 000 art.
  30(7)), and gets the 403 that says so.

The rules live in :mod:`govshare.sharing.agreements` and :mod:`govshare.sharing.grants`;
``api_router`` is mounted under /api/v1, ``page_router`` serves the /sharing pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.catalog import service as catalog_service
from govshare.catalog.models import (
    CatalogEntry,
    CatalogVersion,
    EntryStatus,
    ShareType,
)
from govshare.db import china_today
from govshare.deps import DbSession, require
from govshare.errors import DomainError
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.sharing import agreements, grants, queries, schemas
from govshare.sharing.models import AgreementStatus, Grant, GrantStatus, ShareAgreement
from govshare.sharing.views import METHOD_LABELS, METHOD_ORDER, item_names_for_grants
from govshare.web import FormDict, FormMulti, parse_labeled, redirect, render

api_router = APIRouter(tags=["sharing"])
page_router = APIRouter(prefix="/sharing")

Reader = Annotated[Principal, Depends(require(Perm.SHARE_READ))]
Applicant = Annotated[Principal, Depends(require(Perm.SHARE_APPLY))]
Checker = Annotated[Principal, Depends(require(Perm.SHARE_CHECK))]

DRAFT_LABELS = {
    "entry_id": "目录资源",
    "items": "信息项",
    "methods": "共享方式",
    "purpose": "使用用途",
    "scenario": "应用场景",
    "text": "协议主要条款",
    "starts_on": "协议期限开始日期",
    "ends_on": "协议期限结束日期",
    "number": "协议编号",
    "consumer_system": "使用系统",
}


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class AgreementRow:
    agreement: ShareAgreement
    entry_name: str
    entry_code: str
    consumer: str
    provider: str

    @property
    def status_label(self) -> str:
        return AgreementStatus(self.agreement.status).label


def agreement_rows(db: Session, items: list[ShareAgreement]) -> list[AgreementRow]:
    names = queries._names(
        db,
        [a.consumer_department_id for a in items] + [a.provider_department_id for a in items],
    )
    entries = queries._entries(db, [a.entry_id for a in items])
    out = []
    for a in items:
        code, name, _dept = entries.get(a.entry_id, ("", "", 0))
        out.append(
            AgreementRow(
                agreement=a,
                entry_name=name,
                entry_code=code,
                consumer=names.get(a.consumer_department_id, ""),
                provider=names.get(a.provider_department_id, ""),
            )
        )
    return out


# ---------------------------------------------------------------- API shapes


class AgreementCreate(schemas._In):
    entry_id: int = Field(gt=0, lt=2**31)
    items: list[str] = Field(default_factory=list, max_length=500, description="协议共享的信息项")
    methods: list[str] = Field(
        default_factory=list, max_length=3, description="query / verification / batch"
    )
    purpose: str = Field(default="", max_length=4000)
    scenario: str = Field(default="", max_length=4000)
    text: str = Field(default="", max_length=20000, description="协议主要条款")
    starts_on: date
    ends_on: date
    number: str = Field(default="", max_length=64, description="协议编号；省略则自动编号")
    consumer_system: str = Field(default="", max_length=128)

    def to_service(self) -> agreements.AgreementIn:
        return agreements.AgreementIn(**self.model_dump())


class AgreementOut(BaseModel):
    id: int
    number: str
    status: str
    status_label: str
    consumer_department_id: int
    consumer_department: str
    consumer_system: str
    provider_department_id: int
    provider_department: str
    entry_id: int
    entry_code: str
    entry_name: str
    items: list[str]
    methods: list[str]
    purpose: str
    scenario: str
    text: str
    starts_on: date
    ends_on: date
    consumer_signed_by: str | None
    consumer_signed_at: datetime | None
    provider_signed_by: str | None
    provider_signed_at: datetime | None
    filed_by: str | None
    filed_at: datetime | None
    status_reason: str
    history: list[dict[str, Any]]
    created_at: datetime
    created_by: str
    grant: schemas.GrantOut | None = None


class GrantSupervisionOut(schemas.GrantOut):
    """A grant with its supervision fields and where it came from."""

    status_reason: str
    status_changed_at: datetime | None
    status_changed_by: str | None
    dispute_id: int | None
    agreement_id: int | None


def agreement_out(db: Session, row: AgreementRow, *, with_grant: bool = True) -> AgreementOut:
    a = row.agreement
    grant = agreements.grant_of(db, a) if with_grant else None
    return AgreementOut(
        id=a.id,
        number=a.number,
        status=a.status,
        status_label=row.status_label,
        consumer_department_id=a.consumer_department_id,
        consumer_department=row.consumer,
        consumer_system=a.consumer_system,
        provider_department_id=a.provider_department_id,
        provider_department=row.provider,
        entry_id=a.entry_id,
        entry_code=row.entry_code,
        entry_name=row.entry_name,
        items=list(a.items),
        methods=list(a.methods),
        purpose=a.purpose,
        scenario=a.scenario,
        text=a.text,
        starts_on=a.starts_on,
        ends_on=a.ends_on,
        consumer_signed_by=a.consumer_signed_by,
        consumer_signed_at=a.consumer_signed_at,
        provider_signed_by=a.provider_signed_by,
        provider_signed_at=a.provider_signed_at,
        filed_by=a.filed_by,
        filed_at=a.filed_at,
        status_reason=a.status_reason,
        history=list(a.history or []),
        created_at=a.created_at,
        created_by=a.created_by,
        grant=schemas.grant_out(queries.grant_rows(db, [grant])[0]) if grant else None,
    )


def grant_supervision_out(db: Session, grant: Grant) -> GrantSupervisionOut:
    base = schemas.grant_out(queries.grant_rows(db, [grant])[0])
    return GrantSupervisionOut(
        **base.model_dump(),
        status_reason=grant.status_reason,
        status_changed_at=grant.status_changed_at,
        status_changed_by=grant.status_changed_by,
        dispute_id=grant.dispute_id,
        agreement_id=grant.agreement_id,
    )


def _detail(db: Session, agreement: ShareAgreement) -> AgreementOut:
    return agreement_out(db, agreement_rows(db, [agreement])[0])


# ---------------------------------------------------------------- API: agreements


@api_router.get("/sharing/agreements", response_model=list[AgreementOut])
def api_list(db: DbSession, principal: Reader) -> list[AgreementOut]:
    """本部门作为需求方或提供方的共享协议；数据主管部门：辖区内由其备案的协议。"""
    rows = agreement_rows(db, agreements.agreements_for(db, principal))
    return [agreement_out(db, r, with_grant=False) for r in rows]


@api_router.post("/sharing/agreements", response_model=AgreementOut, status_code=201)
def api_draft(db: DbSession, principal: Applicant, data: AgreementCreate) -> AgreementOut:
    """需求部门起草共享协议（提供部门所在地的共享规则须规定协议共享）。"""
    return _detail(db, agreements.draft(db, principal, data.to_service()))


@api_router.get("/sharing/agreements/{agreement_id}", response_model=AgreementOut)
def api_get(db: DbSession, principal: Reader, agreement_id: int) -> AgreementOut:
    return _detail(db, agreements.get_agreement(db, principal, agreement_id))


@api_router.post("/sharing/agreements/{agreement_id}/sign", response_model=AgreementOut)
def api_sign(db: DbSession, principal: Reader, agreement_id: int) -> AgreementOut:
    """协议一方签署：需求部门的数据专员或负责人，提供部门的审核人或负责人（服务层核对）。"""
    agreement = agreements.get_agreement(db, principal, agreement_id)
    agreements.sign(db, principal, agreement)
    return _detail(db, agreement)


@api_router.post("/sharing/agreements/{agreement_id}/file", response_model=AgreementOut)
def api_file(
    db: DbSession, principal: Checker, agreement_id: int, data: schemas.NoteIn
) -> AgreementOut:
    """数据主管部门备案已经双方签署的协议，随即生成协议期限内的共享授权。"""
    agreement = agreements.get_agreement(db, principal, agreement_id)
    agreements.file(db, principal, agreement, data.note)
    return _detail(db, agreement)


@api_router.post("/sharing/agreements/{agreement_id}/terminate", response_model=AgreementOut)
def api_terminate(
    db: DbSession, principal: Reader, agreement_id: int, data: schemas.ReasonIn
) -> AgreementOut:
    """数据主管部门终止协议及其授权（《南阳市政务数据共享管理暂行办法》第四十一条）；提供部门不得擅自终止。"""
    agreement = agreements.get_agreement(db, principal, agreement_id)
    agreements.terminate(db, principal, agreement, data.reason)
    return _detail(db, agreement)


# ---------------------------------------------------------------- API: grants


@api_router.get("/sharing/grants/{grant_id}", response_model=GrantSupervisionOut)
def api_grant(db: DbSession, principal: Reader, grant_id: int) -> GrantSupervisionOut:
    return grant_supervision_out(db, grants.get_grant(db, principal, grant_id))


@api_router.post("/sharing/grants/{grant_id}/suspend", response_model=GrantSupervisionOut)
def api_suspend(
    db: DbSession, principal: Reader, grant_id: int, data: schemas.ReasonIn
) -> GrantSupervisionOut:
    """数据主管部门发现违规使用时暂停授权（《南阳市政务数据共享管理暂行办法》第四十一条），须说明理由。"""
    grant = grants.get_grant(db, principal, grant_id)
    return grant_supervision_out(db, grants.suspend(db, principal, grant, data.reason))


@api_router.post("/sharing/grants/{grant_id}/resume", response_model=GrantSupervisionOut)
def api_resume(
    db: DbSession, principal: Reader, grant_id: int, data: schemas.ReasonIn
) -> GrantSupervisionOut:
    grant = grants.get_grant(db, principal, grant_id)
    return grant_supervision_out(db, grants.resume(db, principal, grant, data.reason))


@api_router.post("/sharing/grants/{grant_id}/terminate", response_model=GrantSupervisionOut)
def api_terminate_grant(
    db: DbSession, principal: Reader, grant_id: int, data: schemas.ReasonIn
) -> GrantSupervisionOut:
    """终止授权；提供部门不得擅自终止已提供的共享服务（《平山县政务数据共享工作制度》第三十条第（七）项）。"""
    grant = grants.get_grant(db, principal, grant_id)
    return grant_supervision_out(db, grants.terminate(db, principal, grant, data.reason))


# ---------------------------------------------------------------- pages: agreements


def _labels() -> dict[str, Any]:
    return {
        "method_labels": METHOD_LABELS,
        "agreement_labels": {s.value: s.label for s in AgreementStatus},
        "action_labels": agreements.ACTION_LABELS,
        "grant_labels": {g.value: g.label for g in GrantStatus},
    }


@page_router.get("/agreements", response_class=HTMLResponse)
def agreements_page(request: Request, db: DbSession, principal: Reader) -> Response:
    return render(
        request,
        "sharing/agreements.html",
        {"rows": agreement_rows(db, agreements.agreements_for(db, principal)), **_labels()},
        section="sharing_agreements",
    )


def _entry_choices(db: Session, principal: Principal) -> list[tuple[int, str, str]]:
    """Published entries of other departments: (id, code, name)."""
    rows = db.execute(
        select(CatalogEntry.id, CatalogEntry.code, CatalogVersion.name)
        .join(CatalogVersion, CatalogVersion.id == CatalogEntry.current_version_id)
        .where(
            CatalogEntry.status == EntryStatus.PUBLISHED.value,
            CatalogEntry.department_id != principal.department_id,
            CatalogVersion.share_type != ShareType.NOT_SHARED.value,
        )
        .order_by(CatalogEntry.code)
        .limit(queries.LIST_LIMIT)
    )
    return [(i, code, name) for i, code, name in rows]


def _draft_page(
    request: Request,
    db: Session,
    principal: Principal,
    entry: CatalogEntry | None,
    *,
    values: dict[str, Any] | None = None,
    error: DomainError | None = None,
) -> Response:
    version = entry.current_version if entry else None
    today = china_today()
    offered = set(version.share_methods) if version else set()
    values = values or {
        "items": [],
        "methods": [],
        "starts_on": today.isoformat(),
        "ends_on": date(today.year + 2, today.month, 1).isoformat(),
    }
    return render(
        request,
        "sharing/agreement_new.html",
        {
            "entry": entry,
            "version": version,
            "provider": entry.department if entry else None,
            "choices": [] if entry else _entry_choices(db, principal),
            "methods": [m for m in METHOD_ORDER if m.value in offered],
            "values": values,
            "error": error.message if error else None,
            "error_field": error.field if error else None,
        },
        status_code=error.status_code if error else 200,
        section="sharing_agreements",
    )


@page_router.get("/agreements/new", response_class=HTMLResponse)
def draft_form(
    request: Request, db: DbSession, principal: Applicant, entry_id: int | None = None
) -> Response:
    entry = catalog_service.get_entry(db, principal, entry_id) if entry_id else None
    return _draft_page(request, db, principal, entry)


@page_router.post("/agreements/new", response_class=HTMLResponse)
def draft_page(request: Request, db: DbSession, principal: Applicant, form: FormMulti) -> Response:
    def one(name: str) -> str:
        return (form.get(name) or [""])[-1].strip()

    values: dict[str, Any] = {
        k: one(k)
        for k in (
            "entry_id",
            "purpose",
            "scenario",
            "text",
            "starts_on",
            "ends_on",
            "number",
            "consumer_system",
        )
    }
    values["items"] = [v for v in form.get("items", []) if v]
    values["methods"] = [v for v in form.get("methods", []) if v]
    entry_id = values["entry_id"]
    entry = catalog_service.get_entry(db, principal, int(entry_id) if entry_id.isdigit() else 0)
    data = dict(values)
    for optional in ("purpose", "scenario", "text", "number", "consumer_system"):
        data.setdefault(optional, "")
    try:
        parsed = parse_labeled(AgreementCreate, data, DRAFT_LABELS)
        agreement = agreements.draft(db, principal, parsed.to_service())
    except DomainError as exc:
        db.rollback()
        entry = catalog_service.get_entry(db, principal, entry.id)
        return _draft_page(request, db, principal, entry, values=values, error=exc)
    return redirect(
        f"/sharing/agreements/{agreement.id}", f"已起草共享协议 {agreement.number}，请双方签署"
    )


def _detail_page(
    request: Request,
    db: Session,
    principal: Principal,
    agreement: ShareAgreement,
    *,
    error: DomainError | None = None,
    form: dict[str, Any] | None = None,
) -> Response:
    row = agreement_rows(db, [agreement])[0]
    status = AgreementStatus(agreement.status)
    version = db.get(CatalogVersion, agreement.version_id)
    grant = agreements.grant_of(db, agreement)
    authority = agreements.may_file(db, principal, agreement)
    draft = status is AgreementStatus.DRAFT
    signs_as = ""
    if (
        draft
        and principal.department_id == agreement.consumer_department_id
        and principal.can(Perm.SHARE_APPLY)
        and not agreement.consumer_signed_by
    ):
        signs_as = "consumer"
    elif (
        draft
        and principal.department_id == agreement.provider_department_id
        and principal.can(Perm.SHARE_REVIEW)
        and not agreement.provider_signed_by
    ):
        signs_as = "provider"
    return render(
        request,
        "sharing/agreement.html",
        {
            "row": row,
            "agreement": agreement,
            "item_names": {
                it["field"]: it["name"] for it in (version.data_items if version else [])
            },
            "grant": queries.grant_rows(db, [grant])[0] if grant else None,
            "signs_as": signs_as,
            "may_file": authority and draft,
            "may_terminate": authority
            and status in (AgreementStatus.FILED, AgreementStatus.ACTIVE),
            "error": error.message if error else None,
            "form": form or {},
            **_labels(),
        },
        status_code=error.status_code if error else 200,
        section="sharing_agreements",
    )


@page_router.get("/agreements/{agreement_id}", response_class=HTMLResponse)
def agreement_page(
    request: Request, db: DbSession, principal: Reader, agreement_id: int
) -> Response:
    agreement = agreements.get_agreement(db, principal, agreement_id)
    return _detail_page(request, db, principal, agreement)


def _act(
    request: Request,
    db: Session,
    principal: Principal,
    agreement_id: int,
    form: dict[str, Any],
    action: str,
    do: Any,
    done: str,
) -> Response:
    """Run one step; on a refusal show the agreement again with the message."""
    agreement = agreements.get_agreement(db, principal, agreement_id)
    try:
        do(agreement)
    except DomainError as exc:
        db.rollback()
        agreement = agreements.get_agreement(db, principal, agreement_id)
        return _detail_page(
            request, db, principal, agreement, error=exc, form={"action": action} | form
        )
    return redirect(f"/sharing/agreements/{agreement_id}", done)


@page_router.post("/agreements/{agreement_id}/sign", response_class=HTMLResponse)
def sign_page(
    request: Request, db: DbSession, principal: Reader, agreement_id: int, form: FormDict
) -> Response:
    return _act(
        request,
        db,
        principal,
        agreement_id,
        {},
        "sign",
        lambda a: agreements.sign(db, principal, a),
        "已签署",
    )


@page_router.post("/agreements/{agreement_id}/file", response_class=HTMLResponse)
def file_page(
    request: Request, db: DbSession, principal: Checker, agreement_id: int, form: FormDict
) -> Response:
    note = form.get("note", "")
    return _act(
        request,
        db,
        principal,
        agreement_id,
        form,
        "file",
        lambda a: agreements.file(db, principal, a, note),
        "已备案，并生成协议期限内的共享授权",
    )


@page_router.post("/agreements/{agreement_id}/terminate", response_class=HTMLResponse)
def terminate_page(
    request: Request, db: DbSession, principal: Reader, agreement_id: int, form: FormDict
) -> Response:
    reason = form.get("reason", "")
    return _act(
        request,
        db,
        principal,
        agreement_id,
        form,
        "terminate",
        lambda a: agreements.terminate(db, principal, a, reason),
        "已终止协议及其共享授权",
    )


# ---------------------------------------------------------------- pages: grants


def _grant_act(
    request: Request,
    db: Session,
    principal: Principal,
    grant_id: int,
    form: dict[str, str],
    do: Any,
    done: str,
) -> Response:
    """Run one supervision step; on a refusal show the grants page with the message."""
    grant = grants.get_grant(db, principal, grant_id)
    try:
        do(grant)
    except DomainError as exc:
        db.rollback()
        rows = queries.grants_for(db, principal)
        return render(
            request,
            "sharing/grants.html",
            {
                "rows": rows,
                "item_names": item_names_for_grants(db, rows),
                "today": china_today(),
                "supervisable": {
                    r.grant.id for r in rows if grants.may_supervise(db, principal, r.grant)
                },
                "error": exc.message,
                "error_grant": grant_id,
                "form": form,
                "method_labels": METHOD_LABELS,
                "grant_labels": {g.value: g.label for g in GrantStatus},
            },
            status_code=exc.status_code,
            section="sharing_grants",
        )
    return redirect(f"/sharing/grants#grant-{grant_id}", done)


@page_router.post("/grants/{grant_id}/suspend", response_class=HTMLResponse)
def suspend_page(
    request: Request, db: DbSession, principal: Reader, grant_id: int, form: FormDict
) -> Response:
    reason = form.get("reason", "")
    return _grant_act(
        request,
        db,
        principal,
        grant_id,
        form | {"action": "suspend"},
        lambda g: grants.suspend(db, principal, g, reason),
        f"已暂停共享授权第 {grant_id} 号",
    )


@page_router.post("/grants/{grant_id}/resume", response_class=HTMLResponse)
def resume_page(
    request: Request, db: DbSession, principal: Reader, grant_id: int, form: FormDict
) -> Response:
    reason = form.get("reason", "")
    return _grant_act(
        request,
        db,
        principal,
        grant_id,
        form | {"action": "resume"},
        lambda g: grants.resume(db, principal, g, reason),
        f"已恢复共享授权第 {grant_id} 号",
    )


@page_router.post("/grants/{grant_id}/terminate", response_class=HTMLResponse)
def terminate_grant_page(
    request: Request, db: DbSession, principal: Reader, grant_id: int, form: FormDict
) -> Response:
    reason = form.get("reason", "")
    return _grant_act(
        request,
        db,
        principal,
        grant_id,
        form | {"action": "terminate"},
        lambda g: grants.terminate(db, principal, g, reason),
        f"已终止共享授权第 {grant_id} 号",
    )
