"""Web pages of the orgs domain."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from govshare.db import utcnow
from govshare.deps import DbSession, LoggedIn, require
from govshare.errors import DomainError, PermissionDenied
from govshare.orgs import repository as repo
from govshare.orgs import schemas, service
from govshare.orgs.models import DUTY_LABELS, Level
from govshare.permissions import ROLE_LABELS, Perm, Role
from govshare.principal import Principal
from govshare.rules.loader import registry
from govshare.web import FormDict, parse_form, redirect, render

router = APIRouter(prefix="/orgs")

ReadJurisdictions = Annotated[Principal, Depends(require(Perm.JURISDICTION_READ))]
ManageJurisdictions = Annotated[Principal, Depends(require(Perm.JURISDICTION_MANAGE))]
ReadDepartments = Annotated[Principal, Depends(require(Perm.DEPARTMENT_READ))]
ManageDepartments = Annotated[Principal, Depends(require(Perm.DEPARTMENT_MANAGE))]
ReadUsers = Annotated[Principal, Depends(require(Perm.USER_READ))]
ManageUsers = Annotated[Principal, Depends(require(Perm.USER_MANAGE))]
ReadCredentials = Annotated[Principal, Depends(require(Perm.CREDENTIAL_READ))]
ManageCredentials = Annotated[Principal, Depends(require(Perm.CREDENTIAL_MANAGE))]

LEVEL_OPTIONS = [(lv.value, lv.label) for lv in Level]
DUTY_OPTIONS = [(d.value, label) for d, label in DUTY_LABELS.items()]
ROLE_OPTIONS = [(r.value, label) for r, label in ROLE_LABELS.items() if r is not Role.SYSTEM]


def _error_ctx(exc: DomainError, form: dict[str, str]) -> dict[str, Any]:
    return {"error": exc.message, "error_field": exc.field, "form": form}


def _department_options(db: DbSession, principal: Principal) -> list[tuple[int, str]]:
    return [
        (d.id, f"{d.jurisdiction.name} · {d.name}") for d in repo.list_departments(db, principal)
    ]


# ---------------------------------------------------------------- jurisdictions


def _jurisdictions_page(
    request: Request, db: DbSession, extra: dict[str, Any] | None = None, status: int = 200
) -> Response:
    items = repo.list_jurisdictions(db)
    by_parent: dict[int | None, list[Any]] = {}
    for j in items:
        by_parent.setdefault(j.parent_id, []).append(j)
    ordered: list[tuple[int, Any]] = []

    def walk(parent: int | None, depth: int) -> None:
        for j in by_parent.get(parent, []):
            ordered.append((depth, j))
            walk(j.id, depth + 1)

    walk(None, 0)
    known = {j.id for _, j in ordered}
    ordered += [(0, j) for j in items if j.id not in known]  # orphans, should none exist
    counts = {
        j.id: len(repo.list_departments(db, Principal.platform(), jurisdiction_id=j.id))
        for j in items
    }
    ctx = {
        "rows": ordered,
        "counts": counts,
        "level_options": LEVEL_OPTIONS,
        "parent_options": [(j.code, f"{j.name}（{j.code}）") for j in items],
        "rulebooks": registry().names(),
        "form": {},
    }
    ctx.update(extra or {})
    return render(
        request, "orgs/jurisdictions.html", ctx, status_code=status, section="jurisdictions"
    )


@router.get("/jurisdictions", response_class=HTMLResponse)
def jurisdictions(request: Request, db: DbSession, _p: ReadJurisdictions) -> Response:
    return _jurisdictions_page(request, db)


@router.post("/jurisdictions", response_class=HTMLResponse)
def jurisdictions_create(
    request: Request, db: DbSession, principal: ManageJurisdictions, form: FormDict
) -> Response:
    try:
        j = service.create_jurisdiction(db, principal, parse_form(schemas.JurisdictionIn, form))
    except DomainError as exc:
        db.rollback()
        return _jurisdictions_page(request, db, _error_ctx(exc, form), exc.status_code)
    return redirect("/orgs/jurisdictions", f"已新增行政区：{j.name}（{j.code}）")


# ---------------------------------------------------------------- departments


@router.get("/departments", response_class=HTMLResponse)
def departments(
    request: Request,
    db: DbSession,
    principal: ReadDepartments,
    jurisdiction: str = "",
    q: str = "",
    inactive: int = 0,
) -> Response:
    jid = None
    if jurisdiction:
        jid = service.get_jurisdiction_by_code(db, jurisdiction).id
    items = repo.list_departments(
        db, principal, jurisdiction_id=jid, q=q[:64], include_inactive=bool(inactive)
    )
    contacts = {d.id: repo.current_contacts(db, d.id) for d in items}
    return render(
        request,
        "orgs/departments.html",
        {
            "items": items,
            "contacts": contacts,
            "jurisdiction": jurisdiction,
            "q": q,
            "inactive": inactive,
            "jurisdiction_options": [(j.code, j.name) for j in repo.list_jurisdictions(db)],
        },
        section="departments",
    )


def _new_department_page(
    request: Request, db: DbSession, extra: dict[str, Any] | None = None, status: int = 200
) -> Response:
    ctx: dict[str, Any] = {
        "form": {},
        "jurisdiction_options": [
            (j.code, f"{j.name}（{j.code}）") for j in repo.list_jurisdictions(db)
        ],
    }
    ctx.update(extra or {})
    return render(
        request, "orgs/department_new.html", ctx, status_code=status, section="departments"
    )


@router.get("/departments/new", response_class=HTMLResponse)
def department_new(request: Request, db: DbSession, _p: ManageDepartments) -> Response:
    return _new_department_page(request, db)


@router.post("/departments", response_class=HTMLResponse)
def department_create(
    request: Request, db: DbSession, principal: ManageDepartments, form: FormDict
) -> Response:
    data = dict(form)
    data["is_data_authority"] = "true" if form.get("is_data_authority") else "false"
    try:
        d = service.create_department(db, principal, parse_form(schemas.DepartmentIn, data))
    except DomainError as exc:
        db.rollback()
        return _new_department_page(request, db, _error_ctx(exc, form), exc.status_code)
    return redirect(f"/orgs/departments/{d.id}", f"已登记部门：{d.name}")


def _department_page(
    request: Request,
    db: DbSession,
    principal: Principal,
    department_id: int,
    extra: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    d = service.get_department(db, department_id)
    can_file = principal.can(Perm.CONTACT_FILE_ANY) or (
        principal.can(Perm.CONTACT_FILE_OWN) and principal.department_id == d.id
    )
    ctx: dict[str, Any] = {
        "d": d,
        "current": repo.current_contacts(db, d.id),
        "history": repo.contact_history(db, d.id),
        "can_file": can_file,
        "duty_options": DUTY_OPTIONS,
        "users": repo.list_users(db, principal, department_id=d.id)
        if principal.can(Perm.USER_READ)
        else [],
        "credentials": repo.list_credentials(db, principal, department_id=d.id)
        if principal.can(Perm.CREDENTIAL_READ)
        else [],
        "now": utcnow(),
        "form": {},
    }
    ctx.update(extra or {})
    return render(request, "orgs/department.html", ctx, status_code=status, section="departments")


@router.get("/departments/{department_id}", response_class=HTMLResponse)
def department_detail(
    request: Request, db: DbSession, principal: ReadDepartments, department_id: int
) -> Response:
    return _department_page(request, db, principal, department_id)


@router.post("/departments/{department_id}", response_class=HTMLResponse)
def department_update(
    request: Request,
    db: DbSession,
    principal: ManageDepartments,
    department_id: int,
    form: FormDict,
) -> Response:
    data = {k: form.get(k, "") for k in ("name", "short_name", "duties")}
    data["is_active"] = "true" if form.get("is_active") else "false"
    try:
        d = service.get_department(db, department_id)
        service.update_department(db, principal, d, parse_form(schemas.DepartmentUpdate, data))
    except DomainError as exc:
        db.rollback()
        return _department_page(
            request, db, principal, department_id, _error_ctx(exc, form), exc.status_code
        )
    return redirect(f"/orgs/departments/{department_id}", "部门信息已保存")


@router.post("/departments/{department_id}/contacts", response_class=HTMLResponse)
def contact_file(
    request: Request, db: DbSession, principal: LoggedIn, department_id: int, form: FormDict
) -> Response:
    try:
        d = service.get_department(db, department_id)
        filing = service.file_contact(db, principal, d, parse_form(schemas.ContactIn, form))
    except PermissionDenied:
        raise
    except DomainError as exc:
        db.rollback()
        return _department_page(
            request, db, principal, department_id, _error_ctx(exc, form), exc.status_code
        )
    return redirect(
        f"/orgs/departments/{department_id}", f"已备案：{filing.duty_label} {filing.name}"
    )


@router.post("/contacts/{filing_id}/end", response_class=HTMLResponse)
def contact_end(
    request: Request, db: DbSession, principal: LoggedIn, filing_id: int, form: FormDict
) -> Response:
    try:
        filing = service.end_contact(db, principal, filing_id, parse_form(schemas.ContactEnd, form))
    except PermissionDenied:
        raise
    except DomainError as exc:
        return redirect(request.headers.get("referer", "/orgs/departments") or "/", exc.message)
    return redirect(
        f"/orgs/departments/{filing.department_id}",
        f"已撤销备案：{filing.duty_label} {filing.name}",
    )


# ---------------------------------------------------------------- users


@router.get("/users", response_class=HTMLResponse)
def users(
    request: Request,
    db: DbSession,
    principal: ReadUsers,
    department_id: str = "",
    role: str = "",
    q: str = "",
) -> Response:
    dept = int(department_id) if department_id.isdigit() else None
    items = repo.list_users(db, principal, department_id=dept, role=role or None, q=q[:64])
    return render(
        request,
        "orgs/users.html",
        {
            "items": items,
            "department_id": department_id,
            "role": role,
            "q": q,
            "department_options": _department_options(db, principal),
            "role_options": ROLE_OPTIONS,
        },
        section="users",
    )


def _user_form_page(
    request: Request,
    db: DbSession,
    principal: Principal,
    user_id: int | None,
    extra: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    user = service.get_user(db, principal, user_id) if user_id else None
    ctx: dict[str, Any] = {
        "u": user,
        "form": {},
        "role_options": ROLE_OPTIONS,
        "department_options": _department_options(db, principal),
    }
    ctx.update(extra or {})
    return render(request, "orgs/user_form.html", ctx, status_code=status, section="users")


@router.get("/users/new", response_class=HTMLResponse)
def user_new(request: Request, db: DbSession, principal: ManageUsers) -> Response:
    return _user_form_page(request, db, principal, None)


@router.post("/users", response_class=HTMLResponse)
def user_create(
    request: Request, db: DbSession, principal: ManageUsers, form: FormDict
) -> Response:
    try:
        u = service.create_user(db, principal, parse_form(schemas.UserIn, form))
    except DomainError as exc:
        db.rollback()
        return _user_form_page(request, db, principal, None, _error_ctx(exc, form), exc.status_code)
    return redirect(f"/orgs/users/{u.id}", f"已创建用户 {u.username}，首次登录须修改密码")


@router.get("/users/{user_id}", response_class=HTMLResponse)
def user_detail(request: Request, db: DbSession, principal: ReadUsers, user_id: int) -> Response:
    return _user_form_page(request, db, principal, user_id)


@router.post("/users/{user_id}", response_class=HTMLResponse)
def user_update(
    request: Request, db: DbSession, principal: ManageUsers, user_id: int, form: FormDict
) -> Response:
    data: dict[str, Any] = {k: form.get(k, "") for k in ("display_name", "role", "phone")}
    data["department_id"] = form.get("department_id") or None
    data["is_active"] = "true" if form.get("is_active") else "false"
    try:
        u = service.get_user(db, principal, user_id)
        service.update_user(db, principal, u, parse_form(schemas.UserUpdate, data))
    except DomainError as exc:
        db.rollback()
        return _user_form_page(
            request, db, principal, user_id, _error_ctx(exc, form), exc.status_code
        )
    return redirect(f"/orgs/users/{user_id}", "用户信息已保存")


@router.post("/users/{user_id}/reset-password", response_class=HTMLResponse)
def user_reset_password(
    request: Request, db: DbSession, principal: ManageUsers, user_id: int, form: FormDict
) -> Response:
    try:
        u = service.get_user(db, principal, user_id)
        service.reset_password(db, principal, u, parse_form(schemas.PasswordReset, form))
    except DomainError as exc:
        db.rollback()
        return _user_form_page(
            request, db, principal, user_id, _error_ctx(exc, form), exc.status_code
        )
    return redirect(f"/orgs/users/{user_id}", "密码已重置，用户下次登录须修改密码")


# ---------------------------------------------------------------- app credentials


def _credentials_page(
    request: Request,
    db: DbSession,
    principal: Principal,
    extra: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    ctx: dict[str, Any] = {
        "items": repo.list_credentials(db, principal),
        "now": utcnow(),
        "form": {},
        "department_options": _department_options(db, principal),
        "expiring": service.credential_expires_soon,
    }
    ctx.update(extra or {})
    response = render(
        request, "orgs/credentials.html", ctx, status_code=status, section="credentials"
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/credentials", response_class=HTMLResponse)
def credentials(request: Request, db: DbSession, principal: ReadCredentials) -> Response:
    return _credentials_page(request, db, principal)


@router.post("/credentials", response_class=HTMLResponse)
def credential_create(
    request: Request, db: DbSession, principal: ManageCredentials, form: FormDict
) -> Response:
    try:
        issued = service.create_credential(db, principal, parse_form(schemas.CredentialIn, form))
    except DomainError as exc:
        db.rollback()
        return _credentials_page(request, db, principal, _error_ctx(exc, form), exc.status_code)
    # shown once, on this response only; never redirected to a page that could show it again
    return _credentials_page(request, db, principal, {"issued": issued}, 201)


@router.post("/credentials/{credential_id}/revoke", response_class=HTMLResponse)
def credential_revoke(
    request: Request,
    db: DbSession,
    principal: ManageCredentials,
    credential_id: int,
    form: FormDict,
) -> Response:
    try:
        cred = service.get_credential(db, principal, credential_id)
        service.revoke_credential(db, principal, cred, parse_form(schemas.CredentialRevoke, form))
    except DomainError as exc:
        db.rollback()
        return _credentials_page(request, db, principal, _error_ctx(exc, form), exc.status_code)
    return redirect("/orgs/credentials", f"已吊销凭证 {cred.key_id}（{cred.system_name}）")
