"""Log-in, log-out, the home page and the user's own page."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from govshare.config import get_settings
from govshare.deps import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    CurrentPrincipal,
    DbSession,
    LoggedIn,
    client_ip,
    session_token,
)
from govshare.errors import CsrfFailed, DomainError
from govshare.orgs import repository as orgs_repo
from govshare.orgs import schemas as orgs_schemas
from govshare.orgs import service as orgs_service
from govshare.orgs.models import Department, User
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.rules import service as rules_service
from govshare.security import new_token
from govshare.web import FormDict, parse_form, redirect, render

router = APIRouter()


def _safe_next(nxt: str | None) -> str:
    if nxt and nxt.startswith("/") and not nxt.startswith("//"):
        return nxt
    return "/"


def set_session_cookie(response: Response, token: str) -> None:
    settings = get_settings()
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        max_age=settings.session_hours * 3600,
        path="/",
    )


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, principal: CurrentPrincipal, next: str = "/") -> Response:
    if principal.kind == "user":
        return redirect(_safe_next(next))
    token = new_token(16)
    response = render(request, "login.html", {"next": _safe_next(next), "login_csrf": token})
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/login")
    return response


@router.post("/login", response_class=HTMLResponse)
def login_submit(
    request: Request,
    db: DbSession,
    username: str = Form(""),
    password: str = Form(""),
    login_csrf: str = Form(""),
    next: str = Form("/"),
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not expected or expected != login_csrf:
        raise CsrfFailed("登录页已过期，请刷新后重新登录")
    outcome = orgs_service.login(
        db, username.strip(), password, client_ip(request), request.headers.get("user-agent", "")
    )
    if outcome.error or outcome.token is None:
        response = render(
            request,
            "login.html",
            {
                "next": _safe_next(next),
                "login_csrf": expected,
                "error": outcome.error,
                "username": username,
            },
            status_code=401,
        )
        return response
    target = (
        "/me?must_change=1"
        if outcome.user and outcome.user.must_change_password
        else _safe_next(next)
    )
    done = redirect(target)
    set_session_cookie(done, outcome.token)
    done.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return done


@router.post("/logout")
def logout(request: Request, db: DbSession, principal: LoggedIn) -> Response:
    token = session_token(request)
    if token:
        orgs_service.logout(db, principal, token)
    response = redirect("/login", "您已安全退出")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request, db: DbSession, principal: LoggedIn) -> Response:
    user = db.get(User, principal.id) if principal.kind == "user" else None
    department = db.get(Department, principal.department_id) if principal.department_id else None
    jurisdiction = department.jurisdiction if department else None
    effective = rules_service.rulebook_chain(db, jurisdiction)
    today = date.today()
    warnings = (
        rules_service.coverage_warnings(db, today) if principal.can(Perm.CALENDAR_MANAGE) else []
    )
    contacts = orgs_repo.current_contacts(db, department.id) if department else []
    stats = {}
    if principal.can(Perm.DEPARTMENT_MANAGE):
        from sqlalchemy import func, select

        from govshare.orgs.models import AppCredential

        stats = {
            "jurisdictions": len(orgs_repo.list_jurisdictions(db)),
            "departments": db.scalar(select(func.count(Department.id))) or 0,
            "users": db.scalar(select(func.count(User.id))) or 0,
            "credentials": db.scalar(
                select(func.count(AppCredential.id)).where(AppCredential.revoked_at.is_(None))
            )
            or 0,
            "departments_without_contacts": sum(
                1
                for d in orgs_repo.list_departments(db, principal)
                if not orgs_repo.current_contacts(db, d.id)
            ),
        }
    return render(
        request,
        "home.html",
        {
            **_aggregation_cards(db, principal),
            "user": user,
            "department": department,
            "jurisdiction": jurisdiction,
            "effective": effective,
            "warnings": warnings,
            "contacts": contacts,
            "stats": stats,
            "today": today,
        },
        section="home",
    )


def _aggregation_cards(db: Session, principal: Principal) -> dict[str, Any]:
    """Data quality, one-source flags and pending deletion requests for the home page."""
    from govshare.ingestion import quality, records, sources
    from govshare.ingestion.models import DeletionStatus

    cards: dict[str, Any] = {}
    if principal.can(Perm.QUALITY_READ):
        cards["quality"] = quality.dashboard_summary(db, principal)
    if principal.can(Perm.SOURCE_READ):
        cards["sources"] = sources.dashboard_summary(db, principal)
    if principal.can(Perm.RECORD_DELETE_REVIEW):
        cards["pending_deletions"] = len(
            records.list_requests(db, principal, status=DeletionStatus.PENDING.value)
        )
    return cards


@router.get("/me", response_class=HTMLResponse)
def me_page(request: Request, db: DbSession, principal: LoggedIn, must_change: int = 0) -> Response:
    user = db.get(User, principal.id) if principal.kind == "user" else None
    return render(request, "me.html", {"user": user, "must_change": must_change}, section="me")


@router.post("/me/password", response_class=HTMLResponse)
def me_password(request: Request, db: DbSession, principal: LoggedIn, form: FormDict) -> Response:
    user = db.get(User, principal.id) if principal.kind == "user" else None
    try:
        data = parse_form(orgs_schemas.PasswordChange, form)
        orgs_service.change_own_password(db, principal, data)
    except DomainError as exc:
        return render(
            request,
            "me.html",
            {"user": user, "error": exc.message, "error_field": exc.field},
            status_code=exc.status_code,
            section="me",
        )
    return redirect("/me", "密码已修改")
