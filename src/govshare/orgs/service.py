"""Business logic of the orgs domain. Services flush, never commit; every change is audited."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session
from stdnum.cn import uscc

from govshare.audit import service as audit
from govshare.config import get_settings
from govshare.db import utcnow
from govshare.errors import Conflict, NotAuthenticated, NotFound, PermissionDenied, ValidationFailed
from govshare.orgs import repository as repo
from govshare.orgs import schemas
from govshare.orgs.models import (
    AppCredential,
    ContactFiling,
    Department,
    Duty,
    Jurisdiction,
    Level,
    User,
    UserSession,
)
from govshare.permissions import DEPARTMENT_ROLES, Perm, Role, permissions_for
from govshare.principal import Principal
from govshare.security import (
    DUMMY_HASH,
    hash_password,
    needs_rehash,
    new_token,
    password_problem,
    token_hash,
    verify_password,
)

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
CREDENTIAL_PREFIX = "gsk"
#: last_used_at is written at most this often per credential (keeps the hot path cheap)
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _require(actor: Principal, perm: Perm) -> None:
    if not actor.can(perm):
        raise PermissionDenied()


def _diff(obj: object, changes: dict[str, object]) -> dict[str, dict[str, object]]:
    return {
        k: {"before": getattr(obj, k), "after": v}
        for k, v in changes.items()
        if getattr(obj, k) != v
    }


# ---------------------------------------------------------------- jurisdictions


def get_jurisdiction(session: Session, jurisdiction_id: int) -> Jurisdiction:
    j = session.get(Jurisdiction, jurisdiction_id)
    if j is None:
        raise NotFound("行政区不存在")
    return j


def get_jurisdiction_by_code(session: Session, code: str) -> Jurisdiction:
    j = repo.jurisdiction_by_code(session, code)
    if j is None:
        raise NotFound(f"行政区划代码 {code} 不存在")
    return j


def create_jurisdiction(
    session: Session, actor: Principal, data: schemas.JurisdictionIn
) -> Jurisdiction:
    _require(actor, Perm.JURISDICTION_MANAGE)
    if repo.jurisdiction_by_code(session, data.code) is not None:
        raise Conflict(f"行政区划代码 {data.code} 已存在", field="code")
    parent = None
    if data.parent_code:
        parent = get_jurisdiction_by_code(session, data.parent_code)
        if Level(parent.level).depth >= data.level.depth:
            raise ValidationFailed(
                f"{data.level.label}行政区不能隶属于{Level(parent.level).label}的{parent.name}",
                field="level",
            )
    elif data.level is not Level.PROVINCE and repo.list_jurisdictions(session):
        raise ValidationFailed("请选择上级行政区", field="parent_code")
    j = Jurisdiction(
        code=data.code,
        name=data.name,
        level=data.level.value,
        parent_id=parent.id if parent else None,
    )
    session.add(j)
    session.flush()
    audit.record(
        session,
        actor,
        "orgs:jurisdiction:create",
        "jurisdiction",
        j.id,
        {"code": j.code, "name": j.name, "level": j.level, "parent": data.parent_code},
    )
    if data.rulebook:
        from govshare.rules import service as rules_service

        rules_service.assign_rulebook(session, actor, j, data.rulebook)
    return j


def update_jurisdiction(
    session: Session, actor: Principal, j: Jurisdiction, data: schemas.JurisdictionUpdate
) -> Jurisdiction:
    _require(actor, Perm.JURISDICTION_MANAGE)
    changes = data.model_dump(exclude_none=True)
    diff = _diff(j, changes)
    for k, v in changes.items():
        setattr(j, k, v)
    session.flush()
    if diff:
        audit.record(session, actor, "orgs:jurisdiction:update", "jurisdiction", j.id, diff)
    return j


# ---------------------------------------------------------------- departments


def check_credit_code(code: str) -> None:
    if not uscc.is_valid(code):
        raise ValidationFailed(
            f"统一社会信用代码 {code} 无效（长度、字符或校验位不符合 GB 32100）",
            field="credit_code",
        )


def get_department(session: Session, department_id: int) -> Department:
    d = session.get(Department, department_id)
    if d is None:
        raise NotFound("部门不存在")
    return d


def create_department(session: Session, actor: Principal, data: schemas.DepartmentIn) -> Department:
    _require(actor, Perm.DEPARTMENT_MANAGE)
    check_credit_code(data.credit_code)
    if repo.department_by_credit_code(session, data.credit_code) is not None:
        raise Conflict(f"统一社会信用代码 {data.credit_code} 已登记", field="credit_code")
    j = get_jurisdiction_by_code(session, data.jurisdiction_code)
    if any(
        d.name == data.name
        for d in repo.list_departments(session, actor, jurisdiction_id=j.id, include_inactive=True)
    ):
        raise Conflict(f"{j.name}已有名为“{data.name}”的部门", field="name")
    d = Department(
        name=data.name,
        short_name=data.short_name,
        credit_code=data.credit_code,
        jurisdiction_id=j.id,
        is_data_authority=data.is_data_authority,
        duties=data.duties,
    )
    session.add(d)
    session.flush()
    audit.record(
        session,
        actor,
        "orgs:department:create",
        "department",
        d.id,
        {
            "name": d.name,
            "credit_code": d.credit_code,
            "jurisdiction": j.code,
            "is_data_authority": d.is_data_authority,
        },
    )
    return d


def update_department(
    session: Session, actor: Principal, d: Department, data: schemas.DepartmentUpdate
) -> Department:
    _require(actor, Perm.DEPARTMENT_MANAGE)
    changes = data.model_dump(exclude_none=True)
    diff = _diff(d, changes)
    for k, v in changes.items():
        setattr(d, k, v)
    session.flush()
    if diff:
        audit.record(session, actor, "orgs:department:update", "department", d.id, diff)
    return d


# ---------------------------------------------------------------- contacts on file (备案)


def _may_file_for(actor: Principal, department_id: int) -> None:
    if actor.can(Perm.CONTACT_FILE_ANY):
        return
    if actor.can(Perm.CONTACT_FILE_OWN) and actor.department_id == department_id:
        return
    raise PermissionDenied("只能为本部门备案联系人")


def _contact_snapshot(c: ContactFiling) -> dict[str, object]:
    return {
        "id": c.id,
        "duty": c.duty,
        "name": c.name,
        "title": c.title,
        "phone": c.phone,
        "mobile": c.mobile,
        "email": c.email,
    }


def file_contact(
    session: Session, actor: Principal, department: Department, data: schemas.ContactIn
) -> ContactFiling:
    """File a contact person. A change never edits a filing: it supersedes it."""
    _may_file_for(actor, department.id)
    if not (data.phone or data.mobile):
        raise ValidationFailed("请至少填写办公电话或手机号码之一", field="phone")
    now = utcnow()
    replaced: ContactFiling | None = None
    if data.replaces_id is not None:
        replaced = session.get(ContactFiling, data.replaces_id)
        if replaced is None or replaced.department_id != department.id:
            raise NotFound("要替换的备案记录不存在", field="replaces_id")
        if replaced.superseded_at is not None:
            raise Conflict("该备案记录已被替换或撤销，请刷新后重试", field="replaces_id")
    elif data.duty in (Duty.HEAD, Duty.LEADER):
        replaced = next(
            (c for c in repo.current_contacts(session, department.id) if c.duty == data.duty),
            None,
        )
    filing = ContactFiling(
        department_id=department.id,
        duty=data.duty.value,
        name=data.name,
        title=data.title,
        phone=data.phone,
        mobile=data.mobile,
        email=str(data.email or ""),
        note=data.note,
        filed_at=now,
        filed_by=actor.name,
    )
    session.add(filing)
    session.flush()
    if replaced is not None:
        replaced.superseded_at = now
        replaced.superseded_by = actor.name
        replaced.replaced_by_id = filing.id
        session.flush()
    audit.record(
        session,
        actor,
        "orgs:contact:file",
        "department",
        department.id,
        {
            "filed": _contact_snapshot(filing),
            "replaced": _contact_snapshot(replaced) if replaced else None,
            "note": data.note,
        },
    )
    return filing


def end_contact(
    session: Session, actor: Principal, filing_id: int, data: schemas.ContactEnd
) -> ContactFiling:
    filing = session.get(ContactFiling, filing_id)
    if filing is None:
        raise NotFound("备案记录不存在")
    _may_file_for(actor, filing.department_id)
    if filing.superseded_at is not None:
        raise Conflict("该备案记录已被替换或撤销")
    filing.superseded_at = utcnow()
    filing.superseded_by = actor.name
    filing.note = (filing.note + "；" if filing.note else "") + f"撤销：{data.note}"
    session.flush()
    audit.record(
        session,
        actor,
        "orgs:contact:end",
        "department",
        filing.department_id,
        {"ended": _contact_snapshot(filing), "reason": data.note},
    )
    return filing


# ---------------------------------------------------------------- users


def principal_for_user(user: User, ip: str = "") -> Principal:
    role = Role(user.role)
    return Principal(
        kind="user",
        id=user.id,
        name=user.display_name + f"（{user.username}）",
        role=role,
        department_id=user.department_id,
        jurisdiction_id=user.department.jurisdiction_id if user.department else None,
        ip=ip,
        permissions=permissions_for(role),
    )


def department_principal(department: Department, role: Role, name: str) -> Principal:
    """The platform acting for a department with one of its roles (CLI commands, demo data)."""
    return Principal(
        kind="system",
        id=None,
        name=name,
        role=role,
        department_id=department.id,
        jurisdiction_id=department.jurisdiction_id,
        ip="cli",
        permissions=permissions_for(role),
    )


def get_user(session: Session, actor: Principal, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or (user.id != actor.id and not actor.can(Perm.USER_READ)):
        raise NotFound("用户不存在")
    return user


def _check_role_department(session: Session, role: Role, department_id: int | None) -> None:
    if role is Role.SYSTEM:
        raise ValidationFailed("业务系统请使用应用凭证，不能创建为用户", field="role")
    if role in DEPARTMENT_ROLES and department_id is None:
        raise ValidationFailed(f"{role.label}必须属于一个部门", field="department_id")
    if role is Role.PUBLIC and department_id is not None:
        raise ValidationFailed("公众用户不属于任何部门", field="department_id")
    if department_id is not None:
        dept = get_department(session, department_id)
        if not dept.is_active:
            raise ValidationFailed("该部门已停用", field="department_id")
        if role is Role.AUTHORITY and not dept.is_data_authority:
            raise ValidationFailed("数据主管部门角色只能授予数据主管部门的工作人员", field="role")


def create_user(session: Session, actor: Principal, data: schemas.UserIn) -> User:
    _require(actor, Perm.USER_MANAGE)
    if repo.user_by_username(session, data.username) is not None:
        raise Conflict(f"用户名 {data.username} 已被使用", field="username")
    problem = password_problem(data.password)
    if problem:
        raise ValidationFailed(problem, field="password")
    _check_role_department(session, data.role, data.department_id)
    user = User(
        username=data.username,
        display_name=data.display_name,
        password_hash=hash_password(data.password),
        role=data.role.value,
        department_id=data.department_id,
        phone=data.phone,
        must_change_password=True,
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor,
        "orgs:user:create",
        "user",
        user.id,
        {"username": user.username, "role": user.role, "department_id": user.department_id},
    )
    return user


def update_user(session: Session, actor: Principal, user: User, data: schemas.UserUpdate) -> User:
    _require(actor, Perm.USER_MANAGE)
    changes = data.model_dump(exclude_unset=True)
    if "role" in changes and changes["role"] is not None:
        changes["role"] = Role(changes["role"]).value
    changes = {k: v for k, v in changes.items() if v is not None or k == "department_id"}
    if user.id == actor.id and (
        changes.get("is_active") is False or changes.get("role", user.role) != user.role
    ):
        raise ValidationFailed("不能停用自己或修改自己的角色", field="role")
    new_role = Role(changes.get("role", user.role))
    new_dept = changes.get("department_id", user.department_id)
    _check_role_department(session, new_role, new_dept)
    diff = _diff(user, changes)
    for k, v in changes.items():
        setattr(user, k, v)
    session.flush()
    if changes.get("is_active") is False:
        _end_sessions(session, user.id)
    if diff:
        audit.record(session, actor, "orgs:user:update", "user", user.id, diff)
    return user


def reset_password(
    session: Session, actor: Principal, user: User, data: schemas.PasswordReset
) -> None:
    _require(actor, Perm.USER_MANAGE)
    problem = password_problem(data.new_password)
    if problem:
        raise ValidationFailed(problem, field="new_password")
    user.password_hash = hash_password(data.new_password)
    user.must_change_password = True
    user.failed_logins = 0
    user.locked_until = None
    _end_sessions(session, user.id)
    session.flush()
    audit.record(session, actor, "orgs:user:reset_password", "user", user.id, {})


def change_own_password(session: Session, actor: Principal, data: schemas.PasswordChange) -> None:
    _require(actor, Perm.SELF_PASSWORD)
    user = session.get(User, actor.id)
    if user is None or actor.kind != "user":
        raise NotAuthenticated()
    if not verify_password(user.password_hash, data.old_password):
        raise ValidationFailed("原密码不正确", field="old_password")
    problem = password_problem(data.new_password)
    if problem:
        raise ValidationFailed(problem, field="new_password")
    if data.new_password == data.old_password:
        raise ValidationFailed("新密码不能与原密码相同", field="new_password")
    user.password_hash = hash_password(data.new_password)
    user.must_change_password = False
    session.flush()
    audit.record(session, actor, "orgs:user:change_password", "user", user.id, {})


# ---------------------------------------------------------------- sessions


@dataclass
class LoginOutcome:
    """The result of a log-in attempt. Failures are returned, not raised, so that the
    failure count and its audit entry are committed with the request."""

    user: User | None = None
    token: str | None = None
    error: str | None = None


def login(session: Session, username: str, password: str, ip: str, user_agent: str) -> LoginOutcome:
    """Check a password and open a web session."""
    now = utcnow()
    user = repo.user_by_username(session, username)

    def fail(reason: str, message: str) -> LoginOutcome:
        audit.record(
            session,
            Principal.anonymous(ip),
            "orgs:session:login_failed",
            "user",
            user.id if user else "",
            {"username": username[:64], "reason": reason},
        )
        return LoginOutcome(error=message)

    if user is None:
        verify_password(DUMMY_HASH, password)
        return fail("unknown_user", "用户名或密码错误")
    if user.locked_until is not None and user.locked_until > now:
        return fail("locked", "连续登录失败次数过多，账号已临时锁定，请 15 分钟后再试")
    if not verify_password(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
        session.flush()
        return fail("bad_password", "用户名或密码错误")
    if not user.is_active:
        return fail("inactive", "该账号已停用，请联系数据主管部门")
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    token = new_token()
    hours = get_settings().session_hours
    session.add(
        UserSession(
            token_hash=token_hash(token),
            user_id=user.id,
            created_at=now,
            expires_at=now + timedelta(hours=hours),
            ip=ip[:64],
            user_agent=user_agent[:256],
        )
    )
    session.flush()
    audit.record(session, principal_for_user(user, ip), "orgs:session:login", "user", user.id, {})
    return LoginOutcome(user=user, token=token)


def user_for_session_token(session: Session, token: str) -> User | None:
    row = repo.session_by_token_hash(session, token_hash(token))
    if row is None or row.ended_at is not None or row.expires_at <= utcnow():
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        return None
    return user


def logout(session: Session, actor: Principal, token: str) -> None:
    row = repo.session_by_token_hash(session, token_hash(token))
    if row is not None and row.ended_at is None:
        row.ended_at = utcnow()
        session.flush()
        audit.record(session, actor, "orgs:session:logout", "user", row.user_id, {})


def _end_sessions(session: Session, user_id: int) -> None:
    from sqlalchemy import update

    session.execute(
        update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )


# ---------------------------------------------------------------- app credentials


@dataclass
class IssuedCredential:
    credential: AppCredential
    token: str


def create_credential(
    session: Session, actor: Principal, data: schemas.CredentialIn
) -> IssuedCredential:
    _require(actor, Perm.CREDENTIAL_MANAGE)
    dept = get_department(session, data.department_id)
    if not dept.is_active:
        raise ValidationFailed("该部门已停用", field="department_id")
    key_id = secrets.token_hex(8)
    secret = new_token(32)
    token = f"{CREDENTIAL_PREFIX}_{key_id}_{secret}"
    now = utcnow()
    cred = AppCredential(
        key_id=key_id,
        secret_hash=token_hash(token),
        department_id=dept.id,
        system_name=data.system_name,
        description=data.description,
        created_at=now,
        created_by=actor.name,
        expires_at=now + timedelta(days=data.valid_days),
    )
    session.add(cred)
    session.flush()
    audit.record(
        session,
        actor,
        "orgs:credential:create",
        "app_credential",
        cred.id,
        {
            "key_id": key_id,
            "department_id": dept.id,
            "system_name": data.system_name,
            "expires_at": cred.expires_at.isoformat(),
        },
    )
    return IssuedCredential(cred, token)


def get_credential(session: Session, actor: Principal, credential_id: int) -> AppCredential:
    cred = session.get(AppCredential, credential_id)
    if cred is None:
        raise NotFound("应用凭证不存在")
    if not actor.can(Perm.CREDENTIAL_MANAGE) and not (
        actor.can(Perm.CREDENTIAL_READ)
        and (actor.role is Role.OPERATOR or cred.department_id == actor.department_id)
    ):
        raise NotFound("应用凭证不存在")
    return cred


def revoke_credential(
    session: Session, actor: Principal, cred: AppCredential, data: schemas.CredentialRevoke
) -> AppCredential:
    _require(actor, Perm.CREDENTIAL_MANAGE)
    if cred.revoked_at is not None:
        raise Conflict("该凭证已吊销")
    cred.revoked_at = utcnow()
    cred.revoked_by = actor.name
    cred.revoke_reason = data.reason
    session.flush()
    audit.record(
        session,
        actor,
        "orgs:credential:revoke",
        "app_credential",
        cred.id,
        {"key_id": cred.key_id, "reason": data.reason},
    )
    return cred


def authenticate_credential(session: Session, token: str, ip: str) -> Principal:
    """Turn a bearer token into the principal of a department's system, or refuse."""
    parts = token.split("_", 2)
    cred = None
    if len(parts) == 3 and parts[0] == CREDENTIAL_PREFIX:
        cred = repo.credential_by_key_id(session, parts[1])
    if cred is None or not secrets.compare_digest(cred.secret_hash, token_hash(token)):
        raise NotAuthenticated("应用凭证无效")
    now = utcnow()
    status = cred.status(now)
    if status != "active":
        raise NotAuthenticated("应用凭证已吊销" if status == "revoked" else "应用凭证已过期")
    if cred.last_used_at is None or now - cred.last_used_at > LAST_USED_RESOLUTION:
        cred.last_used_at = now
    return Principal(
        kind="credential",
        id=cred.id,
        name=f"{cred.system_name}（{cred.key_id}）",
        role=Role.SYSTEM,
        department_id=cred.department_id,
        jurisdiction_id=cred.department.jurisdiction_id,
        ip=ip,
        permissions=permissions_for(Role.SYSTEM),
    )


def credential_expires_soon(cred: AppCredential, now: datetime, days: int = 30) -> bool:
    return cred.revoked_at is None and now < cred.expires_at <= now + timedelta(days=days)
