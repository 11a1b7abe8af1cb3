"""JSON API of the sharing workflow (under /api/v1): file an application, check, ask for
material, resubmit, decide, withdraw; the review queue and the grants.

Every answer carries the running clock (``due``, ``days_left``, ``overdue``) read on the
provider's working-day calendar; the rules come from the provider's rulebook (see
:mod:`govshare.sharing.service`)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from govshare.deps import DbSession, require
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.sharing import queries, schemas, service
from govshare.sharing.models import ShareApplication

router = APIRouter(tags=["sharing"])

Reader = Annotated[Principal, Depends(require(Perm.SHARE_READ))]
Applicant = Annotated[Principal, Depends(require(Perm.SHARE_APPLY))]
Reviewer = Annotated[Principal, Depends(require(Perm.SHARE_REVIEW))]
Checker = Annotated[Principal, Depends(require(Perm.SHARE_CHECK))]


def detail(db: Session, app: ShareApplication) -> schemas.ApplicationOut:
    grant = queries.grant_of(db, app)
    return schemas.application_out(
        queries.row_for(db, app),
        events=queries.events_of(db, app),
        grant=queries.grant_rows(db, [grant])[0] if grant is not None else None,
    )


@router.get("/sharing/applications", response_model=list[schemas.ApplicationOut])
def list_applications(
    db: DbSession,
    principal: Reader,
    role: Literal["consumer", "provider", "reviewer"] = "consumer",
) -> list[schemas.ApplicationOut]:
    """本部门的共享申请：consumer 作为申请方，provider 作为提供方，reviewer 待我审核。"""
    if role == "reviewer":
        apps = queries.review_queue(db, principal)
    elif role == "provider":
        apps = queries.provider_applications(db, principal)
    else:
        apps = queries.consumer_applications(db, principal)
    return [schemas.application_out(r) for r in queries.rows_for(db, apps)]


@router.post("/sharing/applications", response_model=schemas.ApplicationOut, status_code=201)
def create_application(
    db: DbSession, principal: Applicant, data: schemas.ApplicationCreate
) -> schemas.ApplicationOut:
    """提交共享请求（无条件共享，提交即获授权）或共享申请（有条件共享，按规则审核）。"""
    app = service.file_application(db, principal, data.to_service())
    return detail(db, app)


@router.get("/sharing/applications/{app_id}", response_model=schemas.ApplicationOut)
def get_application(db: DbSession, principal: Reader, app_id: int) -> schemas.ApplicationOut:
    return detail(db, service.get_application(db, principal, app_id))


@router.post("/sharing/applications/{app_id}/pass-check", response_model=schemas.ApplicationOut)
def pass_check(
    db: DbSession, principal: Checker, app_id: int, data: schemas.NoteIn
) -> schemas.ApplicationOut:
    app = service.get_application(db, principal, app_id)
    service.pass_check(db, principal, app, data.note)
    return detail(db, app)


@router.post("/sharing/applications/{app_id}/fail-check", response_model=schemas.ApplicationOut)
def fail_check(
    db: DbSession, principal: Checker, app_id: int, data: schemas.ReasonIn
) -> schemas.ApplicationOut:
    app = service.get_application(db, principal, app_id)
    service.fail_check(db, principal, app, data.reason)
    return detail(db, app)


@router.post("/sharing/applications/{app_id}/supplement", response_model=schemas.ApplicationOut)
def ask_supplement(
    db: DbSession, principal: Reviewer, app_id: int, data: schemas.SupplementIn
) -> schemas.ApplicationOut:
    """一次性告知需要补正的全部材料；审核期限暂停，补正后按规则重新计算或继续计算。"""
    app = service.get_application(db, principal, app_id)
    service.ask_supplement(db, principal, app, data.missing)
    return detail(db, app)


@router.post("/sharing/applications/{app_id}/resubmit", response_model=schemas.ApplicationOut)
def resubmit(
    db: DbSession, principal: Applicant, app_id: int, data: schemas.ResubmitIn
) -> schemas.ApplicationOut:
    app = service.get_application(db, principal, app_id)
    service.resubmit(db, principal, app, data.reply)
    return detail(db, app)


@router.post("/sharing/applications/{app_id}/approve", response_model=schemas.ApplicationOut)
def approve(
    db: DbSession, principal: Reviewer, app_id: int, data: schemas.ApproveIn
) -> schemas.ApplicationOut:
    """同意全部或部分所申请的信息项（最少够用），可附条件；随即生成授权。"""
    app = service.get_application(db, principal, app_id)
    service.approve(db, principal, app, data.items, data.conditions)
    return detail(db, app)


@router.post("/sharing/applications/{app_id}/reject", response_model=schemas.ApplicationOut)
def reject(
    db: DbSession, principal: Reviewer, app_id: int, data: schemas.ReasonIn
) -> schemas.ApplicationOut:
    """不同意共享，须说明理由。"""
    app = service.get_application(db, principal, app_id)
    service.reject(db, principal, app, data.reason)
    return detail(db, app)


@router.post("/sharing/applications/{app_id}/extend", response_model=schemas.ApplicationOut)
def extend(
    db: DbSession, principal: Reviewer, app_id: int, data: schemas.ReasonIn
) -> schemas.ApplicationOut:
    """延长答复期限（本级规则允许时，经规则指定的提供部门主要负责人或数据主管部门同意，限一次）。"""
    app = service.get_application(db, principal, app_id)
    service.extend(db, principal, app, data.reason)
    return detail(db, app)


@router.post("/sharing/applications/{app_id}/withdraw", response_model=schemas.ApplicationOut)
def withdraw(db: DbSession, principal: Applicant, app_id: int) -> schemas.ApplicationOut:
    app = service.get_application(db, principal, app_id)
    service.withdraw(db, principal, app)
    return detail(db, app)


@router.get("/sharing/review-queue", response_model=list[schemas.ApplicationOut])
def review_queue(db: DbSession, principal: Reader) -> list[schemas.ApplicationOut]:
    """待我审核的申请，按到期日排序。"""
    apps = queries.review_queue(db, principal)
    return [schemas.application_out(r) for r in queries.rows_for(db, apps)]


@router.get("/sharing/grants", response_model=list[schemas.GrantOut])
def list_grants(db: DbSession, principal: Reader) -> list[schemas.GrantOut]:
    """本部门作为使用方和提供方的共享授权；数据主管部门：辖区内全部。"""
    return [schemas.grant_out(r) for r in queries.grants_for(db, principal)]
