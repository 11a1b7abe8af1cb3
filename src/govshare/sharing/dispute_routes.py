"""Pages and JSON API of sharing disputes (共享争议).

A consumer who disagrees with a refusal, or whose application went unanswered past its
deadline, raises a dispute; the data authority over the provider's jurisdiction
coordinates it, records the outcome and may order the grant, and reports what it cannot
settle to the government at the same level with a record (seed 000 art. 20: 由县数据和
政务服务局协调解决……报本级人民政府决定; seed 003 art. 40; seed 004 art. 16(2)). The
coordination clock is shown to both sides with the working days left, flagged overdue
the day after it passes.

The rules live in :mod:`govshare.sharing.disputes`; this module only exposes them:
``api_router`` (mounted under /api/v1) and ``page_router`` (the /sharing pages).
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

from govshare.catalog.models import CatalogVersion
from govshare.db import china_today
from govshare.deps import DbSession, require
from govshare.errors import DomainError
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.sharing import disputes, queries, schemas, service
from govshare.sharing.models import (
    ApplicationStatus,
    DisputeStatus,
    Grant,
    ShareApplication,
    ShareDispute,
)
from govshare.web import FormDict, FormMulti, redirect, render

api_router = APIRouter(tags=["sharing"])
page_router = APIRouter(prefix="/sharing")

Reader = Annotated[Principal, Depends(require(Perm.SHARE_READ))]
Applicant = Annotated[Principal, Depends(require(Perm.SHARE_APPLY))]
Reviewer = Annotated[Principal, Depends(require(Perm.SHARE_REVIEW))]
Checker = Annotated[Principal, Depends(require(Perm.SHARE_CHECK))]

GROUNDS_LABELS = {"rejected": "不同意共享", "overdue": "逾期未答复"}
OUTCOME_LABELS = {
    "granted": "予以共享",
    "upheld": "维持不共享",
    "escalated": "报本级人民政府决定",
}


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class DisputeRow:
    """A dispute with what a page or an answer shows about it: names and its clock."""

    dispute: ShareDispute
    app: ShareApplication
    entry_name: str
    entry_code: str
    consumer: str
    provider: str
    days_left: int | None
    overdue: bool

    @property
    def status_label(self) -> str:
        return DisputeStatus(self.dispute.status).label

    @property
    def grounds_label(self) -> str:
        return GROUNDS_LABELS.get(self.dispute.grounds, self.dispute.grounds)


def dispute_rows(
    db: Session, items: list[ShareDispute], today: date | None = None
) -> list[DisputeRow]:
    today = today or china_today()
    apps = {
        a.id: a
        for a in db.scalars(
            select(ShareApplication).where(
                ShareApplication.id.in_({d.application_id for d in items})
            )
        )
    }
    app_rows = {r.app.id: r for r in queries.rows_for(db, list(apps.values()), today)}
    clocks = queries.Clocks(db)
    out = []
    for d in items:
        row = app_rows[d.application_id]
        out.append(
            DisputeRow(
                dispute=d,
                app=row.app,
                entry_name=row.entry_name,
                entry_code=row.entry_code,
                consumer=row.consumer,
                provider=row.provider,
                days_left=disputes.days_left(d, clocks.calendar(d.provider_department_id), today),
                overdue=disputes.is_overdue(d, today),
            )
        )
    return out


def grant_of(db: Session, dispute: ShareDispute) -> Grant | None:
    """The grant ordered in this dispute (by coordination or the government's decision)."""
    return db.scalars(select(Grant).where(Grant.dispute_id == dispute.id)).first()


def may_raise(principal: Principal, app: ShareApplication, today: date | None = None) -> bool:
    """Whether the viewer may raise a dispute on the application now: the consumer's
    officer or head, on a refusal or an application unanswered past its due date."""
    today = today or china_today()
    return (
        principal.can(Perm.SHARE_APPLY)
        and principal.department_id == app.consumer_department_id
        and (app.status == ApplicationStatus.REJECTED.value or service.is_overdue(app, today))
    )


def application_context(db: Session, principal: Principal, app: ShareApplication) -> dict[str, Any]:
    """What sharing/application.html shows about disputes: the application's disputes
    (newest last) and whether the viewer may raise one now (no unsettled one open)."""
    rows = dispute_rows(db, disputes.disputes_of(db, app))
    unsettled = any(DisputeStatus(r.dispute.status).is_open for r in rows)
    return {
        "disputes": rows,
        "may_raise_dispute": may_raise(principal, app) and not unsettled,
    }


# ---------------------------------------------------------------- API shapes


class StatementIn(schemas._In):
    statement: str = Field(default="", max_length=4000)


class RecordIn(schemas._In):
    record: str = Field(default="", max_length=4000, description="协调记录")


class OrderIn(schemas._In):
    record: str = Field(default="", max_length=4000, description="协调记录")
    items: list[str] | None = Field(
        default=None, max_length=500, description="决定共享的信息项；省略为全部所申请的"
    )
    conditions: str = Field(default="", max_length=4000)


class GovernmentDecisionIn(schemas._In):
    decision: str = Field(default="", max_length=4000, description="本级人民政府决定的文号及内容")
    outcome: str = Field(
        default="", max_length=16, description="granted 予以共享 / upheld 不予共享"
    )
    items: list[str] | None = Field(default=None, max_length=500)
    conditions: str = Field(default="", max_length=4000)


class DisputeOut(BaseModel):
    id: int
    application_id: int
    status: str
    status_label: str
    grounds: str
    grounds_label: str
    consumer_department_id: int
    consumer_department: str
    provider_department_id: int
    provider_department: str
    entry_id: int
    entry_code: str
    entry_name: str
    consumer_statement: str
    provider_statement: str
    coordination_record: str
    outcome: str | None
    escalation_record: str
    government_decision: str
    government_outcome: str | None
    due: date | None
    due_provisional: bool
    days_left: int | None = Field(description="按提供部门工作日历计算的剩余工作日，负数为逾期")
    overdue: bool = Field(description="协调期限到期日次日起为逾期")
    history: list[dict[str, Any]]
    created_at: datetime
    created_by: str
    closed_at: datetime | None
    closed_by: str | None
    grant: schemas.GrantOut | None = None


def dispute_out(db: Session, row: DisputeRow, *, with_grant: bool = True) -> DisputeOut:
    d = row.dispute
    grant = grant_of(db, d) if with_grant else None
    return DisputeOut(
        id=d.id,
        application_id=d.application_id,
        status=d.status,
        status_label=row.status_label,
        grounds=d.grounds,
        grounds_label=row.grounds_label,
        consumer_department_id=d.consumer_department_id,
        consumer_department=row.consumer,
        provider_department_id=d.provider_department_id,
        provider_department=row.provider,
        entry_id=row.app.entry_id,
        entry_code=row.entry_code,
        entry_name=row.entry_name,
        consumer_statement=d.consumer_statement,
        provider_statement=d.provider_statement,
        coordination_record=d.coordination_record,
        outcome=d.outcome,
        escalation_record=d.escalation_record,
        government_decision=d.government_decision,
        government_outcome=d.government_outcome,
        due=d.due,
        due_provisional=d.due_provisional,
        days_left=row.days_left,
        overdue=row.overdue,
        history=list(d.history or []),
        created_at=d.created_at,
        created_by=d.created_by,
        closed_at=d.closed_at,
        closed_by=d.closed_by,
        grant=schemas.grant_out(queries.grant_rows(db, [grant])[0]) if grant else None,
    )


def _detail(db: Session, dispute: ShareDispute) -> DisputeOut:
    return dispute_out(db, dispute_rows(db, [dispute])[0])


# ---------------------------------------------------------------- API


@api_router.get("/sharing/disputes", response_model=list[DisputeOut])
def api_list(db: DbSession, principal: Reader) -> list[DisputeOut]:
    """本部门作为申请方或提供方的共享争议；数据主管部门：由其协调的争议。"""
    rows = dispute_rows(db, disputes.disputes_for(db, principal))
    return [dispute_out(db, r, with_grant=False) for r in rows]


@api_router.get("/sharing/disputes/{dispute_id}", response_model=DisputeOut)
def api_get(db: DbSession, principal: Reader, dispute_id: int) -> DisputeOut:
    return _detail(db, disputes.get_dispute(db, principal, dispute_id))


@api_router.post(
    "/sharing/applications/{app_id}/disputes", response_model=DisputeOut, status_code=201
)
def api_raise(db: DbSession, principal: Applicant, app_id: int, data: StatementIn) -> DisputeOut:
    """对不同意共享或逾期未答复的申请提出争议，由数据主管部门协调处理（《平山县政务数据共享工作制度》第二十条）。"""
    app = service.get_application(db, principal, app_id)
    return _detail(db, disputes.raise_dispute(db, principal, app, data.statement))


@api_router.post("/sharing/disputes/{dispute_id}/statement", response_model=DisputeOut)
def api_statement(
    db: DbSession, principal: Reviewer, dispute_id: int, data: StatementIn
) -> DisputeOut:
    """提供部门作出说明。"""
    dispute = disputes.get_dispute(db, principal, dispute_id)
    disputes.provider_statement(db, principal, dispute, data.statement)
    return _detail(db, dispute)


@api_router.post("/sharing/disputes/{dispute_id}/coordinate", response_model=DisputeOut)
def api_coordinate(
    db: DbSession, principal: Checker, dispute_id: int, data: schemas.NoteIn
) -> DisputeOut:
    dispute = disputes.get_dispute(db, principal, dispute_id)
    disputes.start_coordination(db, principal, dispute, data.note)
    return _detail(db, dispute)


@api_router.post("/sharing/disputes/{dispute_id}/uphold", response_model=DisputeOut)
def api_uphold(db: DbSession, principal: Checker, dispute_id: int, data: RecordIn) -> DisputeOut:
    """协调决定维持不共享，须有协调记录。"""
    dispute = disputes.get_dispute(db, principal, dispute_id)
    disputes.uphold(db, principal, dispute, data.record)
    return _detail(db, dispute)


@api_router.post("/sharing/disputes/{dispute_id}/order", response_model=DisputeOut)
def api_order(db: DbSession, principal: Checker, dispute_id: int, data: OrderIn) -> DisputeOut:
    """协调决定予以共享：授权全部或部分所申请的信息项，可附条件。"""
    dispute = disputes.get_dispute(db, principal, dispute_id)
    disputes.order_grant(db, principal, dispute, data.record, data.items, data.conditions)
    return _detail(db, dispute)


@api_router.post("/sharing/disputes/{dispute_id}/escalate", response_model=DisputeOut)
def api_escalate(db: DbSession, principal: Checker, dispute_id: int, data: RecordIn) -> DisputeOut:
    """协调不成，附协调情况报本级人民政府决定（《平山县政务数据共享工作制度》第二十条）。"""
    dispute = disputes.get_dispute(db, principal, dispute_id)
    disputes.escalate(db, principal, dispute, data.record)
    return _detail(db, dispute)


@api_router.post("/sharing/disputes/{dispute_id}/government-decision", response_model=DisputeOut)
def api_government_decision(
    db: DbSession, principal: Checker, dispute_id: int, data: GovernmentDecisionIn
) -> DisputeOut:
    """登记本级人民政府的决定；决定共享的，随即生成授权。"""
    dispute = disputes.get_dispute(db, principal, dispute_id)
    disputes.record_government_decision(
        db, principal, dispute, data.decision, data.outcome, data.items, data.conditions
    )
    return _detail(db, dispute)


# ---------------------------------------------------------------- pages


def _labels() -> dict[str, Any]:
    return {
        "status_labels": {s.value: s.label for s in DisputeStatus},
        "action_labels": disputes.ACTION_LABELS,
        "outcome_labels": OUTCOME_LABELS,
        "grounds_labels": GROUNDS_LABELS,
        "app_status_labels": {s.value: s.label for s in ApplicationStatus},
    }


@page_router.get("/disputes", response_class=HTMLResponse)
def disputes_page(request: Request, db: DbSession, principal: Reader) -> Response:
    rows = dispute_rows(db, disputes.disputes_for(db, principal))
    return render(
        request,
        "sharing/disputes.html",
        {"rows": rows, **_labels()},
        section="sharing_disputes",
    )


def _detail_page(
    request: Request,
    db: Session,
    principal: Principal,
    dispute: ShareDispute,
    *,
    error: DomainError | None = None,
    form: dict[str, Any] | None = None,
) -> Response:
    row = dispute_rows(db, [dispute])[0]
    status = DisputeStatus(dispute.status)
    coordinator = disputes.may_coordinate(db, principal, dispute)
    version = db.get(CatalogVersion, row.app.version_id)
    grant = grant_of(db, dispute)
    provider = disputes._provider(db, dispute)
    rules = service.context_for(db, provider).rules
    return render(
        request,
        "sharing/dispute.html",
        {
            "row": row,
            "dispute": dispute,
            "app": row.app,
            "rules": rules,
            "item_names": {
                it["field"]: it["name"] for it in (version.data_items if version else [])
            },
            "grant": queries.grant_rows(db, [grant])[0] if grant else None,
            "may_state": principal.can(Perm.SHARE_REVIEW)
            and principal.department_id == dispute.provider_department_id
            and status in (DisputeStatus.OPEN, DisputeStatus.COORDINATING),
            "may_start": coordinator and status is DisputeStatus.OPEN,
            "may_resolve": coordinator and status is DisputeStatus.COORDINATING,
            "may_record_decision": coordinator and status is DisputeStatus.ESCALATED,
            "error": error.message if error else None,
            "form": form or {},
            **_labels(),
        },
        status_code=error.status_code if error else 200,
        section="sharing_disputes",
    )


@page_router.get("/disputes/{dispute_id}", response_class=HTMLResponse)
def dispute_page(request: Request, db: DbSession, principal: Reader, dispute_id: int) -> Response:
    return _detail_page(request, db, principal, disputes.get_dispute(db, principal, dispute_id))


def _act(
    request: Request,
    db: Session,
    principal: Principal,
    dispute_id: int,
    form: dict[str, Any],
    action: str,
    do: Any,
    done: str,
) -> Response:
    """Run one step; on a refusal show the dispute again with the message."""
    dispute = disputes.get_dispute(db, principal, dispute_id)
    try:
        do(dispute)
    except DomainError as exc:
        db.rollback()
        dispute = disputes.get_dispute(db, principal, dispute_id)
        return _detail_page(
            request, db, principal, dispute, error=exc, form={"action": action} | form
        )
    return redirect(f"/sharing/disputes/{dispute_id}", done)


@page_router.post("/applications/{app_id}/disputes", response_class=HTMLResponse)
def raise_page(
    request: Request, db: DbSession, principal: Applicant, app_id: int, form: FormDict
) -> Response:
    """The "提出争议" form on the application page; a refusal is shown on the dispute
    form of a page of its own (the application page belongs to the sharing views)."""
    statement = form.get("statement", "")
    app = service.get_application(db, principal, app_id)
    try:
        dispute = disputes.raise_dispute(db, principal, app, statement)
    except DomainError as exc:
        db.rollback()
        app = service.get_application(db, principal, app_id)
        return render(
            request,
            "sharing/dispute_new.html",
            {
                "row": queries.row_for(db, app),
                "app": app,
                "statement": statement,
                "error": exc.message,
            },
            status_code=exc.status_code,
            section="sharing_disputes",
        )
    return redirect(f"/sharing/disputes/{dispute.id}", "已提出争议，等待数据主管部门协调处理")


@page_router.get("/applications/{app_id}/disputes/new", response_class=HTMLResponse)
def raise_form(request: Request, db: DbSession, principal: Applicant, app_id: int) -> Response:
    app = service.get_application(db, principal, app_id)
    return render(
        request,
        "sharing/dispute_new.html",
        {
            "row": queries.row_for(db, app),
            "app": app,
            "statement": "",
            "error": None if may_raise(principal, app) else _why_not(principal, app),
        },
        section="sharing_disputes",
    )


def _why_not(principal: Principal, app: ShareApplication) -> str:
    if principal.department_id != app.consumer_department_id:
        return "只有申请部门可以对共享申请提出争议"
    return "申请尚在答复期限内或已有结果，逾期未答复或不同意共享后方可提出争议"


@page_router.post("/disputes/{dispute_id}/statement", response_class=HTMLResponse)
def statement_page(
    request: Request, db: DbSession, principal: Reviewer, dispute_id: int, form: FormDict
) -> Response:
    statement = form.get("statement", "")
    return _act(
        request,
        db,
        principal,
        dispute_id,
        form,
        "provider_statement",
        lambda d: disputes.provider_statement(db, principal, d, statement),
        "已提交提供部门的说明",
    )


@page_router.post("/disputes/{dispute_id}/coordinate", response_class=HTMLResponse)
def coordinate_page(
    request: Request, db: DbSession, principal: Checker, dispute_id: int, form: FormDict
) -> Response:
    note = form.get("note", "")
    return _act(
        request,
        db,
        principal,
        dispute_id,
        form,
        "coordinate",
        lambda d: disputes.start_coordination(db, principal, d, note),
        "已开始协调",
    )


@page_router.post("/disputes/{dispute_id}/uphold", response_class=HTMLResponse)
def uphold_page(
    request: Request, db: DbSession, principal: Checker, dispute_id: int, form: FormDict
) -> Response:
    record = form.get("record", "")
    return _act(
        request,
        db,
        principal,
        dispute_id,
        form,
        "uphold",
        lambda d: disputes.uphold(db, principal, d, record),
        "已登记协调结果：维持不共享",
    )


@page_router.post("/disputes/{dispute_id}/order", response_class=HTMLResponse)
def order_page(
    request: Request, db: DbSession, principal: Checker, dispute_id: int, form: FormMulti
) -> Response:
    items = [v for v in form.get("items", []) if v]
    record = (form.get("record") or [""])[-1]
    conditions = (form.get("conditions") or [""])[-1]
    return _act(
        request,
        db,
        principal,
        dispute_id,
        {"items": items, "record": record, "conditions": conditions},
        "order_grant",
        lambda d: disputes.order_grant(db, principal, d, record, items, conditions),
        "已登记协调结果：予以共享，并生成共享授权",
    )


@page_router.post("/disputes/{dispute_id}/escalate", response_class=HTMLResponse)
def escalate_page(
    request: Request, db: DbSession, principal: Checker, dispute_id: int, form: FormDict
) -> Response:
    record = form.get("record", "")
    return _act(
        request,
        db,
        principal,
        dispute_id,
        form,
        "escalate",
        lambda d: disputes.escalate(db, principal, d, record),
        "已报本级人民政府决定",
    )


@page_router.post("/disputes/{dispute_id}/government-decision", response_class=HTMLResponse)
def government_decision_page(
    request: Request, db: DbSession, principal: Checker, dispute_id: int, form: FormMulti
) -> Response:
    items = [v for v in form.get("items", []) if v]
    decision = (form.get("decision") or [""])[-1]
    outcome = (form.get("outcome") or [""])[-1]
    conditions = (form.get("conditions") or [""])[-1]
    return _act(
        request,
        db,
        principal,
        dispute_id,
        {"items": items, "decision": decision, "outcome": outcome, "conditions": conditions},
        "government_decision",
        lambda d: disputes.record_government_decision(
            db, principal, d, decision, outcome, items if outcome == "granted" else None, conditions
        ),
        "已登记本级人民政府的决定",
    )
