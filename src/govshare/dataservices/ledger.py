"""The usage ledger's group committer.

Every data-service call produces one ledger row (使用台账, seed 000 art. 16, seed 001 art. 18)
and one audit entry. A response is sent only after both are committed: the request hands
them to the worker's writer thread and waits; the thread writes whatever has gathered since
its last commit (up to :data:`MAX_BATCH` calls) in one transaction (chain the audit entries,
insert the ledger rows, count the calls per grant and day for the quotas) and then wakes
every waiting request at once. Durability is the database's own (PostgreSQL's synchronous
commit; SQLite's WAL, which a killed server process does not lose), not weakened: calls share
a commit instead of each paying for one.

On SQLite the commit usually runs on the event loop itself, once per loop pass, for every
call that pass gathered (:meth:`LedgerWriter.write`): SQLite works in the server's own process,
and a thread would hand the GIL back and forth with the loop at every statement, which costs
far more than the statements. Only when another connection holds the database's write lock
does the batch go to the thread, so that the loop never waits for a lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import select
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
import psycopg
from psycopg.adapt import Transformer
from sqlalchemy import JSON, Engine, String
from sqlalchemy.dialects import postgresql

from govshare.audit import service as audit
from govshare.audit.models import AuditEntry
from govshare.dataservices.models import CallOutcome, UsageEntry
from govshare.dataservices.usage import subject_hash
from govshare.db import LOCAL_TZ

if TYPE_CHECKING:
    from govshare.dataservices.ledger_process import WriterProcess

log = logging.getLogger(__name__)

MAX_BATCH = 512
#: the most subjects of one call hashed into the ledger
MAX_SUBJECTS = 100


class CallRecord(NamedTuple):
    """One data-service call as the gateway saw it: what its ledger row and audit entry are
    built from (by :func:`pending_of`, in the writer, so that the hashing and formatting are
    not on the request's path when the writer is a separate process)."""

    occurred_at: datetime
    call_id: str
    #: the data service called (the audit entry's target)
    target_id: int
    method: str
    outcome: str
    reason: str
    ip: str
    #: the caller: kind, id, name, role code, department id, IP (``audit.ActorFields``)
    actor: audit.ActorFields
    #: False for a call without a valid credential: audited, not ledgered
    ledgered: bool
    calling_system: str
    calling_user: str
    #: the service's id, entry id and provider department id (None: unknown service)
    service: tuple[int, int, int] | None
    #: the grant's id, purpose, scenario and approver (None: no grant applied)
    grant: tuple[int, str, str, str] | None
    items: tuple[str, ...]
    #: subject keys as given (hashed by :func:`pending_of`)
    subjects: tuple[str, ...]
    volume: int
    #: counts towards the grant's daily quota (served calls)
    counted: bool
    #: the record lookup the writer runs for this call inside its commit (the gateway's
    #: query of every key in one parameter, and the keys); its outcome and volume are then
    #: what the lookup found (:func:`resolve`)
    lookup: tuple[str, tuple[str, ...]] | None = None


class LookupFailed(Exception):
    """A call's record lookup failed in the writer: the call is answered as a server error
    and ledgered as a call that failed (outcome ``error``, :func:`_failed_as_errors`); the
    other calls of its batch are committed as usual."""


def pending_of(rec: CallRecord) -> Pending:
    """The ledger row and audit entry of a call as dicts, for callers that amend them before
    they are written (exports); the writer itself builds the rows straight from the record
    (:func:`call_pending`). For a call with a lookup they are built once the writer has
    looked its records up (:func:`resolve`)."""
    if rec.lookup is not None:
        return Pending({}, {}, counted=rec.counted, record=rec)
    # the rows of _call_rows in their PostgreSQL shape (times, dates and items as values),
    # before chaining: _chain sets the entry's sequence number and hashes
    audit_row, ledger_row, _hash, _day = _call_rows(rec, 0, "", True)
    entry = dict(zip(_AUDIT_COLUMNS[1:12], audit_row[1:12], strict=True))
    if ledger_row is None:
        return Pending({}, entry, counted=False)
    row = dict(zip(LEDGER_COLUMNS[:-1], ledger_row[:-1], strict=True))
    return Pending(row, entry, counted=rec.counted)


def _details(rec: CallRecord, items: list[str]) -> dict[str, Any]:
    """A call's audit details (``items``: the record's items as a list)."""
    if not rec.ledgered:
        return {"call_id": rec.call_id, "outcome": rec.outcome, "reason": rec.reason}
    details: dict[str, Any] = {
        "call_id": rec.call_id,
        "method": rec.method,
        "outcome": rec.outcome,
        "grant_id": rec.grant[0] if rec.grant else None,
        "items": items,
        "subjects": len(rec.subjects),
        "volume": rec.volume,
        "user": rec.calling_user,
    }
    if rec.reason:
        details["reason"] = rec.reason
    return details


@dataclass(slots=True)
class Pending:
    """One call's ledger row and audit entry, and the future its request waits on."""

    ledger: dict[str, Any]
    audit: dict[str, Any]
    future: asyncio.Future[Any] | None = None
    #: counts towards the grant's daily quota (calls that were served)
    counted: bool = True
    #: the call as the gateway sent it, when its rows are built from it (:func:`call_pending`);
    #: the writer looks its records up first when it has a ``lookup``
    record: CallRecord | None = None
    #: what the lookup found: the records of the call's keys, in the order of the keys
    found: list[tuple[Any, ...]] | None = None
    #: the lookup failed: this call is not committed
    error: BaseException | None = None


def call_pending(rec: CallRecord) -> Pending:
    """A call as the writer takes it: its ledger row and audit entry are built straight from
    the record when it is chained (:func:`_call_rows`), without the dicts of
    :func:`pending_of` (which callers that amend the row before it is written use)."""
    return Pending({}, {}, counted=rec.counted, record=rec)


def resolve(item: Pending, by_key: dict[Any, tuple[Any, ...]]) -> None:
    """Record what a looked-up call's lookup found: the records of its distinct keys (the
    volume), served "ok" when there is one; its rows are built from that when chained."""
    rec = item.record
    assert rec is not None
    assert rec.lookup is not None
    found = [by_key[k] for k in dict.fromkeys(rec.lookup[1]) if k in by_key]
    outcome = _OK if found else _NOT_FOUND
    item.record = rec._replace(outcome=outcome, volume=len(found), lookup=None)
    item.found = found


_OK = CallOutcome.OK.value
_NOT_FOUND = CallOutcome.NOT_FOUND.value
_ERROR = CallOutcome.ERROR.value


@dataclass
class _Counts:
    """Calls per (grant, day) as the database last told this worker."""

    values: dict[tuple[int, date], int] = field(default_factory=dict)


class LedgerWriter:
    """One per worker process: a thread that commits gathered calls together."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._raw: Any = None
        self._conn_lock = threading.Lock()
        #: PostgreSQL: the connection the statements are prepared on, and the prepared
        #: lookups' names by statement
        self._prepared_on: Any = None
        #: PostgreSQL: turns the lookups' rows into Python values as a cursor would
        self._loader: Any = None
        self._lookups: dict[str, str] = {}
        self._lookup_seq = 0
        self._prefix = ""
        #: SQLite: the loop's own connection (busy timeout 0) and the calls of this pass
        self._inline_raw: Any = None
        self._inline_lock = threading.Lock()
        self._inline_guard = threading.Lock()
        self._inline: list[Pending] = []
        self._inline_scheduled = False
        self._cond = threading.Condition()
        self._queue: list[Pending] = []
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._checkpointer: threading.Thread | None = None
        self._checkpoint_stop = threading.Event()
        self.counts = _Counts()
        #: the writer process, when the server started one (:mod:`.ledger_process`)
        self.process: WriterProcess | None = None
        self.batches = 0
        self.written = 0

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="govshare-ledger", daemon=True)
            self._thread.start()
        self.start_checkpoints()

    def start_checkpoints(self) -> None:
        if self.dialect == "sqlite" and self._checkpointer is None:
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="govshare-ledger-checkpoint", daemon=True
            )
            self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        """SQLite: copy the write-ahead log into the database from here, every half second
        after commits, instead of inside a commit that requests are waiting for (the
        writer's connection has automatic checkpoints turned off)."""
        conn: Any = None
        seen = self.batches
        while not self._checkpoint_stop.wait(0.5):
            if self.batches == seen:
                continue
            seen = self.batches
            try:
                if conn is None:
                    conn = self.engine.raw_connection()
                conn.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except Exception:  # a busy or broken connection: try again later
                log.exception("WAL checkpoint failed")
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.invalidate()
                    conn = None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._checkpointer is not None:
            self._checkpoint_stop.set()
            self._checkpointer.join(timeout)
            self._checkpointer = None
            self._checkpoint_stop.clear()
        with self._cond:  # usable again: a later write starts a new thread
            self._stopping = False
        if self.dialect == "postgresql":  # in autocommit mode: never back to the pool
            with self._conn_lock:
                self._drop_connection()
        if self._raw is not None and self.dialect == "sqlite":
            with self._conn_lock, contextlib.suppress(Exception):
                # let the pool's later users checkpoint as usual
                self._raw[1].execute("PRAGMA wal_autocheckpoint=1000")
        with self._inline_lock:  # its busy timeout 0 is not for the pool's later users
            self._drop_inline()

    # ------------------------------------------------------------ submitting

    async def write(self, records: Sequence[CallRecord]) -> list[Any]:
        """Commit calls and wait until they are (raises if the commit failed): through the
        writer process when the server started one, else in this process. Returns, for each
        call, the records its lookup found (None: a call without a lookup)."""
        process = self.process
        if process is not None and process.usable(asyncio.get_running_loop()):
            return await process.write(records)
        return await self.write_here([call_pending(rec) for rec in records])

    async def write_here(self, items: Sequence[Pending]) -> list[Any]:
        """Commit calls in this process and wait until they are."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Any]] = []
        for item in items:
            item.future = loop.create_future()
            futures.append(item.future)
        if self.dialect == "sqlite":
            if self._checkpointer is None:
                self.start()
            with self._inline_guard:
                self._inline.extend(items)
                schedule = not self._inline_scheduled
                self._inline_scheduled = True
            if schedule:
                loop.call_soon(self._flush_inline)
        else:
            self._hand_over(items)
        return [await fut for fut in futures]

    def _hand_over(self, items: Sequence[Pending]) -> None:
        with self._cond:
            if self._stopping:
                raise RuntimeError("ledger writer is stopping")
            self._queue.extend(items)
            self._cond.notify()
        self.start()

    def _flush_inline(self) -> None:
        """SQLite, on the event loop: commit what this loop pass gathered, unless the write
        lock is taken (by another process, an export thread or the writer thread): then the
        thread waits for it instead of the loop."""
        with self._inline_guard:
            self._inline_scheduled = False
            batch, self._inline = self._inline, []
        if not batch:
            return
        if self._stopping or not self._inline_lock.acquire(blocking=False):
            self._hand_over_or_fail(batch)
            return
        try:
            try:
                conn = self._inline_connection()
                conn.execute("BEGIN IMMEDIATE")
            except Exception:  # locked (busy timeout 0) or broken: the thread will wait
                self._drop_inline()
                self._hand_over_or_fail(batch)
                return
            error: BaseException | None = None
            try:
                totals = self._write(conn, batch, begun=True)
                conn.execute("COMMIT")
                self._committed(batch, totals)
            except Exception as exc:
                log.exception("usage ledger commit failed")
                self._drop_inline()
                error = exc
        finally:
            self._inline_lock.release()
        self._wake(batch, error)

    def _hand_over_or_fail(self, batch: list[Pending]) -> None:
        try:
            self._hand_over(batch)
        except RuntimeError as exc:
            _settle([i.future for i in batch if i.future is not None], exc)

    def _inline_connection(self) -> Any:
        if self._inline_raw is None:
            self._inline_raw = _open_raw(self.engine, "PRAGMA busy_timeout=0")
        return self._inline_raw[1]

    def _drop_inline(self) -> None:
        raw, self._inline_raw = self._inline_raw, None
        _close_raw(raw)

    def write_now(self, items: Sequence[Pending]) -> None:
        """Commit calls from a thread without an event loop (exports, CLI)."""
        self._commit(list(items))

    def commit(self, items: Sequence[Pending]) -> dict[tuple[int, date], int]:
        """Commit calls now (the writer process); returns the day's calls per grant."""
        return self._commit(list(items))

    # ------------------------------------------------------------ the thread

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue and self._stopping:
                    return
                batch = self._queue[:MAX_BATCH]
                del self._queue[:MAX_BATCH]
            error: BaseException | None = None
            try:
                self._commit(batch)
            except BaseException as exc:  # the requests answer 503; the thread goes on
                log.exception("usage ledger commit failed")
                error = exc
            self._wake(batch, error)

    @staticmethod
    def _wake(batch: list[Pending], error: BaseException | None) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[Pending]] = {}
        for item in batch:
            if item.future is not None:
                by_loop.setdefault(item.future.get_loop(), []).append(item)
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for loop, items in by_loop.items():
            if loop is running:
                _settle_items(items, error)
                continue
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
                loop.call_soon_threadsafe(_settle_items, items, error)

    def _commit(self, batch: list[Pending]) -> dict[tuple[int, date], int]:
        """One transaction on the writer's own DBAPI connection (no ORM on this path)."""
        with self._conn_lock:
            conn = self._connection()
            try:
                totals = self._write(conn, batch)
                if self.dialect != "postgresql":  # PostgreSQL's COMMIT is in _write_pg
                    conn.execute("COMMIT")
            except BaseException:
                self._drop_connection()
                raise
        self._committed(batch, totals)
        return totals

    def _committed(self, batch: list[Pending], totals: dict[tuple[int, date], int]) -> None:
        self.counts.values.update(totals)
        self.batches += 1
        self.written += len(batch)

    def _connection(self) -> Any:
        if self._raw is None:
            self._raw = _open_raw(self.engine)
        return self._raw[1]

    def _drop_connection(self) -> None:
        raw, self._raw = self._raw, None
        _close_raw(raw)

    def _write(
        self, conn: Any, batch: list[Pending], begun: bool = False
    ) -> dict[tuple[int, date], int]:
        if self.dialect == "postgresql":
            return self._write_pg(conn, batch)
        if not begun:
            conn.execute("BEGIN IMMEDIATE")
        _lookup_sqlite(conn, batch)
        _failed_as_errors(batch)
        n = len(batch)
        sql = _SQL
        row = conn.execute(sql["bump"], (n,)).fetchone()
        init = row is None
        if init:
            conn.execute(sql["init"], (n, audit.GENESIS_HASH))
        audit_rows, ledger_rows, counts, tip = _chain(batch, row, False)
        cur = conn.cursor()
        cur.executemany(sql["audit"], audit_rows)
        if ledger_rows:
            cur.executemany(sql["ledger"], ledger_rows)
        conn.execute(sql["tip"], (tip,))
        totals: dict[tuple[int, date], int] = {}
        for (grant_id, day), calls in sorted(counts.items()):
            got = conn.execute(sql["count"], (grant_id, day.isoformat(), calls)).fetchone()
            totals[(grant_id, day)] = int(got[0])
        return totals

    def _write_pg(self, conn: Any, batch: list[Pending]) -> dict[tuple[int, date], int]:
        """PostgreSQL in two round trips (the writer waits for each; on a busy machine that
        is most of a commit's time): BEGIN, the calls' record lookups and the bump of the
        chain's head (:meth:`_begin_pg`); then the audit entries and the ledger rows (each
        table's rows as one JSON array of arrays, written by orjson and read by position on
        the server, :func:`_insert_from_json`), the new head, the quota counts and the
        COMMIT.

        Each round trip is one libpq pipeline (:func:`_pipeline`) of statements prepared once
        per connection (:meth:`_prepare_pg`), their values sent as parameters: the server
        neither parses nor plans them again, nor reads the rows' JSON through the SQL lexer
        (as it did when psycopg wrote them into one string), and the writer skips psycopg's
        cursor for the work of a batch. The connection is in autocommit mode: the
        transaction is these statements' own."""
        if self._prepared_on is not conn:
            self._prepare_pg(psycopg.ClientCursor(conn))
            self._prepared_on = conn
            self._loader = Transformer(conn)
        row = self._begin_pg(conn, batch)
        _failed_as_errors(batch)
        n = len(batch)
        audit_rows, ledger_rows, counts, tip = _chain(batch, row, True)
        p = self._prefix.encode()
        statements: list[_Statement] = []
        if row is None:
            statements.append((None, _INIT_PG, [str(n).encode(), audit.GENESIS_HASH.encode()]))
        statements.append((p + b"audit", None, [_json_rows(audit_rows)]))
        if ledger_rows:
            statements.append((p + b"ledger", None, [_json_rows(ledger_rows)]))
        statements.append((p + b"tip", None, [tip.encode()]))
        keys = sorted(counts)
        for grant_id, day in keys:
            values = [str(grant_id).encode(), day.isoformat().encode()]
            statements.append(
                (p + b"count", None, [*values, str(counts[(grant_id, day)]).encode()])
            )
        statements.append(_COMMIT)
        results = _pipeline(conn.pgconn, statements)
        got = results[len(statements) - 1 - len(keys) : -1]  # the quota counts' rows
        return {key: int(res.get_value(0, 0)) for key, res in zip(keys, got, strict=True)}

    def _begin_pg(self, conn: Any, batch: list[Pending]) -> tuple[Any, ...] | None:
        """One round trip: BEGIN, the record lookups of the batch's calls (one query per
        statement for all their keys) and the bump of the chain's head; returns the head. A
        lookup that fails fails only its own calls (``Pending.error``): the others go on."""
        lookups = _gather_lookups(batch)
        try:
            names = self._lookup_names(conn, lookups)
            statements: list[_Statement] = [_BEGIN]
            for name, keys in zip(names, lookups.values(), strict=True):
                statements.append((name.encode(), None, [_pg_array(keys)]))
            statements.append((self._prefix.encode() + b"bump", None, [str(len(batch)).encode()]))
            results = _pipeline(conn.pgconn, statements)
        except psycopg.OperationalError:
            raise
        except (psycopg.Error, ValueError, TypeError) as exc:
            with contextlib.suppress(psycopg.Error):
                conn.execute("ROLLBACK")
            if not self._fail_lookups(psycopg.ClientCursor(conn), batch, lookups):
                raise
            log.warning("record lookup failed: %s", exc)
            return self._begin_pg(conn, batch)
        loader = self._loader
        by_sql = {}
        for sql, res in zip(lookups, results[1:-1], strict=True):
            loader.set_pgresult(res)
            by_sql[sql] = {r[0]: r for r in loader.load_rows(0, res.ntuples, tuple)}
        _resolve_all(batch, by_sql)
        head = results[-1]
        if not head.ntuples:
            return None
        return (int(head.get_value(0, 0)), head.get_value(0, 1).decode())

    def _prepare_pg(self, cur: Any) -> None:
        """Prepare the writer's statements on a new connection (one round trip), under names
        of their own (a pooled connection may hold an earlier writer's)."""
        self._lookups = {}
        self._prefix = f"gs_{secrets.token_hex(4)}_"
        # the server planned the lookups again at every execution (a custom plan for each
        # key array: the generic plan never looked cheaper to it), about a tenth of its
        # time for one-call batches; these statements' plans do not depend on the values
        cur.execute("SET plan_cache_mode = force_generic_plan")
        cur.execute(
            "; ".join(f"PREPARE {self._prefix}{name} AS {sql}" for name, sql in _PREPARED.items())
        )

    def _lookup_names(self, conn: Any, lookups: dict[str, dict[str, None]]) -> list[str]:
        """The prepared statements of these lookups, preparing (in one round trip) those this
        connection has not seen (a service's lookup, the first time it is called)."""
        new = [sql for sql in lookups if sql not in self._lookups]
        if new:
            cur = psycopg.ClientCursor(conn)
            if len(self._lookups) + len(new) > 1000:  # services come and go: start over
                cur.execute("DEALLOCATE ALL")
                self._prepare_pg(cur)
            names = {}
            for sql in new:  # a name is never used twice (a failed PREPARE may leave one)
                self._lookup_seq += 1
                names[sql] = f"{self._prefix}lookup_{self._lookup_seq}"
            # the gateway's lookups have one parameter, the keys (its type the key column's)
            cur.execute(
                "; ".join(f"PREPARE {n} AS {sql.replace('%s', '$1')}" for sql, n in names.items())
            )
            self._lookups.update(names)
        return [self._lookups[sql] for sql in lookups]

    @staticmethod
    def _fail_lookups(cur: Any, batch: list[Pending], lookups: dict[str, dict[str, None]]) -> bool:
        """After a failed first round trip: run each lookup statement alone (with the keys
        gathered for it), and fail the calls of those that fail. False when none does (the
        batch itself failed)."""
        failed: dict[str, BaseException] = {}
        for sql, keys in lookups.items():
            try:
                cur.execute(sql, [list(keys)])
                cur.fetchall()
            except psycopg.OperationalError:
                raise
            except (psycopg.Error, ValueError, TypeError) as exc:
                failed[sql] = exc
        _fail_calls(batch, failed)
        return bool(failed)


#: the reason a call whose record lookup failed is ledgered with (the database's message,
#: which may name tables, goes to the server's log only)
LOOKUP_FAILED_REASON = "记录查询失败（平台内部错误），本次调用未返回数据"


def _failed_as_errors(batch: list[Pending]) -> None:
    """The calls whose record lookup failed are committed all the same, as calls that failed
    (outcome ``error``, no record, not counted towards the quota): every call is in the
    ledger. Their requests are still answered as a server error (``Pending.error``)."""
    for item in batch:
        rec = item.record
        if item.error is not None and rec is not None:
            item.record = rec._replace(
                outcome=_ERROR,
                volume=0,
                counted=False,
                reason=LOOKUP_FAILED_REASON,
                lookup=None,
            )
            item.counted = False


def _fail_calls(batch: list[Pending], failed: dict[str, BaseException]) -> None:
    """Fail the calls whose lookup statement failed (``LookupFailed``, with its error)."""
    for item in batch:
        rec = item.record
        if rec is not None and rec.lookup is not None and rec.lookup[0] in failed:
            item.error = LookupFailed(str(failed[rec.lookup[0]]))


#: a statement of a pipeline: a prepared statement's name, or None and the SQL (with $n
#: placeholders); then its parameters in text form
_Statement = tuple[bytes | None, bytes | None, list[bytes | None] | None]
_BEGIN: _Statement = (None, b"BEGIN", None)
_COMMIT: _Statement = (None, b"COMMIT", None)


def _pipeline(pgconn: Any, statements: list[_Statement]) -> list[Any]:
    """Run statements in one round trip on a psycopg connection's libpq connection (pipeline
    mode, the extended protocol, parameters in text form) and return each one's result.
    Raises the error of the first statement that failed, once the round trip is over (the
    server skips the statements after it)."""
    pgconn.enter_pipeline_mode()
    try:
        for name, sql, params in statements:
            if name is not None:
                pgconn.send_query_prepared(name, params)
            else:
                assert sql is not None
                pgconn.send_query_params(sql, params)
        pgconn.pipeline_sync()
        while pgconn.flush():
            select.select([pgconn.socket], [pgconn.socket], [])
            pgconn.consume_input()
        results: list[Any] = []
        error: Exception | None = None
        while True:
            if pgconn.is_busy():
                select.select([pgconn.socket], [], [])
                pgconn.consume_input()
                continue
            res = pgconn.get_result()
            if res is None:  # the end of one statement's results
                continue
            status = res.status
            if status == _SYNC:
                break
            if status == _FAILED and error is None:
                error = psycopg.errors.error_from_result(res, encoding="utf-8")
            results.append(res)
    finally:
        with contextlib.suppress(psycopg.Error):
            pgconn.exit_pipeline_mode()
    if error is not None:
        raise error
    return results


_SYNC = psycopg.pq.ExecStatus.PIPELINE_SYNC
_FAILED = psycopg.pq.ExecStatus.FATAL_ERROR


def _pg_array(values: Iterable[str]) -> bytes:
    """A text array's literal (``{"a","b"}``): each value quoted, its quotes and
    backslashes escaped."""
    quoted = (v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return ("{" + ",".join(f'"{v}"' for v in quoted) + "}").encode()


def _gather_lookups(batch: list[Pending]) -> dict[str, dict[str, None]]:
    """The distinct keys of the batch's live calls, by lookup statement."""
    lookups: dict[str, dict[str, None]] = {}
    for item in batch:
        rec = item.record
        if rec is not None and rec.lookup is not None and item.error is None:
            lookups.setdefault(rec.lookup[0], {}).update(dict.fromkeys(rec.lookup[1]))
    return lookups


def _resolve_all(batch: list[Pending], by_sql: dict[str, dict[Any, tuple[Any, ...]]]) -> None:
    for item in batch:
        rec = item.record
        if rec is not None and rec.lookup is not None and item.error is None:
            resolve(item, by_sql[rec.lookup[0]])


def _lookup_sqlite(conn: Any, batch: list[Pending]) -> None:
    """SQLite, inside the batch's transaction: each lookup statement once, for the keys of
    all its calls (a JSON array, ``key IN (SELECT value FROM json_each(?))``). A statement
    that fails fails only its own calls (SQLite keeps the transaction going)."""
    by_sql: dict[str, dict[Any, tuple[Any, ...]]] = {}
    failed: dict[str, BaseException] = {}
    for sql, keys in _gather_lookups(batch).items():
        try:
            rows = conn.execute(sql, (orjson.dumps(list(keys)).decode(),)).fetchall()
        except sqlite3.Error as exc:
            log.warning("record lookup failed: %s", exc)
            failed[sql] = exc
            continue
        by_sql[sql] = {r[0]: r for r in rows}
    _fail_calls(batch, failed)
    _resolve_all(batch, by_sql)


def _open_raw(engine: Engine, *pragmas: str) -> tuple[Any, Any]:
    """A writer's own DBAPI connection (the pool's proxy and the driver's connection). On
    PostgreSQL it is in autocommit mode: the statements say BEGIN and COMMIT (_write_pg);
    on SQLite the WAL is checkpointed by _checkpoint_loop, not by the committing thread."""
    proxy = engine.raw_connection()
    conn: Any = proxy.driver_connection
    if engine.dialect.name == "postgresql":
        conn.autocommit = True
    else:
        # the writer looks records up by key (:func:`_lookup_sqlite`): a page cache of
        # 64 MB instead of 2 keeps the tables' upper levels and much of their keys in memory
        for pragma in ("PRAGMA wal_autocheckpoint=0", "PRAGMA cache_size=-65536", *pragmas):
            conn.execute(pragma)
    return proxy, conn


def _close_raw(raw: tuple[Any, Any] | None) -> None:
    """Roll back whatever was left open and throw the connection away."""
    if raw is not None:
        proxy, conn = raw
        with contextlib.suppress(Exception):
            conn.execute("ROLLBACK")
        with contextlib.suppress(Exception):
            proxy.invalidate()


def _chain(
    batch: list[Pending], head: tuple[Any, ...] | None, pg: bool
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], dict[tuple[int, date], int], str]:
    """Chain a batch's audit entries after ``head`` (the bumped ``last_seq`` and the last
    hash; None: a new chain). Returns the audit rows, ledger rows, calls per grant and day,
    and the new last hash."""
    n = len(batch)
    if head is None:
        last_seq, prev = n, audit.GENESIS_HASH
    else:
        last_seq, prev = int(head[0]), head[1]
    seq = last_seq - n
    audit_rows = []
    ledger_rows = []
    counts: dict[tuple[int, date], int] = {}
    for item in batch:
        seq += 1
        rec = item.record
        if rec is not None and not item.audit:  # a call: its rows straight from the record
            audit_row, ledger_row, prev, day = _call_rows(rec, seq, prev, pg)
            audit_rows.append(audit_row)
            if ledger_row is not None:
                ledger_rows.append(ledger_row)
                if rec.grant is not None and rec.counted:
                    key = (rec.grant[0], day)
                    counts[key] = counts.get(key, 0) + 1
            continue
        e = item.audit
        e["seq"] = seq
        e["prev_hash"] = prev
        fields = tuple(e[col] for col in _CHAINED_FIELDS)
        payload: Any = (seq, audit.format_ts(e["occurred_at"]), *fields, e["prev_hash"])
        prev = audit.sm3_hex(audit.entry_payload(*payload))
        e["hash"] = prev
        stored = e["occurred_at"] if pg else _sqlite_ts(e["occurred_at"])
        audit_rows.append((seq, stored, *fields, e["prev_hash"], prev))
        led = item.ledger
        if led:  # calls without a valid credential are audited only
            led["audit_seq"] = seq
            ledger_rows.append(_ledger_tuple(led, pg))
            grant_id = led.get("grant_id")
            if grant_id is not None and item.counted:
                key = (grant_id, led["day"])
                counts[key] = counts.get(key, 0) + 1
    return audit_rows, ledger_rows, counts, prev


def _utc_text(ts: datetime) -> str:
    """A time in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffff`` (what :func:`audit.format_ts` writes
    before its "Z", and :func:`_sqlite_ts` with a space for the "T")."""
    if ts.utcoffset():
        ts = ts.astimezone(UTC)
    return ts.replace(tzinfo=None).isoformat(timespec="microseconds")


#: the audit entry's actor columns by the actor's fields (clipped once per caller)
_ACTORS: dict[audit.ActorFields, tuple[Any, ...]] = {}
#: SQLite: a call's items as the ledger stores them (JSON), by items
_ITEMS_JSON: dict[tuple[str, ...], str] = {}


def _actor_columns(actor: audit.ActorFields) -> tuple[Any, ...]:
    """:func:`audit.actor_columns`, kept per caller (the same few callers make every call)."""
    got = _ACTORS.get(actor)
    if got is None:
        if len(_ACTORS) > 4096:
            _ACTORS.clear()
        got = _ACTORS[actor] = audit.actor_columns(actor)
    return got


def _details_json(details: dict[str, Any]) -> str:
    """:func:`audit.canonical_json` of a call's audit details, by orjson (the same text for
    these values: sorted keys, no spaces, characters as they are; a test checks it), falling
    back to the canonical encoder for what orjson refuses (a lone surrogate, say)."""
    try:
        return orjson.dumps(details, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError:
        return audit.canonical_json(details)


def _call_rows(
    rec: CallRecord, seq: int, prev: str, pg: bool
) -> tuple[tuple[Any, ...], tuple[Any, ...] | None, str, date]:
    """A call's audit row (chained after ``prev`` as entry ``seq``), its ledger row (None for
    a call without a valid credential), the entry's hash and the call's Beijing day: the rows
    :func:`pending_of` and :func:`_chain` make, built without their dicts (this runs for every
    call)."""
    method, outcome = rec.method, rec.outcome
    kind, actor_id, actor_name, role, department_id, ip = _actor_columns(rec.actor)
    action = f"dataservices:call:{method}"
    target_id = "" if rec.target_id is None else audit.clip(str(rec.target_id), 128)
    grant = rec.grant
    items = list(rec.items)
    text = _details_json(_details(rec, items))
    now = rec.occurred_at
    utc = _utc_text(now)
    # the entry's fields between its time and its previous hash (_CHAINED_FIELDS' order)
    fields: tuple[Any, ...] = (kind, actor_id, actor_name, role, department_id, action)
    fields += ("data_service", target_id, ip, text)
    payload: Any = (seq, utc + "Z", *fields, prev)
    digest = audit.sm3_hex(audit.entry_payload(*payload))
    stored: Any = now if pg else utc.replace("T", " ")
    audit_row = (seq, stored, *fields, prev, digest)
    day = now.astimezone(LOCAL_TZ).date()
    if not rec.ledgered:
        return audit_row, None, digest, day
    service = rec.service
    if pg:
        items_value: Any = items
        day_value: Any = day
    else:
        items_value = _ITEMS_JSON.get(rec.items)
        if items_value is None:
            if len(_ITEMS_JSON) > 4096:
                _ITEMS_JSON.clear()
            items_value = _ITEMS_JSON[rec.items] = json.dumps(items, ensure_ascii=False)
        day_value = day.isoformat()
    ledger_row = (
        stored,
        day_value,
        rec.call_id,
        service[0] if service else None,
        service[1] if service else None,
        grant[0] if grant else None,
        service[2] if service else None,
        rec.actor[4],
        rec.actor[1] if rec.actor[0] == "credential" else None,
        rec.calling_system[:128],
        rec.calling_user[:128],
        grant[1] if grant else "",
        grant[2] if grant else "",
        grant[3] if grant else "",
        method,
        outcome,
        items_value,
        ",".join(subject_hash(s) for s in rec.subjects[:MAX_SUBJECTS]),
        len(rec.subjects),
        rec.volume,
        None,
        rec.reason[:512],
        rec.ip[:64],
        seq,
    )
    return audit_row, ledger_row, digest, day


LEDGER_COLUMNS = (
    "occurred_at",
    "day",
    "call_id",
    "service_id",
    "entry_id",
    "grant_id",
    "provider_department_id",
    "consumer_department_id",
    "credential_id",
    "calling_system",
    "calling_user",
    "purpose",
    "scenario",
    "approved_by",
    "method",
    "outcome",
    "items",
    "subjects",
    "subject_count",
    "volume",
    "export_id",
    "reason",
    "ip",
    "audit_seq",
)
_AUDIT_COLUMNS = (
    "seq",
    "occurred_at",
    "actor_type",
    "actor_id",
    "actor_name",
    "role",
    "department_id",
    "action",
    "target_type",
    "target_id",
    "ip",
    "details",
    "prev_hash",
    "hash",
)
#: an entry's fields between its time and its previous hash, in the order of both the
#: table's columns and the hashed payload (audit.entry_payload)
_CHAINED_FIELDS = _AUDIT_COLUMNS[2:12]
#: the writer's statements, with "?" placeholders (turned into "%s" for psycopg); the
#: column lists are constants of this module
_SQL = {
    "bump": "UPDATE audit_head SET last_seq = last_seq + ? WHERE id = 1 "
    "RETURNING last_seq, last_hash",
    "init": "INSERT INTO audit_head (id, last_seq, last_hash) VALUES (1, ?, ?)",
    "tip": "UPDATE audit_head SET last_hash = ? WHERE id = 1",
    "count": "INSERT INTO grant_usage_days (grant_id, day, calls) VALUES (?, ?, ?) "
    "ON CONFLICT (grant_id, day) "
    "DO UPDATE SET calls = grant_usage_days.calls + excluded.calls RETURNING calls",
    "audit": f"INSERT INTO audit_entries ({', '.join(_AUDIT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(_AUDIT_COLUMNS))})",
    "ledger": f"INSERT INTO usage_ledger ({', '.join(LEDGER_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(LEDGER_COLUMNS))})",
}


def _numbered(sql: str) -> str:
    """A statement's "?" placeholders as PostgreSQL's $1, $2, ... (for PREPARE)."""
    parts = sql.split("?")
    return "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], 1)) + parts[-1]


#: PostgreSQL: the start of a new chain (run once, unprepared)
_INIT_PG = _numbered(_SQL["init"]).encode()
_PG_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def _insert_from_json(table: Any, columns: Sequence[str]) -> str:
    """PostgreSQL: an INSERT of rows sent as one JSON array of arrays (one array a row, its
    values in ``columns`` order): each value taken by its position and read by its column's
    type. Text goes as text, so a value too long for its column is refused, not cut."""
    values = []
    for i, name in enumerate(columns):
        column_type = table.c[name].type
        if isinstance(column_type, JSON):
            values.append(f"(r->{i})::json")
        elif isinstance(column_type, String):
            values.append(f"r->>{i}")
        else:
            values.append(f"(r->>{i})::{column_type.compile(dialect=_PG_DIALECT)}")
    return (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608 (our own tables)
        f"SELECT {', '.join(values)} FROM jsonb_array_elements($1) AS r"
    )


#: PostgreSQL: the writer's statements, prepared on its connection (:meth:`_prepare_pg`);
#: a table's rows come as one JSON array of arrays (:func:`_json_rows`)
_PREPARED = {
    "bump": _numbered(_SQL["bump"]),
    "tip": _numbered(_SQL["tip"]),
    "count": _numbered(_SQL["count"]),
    "audit": _insert_from_json(AuditEntry.__table__, _AUDIT_COLUMNS),
    "ledger": _insert_from_json(UsageEntry.__table__, LEDGER_COLUMNS),
}


def _json_rows(rows: list[tuple[Any, ...]]) -> bytes:
    """Rows as one JSON array of arrays (times in ISO 8601 with their offset, to the
    microsecond: what the audit chain hashed), for :func:`_insert_from_json`."""
    return orjson.dumps(rows, option=orjson.OPT_NAIVE_UTC)


def _sqlite_ts(ts: datetime) -> str:
    """How SQLAlchemy stores a UTC datetime on SQLite (naive, microseconds)."""
    return ts.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


_ITEMS = LEDGER_COLUMNS.index("items")


def _ledger_tuple(led: dict[str, Any], pg: bool) -> tuple[Any, ...]:
    values = [led[col] for col in LEDGER_COLUMNS]
    if not pg:  # as SQLAlchemy stores them on SQLite (PostgreSQL's rows go as JSON)
        values[_ITEMS] = json.dumps(values[_ITEMS], ensure_ascii=False)
        values[0] = _sqlite_ts(values[0])
        values[1] = values[1].isoformat()
    return tuple(values)


def _settle_items(items: list[Pending], error: BaseException | None) -> None:
    """Wake a batch's requests: each with what its lookup found, or with its error."""
    for item in items:
        fut = item.future
        if fut is None or fut.done():
            continue
        if item.error is not None:
            fut.set_exception(item.error)
        elif error is None:
            fut.set_result(item.found)
        else:
            fut.set_exception(RuntimeError(f"usage ledger commit failed: {error}"))


def _settle(futures: list[asyncio.Future[Any]], error: BaseException | None) -> None:
    for fut in futures:
        if fut.done():
            continue
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(RuntimeError(f"usage ledger commit failed: {error}"))


_writer: LedgerWriter | None = None
_writer_lock = threading.Lock()


def writer(engine: Engine) -> LedgerWriter:
    """This process's writer (started lazily on first use)."""
    global _writer
    with _writer_lock:
        if _writer is None or _writer.engine is not engine:
            if _writer is not None:
                _writer.stop()
            _writer = LedgerWriter(engine)
        return _writer


def stop_writer() -> None:
    """Commit what is queued and stop the thread (at shutdown); a later call starts it."""
    with _writer_lock:
        if _writer is not None:
            _writer.stop()


def start_process(engine: Engine, loop: asyncio.AbstractEventLoop) -> bool:
    """Give this process's writer a writer process (a server worker at start-up)."""
    from govshare.dataservices.ledger_process import WriterProcess

    w = writer(engine)
    if w.process is None:
        w.process = WriterProcess(engine.url.render_as_string(hide_password=False), w.counts.values)
    return w.process.start(loop) if not w.process.alive else True


async def stop_process() -> None:
    """Let the writer process commit what it was sent and exit (at shutdown)."""
    with _writer_lock:
        w = _writer
    if w is not None and w.process is not None:
        process, w.process = w.process, None
        await process.stop()
