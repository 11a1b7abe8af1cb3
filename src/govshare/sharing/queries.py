"""Listings of the sharing workflow: a department's applications, a principal's review
queue, grants; each row with its clock read on the provider's working-day calendar.

Who reviews what follows the rulebook fixed on the application when it was filed (see
:mod:`govshare.sharing.service`): the provider's reviewer or head reviews applications
whose reviewer is ``provider`` or ``authority_then_provider`` (after the compliance
check); the data authority checks compliance and reviews those whose reviewer is
``authority`` (seed 003 art. 12), in its jurisdiction and below.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from govshare.catalog.models import CatalogEntry, CatalogVersion
from govshare.db import china_today
from govshare.orgs import repository as orgs_repo
from govshare.orgs.models import Department
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.rules.workdays import WorkdayCalendar
from govshare.sharing import service
from govshare.sharing.models import (
    ApplicationEvent,
    ApplicationKind,
    ApplicationStatus,
    Grant,
    GrantStatus,
    ShareApplication,
)

#: a listing shows at most this many rows (the newest first, or the most urgent first)
LIST_LIMIT = 500

REVIEWER_LABELS = {
    "provider": "数据提供部门",
    "authority": "数据主管部门",
    "authority_then_provider": "数据主管部门合规审查后由提供部门审核",
}


class Clocks:
    """The providers' calendars, loaded once per listing."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._by_department: dict[int, WorkdayCalendar] = {}

    def calendar(self, department_id: int) -> WorkdayCalendar:
        if department_id not in self._by_department:
            provider = self.session.get(Department, department_id)
            assert provider is not None
            self._by_department[department_id] = service.context_for(
                self.session, provider
            ).calendar
        return self._by_department[department_id]


@dataclass(frozen=True)
class ApplicationRow:
    """An application with what a listing shows about it."""

    app: ShareApplication
    entry_name: str
    entry_code: str
    consumer: str
    provider: str
    days_left: int | None
    overdue: bool

    @property
    def status_label(self) -> str:
        return ApplicationStatus(self.app.status).label

    @property
    def kind_label(self) -> str:
        return ApplicationKind(self.app.kind).label

    @property
    def reviewer_label(self) -> str:
        return REVIEWER_LABELS.get(self.app.reviewer, self.app.reviewer)


@dataclass(frozen=True)
class GrantRow:
    grant: Grant
    entry_name: str
    entry_code: str
    consumer: str
    provider: str
    provider_department_id: int

    @property
    def status_label(self) -> str:
        return GrantStatus(self.grant.status).label


def _names(session: Session, ids: Iterable[int]) -> dict[int, str]:
    wanted = set(ids)
    if not wanted:
        return {}
    rows = session.execute(select(Department.id, Department.name).where(Department.id.in_(wanted)))
    return {i: n for i, n in rows}


def _entries(session: Session, ids: Iterable[int]) -> dict[int, tuple[str, str, int]]:
    """entry id -> (code, name of its current version, provider department id)."""
    wanted = set(ids)
    if not wanted:
        return {}
    rows = session.execute(
        select(CatalogEntry.id, CatalogEntry.code, CatalogVersion.name, CatalogEntry.department_id)
        .outerjoin(CatalogVersion, CatalogVersion.id == CatalogEntry.current_version_id)
        .where(CatalogEntry.id.in_(wanted))
    )
    return {i: (code, name or code, dept) for i, code, name, dept in rows}


def rows_for(
    session: Session,
    apps: Sequence[ShareApplication],
    today: date | None = None,
    clocks: Clocks | None = None,
) -> list[ApplicationRow]:
    today = today or china_today()
    clocks = clocks or Clocks(session)
    names = _names(
        session, [a.consumer_department_id for a in apps] + [a.provider_department_id for a in apps]
    )
    entries = _entries(session, [a.entry_id for a in apps])
    out = []
    for a in apps:
        code, name, _dept = entries.get(a.entry_id, ("", "", 0))
        calendar = clocks.calendar(a.provider_department_id)
        out.append(
            ApplicationRow(
                app=a,
                entry_name=name,
                entry_code=code,
                consumer=names.get(a.consumer_department_id, ""),
                provider=names.get(a.provider_department_id, ""),
                days_left=service.days_left(a, calendar, today),
                overdue=service.is_overdue(a, today),
            )
        )
    return out


def row_for(session: Session, app: ShareApplication, today: date | None = None) -> ApplicationRow:
    return rows_for(session, [app], today)[0]


def consumer_applications(session: Session, principal: Principal) -> list[ShareApplication]:
    """My department's applications as the consumer, newest first."""
    if principal.department_id is None:
        return []
    return list(
        session.scalars(
            select(ShareApplication)
            .where(ShareApplication.consumer_department_id == principal.department_id)
            .order_by(ShareApplication.id.desc())
            .limit(LIST_LIMIT)
        )
    )


def provider_applications(session: Session, principal: Principal) -> list[ShareApplication]:
    """Applications for my department's data (every state), newest first."""
    if principal.department_id is None:
        return []
    return list(
        session.scalars(
            select(ShareApplication)
            .where(ShareApplication.provider_department_id == principal.department_id)
            .order_by(ShareApplication.id.desc())
            .limit(LIST_LIMIT)
        )
    )


def _covered_departments(session: Session, principal: Principal) -> list[int] | None:
    """Departments in the authority's jurisdiction and below (None: every department, for
    the platform itself)."""
    if principal.jurisdiction_id is None:
        return None if principal.kind == "system" else []
    subtree = orgs_repo.jurisdiction_subtree_ids(session, principal.jurisdiction_id)
    return list(
        session.scalars(select(Department.id).where(Department.jurisdiction_id.in_(subtree)))
    )


def review_queue(session: Session, principal: Principal) -> list[ShareApplication]:
    """What waits for this principal's decision, the earliest due first.

    - the provider's reviewer or head: applications to its department pending review where
      the provider reviews (``provider`` or, after the check, ``authority_then_provider``);
    - the data authority: compliance checks, and reviews where it is the reviewer
      (``authority``, and unconditional requests), for providers in its jurisdiction.
    """
    S = ApplicationStatus
    clauses = []
    if principal.can(Perm.SHARE_REVIEW) and principal.department_id is not None:
        clauses.append(
            and_(
                ShareApplication.provider_department_id == principal.department_id,
                ShareApplication.status == S.PENDING_REVIEW.value,
                ShareApplication.kind == ApplicationKind.APPLICATION.value,
                ShareApplication.reviewer.in_(("provider", "authority_then_provider")),
            )
        )
    if principal.can(Perm.SHARE_CHECK):
        covered = _covered_departments(session, principal)
        mine = or_(
            ShareApplication.status == S.COMPLIANCE_CHECK.value,
            and_(
                ShareApplication.status == S.PENDING_REVIEW.value,
                or_(
                    ShareApplication.reviewer == "authority",
                    ShareApplication.kind == ApplicationKind.REQUEST.value,
                ),
            ),
        )
        if covered is None:
            clauses.append(mine)
        elif covered:
            clauses.append(and_(mine, ShareApplication.provider_department_id.in_(covered)))
    if not clauses:
        return []
    apps = session.scalars(
        select(ShareApplication)
        .where(or_(*clauses))
        .order_by(ShareApplication.due.is_(None), ShareApplication.due, ShareApplication.id)
        .limit(LIST_LIMIT)
    )
    return list(apps)


def events_of(session: Session, app: ShareApplication) -> list[ApplicationEvent]:
    return list(
        session.scalars(
            select(ApplicationEvent)
            .where(ApplicationEvent.application_id == app.id)
            .order_by(ApplicationEvent.id)
        )
    )


def grant_of(session: Session, app: ShareApplication) -> Grant | None:
    return session.scalars(select(Grant).where(Grant.application_id == app.id)).first()


def grants_for(session: Session, principal: Principal) -> list[GrantRow]:
    """Grants of my department as consumer and as provider; for the data authority, every
    grant whose provider or consumer is in its jurisdiction. Newest first."""
    query = select(Grant).join(CatalogEntry, CatalogEntry.id == Grant.entry_id)
    if principal.can(Perm.SHARE_CHECK):
        covered = _covered_departments(session, principal)
        if covered is not None:
            mine = set(covered) | ({principal.department_id} if principal.department_id else set())
            query = query.where(
                or_(
                    CatalogEntry.department_id.in_(mine),
                    Grant.consumer_department_id.in_(mine),
                )
            )
    elif principal.department_id is not None:
        query = query.where(
            or_(
                CatalogEntry.department_id == principal.department_id,
                Grant.consumer_department_id == principal.department_id,
            )
        )
    else:
        return []
    grants = list(session.scalars(query.order_by(Grant.id.desc()).limit(LIST_LIMIT)))
    return grant_rows(session, grants)


def grant_rows(session: Session, grants: Sequence[Grant]) -> list[GrantRow]:
    entries = _entries(session, [g.entry_id for g in grants])
    names = _names(
        session,
        [g.consumer_department_id for g in grants] + [e[2] for e in entries.values()],
    )
    out = []
    for g in grants:
        code, name, provider_id = entries.get(g.entry_id, ("", "", 0))
        out.append(
            GrantRow(
                grant=g,
                entry_name=name,
                entry_code=code,
                consumer=names.get(g.consumer_department_id, ""),
                provider=names.get(provider_id, ""),
                provider_department_id=provider_id,
            )
        )
    return out
