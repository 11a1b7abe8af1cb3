"""``govshare audit``: verify, purge and tail against a database of their own, and the
parallel verifier agreeing with the single walk."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, delete, insert, select, text, update
from sqlalchemy.orm import Session

from govshare import migrate
from govshare.audit import service
from govshare.audit.models import AuditEntry
from govshare.db import make_engine, utcnow
from tests.audit.conftest import clock
from tests.conftest import platform, run_cli


def govshare(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, url=url)


@pytest.fixture
def upgraded(fresh_db_url: str) -> Iterator[tuple[str, Engine]]:
    """A database after ``govshare db upgrade`` (which records seeding the calendar)."""
    r = govshare(fresh_db_url, "db", "upgrade")
    assert r.returncode == 0, r.stderr
    engine = make_engine(fresh_db_url)
    yield fresh_db_url, engine
    engine.dispose()


def sql(engine: Engine, statement: str, **params: Any) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def test_verify_counts_then_names_the_altered_entry(upgraded: tuple[str, Engine]) -> None:
    url, engine = upgraded
    r = govshare(url, "audit", "verify")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "日志链完整：已校验 1 条"
    r = govshare(url, "audit", "verify")  # the first verify is itself in the log now
    assert r.stdout.strip() == "日志链完整：已校验 2 条"
    sql(engine, "UPDATE audit_entries SET details = '{}' WHERE seq = 2")
    r = govshare(url, "audit", "verify")
    assert r.returncode == 1
    assert "日志链被破坏：第 2 条：" in r.stdout
    assert "第 2 条日志内容被修改" in r.stdout
    assert "在此之前已校验通过 1 条" in r.stdout


def test_verify_finds_a_deleted_entry_and_reports_json(upgraded: tuple[str, Engine]) -> None:
    url, engine = upgraded
    for _ in range(3):
        assert govshare(url, "audit", "verify").returncode == 0
    sql(engine, "DELETE FROM audit_entries WHERE seq = 2")
    r = govshare(url, "audit", "verify", "--json")
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert (out["ok"], out["first_bad_seq"], out["checked"]) == (False, 2, 1)
    assert "第 2 条日志缺失" in out["reason"]


def test_verify_finds_a_deleted_last_entry(upgraded: tuple[str, Engine]) -> None:
    url, engine = upgraded
    assert govshare(url, "audit", "verify").returncode == 0
    sql(engine, "DELETE FROM audit_entries WHERE seq = 2")
    r = govshare(url, "audit", "verify")
    assert r.returncode == 1
    assert "第 2 条及之后的日志缺失" in r.stdout


def test_purge_refuses_inside_retention(upgraded: tuple[str, Engine]) -> None:
    url, _ = upgraded
    r = govshare(url, "audit", "purge", "--before", str(utcnow().date()), "--yes")
    assert r.returncode == 1
    assert "至少保留 6 个月" in r.stderr
    r = govshare(url, "audit", "purge", "--before", "2026-02-30", "--yes")
    assert r.returncode == 1
    assert "日期 2026-02-30 无效" in r.stderr


def test_purge_old_entries_then_verify(
    upgraded: tuple[str, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, engine = upgraded
    # make the whole log so far old: re-create it 400 days back, consistently chained
    with Session(engine) as s:
        s.execute(delete(AuditEntry))
        s.execute(text("UPDATE audit_head SET last_seq = 0, last_hash = :g"), {"g": "0" * 64})
        with clock(monkeypatch, utcnow() - timedelta(days=400)):
            for i in range(5):
                service.record(s, platform(), "orgs:user:update", "user", i)
        s.commit()
    before = service.add_months(utcnow().astimezone(service.LOCAL_TZ), -7).date()
    r = govshare(url, "audit", "purge", "--before", str(before), "--yes")
    assert r.returncode == 0, r.stderr
    assert "已清理 5 条日志（至第 5 条）" in r.stdout
    r = govshare(url, "audit", "verify")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "日志链完整：已校验 1 条（从清理检查点之后的第 6 条起）"


def test_tail_prints_the_latest_entries(upgraded: tuple[str, Engine]) -> None:
    url, _ = upgraded
    assert govshare(url, "audit", "verify").returncode == 0
    r = govshare(url, "audit", "tail", "-n", "1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1
    fields = lines[0].split("\t")
    assert fields[0] == "2"
    assert fields[2] == "govshare audit verify"
    assert fields[4] == "校验日志链（audit:log:verify）"
    r = govshare(url, "audit", "tail")
    assert [line.split("\t")[0] for line in r.stdout.strip().splitlines()] == ["1", "2"]
    assert "载入工作日历（rules:calendar:seed）" in r.stdout


# ---------------------------------------------------------------- parallel verify


@pytest.fixture
def big(fresh_db_url: str) -> Iterator[Engine]:
    """120 committed entries in a database of their own."""
    engine = make_engine(fresh_db_url)
    migrate.upgrade(engine)
    with Session(engine) as s:
        for i in range(120):
            service.record(s, platform(), "orgs:user:update", "user", i, {"i": i})
            if i % 40 == 39:
                s.commit()
    yield engine
    engine.dispose()


def both(engine: Engine) -> service.VerifyResult:
    """Verify with worker processes over 12 ranges and in one walk; they must agree."""
    serial = service.verify_engine(engine, workers=1)
    parallel = service.verify_engine(engine, workers=2)
    assert parallel == serial
    return parallel


def test_parallel_verify_agrees_with_the_single_walk(
    big: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "PARALLEL_MIN_ENTRIES", 1)
    monkeypatch.setattr(service, "PARALLEL_MIN_RANGE", 10)
    seen: list[int] = []
    r = service.verify_engine(big, workers=2, progress=lambda done, total: seen.append(done))
    assert (r.ok, r.checked) == (True, 120)
    assert seen[-1] == 120
    assert len(seen) == 12
    assert both(big) == service.VerifyResult(True, 120)

    with big.connect() as conn:
        saved = {
            seq: dict(conn.execute(select(AuditEntry).where(AuditEntry.seq == seq)).one()._mapping)
            for seq in (30, 31, 57, 120)
        }

    def restore(seq: int) -> None:
        with big.begin() as conn:
            conn.execute(delete(AuditEntry).where(AuditEntry.seq == seq))
            conn.execute(insert(AuditEntry), [saved[seq]])

    # the first entry of a range (31), one inside a range (57), the last one (120)
    for seq in (31, 57, 120):
        sql(big, "DELETE FROM audit_entries WHERE seq = :s", s=seq)
        r = both(big)
        assert (r.ok, r.first_bad_seq, r.checked) == (False, seq, seq - 1)
        restore(seq)
    # content changed at the last entry of a range
    sql(big, "UPDATE audit_entries SET target_id = 'x' WHERE seq = 30")
    assert both(big).first_bad_seq == 30
    restore(30)
    # rewritten with a recomputed hash at the end of a range: the link 30 -> 31 breaks
    e = saved[30] | {"details": '{"i":"forged"}'}
    forged = service.entry_hash(**{k: v for k, v in e.items() if k != "hash"})
    with big.begin() as conn:
        conn.execute(
            update(AuditEntry).where(AuditEntry.seq == 30).values(details=e["details"], hash=forged)
        )
    r = both(big)
    assert (r.first_bad_seq, r.checked) == (30, 30)
    assert "第 30 条与第 31 条" in r.reason
    restore(30)
    assert both(big).ok
