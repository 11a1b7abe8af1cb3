"""The hot path: a department system's call to a data service.

Each call is authenticated by the department's app credential, checked against the grants
of the consumer for the service's entry (:func:`govshare.sharing.grants.decide`: no grant, a
grant not in force, an item or a method outside it is refused with the reason), held to the
grant's rate limit and daily quota, answered from the entry's data table (never a deleted
record), and written to the usage ledger and the audit chain (:mod:`.ledger`) before the
response leaves.

A worker keeps what it has read of credentials, services and grants for
``dataservice_cache_seconds`` (2 s by default): a revoked credential or a suspended grant is
refused by every worker within that time, and at once by the worker that changed it. A value
still in use near the end of that time is read again on a background thread, so that a busy
worker does not stop answering while it waits for the database (:meth:`Gateway._cached`).
Records asked for by key are read by the ledger writer in the transaction that commits the
call (:meth:`Gateway.lookup_and_record`); a query by filters reads them on one connection per
worker, outside the ORM.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import os
import re
import secrets
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs, unquote

import orjson
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope

from govshare.catalog.models import CatalogEntry, DataType
from govshare.config import get_settings
from govshare.dataservices import ledger as ledger_mod
from govshare.dataservices.models import (
    CallMethod,
    CallOutcome,
    DataService,
    GrantLimit,
    GrantUsageDay,
    ServiceStatus,
)
from govshare.dataservices.service import effective_limits
from govshare.db import LOCAL_TZ, utcnow
from govshare.errors import NotAuthenticated, PermissionDenied
from govshare.ingestion.models import DataTable
from govshare.orgs import service as orgs_service
from govshare.orgs.models import Department
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.sharing.grants import decide, grants_of

log = logging.getLogger(__name__)

#: the header naming the person at the calling system (经办人), UTF-8 percent-encoded
USER_HEADER = "x-govshare-user"
MAX_KEYS = 100
SWITCH_INTERVAL = 0.0005
MAX_FILTER_ROWS = 100

#: the enums' values, looked up without the enum machinery on the hot path
_VALUES: dict[Any, str] = {m: m.value for m in (*CallMethod, *CallOutcome)}
_PUBLISHED = ServiceStatus.PUBLISHED.value

NOTICE = "共享数据仅限用于授权的用途和场景，不得挪作他用或向第三方提供"
RESULT_LABELS = {"match": "一致", "no_match": "不一致", "no_record": "无记录"}


# ---------------------------------------------------------------- cached views


@dataclass(frozen=True, slots=True)
class Caller:
    principal: Principal
    system_name: str
    department_name: str
    #: what the audit entry keeps of the caller (``audit.ActorFields``)
    actor: tuple[str, int | None, str, str, int | None, str] = field(init=False)

    def __post_init__(self) -> None:
        p = self.principal
        actor = (p.kind, p.id, p.name, p.role_code, p.department_id, p.ip)
        object.__setattr__(self, "actor", actor)


@dataclass(frozen=True, slots=True)
class ServiceView:
    id: int
    name: str
    status: str
    withdrawn_reason: str
    methods: frozenset[str]
    entry_id: int
    entry_code: str
    entry_name: str
    provider_department_id: int
    provider_name: str
    table: str
    key_field: str
    #: field -> data type of the entry's current items (the deliverable ones)
    columns: dict[str, str]
    names: dict[str, str]
    rate_per_minute: int | None
    daily_quota: int | None


@dataclass(frozen=True, slots=True)
class GrantView:
    id: int
    items: frozenset[str]
    methods: frozenset[str]
    status: str
    status_reason: str
    starts_on: date
    ends_on: date
    purpose: str
    scenario: str
    conditions: str
    approved_by: str
    rate_per_minute: int
    daily_quota: int


class CallError(Exception):
    """A refused call: its status, code and Chinese message (and Retry-After for 429)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        outcome: CallOutcome = CallOutcome.REFUSED,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.outcome = outcome
        self.retry_after = retry_after


class _Bucket:
    """A token bucket: ``rate`` calls per minute, bursts up to a minute's worth."""

    __slots__ = ("rate", "stamp", "tokens")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.stamp = time.monotonic()

    def take(self, rate: float) -> float:
        """0 when a call may go now, else the seconds until it may."""
        now = time.monotonic()
        if rate != self.rate:
            self.rate = rate
            self.tokens = min(self.tokens, rate)
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate / 60.0)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) * 60.0 / self.rate


# ---------------------------------------------------------------- value handling


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def calling_user(request: Request) -> str:
    """The person named in ``X-Govshare-User`` (UTF-8, percent-encoded), without control
    characters (a ``%00`` would be refused by PostgreSQL and fail the ledger batch it is
    committed with), at most 128 characters."""
    return _user_of(request.headers.get(USER_HEADER, ""))


def _user_of(header: str) -> str:
    return _CONTROL.sub("", unquote(header, errors="replace")).strip()[:128]


_USERS: dict[bytes, str] = {}


def _user_from(raw: bytes) -> str:
    """:func:`_user_of` of a raw header value, remembered (a calling system names the same
    few people over and over)."""
    user = _USERS.get(raw)
    if user is None:
        if len(_USERS) > 4096:
            _USERS.clear()
        user = _USERS[raw] = _user_of(raw.decode("latin-1"))
    return user


class _Today:
    """Today's date in China (:func:`govshare.db.china_today`), recomputed only when the day
    changes; ``until`` is the next midnight there (a Unix time)."""

    __slots__ = ("clock", "day", "until")

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.day = date.min
        self.until = 0.0

    def __call__(self) -> date:
        now = self.clock()
        if now >= self.until:
            local = datetime.fromtimestamp(now, LOCAL_TZ)
            self.day = local.date()
            midnight = datetime.combine(self.day + timedelta(days=1), datetime.min.time(), LOCAL_TZ)
            self.until = midnight.timestamp()
        return self.day


china_today = _Today()


#: the largest request body a call may have (a query of 100 keys is a few kilobytes)
MAX_BODY = 1 << 20


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            raise CallError(400, "client_disconnected", "调用方已断开连接")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise CallError(413, "payload_too_large", "请求体过大（上限 1 MiB）")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _norm_text(value: Any) -> str:
    return unicodedata.normalize("NFKC", str(value)).strip()


def _same(data_type: str, stored: Any, claimed: Any) -> bool:
    """Whether a claimed value equals the stored one, compared as the item's type."""
    try:
        if data_type in (DataType.INTEGER, DataType.DECIMAL):
            return Decimal(str(stored)) == Decimal(_norm_text(claimed))
        if data_type == DataType.BOOLEAN:
            truth = {"true": True, "1": True, "是": True, "false": False, "0": False, "否": False}
            want = claimed if isinstance(claimed, bool) else truth.get(_norm_text(claimed).lower())
            return want is not None and bool(stored) is want
        if data_type == DataType.DATE:
            have = stored if isinstance(stored, date) else date.fromisoformat(str(stored)[:10])
            return have == date.fromisoformat(_norm_text(claimed)[:10])
        if data_type == DataType.DATETIME:
            return _as_datetime(stored) == _as_datetime(_norm_text(claimed))
        if data_type in (DataType.ID_NUMBER, DataType.CREDIT_CODE):
            return _norm_text(stored).upper() == _norm_text(claimed).upper()
        return _norm_text(stored) == _norm_text(claimed)
    except (InvalidOperation, ValueError, TypeError):
        return False


def _as_datetime(value: Any) -> datetime:
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_json_default)


def _json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(body), status_code=status, media_type="application/json", headers=headers)


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def seconds_to_midnight() -> int:
    """Seconds until China's next midnight (a daily quota's Retry-After)."""
    china_today()  # moves ``until`` on when the day has changed
    return max(1, math.ceil(china_today.until - china_today.clock()))


# ---------------------------------------------------------------- the gateway


@dataclass(slots=True)
class Call:
    """What one call is about, filled as it goes (for the ledger and the audit)."""

    method: CallMethod
    service_id: int
    ip: str
    caller: Caller | None = None
    calling_user: str = ""
    service: ServiceView | None = None
    grant: GrantView | None = None
    items: Sequence[str] = ()
    subjects: Sequence[str] = ()
    volume: int = 0
    call_id: str = ""
    #: committed to the ledger with its lookup (:meth:`Gateway.lookup_and_record`)
    recorded: bool = False


class LedgerUnavailable(Exception):
    """A served call's ledger commit failed: it is answered 503, without its data."""


class Gateway:
    """One per worker process and engine."""

    def __init__(self, engine: Engine) -> None:
        settings = get_settings()
        self.engine = engine
        self.dialect = engine.dialect.name
        self.ttl = settings.dataservice_cache_seconds
        self.defaults = (settings.dataservice_rate_per_minute, settings.dataservice_daily_quota)
        self.workers = max(1, int(os.environ.get("GOVSHARE_WORKERS", "1") or 1))
        self.trusted_proxies = frozenset(settings.trusted_proxies)
        self._factory = sessionmaker(bind=engine, expire_on_commit=False)
        self._creds: dict[str, tuple[float, Caller | NotAuthenticated]] = {}
        self._services: dict[int, tuple[float, ServiceView | None]] = {}
        self._grants: dict[tuple[int, int], tuple[float, list[GrantView]]] = {}
        self._buckets: dict[int, _Bucket] = {}
        #: background reads of cached values (:meth:`_cached`), and what is being read
        self._refresher: ThreadPoolExecutor | None = None
        self._refreshing: set[tuple[int, Any]] = set()
        self._generation = 0
        self.clock = time.monotonic
        self._raw: Any = None
        self._raw_lock = threading.Lock()
        self._sql_cache: dict[tuple[str, str, int, tuple[str, ...]], str] = {}
        self._decided: dict[
            tuple[int, tuple[str, ...], str, date], tuple[list[GrantView], GrantView]
        ] = {}
        self._meta: dict[
            tuple[int, int, tuple[str, ...]], tuple[ServiceView, GrantView, dict[str, Any]]
        ] = {}
        self.ledger = ledger_mod.writer(engine)
        # the ledger writer thread and the event loop hand the GIL to each other at every
        # commit: at the default 5 ms switch interval a waiting thread idles the CPU
        if sys.getswitchinterval() > SWITCH_INTERVAL:
            sys.setswitchinterval(SWITCH_INTERVAL)
        self._call_prefix = secrets.token_hex(6)
        self._calls = 0

    # ------------------------------------------------------------ caches

    def _next_call_id(self) -> str:
        """Unique without a system call: a random per-process prefix and a counter."""
        self._calls += 1
        return f"{self._call_prefix}{self._calls:012x}"

    def forget(self) -> None:
        """Drop every cached credential, service and grant (after a change here)."""
        self._generation += 1  # a refresh under way may have read what was just changed
        self._creds.clear()
        self._services.clear()
        self._grants.clear()
        self._decided.clear()

    def _cached(
        self,
        cache: dict[Any, tuple[float, Any]],
        key: Any,
        load: Callable[[], Any],
        keep: Callable[[Any], Any] | None = None,
    ) -> Any:
        """``cache[key]``, read by ``load`` (and turned into what is kept by ``keep``, on the
        event loop) when it is missing or older than ``ttl``. A value used in the last quarter
        of its life is read again in the background (on the gateway's refresh thread), so
        that a busy worker's event loop does not stop every ``ttl`` seconds to wait for the
        database; a value is never used past its life."""
        now = self.clock()
        hit = cache.get(key)
        if hit is not None and now < hit[0]:
            if now >= hit[0] - self.ttl / 4:
                self._refresh(cache, key, load, keep)
            return hit[1]
        return self._stored(cache, key, now, load(), self._generation, keep)

    def _refresh(
        self,
        cache: dict[Any, tuple[float, Any]],
        key: Any,
        load: Callable[[], Any],
        keep: Callable[[Any], Any] | None,
    ) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on the event loop: read on the spot once it has expired
            return
        pending = (id(cache), key)
        if pending in self._refreshing:
            return
        self._refreshing.add(pending)
        generation = self._generation

        def run() -> None:
            read_at = self.clock()
            try:
                value = load()
            except Exception:  # the value expires and is read on the spot (and raises there)
                log.exception("gateway cache refresh failed")
                self._refreshing.discard(pending)
                return
            try:
                loop.call_soon_threadsafe(
                    self._stored, cache, key, read_at, value, generation, keep
                )
            except RuntimeError:  # the loop is closed: nobody is waiting for it
                self._refreshing.discard(pending)

        if self._refresher is None:
            self._refresher = ThreadPoolExecutor(1, thread_name_prefix="govshare-gateway-cache")
        self._refresher.submit(run)

    def _stored(
        self,
        cache: dict[Any, tuple[float, Any]],
        key: Any,
        read_at: float,
        value: Any,
        generation: int,
        keep: Callable[[Any], Any] | None,
    ) -> Any:
        """On the event loop: keep a value read at ``read_at`` (here, or by the refresh
        thread), turned into what is kept by ``keep``; returns it."""
        self._refreshing.discard((id(cache), key))
        if keep is not None:
            value = keep(value)
        if generation != self._generation:  # forgotten meanwhile: may predate a change
            return value
        hit = cache.get(key)
        if hit is not None and hit[0] > read_at + self.ttl:  # a later read is kept already
            return value
        if len(cache) > 10_000:
            cache.clear()
        cache[key] = (read_at + self.ttl, value)
        return value

    def _caller(self, raw: str, ip: str) -> Caller:
        token = hashlib.sha256(raw.encode()).hexdigest()  # no secret kept in memory
        value: Caller | NotAuthenticated = self._cached(
            self._creds, token, lambda: self._authenticate(raw, ip)
        )
        if isinstance(value, NotAuthenticated):
            raise CallError(401, value.code, value.message)
        if value.principal.ip != ip:
            value = Caller(
                Principal(
                    kind=value.principal.kind,
                    id=value.principal.id,
                    name=value.principal.name,
                    role=value.principal.role,
                    department_id=value.principal.department_id,
                    jurisdiction_id=value.principal.jurisdiction_id,
                    ip=ip,
                    permissions=value.principal.permissions,
                ),
                value.system_name,
                value.department_name,
            )
        return value

    def _authenticate(self, raw: str, ip: str) -> Caller | NotAuthenticated:
        with self._factory() as session:
            try:
                principal = orgs_service.authenticate_credential(session, raw, ip)
                dept = session.get(Department, principal.department_id)
                system = principal.name.split("（", 1)[0]
                caller = Caller(principal, system, dept.name if dept else "")
                session.commit()  # last_used_at
                return caller
            except NotAuthenticated as exc:
                return exc

    def service_view(self, service_id: int) -> ServiceView | None:
        view: ServiceView | None = self._cached(
            self._services, service_id, lambda: self._load_service(service_id)
        )
        return view

    def _load_service(self, service_id: int) -> ServiceView | None:
        with self._factory() as session:
            return load_service_view(session, service_id)

    def grant_views(self, consumer_department_id: int, service: ServiceView) -> list[GrantView]:
        views: list[GrantView] = self._cached(
            self._grants,
            (consumer_department_id, service.entry_id),
            lambda: self._load_grants(consumer_department_id, service),
            self._take_counts,
        )
        return views

    def _load_grants(
        self, consumer_department_id: int, service: ServiceView
    ) -> tuple[list[GrantView], list[tuple[int, date, int]]]:
        """The consumer's grants for the service's entry, and what the database has counted
        of their calls today (the daily quota is counted for every worker there)."""
        today = china_today()
        with self._factory() as session:
            views = load_grant_views(session, consumer_department_id, service, self.defaults)
            if not views:
                return views, []
            used = session.execute(
                select(GrantUsageDay.grant_id, GrantUsageDay.calls).where(
                    GrantUsageDay.grant_id.in_([v.id for v in views]),
                    GrantUsageDay.day == today,
                )
            )
            return views, [(gid, today, int(calls)) for gid, calls in used]

    def _take_counts(
        self, loaded: tuple[list[GrantView], list[tuple[int, date, int]]]
    ) -> list[GrantView]:
        """Take what the other workers (or this process before a restart) have counted today,
        on the event loop (where the ledger's acknowledgements update the counts)."""
        views, used = loaded
        counts = self.ledger.counts.values
        for gid, day, calls in used:
            counts[(gid, day)] = max(counts.get((gid, day), 0), calls)
        return views

    # ------------------------------------------------------------ reading records

    def _connection(self) -> Any:
        if self._raw is None:
            proxy = self.engine.raw_connection()
            conn: Any = proxy.driver_connection
            if self.dialect == "postgresql":
                conn.autocommit = True
            self._raw = (proxy, conn)
        return self._raw[1]

    def _sql(self, service: ServiceView, fields: Sequence[str], where: str, n: int) -> str:
        key = (service.table, where, n, tuple(fields))
        sql = self._sql_cache.get(key)
        if sql is None:
            ph = "?" if self.dialect == "sqlite" else "%s"
            cols = ", ".join(f'"{f}"' for f in (service.key_field, *fields))
            if where == "any":  # the ledger writer's lookup: every key in one parameter
                pg = self.dialect == "postgresql"
                keys = "= ANY(%s)" if pg else "IN (SELECT value FROM json_each(?))"  # array, JSON
                cond = f'"{service.key_field}" {keys}'
            else:  # filter on n fields, given in ``fields`` order after the output fields
                cond = " AND ".join(f'"{f}" = {ph}' for f in fields[len(fields) - n :])
                cols = ", ".join(f'"{f}"' for f in (service.key_field, *fields[: len(fields) - n]))
            # identifiers come from the catalog (fields match ^[a-z][a-z0-9_]*$), values are
            # bound parameters
            sql = f'SELECT {cols} FROM "{service.table}" WHERE {cond} AND NOT "_deleted"'  # noqa: S608
            if where == "filter":
                sql += f" LIMIT {MAX_FILTER_ROWS}"
            if len(self._sql_cache) > 4096:
                self._sql_cache.clear()
            self._sql_cache[key] = sql
        return sql

    def fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._raw_lock:
            for attempt in (0, 1):
                conn = self._connection()
                try:
                    cur = (
                        conn.execute(sql, params, prepare=True)
                        if self.dialect == "postgresql"
                        else conn.execute(sql, params)
                    )
                    rows: list[tuple[Any, ...]] = cur.fetchall()
                    return rows
                except Exception:
                    self._drop_connection()
                    if attempt:
                        raise
            raise AssertionError("unreachable")

    async def lookup_and_record(
        self, call: Call, service: ServiceView, fields: Sequence[str], keys: Sequence[str]
    ) -> dict[Any, tuple[Any, ...]]:
        """The records of ``keys`` (key, then ``fields``), by key; the call is committed to
        the ledger with what was found (``call.recorded``). The ledger writer looks them up
        inside the transaction that commits the call, with the other calls of its batch (one
        query for all their keys): on PostgreSQL in the round trip that begins the commit, so
        that a call waits on the database once; on SQLite on the writer's connection, whose
        page cache stays warm (a reader's is emptied by every commit of another connection),
        so that the worker does not spend its time reading pages."""
        sql = self._sql(service, fields, "any", 0)
        record = self.record(call, CallOutcome.OK, lookup=(sql, tuple(keys)))
        found = (await self._record(call, record))[0]
        return {row[0]: row for row in found}

    async def _record(self, call: Call, record: ledger_mod.CallRecord) -> list[Any]:
        """Commit a served call to the ledger (before its answer is sent)."""
        try:
            found = await self.ledger.write([record])
        except ledger_mod.LookupFailed:
            raise
        except Exception as exc:
            raise LedgerUnavailable from exc
        call.recorded = True
        return found

    def _drop_connection(self) -> None:
        if self._raw is not None:
            proxy, _conn = self._raw
            self._raw = None
            with contextlib.suppress(Exception):  # the connection is gone anyway
                proxy.invalidate()

    # ------------------------------------------------------------ the call

    def authorize(self, call: Call, fields: Sequence[str] | None) -> GrantView:
        """Check the caller, the service and the grant; fill ``call``."""
        caller = call.caller
        assert caller is not None
        call.items = list(fields or ())
        if not caller.principal.can(Perm.SERVICE_CALL):
            raise CallError(403, "permission_denied", "该凭证无权调用共享服务")
        service = self.service_view(call.service_id)
        if service is None:
            raise CallError(404, "not_found", "共享服务不存在")
        call.service = service
        if service.status != _PUBLISHED:
            raise CallError(410, "service_withdrawn", f"共享服务已停用：{service.withdrawn_reason}")
        method = _VALUES[call.method]
        if method not in service.methods:
            raise CallError(403, "permission_denied", f"该服务不提供“{call.method.label}”方式")
        if fields is not None:
            unknown = [f for f in fields if f not in service.columns]
            if unknown:
                raise CallError(422, "validation_failed", f"资源没有信息项 {'、'.join(unknown)}")
        assert caller.principal.department_id is not None
        grants = self.grant_views(caller.principal.department_id, service)
        today = china_today()
        # the grant that allows these items by this method is the same for every call until
        # the grants are read again (a new list) or the day changes; refusals are not kept
        key = (id(grants), tuple(fields) if fields else (), method, today)
        hit = self._decided.get(key)
        if hit is not None and hit[0] is grants:
            grant = hit[1]
        else:
            try:
                grant = decide(grants, fields or (), method, today)
            except PermissionDenied as exc:
                raise CallError(403, "permission_denied", exc.message) from None
            if len(self._decided) > 4096:
                self._decided.clear()
            self._decided[key] = (grants, grant)  # holds the list: its id is not reused
        call.grant = grant
        if fields is None:  # every granted item the entry still has
            call.items = [f for f in service.columns if f in grant.items]
        else:
            call.items = list(fields)
        # quota and rate limit
        used = self.ledger.counts.values.get((grant.id, today), 0)
        if used >= grant.daily_quota:
            raise CallError(
                429,
                "quota_exceeded",
                f"今日调用已达共享授权的日限额 {grant.daily_quota} 次",
                CallOutcome.LIMITED,
                retry_after=seconds_to_midnight(),
            )
        bucket = self._buckets.get(grant.id)
        rate = grant.rate_per_minute / self.workers
        if bucket is None:
            bucket = self._buckets[grant.id] = _Bucket(rate)
        wait = bucket.take(rate)
        if wait:
            raise CallError(
                429,
                "rate_limited",
                f"调用过于频繁：共享授权限每分钟 {grant.rate_per_minute} 次",
                CallOutcome.LIMITED,
                retry_after=max(1, math.ceil(wait)),
            )
        return grant

    def record(
        self,
        call: Call,
        outcome: CallOutcome,
        reason: str = "",
        lookup: tuple[str, tuple[str, ...]] | None = None,
    ) -> ledger_mod.CallRecord:
        """What the ledger row and audit entry of a call are built from (authenticated
        callers only)."""
        caller = call.caller
        assert caller is not None
        service, grant = call.service, call.grant
        return ledger_mod.CallRecord(
            utcnow(),
            call.call_id,
            call.service_id,
            _VALUES[call.method],
            _VALUES[outcome],
            reason,
            call.ip,
            caller.actor,
            True,
            caller.system_name,
            call.calling_user,
            (service.id, service.entry_id, service.provider_department_id) if service else None,
            (grant.id, grant.purpose, grant.scenario, grant.approved_by) if grant else None,
            tuple(call.items),
            tuple(call.subjects[:MAX_KEYS]),
            call.volume,
            outcome is CallOutcome.OK or outcome is CallOutcome.NOT_FOUND,
            lookup,
        )

    def pending(self, call: Call, outcome: CallOutcome, reason: str = "") -> ledger_mod.Pending:
        """The ledger row and audit entry of a call (authenticated callers only)."""
        return ledger_mod.pending_of(self.record(call, outcome, reason))

    def meta(self, call: Call) -> dict[str, Any]:
        service, grant = call.service, call.grant
        assert service is not None
        assert grant is not None
        items = tuple(call.items)
        # what the service and grant say is the same for every call with these items
        key = (id(service), id(grant), items)
        hit = self._meta.get(key)
        if hit is None or hit[0] is not service or hit[1] is not grant:
            if len(self._meta) > 4096:
                self._meta.clear()
            fixed = {
                "service_id": service.id,
                "service": service.name,
                "entry_code": service.entry_code,
                "provider": service.provider_name,
                "grant_id": grant.id,
                "purpose": grant.purpose,
                "scenario": grant.scenario,
                "conditions": grant.conditions,
                "approved_by": grant.approved_by,
                "items": list(items),
                "item_names": {f: service.names.get(f, f) for f in items},
            }
            hit = self._meta[key] = (service, grant, fixed)
        return {
            "call_id": call.call_id,
            **hit[2],
            "delivered_at": utcnow().isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "notice": NOTICE,
        }

    async def handle(self, request: Request, service_id: int, method: CallMethod) -> Response:
        """Answer one call (query or verification) as a Starlette response."""
        status, body, headers = await self.answer(
            request.scope, request.receive, service_id, method
        )
        return Response(
            body,
            status_code=status,
            media_type="application/json",
            headers={k.decode("latin-1"): v.decode("latin-1") for k, v in headers},
        )

    async def answer(
        self, scope: Scope, receive: Receive, service_id: int, method: CallMethod
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """Answer one call (query or verification) straight from the ASGI scope: its status,
        JSON body and extra headers. Every path is ledgered and audited."""
        auth = user = forwarded = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                auth = value
            elif name == b"x-govshare-user":
                user = value
            elif name == b"x-forwarded-for":
                forwarded = value
        client = scope.get("client")
        peer = client[0] if client else ""
        ip = (
            forwarded.decode("latin-1").split(",")[-1].strip()[:64]
            if forwarded and peer in self.trusted_proxies
            else peer[:64]
        )
        call = Call(method=method, service_id=service_id, ip=ip)
        call.call_id = self._next_call_id()
        call_id_header = (b"x-govshare-call-id", call.call_id.encode())
        query = scope.get("query_string", b"")
        signed = bool(query) and parse_qs(query.decode("latin-1")).get("signed", [""])[-1] in (
            "1",
            "true",
        )
        try:
            token = auth.decode("latin-1")
            if not token[:7].lower() == "bearer ":
                raise CallError(
                    401, "not_authenticated", "请使用应用凭证调用（Authorization: Bearer ...）"
                )
            call.caller = self._caller(token[7:].strip(), call.ip)
        except CallError as exc:
            await self._audit_unauthenticated(call, exc)
            return exc.status, dumps(error_body(exc.code, exc.message)), [call_id_header]
        try:
            call.calling_user = _user_from(user)
            body = await _read_body(receive)
            try:
                payload = orjson.loads(body) if body else {}
            except orjson.JSONDecodeError:
                raise CallError(422, "validation_failed", "请求体不是有效的 JSON") from None
            if not isinstance(payload, dict):
                raise CallError(422, "validation_failed", "请求体须为 JSON 对象")
            if not call.calling_user:
                raise CallError(
                    422,
                    "validation_failed",
                    "请在请求头 X-Govshare-User 中注明经办人（UTF-8 百分号编码）",
                )
            if method is CallMethod.VERIFICATION:
                document = await self._verify(call, payload)
            else:
                document = await self._query(call, payload)
            if not call.recorded:
                outcome = CallOutcome.OK if call.volume else CallOutcome.NOT_FOUND
                await self._record(call, self.record(call, outcome))
        except CallError as exc:
            await self._write_refusal(call, exc)
            headers = [call_id_header]
            if exc.retry_after:
                headers.append((b"retry-after", str(exc.retry_after).encode()))
            return exc.status, dumps(error_body(exc.code, exc.message)), headers
        except LedgerUnavailable:
            message = "使用台账暂时无法写入，本次调用未返回数据，请稍后重试"
            return 503, dumps(error_body("ledger_unavailable", message)), []
        except ledger_mod.LookupFailed as exc:  # ledgered as a call that failed
            log.error("data service %s: record lookup failed: %s", call.service_id, exc)
            message = f"{ledger_mod.LOOKUP_FAILED_REASON}，已记入使用台账，请稍后重试"
            return 500, dumps(error_body("server_error", message)), [call_id_header]
        if signed:
            from govshare.signing import service as signing

            try:
                document = signing.sign_document(document)
            except Exception as exc:  # no key configured: say so, the data was ledgered
                message = getattr(exc, "message", str(exc))
                return 503, dumps(error_body("signing_unavailable", message)), []
        return 200, dumps(document), [call_id_header]

    async def _write_refusal(self, call: Call, exc: CallError) -> None:
        with contextlib.suppress(Exception):  # the refusal is answered anyway
            await self.ledger.write([self.record(call, exc.outcome, exc.message)])

    async def _audit_unauthenticated(self, call: Call, exc: CallError) -> None:
        """A call without a valid credential has no consumer: audit only."""
        p = Principal.anonymous(call.ip)
        record = ledger_mod.CallRecord(
            utcnow(),
            call.call_id,
            call.service_id,
            call.method.value,
            CallOutcome.REFUSED.value,
            exc.message,
            call.ip,
            (p.kind, p.id, p.name, p.role_code, p.department_id, p.ip),
            False,
            "",
            "",
            None,
            None,
            (),
            (),
            0,
            False,
        )
        with contextlib.suppress(Exception):
            await self.ledger.write([record])

    # ------------------------------------------------------------ methods

    def _keys(self, payload: dict[str, Any]) -> list[str]:
        key = payload.get("key")
        keys = payload.get("keys")
        if key is not None and keys is not None:
            raise CallError(422, "validation_failed", "key 与 keys 只能提供一个")
        if key is not None:
            keys = [key]
        if keys is None:
            return []
        if not isinstance(keys, list) or not all(
            isinstance(k, str) and k and "\x00" not in k for k in keys
        ):
            raise CallError(422, "validation_failed", "keys 须为非空字符串列表")
        if len(keys) > MAX_KEYS:
            raise CallError(422, "validation_failed", f"一次最多查询 {MAX_KEYS} 个主体")
        return [k.strip().upper() for k in keys]

    async def _query(self, call: Call, payload: dict[str, Any]) -> dict[str, Any]:
        items = payload.get("items")
        if items is not None and (
            not isinstance(items, list) or not all(isinstance(i, str) for i in items) or not items
        ):
            raise CallError(422, "validation_failed", "items 须为信息项字段名的列表")
        filters = payload.get("filters")
        keys = self._keys(payload)
        if filters is not None:
            if keys or not isinstance(filters, dict) or not filters:
                raise CallError(
                    422, "validation_failed", "请提供 key、keys 或 filters（等值条件）之一"
                )
        elif not keys:
            raise CallError(422, "validation_failed", "请提供 key、keys 或 filters（等值条件）之一")
        wanted = list(dict.fromkeys(items)) if items else None
        filter_fields = list(filters) if filters else []
        # the fields filtered on must be granted too: a filter reveals their values
        check = (
            None
            if wanted is None and not filter_fields
            else (wanted or []) + [f for f in filter_fields if f not in (wanted or [])]
        )
        grant = self.authorize(call, check)
        service = call.service
        assert service is not None
        out = [f for f in service.columns if f in grant.items] if wanted is None else wanted
        call.items = out
        if filters:
            sql = self._sql(service, [*out, *filter_fields], "filter", len(filter_fields))
            call.subjects = [orjson.dumps(filters, option=orjson.OPT_SORT_KEYS).decode()]
            rows = self.fetch(sql, [filters[f] for f in filter_fields])
        else:
            call.subjects = keys
            found = await self.lookup_and_record(call, service, out, keys)
            rows = [found[k] for k in dict.fromkeys(keys) if k in found]
        key_field = service.key_field
        bools = [i for i, f in enumerate(out) if service.columns[f] == DataType.BOOLEAN]
        records = []
        for row in rows:
            values = list(row[1:])
            for i in bools:
                if values[i] is not None:
                    values[i] = bool(values[i])
            rec = dict(zip(out, values, strict=True))
            if key_field not in rec:
                rec = {"_key": row[0], **rec}
            records.append(rec)
        call.volume = len(records)
        return {"records": records, "count": len(records), "meta": self.meta(call)}

    async def _verify(self, call: Call, payload: dict[str, Any]) -> dict[str, Any]:
        claims = payload.get("claims")
        keys = self._keys(payload)
        if len(keys) != 1:
            raise CallError(422, "validation_failed", "核验须提供一个主体标识 key")
        if not isinstance(claims, dict) or not claims:
            raise CallError(422, "validation_failed", "claims 须为 {信息项字段名: 申报值} 对象")
        fields = list(claims)
        self.authorize(call, fields)
        service = call.service
        assert service is not None
        call.subjects = keys
        row = (await self.lookup_and_record(call, service, fields, keys)).get(keys[0])
        results: dict[str, str] = {}
        if row is None:
            results = dict.fromkeys(fields, "no_record")
        else:
            for i, f in enumerate(fields):
                stored = row[i + 1]
                if stored is None:
                    results[f] = "no_record"
                elif _same(service.columns[f], stored, claims[f]):
                    results[f] = "match"
                else:
                    results[f] = "no_match"
        call.volume = 0 if row is None else 1
        return {
            "subject_found": row is not None,
            "results": results,
            "labels": {f: RESULT_LABELS[r] for f, r in results.items()},
            "meta": self.meta(call),
        }


# ---------------------------------------------------------------- loading views


def load_service_view(session: Session, service_id: int) -> ServiceView | None:
    if not 0 < service_id < 2**31:
        return None
    service = session.get(DataService, service_id)
    if service is None:
        return None
    entry = session.get(CatalogEntry, service.entry_id)
    table = session.get(DataTable, service.entry_id)
    if entry is None or entry.current_version is None or table is None:
        return None
    version = entry.current_version
    columns = {
        it["field"]: it["data_type"]
        for it in version.data_items
        if it["field"] in table.columns and not table.columns[it["field"]].get("removed")
    }
    names = {it["field"]: it["name"] for it in version.data_items}
    provider = session.get(Department, service.provider_department_id)
    return ServiceView(
        id=service.id,
        name=service.name,
        status=service.status if entry.status == "published" else ServiceStatus.WITHDRAWN.value,
        withdrawn_reason=service.withdrawn_reason or "目录资源已撤销",
        methods=frozenset(service.methods),
        entry_id=entry.id,
        entry_code=entry.code,
        entry_name=version.name,
        provider_department_id=service.provider_department_id,
        provider_name=provider.name if provider else "",
        table=table.table_name,
        key_field=table.key_field,
        columns=columns,
        names=names,
        rate_per_minute=service.rate_per_minute,
        daily_quota=service.daily_quota,
    )


def load_grant_views(
    session: Session,
    consumer_department_id: int,
    service: ServiceView,
    defaults: tuple[int, int],
) -> list[GrantView]:
    grants = grants_of(session, consumer_department_id, service.entry_id)
    limits = (
        {
            row.grant_id: row
            for row in session.scalars(
                select(GrantLimit).where(GrantLimit.grant_id.in_([g.id for g in grants]))
            )
        }
        if grants
        else {}
    )
    svc = DataService(rate_per_minute=service.rate_per_minute, daily_quota=service.daily_quota)
    views = []
    for g in grants:
        lim = effective_limits(limits.get(g.id), svc, defaults)
        views.append(
            GrantView(
                id=g.id,
                items=frozenset(g.items),
                methods=frozenset(g.methods),
                status=g.status,
                status_reason=g.status_reason,
                starts_on=g.starts_on,
                ends_on=g.ends_on,
                purpose=g.purpose,
                scenario=g.scenario,
                conditions=g.conditions,
                approved_by=g.approved_by,
                rate_per_minute=lim.rate_per_minute,
                daily_quota=lim.daily_quota,
            )
        )
    return views


_gateways: dict[int, Gateway] = {}
_lock = threading.Lock()


def gateway(engine: Engine) -> Gateway:
    with _lock:
        gw = _gateways.get(id(engine))
        if gw is None or gw.engine is not engine:
            gw = _gateways[id(engine)] = Gateway(engine)
        return gw


def forget_all() -> None:
    """Make every gateway of this process re-read credentials, services and grants (called
    after a grant, service or credential changes here)."""
    with _lock:
        for gw in _gateways.values():
            gw.forget()


def iter_gateways() -> Iterable[Gateway]:
    return list(_gateways.values())
