"""Request dependencies: the database session, the principal, permission checks, loaders."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from govshare.audit import service as audit
from govshare.config import get_settings
from govshare.db import session_factory
from govshare.errors import CsrfFailed, NotAuthenticated, PermissionDenied
from govshare.orgs import service as orgs_service
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.security import csrf_ok

SESSION_COOKIE = "govshare_session"
LOGIN_CSRF_COOKIE = "govshare_login_csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def client_ip(request: Request) -> str:
    peer = request.client.host if request.client else ""
    if peer and peer in get_settings().trusted_proxies:
        forwarded = request.headers.get("x-forwarded-for", "")
        if forwarded:
            return forwarded.split(",")[-1].strip()[:64]
    return peer[:64]


def request_transaction(session: Session, request: Request) -> Iterator[Session]:
    """Commit once after the handler returns; roll back on any error. A refused access
    (PermissionDenied) is itself audited, after the rollback, in a transaction of its own."""
    try:
        yield session
        session.commit()
    except BaseException as exc:
        session.rollback()
        principal = getattr(request.state, "principal", None)
        if isinstance(exc, PermissionDenied) and isinstance(principal, Principal):
            audit.record(
                session,
                principal,
                "orgs:access:denied",
                "path",
                request.url.path[:128],
                {"method": request.method, "reason": exc.message},
            )
            session.commit()
        raise


def get_db(request: Request) -> Iterator[Session]:
    """One session per request, committed before the response is sent
    (``scope="function"``)."""
    session = session_factory()()
    try:
        yield from request_transaction(session, request)
    finally:
        session.close()


DbSession = Annotated[Session, Depends(get_db, scope="function")]


async def csrf_protect(request: Request) -> None:
    """Unsafe requests authenticated by the session cookie must carry the CSRF token
    (form field ``csrf_token`` or header ``X-CSRF-Token``). Bearer-token calls are exempt."""
    if request.method in SAFE_METHODS:
        return
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return
    presented = request.headers.get("x-csrf-token")
    if not presented and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get("csrf_token")
        presented = value if isinstance(value, str) else None
    if not csrf_ok(token, presented):
        raise CsrfFailed()


def get_principal(
    request: Request, db: DbSession, _csrf: None = Depends(csrf_protect)
) -> Principal:
    ip = client_ip(request)
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        principal = orgs_service.authenticate_credential(db, auth[7:].strip(), ip)
    else:
        token = request.cookies.get(SESSION_COOKIE)
        user = orgs_service.user_for_session_token(db, token) if token else None
        principal = orgs_service.principal_for_user(user, ip) if user else Principal.anonymous(ip)
    request.state.principal = principal
    # pages render with the request's own session (the unread count of the inbox badge):
    # on SQLite a second session would wait for this one's write lock
    request.state.db = db
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require_login(principal: CurrentPrincipal) -> Principal:
    if principal.kind == "anonymous":
        raise NotAuthenticated()
    return principal


LoggedIn = Annotated[Principal, Depends(require_login)]


def require(perm: Perm) -> Callable[[Principal], Principal]:
    """A dependency that lets the request through only with ``perm``."""

    def check(principal: LoggedIn) -> Principal:
        if not principal.can(perm):
            raise PermissionDenied()
        return principal

    check.__name__ = f"require_{perm.name.lower()}"
    check.required_perm = perm  # type: ignore[attr-defined]  # read by the authz matrix test
    return check


def session_token(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE)
