"""The usage ledger (使用台账) and call statistics of the data services.

Who sees which calls (seed 000 art. 16, seed 001 art. 18, seed 004 art. 18):

- **consumer** (本部门调用): a department sees the calls its staff and systems made. An app
  credential (a business system) sees its department's calls and nothing else.
- **provider** (本部门数据被使用): a department sees who used its data: the calls on
  services whose provider it is.
- **authority** (监督追溯): the data authority traces any access on entries of its
  jurisdiction and those below, and any call made by a department of them; it alone may
  trace a subject (an ID number or a credit code). The platform itself (kind ``system``, no
  jurisdiction) sees every call.
- **platform** (全平台运行, statistics only): the technical service unit, which belongs to
  no department and sets the services' quotas and rate limits, sees the aggregate counts
  of every service, never the ledger rows.

Subjects are stored as HMAC-SM3 digests (:func:`subject_hash`); a trace hashes the key
given and looks for the digest. Tracing is audited (``dataservices:ledger:trace``), and so
is every CSV export (``dataservices:ledger:export``).

Reading only: this module never changes the ledger.
"""

from __future__ import annotations

import csv
import hmac
import io
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    and_,
    case,
    false,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from govshare.audit import service as audit
from govshare.catalog.models import CatalogEntry, CatalogVersion
from govshare.config import Settings, get_settings
from govshare.dataservices.models import CallMethod, CallOutcome, DataService, UsageEntry
from govshare.db import LOCAL_TZ, china_today
from govshare.errors import PermissionDenied, ValidationFailed
from govshare.orgs import repository as orgs_repo
from govshare.orgs.models import Department
from govshare.permissions import Perm, Role
from govshare.principal import Principal

#: rows per page of the ledger
PER_PAGE = 50
#: the longest period one statistics request covers
MAX_STATS_DAYS = 366
#: the periods offered by the statistics page (days)
STATS_PERIODS = (7, 30, 90, 365)
#: groups listed per dimension (services, departments, scenarios)
MAX_GROUPS = 50
_CSV_BATCH = 500


# ---------------------------------------------------------------- subject digests

_mac_lock = threading.Lock()
_mac_cache: tuple[Settings, hmac.HMAC] | None = None


def _subject_mac() -> hmac.HMAC:
    """The keyed HMAC-SM3 state for subject keys (kept per settings object)."""
    global _mac_cache
    settings = get_settings()
    cached = _mac_cache
    if cached is None or cached[0] is not settings:
        with _mac_lock:
            key = ("subject:" + settings.resolved_secret_key()).encode()
            cached = (settings, hmac.new(key, digestmod="sm3"))
            _mac_cache = cached
    return cached[1]


def subject_hash(key: str) -> str:
    """The digest of a subject key kept in the ledger's ``subjects`` column: HMAC-SM3 keyed
    with the platform's secret, 32 hex characters. The key is hashed as given (the gateway
    passes it stripped and upper-cased: see :func:`normalize_subject`)."""
    mac = _subject_mac().copy()
    mac.update(key.encode())
    return mac.hexdigest()[:32]


def normalize_subject(key: str) -> str:
    """A subject key as the gateway hashes it: an ID number or credit code, upper-cased."""
    return key.strip().upper()


# ---------------------------------------------------------------- views


class View(StrEnum):
    CONSUMER = "consumer"
    PROVIDER = "provider"
    AUTHORITY = "authority"
    PLATFORM = "platform"

    @property
    def label(self) -> str:
        return {
            "consumer": "本部门调用",
            "provider": "本部门数据被使用",
            "authority": "监督追溯",
            "platform": "全平台运行",
        }[self.value]


def may_trace(principal: Principal) -> bool:
    """The data authority over a jurisdiction, or the platform itself."""
    return principal.can(Perm.SHARE_CHECK) and (
        principal.jurisdiction_id is not None or principal.kind == "system"
    )


def ledger_views(principal: Principal) -> list[View]:
    """The ledger views open to a principal, the default first."""
    out: list[View] = []
    if principal.department_id is not None:
        out.append(View.CONSUMER)
        if principal.role is not Role.SYSTEM:
            out.append(View.PROVIDER)
    if may_trace(principal):
        out.append(View.AUTHORITY)
    return out


def stats_views(principal: Principal) -> list[View]:
    """The statistics views: the ledger's, and the platform-wide counts for the technical
    service unit (which belongs to no department)."""
    out = ledger_views(principal)
    if not out and principal.can(Perm.SERVICE_LIMIT) and principal.role is Role.OPERATOR:
        out.append(View.PLATFORM)
    return out


def choose_view(principal: Principal, requested: str, allowed: Sequence[View]) -> View:
    if not allowed:
        raise PermissionDenied("您的账号不属于任何部门，没有可查看的使用记录")
    if not requested:
        return allowed[0]
    try:
        view = View(requested)
    except ValueError:
        raise ValidationFailed("查看范围：不是允许的取值", field="view") from None
    if view in allowed:
        return view
    if view is View.AUTHORITY:
        raise PermissionDenied("只有数据主管部门可以监督追溯共享数据的使用")
    if view is View.PROVIDER and principal.role is Role.SYSTEM:
        raise PermissionDenied("业务系统凭证只能查看本部门的调用记录")
    raise PermissionDenied(f"您不能查看“{view.label}”")


def _scope(session: Session, principal: Principal, view: View) -> ColumnElement[bool]:
    if view is View.CONSUMER:
        return UsageEntry.consumer_department_id == principal.department_id
    if view is View.PROVIDER:
        return UsageEntry.provider_department_id == principal.department_id
    if view is View.PLATFORM:
        return true()
    if principal.jurisdiction_id is None:  # the platform itself
        return true() if principal.kind == "system" else false()
    ids = orgs_repo.jurisdiction_subtree_ids(session, principal.jurisdiction_id)
    return or_(
        UsageEntry.entry_id.in_(
            select(CatalogEntry.id).where(CatalogEntry.jurisdiction_id.in_(ids))
        ),
        UsageEntry.consumer_department_id.in_(
            select(Department.id).where(Department.jurisdiction_id.in_(ids))
        ),
    )


# ---------------------------------------------------------------- filters

FILTER_LABELS: dict[str, str] = {
    "view": "查看范围",
    "since": "起始日期",
    "until": "截止日期",
    "days": "统计期间",
    "service_id": "共享服务",
    "grant_id": "共享授权编号",
    "consumer_department_id": "使用部门",
    "provider_department_id": "提供部门",
    "method": "调用方式",
    "outcome": "调用结果",
    "user": "经办人",
    "call_id": "调用编号",
    "subject": "主体标识",
    "subject_hash": "主体标识摘要",
    "before": "页码",
}

_HASH_RE = re.compile(r"^[0-9a-f]{32}$")
_CALL_ID_RE = re.compile(r"^[0-9A-Za-z_-]{1,32}$")


@dataclass(frozen=True)
class LedgerFilter:
    """What to list or count. ``subject_hash`` is the digest of the subject traced (the
    key itself is never kept, audited nor put in a link)."""

    view: View
    since: date | None = None
    until: date | None = None
    service_id: int | None = None
    grant_id: int | None = None
    consumer_department_id: int | None = None
    provider_department_id: int | None = None
    method: str = ""
    outcome: str = ""
    user: str = ""
    call_id: str = ""
    subject_hash: str = ""

    def params(self) -> dict[str, str]:
        """The filter as query-string parameters (links to pages, exports)."""
        out: dict[str, str] = {"view": self.view.value}
        for name in FILTER_LABELS:
            value = getattr(self, name, None)
            if name != "view" and value not in (None, ""):
                out[name] = value.isoformat() if isinstance(value, date) else str(value)
        return out

    def audit_details(self) -> dict[str, Any]:
        return self.params()


def _int(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 2**63:
        raise ValidationFailed(f"{FILTER_LABELS[name]}：应为正整数", field=name)
    return int(raw)


def _date(params: Mapping[str, str], name: str) -> date | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed(
            f"{FILTER_LABELS[name]}：应为 YYYY-MM-DD 格式的日期", field=name
        ) from None


def _choice(params: Mapping[str, str], name: str, allowed: Iterable[str]) -> str:
    raw = params.get(name, "").strip()
    if raw and raw not in set(allowed):
        raise ValidationFailed(f"{FILTER_LABELS[name]}：不是允许的取值", field=name)
    return raw


def parse_filter(
    principal: Principal, params: Mapping[str, str], *, stats: bool = False
) -> LedgerFilter:
    """A filter from query-string parameters, errors in Chinese naming the field.

    ``subject`` (a key as typed) or ``subject_hash`` traces a subject: the authority view
    only. For statistics the period defaults to the last 30 days (or ``days``) and may not
    exceed :data:`MAX_STATS_DAYS`; the per-call filters (user, call id, subject) do not
    apply."""
    allowed = stats_views(principal) if stats else ledger_views(principal)
    view = choose_view(principal, params.get("view", "").strip(), allowed)
    since, until = _date(params, "since"), _date(params, "until")
    if stats:
        days = _int(params, "days") or 30
        if days > MAX_STATS_DAYS:
            raise ValidationFailed(f"统计期间不能超过 {MAX_STATS_DAYS} 天", field="days")
        until = until or china_today()
        since = since or until - timedelta(days=days - 1)
        if (until - since).days + 1 > MAX_STATS_DAYS:
            raise ValidationFailed(f"统计期间不能超过 {MAX_STATS_DAYS} 天", field="since")
    if since and until and since > until:
        raise ValidationFailed("起始日期不能晚于截止日期", field="since")
    values: dict[str, Any] = {
        "view": view,
        "since": since,
        "until": until,
        "service_id": _int(params, "service_id"),
        "grant_id": _int(params, "grant_id"),
        "consumer_department_id": _int(params, "consumer_department_id"),
        "provider_department_id": _int(params, "provider_department_id"),
        "method": _choice(params, "method", (m.value for m in CallMethod)),
        "outcome": _choice(params, "outcome", (o.value for o in CallOutcome)),
    }
    if stats:
        return LedgerFilter(**values)
    user = params.get("user", "").strip()
    if len(user) > 128:
        raise ValidationFailed("经办人：不能超过 128 个字符", field="user")
    call_id = params.get("call_id", "").strip()
    if call_id and not _CALL_ID_RE.match(call_id):
        raise ValidationFailed("调用编号：格式不正确", field="call_id")
    subject = params.get("subject", "").strip()
    digest = params.get("subject_hash", "").strip().lower()
    if subject or digest:
        if view is not View.AUTHORITY:
            raise PermissionDenied("只有数据主管部门可以按主体追溯共享数据的使用")
        if subject:
            if len(subject) > 64:
                raise ValidationFailed("主体标识：不能超过 64 个字符", field="subject")
            digest = subject_hash(normalize_subject(subject))
        elif not _HASH_RE.match(digest):
            raise ValidationFailed("主体标识摘要：应为 32 位十六进制字符", field="subject_hash")
    return LedgerFilter(**values, user=user, call_id=call_id, subject_hash=digest)


def _conditions(session: Session, principal: Principal, f: LedgerFilter) -> list[Any]:
    conds: list[Any] = [_scope(session, principal, f.view)]
    if f.since:
        conds.append(UsageEntry.day >= f.since)
    if f.until:
        conds.append(UsageEntry.day <= f.until)
    if f.service_id:
        conds.append(UsageEntry.service_id == f.service_id)
    if f.grant_id:
        conds.append(UsageEntry.grant_id == f.grant_id)
    if f.consumer_department_id:
        conds.append(UsageEntry.consumer_department_id == f.consumer_department_id)
    if f.provider_department_id:
        conds.append(UsageEntry.provider_department_id == f.provider_department_id)
    if f.method:
        conds.append(UsageEntry.method == f.method)
    if f.outcome:
        conds.append(UsageEntry.outcome == f.outcome)
    if f.user:
        conds.append(UsageEntry.calling_user.contains(f.user, autoescape=True))
    if f.call_id:
        conds.append(UsageEntry.call_id == f.call_id)
    if f.subject_hash:
        # digests are hex: nothing to escape
        conds.append(UsageEntry.subjects.like(f"%{f.subject_hash}%"))
    return conds


def _check(principal: Principal, perm: Perm) -> None:
    if not principal.can(perm):
        raise PermissionDenied()


# ---------------------------------------------------------------- names


class Names:
    """Names of departments and services and the Chinese names of items, looked up once."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._departments: dict[int, str] = {}
        self._services: dict[int, str] = {}
        self._items: dict[int, dict[str, str]] = {}

    def preload(
        self,
        *,
        departments: Iterable[int | None] = (),
        services: Iterable[int | None] = (),
        entries: Iterable[int | None] = (),
    ) -> None:
        dept_ids = {i for i in departments if i is not None} - set(self._departments)
        if dept_ids:
            rows = self.session.execute(
                select(Department.id, Department.name).where(Department.id.in_(dept_ids))
            )
            self._departments.update({i: n for i, n in rows})
            self._departments.update({i: f"部门 {i}" for i in dept_ids - set(self._departments)})
        svc_ids = {i for i in services if i is not None} - set(self._services)
        if svc_ids:
            rows = self.session.execute(
                select(DataService.id, DataService.name).where(DataService.id.in_(svc_ids))
            )
            self._services.update({i: n for i, n in rows})
            self._services.update({i: f"服务 {i}" for i in svc_ids - set(self._services)})
        entry_ids = {i for i in entries if i is not None} - set(self._items)
        if entry_ids:
            found = self.session.execute(
                select(CatalogEntry.id, CatalogVersion.data_items)
                .join(CatalogVersion, CatalogVersion.id == CatalogEntry.current_version_id)
                .where(CatalogEntry.id.in_(entry_ids))
            )
            for entry_id, data_items in found:
                self._items[entry_id] = {
                    str(it.get("field")): str(it.get("name")) for it in data_items or []
                }
            for entry_id in entry_ids - set(self._items):
                self._items[entry_id] = {}

    def department(self, dept_id: int | None) -> str:
        if dept_id is None:
            return ""
        if dept_id not in self._departments:
            self.preload(departments=[dept_id])
        return self._departments[dept_id]

    def service(self, service_id: int | None) -> str:
        if service_id is None:
            return ""
        if service_id not in self._services:
            self.preload(services=[service_id])
        return self._services[service_id]

    def items(self, entry_id: int | None, fields: Sequence[str]) -> list[str]:
        if entry_id is None:
            return list(fields)
        if entry_id not in self._items:
            self.preload(entries=[entry_id])
        names = self._items[entry_id]
        return [names.get(f, f) for f in fields]


def method_label(value: str) -> str:
    try:
        return CallMethod(value).label
    except ValueError:
        return value


def outcome_label(value: str) -> str:
    try:
        return CallOutcome(value).label
    except ValueError:
        return value


# ---------------------------------------------------------------- the ledger


@dataclass(frozen=True)
class LedgerRow:
    entry: UsageEntry
    service: str
    consumer: str
    provider: str
    item_names: list[str]

    @property
    def method_label(self) -> str:
        return method_label(self.entry.method)

    @property
    def outcome_label(self) -> str:
        return outcome_label(self.entry.outcome)

    def out(self) -> dict[str, Any]:
        e = self.entry
        return {
            "id": e.id,
            "call_id": e.call_id,
            "occurred_at": e.occurred_at.isoformat(),
            "day": e.day.isoformat(),
            "service_id": e.service_id,
            "service": self.service,
            "entry_id": e.entry_id,
            "grant_id": e.grant_id,
            "provider_department_id": e.provider_department_id,
            "provider": self.provider,
            "consumer_department_id": e.consumer_department_id,
            "consumer": self.consumer,
            "credential_id": e.credential_id,
            "calling_system": e.calling_system,
            "calling_user": e.calling_user,
            "purpose": e.purpose,
            "scenario": e.scenario,
            "approved_by": e.approved_by,
            "method": e.method,
            "method_label": self.method_label,
            "outcome": e.outcome,
            "outcome_label": self.outcome_label,
            "items": list(e.items or []),
            "item_names": self.item_names,
            "subject_count": e.subject_count,
            "subjects": [s for s in e.subjects.split(",") if s],
            "volume": e.volume,
            "export_id": e.export_id,
            "reason": e.reason,
            "ip": e.ip,
        }


@dataclass(frozen=True)
class LedgerPage:
    filter: LedgerFilter
    rows: list[LedgerRow]
    #: the ``before`` of the next (older) page, None on the last page
    next_before: int | None
    before: int | None
    per_page: int


def _record_trace(session: Session, principal: Principal, f: LedgerFilter, found: int) -> None:
    audit.record(
        session,
        principal,
        "dataservices:ledger:trace",
        "usage_ledger",
        f.subject_hash,
        {"filters": f.audit_details(), "rows": found},
    )


def list_calls(
    session: Session,
    principal: Principal,
    f: LedgerFilter,
    *,
    before: int | None = None,
    per_page: int = PER_PAGE,
) -> LedgerPage:
    """One page of the ledger, newest first (keyset paging: ``before`` is the id of the
    last row of the page above). A subject trace is audited."""
    _check(principal, Perm.LEDGER_READ)
    conds = _conditions(session, principal, f)
    if before is not None:
        at = session.scalar(select(UsageEntry.occurred_at).where(UsageEntry.id == before))
        if at is None:
            conds.append(UsageEntry.id < before)
        else:
            conds.append(
                or_(
                    UsageEntry.occurred_at < at,
                    and_(UsageEntry.occurred_at == at, UsageEntry.id < before),
                )
            )
    entries = list(
        session.scalars(
            select(UsageEntry)
            .where(*conds)
            .order_by(UsageEntry.occurred_at.desc(), UsageEntry.id.desc())
            .limit(per_page + 1)
        )
    )
    more = len(entries) > per_page
    entries = entries[:per_page]
    names = Names(session)
    names.preload(
        departments=[
            d for e in entries for d in (e.consumer_department_id, e.provider_department_id)
        ],
        services=[e.service_id for e in entries],
        entries=[e.entry_id for e in entries],
    )
    rows = [
        LedgerRow(
            e,
            names.service(e.service_id),
            names.department(e.consumer_department_id),
            names.department(e.provider_department_id),
            names.items(e.entry_id, e.items or []),
        )
        for e in entries
    ]
    if f.subject_hash:
        _record_trace(session, principal, f, len(rows))
    return LedgerPage(f, rows, entries[-1].id if more else None, before, per_page)


# ---------------------------------------------------------------- CSV export

CSV_HEADER = (
    "调用编号",
    "调用时间（北京时间）",
    "共享服务",
    "使用部门",
    "调用系统",
    "经办人",
    "用途",
    "应用场景",
    "批准人",
    "提供部门",
    "共享授权编号",
    "调用方式",
    "信息项",
    "主体数",
    "主体标识摘要",
    "调用结果",
    "数据量（条）",
    "说明",
    "IP 地址",
)


def _csv_cell(value: object) -> str:
    """Text for a spreadsheet cell: formulas are neutralised (CSV injection)."""
    s = "" if value is None else str(value)
    return "'" + s if s[:1] in ("=", "+", "-", "@", "\t", "\r") else s


def export_query(session: Session, principal: Principal, f: LedgerFilter) -> Select[Any]:
    """The rows of an export, newest first, as plain columns (no ORM identity map)."""
    _check(principal, Perm.LEDGER_READ)
    table = UsageEntry.__table__
    return (
        select(table)
        .where(*_conditions(session, principal, f))
        .order_by(table.c.occurred_at.desc(), table.c.id.desc())
    )


def record_export(session: Session, principal: Principal, f: LedgerFilter) -> None:
    """Audit an export when it starts (the row count is known only at its end); a subject
    trace is audited as such too."""
    audit.record(
        session,
        principal,
        "dataservices:ledger:export",
        "usage_ledger",
        f.view.value,
        {"filters": f.audit_details(), "format": "csv"},
    )
    if f.subject_hash:
        audit.record(
            session,
            principal,
            "dataservices:ledger:trace",
            "usage_ledger",
            f.subject_hash,
            {"filters": f.audit_details(), "export": True},
        )


def csv_chunks(bind: Engine | Connection, query: Select[Any]) -> Iterator[bytes]:
    """The CSV file in chunks of rows, UTF-8 with a byte-order mark (for Excel). Rows are
    read ``_CSV_BATCH`` at a time (a server-side cursor on PostgreSQL) on a session of the
    export's own: the request's session is closed before the body is sent."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_HEADER)
    yield ("\ufeff" + buf.getvalue()).encode("utf-8")
    buf.seek(0)
    buf.truncate()
    with Session(bind=bind) as session:
        names = Names(session)
        result = session.execute(query.execution_options(yield_per=_CSV_BATCH))
        for n, r in enumerate(result, 1):
            writer.writerow(
                _csv_cell(v)
                for v in (
                    r.call_id,
                    r.occurred_at.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M:%S"),
                    names.service(r.service_id),
                    names.department(r.consumer_department_id),
                    r.calling_system,
                    r.calling_user,
                    r.purpose,
                    r.scenario,
                    r.approved_by,
                    names.department(r.provider_department_id),
                    r.grant_id,
                    method_label(r.method),
                    "、".join(names.items(r.entry_id, r.items or [])),
                    r.subject_count,
                    r.subjects.replace(",", " "),
                    outcome_label(r.outcome),
                    r.volume,
                    r.reason,
                    r.ip,
                )
            )
            if n % _CSV_BATCH == 0:
                yield buf.getvalue().encode("utf-8")
                buf.seek(0)
                buf.truncate()
        result.close()
    if buf.tell():
        yield buf.getvalue().encode("utf-8")


# ---------------------------------------------------------------- statistics


@dataclass
class Group:
    """Counts of one service, department, scenario, method or outcome."""

    key: str | int | None
    label: str
    calls: int = 0
    ok: int = 0
    not_found: int = 0
    refused: int = 0
    limited: int = 0
    volume: int = 0
    per_day: float = 0.0
    #: calls the platform failed to answer (its record lookup failed)
    error: int = 0

    def out(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "calls": self.calls,
            "ok": self.ok,
            "not_found": self.not_found,
            "refused": self.refused,
            "limited": self.limited,
            "error": self.error,
            "volume": self.volume,
            "per_day": self.per_day,
        }


@dataclass
class Stats:
    filter: LedgerFilter
    since: date
    until: date
    days: int
    calls: int = 0
    ok: int = 0
    not_found: int = 0
    refused: int = 0
    limited: int = 0
    error: int = 0
    volume: int = 0
    subjects: int = 0
    per_day: float = 0.0
    by_method: list[Group] = field(default_factory=list)
    by_outcome: list[Group] = field(default_factory=list)
    by_service: list[Group] = field(default_factory=list)
    by_consumer: list[Group] = field(default_factory=list)
    by_provider: list[Group] = field(default_factory=list)
    by_scenario: list[Group] = field(default_factory=list)
    #: one row per day of the period: (day, calls per method value)
    daily: list[tuple[date, dict[str, int]]] = field(default_factory=list)

    def out(self) -> dict[str, Any]:
        return {
            "view": self.filter.view.value,
            "filters": self.filter.params(),
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "days": self.days,
            "calls": self.calls,
            "ok": self.ok,
            "not_found": self.not_found,
            "refused": self.refused,
            "limited": self.limited,
            "error": self.error,
            "volume": self.volume,
            "subjects": self.subjects,
            "per_day": self.per_day,
            "by_method": [g.out() for g in self.by_method],
            "by_outcome": [g.out() for g in self.by_outcome],
            "by_service": [g.out() for g in self.by_service],
            "by_consumer": [g.out() for g in self.by_consumer],
            "by_provider": [g.out() for g in self.by_provider],
            "by_scenario": [g.out() for g in self.by_scenario],
            "daily": [
                {"day": d.isoformat(), "calls": sum(m.values()), "by_method": m}
                for d, m in self.daily
            ],
        }

    def chart(self) -> dict[str, Any]:
        """The data of the page's ECharts charts."""
        methods = [m for m in CallMethod if any(c.get(m.value) for _d, c in self.daily)]
        return {
            "days": [f"{d.month}-{d.day:02d}" for d, _c in self.daily],
            "daily": [
                {"name": m.label, "data": [c.get(m.value, 0) for _d, c in self.daily]}
                for m in methods
            ],
            "services": _bars(self.by_service),
            "consumers": _bars(self.by_consumer),
            "providers": _bars(self.by_provider),
            "scenarios": [{"name": g.label, "value": g.calls} for g in self.by_scenario[:15]],
            "outcomes": [{"name": g.label, "value": g.calls} for g in self.by_outcome],
        }


def _bars(groups: Sequence[Group], top: int = 15) -> dict[str, list[Any]]:
    shown = list(reversed(groups[:top]))  # horizontal bars: the largest on top
    return {"names": [g.label for g in shown], "calls": [g.calls for g in shown]}


def _outcome_sum(outcome: CallOutcome) -> Any:
    return func.coalesce(func.sum(case((UsageEntry.outcome == outcome.value, 1), else_=0)), 0)


def _aggregates() -> list[Any]:
    return [
        func.count(),
        _outcome_sum(CallOutcome.OK),
        _outcome_sum(CallOutcome.NOT_FOUND),
        _outcome_sum(CallOutcome.REFUSED),
        _outcome_sum(CallOutcome.LIMITED),
        func.coalesce(func.sum(UsageEntry.volume), 0),
        _outcome_sum(CallOutcome.ERROR),
    ]


_Counts = tuple[Any, int, int, int, int, int, int, int]


def _grouped(
    session: Session, key: Any, conds: Sequence[Any], *, limit: int | None = MAX_GROUPS
) -> list[_Counts]:
    """Counts per value of ``key``, the most called first."""
    query = (
        select(key, *_aggregates()).where(*conds).group_by(key).order_by(func.count().desc(), key)
    )
    if limit is not None:
        query = query.limit(limit)
    return [
        (k, int(c), int(ok), int(nf), int(rf), int(lm), int(v), int(er))
        for k, c, ok, nf, rf, lm, v, er in session.execute(query)
    ]


def _groups(
    rows: Sequence[_Counts],
    label: Any,
    days: int,
) -> list[Group]:
    return [
        Group(k, label(k), c, ok, nf, rf, lm, v, round(c / days, 2), er)
        for k, c, ok, nf, rf, lm, v, er in rows
    ]


def statistics(session: Session, principal: Principal, f: LedgerFilter) -> Stats:
    """Calls by method, outcome, service, department, scenario and day over the filter's
    period (seed 002 section 4(4)), counted by the database."""
    _check(principal, Perm.STATS_READ)
    assert f.since is not None
    assert f.until is not None
    days = (f.until - f.since).days + 1
    conds = _conditions(session, principal, f)
    stats = Stats(f, f.since, f.until, days)
    totals = session.execute(
        select(*_aggregates(), func.coalesce(func.sum(UsageEntry.subject_count), 0)).where(*conds)
    ).one()
    stats.calls, stats.ok, stats.not_found, stats.refused, stats.limited, stats.volume = (
        int(v) for v in totals[:6]
    )
    stats.error = int(totals[6])
    stats.subjects = int(totals[7])
    stats.per_day = round(stats.calls / days, 2)
    if not stats.calls:
        stats.daily = [(f.since + timedelta(days=i), {}) for i in range(days)]
        return stats
    names = Names(session)
    stats.by_method = _groups(
        _grouped(session, UsageEntry.method, conds, limit=None), method_label, days
    )
    stats.by_outcome = _groups(
        _grouped(session, UsageEntry.outcome, conds, limit=None), outcome_label, days
    )
    by_service = _grouped(session, UsageEntry.service_id, conds)
    by_consumer = _grouped(session, UsageEntry.consumer_department_id, conds)
    by_provider = _grouped(session, UsageEntry.provider_department_id, conds)
    names.preload(
        services=[r[0] for r in by_service],
        departments=[r[0] for r in (*by_consumer, *by_provider)],
    )
    stats.by_service = _groups(
        by_service, lambda k: names.service(k) if k is not None else "（无对应服务）", days
    )
    stats.by_consumer = _groups(by_consumer, names.department, days)
    stats.by_provider = _groups(
        by_provider, lambda k: names.department(k) if k is not None else "（未知）", days
    )
    stats.by_scenario = _groups(
        _grouped(session, UsageEntry.scenario, conds), lambda k: k or "（未注明）", days
    )
    per_day: dict[date, dict[str, int]] = {}
    for day, method, count in session.execute(
        select(UsageEntry.day, UsageEntry.method, func.count())
        .where(*conds)
        .group_by(UsageEntry.day, UsageEntry.method)
    ):
        per_day.setdefault(day, {})[method] = int(count)
    stats.daily = [
        (d, per_day.get(d, {})) for d in (f.since + timedelta(days=i) for i in range(days))
    ]
    return stats
