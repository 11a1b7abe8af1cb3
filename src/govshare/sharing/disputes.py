"""Sharing disputes (共享争议).

A consumer who disagrees with a refusal, or whose application went unanswered past its
deadline, raises a dispute. The data authority coordinates it (seed 000 art. 20: 由县数据
和政务服务局协调解决; seed 003 art. 40: 数据主管部门应当会同政务数据生产部门协调处理;
seed 004 art. 16(2): 可以提交信息化主管部门协调处理): it records the coordination and its
outcome -- uphold the refusal, or order the grant (all or fewer of the items asked for,
with conditions) -- or, where no agreement is reached, reports the dispute to the
government at the same level (报本级人民政府决定, seed 000 art. 20) with a record, and
then records the government's decision.

The coordination clock runs in working days on the provider's jurisdiction calendar
(``sharing.dispute_coordination``; none of the seeds sets a period, the national book has
a platform default) and is flagged overdue the day after it passes.

open -> coordinating -> resolved_granted | resolved_upheld | escalated
escalated -> decided_by_government
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.audit import service as audit
from govshare.catalog import service as catalog_service
from govshare.db import china_today, utcnow
from govshare.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from govshare.orgs.models import Department
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.rules.workdays import WorkdayCalendar
from govshare.sharing import grants, notices, workflow
from govshare.sharing import service as sharing
from govshare.sharing.models import (
    ApplicationStatus,
    DisputeStatus,
    Grant,
    ShareApplication,
    ShareDispute,
)

D = DisputeStatus
CLOSED = frozenset({D.RESOLVED_GRANTED, D.RESOLVED_UPHELD, D.DECIDED_BY_GOVERNMENT})

TRANSITIONS: dict[str, tuple[frozenset[DisputeStatus], frozenset[DisputeStatus]]] = {
    "coordinate": (frozenset({D.OPEN}), frozenset({D.COORDINATING})),
    "uphold": (frozenset({D.COORDINATING}), frozenset({D.RESOLVED_UPHELD})),
    "order_grant": (frozenset({D.COORDINATING}), frozenset({D.RESOLVED_GRANTED})),
    "escalate": (frozenset({D.COORDINATING}), frozenset({D.ESCALATED})),
    "government_decision": (frozenset({D.ESCALATED}), frozenset({D.DECIDED_BY_GOVERNMENT})),
}

ACTION_LABELS = {
    "raise": "提出争议",
    "provider_statement": "提供部门说明",
    "coordinate": "开始协调",
    "uphold": "协调决定维持不共享",
    "order_grant": "协调决定予以共享",
    "escalate": "报本级人民政府决定",
    "government_decision": "登记本级人民政府决定",
}


# ---------------------------------------------------------------- the one transition


def transition(
    session: Session,
    actor: Principal,
    dispute: ShareDispute,
    action: str,
    to: DisputeStatus,
    *,
    note: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """Move the dispute by ``action``: allowed from its state, compare-and-set on the
    status (two coordinators at once: exactly one wins), recorded in its history, audited.
    A closing move releases the one-unsettled-dispute-per-application slot."""
    starts, targets = TRANSITIONS[action]
    current = DisputeStatus(dispute.status)
    if current not in starts or to not in targets:
        raise Conflict(f"争议当前为“{current.label}”，不能{ACTION_LABELS[action]}")
    now = utcnow()
    values: dict[str, Any] = {"status": to.value}
    if to in CLOSED:
        values |= {"open_application_id": None, "closed_at": now, "closed_by": actor.name}
    workflow.compare_and_set(
        session,
        dispute,
        current.value,
        values,
        taken=lambda now: f"该争议已由他人处理（现为“{DisputeStatus(now).label}”），请刷新后查看",
    )
    _record(session, actor, dispute, action, current, to, note, details)


def _record(
    session: Session,
    actor: Principal,
    dispute: ShareDispute,
    action: str,
    current: DisputeStatus | None,
    to: DisputeStatus,
    note: str,
    details: dict[str, Any] | None,
) -> None:
    extra = dict(details or {})
    if dispute.due is not None and to in (D.OPEN, D.COORDINATING):
        extra.setdefault("due", dispute.due.isoformat())
    # the step itself cannot be overwritten by its details
    entry = extra | {
        "action": action,
        "from": current.value if current else None,
        "to": to.value,
        "actor": actor.name,
        "at": utcnow().isoformat(),
        "note": note,
    }
    dispute.history = [*(dispute.history or []), entry]
    session.flush()
    audit.record(
        session,
        actor,
        f"sharing:dispute:{action}",
        "share_dispute",
        dispute.id,
        {
            "application": dispute.application_id,
            "from": entry["from"],
            "to": to.value,
            "note": note[:200],
        }
        | extra,
    )
    notices.after_dispute(session, dispute, action)


# ---------------------------------------------------------------- clocks


def _provider(session: Session, dispute_or_app: ShareDispute | ShareApplication) -> Department:
    provider = session.get(Department, dispute_or_app.provider_department_id)
    assert provider is not None
    return provider


def _clock_running(dispute: ShareDispute) -> bool:
    return DisputeStatus(dispute.status) in (D.OPEN, D.COORDINATING) and dispute.due is not None


def days_left(dispute: ShareDispute, calendar: WorkdayCalendar, today: date) -> int | None:
    """Working days left to coordinate (negative: overdue by that many)."""
    if not _clock_running(dispute):
        return None
    assert dispute.due is not None
    return calendar.working_days_left(today, dispute.due)


def is_overdue(dispute: ShareDispute, today: date) -> bool:
    """Flagged the day after the coordination due date passes."""
    return _clock_running(dispute) and dispute.due is not None and today > dispute.due


def calendar_for(session: Session, dispute: ShareDispute) -> WorkdayCalendar:
    """The provider's jurisdiction calendar (for :func:`days_left` on pages)."""
    return sharing.context_for(session, _provider(session, dispute)).calendar


# ---------------------------------------------------------------- who may


def may_coordinate(session: Session, actor: Principal, dispute: ShareDispute) -> bool:
    """The data authority over the provider's jurisdiction."""
    return actor.can(Perm.SHARE_CHECK) and catalog_service.covers(
        session, actor, _provider(session, dispute).jurisdiction_id
    )


def _coordinator(session: Session, actor: Principal, dispute: ShareDispute) -> None:
    if not may_coordinate(session, actor, dispute):
        raise PermissionDenied("只有提供部门所在地的数据主管部门可以协调处理共享争议")


def _text(value: str, field: str, label: str, minimum: int = 4) -> str:
    return sharing._text(value, field, label, minimum=minimum)


# ---------------------------------------------------------------- raising


def open_dispute_for(session: Session, app: ShareApplication) -> ShareDispute | None:
    return session.scalar(select(ShareDispute).where(ShareDispute.open_application_id == app.id))


def raise_dispute(
    session: Session,
    actor: Principal,
    app: ShareApplication,
    statement: str,
    *,
    today: date | None = None,
) -> ShareDispute:
    """The consumer disputes a refusal, or an application left unanswered past its due
    date; the authority's coordination clock starts."""
    today = today or china_today()
    if not actor.can(Perm.SHARE_APPLY) or actor.department_id != app.consumer_department_id:
        raise PermissionDenied("只有申请部门可以对共享申请提出争议")
    status = ApplicationStatus(app.status)
    if status is ApplicationStatus.REJECTED:
        grounds = "rejected"
    elif sharing.is_overdue(app, today):
        grounds = "overdue"
    elif status.is_open:
        assert app.due is None or today <= app.due
        raise ValidationFailed(
            "申请尚在答复期限内，逾期未答复或不同意共享后方可提出争议"
            + (f"（答复期限 {app.due.isoformat()}）" if app.due else ""),
            field="application",
        )
    else:
        raise ValidationFailed(f"申请为“{status.label}”，不能提出争议", field="application")
    if open_dispute_for(session, app) is not None:
        raise Conflict("该申请已有尚未了结的争议，请等待协调结果")
    statement = _text(statement, "statement", "争议理由")
    ctx = sharing.context_for(session, _provider(session, app))
    dispute = ShareDispute(
        application_id=app.id,
        open_application_id=app.id,
        consumer_department_id=app.consumer_department_id,
        provider_department_id=app.provider_department_id,
        status=D.OPEN.value,
        grounds=grounds,
        consumer_statement=statement,
        created_by=actor.name,
        history=[],
    )
    rule = ctx.rules.dispute_coordination
    if rule is not None:
        due = ctx.calendar.due(today, rule.working_days)
        dispute.clock_from = today
        dispute.clock_days = rule.working_days
        dispute.due = due.due
        dispute.due_provisional = due.provisional
    session.add(dispute)
    session.flush()
    _record(
        session,
        actor,
        dispute,
        "raise",
        None,
        D.OPEN,
        statement,
        {"grounds": grounds, "coordinator": ctx.rules.dispute_coordinator.value},
    )
    return dispute


def provider_statement(
    session: Session, actor: Principal, dispute: ShareDispute, statement: str
) -> ShareDispute:
    """The provider states its side while the dispute is being coordinated."""
    if not actor.can(Perm.SHARE_REVIEW) or actor.department_id != dispute.provider_department_id:
        raise PermissionDenied("只有提供部门的审核人或主要负责人可以作出说明")
    status = DisputeStatus(dispute.status)
    if status not in (D.OPEN, D.COORDINATING):
        raise Conflict(f"争议当前为“{status.label}”，不能再作说明")
    dispute.provider_statement = _text(statement, "statement", "提供部门的说明")
    dispute.updated_at = utcnow()
    _record(
        session,
        actor,
        dispute,
        "provider_statement",
        status,
        status,
        dispute.provider_statement,
        None,
    )
    return dispute


# ---------------------------------------------------------------- coordination


def start_coordination(
    session: Session, actor: Principal, dispute: ShareDispute, note: str = ""
) -> ShareDispute:
    _coordinator(session, actor, dispute)
    transition(session, actor, dispute, "coordinate", D.COORDINATING, note=note.strip()[:2000])
    return dispute


def uphold(session: Session, actor: Principal, dispute: ShareDispute, record: str) -> ShareDispute:
    """Coordination upholds the refusal (the consumer accepts it)."""
    _coordinator(session, actor, dispute)
    record = _text(record, "record", "协调记录")
    dispute.coordination_record = record
    dispute.outcome = "upheld"
    transition(session, actor, dispute, "uphold", D.RESOLVED_UPHELD, note=record)
    return dispute


def _application(session: Session, dispute: ShareDispute) -> ShareApplication:
    app = session.get(ShareApplication, dispute.application_id)
    assert app is not None
    return app


def _order(
    session: Session,
    actor: Principal,
    dispute: ShareDispute,
    items: Sequence[str] | None,
    conditions: str,
    today: date,
    approved_by: str,
) -> tuple[list[str], str]:
    """Check the items (all or fewer of those asked for) and close the application where
    it is still open; returns the items and conditions."""
    app = _application(session, dispute)
    chosen = list(dict.fromkeys(items)) if items is not None else list(app.items)
    if not chosen:
        raise ValidationFailed("至少授权一个信息项", field="items")
    extra = [f for f in chosen if f not in app.items]
    if extra:
        raise ValidationFailed(f"信息项 {extra[0]} 不在申请范围内，不能授权", field="items")
    if app.period_end < today:
        raise ValidationFailed("申请的使用期限已过，请重新申请", field="items")
    if session.scalar(select(Grant.id).where(Grant.application_id == app.id)) is not None:
        raise Conflict("该申请已有共享授权")
    conditions = conditions.strip()[:4000]
    status = ApplicationStatus(app.status)
    if status.is_open:
        # the unanswered application is decided by the coordination outcome
        if status is ApplicationStatus.SUPPLEMENT_REQUESTED:
            raise Conflict("申请正在补正材料，不能依争议决定共享")
        app.decided_items = chosen
        app.conditions = conditions
        app.decided_at = utcnow()
        app.decided_by = approved_by
        sharing._stop_clock(app)
        sharing.transition(
            session,
            actor,
            app,
            "order_by_dispute",
            ApplicationStatus.APPROVED,
            note=f"依共享争议 #{dispute.id} 的决定共享",
            details={"dispute": dispute.id, "items": chosen},
        )
    elif status is not ApplicationStatus.REJECTED:
        raise Conflict(f"申请为“{status.label}”，不能依争议决定共享")
    return chosen, conditions


def _issue(
    session: Session,
    actor: Principal,
    dispute: ShareDispute,
    items: list[str],
    conditions: str,
    today: date,
    approved_by: str,
) -> Grant:
    app = _application(session, dispute)
    return grants.issue(
        session,
        actor,
        consumer_department_id=app.consumer_department_id,
        consumer_system=app.consumer_system,
        entry_id=app.entry_id,
        items=items,
        methods=app.methods,
        purpose=app.purpose,
        scenario=app.scenario,
        conditions=conditions,
        starts_on=max(app.period_start, today),
        ends_on=app.period_end,
        approved_by=approved_by,
        application_id=app.id,
        dispute_id=dispute.id,
    )


def order_grant(
    session: Session,
    actor: Principal,
    dispute: ShareDispute,
    record: str,
    items: Sequence[str] | None = None,
    conditions: str = "",
    *,
    today: date | None = None,
) -> Grant:
    """Coordination orders the data shared: a grant for all or fewer of the items asked
    for, with conditions (least necessary, seed 003 art. 12)."""
    today = today or china_today()
    _coordinator(session, actor, dispute)
    record = _text(record, "record", "协调记录")
    if dispute.status != D.COORDINATING.value:
        raise Conflict(
            f"争议当前为“{DisputeStatus(dispute.status).label}”，不能{ACTION_LABELS['order_grant']}"
        )
    approved_by = f"{actor.name}（争议协调）"
    chosen, conditions = _order(session, actor, dispute, items, conditions, today, approved_by)
    dispute.coordination_record = record
    dispute.outcome = "granted"
    transition(
        session,
        actor,
        dispute,
        "order_grant",
        D.RESOLVED_GRANTED,
        note=record,
        details={"items": chosen},
    )
    return _issue(session, actor, dispute, chosen, conditions, today, approved_by)


def escalate(
    session: Session, actor: Principal, dispute: ShareDispute, record: str
) -> ShareDispute:
    """No agreement reached: report to the government at the same level with a record of
    the coordination (seed 000 art. 20)."""
    _coordinator(session, actor, dispute)
    ctx = sharing.context_for(session, _provider(session, dispute))
    record = _text(record, "record", "协调情况及报请本级人民政府决定的说明", minimum=10)
    dispute.coordination_record = record
    dispute.escalation_record = record
    dispute.outcome = "escalated"
    transition(
        session,
        actor,
        dispute,
        "escalate",
        D.ESCALATED,
        note=record,
        details={"final": ctx.rules.dispute_final.value},
    )
    return dispute


def record_government_decision(
    session: Session,
    actor: Principal,
    dispute: ShareDispute,
    decision: str,
    outcome: str,
    items: Sequence[str] | None = None,
    conditions: str = "",
    *,
    today: date | None = None,
) -> Grant | None:
    """The authority records what the government decided: share (a grant follows) or
    not."""
    today = today or china_today()
    _coordinator(session, actor, dispute)
    if outcome not in ("granted", "upheld"):
        raise ValidationFailed("请选择本级人民政府的决定：予以共享或不予共享", field="outcome")
    decision = _text(decision, "decision", "本级人民政府的决定（文号及内容）")
    if dispute.status != D.ESCALATED.value:
        raise Conflict(
            f"争议当前为“{DisputeStatus(dispute.status).label}”，"
            f"不能{ACTION_LABELS['government_decision']}"
        )
    approved_by = f"本级人民政府（{actor.name}登记）"
    chosen: list[str] = []
    if outcome == "granted":
        chosen, conditions = _order(session, actor, dispute, items, conditions, today, approved_by)
    dispute.government_decision = decision
    dispute.government_outcome = outcome
    transition(
        session,
        actor,
        dispute,
        "government_decision",
        D.DECIDED_BY_GOVERNMENT,
        note=decision,
        details={"outcome": outcome, "items": chosen},
    )
    if outcome == "granted":
        return _issue(session, actor, dispute, chosen, conditions, today, approved_by)
    return None


# ---------------------------------------------------------------- reading


def get_dispute(session: Session, principal: Principal, dispute_id: int) -> ShareDispute:
    dispute = session.get(ShareDispute, dispute_id) if 0 < dispute_id < 2**31 else None
    if dispute is None or not (
        principal.department_id in (dispute.consumer_department_id, dispute.provider_department_id)
        or may_coordinate(session, principal, dispute)
    ):
        raise NotFound("共享争议不存在")
    return dispute


def disputes_for(session: Session, principal: Principal) -> list[ShareDispute]:
    """The disputes a principal sees: its department's, or those it coordinates."""
    rows = session.scalars(select(ShareDispute).order_by(ShareDispute.id.desc()))
    return [
        d
        for d in rows
        if principal.department_id in (d.consumer_department_id, d.provider_department_id)
        or may_coordinate(session, principal, d)
    ]


def disputes_of(session: Session, app: ShareApplication) -> list[ShareDispute]:
    return list(
        session.scalars(
            select(ShareDispute)
            .where(ShareDispute.application_id == app.id)
            .order_by(ShareDispute.id)
        )
    )
