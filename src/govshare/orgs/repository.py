"""Queries for the orgs domain. What a principal may see is decided by ``visible_to``."""

from __future__ import annotations

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from govshare.orgs.models import (
    AppCredential,
    ContactFiling,
    Department,
    Jurisdiction,
    User,
    UserSession,
)
from govshare.permissions import Role
from govshare.principal import Principal


def jurisdiction_by_code(session: Session, code: str) -> Jurisdiction | None:
    return session.scalar(select(Jurisdiction).where(Jurisdiction.code == code))


def jurisdiction_lineage(session: Session, jurisdiction: Jurisdiction) -> list[Jurisdiction]:
    """From the outermost ancestor down to ``jurisdiction`` itself."""
    chain = [jurisdiction]
    seen = {jurisdiction.id}
    current = jurisdiction
    while current.parent_id is not None:
        parent = session.get(Jurisdiction, current.parent_id)
        if parent is None or parent.id in seen:
            break
        chain.append(parent)
        seen.add(parent.id)
        current = parent
    return list(reversed(chain))


def jurisdiction_subtree_ids(session: Session, root_id: int) -> set[int]:
    rows = session.execute(select(Jurisdiction.id, Jurisdiction.parent_id)).all()
    children: dict[int | None, list[int]] = {}
    for jid, pid in rows:
        children.setdefault(pid, []).append(jid)
    out, stack = set(), [root_id]
    while stack:
        jid = stack.pop()
        if jid in out:
            continue
        out.add(jid)
        stack.extend(children.get(jid, []))
    return out


def list_jurisdictions(session: Session) -> list[Jurisdiction]:
    return list(session.scalars(select(Jurisdiction).order_by(Jurisdiction.code)))


def departments_query(principal: Principal) -> Select[Department]:
    """Departments a principal may see: staff of any department see the directory."""
    q = select(Department).order_by(Department.jurisdiction_id, Department.name)
    if principal.role in (Role.PUBLIC, Role.SYSTEM, None):
        return q.where(Department.id == principal.department_id)
    return q


def list_departments(
    session: Session,
    principal: Principal,
    *,
    jurisdiction_id: int | None = None,
    q: str = "",
    include_inactive: bool = False,
) -> list[Department]:
    stmt = departments_query(principal)
    if jurisdiction_id:
        stmt = stmt.where(Department.jurisdiction_id == jurisdiction_id)
    if q:
        like = f"%{q}%"
        stmt = stmt.where(
            or_(
                Department.name.like(like),
                Department.credit_code.like(like),
                Department.short_name.like(like),
            )
        )
    if not include_inactive:
        stmt = stmt.where(Department.is_active.is_(True))
    return list(session.scalars(stmt))


def department_by_credit_code(session: Session, code: str) -> Department | None:
    return session.scalar(select(Department).where(Department.credit_code == code))


def current_contacts(session: Session, department_id: int) -> list[ContactFiling]:
    return list(
        session.scalars(
            select(ContactFiling)
            .where(ContactFiling.department_id == department_id)
            .where(ContactFiling.superseded_at.is_(None))
            .order_by(ContactFiling.duty, ContactFiling.id)
        )
    )


def contact_history(session: Session, department_id: int) -> list[ContactFiling]:
    return list(
        session.scalars(
            select(ContactFiling)
            .where(ContactFiling.department_id == department_id)
            .order_by(ContactFiling.filed_at.desc(), ContactFiling.id.desc())
        )
    )


def users_query(principal: Principal) -> Select[User]:
    q = select(User).order_by(User.department_id, User.username)
    if principal.role in (Role.AUTHORITY, Role.OPERATOR):
        return q
    return q.where(User.id == principal.id)


def list_users(
    session: Session,
    principal: Principal,
    *,
    department_id: int | None = None,
    role: str | None = None,
    q: str = "",
) -> list[User]:
    stmt = users_query(principal)
    if department_id:
        stmt = stmt.where(User.department_id == department_id)
    if role:
        stmt = stmt.where(User.role == role)
    if q:
        like = f"%{q}%"
        stmt = stmt.where(or_(User.username.like(like), User.display_name.like(like)))
    return list(session.scalars(stmt))


def user_by_username(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def session_by_token_hash(session: Session, token_hash: str) -> UserSession | None:
    return session.scalar(select(UserSession).where(UserSession.token_hash == token_hash))


def credentials_query(principal: Principal) -> Select[AppCredential]:
    q = select(AppCredential).order_by(AppCredential.created_at.desc())
    if principal.role in (Role.AUTHORITY, Role.OPERATOR):
        return q
    return q.where(AppCredential.department_id == principal.department_id)


def list_credentials(
    session: Session, principal: Principal, *, department_id: int | None = None
) -> list[AppCredential]:
    stmt = credentials_query(principal)
    if department_id:
        stmt = stmt.where(AppCredential.department_id == department_id)
    return list(session.scalars(stmt))


def credential_by_key_id(session: Session, key_id: str) -> AppCredential | None:
    return session.scalar(select(AppCredential).where(AppCredential.key_id == key_id))
