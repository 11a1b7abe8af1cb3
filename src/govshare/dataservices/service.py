"""Publishing data services and setting grants' limits.

The technical service unit (运维/技术服务单位) publishes a service for a published catalog
entry, with its interface specification (derived from the entry's data items) and a calling
guide (seed 003 art. 13). Services are found by call frequency, business scenario and
subject category (seed 002 annex: 按照接口使用频次、接口使用业务场景或对象分类进行检索).
Services flush, never commit; every change is audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Text, func, select
from sqlalchemy.orm import Session

from govshare.audit import service as audit
from govshare.catalog.models import CatalogEntry, CatalogVersion, EntryStatus, ShareType
from govshare.dataservices.models import (
    CallMethod,
    DataService,
    GrantLimit,
    ServiceStatus,
    UsageEntry,
)
from govshare.db import china_today, utcnow
from govshare.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from govshare.ingestion.models import DataTable
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.sharing import grants as grants_service
from govshare.sharing.models import Grant

MAX_TEXT = 4000


def _methods(values: Sequence[str], entry_methods: Sequence[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        try:
            method = CallMethod(value)
        except ValueError:
            raise ValidationFailed(f"不支持的服务方式 {value}", field="methods") from None
        if method.value not in entry_methods:
            raise ValidationFailed(
                f"目录资源未登记共享方式“{method.label}”，不能发布该方式的服务",
                field="methods",
            )
        if method.value not in out:
            out.append(method.value)
    if not out:
        raise ValidationFailed("至少选择一种服务方式", field="methods")
    return out


def _limit(value: int | None, field: str) -> int | None:
    if value is None:
        return None
    if not 1 <= value <= 10**9:
        raise ValidationFailed("限额须为 1 至 1000000000 之间的整数", field=field)
    return value


def _text(value: str, field: str, label: str, size: int, required: bool = False) -> str:
    value = (value or "").strip()
    if required and not value:
        raise ValidationFailed(f"请填写{label}", field=field)
    if len(value) > size:
        raise ValidationFailed(f"{label}不能超过 {size} 个字", field=field)
    return value


def publish(
    session: Session,
    actor: Principal,
    *,
    entry_id: int,
    name: str,
    methods: Sequence[str],
    description: str = "",
    scenario: str = "",
    guide: str = "",
    rate_per_minute: int | None = None,
    daily_quota: int | None = None,
) -> DataService:
    """Publish a service for a published entry whose data is shared (not 不予共享) and
    aggregated into the platform."""
    if not actor.can(Perm.SERVICE_PUBLISH):
        raise PermissionDenied("只有技术服务单位或数据主管部门可以发布共享服务")
    entry = session.get(CatalogEntry, entry_id) if 0 < entry_id < 2**31 else None
    if entry is None:
        raise NotFound("目录资源不存在")
    version = entry.current_version
    if entry.status != EntryStatus.PUBLISHED.value or version is None:
        raise Conflict("目录资源尚未发布或已撤销，不能发布共享服务")
    if version.share_type == ShareType.NOT_SHARED.value:
        raise Conflict("该资源为不予共享类，不能发布共享服务")
    if session.scalar(select(DataTable.entry_id).where(DataTable.entry_id == entry.id)) is None:
        raise Conflict("该资源尚无汇聚数据表，请先汇聚数据再发布服务")
    service = DataService(
        entry_id=entry.id,
        provider_department_id=entry.department_id,
        name=_text(name, "name", "服务名称", 128, required=True),
        description=_text(description, "description", "服务说明", MAX_TEXT),
        scenario=_text(scenario, "scenario", "应用场景", 256),
        subject_category=version.subject_key_kind,
        methods=_methods(methods, version.share_methods),
        guide=_text(guide, "guide", "调用指南", MAX_TEXT),
        rate_per_minute=_limit(rate_per_minute, "rate_per_minute"),
        daily_quota=_limit(daily_quota, "daily_quota"),
        status=ServiceStatus.PUBLISHED.value,
        published_at=utcnow(),
        published_by=actor.name,
    )
    session.add(service)
    session.flush()
    audit.record(
        session,
        actor,
        "dataservices:service:publish",
        "data_service",
        service.id,
        {"entry": entry.code, "name": service.name, "methods": service.methods},
    )
    return service


def update(
    session: Session,
    actor: Principal,
    service: DataService,
    *,
    name: str,
    methods: Sequence[str],
    description: str,
    scenario: str,
    guide: str,
    rate_per_minute: int | None,
    daily_quota: int | None,
) -> DataService:
    if not actor.can(Perm.SERVICE_PUBLISH):
        raise PermissionDenied("只有技术服务单位或数据主管部门可以修改共享服务")
    if service.status != ServiceStatus.PUBLISHED.value:
        raise Conflict("服务已停用，不能修改")
    entry = session.get(CatalogEntry, service.entry_id)
    assert entry is not None
    version = entry.current_version
    assert version is not None
    before = service_fields(service)
    service.name = _text(name, "name", "服务名称", 128, required=True)
    service.methods = _methods(methods, version.share_methods)
    service.description = _text(description, "description", "服务说明", MAX_TEXT)
    service.scenario = _text(scenario, "scenario", "应用场景", 256)
    service.guide = _text(guide, "guide", "调用指南", MAX_TEXT)
    service.rate_per_minute = _limit(rate_per_minute, "rate_per_minute")
    service.daily_quota = _limit(daily_quota, "daily_quota")
    service.updated_at = utcnow()
    after = service_fields(service)
    changed = {k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]}
    audit.record(session, actor, "dataservices:service:update", "data_service", service.id, changed)
    session.flush()
    return service


def service_fields(service: DataService) -> dict[str, Any]:
    return {
        "name": service.name,
        "methods": list(service.methods),
        "description": service.description,
        "scenario": service.scenario,
        "guide": service.guide,
        "rate_per_minute": service.rate_per_minute,
        "daily_quota": service.daily_quota,
    }


def withdraw(session: Session, actor: Principal, service: DataService, reason: str) -> DataService:
    """Stop a service. Grants are not touched: the provider may not end a sharing service
    on its own (seed 000 art. 30(7)); only the platform's operator or authority withdraws
    a service, with a reason that every caller then reads."""
    if not actor.can(Perm.SERVICE_PUBLISH):
        raise PermissionDenied("只有技术服务单位或数据主管部门可以停用共享服务")
    reason = _text(reason, "reason", "停用原因", 512, required=True)
    if service.status != ServiceStatus.PUBLISHED.value:
        raise Conflict("服务已停用")
    service.status = ServiceStatus.WITHDRAWN.value
    service.withdrawn_at = utcnow()
    service.withdrawn_by = actor.name
    service.withdrawn_reason = reason
    audit.record(
        session,
        actor,
        "dataservices:service:withdraw",
        "data_service",
        service.id,
        {"reason": reason},
    )
    session.flush()
    return service


def get_service(session: Session, principal: Principal, service_id: int) -> DataService:
    if not principal.can(Perm.SERVICE_READ):
        raise PermissionDenied()
    service = session.get(DataService, service_id) if 0 < service_id < 2**31 else None
    if service is None:
        raise NotFound("共享服务不存在")
    return service


def entry_and_version(
    session: Session, service: DataService
) -> tuple[CatalogEntry, CatalogVersion]:
    entry = session.get(CatalogEntry, service.entry_id)
    assert entry is not None
    assert entry.current_version is not None
    return entry, entry.current_version


@dataclass(frozen=True)
class ServiceRow:
    service: DataService
    entry: CatalogEntry
    calls_30d: int


def search(
    session: Session,
    principal: Principal,
    *,
    q: str = "",
    scenario: str = "",
    subject_category: str = "",
    method: str = "",
    include_withdrawn: bool = False,
    order: str = "calls",
    limit: int = 200,
) -> list[ServiceRow]:
    """Services by keyword, scenario and subject category, by call frequency (the calls of
    the last 30 days) or newest first."""
    if not principal.can(Perm.SERVICE_READ):
        raise PermissionDenied()
    since = china_today() - timedelta(days=30)
    calls = (
        select(UsageEntry.service_id, func.count().label("calls"))
        .where(UsageEntry.day > since, UsageEntry.outcome.in_(("ok", "not_found")))
        .group_by(UsageEntry.service_id)
        .subquery()
    )
    query = (
        select(DataService, CatalogEntry, func.coalesce(calls.c.calls, 0))
        .join(CatalogEntry, CatalogEntry.id == DataService.entry_id)
        .outerjoin(calls, calls.c.service_id == DataService.id)
    )
    if not include_withdrawn:
        query = query.where(DataService.status == ServiceStatus.PUBLISHED.value)
    if q.strip():
        like = f"%{q.strip()}%"
        query = query.where(
            DataService.name.like(like)
            | DataService.description.like(like)
            | CatalogEntry.code.like(like)
        )
    if scenario.strip():
        query = query.where(DataService.scenario.like(f"%{scenario.strip()}%"))
    if subject_category:
        query = query.where(DataService.subject_category == subject_category)
    if method:
        # JSON arrays are stored as text on both databases' JSON columns as compact lists
        query = query.where(func.cast(DataService.methods, Text()).like(f'%"{method}"%'))
    if order == "new":
        query = query.order_by(DataService.published_at.desc(), DataService.id.desc())
    else:
        query = query.order_by(func.coalesce(calls.c.calls, 0).desc(), DataService.id)
    return [ServiceRow(s, e, int(c)) for s, e, c in session.execute(query.limit(limit))]


def services_of_entry(session: Session, entry_id: int) -> list[DataService]:
    return list(
        session.scalars(
            select(DataService)
            .where(DataService.entry_id == entry_id)
            .order_by(DataService.status, DataService.id)
        )
    )


# ---------------------------------------------------------------- limits


@dataclass(frozen=True)
class Limits:
    rate_per_minute: int
    daily_quota: int
    source: str  # grant | service | platform


def effective_limits(
    grant_limit: GrantLimit | None, service: DataService | None, defaults: tuple[int, int]
) -> Limits:
    rate, quota = defaults
    source = "platform"
    if service is not None and (service.rate_per_minute or service.daily_quota):
        rate = service.rate_per_minute or rate
        quota = service.daily_quota or quota
        source = "service"
    if grant_limit is not None and (grant_limit.rate_per_minute or grant_limit.daily_quota):
        rate = grant_limit.rate_per_minute or rate
        quota = grant_limit.daily_quota or quota
        source = "grant"
    return Limits(rate, quota, source)


def set_grant_limits(
    session: Session,
    actor: Principal,
    grant: Grant,
    *,
    rate_per_minute: int | None,
    daily_quota: int | None,
) -> GrantLimit:
    """Set (or clear, with None) a grant's own quota and rate limit."""
    if not actor.can(Perm.SERVICE_LIMIT):
        raise PermissionDenied("只有技术服务单位或数据主管部门可以设置调用限额")
    if actor.kind != "system" and not (
        actor.role_code == "operator" or grants_service.may_supervise(session, actor, grant)
    ):
        raise PermissionDenied("只能设置本辖区资源的共享授权的调用限额")
    row = session.get(GrantLimit, grant.id)
    before = (row.rate_per_minute, row.daily_quota) if row else (None, None)
    if row is None:
        row = GrantLimit(grant_id=grant.id, updated_by=actor.name)
        session.add(row)
    row.rate_per_minute = _limit(rate_per_minute, "rate_per_minute")
    row.daily_quota = _limit(daily_quota, "daily_quota")
    row.updated_at = utcnow()
    row.updated_by = actor.name
    audit.record(
        session,
        actor,
        "dataservices:grant:limit",
        "share_grant",
        grant.id,
        {
            "from": {"rate_per_minute": before[0], "daily_quota": before[1]},
            "to": {"rate_per_minute": row.rate_per_minute, "daily_quota": row.daily_quota},
        },
    )
    session.flush()
    return row


def calls_today(session: Session, grant_id: int, today: date | None = None) -> int:
    from govshare.dataservices.models import GrantUsageDay

    row = session.get(GrantUsageDay, (grant_id, today or china_today()))
    return int(row.calls) if row else 0
