"""Agreement sharing (协议共享, seed 004 art. 16(3)): departments with a long-term, stable
need for specific data sign a sharing agreement, file it with the data authority (报…备案),
and share through the platform for the agreement's term.

Only where the provider's rulebook has ``sharing.agreement_sharing``; elsewhere a request
or application is the way. The consumer drafts, both departments sign, the authority over
the provider's jurisdiction files it, and filing produces the grant for the term. The
authority may terminate it (seed 003 art. 41); the provider may not end it on its own
(seed 000 art. 30(7)).

draft -> filed (term not begun) -> active -> ended (term over) | terminated.
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
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.sharing import grants, workflow
from govshare.sharing import service as sharing
from govshare.sharing.models import AgreementStatus, Grant, GrantStatus, ShareAgreement

A = AgreementStatus

TRANSITIONS: dict[str, tuple[frozenset[AgreementStatus], frozenset[AgreementStatus]]] = {
    "file": (frozenset({A.DRAFT}), frozenset({A.FILED, A.ACTIVE})),
    "start": (frozenset({A.FILED}), frozenset({A.ACTIVE})),
    "end": (frozenset({A.FILED, A.ACTIVE}), frozenset({A.ENDED})),
    "terminate": (frozenset({A.FILED, A.ACTIVE}), frozenset({A.TERMINATED})),
}

ACTION_LABELS = {
    "draft": "起草",
    "sign": "签署",
    "file": "备案",
    "start": "开始履行",
    "end": "到期终止",
    "terminate": "终止",
}


def transition(
    session: Session,
    actor: Principal,
    agreement: ShareAgreement,
    action: str,
    to: AgreementStatus,
    *,
    note: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """Compare-and-set on the status, recorded in the history and audited."""
    starts, targets = TRANSITIONS[action]
    current = AgreementStatus(agreement.status)
    if current not in starts or to not in targets:
        raise Conflict(f"协议当前为“{current.label}”，不能{ACTION_LABELS[action]}")
    workflow.compare_and_set(
        session,
        agreement,
        current.value,
        {"status": to.value},
        taken=lambda now: f"该协议已由他人处理（现为“{AgreementStatus(now).label}”），请刷新后查看",
    )
    _record(session, actor, agreement, action, current, to, note, details)


def _record(
    session: Session,
    actor: Principal,
    agreement: ShareAgreement,
    action: str,
    current: AgreementStatus | None,
    to: AgreementStatus,
    note: str,
    details: dict[str, Any] | None,
) -> None:
    # the step itself cannot be overwritten by its details
    entry = dict(details or {}) | {
        "action": action,
        "from": current.value if current else None,
        "to": to.value,
        "actor": actor.name,
        "at": utcnow().isoformat(),
        "note": note,
    }
    agreement.history = [*(agreement.history or []), entry]
    session.flush()
    audit.record(
        session,
        actor,
        f"sharing:agreement:{action}",
        "share_agreement",
        agreement.id,
        {"from": entry["from"], "to": to.value, "note": note[:200]} | dict(details or {}),
    )


# ---------------------------------------------------------------- drafting


@dataclass(frozen=True)
class AgreementIn:
    entry_id: int
    items: Sequence[str]
    methods: Sequence[str]
    purpose: str
    scenario: str
    text: str
    starts_on: date
    ends_on: date
    number: str = ""
    consumer_system: str = ""


def _rule_or_refuse(session: Session, provider: Department) -> None:
    rules = sharing.context_for(session, provider).rules
    if rules.agreement_sharing is None:
        raise ValidationFailed(
            f"{provider.jurisdiction.name}的共享规则未规定协议共享，请通过共享申请获取数据",
            field="entry_id",
        )


def draft(
    session: Session, actor: Principal, data: AgreementIn, *, today: date | None = None
) -> ShareAgreement:
    """The consumer department drafts an agreement for an entry of another department."""
    today = today or china_today()
    if not actor.can(Perm.SHARE_APPLY) or actor.department_id is None:
        raise PermissionDenied("只有部门数据专员或主要负责人可以起草共享协议")
    entry = session.get(CatalogEntry, data.entry_id)
    if entry is None or entry.status != EntryStatus.PUBLISHED.value:
        raise NotFound("目录资源不存在或未发布")
    version = entry.current_version
    assert version is not None
    if entry.department_id == actor.department_id:
        raise ValidationFailed("本部门的数据无需签订共享协议", field="entry_id")
    provider = entry.department
    _rule_or_refuse(session, provider)
    if version.share_type == ShareType.NOT_SHARED.value:
        raise ValidationFailed(
            f"该资源不予共享，依据：{version.share_basis or '（未登记）'}", field="entry_id"
        )
    by_field = {it["field"]: it for it in version.data_items}
    items = list(dict.fromkeys(f.strip() for f in data.items if f.strip()))
    if not items:
        raise ValidationFailed("请选择协议共享的信息项", field="items")
    unknown = [f for f in items if f not in by_field]
    if unknown:
        raise ValidationFailed(f"信息项 {unknown[0]} 不在该资源中", field="items")
    refused = [by_field[f]["name"] for f in items if by_field[f].get("share_type") == "not_shared"]
    if refused:
        raise ValidationFailed(f"信息项“{refused[0]}”不予共享", field="items")
    try:
        methods = [ShareMethod(m).value for m in dict.fromkeys(data.methods)]
    except ValueError:
        raise ValidationFailed("共享方式不正确", field="methods") from None
    if not methods:
        raise ValidationFailed("请选择共享方式", field="methods")
    if any(m not in version.share_methods for m in methods):
        raise ValidationFailed("该资源不提供所选的共享方式", field="methods")
    purpose = sharing._text(data.purpose, "purpose", "使用用途")
    scenario = sharing._text(data.scenario, "scenario", "应用场景")
    text = sharing._text(data.text, "text", "协议主要条款", minimum=10, maximum=20000)
    if data.starts_on < today:
        raise ValidationFailed("协议期限不能早于今天", field="starts_on")
    if data.ends_on < data.starts_on:
        raise ValidationFailed("协议期限的结束日期不能早于开始日期", field="ends_on")
    if (data.ends_on - data.starts_on).days > sharing.MAX_PERIOD_DAYS:
        raise ValidationFailed("协议期限最长 3 年，到期后可重新签订", field="ends_on")
    number = data.number.strip()[:64]
    if number and session.scalar(select(ShareAgreement.id).where(ShareAgreement.number == number)):
        raise Conflict(f"协议编号 {number} 已被使用", field="number")
    agreement = ShareAgreement(
        number=number or f"待编号-{utcnow().timestamp():.6f}",
        status=A.DRAFT.value,
        consumer_department_id=actor.department_id,
        consumer_system=data.consumer_system.strip()[:128],
        provider_department_id=provider.id,
        entry_id=entry.id,
        version_id=version.id,
        items=items,
        methods=methods,
        purpose=purpose,
        scenario=scenario,
        text=text,
        starts_on=data.starts_on,
        ends_on=data.ends_on,
        created_by=actor.name,
        history=[],
    )
    session.add(agreement)
    session.flush()
    if not number:
        agreement.number = f"XY-{today.year}-{agreement.id:05d}"
    _record(session, actor, agreement, "draft", None, A.DRAFT, "", {"number": agreement.number})
    return agreement


# ---------------------------------------------------------------- signing and filing


def sign(session: Session, actor: Principal, agreement: ShareAgreement) -> ShareAgreement:
    """One side signs: the consumer's officer or head, the provider's reviewer or head."""
    if agreement.status != A.DRAFT.value:
        raise Conflict("只有待签署的协议可以签署")
    if actor.department_id == agreement.consumer_department_id and actor.can(Perm.SHARE_APPLY):
        side = "consumer"
        if agreement.consumer_signed_by:
            raise Conflict("需求部门已签署")
        agreement.consumer_signed_by = actor.name
        agreement.consumer_signed_at = utcnow()
    elif actor.department_id == agreement.provider_department_id and actor.can(Perm.SHARE_REVIEW):
        side = "provider"
        if agreement.provider_signed_by:
            raise Conflict("提供部门已签署")
        agreement.provider_signed_by = actor.name
        agreement.provider_signed_at = utcnow()
    else:
        raise PermissionDenied("只有协议双方部门可以签署")
    _record(session, actor, agreement, "sign", A.DRAFT, A.DRAFT, "", {"side": side})
    return agreement


def _provider(session: Session, agreement: ShareAgreement) -> Department:
    provider = session.get(Department, agreement.provider_department_id)
    assert provider is not None
    return provider


def may_file(session: Session, actor: Principal, agreement: ShareAgreement) -> bool:
    return actor.can(Perm.SHARE_CHECK) and catalog_service.covers(
        session, actor, _provider(session, agreement).jurisdiction_id
    )


def file(
    session: Session,
    actor: Principal,
    agreement: ShareAgreement,
    note: str = "",
    *,
    today: date | None = None,
) -> Grant:
    """The data authority files (备案) a signed agreement; its grant runs for the term."""
    today = today or china_today()
    if not may_file(session, actor, agreement):
        raise PermissionDenied("只有提供部门所在地的数据主管部门可以备案共享协议")
    _rule_or_refuse(session, _provider(session, agreement))
    if not (agreement.consumer_signed_by and agreement.provider_signed_by):
        raise ValidationFailed("协议须经双方部门签署后才能备案", field="signatures")
    if agreement.ends_on < today:
        raise ValidationFailed("协议期限已过，不能备案", field="ends_on")
    agreement.filed_by = actor.name
    agreement.filed_at = utcnow()
    to = A.ACTIVE if agreement.starts_on <= today else A.FILED
    transition(session, actor, agreement, "file", to, note=note.strip()[:2000])
    return grants.issue(
        session,
        actor,
        consumer_department_id=agreement.consumer_department_id,
        consumer_system=agreement.consumer_system,
        entry_id=agreement.entry_id,
        items=agreement.items,
        methods=agreement.methods,
        purpose=agreement.purpose,
        scenario=agreement.scenario,
        conditions=f"依共享协议 {agreement.number}",
        starts_on=max(agreement.starts_on, today),
        ends_on=agreement.ends_on,
        approved_by=f"{actor.name}（协议备案）",
        agreement_id=agreement.id,
    )


def grant_of(session: Session, agreement: ShareAgreement) -> Grant | None:
    return session.scalar(select(Grant).where(Grant.agreement_id == agreement.id))


def refresh(
    session: Session, actor: Principal, agreement: ShareAgreement, *, today: date | None = None
) -> ShareAgreement:
    """Bring the status up to date with the term: filed -> active when it begins, ended
    the day after it ends (the grant itself stops working by its dates at once)."""
    today = today or china_today()
    if agreement.status == A.FILED.value and agreement.starts_on <= today:
        transition(session, actor, agreement, "start", A.ACTIVE)
    if agreement.status in (A.FILED.value, A.ACTIVE.value) and agreement.ends_on < today:
        transition(session, actor, agreement, "end", A.ENDED, note="协议期限届满")
    return agreement


def refresh_all(session: Session, actor: Principal, *, today: date | None = None) -> int:
    """Refresh every filed or active agreement (a daily job); returns how many changed."""
    today = today or china_today()
    changed = 0
    for agreement in session.scalars(
        select(ShareAgreement).where(ShareAgreement.status.in_([A.FILED.value, A.ACTIVE.value]))
    ):
        before = agreement.status
        refresh(session, actor, agreement, today=today)
        changed += agreement.status != before
    return changed


def terminate(
    session: Session, actor: Principal, agreement: ShareAgreement, reason: str
) -> ShareAgreement:
    """The data authority terminates the agreement and its grant (seed 003 art. 41); a
    provider may not end it on its own (seed 000 art. 30(7))."""
    if not may_file(session, actor, agreement):
        if actor.department_id == agreement.provider_department_id:
            raise PermissionDenied(grants.PROVIDER_MAY_NOT_END)
        raise PermissionDenied("只有数据主管部门可以终止共享协议")
    grant = grant_of(session, agreement)
    if grant is not None and grant.status != GrantStatus.TERMINATED.value:
        grants.terminate(session, actor, grant, reason)  # terminates the agreement too
        return agreement
    reason = grants._reason(reason, "终止的理由")
    transition(session, actor, agreement, "terminate", A.TERMINATED, note=reason)
    agreement.status_reason = reason
    return agreement


# ---------------------------------------------------------------- reading


def get_agreement(session: Session, principal: Principal, agreement_id: int) -> ShareAgreement:
    agreement = session.get(ShareAgreement, agreement_id) if 0 < agreement_id < 2**31 else None
    if agreement is None or not (
        principal.department_id
        in (agreement.consumer_department_id, agreement.provider_department_id)
        or may_file(session, principal, agreement)
    ):
        raise NotFound("共享协议不存在")
    return agreement


def agreements_for(session: Session, principal: Principal) -> list[ShareAgreement]:
    """The agreements a principal sees: its department's, or all under its authority."""
    rows = session.scalars(select(ShareAgreement).order_by(ShareAgreement.id.desc()))
    return [
        a
        for a in rows
        if principal.department_id in (a.consumer_department_id, a.provider_department_id)
        or may_file(session, principal, a)
    ]
