"""The orgs web pages: forms, CSRF, errors re-rendered in Chinese, one-time credentials."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.orgs.codes import credit_code
from govshare.orgs.models import AppCredential, ContactFiling, Department, User
from govshare.permissions import Role
from tests.conftest import TEST_PASSWORD, Factory, login


def page_login(client: TestClient, username: str, password: str = TEST_PASSWORD) -> str:
    """Log in through the form; returns the page CSRF token."""
    page = client.get("/login")
    token = re.search(r'name="login_csrf" value="([^"]+)"', page.text)
    assert token is not None
    r = client.post(
        "/login",
        data={"username": username, "password": password, "login_csrf": token.group(1)},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    home = client.get("/")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', home.text)
    assert csrf is not None
    return csrf.group(1)


def test_login_form_errors_and_redirects(client: TestClient, factory: Factory) -> None:
    user = factory.user(Role.DEPT_OFFICER)
    assert client.get("/orgs/departments", follow_redirects=False).headers["location"] == (
        "/login?next=/orgs/departments"
    )
    page = client.get("/login")
    token = re.search(r'name="login_csrf" value="([^"]+)"', page.text)
    assert token is not None
    r = client.post(
        "/login",
        data={"username": user.username, "password": "wrong", "login_csrf": token.group(1)},
    )
    assert r.status_code == 401
    assert "用户名或密码错误" in r.text
    # a login post without the login page's token is refused
    r = client.post(
        "/login",
        data={"username": user.username, "password": TEST_PASSWORD, "login_csrf": "forged"},
    )
    assert r.status_code == 403
    r = client.post(
        "/login",
        data={
            "username": user.username,
            "password": TEST_PASSWORD,
            "login_csrf": token.group(1),
            "next": "//evil.example",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/"


def test_first_login_asks_for_a_new_password(client: TestClient, factory: Factory) -> None:
    user = factory.user(Role.DEPT_HEAD, must_change_password=True)
    page = client.get("/login")
    token = re.search(r'name="login_csrf" value="([^"]+)"', page.text)
    assert token is not None
    r = client.post(
        "/login",
        data={"username": user.username, "password": TEST_PASSWORD, "login_csrf": token.group(1)},
        follow_redirects=False,
    )
    assert r.headers["location"] == "/me?must_change=1"
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/me").text)
    assert csrf is not None
    r = client.post(
        "/me/password",
        data={"csrf_token": csrf.group(1), "old_password": TEST_PASSWORD, "new_password": "abc"},
    )
    assert r.status_code == 422
    assert "密码至少 10 位" in r.text
    r = client.post(
        "/me/password",
        data={
            "csrf_token": csrf.group(1),
            "old_password": TEST_PASSWORD,
            "new_password": "New-Passw0rd-2026",
        },
    )
    assert r.status_code == 200
    assert "密码已修改" in r.text


def test_forms_without_csrf_are_refused(client: TestClient, db: Session, factory: Factory):
    page_login(client, factory.user(Role.AUTHORITY).username)
    r = client.post(
        "/orgs/jurisdictions", data={"code": "950000", "name": "某省", "level": "province"}
    )
    assert r.status_code == 403
    assert "表单已过期" in r.text


def test_authority_registers_a_department_with_errors_first(
    client: TestClient, db: Session, factory: Factory
) -> None:
    city = factory.jurisdiction("页面市", "city", code="950100")
    csrf = page_login(client, factory.user(Role.AUTHORITY).username)
    good = credit_code("950100", 4242)
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    form = {
        "csrf_token": csrf,
        "name": "页面市民政局",
        "credit_code": bad,
        "jurisdiction_code": city.code,
    }
    r = client.post("/orgs/departments", data=form)
    assert r.status_code == 422
    assert "统一社会信用代码" in r.text
    assert "页面市民政局" in r.text  # what the user typed is kept
    r = client.post("/orgs/departments", data=form | {"credit_code": good}, follow_redirects=False)
    assert r.status_code == 303
    dept = db.scalar(select(Department).where(Department.credit_code == good))
    assert dept is not None
    page = client.get(r.headers["location"])
    assert "已登记部门：页面市民政局" in page.text


def test_head_files_and_ends_contacts_of_own_department(
    client: TestClient, db: Session, factory: Factory
) -> None:
    dept = factory.department()
    head = factory.user(Role.DEPT_HEAD, dept)
    csrf = page_login(client, head.username)
    r = client.post(
        f"/orgs/departments/{dept.id}/contacts",
        data={"csrf_token": csrf, "duty": "officer", "name": "钱多多", "phone": "0371-1234567"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    filing = db.scalar(select(ContactFiling).where(ContactFiling.name == "钱多多"))
    assert filing is not None
    r = client.post(
        f"/orgs/contacts/{filing.id}/end",
        data={"csrf_token": csrf, "note": "调离"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    db.refresh(filing)
    assert filing.superseded_at is not None
    assert "撤销：调离" in filing.note
    page = client.get(f"/orgs/departments/{dept.id}")
    assert "钱多多" in page.text  # still in the history
    assert "撤销（" in page.text


def test_credential_token_shown_once(client: TestClient, db: Session, factory: Factory):
    dept = factory.department()
    csrf = page_login(client, factory.user(Role.AUTHORITY).username)
    r = client.post(
        "/orgs/credentials",
        data={
            "csrf_token": csrf,
            "department_id": dept.id,
            "system_name": "婚姻登记系统",
            "valid_days": "90",
        },
    )
    assert r.status_code == 201
    assert r.headers["cache-control"] == "no-store"
    token = re.search(r"gsk_[0-9a-f]{16}_[A-Za-z0-9_\-]+", r.text)
    assert token is not None
    assert token.group(0) not in client.get("/orgs/credentials").text
    cred = db.scalar(select(AppCredential).where(AppCredential.system_name == "婚姻登记系统"))
    assert cred is not None
    r = client.post(
        f"/orgs/credentials/{cred.id}/revoke",
        data={"csrf_token": csrf, "reason": "测试吊销"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert "已吊销" in client.get("/orgs/credentials").text


def test_user_pages_create_edit_reset(client: TestClient, db: Session, factory: Factory):
    dept = factory.department()
    csrf = page_login(client, factory.user(Role.AUTHORITY).username)
    r = client.post(
        "/orgs/users",
        data={
            "csrf_token": csrf,
            "username": "pagesuser",
            "display_name": "页面用户",
            "role": "dept_reviewer",
            "department_id": str(dept.id),
            "password": "Pages-Passw0rd",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    user = db.scalar(select(User).where(User.username == "pagesuser"))
    assert user is not None
    r = client.post(
        f"/orgs/users/{user.id}",
        data={
            "csrf_token": csrf,
            "display_name": "页面用户",
            "role": "public",
            "department_id": "",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    db.refresh(user)
    assert (user.role, user.department_id, user.is_active) == ("public", None, False)
    r = client.post(
        f"/orgs/users/{user.id}/reset-password",
        data={"csrf_token": csrf, "new_password": "Reset-Passw0rd"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    db.refresh(user)
    assert user.must_change_password


def test_no_page_loads_anything_from_outside(client: TestClient, factory: Factory) -> None:
    login(client, factory.user(Role.AUTHORITY).username)
    pages = [
        "/login",
        "/",
        "/me",
        "/orgs/jurisdictions",
        "/orgs/departments",
        "/orgs/departments/new",
        "/orgs/users",
        "/orgs/users/new",
        "/orgs/credentials",
        "/docs",
    ]
    for path in pages:
        html = client.get(path).text
        refs = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)', html)
        outside = [u for u in refs if re.match(r"^(https?:)?//", u)]
        assert outside == [], f"{path} loads {outside}"
        for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
            assert client.get(asset).status_code == 200, asset
