"""The inbox through the JSON API and the pages; the unread badge in the top bar."""

from __future__ import annotations

import re

from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from govshare.deps import DbSession, csrf_protect, get_principal
from govshare.notifications import service
from govshare.orgs import schemas as orgs_schemas
from govshare.orgs import service as orgs_service
from govshare.orgs.models import User
from govshare.permissions import Role
from govshare.principal import Principal
from tests.conftest import Factory, login

KIND = "sharing:application:new"


def _notify(db: Session, user: User, title: str, link: str, key: str | None = None) -> None:
    service.notify(db, [user.id], KIND, title, "请在 5 个工作日内答复", link, key)
    db.commit()


def _badge(html: str) -> str | None:
    m = re.search(r'data-testid="unread-badge">([^<]*)<', html)
    return m.group(1) if m else None


def test_api_shapes_and_scoping(client: TestClient, db: Session, factory: Factory) -> None:
    a, b = factory.user(Role.DEPT_REVIEWER), factory.user(Role.DEPT_OFFICER)
    _notify(db, a, "新的共享申请待审核", "/catalog/1")
    _notify(db, a, "申请人已补正材料", "/catalog/2")
    _notify(db, b, "答复已作出", "/catalog/3")
    login(client, a.username)
    r = client.get("/api/v1/notifications")
    assert r.status_code == 200, r.text
    out = r.json()
    assert set(out) == {"items", "page", "has_next", "unread_count"}
    assert (out["page"], out["has_next"], out["unread_count"]) == (1, False, 2)
    assert [n["title"] for n in out["items"]] == ["申请人已补正材料", "新的共享申请待审核"]
    item = out["items"][0]
    assert set(item) == {"id", "kind", "title", "body", "link", "created_at", "read_at", "is_read"}
    assert (item["kind"], item["link"], item["read_at"], item["is_read"]) == (
        KIND,
        "/catalog/2",
        None,
        False,
    )
    assert client.get("/api/v1/notifications/unread-count").json() == {"unread_count": 2}
    # user B's notification is not A's to see or mark
    b_id = service.inbox(db, factory.principal(b)).items[0].id
    r = client.post("/api/v1/notifications/read", json={"ids": [b_id]})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    r = client.post("/api/v1/notifications/read", json={"ids": [item["id"]]})
    assert r.status_code == 200, r.text
    assert r.json() == {"marked": 1, "unread_count": 1}
    unread = client.get("/api/v1/notifications", params={"unread": "true"}).json()
    assert [n["title"] for n in unread["items"]] == ["新的共享申请待审核"]
    # exactly one of ids / all
    assert client.post("/api/v1/notifications/read", json={}).status_code == 422
    both = {"ids": [item["id"]], "all": True}
    assert client.post("/api/v1/notifications/read", json=both).status_code == 422
    r = client.post("/api/v1/notifications/read", json={"all": True})
    assert r.json() == {"marked": 1, "unread_count": 0}
    assert client.get("/api/v1/notifications?page=2").json()["items"] == []
    assert service.unread_count(db, b.id) == 1


def test_api_requires_login_and_gives_app_credentials_an_empty_inbox(
    client: TestClient, db: Session, factory: Factory
) -> None:
    assert client.get("/api/v1/notifications").status_code == 401
    authority = factory.authority()
    department = factory.department()
    user = factory.user(Role.DEPT_OFFICER, department)
    _notify(db, user, "新的共享申请待审核", "/catalog")
    issued = orgs_service.create_credential(
        db,
        authority,
        orgs_schemas.CredentialIn(department_id=department.id, system_name="户籍系统"),
    )
    db.commit()
    headers = {"Authorization": f"Bearer {issued.token}"}
    r = client.get("/api/v1/notifications", headers=headers)
    assert r.status_code == 200
    assert r.json() == {"items": [], "page": 1, "has_next": False, "unread_count": 0}
    r = client.get("/api/v1/notifications/unread-count", headers=headers)
    assert r.json() == {"unread_count": 0}
    r = client.post("/api/v1/notifications/read", json={"all": True}, headers=headers)
    assert r.json() == {"marked": 0, "unread_count": 0}
    user_note = service.inbox(db, factory.principal(user)).items[0].id
    r = client.post("/api/v1/notifications/read", json={"ids": [user_note]}, headers=headers)
    assert r.status_code == 404
    assert service.unread_count(db, user.id) == 1


def test_inbox_page_open_and_badge(client: TestClient, db: Session, factory: Factory) -> None:
    a, b = factory.user(Role.DEPT_REVIEWER), factory.user(Role.DEPT_OFFICER)
    login(client, a.username)
    page = client.get("/notifications")
    assert page.status_code == 200
    assert "没有通知。" in page.text
    assert 'data-testid="bell"' in page.text
    assert _badge(page.text) is None
    assert "全部标为已读" not in page.text

    _notify(db, a, "新的共享申请待审核", "/catalog?q=%E6%88%B7%E7%B1%8D")
    _notify(db, a, "办理时限还剩 2 个工作日", "/me")
    _notify(db, b, "B 的通知", "/catalog")
    page = client.get("/notifications")
    assert _badge(page.text) == "2"
    assert "B 的通知" not in page.text
    assert page.text.count('data-unread="true"') == 2
    assert 'fw-bold" href="/notifications/' in page.text
    ids = [n.id for n in service.inbox(db, factory.principal(a)).items]

    # opening marks read and sends the user to the item (303)
    r = client.get(f"/notifications/{ids[1]}/open", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/catalog?q=%E6%88%B7%E7%B1%8D"
    page = client.get("/notifications")
    assert _badge(page.text) == "1"
    assert page.text.count('data-unread="true"') == 1
    only_unread = client.get("/notifications?unread=1")
    assert "办理时限还剩 2 个工作日" in only_unread.text
    assert "新的共享申请待审核" not in only_unread.text

    # another user's notification cannot be opened
    b_id = service.inbox(db, factory.principal(b)).items[0].id
    r = client.get(f"/notifications/{b_id}/open", follow_redirects=False)
    assert r.status_code == 404
    assert service.unread_count(db, b.id) == 1

    # "全部标为已读" needs the CSRF token; then the badge is gone
    csrf = client.headers.pop("X-CSRF-Token")
    assert client.post("/notifications/read-all", data={}).status_code == 403
    assert service.unread_count(db, a.id) == 1
    r = client.post("/notifications/read-all", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    page = client.get("/notifications")
    assert "已将 1 条通知标为已读" in page.text
    assert _badge(page.text) is None
    assert 'data-unread="true"' not in page.text
    assert "没有通知。" in client.get("/notifications?unread=1").text


def _principal_leaving_db(
    request: Request, db: DbSession, _csrf: None = Depends(csrf_protect)
) -> Principal:
    """``get_principal`` plus the one line the badge needs on every page (see the test below):
    ``request.state.db = db``."""
    request.state.db = db
    return get_principal(request, db, None)


def test_badge_on_any_page_once_the_session_is_on_request_state(
    app: FastAPI, client: TestClient, db: Session, factory: Factory
) -> None:
    app.dependency_overrides[get_principal] = _principal_leaving_db
    a = factory.user(Role.DEPT_OFFICER)
    _notify(db, a, "新的共享申请待审核", "/catalog")
    _notify(db, a, "办理时限已过", "/catalog")
    login(client, a.username)
    for path in ("/", "/me", "/catalog"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert _badge(page.text) == "2", path
    client.post("/api/v1/notifications/read", json={"all": True})
    assert _badge(client.get("/").text) is None
    # an error page is rendered after the request's transaction ended: no query, no count
    _notify(db, a, "补正材料已提交", "/catalog")
    missing = client.get("/notifications/99999999/open")
    assert missing.status_code == 404
    assert _badge(missing.text) is None


def test_badge_on_other_pages(client: TestClient, db: Session, factory: Factory) -> None:
    a = factory.user(Role.DEPT_OFFICER)
    _notify(db, a, "新的共享申请待审核", "/catalog")
    login(client, a.username)
    home = client.get("/")
    assert home.status_code == 200
    assert 'data-testid="bell"' in home.text
    assert _badge(home.text) == "1"
