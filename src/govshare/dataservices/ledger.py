"""The usage ledger's group committer.

Every data-service call produces one ledger row (使用台账, seed 000 art. 16, seed 001 art. 18)
and one audit entry. A response is sent only after both are committed: the request hands
them to the worker's writer thread and waits; the thread writes whatever has gathered since
its last commit (up to :data:`MAX_BATCH` calls) in one transaction (chain the audit entries,
insert the ledger rows, count the calls per grant and day for the quotas) and then wakes
every waiting request at once. Durability is the database's own (PostgreSQL's synchronous
commit; SQLite's WAL, which a killed server process does not lose), not weakened: calls share
a commit instead of each paying for one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Engine, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from govshare.audit import service as audit
from govshare.dataservices.models import GrantUsageDay, UsageEntry

log = logging.getLogger(__name__)

MAX_BATCH = 512


@dataclass(slots=True)
class Pending:
    """One call's ledger row and audit entry, and the future its request waits on."""

    ledger: dict[str, Any]
    audit: dict[str, Any]
    future: asyncio.Future[None] | None = None
    #: counts towards the grant's daily quota (calls that were served)
    counted: bool = True


@dataclass
class _Counts:
    """Calls per (grant, day) as the database last told this worker."""

    values: dict[tuple[int, date], int] = field(default_factory=dict)


class LedgerWriter:
    """One per worker process: a thread that commits gathered calls together."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._factory = sessionmaker(bind=engine, expire_on_commit=False)
        self._cond = threading.Condition()
        self._queue: list[Pending] = []
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.counts = _Counts()
        self.batches = 0
        self.written = 0

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="govshare-ledger", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self._cond:  # usable again: a later write starts a new thread
            self._stopping = False

    # ------------------------------------------------------------ submitting

    async def write(self, items: Sequence[Pending]) -> None:
        """Queue calls and wait until they are committed (raises if the commit failed)."""
        loop = asyncio.get_running_loop()
        futures = []
        for item in items:
            item.future = loop.create_future()
            futures.append(item.future)
        with self._cond:
            if self._stopping:
                raise RuntimeError("ledger writer is stopping")
            self._queue.extend(items)
            self._cond.notify()
        self.start()
        for fut in futures:
            await fut

    def write_now(self, items: Sequence[Pending]) -> None:
        """Commit calls from a thread without an event loop (exports, CLI)."""
        self._commit(list(items))

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
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for item in batch:
            if item.future is not None:
                by_loop.setdefault(item.future.get_loop(), []).append(item.future)
        for loop, futures in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
                loop.call_soon_threadsafe(_settle, futures, error)

    def _commit(self, batch: list[Pending]) -> None:
        session: Session = self._factory()
        try:
            audits = [item.audit for item in batch]
            audit.append_entries(session, audits)
            rows = []
            for item in batch:
                if item.ledger:  # calls without a valid credential are audited only
                    item.ledger["audit_seq"] = item.audit["seq"]
                    rows.append(item.ledger)
            if rows:
                session.execute(insert(UsageEntry), rows)
            counts: dict[tuple[int, date], int] = {}
            for item in batch:
                grant_id = item.ledger.get("grant_id")
                if grant_id is not None and item.counted:
                    key = (grant_id, item.ledger["day"])
                    counts[key] = counts.get(key, 0) + 1
            totals = self._count(session, counts)
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
        self.counts.values.update(totals)
        self.batches += 1
        self.written += len(batch)

    def _count(
        self, session: Session, counts: dict[tuple[int, date], int]
    ) -> dict[tuple[int, date], int]:
        if not counts:
            return {}
        dialect = self.engine.dialect.name
        upsert: Callable[..., Any] = postgresql.insert if dialect == "postgresql" else sqlite.insert
        totals: dict[tuple[int, date], int] = {}
        # one statement per (grant, day): a batch rarely holds more than a few grants
        for (grant_id, day), n in sorted(counts.items()):
            stmt = upsert(GrantUsageDay).values(grant_id=grant_id, day=day, calls=n)
            stmt = stmt.on_conflict_do_update(
                index_elements=["grant_id", "day"],
                set_={"calls": GrantUsageDay.calls + stmt.excluded.calls},
            ).returning(GrantUsageDay.calls)
            totals[(grant_id, day)] = int(session.execute(stmt).scalar_one())
        return totals


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
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
