"""The writer builds a call's ledger row and audit entry straight from its record
(``ledger._call_rows``): the rows, hashes and quota counts must be exactly those of the
general path (``pending_of``, whose dicts exports amend), on both databases' row shapes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from govshare.audit import service as audit
from govshare.dataservices import ledger
from govshare.dataservices.ledger import CallRecord

ACTOR = ("credential", 7, "社会救助信息系统", "app", 3, "10.0.0.8")
SERVICE = (11, 5, 2)
GRANT = (21, "核验最低生活保障申请人的身份信息", "社会救助申请人身份核验", "公安局 审核人")


def _record(i: int, **changes: object) -> CallRecord:
    rec = CallRecord(
        occurred_at=datetime(2026, 11, 22, 15, 59, 59, 999_000 + i % 1000, tzinfo=UTC)
        + timedelta(seconds=i),
        call_id=f"c{i:08d}",
        target_id=11,
        method="verification",
        outcome="ok",
        reason="",
        ip="10.0.0.8",
        actor=ACTOR,
        ledgered=True,
        calling_system="社会救助信息系统",
        calling_user="王秀英",
        service=SERVICE,
        grant=GRANT,
        items=("name", "birth_date"),
        subjects=("110101199003070018",),
        volume=1,
        counted=True,
    )
    return rec._replace(**changes)


def _odd_text(rng: random.Random, n: int) -> str:
    """Text with what JSON encoders treat differently: controls, quotes, backslashes,
    non-ASCII, line separators, astral characters."""
    pool = [chr(c) for c in range(0, 0x30)] + ['"', "\\", "/", "\u2028", "\u2029", "\x7f"]
    pool += ["é", "张", "𠀀", "\ufeff", "\u00a0", "a", "Z", " "]
    return "".join(rng.choice(pool) for _ in range(n))


def _records() -> list[CallRecord]:
    rng = random.Random(6)
    recs = [
        _record(0),
        _record(1, outcome="not_found", volume=0),
        _record(2, outcome="refused", reason="无有效共享授权", counted=False, grant=None),
        _record(3, service=None, grant=None, outcome="refused", reason="共享服务不存在"),
        _record(4, subjects=tuple(f"1101011990030700{k:02d}" for k in range(120)), volume=90),
        _record(5, calling_user="x" * 300, calling_system="y" * 200, reason="z" * 900),
        _record(6, ip="2001:db8::" + "f" * 80),
        _record(7, items=(), subjects=(), volume=0),
        _record(
            8,
            ledgered=False,
            actor=("anonymous", None, "匿名访问", "", None, "10.0.0.9"),
            service=None,
            grant=None,
            outcome="refused",
            reason="请使用应用凭证调用",
            calling_system="",
            calling_user="",
            items=(),
            subjects=(),
            volume=0,
            counted=False,
        ),
        _record(9, actor=("user", 4, "张" * 200 + "\x00", "r" * 40, None, "1" * 70)),
        _record(10, occurred_at=datetime(2026, 11, 22, 23, 0, tzinfo=timezone(timedelta(hours=8)))),
        _record(11, occurred_at=datetime(2026, 11, 22, 16, 0, 0, tzinfo=UTC)),  # no microseconds
        _record(12, method="query", outcome="limited", reason="超出日限额", counted=False),
    ]
    for i in range(13, 60):
        recs.append(
            _record(
                i,
                calling_user=_odd_text(rng, rng.randint(1, 40)),
                reason=_odd_text(rng, rng.randint(0, 30)),
                items=tuple(_odd_text(rng, 5) for _ in range(rng.randint(0, 3))),
            )
        )
    return recs


@pytest.mark.parametrize("pg", [False, True], ids=["sqlite", "postgresql"])
@pytest.mark.parametrize("head", [None, (200, "ab" * 32)], ids=["new-chain", "after-head"])
def test_rows_from_the_record_equal_the_general_path(pg: bool, head: tuple | None) -> None:
    recs = _records()
    if head is not None:
        head = (head[0] + len(recs), head[1])
    general = ledger._chain([ledger.pending_of(r) for r in recs], head, pg)
    direct = ledger._chain([ledger.call_pending(r) for r in recs], head, pg)
    assert direct == general
    audit_rows, ledger_rows, counts, _tip = direct
    assert len(audit_rows) == len(recs)
    assert len(ledger_rows) == len(recs) - 1  # the unauthenticated call is audited only
    assert sum(counts.values()) == sum(1 for r in recs if r.grant and r.counted and r.ledgered)


def test_a_resolved_lookup_is_built_with_what_it_found() -> None:
    rec = _record(0, outcome="ok", volume=0, lookup=("SELECT 1", ("K1", "K2", "K1")))
    item = ledger.call_pending(rec)
    ledger.resolve(item, {"K1": ("K1", "张三")})
    assert item.found == [("K1", "张三")]
    (audit_row,), (ledger_row,), _, _ = ledger._chain([item], None, False)
    columns = dict(zip(ledger.LEDGER_COLUMNS, ledger_row, strict=True))
    assert (columns["outcome"], columns["volume"]) == ("ok", 1)
    assert '"outcome":"ok"' in audit_row[11]
    assert '"volume":1' in audit_row[11]

    missing = ledger.call_pending(rec)
    ledger.resolve(missing, {})
    (_,), (ledger_row,), _, _ = ledger._chain([missing], None, False)
    assert ledger_row[ledger.LEDGER_COLUMNS.index("outcome")] == "not_found"


def test_details_text_is_the_canonical_json() -> None:
    rng = random.Random(7)
    for _ in range(500):
        details = {
            "call_id": _odd_text(rng, 8),
            "user": _odd_text(rng, rng.randint(0, 30)),
            "items": [_odd_text(rng, 4) for _ in range(rng.randint(0, 3))],
            "grant_id": rng.choice([None, 1, 2**40]),
            "volume": rng.randint(0, 10**6),
        }
        assert ledger._details_json(details) == audit.canonical_json(details)
    lone = {"user": "\ud800", "call_id": "x"}  # orjson refuses it: the canonical encoder
    assert ledger._details_json(lone) == audit.canonical_json(lone)


def test_utc_text_matches_the_audit_and_sqlite_formats() -> None:
    for ts in (
        datetime(2026, 11, 22, 16, 0, tzinfo=UTC),
        datetime(2026, 11, 22, 16, 0, 0, 1, tzinfo=UTC),
        datetime(2026, 1, 1, 7, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=8))),
    ):
        text = ledger._utc_text(ts)
        assert text + "Z" == audit.format_ts(ts)
        assert text.replace("T", " ") == ledger._sqlite_ts(ts)
