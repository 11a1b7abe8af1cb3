"""The notifications inbox (站内通知): any domain notifies users; each user reads only
their own inbox.

Creating a notification is not audited (the action that caused it is), nor is marking one
read (it changes nothing shared). Functions ``flush()`` and never commit.

Only a user has an inbox. A principal of any other kind (an app credential, the platform)
has an empty one: it lists nothing, counts 0 unread, marks nothing and finds no
notification (404). It is not refused with 403, because it does hold ``orgs:self:read``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from govshare.db import utcnow
from govshare.errors import NotFound, ValidationFailed
from govshare.notifications.models import (
    BODY_MAX,
    DEDUPE_MAX,
    KIND_MAX,
    LINK_MAX,
    TITLE_MAX,
    Notification,
)
from govshare.orgs.models import Department, User
from govshare.permissions import Role
from govshare.principal import Principal

PAGE_SIZE = 20
_KIND = re.compile(r"^[a-z0-9_]+(?::[a-z0-9_]+)*$")
#: characters a link may not contain: whitespace, control characters and the backslash
#: (browsers read "/\evil.example" as "//evil.example")
_LINK_FORBIDDEN = re.compile(r"[\s\x00-\x1f\x7f\\]")


def validate_link(link: str) -> str:
    """A link must be a relative URL inside the platform: "/..." but not "//..."."""
    if not link.startswith("/") or link.startswith("//"):
        raise ValidationFailed("链接必须是平台内的相对地址（以 / 开头）", field="link")
    if len(link) > LINK_MAX or _LINK_FORBIDDEN.search(link):
        raise ValidationFailed("链接格式不正确", field="link")
    return link


def _validate(kind: str, title: str, body: str, dedupe_key: str | None) -> tuple[str, str]:
    if not _KIND.match(kind) or len(kind) > KIND_MAX:
        raise ValidationFailed("通知类型格式不正确", field="kind")
    title = title.strip()
    if not title:
        raise ValidationFailed("通知标题不能为空", field="title")
    if len(title) > TITLE_MAX:
        raise ValidationFailed(f"通知标题不能超过 {TITLE_MAX} 个字符", field="title")
    if len(body) > BODY_MAX:
        raise ValidationFailed(f"通知内容不能超过 {BODY_MAX} 个字符", field="body")
    if dedupe_key is not None and not (0 < len(dedupe_key) <= DEDUPE_MAX):
        raise ValidationFailed("去重键长度不正确", field="dedupe_key")
    return title, body.strip()


def notify(
    session: Session,
    recipients: Iterable[int],
    kind: str,
    title: str,
    body: str,
    link: str,
    dedupe_key: str | None = None,
) -> int:
    """Notify each recipient (user ids; repeats count once) and return how many
    notifications were created. With ``dedupe_key``, a recipient who already has a
    notification with that key is skipped (a job may run twice; the person hears once);
    two jobs racing on the same key are stopped by the unique index (IntegrityError on
    flush, the second job's transaction rolls back)."""
    title, body = _validate(kind, title, body, dedupe_key)
    validate_link(link)
    ids = list(dict.fromkeys(recipients))
    if not ids:
        return 0
    known = set(session.scalars(select(User.id).where(User.id.in_(ids))))
    missing = [i for i in ids if i not in known]
    if missing:
        raise ValidationFailed(f"收件用户不存在：{missing[0]}", field="recipients")
    if dedupe_key is not None:
        done = set(
            session.scalars(
                select(Notification.recipient_id).where(
                    Notification.dedupe_key == dedupe_key, Notification.recipient_id.in_(ids)
                )
            )
        )
        ids = [i for i in ids if i not in done]
    now = utcnow()
    session.add_all(
        Notification(
            recipient_id=uid,
            kind=kind,
            title=title,
            body=body,
            link=link,
            created_at=now,
            dedupe_key=dedupe_key,
        )
        for uid in ids
    )
    session.flush()
    return len(ids)


def _role_values(roles: Collection[Role] | None) -> list[str] | None:
    return [Role(r).value for r in roles] if roles else None


def users_of_department(
    session: Session, department_id: int, roles: Collection[Role] | None = None
) -> list[int]:
    """Ids of the active users of a department, optionally only those with one of
    ``roles`` (e.g. the reviewers who must decide an application)."""
    stmt = select(User.id).where(User.department_id == department_id, User.is_active.is_(True))
    values = _role_values(roles)
    if values:
        stmt = stmt.where(User.role.in_(values))
    return list(session.scalars(stmt.order_by(User.id)))


def users_with_role_in_jurisdiction(
    session: Session, jurisdiction_id: int, roles: Collection[Role]
) -> list[int]:
    """Ids of the active users with one of ``roles`` in the active departments of a
    jurisdiction (e.g. the data authority of the city)."""
    values = _role_values(roles)
    if not values:
        return []
    stmt = (
        select(User.id)
        .join(Department, User.department_id == Department.id)
        .where(
            Department.jurisdiction_id == jurisdiction_id,
            Department.is_active.is_(True),
            User.is_active.is_(True),
            User.role.in_(values),
        )
        .order_by(User.id)
    )
    return list(session.scalars(stmt))


def owner(principal: Principal) -> int | None:
    """The user whose inbox this is; None for an app credential or the platform."""
    return principal.id if principal.kind == "user" else None


def unread_count(session: Session, user_id: int | None) -> int:
    """One COUNT query (index ``ix_notifications_recipient_read``); 0 without a user."""
    if user_id is None:
        return 0
    stmt = select(func.count(Notification.id)).where(
        Notification.recipient_id == user_id, Notification.read_at.is_(None)
    )
    return int(session.scalar(stmt) or 0)


@dataclass(frozen=True)
class InboxPage:
    items: list[Notification]
    page: int
    has_next: bool
    unread_only: bool
    unread: int


def inbox(
    session: Session, principal: Principal, *, unread_only: bool = False, page: int = 1
) -> InboxPage:
    """The principal's own notifications, newest first, ``PAGE_SIZE`` per page."""
    user_id = owner(principal)
    page = max(1, page)
    if user_id is None:
        return InboxPage(items=[], page=page, has_next=False, unread_only=unread_only, unread=0)
    stmt = select(Notification).where(Notification.recipient_id == user_id)
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    stmt = (
        stmt.order_by(Notification.created_at.desc(), Notification.id.desc())
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE + 1)
    )
    rows = list(session.scalars(stmt))
    return InboxPage(
        items=rows[:PAGE_SIZE],
        page=page,
        has_next=len(rows) > PAGE_SIZE,
        unread_only=unread_only,
        unread=unread_count(session, user_id),
    )


def get(session: Session, principal: Principal, notification_id: int) -> Notification:
    """One of the principal's own notifications; anyone else's is "not found"."""
    user_id = owner(principal)
    row = session.get(Notification, notification_id)
    if row is None or user_id is None or row.recipient_id != user_id:
        raise NotFound("通知不存在")
    return row


def mark_read(session: Session, principal: Principal, ids: Iterable[int] | Literal["all"]) -> int:
    """Mark the principal's notifications read: the given ids (every one must be the
    principal's own, else nothing is marked and NotFound is raised) or ``"all"``.
    Returns how many were unread and are now read."""
    user_id = owner(principal)
    if user_id is None:
        if ids != "all" and set(ids):
            raise NotFound("通知不存在")
        return 0
    stmt = update(Notification).where(
        Notification.recipient_id == user_id, Notification.read_at.is_(None)
    )
    if ids != "all":
        wanted = set(ids)
        if not wanted:
            return 0
        own = set(
            session.scalars(
                select(Notification.id).where(
                    Notification.id.in_(wanted), Notification.recipient_id == user_id
                )
            )
        )
        if own != wanted:
            raise NotFound(f"通知不存在：{min(wanted - own)}")
        stmt = stmt.where(Notification.id.in_(wanted))
    result = session.execute(
        stmt.values(read_at=utcnow()).execution_options(synchronize_session="fetch")
    )
    session.flush()
    return int(getattr(result, "rowcount", 0) or 0)


def open_notification(session: Session, principal: Principal, notification_id: int) -> str:
    """Mark one of the principal's notifications read and return its link."""
    row = get(session, principal, notification_id)
    if row.read_at is None:
        row.read_at = utcnow()
        session.flush()
    return row.link
