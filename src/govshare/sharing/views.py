"""Sharing pages: apply for an entry's data, my department's applications, the review
queue, one application with its clock, history and the actions open to the viewer, and
the grants.

The rules (who reviews, reply periods, asking once for missing material) are the
provider's rulebook's, applied by :mod:`govshare.sharing.service`; query and verification
are offered before batch exchange (seed 003 art. 38)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from govshare.catalog import service as catalog_service
from govshare.catalog.models import (
    CatalogEntry,
    CatalogVersion,
    EntryStatus,
    ShareMethod,
    ShareType,
)
from govshare.db import china_today
from govshare.deps import DbSession, require
from govshare.errors import DomainError
from govshare.orgs.models import Department
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.sharing import dispute_routes, queries, schemas, service
from govshare.sharing import grants as grant_service
from govshare.sharing.models import (
    ApplicationKind,
    ApplicationStatus,
    GrantStatus,
    Scope,
    ShareApplication,
)
from govshare.web import FormDict, FormMulti, parse_labeled, redirect, render

router = APIRouter(prefix="/sharing")

Reader = Annotated[Principal, Depends(require(Perm.SHARE_READ))]
Applicant = Annotated[Principal, Depends(require(Perm.SHARE_APPLY))]
Reviewer = Annotated[Principal, Depends(require(Perm.SHARE_REVIEW))]
Checker = Annotated[Principal, Depends(require(Perm.SHARE_CHECK))]

APPLY_LABELS = {
    "entry_id": "目录资源",
    "items": "信息项",
    "scope": "共享范围",
    "methods": "共享方式",
    "purpose": "使用用途",
    "scenario": "应用场景",
    "basis": "申请依据",
    "period_start": "使用期限开始日期",
    "period_end": "使用期限结束日期",
    "consumer_system": "使用系统",
}
#: query and verification first: they are preferred over batch exchange (seed 003 art. 38)
METHOD_ORDER = (ShareMethod.VERIFICATION, ShareMethod.QUERY, ShareMethod.BATCH)
METHOD_LABELS = {m.value: m.label for m in ShareMethod}
SCOPE_LABELS = {s.value: s.label for s in Scope}


def _labels() -> dict[str, Any]:
    return {
        "method_labels": METHOD_LABELS,
        "scope_labels": SCOPE_LABELS,
        "reviewer_labels": queries.REVIEWER_LABELS,
        "grant_labels": {g.value: g.label for g in GrantStatus},
        "action_labels": service.ACTION_LABELS,
        "status_labels": {s.value: s.label for s in ApplicationStatus},
    }


# ---------------------------------------------------------------- apply


def _apply_page(
    request: Request,
    db: Session,
    principal: Principal,
    entry: CatalogEntry,
    *,
    values: dict[str, Any] | None = None,
    error: DomainError | None = None,
) -> Response:
    version = entry.current_version
    refusal = ""
    if entry.status != EntryStatus.PUBLISHED.value or version is None:
        refusal = "该资源尚未发布，不能申请共享"
    elif entry.department_id == principal.department_id:
        refusal = "本部门的数据无需申请共享"
    elif version.share_type == ShareType.NOT_SHARED.value:
        refusal = f"该资源不予共享，依据：{version.share_basis or '（未登记）'}"
    rules = service.context_for(db, entry.department).rules
    today = china_today()
    offered = set(version.share_methods) if version else set()
    values = values or {
        "items": [
            it["field"]
            for it in (version.data_items if version else [])
            if it.get("share_type") != "not_shared"
        ],
        "scope": "per_subject" if offered - {ShareMethod.BATCH.value} else "dataset",
        "methods": [],
        "period_start": today.isoformat(),
        "period_end": (date(today.year + 1, today.month, 1) - timedelta(days=1)).isoformat(),
    }
    return render(
        request,
        "sharing/apply.html",
        {
            "entry": entry,
            "version": version,
            "provider": entry.department,
            "refusal": refusal,
            "conditional": version is not None
            and version.share_type == ShareType.CONDITIONAL.value,
            "rules": rules,
            "methods": [m for m in METHOD_ORDER if m.value in offered],
            "scopes": list(Scope),
            "values": values,
            "error": error.message if error else None,
            "error_field": error.field if error else None,
            **_labels(),
        },
        status_code=error.status_code if error else 200,
        section="sharing_apply",
    )


@router.get("/apply", response_class=HTMLResponse)
def apply_form(request: Request, db: DbSession, principal: Applicant, entry_id: int) -> Response:
    entry = catalog_service.get_entry(db, principal, entry_id)
    return _apply_page(request, db, principal, entry)


@router.post("/apply", response_class=HTMLResponse)
def apply(request: Request, db: DbSession, principal: Applicant, form: FormMulti) -> Response:
    def one(name: str) -> str:
        return (form.get(name) or [""])[-1].strip()

    values: dict[str, Any] = {
        k: one(k)
        for k in (
            "entry_id",
            "scope",
            "purpose",
            "scenario",
            "basis",
            "period_start",
            "period_end",
            "consumer_system",
        )
    }
    values["items"] = [v for v in form.get("items", []) if v]
    values["methods"] = [v for v in form.get("methods", []) if v]
    entry_id = values["entry_id"]
    entry = catalog_service.get_entry(db, principal, int(entry_id) if entry_id.isdigit() else 0)
    data = {k: v for k, v in values.items() if k not in ("items", "methods")}
    data.update(items=values["items"], methods=values["methods"])
    for optional in ("purpose", "scenario", "basis", "consumer_system"):
        data.setdefault(optional, "")
    try:
        parsed = parse_labeled(schemas.ApplicationCreate, data, APPLY_LABELS)
        app = service.file_application(db, principal, parsed.to_service())
    except DomainError as exc:
        db.rollback()
        entry = catalog_service.get_entry(db, principal, entry.id)
        return _apply_page(request, db, principal, entry, values=values, error=exc)
    if app.status == ApplicationStatus.APPROVED.value:
        flash = f"已获授权：{ApplicationKind(app.kind).label}无需审核（无条件共享）"
    else:
        kind, status = ApplicationKind(app.kind).label, ApplicationStatus(app.status).label
        flash = f"已提交{kind}，当前状态：{status}"
    return redirect(f"/sharing/applications/{app.id}", flash)


# ---------------------------------------------------------------- lists


@router.get("/applications", response_class=HTMLResponse)
def applications(request: Request, db: DbSession, principal: Reader) -> Response:
    clocks = queries.Clocks(db)
    return render(
        request,
        "sharing/applications.html",
        {
            "rows": queries.rows_for(
                db, queries.consumer_applications(db, principal), clocks=clocks
            ),
            "provided": queries.rows_for(
                db, queries.provider_applications(db, principal), clocks=clocks
            ),
            **_labels(),
        },
        section="sharing_applications",
    )


@router.get("/review", response_class=HTMLResponse)
def review(request: Request, db: DbSession, principal: Reviewer) -> Response:
    return render(
        request,
        "sharing/review.html",
        {"rows": queries.rows_for(db, queries.review_queue(db, principal)), **_labels()},
        section="sharing_review",
    )


@router.get("/grants", response_class=HTMLResponse)
def grants(request: Request, db: DbSession, principal: Reader) -> Response:
    rows = queries.grants_for(db, principal)
    return render(
        request,
        "sharing/grants.html",
        {
            "rows": rows,
            "item_names": item_names_for_grants(db, rows),
            "supervisable": {
                r.grant.id for r in rows if grant_service.may_supervise(db, principal, r.grant)
            },
            "today": china_today(),
            **_labels(),
        },
        section="sharing_grants",
    )


def _item_names(version: CatalogVersion | None) -> dict[str, str]:
    return {it["field"]: it["name"] for it in (version.data_items if version else [])}


def item_names_for_grants(db: Session, rows: list[queries.GrantRow]) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {}
    for r in rows:
        if r.grant.entry_id not in out:
            entry = db.get(CatalogEntry, r.grant.entry_id)
            out[r.grant.entry_id] = _item_names(entry.current_version if entry else None)
    return out


# ---------------------------------------------------------------- one application


def _detail_page(
    request: Request,
    db: Session,
    principal: Principal,
    app: ShareApplication,
    *,
    error: DomainError | None = None,
    form: dict[str, Any] | None = None,
) -> Response:
    provider = db.get(Department, app.provider_department_id)
    assert provider is not None
    rules = service.context_for(db, provider).rules
    status = ApplicationStatus(app.status)
    may_check = status is ApplicationStatus.COMPLIANCE_CHECK and service.may_check(
        db, principal, app
    )
    may_review = status is ApplicationStatus.PENDING_REVIEW and service.may_review(
        db, principal, app
    )
    consumer = principal.can(Perm.SHARE_APPLY) and principal.department_id == (
        app.consumer_department_id
    )
    version = db.get(CatalogVersion, app.version_id)
    grant = queries.grant_of(db, app)
    return render(
        request,
        "sharing/application.html",
        {
            "row": queries.row_for(db, app),
            "app": app,
            "rules": rules,
            "item_names": _item_names(version),
            "events": queries.events_of(db, app),
            "grant": queries.grant_rows(db, [grant])[0] if grant else None,
            "may_check": may_check,
            "may_review": may_review,
            "may_supplement": may_review and not (rules.supplement.once and app.supplement_asked),
            "may_resubmit": consumer and status is ApplicationStatus.SUPPLEMENT_REQUESTED,
            "may_withdraw": consumer and status.is_open,
            "may_extend": service.may_extend(db, principal, app),
            "error": error.message if error else None,
            "form": form or {},
            **dispute_routes.application_context(db, principal, app),
            **_labels(),
        },
        status_code=error.status_code if error else 200,
        section="sharing_applications",
    )


@router.get("/applications/{app_id}", response_class=HTMLResponse)
def application(request: Request, db: DbSession, principal: Reader, app_id: int) -> Response:
    return _detail_page(request, db, principal, service.get_application(db, principal, app_id))


def _act(
    request: Request,
    db: Session,
    principal: Principal,
    app_id: int,
    form: dict[str, Any],
    action: str,
    do: Any,
    done: str,
) -> Response:
    """Run one step; on a refusal show the application again with the message."""
    app = service.get_application(db, principal, app_id)
    try:
        do(app)
    except DomainError as exc:
        db.rollback()
        app = service.get_application(db, principal, app_id)
        return _detail_page(request, db, principal, app, error=exc, form={"action": action} | form)
    return redirect(f"/sharing/applications/{app_id}", done)


@router.post("/applications/{app_id}/pass-check", response_class=HTMLResponse)
def pass_check(
    request: Request, db: DbSession, principal: Checker, app_id: int, form: FormDict
) -> Response:
    note = form.get("note", "")
    return _act(
        request,
        db,
        principal,
        app_id,
        form,
        "pass_check",
        lambda app: service.pass_check(db, principal, app, note),
        "合规审查已通过",
    )


@router.post("/applications/{app_id}/fail-check", response_class=HTMLResponse)
def fail_check(
    request: Request, db: DbSession, principal: Checker, app_id: int, form: FormDict
) -> Response:
    reason = form.get("reason", "")
    return _act(
        request,
        db,
        principal,
        app_id,
        form,
        "fail_check",
        lambda app: service.fail_check(db, principal, app, reason),
        "合规审查未通过，已告知申请部门",
    )


@router.post("/applications/{app_id}/supplement", response_class=HTMLResponse)
def supplement(
    request: Request, db: DbSession, principal: Reviewer, app_id: int, form: FormDict
) -> Response:
    missing = form.get("missing", "")
    return _act(
        request,
        db,
        principal,
        app_id,
        form,
        "ask_supplement",
        lambda app: service.ask_supplement(db, principal, app, missing),
        "已一次性告知需要补正的材料，审核期限暂停",
    )


@router.post("/applications/{app_id}/resubmit", response_class=HTMLResponse)
def resubmit(
    request: Request, db: DbSession, principal: Applicant, app_id: int, form: FormDict
) -> Response:
    reply = form.get("reply", "")
    return _act(
        request,
        db,
        principal,
        app_id,
        form,
        "resubmit",
        lambda app: service.resubmit(db, principal, app, reply),
        "已补正并重新提交",
    )


@router.post("/applications/{app_id}/approve", response_class=HTMLResponse)
def approve(
    request: Request, db: DbSession, principal: Reviewer, app_id: int, form: FormMulti
) -> Response:
    items = [v for v in form.get("items", []) if v]
    conditions = (form.get("conditions") or [""])[-1]
    return _act(
        request,
        db,
        principal,
        app_id,
        {"items": items, "conditions": conditions},
        "approve",
        lambda app: service.approve(db, principal, app, items, conditions),
        "已同意共享并生成授权",
    )


@router.post("/applications/{app_id}/reject", response_class=HTMLResponse)
def reject(
    request: Request, db: DbSession, principal: Reviewer, app_id: int, form: FormDict
) -> Response:
    reason = form.get("reason", "")
    return _act(
        request,
        db,
        principal,
        app_id,
        form,
        "reject",
        lambda app: service.reject(db, principal, app, reason),
        "已作出不同意共享的决定",
    )


@router.post("/applications/{app_id}/extend", response_class=HTMLResponse)
def extend(
    request: Request, db: DbSession, principal: Reviewer, app_id: int, form: FormDict
) -> Response:
    reason = form.get("reason", "")
    return _act(
        request,
        db,
        principal,
        app_id,
        form,
        "extend",
        lambda app: service.extend(db, principal, app, reason),
        "已延长答复期限",
    )


@router.post("/applications/{app_id}/withdraw", response_class=HTMLResponse)
def withdraw(
    request: Request, db: DbSession, principal: Applicant, app_id: int, form: FormDict
) -> Response:
    return _act(
        request,
        db,
        principal,
        app_id,
        {},
        "withdraw",
        lambda app: service.withdraw(db, principal, app),
        "已撤回申请",
    )
