"""PostgreSQL: the writer process commits batches one behind another.

The plain writer (:meth:`LedgerWriter._write_pg
<govshare.dataservices.ledger.LedgerWriter._write_pg>`) commits a batch in two round trips:
the lookups with the bump of the audit chain's head, then the rows and the COMMIT. The head's
row stays locked from the first to the commit's WAL flush, so the next batch could not start
before this one was durable, and the writer's own work (the rows, the SM3 chain) and the
database's (the inserts, the flush) took turns: under load the machine was a quarter idle.

Here the writer chains a batch after the head *it expects*: the one its last batch leaves
(``LedgerWriter.tip``), and sends the batch as one implicit transaction (a libpq pipeline up
to its sync point): first ``advance``, which moves the head from the expected one to the
batch's last entry and fails when the head is not the expected one, then the audit entries,
the ledger rows and the quota counts; the sync point commits. It does not wait for that
commit: it looks the next batch's records up on a second connection and chains that batch
after this one while the database inserts and flushes, and sends it behind (at most
:data:`DEPTH` batches in flight). A batch is answered when its sync point is reached, that
is once it is durable: nothing about durability changes.

When another writer has moved the head (another worker's writer process, an audit entry of
the web application), ``advance`` fails and the transaction is rolled back; so are the
batches sent behind it (they expect a head that was never committed). Those are committed
again the plain way, in order, which reads the head under its lock. The chain's order is
therefore the database's: no entry is ever chained after one that was not committed.
"""

from __future__ import annotations

import contextlib
import logging
import select
from collections import deque
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import psycopg

from govshare.dataservices.ledger import (
    LedgerWriter,
    Pending,
    _chain,
    _json_rows,
    _Statement,
    count_statements,
    quota_totals,
)

log = logging.getLogger(__name__)

#: batches sent and not yet committed at most: one being committed, one queued behind it
DEPTH = 2

_SYNC = psycopg.pq.ExecStatus.PIPELINE_SYNC
_FAILED = psycopg.pq.ExecStatus.FATAL_ERROR
#: SQLSTATE of ``advance`` when the head is not the one expected (1 / 0 rows moved)
_HEAD_MOVED = "22012"


@dataclass
class Done:
    """A batch that is over: committed (``error`` None) or failed (every call of it)."""

    ids: list[int]
    batch: list[Pending]
    totals: dict[tuple[int, date], int] = field(default_factory=dict)
    error: str | None = None


@dataclass
class _Sent:
    ids: list[int]
    batch: list[Pending]
    #: the live calls (their lookup did not fail), as chained
    live: list[Pending]
    #: the quota counts' keys, in the order of their statements
    keys: list[tuple[int, date]]
    results: list[Any] = field(default_factory=list)


class PipelinedCommits:
    """Commits batches on ``writer``'s connection, looking their records up on ``reader``'s
    (another :class:`LedgerWriter` of the same database)."""

    def __init__(self, writer: LedgerWriter, reader: LedgerWriter, depth: int = DEPTH) -> None:
        self.writer = writer
        self.reader = reader
        self.depth = depth
        self._sent: deque[_Sent] = deque()
        #: batches committed the plain way after the head moved (for tests and statistics)
        self.replayed = 0

    @property
    def full(self) -> bool:
        return len(self._sent) >= self.depth

    @property
    def busy(self) -> bool:
        """Batches are in flight: :meth:`fileno` becomes readable when results arrive."""
        return bool(self._sent)

    def fileno(self) -> int:
        conn = self.writer._raw[1]
        fd: int = conn.pgconn.socket
        return fd

    # ------------------------------------------------------------ sending

    def submit(self, ids: list[int], batch: list[Pending]) -> list[Done]:
        """Start committing a batch. Returns the batches that are over by now: this one when
        it was committed the plain way (no expected head: the first batch, or after a
        failure) or had no live call; earlier ones whose results were read meanwhile."""
        done: list[Done] = []
        while self.full:
            done += self.collect(block=True)
        if self.writer.tip is None:  # the head is read under its lock, the plain way
            done += self.drain()
            done.append(self._plain(ids, batch))
            return done
        try:
            self.reader.look_up(batch)
        except Exception:  # the reader's connection failed: the plain way looks them up
            log.exception("record lookup connection failed: committing the plain way")
            done += self.drain()
            done.append(self._plain(ids, batch))
            return done
        live = [item for item in batch if item.error is None]
        if not live:
            return [*done, Done(ids, batch)]
        try:
            sent, statements, tip = self._statements(ids, batch, live)
        except Exception as exc:  # nothing was sent: only this batch fails
            log.exception("usage ledger rows failed")
            return [*done, Done(ids, batch, error=_error_text(exc))]
        try:
            self._send(statements)
        except Exception as exc:  # part of a pipeline may have gone: start anew
            done += self._broken(exc)
            return [*done, Done(ids, batch, error=_error_text(exc))]
        self._sent.append(sent)
        self.writer.tip = tip
        return done

    def _statements(
        self, ids: list[int], batch: list[Pending], live: list[Pending]
    ) -> tuple[_Sent, list[_Statement], tuple[int, str]]:
        """A batch's transaction, chained after the head the writer expects: ``advance``,
        the audit entries, the ledger rows and the quota counts; and the head it leaves."""
        writer = self.writer
        assert writer.tip is not None
        writer._prepared(writer._connection())
        seq, last_hash = writer.tip
        n = len(live)
        audit_rows, ledger_rows, counts, new_hash = _chain(live, (seq + n, last_hash), True)
        p = writer._prefix.encode()
        head: list[bytes | None] = [str(seq + n).encode(), new_hash.encode()]
        head += [str(seq).encode(), last_hash.encode()]
        statements: list[_Statement] = [(p + b"advance", None, head)]
        statements.append((p + b"audit", None, [_json_rows(audit_rows)]))
        if ledger_rows:
            statements.append((p + b"ledger", None, [_json_rows(ledger_rows)]))
        keys = sorted(counts)
        statements += count_statements(p, keys, counts)
        return _Sent(ids, batch, live, keys), statements, (seq + n, new_hash)

    def _send(self, statements: list[_Statement]) -> None:
        """Send a batch's statements and its sync point (which commits them), unawaited."""
        pgconn = self.writer._connection().pgconn
        if not self._sent:
            pgconn.enter_pipeline_mode()
        for name, _sql, params in statements:
            pgconn.send_query_prepared(name, params)
        pgconn.pipeline_sync()
        while pgconn.flush():
            select.select([pgconn.socket], [pgconn.socket], [])
            pgconn.consume_input()

    # ------------------------------------------------------------ results

    def collect(self, block: bool = False) -> list[Done]:
        """The batches whose results have arrived (with ``block``, at least the oldest one
        in flight, waiting for it)."""
        done: list[Done] = []
        try:
            while self._sent:
                over = self._read(self._sent[0], block and not done)
                if not over:
                    break
                done += self._finish(self._sent.popleft())
        except psycopg.OperationalError as exc:
            done += self._broken(exc)
        return done

    def drain(self) -> list[Done]:
        """Wait for every batch in flight."""
        done: list[Done] = []
        while self._sent:
            done += self.collect(block=True)
        return done

    def _read(self, sent: _Sent, block: bool) -> bool:
        """Read the oldest batch's results as they come; True once its sync point is."""
        pgconn = self.writer._raw[1].pgconn
        pgconn.consume_input()
        while True:
            if pgconn.is_busy():
                if not block:
                    return False
                select.select([pgconn.socket], [], [])
                pgconn.consume_input()
                continue
            res = pgconn.get_result()
            if res is None:  # the end of one statement's results
                continue
            if res.status == _SYNC:
                return True
            sent.results.append(res)

    def _finish(self, sent: _Sent) -> list[Done]:
        """A batch whose sync point came: committed, or rolled back (committed again the
        plain way when the head was not the one expected, failed otherwise)."""
        if not self._sent:
            with contextlib.suppress(psycopg.Error):
                self.writer._connection().pgconn.exit_pipeline_mode()
        failed = next((r for r in sent.results if r.status == _FAILED), None)
        if failed is None:
            totals = quota_totals(sent.keys, sent.results[len(sent.results) - len(sent.keys) :])
            self.writer._committed(sent.live, totals)
            return [Done(sent.ids, sent.batch, totals)]
        self.writer.tip = None  # the batches behind it expect the head it would have left
        error = psycopg.errors.error_from_result(failed, encoding="utf-8")
        if sent.results[0] is not failed or error.sqlstate != _HEAD_MOVED:
            log.error("usage ledger commit failed: %s", error)
            return [Done(sent.ids, sent.batch, error=_error_text(error))]
        # the head moved: read the batches sent behind this one (they were rolled back too),
        # then commit each again the plain way, in order
        behind = list(self._sent)
        try:
            for later in behind:
                self._read(later, block=True)
                self._sent.popleft()
        except psycopg.OperationalError as exc:
            return [Done(sent.ids, sent.batch, error=_error_text(exc)), *self._broken(exc)]
        with contextlib.suppress(psycopg.Error):
            self.writer._connection().pgconn.exit_pipeline_mode()
        self.replayed += 1
        done = [self._plain(sent.ids, sent.batch)]
        for later in behind:
            done += self._finish(later)
        return done

    def _broken(self, exc: BaseException) -> list[Done]:
        """The connection failed: every batch in flight fails with it (as a batch of the
        plain writer would); the next one is committed on a new connection."""
        log.error("usage ledger connection failed: %s", exc)
        sent, self._sent = self._sent, deque()
        self.writer._drop_connection()
        return [Done(s.ids, s.batch, error=_error_text(exc)) for s in sent]

    def _plain(self, ids: list[int], batch: list[Pending]) -> Done:
        try:
            totals = self.writer.commit(batch)
        except Exception as exc:
            log.exception("usage ledger commit failed")
            return Done(ids, batch, error=_error_text(exc))
        return Done(ids, batch, totals)


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
