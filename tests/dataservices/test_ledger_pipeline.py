"""PostgreSQL: the writer process's pipelined commits (``ledger_pipeline.PipelinedCommits``).
Batches are chained after the head the writer expects and sent while the one before commits;
a batch whose expected head is not there (another writer moved it) is rolled back with those
behind it and committed again under the head's lock. Every call ends committed once and in
order, or failed, and the audit chain verifies."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, text

from govshare.audit import service as audit
from govshare.audit.models import AuditEntry
from govshare.audit.service import verify_engine
from govshare.dataservices import ledger
from govshare.dataservices.ledger_pipeline import Done, PipelinedCommits
from govshare.dataservices.models import UsageEntry
from govshare.principal import Principal
from tests.dataservices.conftest import Live
from tests.dataservices.test_writer_lookups import _records

pytestmark = pytest.mark.postgresql_only


class _Pipe:
    """A pipeline of two fresh writers, and calls numbered from the test's records."""

    def __init__(self, live: Live, tag: str) -> None:
        self.live = live
        self.ok, self.broken, self.plain = _records(live)
        self.tag = tag
        self.n = 0
        #: the calls submitted so far (the worker's call numbers)
        self.submitted = 0
        self.pipe = PipelinedCommits(
            ledger.LedgerWriter(live.engine), ledger.LedgerWriter(live.engine)
        )

    def calls(self, k: int, lookup: bool = True) -> list[ledger.Pending]:
        out = []
        for _ in range(k):
            self.n += 1
            rec = self.ok if lookup and self.n % 2 else self.plain
            out.append(ledger.call_pending(rec._replace(call_id=f"{self.tag}-{self.n}")))
        return out

    def submit(self, batch: list[ledger.Pending]) -> list[Done]:
        first = self.submitted + 1
        self.submitted += len(batch)
        return self.pipe.submit(list(range(first, self.submitted + 1)), batch)

    def close(self) -> None:
        self.pipe.writer.stop()
        self.pipe.reader.stop()


def _seqs(live: Live, batches: list[list[ledger.Pending]]) -> list[list[int]]:
    """The audit sequence numbers of each batch's calls, as committed."""
    with live.session() as s:
        rows = dict(s.execute(select(UsageEntry.call_id, UsageEntry.audit_seq)).all())
    out = []
    for batch in batches:
        ids = [item.record.call_id for item in batch if item.record is not None]
        assert all(i in rows for i in ids), f"not all of {ids} are in the ledger"
        out.append([rows[i] for i in ids])
    return out


def _in_order(seqs: list[list[int]]) -> bool:
    flat = [seq for batch in seqs for seq in batch]
    return flat == sorted(flat) and len(set(flat)) == len(flat)


def test_batches_commit_one_behind_another(live: Live) -> None:
    p = _Pipe(live, "pipe-order")
    batches = [p.calls(k) for k in (3, 5, 4, 6, 2)]
    done: list[Done] = []
    try:
        done += p.submit(batches[0])  # no head known yet: committed the plain way
        assert [d.ids for d in done] == [[1, 2, 3]]
        assert p.pipe.writer.tip is not None
        for batch in batches[1:]:
            done += p.submit(batch)
            assert len(p.pipe._sent) <= p.pipe.depth
        assert p.pipe.busy  # the last ones were sent and not awaited
        done += p.pipe.drain()
    finally:
        p.close()
    assert [d.error for d in done] == [None] * len(batches)
    assert [d.ids[-1] for d in done] == [3, 8, 12, 18, 20]  # answered in the calls' order
    assert p.pipe.replayed == 0
    seqs = _seqs(live, batches)
    assert _in_order(seqs)
    # the quota counts are the database's, after each batch
    totals = [sum(d.totals.values()) for d in done]
    assert totals == sorted(totals) and len(set(totals)) == len(totals)
    # the lookups were made on the reader's connection: their calls found their records
    looked_up = [item for batch in batches[1:] for item in batch if item.found is not None]
    assert looked_up and all(len(item.found or []) == 2 for item in looked_up)
    assert verify_engine(live.engine, workers=1).ok


def _move_the_head(live: Live) -> None:
    """Another writer's audit entry (the web application's, here) moves the chain's head."""
    with live.session() as s:
        audit.record(s, Principal.platform("test"), "test:pipeline:head-moved", "test", "1")
        s.commit()


def test_a_moved_head_rolls_back_and_replays_in_order(live: Live) -> None:
    p = _Pipe(live, "pipe-moved")
    first, second, third, fourth = (p.calls(k) for k in (2, 3, 4, 2))
    done: list[Done] = []
    try:
        done += p.submit(first)
        done += p.submit(second)
        done += p.pipe.drain()
        _move_the_head(live)
        done += p.submit(third)  # chained after a head that is no longer there
        done += p.submit(fourth)  # and this one behind it
        done += p.pipe.drain()
        fifth = p.calls(3)
        done += p.submit(fifth)  # the head is known again: pipelined
        assert p.pipe.busy
        done += p.pipe.drain()
    finally:
        p.close()
    assert [d.error for d in done] == [None] * 5
    assert [d.ids[-1] for d in done] == [2, 5, 9, 11, 14]
    assert p.pipe.replayed >= 1
    seqs = _seqs(live, [first, second, third, fourth, fifth])
    assert _in_order(seqs)
    with live.session() as s:
        moved = s.scalar(
            select(AuditEntry.seq).where(AuditEntry.action == "test:pipeline:head-moved")
        )
    assert moved is not None and seqs[1][-1] < moved < seqs[2][0]
    assert verify_engine(live.engine, workers=1).ok


def test_a_failed_batch_fails_alone(live: Live) -> None:
    """A batch the database refuses (a call id already in the ledger) fails; the batch sent
    behind it expected the head it would have left, and is committed again."""
    p = _Pipe(live, "pipe-failed")
    first, second = p.calls(2), p.calls(2)
    done: list[Done] = []
    try:
        done += p.submit(first)
        done += p.submit(second)
        done += p.pipe.drain()
        again = [ledger.call_pending(item.record) for item in first if item.record]  # type: ignore[arg-type]
        done += p.submit(again)
        after = p.calls(3)
        done += p.submit(after)
        done += p.pipe.drain()
    finally:
        p.close()
    errors = [d.error for d in done]
    assert errors[:2] == [None, None] and errors[3] is None
    assert errors[2] is not None and "UniqueViolation" in errors[2]
    assert _in_order(_seqs(live, [first, second, after]))
    assert verify_engine(live.engine, workers=1).ok


def test_a_failing_lookup_fails_only_its_call_in_the_pipeline(live: Live) -> None:
    p = _Pipe(live, "pipe-head")
    done: list[Done] = []
    try:
        done += p.submit(p.calls(1, lookup=False))  # the head is known from here on
        ok = p.ok._replace(call_id="pipe-lookup-ok")
        broken = p.broken._replace(call_id="pipe-lookup-broken")
        plain = p.plain._replace(call_id="pipe-lookup-plain")
        batch = [ledger.call_pending(rec) for rec in (ok, broken, plain)]
        done += p.submit(batch)
        done += p.pipe.drain()
    finally:
        p.close()
    assert [d.error for d in done] == [None, None]
    assert isinstance(batch[1].error, ledger.LookupFailed)
    assert batch[0].error is None and batch[2].error is None
    with live.session() as s:
        ids = set(
            s.scalars(select(UsageEntry.call_id).where(UsageEntry.call_id.like("pipe-lookup-%")))
        )
    assert ids == {"pipe-lookup-ok", "pipe-lookup-plain"}
    assert verify_engine(live.engine, workers=1).ok


def test_a_lost_connection_fails_the_batches_in_flight_and_the_next_commits(live: Live) -> None:
    p = _Pipe(live, "pipe-lost")
    done: list[Done] = []
    try:
        done += p.submit(p.calls(2))
        conn: Any = p.pipe.writer._connection()
        pid = conn.info.backend_pid
        with live.engine.connect() as other:  # the server drops the writer's connection
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            other.commit()
        lost = p.calls(2)
        done += p.submit(lost)
        done += p.pipe.drain()
        later = p.calls(2)
        done += p.submit(later)  # a new connection, the head read under its lock
        done += p.pipe.drain()
    finally:
        p.close()
    assert done[0].error is None
    assert done[1].error is not None and done[1].ids == [3, 4]
    assert done[-1].error is None and done[-1].ids == [5, 6]
    _seqs(live, [later])  # committed
    assert verify_engine(live.engine, workers=1).ok
