"""Every endpoint x every role: who is refused, who gets through, and nothing answers 500.

Routes that declare a permission with ``require(Perm.X)`` must answer 403 to every role
without X and must let every role with X past the check; every route but the log-in ones
refuses anonymous callers; no route answers 500, whatever the role."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from govshare.orgs import schemas
from govshare.orgs import service as orgs_service
from govshare.permissions import Perm, Role, permissions_for
from tests.conftest import Factory, login

PUBLIC = {
    ("POST", "/api/v1/auth/login"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/docs"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    # verifiers outside the platform check signed documents
    ("GET", "/api/v1/signatures/public-key"),
    ("POST", "/api/v1/signatures/verify"),
    ("POST", "/api/v1/signatures/verify-file"),
}
#: data-service calls authenticate app credentials themselves (a session cookie is not
#: enough) and write the usage ledger on their own connection, which cannot see this
#: test's uncommitted world: tests/dataservices/test_authorization.py covers them on a
#: committed database, every grant state against every method
CREDENTIAL_ONLY = {
    ("POST", "/api/v1/dataservices/{service_id}/query"),
    ("POST", "/api/v1/dataservices/{service_id}/verify"),
}
LOGOUT = {("POST", "/logout"), ("POST", "/api/v1/auth/logout")}


def all_routes(app: FastAPI) -> Iterator[tuple[str, APIRoute]]:
    def walk(routes: list[object], prefix: str) -> Iterator[tuple[str, APIRoute]]:
        for r in routes:
            if isinstance(r, APIRoute):
                yield prefix + r.path, r
            elif hasattr(r, "original_router"):
                yield from walk(r.original_router.routes, prefix + r.include_context.prefix)

    yield from walk(list(app.routes), "")


def required_perm(route: APIRoute) -> Perm | None:
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        perm = getattr(dep.call, "required_perm", None)
        if perm is not None:
            return Perm(perm)
        stack.extend(dep.dependencies)
    return None


@pytest.fixture
def world(db: Session, factory: Factory) -> dict[str, object]:
    city = factory.jurisdiction("矩阵市", "city", code="960100")
    authority_dept = factory.department(city, "矩阵市数据局", is_data_authority=True)
    dept = factory.department(city, "矩阵市公安局")
    users = {
        Role.AUTHORITY: factory.user(Role.AUTHORITY, authority_dept),
        Role.DEPT_OFFICER: factory.user(Role.DEPT_OFFICER, dept),
        Role.DEPT_REVIEWER: factory.user(Role.DEPT_REVIEWER, dept),
        Role.DEPT_HEAD: factory.user(Role.DEPT_HEAD, dept),
        Role.OPERATOR: factory.user(Role.OPERATOR),
        Role.PUBLIC: factory.user(Role.PUBLIC),
    }
    target = factory.user(Role.DEPT_REVIEWER, dept)  # edited, reset, deactivated by the calls
    issued = orgs_service.create_credential(
        db,
        factory.principal(users[Role.AUTHORITY]),
        schemas.CredentialIn(department_id=dept.id, system_name="矩阵系统"),
    )
    db.flush()
    params = {
        "code": city.code,
        "department_id": str(dept.id),
        "user_id": str(target.id),
        "credential_id": str(issued.credential.id),
        "filing_id": "999999",
        "name": "national",
        "day": "2026-10-01",
        "year": "2026",
    }
    return {"users": users, "token": issued.token, "params": params}


def fill(path: str, params: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: params.get(m.group(1), "1"), path)


def call(client: TestClient, method: str, url: str, csrf: str | None) -> int:
    if url.startswith("/api/"):
        kwargs: dict[str, object] = {} if method == "GET" else {"json": {}}
    else:
        kwargs = {} if method == "GET" else {"data": {"csrf_token": csrf or ""}}
    r = client.request(method, url, follow_redirects=False, **kwargs)  # type: ignore[arg-type]
    return r.status_code


def test_every_route_for_every_role(app: FastAPI, world: dict[str, object]) -> None:
    routes = [(m, p, r) for p, r in all_routes(app) for m in sorted(r.methods)]
    assert len(routes) > 40
    params: dict[str, str] = world["params"]  # type: ignore[assignment]
    users = world["users"]  # type: ignore[assignment]
    failures: list[str] = []

    clients: dict[str, tuple[TestClient, str | None, frozenset[Perm]]] = {}
    anon = TestClient(app)
    clients["anonymous"] = (anon, None, frozenset())
    for role, user in users.items():  # type: ignore[attr-defined]
        c = TestClient(app)
        token = login(c, user.username)
        clients[role.value] = (c, token, permissions_for(role))
    system = TestClient(app, headers={"Authorization": f"Bearer {world['token']}"})
    clients["system"] = (system, None, permissions_for(Role.SYSTEM))

    for who, (client, csrf, perms) in clients.items():
        for method, path, route in routes:
            if (method, path) in LOGOUT | CREDENTIAL_ONLY:
                continue
            url = fill(path, params)
            status = call(client, method, url, csrf)
            where = f"{who} {method} {url} -> {status}"
            if status >= 500:
                failures.append(where + " (server error)")
                continue
            if (method, path) in PUBLIC:
                continue
            if who == "anonymous":
                expected = {303} if (method == "GET" and not path.startswith("/api/")) else {401}
                if status not in expected:
                    failures.append(where + f" (anonymous must get {expected})")
                continue
            if status == 401:
                failures.append(where + " (logged in, yet 401)")
                continue
            perm = required_perm(route)
            if perm is None:
                continue
            if perm in perms and status == 403:
                failures.append(where + f" (has {perm}, refused)")
            if perm not in perms and status != 403:
                failures.append(where + f" (lacks {perm}, not refused)")
    assert not failures, "\n".join(failures)


def test_every_route_declares_who_may_call_it(app: FastAPI) -> None:
    """A route either declares a permission, or is one of the few that only need a
    log-in (own identity, own password, log-out) or none; listed here so that a new route
    cannot forget its check unnoticed."""
    login_only = {
        ("GET", "/api/v1/me"),
        ("POST", "/api/v1/me/password"),
        ("GET", "/"),
        ("GET", "/me"),
        ("POST", "/me/password"),
        # checked in the service (own department, or any for the authority)
        ("POST", "/api/v1/departments/{department_id}/contacts"),
        ("POST", "/api/v1/contacts/{filing_id}/end"),
        ("POST", "/orgs/departments/{department_id}/contacts"),
        ("POST", "/orgs/contacts/{filing_id}/end"),
    }
    unchecked = [
        (m, p)
        for p, r in all_routes(app)
        for m in r.methods
        if required_perm(r) is None and (m, p) not in PUBLIC | LOGOUT | login_only | CREDENTIAL_ONLY
    ]
    assert unchecked == []
