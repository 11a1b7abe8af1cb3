"""Grants after issue: supervision by the data authority, who sees which, and the check
every data delivery makes.

- The data authority may **suspend** or **terminate** a grant when it finds the consumer
  using the data unlawfully, beyond its scope, or at a security risk (seed 003 art. 41),
  and resume a suspended one. A provider may not end or change a sharing service it
  provides on its own (seed 000 art. 30(7)): it asks the authority instead.
- :func:`check_grant` is called on every delivery: an expired, suspended or terminated
  grant, an item or a method not granted, stops the delivery at once with the reason.

Services flush, never commit; every change is audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Protocol, TypeVar

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from govshare.audit import service as audit
from govshare.catalog import service as catalog_service
from govshare.catalog.models import CatalogEntry, ShareMethod
from govshare.db import china_today, utcnow
from govshare.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from govshare.orgs import repository as orgs_repo
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.sharing.models import AgreementStatus, Grant, GrantStatus, ShareAgreement

G = GrantStatus

PROVIDER_MAY_NOT_END = (
    "提供部门不得擅自终止或者变更已提供的政务数据共享服务（《平山县政务数据共享工作制度》第三十条第（七）项），"
    "如发现违规使用，请报数据主管部门处理"
)


# ---------------------------------------------------------------- issue


def issue(
    session: Session,
    actor: Principal,
    *,
    consumer_department_id: int,
    entry_id: int,
    items: Sequence[str],
    methods: Sequence[str],
    purpose: str,
    scenario: str,
    starts_on: date,
    ends_on: date,
    approved_by: str,
    conditions: str = "",
    consumer_system: str = "",
    application_id: int | None = None,
    dispute_id: int | None = None,
    agreement_id: int | None = None,
) -> Grant:
    """Create a grant (ordered in a dispute, or produced by a filed agreement): the same
    fields as an approved application's grant, audited as ``sharing:grant:issue``."""
    if not items:
        raise ValidationFailed("至少授权一个信息项", field="items")
    if ends_on < starts_on:
        raise ValidationFailed("授权期限已过，不能授权", field="ends_on")
    grant = Grant(
        application_id=application_id,
        dispute_id=dispute_id,
        agreement_id=agreement_id,
        consumer_department_id=consumer_department_id,
        consumer_system=consumer_system,
        entry_id=entry_id,
        items=list(items),
        methods=list(methods),
        purpose=purpose,
        scenario=scenario,
        conditions=conditions,
        starts_on=starts_on,
        ends_on=ends_on,
        approved_by=approved_by,
    )
    session.add(grant)
    session.flush()
    audit.record(
        session,
        actor,
        "sharing:grant:issue",
        "share_grant",
        grant.id,
        {
            "application": application_id,
            "dispute": dispute_id,
            "agreement": agreement_id,
            "entry": entry_id,
            "consumer": consumer_department_id,
            "items": grant.items,
            "ends_on": ends_on.isoformat(),
        },
    )
    return grant


# ---------------------------------------------------------------- who may


def _entry(session: Session, grant: Grant) -> CatalogEntry:
    entry = session.get(CatalogEntry, grant.entry_id)
    assert entry is not None
    return entry


def may_supervise(session: Session, actor: Principal, grant: Grant) -> bool:
    """The data authority over the provider's jurisdiction."""
    return actor.can(Perm.SHARE_CHECK) and catalog_service.covers(
        session, actor, _entry(session, grant).jurisdiction_id
    )


def _is_provider(session: Session, actor: Principal, grant: Grant) -> bool:
    return (
        actor.department_id is not None
        and actor.department_id == _entry(session, grant).department_id
    )


def _supervisor(session: Session, actor: Principal, grant: Grant) -> None:
    if may_supervise(session, actor, grant):
        return
    if _is_provider(session, actor, grant):
        raise PermissionDenied(PROVIDER_MAY_NOT_END)
    raise PermissionDenied("只有数据主管部门可以暂停、恢复或终止共享授权")


# ---------------------------------------------------------------- status changes


def _change(
    session: Session,
    actor: Principal,
    grant: Grant,
    action: str,
    starts: frozenset[GrantStatus],
    to: GrantStatus,
    reason: str,
) -> Grant:
    """Compare-and-set on the grant's status, stamped and audited."""
    current = GrantStatus(grant.status)
    labels = {"suspend": "暂停", "resume": "恢复", "terminate": "终止"}
    if current not in starts:
        raise Conflict(f"共享授权当前为“{current.label}”，不能{labels[action]}")
    now = utcnow()
    done = session.execute(
        update(Grant)
        .where(Grant.id == grant.id, Grant.status == current.value)
        .values(
            status=to.value,
            status_reason=reason,
            status_changed_at=now,
            status_changed_by=actor.name,
        )
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(grant)
        raise Conflict(
            f"该授权已由他人处理（现为“{GrantStatus(grant.status).label}”），请刷新后查看"
        )
    grant.status = to.value
    grant.status_reason = reason
    grant.status_changed_at = now
    grant.status_changed_by = actor.name
    session.flush()
    audit.record(
        session,
        actor,
        f"sharing:grant:{action}",
        "share_grant",
        grant.id,
        {"from": current.value, "to": to.value, "reason": reason[:200]},
    )
    return grant


def _reason(reason: str, label: str) -> str:
    reason = reason.strip()
    if len(reason) < 4:
        raise ValidationFailed(f"请填写{label}（至少 4 个字）", field="reason")
    return reason[:4000]


def suspend(session: Session, actor: Principal, grant: Grant, reason: str) -> Grant:
    """Suspend on finding unlawful, out-of-scope or risky use (seed 003 art. 41)."""
    _supervisor(session, actor, grant)
    reason = _reason(reason, "暂停的理由")
    return _change(session, actor, grant, "suspend", frozenset({G.ACTIVE}), G.SUSPENDED, reason)


def resume(session: Session, actor: Principal, grant: Grant, reason: str) -> Grant:
    """Resume a suspended grant once the problem is put right."""
    _supervisor(session, actor, grant)
    reason = _reason(reason, "恢复的理由")
    return _change(session, actor, grant, "resume", frozenset({G.SUSPENDED}), G.ACTIVE, reason)


def terminate(session: Session, actor: Principal, grant: Grant, reason: str) -> Grant:
    """Terminate for good (seed 003 art. 41); an agreement's grant ends its agreement."""
    _supervisor(session, actor, grant)
    reason = _reason(reason, "终止的理由")
    _change(
        session,
        actor,
        grant,
        "terminate",
        frozenset({G.ACTIVE, G.SUSPENDED}),
        G.TERMINATED,
        reason,
    )
    if grant.agreement_id is not None:
        agreement = session.get(ShareAgreement, grant.agreement_id)
        assert agreement is not None
        if agreement.status in (AgreementStatus.FILED.value, AgreementStatus.ACTIVE.value):
            from govshare.sharing import agreements  # the agreement module imports this one

            agreement.status_reason = reason
            agreements.transition(
                session,
                actor,
                agreement,
                "terminate",
                AgreementStatus.TERMINATED,
                note=reason,
            )
    return grant


# ---------------------------------------------------------------- reading


def grants_for(
    session: Session,
    principal: Principal,
    *,
    as_: str | None = None,
    status: GrantStatus | None = None,
    entry_id: int | None = None,
) -> list[Grant]:
    """The grants a principal sees, newest first: the consumer its own, the provider those
    on its entries, the data authority those over entries in its jurisdiction. ``as_``
    (``consumer``, ``provider``, ``authority``) narrows to one of these views."""
    views: list[object] = []
    dept = principal.department_id
    if dept is not None and as_ in (None, "consumer"):
        views.append(Grant.consumer_department_id == dept)
    if dept is not None and as_ in (None, "provider"):
        views.append(
            Grant.entry_id.in_(select(CatalogEntry.id).where(CatalogEntry.department_id == dept))
        )
    if principal.can(Perm.SHARE_CHECK) and as_ in (None, "authority"):
        if principal.jurisdiction_id is not None:
            subtree = orgs_repo.jurisdiction_subtree_ids(session, principal.jurisdiction_id)
            views.append(
                Grant.entry_id.in_(
                    select(CatalogEntry.id).where(CatalogEntry.jurisdiction_id.in_(subtree))
                )
            )
        elif principal.kind == "system":
            views.append(Grant.id.is_not(None))
    if not views:
        return []
    query = select(Grant).where(or_(*views))  # type: ignore[arg-type]
    if status is not None:
        query = query.where(Grant.status == status.value)
    if entry_id is not None:
        query = query.where(Grant.entry_id == entry_id)
    return list(session.scalars(query.order_by(Grant.id.desc())))


def get_grant(session: Session, principal: Principal, grant_id: int) -> Grant:
    grant = session.get(Grant, grant_id) if 0 < grant_id < 2**31 else None
    if grant is None or not (
        principal.department_id == grant.consumer_department_id
        or _is_provider(session, principal, grant)
        or may_supervise(session, principal, grant)
    ):
        raise NotFound("共享授权不存在")
    return grant


class GrantLike(Protocol):
    """What a grant decision reads: a Grant row, or a data-service worker's cached copy."""

    @property
    def items(self) -> Sequence[str] | frozenset[str]: ...
    @property
    def methods(self) -> Sequence[str] | frozenset[str]: ...
    @property
    def status(self) -> str: ...
    @property
    def status_reason(self) -> str: ...
    @property
    def starts_on(self) -> date: ...
    @property
    def ends_on(self) -> date: ...


GL = TypeVar("GL", bound=GrantLike)


def _in_force(grant: GrantLike, today: date) -> bool:
    return grant.status == G.ACTIVE.value and grant.starts_on <= today <= grant.ends_on


def decide(grants: Sequence[GL], fields: Sequence[str], method: str, today: date) -> GL:
    """The grant in force (``grants`` newest first) that lets the consumer receive every
    one of ``fields`` by ``method`` today; otherwise PermissionDenied with the reason."""
    try:
        method_value = ShareMethod(method).value
    except ValueError:
        raise PermissionDenied(f"不支持的共享方式 {method}") from None
    if not grants:
        raise PermissionDenied("本部门没有该资源的共享授权，请先提出共享申请")
    in_force = [g for g in grants if _in_force(g, today)]
    for grant in in_force:
        if method_value in grant.methods and all(f in grant.items for f in fields):
            return grant
    if in_force:
        for field in fields:
            if not any(field in g.items for g in in_force):
                raise PermissionDenied(f"共享授权不包括信息项 {field}")
        if not any(method_value in g.methods for g in in_force):
            label = ShareMethod(method_value).label
            raise PermissionDenied(f"共享授权不包括共享方式“{label}”")
        raise PermissionDenied("没有一项共享授权同时包括所请求的全部信息项和共享方式")
    grant = grants[0]
    status = GrantStatus(grant.status)
    if status is G.TERMINATED:
        raise PermissionDenied(f"共享授权已被终止：{grant.status_reason}")
    if status is G.SUSPENDED:
        raise PermissionDenied(f"共享授权已被暂停：{grant.status_reason}")
    if today < grant.starts_on:
        raise PermissionDenied(f"共享授权自 {grant.starts_on.isoformat()} 起生效")
    raise PermissionDenied(f"共享授权已于 {grant.ends_on.isoformat()} 到期，请重新申请")


def grants_of(session: Session, consumer_department_id: int, entry_id: int) -> list[Grant]:
    """Every grant of the consumer for the entry, newest first."""
    return list(
        session.scalars(
            select(Grant)
            .where(
                Grant.consumer_department_id == consumer_department_id,
                Grant.entry_id == entry_id,
            )
            .order_by(Grant.id.desc())
        )
    )


def check_grant(
    session: Session,
    consumer_department_id: int,
    entry_id: int,
    field: str,
    method: str,
    today: date | None = None,
) -> Grant:
    """The grant in force that lets the consumer receive ``field`` of the entry by
    ``method`` today; otherwise PermissionDenied with the reason (the data services call
    :func:`decide` on every delivery, so a change of status takes effect at once)."""
    return decide(
        grants_of(session, consumer_department_id, entry_id),
        [field],
        method,
        today or china_today(),
    )
