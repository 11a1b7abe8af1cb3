"""Batch exchange (批量交换): an export of the granted items of a catalog entry, produced in
the background as a CSV or XLSX file with a signed manifest.

A department asks for an export through a data service that offers the batch method, by its
app credential or on the page; the request is checked like every call (service, grant in
force with the "batch" method and every item, daily quota) and a refused one is written to
the usage ledger and the audit chain. An accepted request becomes an :class:`ExportJob`.

Each server process runs one runner thread (started when a job is queued here, and at
start-up when queued jobs are waiting). The runner claims a queued job with a conditional
UPDATE, so two runners never run the same job; checks the grant again; streams the rows of
``data_<entry id>`` (never a deleted record; all rows, or those changed on or after a
Beijing day) through a server-side cursor straight into the file while hashing it with SM3;
builds the manifest (row count, size, SM3, grant, purpose, ...) and signs it with the
platform key; and writes one usage-ledger row and audit entry for the delivery (volume = rows
delivered) before the file can be downloaded. Memory use does not grow with the export: rows
are fetched ``YIELD_PER`` at a time and written at once.

A job left ``running`` by a process that died is queued again at the next start-up once its
runner's heartbeat (every :data:`HEARTBEAT_EVERY` while it writes) is older than
:data:`STALE_AFTER`: a long export still being written is never taken from its runner.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from time import monotonic
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, insert, or_, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from govshare.audit import service as audit
from govshare.config import get_settings
from govshare.dataservices import gateway as gw
from govshare.dataservices import ledger as ledger_mod
from govshare.dataservices.models import (
    CallMethod,
    CallOutcome,
    DataService,
    ExportJob,
    ExportStatus,
    GrantUsageDay,
    ServiceStatus,
    UsageEntry,
)
from govshare.db import LOCAL_TZ, get_engine, utcnow
from govshare.errors import PermissionDenied
from govshare.ingestion.models import DataTable
from govshare.ingestion.tables import tables_for
from govshare.orgs.models import Department, User
from govshare.permissions import Perm, Role, permissions_for
from govshare.principal import Principal
from govshare.sharing.grants import decide
from govshare.sharing.models import Grant, GrantStatus

log = logging.getLogger(__name__)

FORMATS = ("csv", "xlsx")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
#: rows fetched from the database at a time (server-side cursor)
YIELD_PER = 5000
#: CSV rows gathered before they are encoded, written and hashed
CSV_FLUSH_ROWS = 1000
#: a job ``running`` for longer than this when a process starts was left by a dead process
STALE_AFTER = timedelta(minutes=10)
#: how often a runner writing a file marks its job alive (seconds), looked at every
#: HEARTBEAT_ROWS rows
HEARTBEAT_EVERY = 60.0
HEARTBEAT_ROWS = 1000
#: how often a runner deletes the files whose retention period is over (seconds)
EXPIRE_EVERY = 3600.0
#: how often an idle runner looks for jobs queued by other processes
POLL_SECONDS = 10.0
#: data rows an XLSX sheet can hold (1,048,576 rows less the two header rows)
XLSX_MAX_ROWS = 1_048_574
#: the calling system recorded for exports asked for on the platform's pages
WEB_SYSTEM = "共享交换平台网页"
HEADER_ROWS = 2
NOTICE = "共享数据仅限用于授权的用途和场景，不得挪作他用或向第三方提供"
ACTIVE = (ExportStatus.QUEUED.value, ExportStatus.RUNNING.value)

_UNSAFE = re.compile(r"[^0-9A-Za-z_.-]+")


def file_name_for(job_id: int, entry_code: str, file_format: str) -> str:
    code = _UNSAFE.sub("_", entry_code).strip("._") or "data"
    return f"export-{job_id}-{code}.{file_format}"


def new_call_id() -> str:
    """A ledger call id (request threads and the runner make them concurrently)."""
    return secrets.token_hex(12)


def export_path(job: ExportJob) -> Path:
    return get_settings().resolved_export_dir() / job.file_name


def _platform() -> Principal:
    return Principal.platform("批量交换任务", ip="")


def local_midnight_utc(day: date) -> datetime:
    """The first instant of a Beijing day, in UTC."""
    return datetime.combine(day, time(0), tzinfo=LOCAL_TZ).astimezone(UTC)


def beijing_today() -> date:
    return datetime.now(LOCAL_TZ).date()


# ---------------------------------------------------------------- asking for an export


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asks: an app credential or a logged-in user, the person (经办人) and the system."""

    principal: Principal
    system_name: str
    calling_user: str
    ip: str


def requester_for(session: Session, principal: Principal, calling_user: str, ip: str) -> Requester:
    """A credential names its person in X-Govshare-User; a user is the person."""
    if principal.kind == "user" and principal.id is not None:
        user = session.get(User, principal.id)
        name = user.display_name if user else principal.name
        return Requester(principal, WEB_SYSTEM, name, ip)
    return Requester(principal, principal.name.split("（", 1)[0], calling_user.strip(), ip)


def _call(requester: Requester, service_id: int) -> gw.Call:
    call = gw.Call(
        method=CallMethod.BATCH,
        service_id=service_id,
        ip=requester.ip,
        caller=gw.Caller(requester.principal, requester.system_name, ""),
        calling_user=requester.calling_user,
    )
    call.call_id = new_call_id()
    return call


def authorize(session: Session, call: gw.Call, fields: Sequence[str] | None) -> gw.GrantView:
    """What :meth:`Gateway.authorize` checks for a batch call (the service, the grant in
    force with the "batch" method and every item, the daily quota), read in ``session``:
    a request's own transaction, so that nothing waits on another connection."""
    caller = call.caller
    assert caller is not None
    call.items = list(fields or ())
    if not caller.principal.can(Perm.SERVICE_CALL) or caller.principal.department_id is None:
        raise gw.CallError(403, "permission_denied", "无权调用共享服务")
    service = gw.load_service_view(session, call.service_id)
    if service is None:
        raise gw.CallError(404, "not_found", "共享服务不存在")
    call.service = service
    if service.status != ServiceStatus.PUBLISHED.value:
        raise gw.CallError(410, "service_withdrawn", f"共享服务已停用：{service.withdrawn_reason}")
    if CallMethod.BATCH.value not in service.methods:
        raise gw.CallError(403, "permission_denied", "该服务不提供“批量交换”方式")
    if fields is not None:
        unknown = [f for f in fields if f not in service.columns]
        if unknown:
            raise gw.CallError(422, "validation_failed", f"资源没有信息项 {'、'.join(unknown)}")
    settings = get_settings()
    defaults = (settings.dataservice_rate_per_minute, settings.dataservice_daily_quota)
    grants = gw.load_grant_views(session, caller.principal.department_id, service, defaults)
    today = beijing_today()
    try:
        grant = decide(grants, fields or (), CallMethod.BATCH.value, today)
    except PermissionDenied as exc:
        raise gw.CallError(403, "permission_denied", exc.message) from None
    call.grant = grant
    call.items = (
        [f for f in service.columns if f in grant.items] if fields is None else list(fields)
    )
    if not call.items:
        raise gw.CallError(403, "permission_denied", "共享授权的信息项已不在资源中")
    used = session.get(GrantUsageDay, (grant.id, today))
    if used is not None and used.calls >= grant.daily_quota:
        raise gw.CallError(
            429,
            "quota_exceeded",
            f"今日调用已达共享授权的日限额 {grant.daily_quota} 次",
            CallOutcome.LIMITED,
            retry_after=gw.seconds_to_midnight(),
        )
    return grant


def ledger_in_session(session: Session, pending: ledger_mod.Pending) -> None:
    """Write a call's ledger row and audit entry in ``session``'s transaction."""
    entry = dict(pending.audit)
    audit.append_entries(session, [entry])
    row = dict(pending.ledger)
    row["audit_seq"] = entry["seq"]
    session.execute(insert(UsageEntry), [row])


def request_export(
    session: Session,
    requester: Requester,
    service_id: int,
    *,
    file_format: str,
    since: date | None,
    items: Sequence[str] | None,
) -> ExportJob:
    """Queue an export, or refuse it: a refusal is ledgered and audited (committed here)
    and raised as :class:`~govshare.dataservices.gateway.CallError`. The job is committed
    and the runner woken before this returns."""
    engine = get_engine()
    gateway = gw.gateway(engine)
    call = _call(requester, service_id)
    try:
        if file_format not in FORMATS:
            raise gw.CallError(422, "validation_failed", "format 须为 csv 或 xlsx")
        if requester.principal.kind != "user" and not requester.calling_user:
            raise gw.CallError(
                422,
                "validation_failed",
                "请在请求头 X-Govshare-User 中注明经办人（UTF-8 百分号编码）",
            )
        wanted = list(dict.fromkeys(items)) if items else None
        grant = authorize(session, call, wanted)
    except gw.CallError as exc:
        ledger_in_session(session, gateway.pending(call, exc.outcome, exc.message))
        session.commit()
        raise
    service = call.service
    assert service is not None
    principal = requester.principal
    assert principal.department_id is not None
    job = ExportJob(
        service_id=service.id,
        grant_id=grant.id,
        consumer_department_id=principal.department_id,
        requested_by=principal.name[:128],
        credential_id=principal.id if principal.kind == "credential" else None,
        user_id=principal.id if principal.kind == "user" else None,
        calling_user=requester.calling_user[:128],
        file_format=file_format,
        items=list(call.items),
        changed_since=since,
        status=ExportStatus.QUEUED.value,
        created_at=utcnow(),
        rows=0,
        size=0,
        sm3="",
        file_name="",
        error="",
        downloads=0,
    )
    session.add(job)
    session.flush()
    job.file_name = file_name_for(job.id, service.entry_code, file_format)
    audit.record(
        session,
        principal,
        "dataservices:export:create",
        "export_job",
        job.id,
        {
            "service": service.id,
            "entry": service.entry_code,
            "grant": grant.id,
            "items": job.items,
            "since": since.isoformat() if since else None,
            "format": file_format,
            "user": requester.calling_user,
            "call_id": call.call_id,
        },
    )
    session.commit()
    runner(engine).wake()
    return job


# ---------------------------------------------------------------- who sees a job


def job_for(session: Session, principal: Principal, job_id: int) -> ExportJob | None:
    """The job if the principal's department asked for it (else None: 404 for others)."""
    job = session.get(ExportJob, job_id) if 0 < job_id < 2**31 else None
    if job is None or principal.department_id != job.consumer_department_id:
        return None
    return job


def check_still_granted(session: Session, job: ExportJob) -> Grant:
    """The job's grant must still be in force for its items and the batch method."""
    grant = session.get(Grant, job.grant_id)
    if grant is None:
        raise PermissionDenied("共享授权不存在")
    return decide([grant], job.items, CallMethod.BATCH.value, beijing_today())


@dataclass(frozen=True)
class BatchChoice:
    """A service this department may ask an export of, under one of its grants."""

    service_id: int
    service_name: str
    entry_name: str
    entry_code: str
    grant_id: int
    items: list[str]
    item_names: list[str]
    purpose: str
    ends_on: date


def batch_choices(session: Session, department_id: int) -> list[BatchChoice]:
    """Published batch services of entries this department holds a batch grant in force
    for (newest grant first)."""
    today = beijing_today()
    grants = [
        g
        for g in session.scalars(
            select(Grant)
            .where(
                Grant.consumer_department_id == department_id,
                Grant.status == GrantStatus.ACTIVE.value,
            )
            .order_by(Grant.id.desc())
        )
        if CallMethod.BATCH.value in g.methods and g.starts_on <= today <= g.ends_on
    ]
    if not grants:
        return []
    by_entry: dict[int, Grant] = {}
    for g in grants:
        by_entry.setdefault(g.entry_id, g)
    out = []
    services = session.scalars(
        select(DataService)
        .where(
            DataService.entry_id.in_(list(by_entry)),
            DataService.status == ServiceStatus.PUBLISHED.value,
        )
        .order_by(DataService.id)
    )
    for svc in services:
        if CallMethod.BATCH.value not in svc.methods:
            continue
        view = gw.load_service_view(session, svc.id)
        if view is None or view.status != ServiceStatus.PUBLISHED.value:
            continue
        grant = by_entry[svc.entry_id]
        items = [f for f in view.columns if f in grant.items]
        out.append(
            BatchChoice(
                service_id=svc.id,
                service_name=svc.name,
                entry_name=view.entry_name,
                entry_code=view.entry_code,
                grant_id=grant.id,
                items=items,
                item_names=[view.names.get(f, f) for f in items],
                purpose=grant.purpose,
                ends_on=grant.ends_on,
            )
        )
    return out


@dataclass(frozen=True)
class JobRow:
    job: ExportJob
    service_name: str
    entry_name: str
    purpose: str
    item_names: dict[str, str]

    @property
    def status_label(self) -> str:
        return ExportStatus(self.job.status).label

    @property
    def signed(self) -> bool:
        manifest = self.job.manifest or {}
        return bool(manifest.get("signature"))


def job_rows(session: Session, jobs: Sequence[ExportJob]) -> list[JobRow]:
    services = {
        s.id: s
        for s in session.scalars(
            select(DataService).where(DataService.id.in_(sorted({j.service_id for j in jobs})))
        )
    }
    grants = {
        g.id: g
        for g in session.scalars(
            select(Grant).where(Grant.id.in_(sorted({j.grant_id for j in jobs})))
        )
    }
    views: dict[int, gw.ServiceView | None] = {}
    out = []
    for job in jobs:
        if job.service_id not in views:
            views[job.service_id] = gw.load_service_view(session, job.service_id)
        view = views[job.service_id]
        svc = services.get(job.service_id)
        grant = grants.get(job.grant_id)
        out.append(
            JobRow(
                job=job,
                service_name=svc.name if svc else "",
                entry_name=view.entry_name if view else "",
                purpose=grant.purpose if grant else "",
                item_names=dict(view.names) if view else {},
            )
        )
    return out


def department_jobs(session: Session, department_id: int, limit: int = 100) -> list[ExportJob]:
    return list(
        session.scalars(
            select(ExportJob)
            .where(ExportJob.consumer_department_id == department_id)
            .order_by(ExportJob.id.desc())
            .limit(limit)
        )
    )


def record_download(session: Session, principal: Principal, job: ExportJob, user: str) -> None:
    session.execute(
        update(ExportJob)
        .where(ExportJob.id == job.id)
        .values(downloads=ExportJob.downloads + 1)
        .execution_options(synchronize_session=False)
    )
    audit.record(
        session,
        principal,
        "dataservices:export:download",
        "export_job",
        job.id,
        {
            "file": job.file_name,
            "rows": job.rows,
            "sm3": job.sm3,
            "grant": job.grant_id,
            "service": job.service_id,
            "user": user,
        },
    )


# ---------------------------------------------------------------- reading rows


def _sqlite_reader_connect(dbapi_conn: Any, _record: Any) -> None:
    # autocommit: a SELECT reads a WAL snapshot without taking the write lock (the app's
    # engine begins every transaction with BEGIN IMMEDIATE, which would hold the lock for
    # the whole export and stop the usage ledger)
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


_readers: dict[str, Engine] = {}
_readers_lock = threading.Lock()


def reader_engine(engine: Engine) -> Engine:
    """The engine exports read with: the app's own on PostgreSQL (a server-side cursor in
    a read transaction); on SQLite one in autocommit mode (see above)."""
    if engine.dialect.name != "sqlite":
        return engine
    key = engine.url.render_as_string(hide_password=False)
    with _readers_lock:
        reader = _readers.get(key)
        if reader is None:
            reader = create_engine(
                make_url(key),
                poolclass=NullPool,
                connect_args={"check_same_thread": False, "timeout": 10},
            )
            event.listen(reader, "connect", _sqlite_reader_connect)
            _readers[key] = reader
        return reader


def stream_rows(
    engine: Engine, registry: DataTable, fields: Sequence[str], since: date | None
) -> Generator[Sequence[Any], None, None]:
    """The live records' ``fields``, in insertion order, fetched ``YIELD_PER`` at a time
    from a server-side cursor (never a list of every row)."""
    data, _history = tables_for(registry)
    stmt = (
        select(*[data.c[f] for f in fields])
        .where(data.c["_deleted"].is_(False))
        .order_by(data.c["_id"])
    )
    if since is not None:
        stmt = stmt.where(data.c["_updated_at"] >= local_midnight_utc(since))
    with reader_engine(engine).connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=YIELD_PER).execute(stmt)
        try:
            for partition in result.partitions():
                yield from partition
        finally:
            result.close()
            if conn.in_transaction():
                conn.rollback()


# ---------------------------------------------------------------- writing files


class Interrupted(Exception):
    """The process is stopping: the job goes back to the queue."""


def _decimal_text(value: Decimal) -> str:
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _local(value: datetime) -> datetime:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(LOCAL_TZ)


def csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _local(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return _decimal_text(value)
    return str(value)


@dataclass(frozen=True)
class Written:
    rows: int
    size: int
    sm3: str


def write_csv(
    path: Path,
    names: Sequence[str],
    fields: Sequence[str],
    rows: Iterator[Sequence[Any]],
    stop: threading.Event | None = None,
) -> Written:
    """UTF-8 CSV with a BOM (Excel reads it), two header rows (item names, field names),
    written and hashed as it goes."""
    from govshare.signing.service import Sm3Stream

    digest = Sm3Stream()
    count = 0
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    with path.open("wb") as f:

        def flush() -> None:
            data = buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
            f.write(data)
            digest.update(data)

        bom = "\ufeff".encode()
        f.write(bom)
        digest.update(bom)
        writer.writerow(names)
        writer.writerow(fields)
        for row in rows:
            writer.writerow([csv_value(v) for v in row])
            count += 1
            if count % CSV_FLUSH_ROWS == 0:
                flush()
                if stop is not None and stop.is_set():
                    raise Interrupted()
        flush()
        f.flush()
        os.fsync(f.fileno())
    return Written(count, digest.size, digest.hexdigest())


def write_xlsx(
    path: Path,
    names: Sequence[str],
    fields: Sequence[str],
    rows: Iterator[Sequence[Any]],
    stop: threading.Event | None = None,
) -> Written:
    """An XLSX workbook in openpyxl's write-only mode (rows go to a temporary file as they
    come; strings are written inline), hashed in chunks once saved."""
    from openpyxl import Workbook  # type: ignore[import-untyped]
    from openpyxl.cell import WriteOnlyCell  # type: ignore[import-untyped]
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE  # type: ignore[import-untyped]

    from govshare.signing.service import hash_file

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title="数据")

    def cell(value: Any) -> Any:
        if isinstance(value, str):
            if ILLEGAL_CHARACTERS_RE.search(value):
                value = ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)
            if value.startswith("="):  # data, never a formula
                c = WriteOnlyCell(ws, value=value)
                c.data_type = "s"
                return c
            return value
        if isinstance(value, datetime):
            return _local(value).replace(tzinfo=None)
        if isinstance(value, Decimal):
            return _decimal_text(value)
        return value

    ws.append([cell(n) for n in names])
    ws.append(list(fields))
    count = 0
    for row in rows:
        count += 1
        if count > XLSX_MAX_ROWS:
            raise ExportFailed(f"XLSX 文件最多容纳 {XLSX_MAX_ROWS:,} 行数据，请改用 CSV 格式")
        ws.append([cell(v) for v in row])
        if stop is not None and count % CSV_FLUSH_ROWS == 0 and stop.is_set():
            raise Interrupted()
    wb.save(path)
    sm3, size = hash_file(path)
    return Written(count, size, sm3)


class ExportFailed(Exception):
    """A job that cannot be completed, with the Chinese reason."""


# ---------------------------------------------------------------- the job


def _sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def claim_next(engine: Engine) -> tuple[int, datetime] | None:
    """Take the oldest queued job: ``queued -> running`` by a conditional UPDATE, so that
    of two runners (threads or processes) only one gets it. Returns (job id, started_at)."""
    with _sessions(engine)() as s:
        ids = list(
            s.scalars(
                select(ExportJob.id)
                .where(ExportJob.status == ExportStatus.QUEUED.value)
                .order_by(ExportJob.id)
                .limit(8)
            )
        )
        for job_id in ids:
            now = utcnow()
            result = s.execute(
                update(ExportJob)
                .where(ExportJob.id == job_id, ExportJob.status == ExportStatus.QUEUED.value)
                .values(
                    status=ExportStatus.RUNNING.value, started_at=now, heartbeat_at=now, error=""
                )
                .execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 0) == 1:
                s.commit()
                return job_id, now
        s.commit()
    return None


def requeue_stale(engine: Engine, older_than: timedelta = STALE_AFTER) -> list[int]:
    """Queue again the jobs left ``running`` (by a process that died): those whose runner
    has not said it is alive (its heartbeat, else the start) for longer than ``older_than``;
    audited. Returns their ids."""
    cutoff = utcnow() - older_than
    alive = func.coalesce(ExportJob.heartbeat_at, ExportJob.started_at)
    with _sessions(engine)() as s:
        stale = list(
            s.scalars(
                select(ExportJob.id).where(
                    ExportJob.status == ExportStatus.RUNNING.value,
                    or_(alive.is_(None), alive < cutoff),
                )
            )
        )
        done = []
        for job_id in stale:
            result = s.execute(
                update(ExportJob)
                .where(
                    ExportJob.id == job_id,
                    ExportJob.status == ExportStatus.RUNNING.value,
                    or_(alive.is_(None), alive < cutoff),
                )
                .values(status=ExportStatus.QUEUED.value, started_at=None)
                .execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 0) == 1:
                done.append(job_id)
                audit.record(
                    s,
                    _platform(),
                    "dataservices:export:requeue",
                    "export_job",
                    job_id,
                    {"reason": "生成任务的进程已中止，任务重新排队"},
                )
        s.commit()
    for job_id in done:
        log.warning("export job %s was left running by a stopped process: queued again", job_id)
    return done


def expire_files(engine: Engine) -> list[int]:
    """Delete the files of the jobs finished more than ``export_retention_days`` ago (a
    batch export carries personal data: it is not kept on the server for ever). The job,
    its manifest (row count, SM3 digest, signature) and its ledger rows stay; the job says
    when and why its file went. Audited. Returns the jobs' ids."""
    days = get_settings().export_retention_days
    if days <= 0:
        return []
    now = utcnow()
    cutoff = now - timedelta(days=days)
    when = _local(now).strftime("%Y-%m-%d %H:%M")
    expired = []
    with _sessions(engine)() as s:
        jobs = s.scalars(
            select(ExportJob).where(
                ExportJob.status == ExportStatus.DONE.value, ExportJob.finished_at < cutoff
            )
        ).all()
        for job in jobs:
            path = export_path(job)
            try:
                path.unlink(missing_ok=True)
            except OSError:  # tried again at the next pass; the job stays downloadable
                log.exception("export job %s: cannot delete %s", job.id, path)
                continue
            job.status = ExportStatus.EXPIRED.value
            job.error = (
                f"文件已超过 {days} 天保存期限，于 {when} 删除；清单、行数和 SM3 摘要仍可查，"
                "如需数据请重新提交批量交换任务"
            )
            audit.record(
                s,
                _platform(),
                "dataservices:export:expire",
                "export_job",
                job.id,
                {"file_name": job.file_name, "rows": job.rows, "sm3": job.sm3, "days": days},
            )
            expired.append(job.id)
        s.commit()
    return expired


def pending_work(engine: Engine) -> bool:
    """Whether any job is queued or running, or a finished job still has a file that will
    expire (read without taking a lock)."""
    watched = [*ACTIVE]
    if get_settings().export_retention_days > 0:
        watched.append(ExportStatus.DONE.value)
    with reader_engine(engine).connect() as conn:
        found = conn.execute(
            select(ExportJob.id).where(ExportJob.status.in_(watched)).limit(1)
        ).first()
        if conn.in_transaction():
            conn.rollback()
    return found is not None


@dataclass
class _Context:
    job: ExportJob
    service: gw.ServiceView | None
    grants: list[gw.GrantView]
    registry: DataTable | None
    consumer_name: str
    caller: gw.Caller


def _caller_of(session: Session, job: ExportJob) -> gw.Caller:
    """The principal that asked, as the ledger row of the delivery names it."""
    if job.credential_id is not None:
        principal = Principal(
            kind="credential",
            id=job.credential_id,
            name=job.requested_by,
            role=Role.SYSTEM,
            department_id=job.consumer_department_id,
            permissions=permissions_for(Role.SYSTEM),
        )
        return gw.Caller(principal, job.requested_by.split("（", 1)[0], "")
    user = session.get(User, job.user_id) if job.user_id is not None else None
    role = Role(user.role) if user else Role.DEPT_OFFICER
    principal = Principal(
        kind="user",
        id=job.user_id,
        name=job.requested_by,
        role=role,
        department_id=job.consumer_department_id,
        permissions=permissions_for(role),
    )
    return gw.Caller(principal, WEB_SYSTEM, "")


def _load(engine: Engine, job_id: int) -> _Context | None:
    with _sessions(engine)() as s:
        job = s.get(ExportJob, job_id)
        if job is None:
            return None
        service = gw.load_service_view(s, job.service_id)
        settings = get_settings()
        defaults = (settings.dataservice_rate_per_minute, settings.dataservice_daily_quota)
        grants = (
            gw.load_grant_views(s, job.consumer_department_id, service, defaults) if service else []
        )
        registry = s.get(DataTable, service.entry_id) if service else None
        dept = s.get(Department, job.consumer_department_id)
        caller = _caller_of(s, job)
        s.expunge_all()
        s.rollback()
    return _Context(job, service, grants, registry, dept.name if dept else "", caller)


def _check_at_start(ctx: _Context) -> gw.GrantView:
    """The grant must still be in force, the service published, the items there."""
    service = ctx.service
    if service is None or ctx.registry is None:
        raise gw.CallError(404, "not_found", "共享服务不存在")
    if service.status != ServiceStatus.PUBLISHED.value:
        raise gw.CallError(410, "service_withdrawn", f"共享服务已停用：{service.withdrawn_reason}")
    if CallMethod.BATCH.value not in service.methods:
        raise gw.CallError(403, "permission_denied", "该服务不提供“批量交换”方式")
    mine = [g for g in ctx.grants if g.id == ctx.job.grant_id]
    if not mine:
        raise gw.CallError(403, "permission_denied", "共享授权不存在")
    try:
        grant = decide(mine, ctx.job.items, CallMethod.BATCH.value, beijing_today())
    except PermissionDenied as exc:
        raise gw.CallError(403, "permission_denied", exc.message) from None
    gone = [f for f in ctx.job.items if f not in service.columns]
    if gone:
        raise gw.CallError(422, "validation_failed", f"资源已没有信息项 {'、'.join(gone)}")
    return grant


def _delivery_pending(
    engine: Engine, ctx: _Context, outcome: CallOutcome, volume: int, reason: str = ""
) -> ledger_mod.Pending:
    gateway = gw.gateway(engine)
    call = gw.Call(
        method=CallMethod.BATCH,
        service_id=ctx.job.service_id,
        ip="",
        caller=ctx.caller,
        calling_user=ctx.job.calling_user,
        service=ctx.service,
        grant=next((g for g in ctx.grants if g.id == ctx.job.grant_id), None),
        items=list(ctx.job.items),
        volume=volume,
    )
    call.call_id = new_call_id()
    pending = gateway.pending(call, outcome, reason)
    pending.ledger["export_id"] = ctx.job.id
    if pending.ledger.get("grant_id") is None:
        pending.ledger["grant_id"] = ctx.job.grant_id
    details = json.loads(pending.audit["details"])
    details["export_id"] = ctx.job.id
    details["sm3"] = ctx.job.sm3 or None
    pending.audit["details"] = audit.canonical_json(details)
    return pending


def _finish(
    engine: Engine,
    job_id: int,
    started_at: datetime,
    values: dict[str, Any],
    audit_entry: tuple[str, dict[str, Any]] | None = None,
    install: tuple[Path, Path] | None = None,
) -> bool:
    """Set the job's outcome if this runner still holds it (status running since
    ``started_at``); False when another runner took it over. ``install`` (temporary file,
    final name) is renamed into place only when the job is still held, before the commit."""
    with _sessions(engine)() as s:
        result = s.execute(
            update(ExportJob)
            .where(
                ExportJob.id == job_id,
                ExportJob.status == ExportStatus.RUNNING.value,
                ExportJob.started_at == started_at,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        held = getattr(result, "rowcount", 0) == 1
        if not held:
            s.rollback()
            if install is not None:
                install[0].unlink(missing_ok=True)
            return False
        if install is not None:
            os.replace(*install)
        if audit_entry is not None:
            action, details = audit_entry
            audit.record(s, _platform(), action, "export_job", job_id, details)
        s.commit()
    return True


def _heartbeat(
    rows: Iterator[Sequence[Any]], engine: Engine, job_id: int, started_at: datetime
) -> Iterator[Sequence[Any]]:
    """The rows as they are written, marking the job alive every :data:`HEARTBEAT_EVERY`
    seconds (looked at every :data:`HEARTBEAT_ROWS` rows), so that no start-up takes a long
    export from the runner still writing it (:func:`requeue_stale`)."""
    last = monotonic()
    for n, row in enumerate(rows, 1):
        yield row
        if n % HEARTBEAT_ROWS == 0 and monotonic() - last >= HEARTBEAT_EVERY:
            last = monotonic()
            try:
                with _sessions(engine)() as s:
                    s.execute(
                        update(ExportJob)
                        .where(
                            ExportJob.id == job_id,
                            ExportJob.status == ExportStatus.RUNNING.value,
                            ExportJob.started_at == started_at,
                        )
                        .values(heartbeat_at=utcnow())
                        .execution_options(synchronize_session=False)
                    )
                    s.commit()
            except Exception:  # the export goes on; a later beat may pass
                log.exception("export job %s: heartbeat failed", job_id)


def _still_held(engine: Engine, job_id: int, started_at: datetime) -> bool:
    with _sessions(engine)() as s:
        row = s.execute(
            select(ExportJob.status, ExportJob.started_at).where(ExportJob.id == job_id)
        ).first()
        s.rollback()
    return row is not None and row[0] == ExportStatus.RUNNING.value and row[1] == started_at


def _fail(engine: Engine, job_id: int, started_at: datetime, message: str) -> None:
    _finish(
        engine,
        job_id,
        started_at,
        {"status": ExportStatus.FAILED.value, "finished_at": utcnow(), "error": message[:4000]},
        ("dataservices:export:fail", {"reason": message[:512]}),
    )


def build_manifest_for(
    ctx: _Context, grant: gw.GrantView, written: Written, finished_at: datetime
) -> dict[str, Any]:
    from govshare.signing.service import build_manifest

    job, service = ctx.job, ctx.service
    assert service is not None
    return build_manifest(
        job.file_name,
        size=written.size,
        rows=written.rows,
        sm3=written.sm3,
        export_id=job.id,
        service_id=service.id,
        service=service.name,
        entry_code=service.entry_code,
        entry_name=service.entry_name,
        provider=service.provider_name,
        provider_department_id=service.provider_department_id,
        consumer=ctx.consumer_name,
        consumer_department_id=job.consumer_department_id,
        grant_id=grant.id,
        purpose=grant.purpose,
        scenario=grant.scenario,
        conditions=grant.conditions,
        approved_by=grant.approved_by,
        method=CallMethod.BATCH.value,
        items=[{"field": f, "name": service.names.get(f, f)} for f in job.items],
        since=job.changed_since.isoformat() if job.changed_since else None,
        since_rule="行的最后更新时间在该日（北京时间）或之后" if job.changed_since else None,
        format=job.file_format,
        header_rows=HEADER_ROWS,
        requested_by=job.requested_by,
        calling_user=job.calling_user,
        created_at=audit.format_ts(job.created_at),
        finished_at=audit.format_ts(finished_at),
        notice=NOTICE,
    )


def sign(manifest: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The signed manifest envelope, or (unsigned envelope, warning) when the platform has
    no usable signing key: the export is still delivered, the page says it is unsigned."""
    from govshare.signing import service as signing

    try:
        return signing.sign_manifest(manifest), ""
    except Exception as exc:  # no key configured, or a broken key file
        reason = getattr(exc, "message", None) or str(exc)
        log.warning("export manifest %s not signed: %s", manifest.get("file_name"), reason)
        return {"document": manifest, "signature": None}, f"签名清单未签名：{reason}"


def run_job(
    engine: Engine, job_id: int, started_at: datetime, stop: threading.Event | None = None
) -> None:
    """Produce one claimed job; every outcome is stored on the job."""
    try:
        ctx = _load(engine, job_id)
    except Exception as exc:
        log.exception("export job %s: cannot load", job_id)
        _fail(engine, job_id, started_at, f"读取任务失败：{exc}")
        return
    if ctx is None:
        return
    job = ctx.job
    try:
        grant = _check_at_start(ctx)
    except gw.CallError as exc:
        # the refusal is in the ledger before the job says it failed (as a delivery is)
        with contextlib.suppress(Exception):  # the job says why either way
            ledger_mod.writer(engine).write_now(
                [_delivery_pending(engine, ctx, exc.outcome, 0, exc.message)]
            )
        _fail(engine, job_id, started_at, exc.message)
        return
    service, registry = ctx.service, ctx.registry
    assert service is not None
    assert registry is not None
    folder = get_settings().resolved_export_dir()
    final = folder / job.file_name
    tmp = folder / f".{job.file_name}.{secrets.token_hex(6)}.part"
    names = [service.names.get(f, f) for f in job.items]
    write = write_xlsx if job.file_format == "xlsx" else write_csv
    try:
        with contextlib.closing(
            stream_rows(engine, registry, job.items, job.changed_since)
        ) as rows:
            beating = _heartbeat(rows, engine, job_id, started_at)
            written = write(tmp, names, job.items, beating, stop)
    except Interrupted:
        tmp.unlink(missing_ok=True)
        _finish(
            engine, job_id, started_at, {"status": ExportStatus.QUEUED.value, "started_at": None}
        )
        return
    except ExportFailed as exc:
        tmp.unlink(missing_ok=True)
        _fail(engine, job_id, started_at, str(exc))
        return
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        log.exception("export job %s failed", job_id)
        _fail(engine, job_id, started_at, f"生成文件失败：{type(exc).__name__}: {exc}")
        return
    try:
        finished_at = utcnow()
        manifest = build_manifest_for(ctx, grant, written, finished_at)
        envelope, warning = sign(manifest)
        if not _still_held(engine, job_id, started_at):
            tmp.unlink(missing_ok=True)
            return
        job.sm3 = written.sm3
        ledger_mod.writer(engine).write_now(
            [_delivery_pending(engine, ctx, CallOutcome.OK, written.rows)]
        )
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        log.exception("export job %s: delivery not recorded", job_id)
        _fail(engine, job_id, started_at, f"使用台账暂时无法写入，文件未交付：{exc}")
        return
    try:
        held = _finish(
            engine,
            job_id,
            started_at,
            {
                "status": ExportStatus.DONE.value,
                "finished_at": finished_at,
                "rows": written.rows,
                "size": written.size,
                "sm3": written.sm3,
                "manifest": envelope,
                "error": warning,
            },
            install=(tmp, final),
        )
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        log.exception("export job %s: cannot be marked done", job_id)
        with contextlib.suppress(Exception):  # the database is unreachable: stays running
            _fail(engine, job_id, started_at, f"保存任务结果失败：{exc}")
        return
    if not held:
        log.warning("export job %s was taken over by another runner", job_id)


# ---------------------------------------------------------------- the runner thread


class ExportRunner:
    """One per server process: runs queued jobs one after another."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: look for jobs left running by a stopped process before the next claim
        self._recover = threading.Event()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop = threading.Event()  # each thread its own: a stop is for it alone
                self._thread = threading.Thread(
                    target=self._run, args=(self._stop,), name="govshare-exports", daemon=True
                )
                self._thread.start()

    def wake(self) -> None:
        self._wake.set()
        self.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current job (an export in progress goes back to the queue)."""
        with self._lock:
            thread, stop = self._thread, self._stop
            self._thread = None
        stop.set()
        self._wake.set()
        if thread is not None:
            thread.join(timeout)

    def recover(self) -> None:
        """Queue again, before the next claim, the jobs a stopped process left running."""
        self._recover.set()

    def _run(self, stop: threading.Event) -> None:
        expired_at = -EXPIRE_EVERY
        while not stop.is_set():
            if monotonic() - expired_at >= EXPIRE_EVERY:
                expired_at = monotonic()
                try:
                    expire_files(self.engine)
                except Exception:
                    log.exception("export runner: deleting expired files failed")
            if self._recover.is_set():
                try:
                    requeue_stale(self.engine)
                    self._recover.clear()
                except Exception:
                    log.exception("export runner: re-queueing stale jobs failed")
            try:
                claimed = claim_next(self.engine)
            except Exception:
                log.exception("export runner: claiming a job failed")
                claimed = None
            if claimed is None:
                self._wake.wait(POLL_SECONDS)
                self._wake.clear()
                continue
            job_id, started_at = claimed
            try:
                run_job(self.engine, job_id, started_at, stop)
            except Exception:  # run_job stores its failures; this is a bug guard
                log.exception("export runner: job %s", job_id)


_runner: ExportRunner | None = None
_runner_lock = threading.Lock()


def runner(engine: Engine) -> ExportRunner:
    """This process's runner for ``engine`` (its thread starts on :meth:`wake`)."""
    global _runner
    with _runner_lock:
        if _runner is None or _runner.engine is not engine:
            if _runner is not None:
                _runner.stop()
            _runner = ExportRunner(engine)
        return _runner


def start_runner(engine: Engine) -> None:
    """At start-up: start the runner if jobs are waiting (queued, or left running by a
    process that stopped; those older than :data:`STALE_AFTER` are queued again)."""
    try:
        waiting = pending_work(engine)
    except Exception:  # e.g. the database is not migrated yet: the first job starts it
        log.exception("export runner: cannot look for waiting jobs")
        return
    if waiting:
        current = runner(engine)
        current.recover()
        current.wake()


def stop_runner() -> None:
    with _runner_lock:
        current = _runner
    if current is not None:
        current.stop()
