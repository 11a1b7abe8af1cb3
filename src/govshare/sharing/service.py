"""The sharing workflow: filing, compliance check, review, supplement, decision, grant.

Paths (the provider's rulebook decides; each rule cites its article there):

- **Unconditional data** (无条件 / 强制共享): a *request* stating purpose and scenario is
  granted at once, without the provider's review (seed 000 art. 16); where the rulebook
  has ``sharing.compliance_check``, the data authority checks it first.
- **Conditional data** (有条件 / 条件共享): an *application* with legal basis, scenario,
  items, scope, methods, purpose and period, answered within ``sharing.conditional_reply``
  working days (10 in seed 000, 5 in seed 002, 7 in seed 004) by the reviewer the
  rulebook names: the provider, the data authority (seed 003 art. 12), or an authority
  compliance check followed by the provider.
- **Not-shared data**: no application; the entry shows its legal basis.

Material missing: the reviewer asks once for everything missing (一次性告知,
``sharing.supplement.once``); on resubmission the clock restarts or resumes as the
rulebook says. A decision approves all or fewer of the items asked for, with conditions
(least necessary, seed 003 art. 12), or rejects with a reason.

Every state change goes through :func:`transition`: it checks that the change is allowed
from the current state, applies it with a compare-and-set on the status (two reviewers
deciding at once: exactly one wins, the other gets a clear conflict), timestamps it,
records an :class:`ApplicationEvent` and audits it. Services flush, never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.audit import service as audit
from govshare.catalog import service as catalog_service
from govshare.catalog.models import CatalogEntry, EntryStatus, ShareMethod, ShareType
from govshare.db import china_today, utcnow
from govshare.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from govshare.orgs.models import Department
from govshare.permissions import Perm, Role
from govshare.principal import Principal
from govshare.rules import service as rules_service
from govshare.rules.rulebook import SharingRules
from govshare.rules.workdays import WorkdayCalendar
from govshare.sharing import notices, workflow
from govshare.sharing.models import (
    ApplicationEvent,
    ApplicationKind,
    ApplicationStatus,
    Grant,
    Scope,
    ShareApplication,
)

#: the longest period a grant may run (a platform rule: renew by a new application)
MAX_PERIOD_DAYS = 3 * 366

S = ApplicationStatus

#: action -> (states it may start from, state it leads to); "file" has no start state
TRANSITIONS: dict[str, tuple[frozenset[ApplicationStatus], ApplicationStatus | None]] = {
    "pass_check": (frozenset({S.COMPLIANCE_CHECK}), None),  # -> review, or approved
    "fail_check": (frozenset({S.COMPLIANCE_CHECK}), S.REJECTED),
    "ask_supplement": (frozenset({S.PENDING_REVIEW}), S.SUPPLEMENT_REQUESTED),
    "resubmit": (frozenset({S.SUPPLEMENT_REQUESTED}), S.PENDING_REVIEW),
    "approve": (frozenset({S.PENDING_REVIEW}), S.APPROVED),
    "reject": (frozenset({S.PENDING_REVIEW}), S.REJECTED),
    "withdraw": (
        frozenset({S.COMPLIANCE_CHECK, S.PENDING_REVIEW, S.SUPPLEMENT_REQUESTED}),
        S.WITHDRAWN,
    ),
    # a longer reply period, where the rulebook allows one, approved by whom it names
    "extend": (frozenset({S.PENDING_REVIEW}), S.PENDING_REVIEW),
    # the authority's coordination of a dispute (or the government) decides to share
    "order_by_dispute": (
        frozenset({S.COMPLIANCE_CHECK, S.PENDING_REVIEW, S.SUPPLEMENT_REQUESTED}),
        S.APPROVED,
    ),
}

ACTION_LABELS = {
    "file": "提交",
    "pass_check": "合规审查通过",
    "fail_check": "合规审查未通过",
    "ask_supplement": "一次性告知补正材料",
    "resubmit": "补正后重新提交",
    "approve": "同意共享",
    "reject": "不同意共享",
    "withdraw": "撤回",
    "order_by_dispute": "依争议协调决定共享",
    "extend": "延长答复期限",
}


# ---------------------------------------------------------------- rules and clocks


@dataclass(frozen=True)
class Context:
    """The provider's rules and working-day calendar for one application."""

    provider: Department
    rules: SharingRules
    calendar: WorkdayCalendar


def context_for(session: Session, provider: Department) -> Context:
    return Context(
        provider=provider,
        rules=rules_service.rulebook_for(session, provider.jurisdiction).sharing,
        calendar=rules_service.calendar_for(session, provider.jurisdiction),
    )


def _start_clock(app: ShareApplication, ctx: Context, days: int, today: date) -> None:
    due = ctx.calendar.due(today, days)
    app.clock_from = today
    app.clock_days = days
    app.due = due.due
    app.due_provisional = due.provisional


def _stop_clock(app: ShareApplication) -> None:
    app.due = None
    app.due_provisional = False


def _check_days(rules: SharingRules) -> int:
    """The compliance check's period: its own rule, else the reply period."""
    rule = rules.compliance_check or rules.conditional_reply
    return rule.working_days


def days_left(app: ShareApplication, calendar: WorkdayCalendar, today: date) -> int | None:
    """Working days left on the running clock (negative: overdue by that many)."""
    if app.due is None or not ApplicationStatus(app.status).is_open:
        return None
    return calendar.working_days_left(today, app.due)


def is_overdue(app: ShareApplication, today: date) -> bool:
    """Flagged the day after the due date passes (seed 000 art. 30: an overdue reply is a
    violation)."""
    return app.due is not None and ApplicationStatus(app.status).is_open and today > app.due


# ---------------------------------------------------------------- the one transition


def transition(
    session: Session,
    actor: Principal,
    app: ShareApplication,
    action: str,
    to: ApplicationStatus,
    *,
    note: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """Move ``app`` to ``to`` by ``action``: allowed from its state, applied only if no one
    changed it meanwhile (compare-and-set), recorded as an event and audited."""
    starts, _default = TRANSITIONS[action]
    current = ApplicationStatus(app.status)
    if current not in starts:
        raise Conflict(f"申请当前为“{current.label}”，不能{ACTION_LABELS[action]}")
    workflow.compare_and_set(
        session,
        app,
        current.value,
        {"status": to.value},
        taken=lambda now: (
            f"该申请已由他人处理（现为“{ApplicationStatus(now).label}”），请刷新后查看"
        ),
    )
    _record(session, actor, app, action, current, to, note, details)


def _record(
    session: Session,
    actor: Principal,
    app: ShareApplication,
    action: str,
    current: ApplicationStatus | None,
    to: ApplicationStatus,
    note: str,
    details: dict[str, Any] | None,
) -> None:
    extra = dict(details or {})
    if app.due is not None:
        extra.setdefault("due", app.due.isoformat())
    session.add(
        ApplicationEvent(
            application_id=app.id,
            action=action,
            from_status=current.value if current else None,
            to_status=to.value,
            actor=actor.name,
            note=note,
            details=extra,
        )
    )
    session.flush()
    audit.record(
        session,
        actor,
        f"sharing:application:{action}",
        "share_application",
        app.id,
        {"from": current.value if current else None, "to": to.value, "note": note[:200]} | extra,
    )
    notices.after(session, app, action)


# ---------------------------------------------------------------- filing


@dataclass(frozen=True)
class ApplicationIn:
    entry_id: int
    items: Sequence[str]
    scope: str
    methods: Sequence[str]
    purpose: str
    scenario: str
    period_start: date
    period_end: date
    basis: str = ""
    consumer_system: str = ""


def _text(value: str, field: str, label: str, minimum: int = 4, maximum: int = 4000) -> str:
    value = value.strip()
    if len(value) < minimum:
        raise ValidationFailed(f"请填写{label}（至少 {minimum} 个字）", field=field)
    if len(value) > maximum:
        raise ValidationFailed(f"{label}最多 {maximum} 个字", field=field)
    return value


def file_application(
    session: Session, actor: Principal, data: ApplicationIn, *, today: date | None = None
) -> ShareApplication:
    """A consumer department asks for an entry's data. Unconditional data is granted at
    once (or goes to the authority's compliance check); conditional data starts the
    reviewer's clock; not-shared data cannot be applied for."""
    today = today or china_today()
    if not actor.can(Perm.SHARE_APPLY) or actor.department_id is None:
        raise PermissionDenied("只有部门数据专员或主要负责人可以申请共享数据")
    entry = session.get(CatalogEntry, data.entry_id)
    if entry is None or entry.status != EntryStatus.PUBLISHED.value:
        raise NotFound("目录资源不存在或未发布")
    version = entry.current_version
    assert version is not None
    if entry.department_id == actor.department_id:
        raise ValidationFailed("本部门的数据无需申请共享", field="entry_id")
    share_type = ShareType(version.share_type)
    if share_type is ShareType.NOT_SHARED:
        raise ValidationFailed(
            f"该资源不予共享，依据：{version.share_basis or '（未登记）'}", field="entry_id"
        )
    by_field = {it["field"]: it for it in version.data_items}
    items = list(dict.fromkeys(f.strip() for f in data.items if f.strip()))
    if not items:
        raise ValidationFailed("请选择需要的信息项", field="items")
    unknown = [f for f in items if f not in by_field]
    if unknown:
        raise ValidationFailed(f"信息项 {unknown[0]} 不在该资源中", field="items")
    refused = [by_field[f]["name"] for f in items if by_field[f].get("share_type") == "not_shared"]
    if refused:
        raise ValidationFailed(f"信息项“{refused[0]}”不予共享，不能申请", field="items")
    try:
        scope = Scope(data.scope)
        methods = [ShareMethod(m) for m in dict.fromkeys(data.methods)]
    except ValueError:
        raise ValidationFailed("共享范围或方式不正确", field="methods") from None
    if not methods:
        raise ValidationFailed("请选择共享方式", field="methods")
    offered = set(version.share_methods)
    if any(m.value not in offered for m in methods):
        raise ValidationFailed("该资源不提供所选的共享方式", field="methods")
    if scope is Scope.PER_SUBJECT and ShareMethod.BATCH in methods:
        raise ValidationFailed("按主体查询或核验不需要批量交换", field="methods")
    if scope is Scope.DATASET and ShareMethod.BATCH not in methods:
        raise ValidationFailed("获取整体数据集须选择批量交换方式", field="methods")
    purpose = _text(data.purpose, "purpose", "使用用途")
    scenario = _text(data.scenario, "scenario", "应用场景")
    conditional = share_type is ShareType.CONDITIONAL
    basis = _text(data.basis, "basis", "申请依据") if conditional else data.basis.strip()[:4000]
    if data.period_start < today:
        raise ValidationFailed("使用期限不能早于今天", field="period_start")
    if data.period_end < data.period_start:
        raise ValidationFailed("使用期限的结束日期不能早于开始日期", field="period_end")
    if (data.period_end - data.period_start).days > MAX_PERIOD_DAYS:
        raise ValidationFailed("使用期限最长 3 年，到期后可重新申请", field="period_end")
    provider = entry.department
    ctx = context_for(session, provider)
    reviewer = ctx.rules.reviewer.value if conditional else "authority"
    app = ShareApplication(
        kind=(ApplicationKind.APPLICATION if conditional else ApplicationKind.REQUEST).value,
        status=S.PENDING_REVIEW.value,  # set below
        consumer_department_id=actor.department_id,
        consumer_system=data.consumer_system.strip()[:128],
        entry_id=entry.id,
        provider_department_id=provider.id,
        version_id=version.id,
        items=items,
        scope=scope.value,
        methods=[m.value for m in methods],
        purpose=purpose,
        scenario=scenario,
        basis=basis,
        period_start=data.period_start,
        period_end=data.period_end,
        reviewer=reviewer,
        created_by=actor.name,
    )
    if not conditional:
        if ctx.rules.compliance_check is None:
            # seed 000 art. 16: unconditional data is granted on request, without review
            app.status = S.APPROVED.value
            app.decided_items = items
            app.decided_at = utcnow()
            app.decided_by = "平台（无条件共享，无需审核）"
        else:
            app.status = S.COMPLIANCE_CHECK.value
            _start_clock(app, ctx, ctx.rules.compliance_check.working_days, today)
    elif reviewer == "authority_then_provider":
        app.status = S.COMPLIANCE_CHECK.value
        _start_clock(app, ctx, _check_days(ctx.rules), today)
    else:
        _start_clock(app, ctx, ctx.rules.conditional_reply.working_days, today)
    session.add(app)
    session.flush()
    _record(session, actor, app, "file", None, S(app.status), "", {"kind": app.kind})
    if app.status == S.APPROVED.value:
        _grant(session, actor, app, today, approved_by=app.decided_by or "")
    return app


# ---------------------------------------------------------------- who decides


def may_check(session: Session, actor: Principal, app: ShareApplication) -> bool:
    provider = session.get(Department, app.provider_department_id)
    return (
        provider is not None
        and actor.can(Perm.SHARE_CHECK)
        and catalog_service.covers(session, actor, provider.jurisdiction_id)
    )


def may_review(session: Session, actor: Principal, app: ShareApplication) -> bool:
    """The rulebook's reviewer: the provider's reviewer or head, or the data authority."""
    if app.reviewer == "authority" or app.kind == ApplicationKind.REQUEST.value:
        return may_check(session, actor, app)
    return actor.can(Perm.SHARE_REVIEW) and actor.department_id == app.provider_department_id


def _as_consumer(actor: Principal, app: ShareApplication) -> None:
    if not actor.can(Perm.SHARE_APPLY) or actor.department_id != app.consumer_department_id:
        raise PermissionDenied("只有申请部门可以这样做")


# ---------------------------------------------------------------- the steps


def pass_check(
    session: Session,
    actor: Principal,
    app: ShareApplication,
    note: str = "",
    *,
    today: date | None = None,
) -> ShareApplication:
    """The authority's compliance check passes: an unconditional request is granted, a
    conditional application goes on to the provider's review with its own clock."""
    today = today or china_today()
    if not may_check(session, actor, app):
        raise PermissionDenied("只有数据主管部门可以进行合规审查")
    ctx = context_for(session, _provider(session, app))
    if app.kind == ApplicationKind.REQUEST.value:
        app.decided_items = list(app.items)
        app.decided_at = utcnow()
        app.decided_by = actor.name
        _stop_clock(app)
        transition(session, actor, app, "pass_check", S.APPROVED, note=note.strip()[:2000])
        _grant(session, actor, app, today, approved_by=actor.name)
    else:
        _start_clock(app, ctx, ctx.rules.conditional_reply.working_days, today)
        transition(session, actor, app, "pass_check", S.PENDING_REVIEW, note=note.strip()[:2000])
    return app


def fail_check(
    session: Session, actor: Principal, app: ShareApplication, reason: str
) -> ShareApplication:
    if not may_check(session, actor, app):
        raise PermissionDenied("只有数据主管部门可以进行合规审查")
    reason = _text(reason, "reason", "不通过的理由")
    app.reason = reason
    app.decided_at = utcnow()
    app.decided_by = actor.name
    _stop_clock(app)
    transition(session, actor, app, "fail_check", S.REJECTED, note=reason)
    return app


def ask_supplement(
    session: Session,
    actor: Principal,
    app: ShareApplication,
    missing: str,
    *,
    today: date | None = None,
) -> ShareApplication:
    """Ask once for everything missing (一次性告知); the clock stops until resubmission."""
    today = today or china_today()
    if not may_review(session, actor, app):
        raise PermissionDenied("只有审核方可以要求补正材料")
    ctx = context_for(session, _provider(session, app))
    if ctx.rules.supplement.once and app.supplement_asked:
        raise Conflict(
            f"需要补正的材料应一次性告知，本申请已告知过（{ctx.rules.supplement.cite.text}）"
        )
    missing = _text(missing, "missing", "需要补正的全部材料")
    left = days_left(app, ctx.calendar, today)
    app.days_left_at_supplement = max(left or 0, 0)
    app.supplement_asked = True
    app.supplement_request = missing
    _stop_clock(app)
    transition(session, actor, app, "ask_supplement", S.SUPPLEMENT_REQUESTED, note=missing)
    return app


def resubmit(
    session: Session,
    actor: Principal,
    app: ShareApplication,
    reply: str,
    *,
    today: date | None = None,
) -> ShareApplication:
    """The consumer supplies the material; the clock restarts in full or resumes with
    what was left, as the provider's rulebook says."""
    today = today or china_today()
    _as_consumer(actor, app)
    reply = _text(reply, "reply", "补正说明")
    ctx = context_for(session, _provider(session, app))
    full = ctx.rules.conditional_reply.working_days
    if ctx.rules.supplement.clock == "restart":
        days = full
    else:
        days = max(app.days_left_at_supplement or 0, 1)
    app.supplement_reply = reply
    _start_clock(app, ctx, days, today)
    transition(
        session,
        actor,
        app,
        "resubmit",
        S.PENDING_REVIEW,
        note=reply,
        details={"clock": ctx.rules.supplement.clock, "days": days},
    )
    return app


def approve(
    session: Session,
    actor: Principal,
    app: ShareApplication,
    items: Sequence[str] | None = None,
    conditions: str = "",
    *,
    today: date | None = None,
) -> Grant:
    """Approve all or fewer of the items asked for, with conditions; the grant follows."""
    today = today or china_today()
    if not may_review(session, actor, app):
        raise PermissionDenied("只有审核方可以作出决定")
    chosen = list(dict.fromkeys(items)) if items is not None else list(app.items)
    if not chosen:
        raise ValidationFailed("至少同意一个信息项；全部不同意请选择“不同意共享”", field="items")
    extra = [f for f in chosen if f not in app.items]
    if extra:
        # least necessary (seed 003 art. 12): never more than was asked for
        raise ValidationFailed(f"信息项 {extra[0]} 不在申请范围内，不能授权", field="items")
    app.decided_items = chosen
    app.conditions = conditions.strip()[:4000]
    app.decided_at = utcnow()
    app.decided_by = actor.name
    _stop_clock(app)
    narrowed = [f for f in app.items if f not in chosen]
    transition(
        session,
        actor,
        app,
        "approve",
        S.APPROVED,
        note=app.conditions,
        details={"items": chosen, "narrowed": narrowed},
    )
    return _grant(session, actor, app, today, approved_by=actor.name)


def reject(
    session: Session, actor: Principal, app: ShareApplication, reason: str
) -> ShareApplication:
    """Refuse, with the reason the consumer can dispute."""
    if not may_review(session, actor, app):
        raise PermissionDenied("只有审核方可以作出决定")
    reason = _text(reason, "reason", "不同意的理由")
    app.reason = reason
    app.decided_at = utcnow()
    app.decided_by = actor.name
    _stop_clock(app)
    transition(session, actor, app, "reject", S.REJECTED, note=reason)
    return app


def _extension_approver(
    session: Session, actor: Principal, app: ShareApplication, ctx: Context
) -> tuple[bool, str]:
    if ctx.rules.conditional_reply.extension_approver == "dept_head":
        ok = actor.role is Role.DEPT_HEAD and actor.department_id == app.provider_department_id
        return ok, "提供部门主要负责人"
    return may_check(session, actor, app), "数据主管部门"


def _extended(session: Session, app: ShareApplication) -> bool:
    return (
        session.scalar(
            select(ApplicationEvent.id).where(
                ApplicationEvent.application_id == app.id, ApplicationEvent.action == "extend"
            )
        )
        is not None
    )


def may_extend(session: Session, actor: Principal, app: ShareApplication) -> bool:
    """Whether ``actor`` may extend this application's reply period now."""
    if app.status != S.PENDING_REVIEW.value:
        return False
    ctx = context_for(session, _provider(session, app))
    if not ctx.rules.conditional_reply.extension_working_days:
        return False
    return _extension_approver(session, actor, app, ctx)[0] and not _extended(session, app)


def extend(
    session: Session, actor: Principal, app: ShareApplication, reason: str
) -> ShareApplication:
    """Extend the reply period once, where the provider's rulebook allows it
    (``conditional_reply.extension_working_days``), with the approval it names: the
    provider's head (主要负责人) or the data authority. Recorded like every change."""
    ctx = context_for(session, _provider(session, app))
    rule = ctx.rules.conditional_reply
    if not rule.extension_working_days:
        raise ValidationFailed(
            f"本级规则未规定可以延长答复期限（{rule.cite.text}）", field="reason"
        )
    allowed, who = _extension_approver(session, actor, app, ctx)
    if not allowed:
        raise PermissionDenied(f"延长答复期限须经{who}同意")
    if _extended(session, app):
        raise Conflict("答复期限只能延长一次")
    reason = _text(reason, "reason", "延长理由")
    assert app.due is not None
    before = app.due
    due = ctx.calendar.due(app.due, rule.extension_working_days)
    app.due = due.due
    app.due_provisional = app.due_provisional or due.provisional
    app.clock_days += rule.extension_working_days
    transition(
        session,
        actor,
        app,
        "extend",
        S.PENDING_REVIEW,
        note=reason,
        details={
            "from_due": before.isoformat(),
            "working_days": rule.extension_working_days,
            "approver": who,
        },
    )
    return app


def withdraw(session: Session, actor: Principal, app: ShareApplication) -> ShareApplication:
    _as_consumer(actor, app)
    _stop_clock(app)
    transition(session, actor, app, "withdraw", S.WITHDRAWN)
    return app


# ---------------------------------------------------------------- grants


def _provider(session: Session, app: ShareApplication) -> Department:
    provider = session.get(Department, app.provider_department_id)
    assert provider is not None
    return provider


def _grant(
    session: Session, actor: Principal, app: ShareApplication, today: date, *, approved_by: str
) -> Grant:
    from govshare.sharing import grants

    return grants.issue(
        session,
        actor,
        consumer_department_id=app.consumer_department_id,
        consumer_system=app.consumer_system,
        entry_id=app.entry_id,
        items=list(app.decided_items or app.items),
        methods=list(app.methods),
        purpose=app.purpose,
        scenario=app.scenario,
        conditions=app.conditions,
        starts_on=max(app.period_start, today),
        ends_on=app.period_end,
        approved_by=approved_by,
        application_id=app.id,
    )


def get_application(session: Session, principal: Principal, app_id: int) -> ShareApplication:
    """An application its consumer, its provider or the authority over the provider sees."""
    app = session.get(ShareApplication, app_id) if 0 < app_id < 2**31 else None
    if app is None or not (
        principal.department_id in (app.consumer_department_id, app.provider_department_id)
        or may_check(session, principal, app)
    ):
        raise NotFound("共享申请不存在")
    return app
