"""The orgs JSON API: log-in, identity, jurisdictions, departments, contacts, users,
app credentials; each change audited."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.audit.models import AuditEntry
from govshare.orgs.codes import credit_code
from govshare.orgs.models import AppCredential, User
from govshare.permissions import Role
from tests.conftest import TEST_PASSWORD, Factory, login


def actions(db: Session) -> list[str]:
    return list(db.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))


def test_login_whoami_and_audit(client, db: Session, factory: Factory) -> None:
    user = factory.user(Role.DEPT_OFFICER)
    token = login(client, user.username)
    me = client.get("/api/v1/me").json()
    assert me["role"] == "dept_officer"
    assert me["role_label"] == "部门数据专员"
    assert me["department_id"] == user.department_id
    assert me["csrf_token"] == token
    assert "orgs:contact:file_own" in me["permissions"]
    assert "orgs:user:manage" not in me["permissions"]
    assert "orgs:session:login" in actions(db)


def test_wrong_password_is_refused_counted_and_audited(client, db: Session, factory: Factory):
    user = factory.user()
    r = client.post("/api/v1/auth/login", json={"username": user.username, "password": "nope"})
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "用户名或密码错误"
    db.refresh(user)
    assert user.failed_logins == 1
    assert actions(db)[-1] == "orgs:session:login_failed"


def test_five_failures_lock_the_account(client, db: Session, factory: Factory) -> None:
    user = factory.user()
    for _ in range(5):
        client.post("/api/v1/auth/login", json={"username": user.username, "password": "x"})
    r = client.post(
        "/api/v1/auth/login", json={"username": user.username, "password": TEST_PASSWORD}
    )
    assert r.status_code == 401
    assert "锁定" in r.json()["error"]["message"]


def test_anonymous_gets_401_and_unsafe_call_without_csrf_is_refused(client, factory: Factory):
    assert client.get("/api/v1/me").status_code == 401
    user = factory.user(Role.AUTHORITY)
    login(client, user.username)
    del client.headers["X-CSRF-Token"]
    r = client.post(
        "/api/v1/jurisdictions", json={"code": "990000", "name": "某省", "level": "province"}
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "csrf_failed"


def test_logout_ends_the_session(client, factory: Factory) -> None:
    user = factory.user()
    login(client, user.username)
    assert client.post("/api/v1/auth/logout").status_code == 204
    assert client.get("/api/v1/me").status_code == 401


def test_authority_builds_jurisdictions_and_departments(client, db: Session, factory: Factory):
    login(client, factory.user(Role.AUTHORITY).username)
    r = client.post(
        "/api/v1/jurisdictions", json={"code": "980000", "name": "测试省", "level": "province"}
    )
    assert r.status_code == 201, r.text
    r = client.post(
        "/api/v1/jurisdictions",
        json={
            "code": "980100",
            "name": "测试市",
            "level": "city",
            "parent_code": "980000",
            "rulebook": "nanyang-2021",
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["rulebook"] == "nanyang-2021"
    # a county cannot sit above a city
    r = client.post(
        "/api/v1/jurisdictions",
        json={"code": "980101", "name": "错层县", "level": "province", "parent_code": "980100"},
    )
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "level"

    code = credit_code("980100", 77)
    r = client.post(
        "/api/v1/departments",
        json={"name": "测试市公安局", "credit_code": code, "jurisdiction_code": "980100"},
    )
    assert r.status_code == 201, r.text
    dept_id = r.json()["id"]
    bad = code[:-1] + ("0" if code[-1] != "0" else "1")
    r = client.post(
        "/api/v1/departments",
        json={"name": "测试市民政局", "credit_code": bad, "jurisdiction_code": "980100"},
    )
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "credit_code"
    assert "校验位" in r.json()["error"]["message"]
    r = client.post(
        "/api/v1/departments",
        json={"name": "另一个局", "credit_code": code, "jurisdiction_code": "980100"},
    )
    assert r.status_code == 409
    r = client.patch(f"/api/v1/departments/{dept_id}", json={"short_name": "市公安局"})
    assert r.json()["short_name"] == "市公安局"
    acts = actions(db)
    for a in (
        "orgs:jurisdiction:create",
        "rules:rulebook:assign",
        "orgs:department:create",
        "orgs:department:update",
    ):
        assert a in acts


def test_officer_files_own_contacts_and_history_is_kept(client, db: Session, factory: Factory):
    dept = factory.department()
    other = factory.department()
    officer = factory.user(Role.DEPT_OFFICER, department=dept)
    login(client, officer.username)
    url = f"/api/v1/departments/{dept.id}/contacts"
    r = client.post(
        url, json={"duty": "head", "name": "张建国", "title": "局长", "phone": "0377-6000001"}
    )
    assert r.status_code == 201, r.text
    first = r.json()
    # a new head supersedes the old one automatically; nothing is edited in place
    r = client.post(
        url,
        json={
            "duty": "head",
            "name": "李卫东",
            "title": "局长",
            "mobile": "13800000001",
            "note": "人员调整",
        },
    )
    assert r.status_code == 201
    current = client.get(url).json()
    assert [c["name"] for c in current] == ["李卫东"]
    history = client.get(url + "?history=true").json()
    assert [c["name"] for c in history] == ["李卫东", "张建国"]
    old = next(c for c in history if c["id"] == first["id"])
    assert old["superseded_at"] is not None
    assert old["replaced_by_id"] == current[0]["id"]
    assert old["superseded_by"].startswith("测试")
    # neither phone given
    r = client.post(url, json={"duty": "liaison", "name": "王芳"})
    assert r.status_code == 422
    # another department's contacts are not this officer's to file
    r = client.post(
        f"/api/v1/departments/{other.id}/contacts",
        json={"duty": "liaison", "name": "王芳", "phone": "1234567"},
    )
    assert r.status_code == 403
    r = client.post(f"/api/v1/contacts/{current[0]['id']}/end", json={"note": "岗位撤销"})
    assert r.status_code == 200
    assert client.get(url).json() == []
    assert actions(db).count("orgs:contact:file") == 2
    assert "orgs:contact:end" in actions(db)
    assert "orgs:access:denied" in actions(db)


def test_user_management_rules(client, db: Session, factory: Factory) -> None:
    authority = factory.user(Role.AUTHORITY)
    dept = factory.department()
    login(client, authority.username)
    base = {
        "username": "newofficer",
        "display_name": "新专员",
        "role": "dept_officer",
        "department_id": dept.id,
    }
    r = client.post("/api/v1/users", json=base | {"password": "short"})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "password"
    r = client.post("/api/v1/users", json=base | {"password": "Strong-Passw0rd"})
    assert r.status_code == 201, r.text
    created = db.get(User, r.json()["id"])
    assert created is not None
    assert created.password_hash.startswith("$argon2")
    assert created.must_change_password
    # authority role only inside the data authority
    r = client.post(
        "/api/v1/users",
        json=base | {"username": "x1", "role": "authority", "password": "Strong-Passw0rd"},
    )
    assert r.status_code == 422
    # department roles need a department; public users have none
    r = client.post(
        "/api/v1/users",
        json=base | {"username": "x2", "department_id": None, "password": "Strong-Passw0rd"},
    )
    assert r.status_code == 422
    # deactivate, then the user cannot log in
    r = client.patch(f"/api/v1/users/{created.id}", json={"is_active": False})
    assert r.status_code == 200
    client.headers.pop("X-CSRF-Token")
    client.cookies.clear()
    r = client.post(
        "/api/v1/auth/login", json={"username": "newofficer", "password": "Strong-Passw0rd"}
    )
    assert r.status_code == 401
    assert "停用" in r.json()["error"]["message"]


def test_cannot_demote_or_deactivate_self(client, factory: Factory) -> None:
    authority = factory.user(Role.AUTHORITY)
    login(client, authority.username)
    r = client.patch(f"/api/v1/users/{authority.id}", json={"is_active": False})
    assert r.status_code == 422


def test_credentials_shown_once_hashed_expiring_revocable(client, db: Session, factory: Factory):
    authority = factory.user(Role.AUTHORITY)
    dept = factory.department()
    login(client, authority.username)
    r = client.post(
        "/api/v1/credentials",
        json={"department_id": dept.id, "system_name": "不动产登记系统", "valid_days": 30},
    )
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    token = r.json()["token"]
    cred_id = r.json()["credential"]["id"]
    cred = db.get(AppCredential, cred_id)
    assert cred is not None
    assert token not in (cred.secret_hash, cred.key_id)
    assert len(cred.secret_hash) == 64
    # the listing never shows the secret
    assert token not in client.get("/api/v1/credentials").text
    # the system authenticates with it
    r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    me = r.json()
    assert me["kind"] == "credential"
    assert me["role"] == "system"
    assert me["department_id"] == dept.id
    bad = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}x"})
    assert bad.status_code == 401
    r = client.post(f"/api/v1/credentials/{cred_id}/revoke", json={"reason": "系统下线"})
    assert r.status_code == 200
    r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "应用凭证已吊销"
    assert {"orgs:credential:create", "orgs:credential:revoke"} <= set(actions(db))


def test_expired_credential_is_refused(client, db: Session, factory: Factory) -> None:
    from datetime import timedelta

    from govshare.db import utcnow

    login(client, factory.user(Role.AUTHORITY).username)
    dept = factory.department()
    r = client.post("/api/v1/credentials", json={"department_id": dept.id, "system_name": "旧系统"})
    cred = db.get(AppCredential, r.json()["credential"]["id"])
    assert cred is not None
    cred.expires_at = utcnow() - timedelta(seconds=1)
    db.flush()
    r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {r.json()['token']}"})
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "应用凭证已过期"
