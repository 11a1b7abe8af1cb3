"""Record lookups done by the ledger writer: a call's records are read inside the transaction
that commits it (on PostgreSQL in the round trip that begins the commit), its outcome and
volume are what that lookup found, and a lookup that fails fails only its own call, which is
ledgered as a call that failed (outcome ``error``). The answers and ledger rows must be the
same on both databases."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import psycopg
import pytest
from psycopg.adapt import Transformer
from sqlalchemy import func, select, text

from govshare.audit.models import AuditEntry
from govshare.audit.service import verify_engine
from govshare.dataservices import gateway as gw
from govshare.dataservices import ledger
from govshare.dataservices.ledger_process import WriterProcess
from govshare.dataservices.models import UsageEntry
from govshare.db import utcnow
from tests.dataservices.conftest import Live, headers, person_key


def _ledger_row(live: Live, call_id: str) -> UsageEntry:
    with live.session() as s:
        row = s.scalar(select(UsageEntry).where(UsageEntry.call_id == call_id))
        assert row is not None, f"call {call_id} is not in the ledger"
        return row


def test_volume_is_the_distinct_records_found(live: Live) -> None:
    consumer, token = live.consumer()
    live.grant(consumer, ["id_number", "name"], ["verification", "query"])
    unknown = "41130219600101999X"
    with live.client() as client:
        r = client.post(
            f"/api/v1/dataservices/{live.service_id}/query",
            json={"keys": [person_key(11), person_key(11), person_key(12), unknown]},
            headers=headers(token),
        )
        assert r.status_code == 200, r.text
        assert [rec["name"] for rec in r.json()["records"]] == ["李11", "李12"]
        queried = _ledger_row(live, r.headers["X-Govshare-Call-Id"])
        assert (queried.outcome, queried.volume, queried.subject_count) == ("ok", 2, 4)

        r = client.post(
            f"/api/v1/dataservices/{live.service_id}/verify",
            json={"key": unknown, "claims": {"name": "李11"}},
            headers=headers(token),
        )
        assert r.status_code == 200, r.text
        assert r.json()["results"] == {"name": "no_record"}
        missing = _ledger_row(live, r.headers["X-Govshare-Call-Id"])
        assert (missing.outcome, missing.volume) == ("not_found", 0)

        r = client.post(
            f"/api/v1/dataservices/{live.service_id}/query",
            json={"key": unknown},
            headers=headers(token),
        )
        assert r.status_code == 200, r.text
        assert r.json()["records"] == []
        assert _ledger_row(live, r.headers["X-Govshare-Call-Id"]).outcome == "not_found"


def test_a_key_with_a_nul_character_is_refused(live: Live) -> None:
    consumer, token = live.consumer()
    live.grant(consumer, ["id_number", "name"], ["verification"])
    with live.client() as client:
        r = client.post(
            f"/api/v1/dataservices/{live.service_id}/verify",
            json={"key": person_key(1) + "\x00", "claims": {"name": "李1"}},
            headers=headers(token),
        )
    assert r.status_code == 422, r.text
    assert _ledger_row(live, r.headers["X-Govshare-Call-Id"]).outcome == "refused"


def test_a_call_whose_lookup_fails_is_answered_500_and_ledgered(live: Live) -> None:
    """The data table cannot be read (here it is renamed away for a moment): the call is
    answered as a server error with its call id, and ledgered as a call that failed; once
    the table is back, calls are served again."""
    consumer, token = live.consumer()
    live.grant(consumer, ["id_number", "name"], ["verification"])
    with live.session() as s:
        view = gw.load_service_view(s, live.service_id)
    assert view is not None
    body = {"key": person_key(5), "claims": {"name": "李5"}}
    with live.client() as client:
        with live.engine.begin() as conn:
            conn.execute(text(f'ALTER TABLE "{view.table}" RENAME TO "{view.table}_away"'))
        try:
            r = client.post(
                f"/api/v1/dataservices/{live.service_id}/verify", json=body, headers=headers(token)
            )
        finally:
            with live.engine.begin() as conn:
                conn.execute(text(f'ALTER TABLE "{view.table}_away" RENAME TO "{view.table}"'))
        assert r.status_code == 500, r.text
        assert r.json()["error"]["code"] == "server_error"
        assert "已记入使用台账" in r.json()["error"]["message"]
        failed = _ledger_row(live, r.headers["X-Govshare-Call-Id"])
        assert (failed.outcome, failed.volume, failed.consumer_department_id) == (
            "error",
            0,
            consumer,
        )
        assert failed.reason == ledger.LOOKUP_FAILED_REASON
        # the gateway caches the service's SQL: the same call is served once the table is back
        gw.gateway(live.engine).forget()
        r = client.post(
            f"/api/v1/dataservices/{live.service_id}/verify", json=body, headers=headers(token)
        )
        assert r.status_code == 200, r.text
        assert r.json()["results"] == {"name": "match"}


def _records(live: Live) -> tuple[ledger.CallRecord, ledger.CallRecord, ledger.CallRecord]:
    """Three served calls of one consumer: a lookup of a known and an unknown person, a
    lookup whose statement fails (its table is gone), and a call without a lookup."""
    consumer, _token = live.consumer()
    grant_id = live.grant(consumer, ["id_number", "name"], ["query"])
    with live.session() as s:
        view = gw.load_service_view(s, live.service_id)
    assert view is not None
    good = gw.gateway(live.engine)._sql(view, ["name"], "any", 0)
    broken = good.replace(f'FROM "{view.table}"', 'FROM "data_no_such_table"')
    assert broken != good

    def record(n: int, lookup: tuple[str, tuple[str, ...]] | None) -> ledger.CallRecord:
        return ledger.CallRecord(
            utcnow(),
            f"writer-lookup-{consumer}-{n}",
            live.service_id,
            "query",
            "ok",
            "",
            "127.0.0.1",
            ("credential", None, "测试业务系统", "system", consumer, "127.0.0.1"),
            True,
            "测试业务系统",
            "张三",
            (view.id, view.entry_id, view.provider_department_id),
            (grant_id, "测试用途", "测试场景", "测试审核人"),
            ("name",),
            lookup[1] if lookup else (),
            1,
            True,
            lookup,
        )

    keys = (person_key(21), "41130219600101999X", person_key(22))
    return (
        record(1, (good, keys)),
        record(2, (broken, (person_key(23),))),
        record(3, None),
    )


def _check_committed(live: Live, found: Any, call_ids: list[str], failed: str | None) -> None:
    """The calls are in the ledger, each with its audit entry; the first found two of its
    three keys; ``failed``, whose lookup failed, is ledgered as a call that failed."""
    assert [row[1] for row in found] == ["李21", "李22"]
    rows = {call_id: _ledger_row(live, call_id) for call_id in call_ids}
    first = rows[call_ids[0]]
    assert (first.outcome, first.volume, first.subject_count) == ("ok", 2, 3)
    if failed is not None:
        row = _ledger_row(live, failed)
        assert (row.outcome, row.volume, row.subject_count) == ("error", 0, 1)
        assert row.reason == ledger.LOOKUP_FAILED_REASON
        rows[failed] = row
    with live.session() as s:
        entries = s.scalars(
            select(AuditEntry).where(AuditEntry.seq.in_([r.audit_seq for r in rows.values()]))
        ).all()
        assert len(entries) == len(rows)
        assert {e.target_id for e in entries} == {str(live.service_id)}
        if failed is not None:
            (entry,) = [e for e in entries if failed in e.details]
            assert '"outcome":"error"' in entry.details
            assert "data_no_such_table" not in entry.details  # the database's message: log only
    result = verify_engine(live.engine, workers=1)
    assert result.ok, result


def test_a_failing_lookup_fails_only_its_call(live: Live) -> None:
    ok, broken, plain = _records(live)
    items = [ledger.pending_of(rec) for rec in (ok, broken, plain)]
    writer = ledger.LedgerWriter(live.engine)
    try:
        totals = writer.commit(items)
    finally:
        writer.stop()
    assert isinstance(items[1].error, ledger.LookupFailed)
    assert "data_no_such_table" in str(items[1].error)
    assert items[0].error is None
    assert items[2].found is None
    # the two served calls count towards the grant's quota, the failed one does not
    (grant_id,) = {rec.grant[0] for rec in (ok, broken, plain) if rec.grant}
    with live.session() as s:
        served = s.scalar(
            select(func.count())
            .select_from(UsageEntry)
            .where(UsageEntry.grant_id == grant_id, UsageEntry.outcome.in_(("ok", "not_found")))
        )
    assert sum(totals.values()) == served == 2
    _check_committed(live, items[0].found, [ok.call_id, plain.call_id], broken.call_id)


def test_the_writer_process_answers_with_what_it_found(live: Live) -> None:
    ok, broken, plain = _records(live)

    async def run() -> list[Any]:
        counts: dict[tuple[int, date], int] = {}
        process = WriterProcess(live.engine.url.render_as_string(hide_password=False), counts)
        assert process.start(asyncio.get_running_loop())
        try:
            calls = [process.write([rec]) for rec in (ok, broken, plain)]
            return await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await process.stop()

    got_ok, got_broken, got_plain = asyncio.run(run())
    assert isinstance(got_broken, ledger.LookupFailed), got_broken
    assert got_plain == [None]
    assert isinstance(got_ok, list)
    _check_committed(live, got_ok[0], [ok.call_id, plain.call_id], broken.call_id)


def test_writers_prepare_their_statements_on_each_connection(live: Live) -> None:
    """PostgreSQL: a writer prepares its statements on every connection it opens, under names
    of its own (a pooled connection may still hold an earlier writer's); one after another,
    and after losing its connection, writers commit their calls."""
    ok, _broken, plain = _records(live)
    first = ledger.LedgerWriter(live.engine)
    items = [ledger.pending_of(ok)]
    try:
        first.commit(items)
        first._drop_connection()  # a new connection: prepared again
        first.commit([ledger.pending_of(plain)])
    finally:
        first.stop()
    second = ledger.LedgerWriter(live.engine)
    again = ok._replace(call_id=ok.call_id + "-again")
    more = [ledger.pending_of(again)]
    try:
        second.commit(more)
    finally:
        second.stop()
    assert items[0].found == more[0].found
    _check_committed(live, items[0].found, [ok.call_id, plain.call_id, again.call_id], None)


def test_keys_with_quotes_commas_and_braces_are_looked_up_as_given(live: Live) -> None:
    """The writer sends the keys as an array parameter (PostgreSQL) or a JSON array (SQLite):
    a key with the array syntax's own characters is one key, never split nor altered."""
    consumer, token = live.consumer()
    live.grant(consumer, ["id_number", "name"], ["query"])
    odd = ['A"B', "C\\D", "E,F", "{G}", "NULL", "H I", "张三"]
    with live.client() as client:
        r = client.post(
            f"/api/v1/dataservices/{live.service_id}/query",
            json={"keys": [*odd, person_key(31)]},
            headers=headers(token),
        )
    assert r.status_code == 200, r.text
    assert [rec["name"] for rec in r.json()["records"]] == ["李31"]
    row = _ledger_row(live, r.headers["X-Govshare-Call-Id"])
    assert (row.outcome, row.volume, row.subject_count) == ("ok", 1, len(odd) + 1)


@pytest.mark.postgresql_only
def test_array_parameters_reach_postgresql_unchanged(live: Live) -> None:
    keys = ['A"B', "C\\D", 'E,"F', "{G}", " H ", "NULL", "张三", "", "\\\\"]
    proxy = live.engine.raw_connection()
    try:
        conn: Any = proxy.driver_connection
        conn.autocommit = True
        (res,) = ledger._pipeline(
            conn.pgconn, [(None, b"SELECT $1::text[]", [ledger._pg_array(keys)])]
        )
        loader = Transformer(conn)
        loader.set_pgresult(res)
        assert loader.load_rows(0, res.ntuples, tuple) == [(keys,)]
    finally:
        proxy.close()


@pytest.mark.postgresql_only
def test_a_failed_commit_leaves_the_writer_able_to_commit(live: Live) -> None:
    """A batch the database refuses (here a call id already in the ledger) raises its
    error; the writer drops that connection and commits the next batch on a new one, and
    the audit chain has no entry of the refused batch."""
    ok, _broken, plain = _records(live)
    writer = ledger.LedgerWriter(live.engine)
    try:
        writer.commit([ledger.call_pending(plain)])
        with pytest.raises(psycopg.errors.UniqueViolation):
            writer.commit([ledger.call_pending(ok), ledger.call_pending(plain)])
        items = [ledger.call_pending(ok)]
        writer.commit(items)
    finally:
        writer.stop()
    _check_committed(live, items[0].found, [ok.call_id, plain.call_id], None)


@pytest.mark.postgresql_only
def test_the_writer_statements_are_planned_once(live: Live) -> None:
    """PostgreSQL would plan the lookup again at every execution (a custom plan for each key
    array): the writer's connection uses the generic plans of its prepared statements."""
    ok, _broken, plain = _records(live)
    writer = ledger.LedgerWriter(live.engine)
    try:
        for n in range(8):
            calls = [ok._replace(call_id=f"{ok.call_id}-plan-{n}"), plain._replace(call_id=f"p{n}")]
            writer.commit([ledger.call_pending(rec) for rec in calls])
        conn = writer._connection()
        plans = conn.execute(
            "SELECT name, generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE name LIKE %s",
            [writer._prefix + "%"],
        ).fetchall()
    finally:
        writer.stop()
    names = {name.removeprefix(writer._prefix) for name, _, _ in plans}
    assert {"audit", "ledger", "bump", "tip", "count", "lookup_1"} <= names
    assert [(name, custom) for name, _, custom in plans if custom] == [], plans


def test_a_pass_sends_its_calls_to_the_writer_process_in_groups(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calls written in one loop pass go to the writer process in frames of SEND_EVERY as
    they come (the child starts on the first while the worker handles the rest), and every
    one of them is committed and answered."""
    from govshare.dataservices import ledger_process

    _ok, _broken, plain = _records(live)
    sent: list[int] = []
    frame = ledger_process._frame

    def spy(value: Any) -> bytes:
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], list):
            sent.append(len(value[1]))
        return frame(value)

    monkeypatch.setattr(ledger_process, "_frame", spy)
    n = 2 * ledger_process.SEND_EVERY + 3
    calls = [plain._replace(call_id=f"{plain.call_id}-group-{i}") for i in range(n)]

    async def run() -> list[Any]:
        process = WriterProcess(live.engine.url.render_as_string(hide_password=False), {})
        assert process.start(asyncio.get_running_loop())
        try:
            return await asyncio.gather(*(process.write([rec]) for rec in calls))
        finally:
            await process.stop()

    assert asyncio.run(run()) == [[None]] * n
    every = ledger_process.SEND_EVERY
    assert sent == [every, every, 3]
    with live.session() as s:
        ids = [c.call_id for c in calls]
        assert len(s.scalars(select(UsageEntry.id).where(UsageEntry.call_id.in_(ids))).all()) == n
