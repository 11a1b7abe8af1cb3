"""Audit log: record (same transaction as the change), verify, purge.

Entries are queued on the session by :func:`record` and appended to the chain just before
the session commits, so they land in the same transaction as the change they describe and
the chain tip is locked only for the last moment of the transaction. A rollback discards
the entries queued since the transaction (or the rolled-back savepoint) began.

Each entry's hash is SM3 over a length-prefixed encoding of all its fields and the previous
entry's hash. :func:`verify` recomputes every hash from the latest purge checkpoint (or the
genesis hash) to the chain head recorded in ``audit_head`` and reports the first entry that
was altered, deleted or rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from cryptography.hazmat.primitives import hashes
from sqlalchemy import Engine, delete, event, func, insert, select, update
from sqlalchemy.orm import Session, SessionTransaction

from govshare.audit.models import AuditCheckpoint, AuditEntry, AuditHead
from govshare.db import LOCAL_TZ, utcnow
from govshare.errors import PermissionDenied, ValidationFailed
from govshare.permissions import Perm
from govshare.principal import Principal

GENESIS_HASH = "0" * 64
#: seed 003 (南阳市) art. 33: logs are kept at least 6 months; rulebooks may ask for more
MIN_RETENTION_MONTHS = 6
_PENDING = "audit_pending"
_MARKS = "audit_savepoint_marks"


# ---------------------------------------------------------------- hashing


def _sm3_factory() -> Callable[[bytes], str]:
    """The fastest SM3 available: OpenSSL through hashlib when it has SM3, else cryptography
    (which always bundles it). Both are checked against the standard's test vector."""
    vector = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    try:
        base = hashlib.new("sm3")
        if hashlib.new("sm3", b"abc").hexdigest() == vector:

            def sm3_hashlib(data: bytes) -> str:
                h = base.copy()
                h.update(data)
                return h.hexdigest()

            return sm3_hashlib
    except ValueError:
        pass

    def sm3_cryptography(data: bytes) -> str:
        h = hashes.Hash(hashes.SM3())
        h.update(data)
        return h.finalize().hex()

    assert sm3_cryptography(b"abc") == vector
    return sm3_cryptography


sm3_hex = _sm3_factory()


def format_ts(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def _field(value: object) -> str:
    s = "" if value is None else str(value)
    return f"{len(s)}:{s}"


def entry_payload(
    seq: int,
    ts: str,
    actor_type: str,
    actor_id: int | None,
    actor_name: str,
    role: str,
    department_id: int | None,
    action: str,
    target_type: str,
    target_id: str,
    ip: str,
    details: str,
    prev_hash: str,
) -> bytes:
    """The bytes an entry's hash covers: ``len:value`` for each field, joined by ``|``.

    ``ts`` is the timestamp as :func:`format_ts` writes it. Written out field by field
    (rather than with :func:`_field`) because :func:`verify` calls it for every entry.
    """
    s = str(seq)
    a = "" if actor_id is None else str(actor_id)
    d = "" if department_id is None else str(department_id)
    return (
        f"{len(s)}:{s}|{len(ts)}:{ts}|{len(actor_type)}:{actor_type}|{len(a)}:{a}|"
        f"{len(actor_name)}:{actor_name}|{len(role)}:{role}|{len(d)}:{d}|"
        f"{len(action)}:{action}|{len(target_type)}:{target_type}|"
        f"{len(target_id)}:{target_id}|{len(ip)}:{ip}|{len(details)}:{details}|"
        f"{len(prev_hash)}:{prev_hash}"
    ).encode()


def entry_hash(
    seq: int,
    occurred_at: datetime,
    actor_type: str,
    actor_id: int | None,
    actor_name: str,
    role: str,
    department_id: int | None,
    action: str,
    target_type: str,
    target_id: str,
    ip: str,
    details: str,
    prev_hash: str,
) -> str:
    """SM3 over a length-prefixed encoding of every field and the previous entry's hash."""
    return sm3_hex(
        entry_payload(
            seq,
            format_ts(occurred_at),
            actor_type,
            actor_id,
            actor_name,
            role,
            department_id,
            action,
            target_type,
            target_id,
            ip,
            details,
            prev_hash,
        )
    )


# ---------------------------------------------------------------- recording


def record(
    session: Session,
    actor: Principal,
    action: str,
    target_type: str,
    target_id: object,
    details: dict[str, Any] | None = None,
) -> None:
    """Queue an audit entry; it is written in the same transaction when the session commits."""
    if action.count(":") != 2:
        raise ValueError(f"audit action must be domain:resource:action, got {action!r}")
    session.info.setdefault(_PENDING, []).append(
        entry_values(actor, action, target_type, target_id, details)
    )


def entry_values(
    actor: Principal,
    action: str,
    target_type: str,
    target_id: object,
    details: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> dict[str, Any]:
    """An audit entry's column values before it is chained."""
    return actor_entry_values(
        (actor.kind, actor.id, actor.name, actor.role_code, actor.department_id, actor.ip),
        action,
        target_type,
        target_id,
        details,
        occurred_at,
    )


#: what an audit entry keeps of its actor: kind, id, name, role code, department id, IP
ActorFields = tuple[str, int | None, str, str, int | None, str]


def actor_entry_values(
    actor: ActorFields,
    action: str,
    target_type: str,
    target_id: object,
    details: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> dict[str, Any]:
    """:func:`entry_values` from the actor's fields (a principal's, sent between
    processes)."""
    kind, actor_id, name, role, department_id, ip = actor_columns(actor)
    return {
        "occurred_at": occurred_at or utcnow(),
        "actor_type": kind,
        "actor_id": actor_id,
        "actor_name": name,
        "role": role,
        "department_id": department_id,
        "action": clip(action, 96),
        "target_type": clip(target_type, 64),
        "target_id": clip("" if target_id is None else str(target_id), 128),
        "ip": ip,
        "details": canonical_json(details or {}),
    }


def actor_columns(actor: ActorFields) -> ActorFields:
    """An actor's fields as an audit entry stores them, each fitted to its column."""
    kind, actor_id, name, role_code, department_id, ip = actor
    return (
        clip(kind, 16),
        actor_id,
        clip(name, 128),
        clip(role_code, 32),
        department_id,
        clip(ip, 64),
    )


def clip(value: str, size: int) -> str:
    """Fit a value to its column: PostgreSQL refuses longer text and NUL characters, and a
    refused audit entry would fail the whole transaction it records."""
    value = value.replace("\x00", "\ufffd")
    return value if len(value) <= size else value[: size - 1] + "…"


def write_pending(session: Session) -> int:
    """Append queued entries to the chain (called before commit). Returns how many."""
    pending: list[dict[str, Any]] = session.info.pop(_PENDING, [])
    if not pending:
        return 0
    # what is in the chain now goes only with the transaction: a savepoint opened before
    # this point, if rolled back, takes back only entries queued after it
    marks: dict[int, int] | None = session.info.get(_MARKS)
    if marks:
        session.info[_MARKS] = dict.fromkeys(marks, 0)
    append_entries(session, pending)
    return len(pending)


def append_entries(session: Session, pending: list[dict[str, Any]]) -> None:
    """Append entries (as :func:`entry_values` makes them) to the chain in the session's
    transaction, setting each one's ``seq``, ``prev_hash`` and ``hash``. The chain tip row
    is locked from here to the commit."""
    row = session.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(last_seq=AuditHead.last_seq + len(pending))
        .returning(AuditHead.last_seq, AuditHead.last_hash)
    ).one_or_none()
    if row is None:
        session.execute(
            insert(AuditHead).values(id=1, last_seq=len(pending), last_hash=GENESIS_HASH)
        )
        last_seq, prev = len(pending), GENESIS_HASH
    else:
        last_seq, prev = row
    seq = last_seq - len(pending)
    for entry in pending:
        seq += 1
        entry["seq"] = seq
        entry["prev_hash"] = prev
        entry["hash"] = prev = entry_hash(
            seq,
            entry["occurred_at"],
            entry["actor_type"],
            entry["actor_id"],
            entry["actor_name"],
            entry["role"],
            entry["department_id"],
            entry["action"],
            entry["target_type"],
            entry["target_id"],
            entry["ip"],
            entry["details"],
            entry["prev_hash"],
        )
    session.execute(insert(AuditEntry), pending)
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(last_hash=prev))


def discard_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_MARKS, None)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    write_pending(session)


@event.listens_for(Session, "after_transaction_create")
def _after_transaction_create(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        marks: dict[int, int] = session.info.setdefault(_MARKS, {})
        marks[id(transaction)] = len(session.info.get(_PENDING, ()))


@event.listens_for(Session, "after_soft_rollback")
def _after_soft_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    """Rolling back the whole transaction discards every queued entry; rolling back a
    savepoint discards only the entries queued inside it."""
    if previous_transaction.nested:
        mark = session.info.get(_MARKS, {}).pop(id(previous_transaction), None)
        pending = session.info.get(_PENDING)
        if mark is not None and pending is not None:
            del pending[mark:]
    elif previous_transaction.parent is None:
        discard_pending(session)


@event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    """A transaction that ends without commit (closed, rolled back) takes its queued
    entries with it; after a commit there are none left. (A savepoint's mark is dropped in
    after_soft_rollback, which fires after this.)"""
    if transaction.parent is None and not transaction.nested:
        discard_pending(session)


# ---------------------------------------------------------------- verify


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str = ""
    checkpoint_seq: int | None = None

    @property
    def message(self) -> str:
        if self.ok:
            return f"日志链完整，共校验 {self.checked} 条"
        return f"日志链被破坏：{self.reason}"


def checkpoint_payload(
    created_at: str,
    created_by: str,
    purged_before: str,
    last_seq: int,
    last_hash: str,
    entries_purged: int,
) -> bytes:
    return "|".join(
        _field(v)
        for v in (created_at, created_by, purged_before, last_seq, last_hash, entries_purged)
    ).encode("utf-8")


def checkpoint_hash(cp: AuditCheckpoint) -> str:
    return sm3_hex(
        checkpoint_payload(
            format_ts(cp.created_at),
            cp.created_by,
            format_ts(cp.purged_before),
            cp.last_seq,
            cp.last_hash,
            cp.entries_purged,
        )
    )


_ENTRY_COLUMNS = (
    "seq, {ts}, actor_type, actor_id, actor_name, role, department_id, action, "
    "target_type, target_id, ip, details, prev_hash, hash"
)
_PG_TS = "to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"


def _sqlite_ts(raw: object) -> str:
    """What ``format_ts`` gives for a value SQLAlchemy wrote to SQLite: the stored text is
    ``YYYY-MM-DD HH:MM:SS.ffffff`` (naive UTC); anything else is parsed as SQLAlchemy would."""
    if isinstance(raw, str) and len(raw) == 26 and raw[10] == " ":
        return f"{raw[:10]}T{raw[11:]}Z"
    try:
        parsed = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))
    except ValueError:
        return f"<无法识别的时间 {raw!r}>"
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
    return format_ts(parsed)


class _Reader:
    """Reads the chain through a DB-API connection: a plain cursor on SQLite, a server-side
    cursor on PostgreSQL (timestamps formatted by the server), in batches."""

    def __init__(self, dbapi_conn: Any, dialect: str) -> None:
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"audit verify supports sqlite and postgresql, not {dialect}")
        self.conn = dbapi_conn
        self.pg = dialect == "postgresql"
        self.param = "%s" if self.pg else "?"

    def ts(self, col: str) -> str:
        return _PG_TS.format(col=col) if self.pg else col

    def one(self, sql: str, params: Sequence[object] = ()) -> tuple[Any, ...] | None:
        cur = self.conn.cursor()
        try:
            cur.execute(sql, tuple(params))
            row = cur.fetchone()
        finally:
            cur.close()
        return tuple(row) if row is not None else None

    def head(self) -> tuple[int, str] | None:
        row = self.one("SELECT last_seq, last_hash FROM audit_head WHERE id = 1")
        return (int(row[0]), str(row[1])) if row else None

    def checkpoint(self) -> tuple[Any, ...] | None:
        return self.one(
            # only constant SQL fragments are interpolated, values are bound
            f"SELECT id, {self.ts('created_at')}, created_by, {self.ts('purged_before')}, "  # noqa: S608
            "last_seq, last_hash, entries_purged, hash "
            "FROM audit_checkpoints ORDER BY id DESC LIMIT 1"
        )

    def max_seq(self) -> int:
        row = self.one("SELECT max(seq) FROM audit_entries")
        return int(row[0]) if row and row[0] is not None else 0

    def entries(self, first: int, last: int, batch: int) -> Iterator[list[tuple[Any, ...]]]:
        p = self.param
        sql = (
            f"SELECT {_ENTRY_COLUMNS.format(ts=self.ts('occurred_at'))} FROM audit_entries "  # noqa: S608
            f"WHERE seq >= {p} AND seq <= {p} ORDER BY seq"
        )
        if self.pg:
            cur = self.conn.cursor(name=f"govshare_audit_verify_{uuid.uuid4().hex[:12]}")
            cur.itersize = batch
        else:
            cur = self.conn.cursor()
        try:
            cur.execute(sql, (first, last))
            while rows := cur.fetchmany(batch):
                yield rows
        finally:
            cur.close()


@dataclass
class _Plan:
    """Where the walk starts and ends, read before any entry."""

    head: tuple[int, str] | None
    cp_id: int | None
    cp_seq: int | None
    cp_hash: str
    start: int
    prev: str
    end: int
    failure: VerifyResult | None = None


def _plan(reader: _Reader) -> _Plan:
    # the head first: entries appended after this point are beyond ``end`` and ignored
    head = reader.head()
    cp = reader.checkpoint()
    end = head[0] if head is not None else reader.max_seq()
    if cp is None:
        return _Plan(head, None, None, "", 1, GENESIS_HASH, end)
    cp_id, created_at, created_by, purged_before, last_seq, last_hash, purged, cp_hash = cp
    cp_seq = int(last_seq)
    ts = _same if reader.pg else _sqlite_ts
    recomputed = sm3_hex(
        checkpoint_payload(
            ts(created_at), created_by, ts(purged_before), cp_seq, last_hash, int(purged)
        )
    )
    plan = _Plan(head, int(cp_id), cp_seq, str(cp_hash), cp_seq + 1, str(last_hash), end)
    if recomputed != cp_hash:
        plan.failure = VerifyResult(False, 0, cp_seq, "清理检查点被篡改", cp_seq)
    return plan


def _same(value: Any) -> str:
    return str(value)


@dataclass
class _Range:
    """The outcome of checking the entries ``first..last`` on their own."""

    first: int
    count: int = 0
    first_prev: str | None = None
    last_hash: str | None = None
    fail_seq: int | None = None
    fail_reason: str = ""
    fail_at_first: bool = False
    purge_seen: bool = False


def _link_failure(seq: int, start: int, has_cp: bool) -> tuple[int, str]:
    """Entry ``seq`` is consistent in itself but does not follow its predecessor: the
    predecessor was rewritten with a recomputed hash, or this entry was."""
    if seq == start and has_cp:
        return seq, f"第 {seq} 条日志与清理检查点不衔接（被改写或检查点被篡改）"
    if seq == 1:
        return seq, "第 1 条日志的前序哈希不是创世哈希（被改写）"
    return (
        seq - 1,
        f"第 {seq - 1} 条与第 {seq} 条日志之间的链接断开：其中一条被改写并重新计算了哈希",
    )


def _check_range(
    reader: _Reader,
    first: int,
    last: int,
    plan: _Plan,
    batch: int,
    progress: Callable[[int], None] | None = None,
) -> _Range:
    """Recompute the hash of every entry in ``first..last`` and check the links between
    them; the link into ``first`` is checked by :func:`_finish`."""
    out = _Range(first)
    expected, prev = first, ""
    cp_hash, purge_seen = plan.cp_hash, plan.cp_id is None
    has_cp = plan.cp_id is not None
    pg = reader.pg
    sm3 = sm3_hex
    count = 0
    for rows in reader.entries(first, last, batch):
        for seq, ts, at, aid, an, role, did, action, tt, tid, ip, details, ph, h in rows:
            if seq != expected:
                out.count = count
                out.fail_seq, out.fail_at_first = expected, expected == first
                out.fail_reason = f"第 {expected} 条日志缺失（已被删除）"
                return out
            if not pg:
                # SQLite stores what SQLAlchemy wrote: "YYYY-MM-DD HH:MM:SS.ffffff" (UTC);
                # anything else (even a number put there by hand) goes the slow way
                if type(ts) is str and len(ts) == 26 and ts[10] == " ":
                    ts = f"{ts[:10]}T{ts[11:]}Z"
                else:
                    ts = _sqlite_ts(ts)
            # entry_payload(), written out: this loop runs once per entry in the log
            s = str(seq)
            a = "" if aid is None else str(aid)
            d = "" if did is None else str(did)
            own = sm3(
                f"{len(s)}:{s}|{len(ts)}:{ts}|{len(at)}:{at}|{len(a)}:{a}|"
                f"{len(an)}:{an}|{len(role)}:{role}|{len(d)}:{d}|"
                f"{len(action)}:{action}|{len(tt)}:{tt}|"
                f"{len(tid)}:{tid}|{len(ip)}:{ip}|{len(details)}:{details}|"
                f"{len(ph)}:{ph}".encode()
            )
            if own != h:
                out.count = count
                out.fail_seq, out.fail_at_first = seq, seq == first
                out.fail_reason = f"第 {seq} 条日志内容被修改（哈希不符）"
                return out
            if seq == first:
                out.first_prev = ph
            elif ph != prev:
                out.count = count
                out.fail_seq, out.fail_reason = _link_failure(seq, plan.start, has_cp)
                return out
            if not purge_seen and action == "audit:log:purge":
                purge_seen = cp_hash in details
            prev = h
            expected += 1
            count += 1
        if progress is not None:
            progress(count)
    out.count, out.purge_seen = count, purge_seen
    out.last_hash = prev or None
    if expected <= last:
        out.fail_seq, out.fail_at_first = expected, expected == first
        out.fail_reason = (
            f"第 {expected} 条及之后的日志缺失（链头记录到第 {last} 条）"
            if last == plan.end
            else f"第 {expected} 条日志缺失（已被删除）"
        )
    return out


def _finish(reader: _Reader, plan: _Plan, ranges: Sequence[_Range]) -> VerifyResult:
    """Join the ranges (in order) into one walk and check the chain head."""
    checked, prev, cp_seq = 0, plan.prev, plan.cp_seq
    purge_seen = plan.cp_id is None

    def fail(seq: int | None, reason: str) -> VerifyResult:
        return VerifyResult(False, checked, seq, reason, cp_seq)

    for r in ranges:
        if r.fail_seq is not None and r.fail_at_first:
            return fail(r.fail_seq, r.fail_reason)
        if r.first_prev is not None and r.first_prev != prev:
            return fail(*_link_failure(r.first, plan.start, plan.cp_id is not None))
        if r.fail_seq is not None:
            checked += r.count
            return fail(r.fail_seq, r.fail_reason)
        checked += r.count
        prev = r.last_hash or prev
        purge_seen = purge_seen or r.purge_seen
    if plan.head is None:
        if checked:
            return fail(None, "缺少链头记录（audit_head）")
    elif prev != plan.head[1]:
        return fail(plan.end, f"第 {plan.end} 条（最后一条）日志与链头记录不一致（被改写）")
    top = reader.max_seq()
    if top > plan.end:
        again = reader.head()
        if again is not None and again[0] < top:
            return fail(again[0] + 1, f"第 {again[0] + 1} 条日志不在链头记录之内（疑似伪造追加）")
    if not purge_seen:
        return fail(cp_seq, "清理检查点没有对应的审计记录")
    return VerifyResult(True, checked, None, "", cp_seq)


def _serial_ranges(
    reader: _Reader, plan: _Plan, batch: int, progress: Callable[[int, int], None] | None
) -> list[_Range]:
    total = max(plan.end - plan.start + 1, 0)
    if not total:
        return []
    tick = None if progress is None else (lambda n: progress(n, total))
    return [_check_range(reader, plan.start, plan.end, plan, batch, tick)]


def _walk(
    reader: _Reader, batch: int, progress: Callable[[int, int], None] | None
) -> tuple[VerifyResult, int | None]:
    plan = _plan(reader)
    if plan.failure is not None:
        return plan.failure, plan.cp_id
    return _finish(reader, plan, _serial_ranges(reader, plan, batch, progress)), plan.cp_id


def verify(
    session: Session,
    *,
    batch: int = 20_000,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyResult:
    """Walk the chain from the latest checkpoint (or genesis) and recompute every hash.

    Reads through the session's own connection and transaction (so it sees what the session
    sees). ``progress(checked, total)`` is called after each batch.
    """
    conn = session.connection()
    reader = _Reader(conn.connection.dbapi_connection, conn.dialect.name)
    result, cp_id = _walk(reader, batch, progress)
    if not result.ok:
        # a purge committed while we read (READ COMMITTED) would look like deleted entries
        latest = reader.checkpoint()
        if (int(latest[0]) if latest else None) != cp_id:
            result, _ = _walk(reader, batch, progress)
    return result


@contextmanager
def _snapshot(engine: Engine) -> Iterator[_Reader]:
    """A reader in a read-only snapshot of its own: a deferred transaction on SQLite (WAL:
    writers go on), REPEATABLE READ READ ONLY on PostgreSQL."""
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        assert driver is not None
        if engine.dialect.name == "postgresql":
            import psycopg

            assert isinstance(driver, psycopg.Connection)
            driver.rollback()
            saved = (driver.isolation_level, driver.read_only)
            driver.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            driver.read_only = True
            try:
                yield _Reader(driver, "postgresql")
            finally:
                driver.rollback()
                driver.isolation_level, driver.read_only = saved
            return
        if getattr(driver, "in_transaction", False):
            driver.rollback()
        driver.execute("BEGIN")
        try:
            yield _Reader(driver, engine.dialect.name)
        finally:
            driver.execute("ROLLBACK")
    finally:
        raw.close()


_worker_engines: dict[str, Engine] = {}


def _range_worker(url: str, first: int, last: int, plan: _Plan, batch: int) -> _Range:
    """Runs in a worker process: check one range through a connection of its own."""
    engine = _worker_engines.get(url)
    if engine is None:
        from sqlalchemy.pool import NullPool

        from govshare.db import make_engine

        engine = _worker_engines[url] = make_engine(url, poolclass=NullPool)
    with _snapshot(engine) as reader:
        return _check_range(reader, first, last, plan, batch)


#: below this many entries one process is about as fast as starting workers
PARALLEL_MIN_ENTRIES = 1_000_000
#: the fewest entries one worker task checks
PARALLEL_MIN_RANGE = 50_000


def _parallel_ranges(
    engine: Engine,
    plan: _Plan,
    workers: int,
    batch: int,
    progress: Callable[[int, int], None] | None,
) -> list[_Range]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    total = plan.end - plan.start + 1
    size = max(PARALLEL_MIN_RANGE, -(-total // (workers * 16)))
    bounds = [(a, min(a + size - 1, plan.end)) for a in range(plan.start, plan.end + 1, size)]
    url = engine.url.render_as_string(hide_password=False)
    ranges: list[_Range] = []
    done = 0
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_range_worker, url, a, b, plan, batch) for a, b in bounds]
        for future in futures:  # in order, so that the first failure stops the walk
            r = future.result()
            ranges.append(r)
            done += r.count
            if progress is not None:
                progress(done, total)
            if r.fail_seq is not None:
                for f in futures:
                    f.cancel()
                break
    return ranges


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def verify_engine(
    engine: Engine,
    *,
    batch: int = 20_000,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyResult:
    """:func:`verify` in read-only snapshots of its own (what ``govshare audit verify`` runs).

    A big log is split into ranges of entries checked by ``workers`` processes (default: one
    per CPU, at most 8) and joined in order, with exactly the checks of the single walk.
    """
    workers = default_workers() if workers is None else max(1, workers)
    in_memory = engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")
    for attempt in range(2):
        with _snapshot(engine) as reader:
            plan = _plan(reader)
            if plan.failure is not None:
                result = plan.failure
            else:
                total = plan.end - plan.start + 1
                ranges = None
                if workers > 1 and total >= PARALLEL_MIN_ENTRIES and not in_memory:
                    try:
                        ranges = _parallel_ranges(engine, plan, workers, batch, progress)
                    except (BrokenProcessPool, OSError):
                        ranges = None  # no worker processes here: walk in this one
                if ranges is None:
                    ranges = _serial_ranges(reader, plan, batch, progress)
                result = _finish(reader, plan, ranges)
        if result.ok or attempt:
            return result
        # the workers read snapshots of their own: a purge committed meanwhile looks like
        # deleted entries, so look again once if the latest checkpoint changed
        with _snapshot(engine) as reader:
            latest = reader.checkpoint()
        if (int(latest[0]) if latest else None) == plan.cp_id:
            return result
    return result


def record_verify(session: Session, actor: Principal, result: VerifyResult) -> None:
    record(
        session,
        actor,
        "audit:log:verify",
        "audit_chain",
        "",
        {
            "ok": result.ok,
            "checked": result.checked,
            "first_bad_seq": result.first_bad_seq,
            "reason": result.reason,
            "checkpoint_seq": result.checkpoint_seq,
        },
    )


def verify_and_record(session: Session, actor: Principal) -> VerifyResult:
    """Verify the chain (needs AUDIT_VERIFY) and audit that it was verified, with the result."""
    if not actor.can(Perm.AUDIT_VERIFY):
        raise PermissionDenied()
    result = verify(session)
    record_verify(session, actor, result)
    return result


# ---------------------------------------------------------------- purge


def add_months(ts: datetime, months: int) -> datetime:
    month0 = ts.month - 1 + months
    year, month = ts.year + month0 // 12, month0 % 12 + 1
    for day in (ts.day, 30, 29, 28):
        try:
            return ts.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise ValueError(ts)


def local_midnight(d: date) -> datetime:
    """The first instant of a calendar day in China (UTC+8), as an aware datetime."""
    return datetime.combine(d, time(0), tzinfo=LOCAL_TZ)


@dataclass(frozen=True)
class PurgePolicy:
    retention_months: int
    #: the latest ``before`` date a purge may use (entries before that day are old enough)
    latest_before: date


def retention_months(session: Session) -> int:
    """The longest retention any jurisdiction's rulebook asks for, never under 6 months."""
    from govshare.rules import service as rules_service  # rules imports audit

    return max(MIN_RETENTION_MONTHS, rules_service.longest_log_retention_months(session))


def purge_policy(session: Session, now: datetime | None = None) -> PurgePolicy:
    months = retention_months(session)
    earliest_kept = add_months((now or utcnow()).astimezone(LOCAL_TZ), -months)
    return PurgePolicy(months, earliest_kept.date())


def purge(
    session: Session, actor: Principal, before: datetime, retention_months: int
) -> AuditCheckpoint | None:
    """Delete entries older than ``before``, keeping at least ``retention_months``.

    Deletes the longest prefix of the chain whose entries all occurred before ``before``
    and leaves a checkpoint so that the remaining chain still verifies. Returns None when
    there is nothing to purge.
    """
    if before.tzinfo is None:
        raise ValueError("purge needs an aware datetime")
    retention_months = max(retention_months, MIN_RETENTION_MONTHS)
    now = utcnow()
    earliest_kept = add_months(now.astimezone(LOCAL_TZ), -retention_months)
    if before > earliest_kept:
        raise ValidationFailed(
            f"日志至少保留 {retention_months} 个月，清理截止日期不能晚于 {earliest_kept:%Y-%m-%d}",
            field="before",
        )
    write_pending(session)
    first_kept = session.scalar(
        select(func.min(AuditEntry.seq)).where(AuditEntry.occurred_at >= before)
    )
    if first_kept is None:
        first_kept = (session.scalar(select(func.max(AuditEntry.seq))) or 0) + 1
    last_purged = first_kept - 1
    last = session.get(AuditEntry, last_purged) if last_purged > 0 else None
    if last is None:
        return None
    count = session.execute(delete(AuditEntry).where(AuditEntry.seq <= last_purged)).rowcount  # type: ignore[attr-defined]
    cp = AuditCheckpoint(
        created_at=now,
        created_by=actor.name,
        purged_before=before,
        last_seq=last.seq,
        last_hash=last.hash,
        entries_purged=int(count),
        hash="",
    )
    cp.hash = checkpoint_hash(cp)
    session.add(cp)
    session.flush()
    record(
        session,
        actor,
        "audit:log:purge",
        "audit_checkpoint",
        cp.id,
        {
            "purged_before": format_ts(before),
            "last_seq": cp.last_seq,
            "entries_purged": cp.entries_purged,
            "checkpoint_hash": cp.hash,
        },
    )
    return cp


def purge_before_date(session: Session, actor: Principal, before: date) -> AuditCheckpoint | None:
    """Purge entries from before ``before`` (a day in China's time zone), within the
    retention the rulebooks ask for. Needs AUDIT_PURGE."""
    if not actor.can(Perm.AUDIT_PURGE):
        raise PermissionDenied()
    return purge(session, actor, local_midnight(before), retention_months(session))


# ---------------------------------------------------------------- export


def record_export(session: Session, actor: Principal, filters: dict[str, Any], rows: int) -> None:
    record(
        session,
        actor,
        "audit:log:export",
        "audit_chain",
        "",
        {"filters": {k: v for k, v in filters.items() if v not in (None, "")}, "rows": rows},
    )
