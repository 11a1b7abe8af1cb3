"""Who hears of what in the sharing workflow: inbox notifications on every step, and the
daily reminders of clocks about to run out (2 working days before) and run out.

Reviewers are the provider's reviewers and heads, or the data authorities over the
provider's jurisdiction where they decide (a compliance check, a request for unconditional
data, or a rulebook that makes the authority the reviewer); the consumer side is the
applying department's officers and heads.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.catalog.models import CatalogVersion
from govshare.notifications import service as notifications
from govshare.orgs import repository as orgs_repo
from govshare.orgs.models import Department
from govshare.permissions import Role
from govshare.sharing.models import (
    OPEN_STATUSES,
    ApplicationKind,
    ApplicationStatus,
    DisputeStatus,
    ShareApplication,
    ShareDispute,
)

#: reminders go out this many working days before a clock runs out
REMIND_BEFORE = 2

S = ApplicationStatus


def _department(session: Session, department_id: int) -> Department:
    department = session.get(Department, department_id)
    assert department is not None
    return department


def _authority_decides(app: ShareApplication) -> bool:
    return (
        app.status == S.COMPLIANCE_CHECK.value
        or app.reviewer == "authority"
        or app.kind == ApplicationKind.REQUEST.value
    )


def reviewers(session: Session, app: ShareApplication) -> list[int]:
    provider = _department(session, app.provider_department_id)
    if _authority_decides(app):
        ids: list[int] = []
        for jurisdiction in orgs_repo.jurisdiction_lineage(session, provider.jurisdiction):
            ids += notifications.users_with_role_in_jurisdiction(
                session, jurisdiction.id, {Role.AUTHORITY}
            )
        return ids
    return notifications.users_of_department(
        session, provider.id, {Role.DEPT_REVIEWER, Role.DEPT_HEAD}
    )


def consumers(session: Session, app: ShareApplication) -> list[int]:
    return notifications.users_of_department(
        session, app.consumer_department_id, {Role.DEPT_OFFICER, Role.DEPT_HEAD}
    )


def _names(session: Session, app: ShareApplication) -> tuple[str, str]:
    version = session.get(CatalogVersion, app.version_id)
    consumer = _department(session, app.consumer_department_id)
    return (version.name if version else f"资源 {app.entry_id}"), consumer.name


def after(session: Session, app: ShareApplication, action: str) -> int:
    """Notify the people the step concerns; returns how many notifications were created."""
    link = f"/sharing/applications/{app.id}"
    entry, consumer = _names(session, app)
    status = S(app.status)
    due = f"，请于 {app.due.isoformat()} 前处理" if app.due else ""
    kind = f"sharing:application:{action}"
    if status in (S.PENDING_REVIEW, S.COMPLIANCE_CHECK) and action in (
        "file",
        "pass_check",
        "resubmit",
    ):
        title = {
            "file": f"新的共享申请待审核：{entry}",
            "pass_check": f"共享申请已通过合规审查，待审核：{entry}",
            "resubmit": f"共享申请已补正材料，待审核：{entry}",
        }[action]
        return notifications.notify(
            session, reviewers(session, app), kind, title, f"申请部门：{consumer}{due}。", link
        )
    if action == "extend":
        return notifications.notify(
            session,
            consumers(session, app),
            kind,
            f"共享申请的答复期限已延长：{entry}",
            f"新的答复期限：{app.due.isoformat() if app.due else '—'}。",
            link,
        )
    if status == S.SUPPLEMENT_REQUESTED:
        return notifications.notify(
            session,
            consumers(session, app),
            kind,
            f"请补正共享申请材料：{entry}",
            f"需要补正的材料：{app.supplement_request}",
            link,
        )
    if status == S.APPROVED:
        narrowed = [f for f in app.items if f not in (app.decided_items or app.items)]
        body = "已生成授权，可按授权的信息项和方式使用数据。"
        if narrowed:
            body += f"未同意的信息项：{'、'.join(narrowed)}。"
        if app.conditions:
            body += f"使用条件：{app.conditions}"
        return notifications.notify(
            session, consumers(session, app), kind, f"共享申请已同意：{entry}", body, link
        )
    if status == S.REJECTED:
        return notifications.notify(
            session,
            consumers(session, app),
            kind,
            f"共享申请未获同意：{entry}",
            f"理由：{app.reason}。如有异议，可提请数据主管部门协调。",
            link,
        )
    if status == S.WITHDRAWN:
        return notifications.notify(
            session, reviewers(session, app), kind, f"共享申请已撤回：{entry}", "", link
        )
    return 0


def remind(session: Session, today: date) -> int:
    """Clocks running out in :data:`REMIND_BEFORE` working days, and clocks run out (from
    the day after the due date): each person hears once per application and due date."""
    from govshare.sharing import service

    sent = 0
    apps = session.scalars(
        select(ShareApplication)
        .where(ShareApplication.status.in_([s.value for s in OPEN_STATUSES]))
        .where(ShareApplication.due.is_not(None))
        .order_by(ShareApplication.id)
    )
    calendars: dict[int, service.Context] = {}
    for app in apps:
        assert app.due is not None
        if app.provider_department_id not in calendars:
            calendars[app.provider_department_id] = service.context_for(
                session, _department(session, app.provider_department_id)
            )
        left = service.days_left(app, calendars[app.provider_department_id].calendar, today)
        entry, consumer = _names(session, app)
        link = f"/sharing/applications/{app.id}"
        if service.is_overdue(app, today):
            sent += notifications.notify(
                session,
                reviewers(session, app) + consumers(session, app),
                "sharing:application:overdue",
                f"共享申请已逾期：{entry}",
                f"申请部门：{consumer}；答复期限 {app.due.isoformat()} 已过，"
                f"已逾期 {-(left or 0)} 个工作日。",
                link,
                dedupe_key=f"sharing:{app.id}:overdue:{app.due.isoformat()}",
            )
        elif left == REMIND_BEFORE:
            sent += notifications.notify(
                session,
                reviewers(session, app),
                "sharing:application:due_soon",
                f"共享申请将于 {REMIND_BEFORE} 个工作日后到期：{entry}",
                f"申请部门：{consumer}；请于 {app.due.isoformat()} 前处理。",
                link,
                dedupe_key=f"sharing:{app.id}:due-soon:{app.due.isoformat()}",
            )
    return sent


def after_dispute(session: Session, dispute: ShareDispute, action: str) -> int:
    """Disputes: the coordinating authorities and the provider hear of a new dispute and
    the provider's statement; both departments hear of every outcome."""
    app = session.get(ShareApplication, dispute.application_id)
    if app is None:
        return 0
    entry, consumer = _names(session, app)
    link = f"/sharing/disputes/{dispute.id}"
    kind = f"sharing:dispute:{action}"
    provider_staff = notifications.users_of_department(
        session, app.provider_department_id, {Role.DEPT_REVIEWER, Role.DEPT_HEAD}
    )
    authorities: list[int] = []
    provider = _department(session, app.provider_department_id)
    for jurisdiction in orgs_repo.jurisdiction_lineage(session, provider.jurisdiction):
        authorities += notifications.users_with_role_in_jurisdiction(
            session, jurisdiction.id, {Role.AUTHORITY}
        )
    status = DisputeStatus(dispute.status).label
    if action == "raise":
        due = f"，请于 {dispute.due.isoformat()} 前协调" if dispute.due else ""
        return notifications.notify(
            session,
            authorities + provider_staff,
            kind,
            f"新的共享争议：{entry}",
            f"申请部门：{consumer}{due}。",
            link,
        )
    if action == "provider_statement":
        return notifications.notify(
            session, authorities, kind, f"共享争议的提供部门已说明：{entry}", "", link
        )
    return notifications.notify(
        session,
        consumers(session, app) + provider_staff,
        kind,
        f"共享争议{status}：{entry}",
        "",
        link,
    )
