"""Queries for the audit log. What a principal may see is decided by ``visible_to``."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, false, func, select, true
from sqlalchemy.orm import Session

from govshare.audit.models import AuditCheckpoint, AuditEntry
from govshare.audit.service import local_midnight
from govshare.db import LOCAL_TZ, utcnow
from govshare.permissions import Perm
from govshare.principal import Principal

#: entries per page at most (API and pages)
MAX_PER_PAGE = 200


def visible_to(principal: Principal) -> ColumnElement[bool]:
    """The entries ``principal`` may read: the data authority (AUDIT_READ) reads the whole
    log; nobody else reads any of it (callers refuse them with PermissionDenied first)."""
    return true() if principal.can(Perm.AUDIT_READ) else false()


def entries_query(
    principal: Principal,
    *,
    actor: str | None = None,
    action: str | None = None,
    department_id: int | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: date | None = None,
    until: date | None = None,
) -> Select[AuditEntry]:
    """Entries matching the filters, newest first. ``since``/``until`` are calendar days in
    China's time zone, both included; ``actor`` matches part of the name, ``action`` a
    prefix of the code (``orgs:`` or ``orgs:user:``)."""
    q = select(AuditEntry).where(visible_to(principal))
    if actor:
        q = q.where(AuditEntry.actor_name.contains(actor, autoescape=True))
    if action:
        q = q.where(AuditEntry.action.startswith(action, autoescape=True))
    if department_id is not None:
        q = q.where(AuditEntry.department_id == department_id)
    if target_type:
        q = q.where(AuditEntry.target_type == target_type)
    if target_id:
        q = q.where(AuditEntry.target_id == target_id)
    if since is not None:
        q = q.where(AuditEntry.occurred_at >= local_midnight(since))
    if until is not None:
        q = q.where(AuditEntry.occurred_at < local_midnight(until + timedelta(days=1)))
    return q.order_by(AuditEntry.seq.desc())


def list_entries(
    session: Session,
    principal: Principal,
    *,
    actor: str | None = None,
    action: str | None = None,
    department_id: int | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: date | None = None,
    until: date | None = None,
    page: int = 1,
    per_page: int = 50,
) -> tuple[list[AuditEntry], bool]:
    """One page of entries, newest first, and whether there is a next page."""
    page = max(page, 1)
    per_page = min(max(per_page, 1), MAX_PER_PAGE)
    q = entries_query(
        principal,
        actor=actor,
        action=action,
        department_id=department_id,
        target_type=target_type,
        target_id=target_id,
        since=since,
        until=until,
    )
    rows = list(session.scalars(q.offset((page - 1) * per_page).limit(per_page + 1)))
    return rows[:per_page], len(rows) > per_page


def export_entries(
    session: Session, principal: Principal, *, limit: int, **filters: Any
) -> tuple[list[AuditEntry], bool]:
    """Up to ``limit`` entries matching the filters, newest first, and whether there were
    more."""
    rows = list(session.scalars(entries_query(principal, **filters).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def latest_entries(session: Session, principal: Principal, n: int = 20) -> list[AuditEntry]:
    return list(session.scalars(entries_query(principal).limit(max(n, 0))))


def list_checkpoints(session: Session, principal: Principal) -> list[AuditCheckpoint]:
    q = select(AuditCheckpoint).where(visible_to(principal)).order_by(AuditCheckpoint.id.desc())
    return list(session.scalars(q))


def chain_bounds(session: Session) -> tuple[int, int, int]:
    """(first seq, last seq, number of entries) of the entries in the table."""
    first, last, count = session.execute(
        select(func.min(AuditEntry.seq), func.max(AuditEntry.seq), func.count())
    ).one()
    return int(first or 0), int(last or 0), int(count or 0)


@dataclass
class DayCount:
    day: date
    total: int = 0
    #: entries per domain (the first part of the action code: orgs, rules, audit, ...)
    by_domain: dict[str, int] = field(default_factory=dict)


def action_counts_by_day(
    session: Session, days: int = 30, *, now: datetime | None = None
) -> list[DayCount]:
    """Entries per day (China's calendar) for the last ``days`` days, today included, oldest
    first, with a count per domain. Days without entries are included with zero."""
    today = (now or utcnow()).astimezone(LOCAL_TZ).date()
    first = today - timedelta(days=days - 1)
    if session.get_bind().dialect.name == "postgresql":
        day = func.to_char(func.timezone("Asia/Shanghai", AuditEntry.occurred_at), "YYYY-MM-DD")
    else:
        # SQLite holds naive UTC text; China has no daylight saving time
        day = func.strftime("%Y-%m-%d", AuditEntry.occurred_at, "+8 hours")
    rows = session.execute(
        select(day.label("day"), AuditEntry.action, func.count())
        .where(AuditEntry.occurred_at >= local_midnight(first))
        .group_by(day, AuditEntry.action)
    ).all()
    out = {first + timedelta(days=i): DayCount(first + timedelta(days=i)) for i in range(days)}
    merged: dict[date, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
    for day_text, action, n in rows:
        d = date.fromisoformat(str(day_text))
        if d in out:
            merged[d][str(action).split(":", 1)[0]] += int(n)
    for d, counts in merged.items():
        out[d].by_domain = dict(sorted(counts.items()))
        out[d].total = sum(counts.values())
    return list(out.values())
