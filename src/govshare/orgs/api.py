"""JSON API of the orgs domain (under /api/v1)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from govshare.deps import (
    SESSION_COOKIE,
    DbSession,
    LoggedIn,
    client_ip,
    require,
    session_token,
)
from govshare.orgs import repository as repo
from govshare.orgs import schemas, service
from govshare.orgs.models import Department, Jurisdiction
from govshare.permissions import ROLE_LABELS, Perm
from govshare.principal import Principal
from govshare.security import csrf_token_for

router = APIRouter(tags=["orgs"])


def whoami(db: DbSession, principal: Principal, token: str | None) -> schemas.WhoAmI:
    dept = db.get(Department, principal.department_id) if principal.department_id else None
    juris = db.get(Jurisdiction, principal.jurisdiction_id) if principal.jurisdiction_id else None
    return schemas.WhoAmI(
        kind=principal.kind,
        id=principal.id,
        name=principal.name,
        role=principal.role_code,
        role_label=ROLE_LABELS[principal.role] if principal.role else "",
        department_id=dept.id if dept else None,
        department_name=dept.name if dept else None,
        jurisdiction_id=juris.id if juris else None,
        jurisdiction_name=juris.name if juris else None,
        permissions=sorted(p.value for p in principal.permissions),
        csrf_token=csrf_token_for(token) if token else None,
    )


# ---------------------------------------------------------------- auth


@router.post(
    "/auth/login",
    tags=["auth"],
    response_model=schemas.WhoAmI,
    responses={401: {"description": "用户名或密码错误"}},
)
def api_login(request: Request, db: DbSession, data: schemas.LoginIn) -> Response:
    """用户名密码登录，返回会话 Cookie 与后续写操作所需的 CSRF 令牌。"""
    from govshare.web.views import set_session_cookie

    outcome = service.login(
        db,
        data.username,
        data.password,
        client_ip(request),
        request.headers.get("user-agent", ""),
    )
    if outcome.error or outcome.user is None or outcome.token is None:
        return JSONResponse(
            {"error": {"code": "not_authenticated", "message": outcome.error, "field": None}},
            status_code=401,
        )
    body = whoami(db, service.principal_for_user(outcome.user), outcome.token)
    response = JSONResponse(body.model_dump(mode="json"))
    set_session_cookie(response, outcome.token)
    return response


@router.post("/auth/logout", tags=["auth"], status_code=204)
def api_logout(request: Request, db: DbSession, principal: LoggedIn) -> Response:
    token = session_token(request)
    if token:
        service.logout(db, principal, token)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/me", tags=["auth"], response_model=schemas.WhoAmI)
def api_me(request: Request, db: DbSession, principal: LoggedIn) -> schemas.WhoAmI:
    """当前身份：用户或业务系统的应用凭证。"""
    return whoami(db, principal, session_token(request) if principal.kind == "user" else None)


@router.post("/me/password", tags=["auth"], status_code=204)
def api_change_password(
    db: DbSession, principal: LoggedIn, data: schemas.PasswordChange
) -> Response:
    service.change_own_password(db, principal, data)
    return Response(status_code=204)


# ---------------------------------------------------------------- jurisdictions

ReadJurisdictions = Annotated[Principal, Depends(require(Perm.JURISDICTION_READ))]
ManageJurisdictions = Annotated[Principal, Depends(require(Perm.JURISDICTION_MANAGE))]


@router.get("/jurisdictions", response_model=list[schemas.JurisdictionOut])
def list_jurisdictions(db: DbSession, _p: ReadJurisdictions) -> list[Jurisdiction]:
    return repo.list_jurisdictions(db)


@router.post("/jurisdictions", response_model=schemas.JurisdictionOut, status_code=201)
def create_jurisdiction(
    db: DbSession, principal: ManageJurisdictions, data: schemas.JurisdictionIn
) -> Jurisdiction:
    return service.create_jurisdiction(db, principal, data)


@router.get("/jurisdictions/{code}", response_model=schemas.JurisdictionOut)
def get_jurisdiction(db: DbSession, _p: ReadJurisdictions, code: str) -> Jurisdiction:
    return service.get_jurisdiction_by_code(db, code)


@router.patch("/jurisdictions/{code}", response_model=schemas.JurisdictionOut)
def update_jurisdiction(
    db: DbSession, principal: ManageJurisdictions, code: str, data: schemas.JurisdictionUpdate
) -> Jurisdiction:
    return service.update_jurisdiction(
        db, principal, service.get_jurisdiction_by_code(db, code), data
    )


# ---------------------------------------------------------------- departments

ReadDepartments = Annotated[Principal, Depends(require(Perm.DEPARTMENT_READ))]
ManageDepartments = Annotated[Principal, Depends(require(Perm.DEPARTMENT_MANAGE))]


@router.get("/departments", response_model=list[schemas.DepartmentOut])
def list_departments(
    db: DbSession,
    principal: ReadDepartments,
    jurisdiction: Annotated[str | None, Query(description="行政区划代码")] = None,
    q: Annotated[str, Query(max_length=64, description="名称或信用代码关键字")] = "",
    include_inactive: bool = False,
) -> list[Department]:
    jid = service.get_jurisdiction_by_code(db, jurisdiction).id if jurisdiction else None
    return repo.list_departments(
        db, principal, jurisdiction_id=jid, q=q, include_inactive=include_inactive
    )


@router.post("/departments", response_model=schemas.DepartmentOut, status_code=201)
def create_department(
    db: DbSession, principal: ManageDepartments, data: schemas.DepartmentIn
) -> Department:
    return service.create_department(db, principal, data)


@router.get("/departments/{department_id}", response_model=schemas.DepartmentOut)
def get_department(db: DbSession, _p: ReadDepartments, department_id: int) -> Department:
    return service.get_department(db, department_id)


@router.patch("/departments/{department_id}", response_model=schemas.DepartmentOut)
def update_department(
    db: DbSession,
    principal: ManageDepartments,
    department_id: int,
    data: schemas.DepartmentUpdate,
) -> Department:
    return service.update_department(db, principal, service.get_department(db, department_id), data)


# ---------------------------------------------------------------- contacts on file

ReadContacts = Annotated[Principal, Depends(require(Perm.CONTACT_READ))]


@router.get("/departments/{department_id}/contacts", response_model=list[schemas.ContactOut])
def list_contacts(
    db: DbSession,
    _p: ReadContacts,
    department_id: int,
    history: Annotated[bool, Query(description="包含已替换、已撤销的备案记录")] = False,
) -> list[object]:
    dept = service.get_department(db, department_id)
    if history:
        return list(repo.contact_history(db, dept.id))
    return list(repo.current_contacts(db, dept.id))


@router.post(
    "/departments/{department_id}/contacts", response_model=schemas.ContactOut, status_code=201
)
def file_contact(
    db: DbSession, principal: LoggedIn, department_id: int, data: schemas.ContactIn
) -> object:
    """备案联系人；替换某条备案时给出 replaces_id，原记录保留为历史。"""
    return service.file_contact(db, principal, service.get_department(db, department_id), data)


@router.post("/contacts/{filing_id}/end", response_model=schemas.ContactOut)
def end_contact(
    db: DbSession, principal: LoggedIn, filing_id: int, data: schemas.ContactEnd
) -> object:
    return service.end_contact(db, principal, filing_id, data)


# ---------------------------------------------------------------- users

ReadUsers = Annotated[Principal, Depends(require(Perm.USER_READ))]
ManageUsers = Annotated[Principal, Depends(require(Perm.USER_MANAGE))]


@router.get("/users", response_model=list[schemas.UserOut])
def list_users(
    db: DbSession,
    principal: ReadUsers,
    department_id: int | None = None,
    role: str | None = None,
    q: Annotated[str, Query(max_length=64)] = "",
) -> list[object]:
    return list(repo.list_users(db, principal, department_id=department_id, role=role, q=q))


@router.post("/users", response_model=schemas.UserOut, status_code=201)
def create_user(db: DbSession, principal: ManageUsers, data: schemas.UserIn) -> object:
    return service.create_user(db, principal, data)


@router.get("/users/{user_id}", response_model=schemas.UserOut)
def get_user(db: DbSession, principal: ReadUsers, user_id: int) -> object:
    return service.get_user(db, principal, user_id)


@router.patch("/users/{user_id}", response_model=schemas.UserOut)
def update_user(
    db: DbSession, principal: ManageUsers, user_id: int, data: schemas.UserUpdate
) -> object:
    return service.update_user(db, principal, service.get_user(db, principal, user_id), data)


@router.post("/users/{user_id}/reset-password", status_code=204)
def reset_password(
    db: DbSession, principal: ManageUsers, user_id: int, data: schemas.PasswordReset
) -> Response:
    service.reset_password(db, principal, service.get_user(db, principal, user_id), data)
    return Response(status_code=204)


# ---------------------------------------------------------------- app credentials

ReadCredentials = Annotated[Principal, Depends(require(Perm.CREDENTIAL_READ))]
ManageCredentials = Annotated[Principal, Depends(require(Perm.CREDENTIAL_MANAGE))]


@router.get("/credentials", response_model=list[schemas.CredentialOut])
def list_credentials(
    db: DbSession, principal: ReadCredentials, department_id: int | None = None
) -> list[object]:
    return list(repo.list_credentials(db, principal, department_id=department_id))


@router.post("/credentials", response_model=schemas.CredentialCreated, status_code=201)
def create_credential(
    db: DbSession, principal: ManageCredentials, data: schemas.CredentialIn, response: Response
) -> schemas.CredentialCreated:
    """签发应用凭证。完整凭证只在此响应中出现一次，平台只保存其哈希。"""
    issued = service.create_credential(db, principal, data)
    response.headers["Cache-Control"] = "no-store"
    return schemas.CredentialCreated(
        credential=schemas.CredentialOut.model_validate(issued.credential), token=issued.token
    )


@router.get("/credentials/{credential_id}", response_model=schemas.CredentialOut)
def get_credential(db: DbSession, principal: ReadCredentials, credential_id: int) -> object:
    return service.get_credential(db, principal, credential_id)


@router.post("/credentials/{credential_id}/revoke", response_model=schemas.CredentialOut)
def revoke_credential(
    db: DbSession,
    principal: ManageCredentials,
    credential_id: int,
    data: schemas.CredentialRevoke,
) -> object:
    return service.revoke_credential(
        db, principal, service.get_credential(db, principal, credential_id), data
    )
