"""The SM3 hash chain: appending in the committing transaction, and finding tampering."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from govshare.audit import service
from govshare.audit.models import AuditEntry, AuditHead
from tests.audit.conftest import add_entries, seqs, tamper
from tests.conftest import platform


def entries(db: Session) -> list[AuditEntry]:
    db.expire_all()
    return list(db.scalars(select(AuditEntry).order_by(AuditEntry.seq)))


def rehash(db: Session, seq: int, **changes: object) -> None:
    """Rewrite entry ``seq`` with ``changes`` and a correctly recomputed own hash, as an
    attacker who knows the algorithm would."""
    e = next(x for x in entries(db) if x.seq == seq)
    values = {c: getattr(e, c) for c in service_fields()} | changes
    new_hash = service.entry_hash(**values)  # type: ignore[arg-type]
    sets = ", ".join(f"{k} = :{k}" for k in changes)
    tamper(
        db,
        f"UPDATE audit_entries SET {sets}, hash = :h WHERE seq = :seq",  # noqa: S608
        h=new_hash,
        seq=seq,
        **changes,
    )


def service_fields() -> list[str]:
    return [
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
    ]


# ---------------------------------------------------------------- appending


def test_two_commits_make_one_contiguous_chain(chain: Session) -> None:
    add_entries(chain, 3)
    add_entries(chain, 2, action="rules:calendar:edit")
    rows = entries(chain)
    assert [e.seq for e in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == service.GENESIS_HASH
    for before, after in itertools.pairwise(rows):
        assert after.prev_hash == before.hash
    for e in rows:
        assert len(e.hash) == 64
        assert e.hash == service.entry_hash(**{c: getattr(e, c) for c in service_fields()})
    head = chain.get(AuditHead, 1)
    assert head is not None
    chain.refresh(head)
    assert (head.last_seq, head.last_hash) == (5, rows[-1].hash)
    result = service.verify(chain)
    assert result.ok, result.reason
    assert result.checked == 5
    assert result.first_bad_seq is None
    assert result.message == "日志链完整，共校验 5 条"


def test_entry_records_the_actor_and_canonical_details(chain: Session) -> None:
    service.record(chain, platform(), "orgs:user:create", "user", 42, {"b": 1, "a": "张三"})
    chain.commit()
    (e,) = entries(chain)
    assert (e.actor_type, e.actor_name, e.role, e.ip) == (
        "system",
        "test",
        "authority",
        "127.0.0.1",
    )
    assert e.target_id == "42"
    assert e.details == '{"a":"张三","b":1}'
    assert json.loads(e.details) == {"a": "张三", "b": 1}


def test_sm3_is_the_standard_sm3() -> None:
    # GB/T 32905-2016 appendix A, example 1
    assert service.sm3_hex(b"abc") == (
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    )


def test_bad_action_code_is_refused(chain: Session) -> None:
    with pytest.raises(ValueError, match="domain:resource:action"):
        service.record(chain, platform(), "login", "user", 1)


def test_rollback_discards_queued_entries(chain: Session) -> None:
    service.record(chain, platform(), "orgs:user:update", "user", 1)
    chain.rollback()
    chain.commit()
    assert seqs(chain) == []
    service.record(chain, platform(), "orgs:user:update", "user", 2)
    chain.commit()
    assert [e.target_id for e in entries(chain)] == ["2"]


def test_closing_without_commit_discards_queued_entries(chain: Session) -> None:
    chain.execute(text("SELECT 1"))
    service.record(chain, platform(), "orgs:user:update", "user", "never")
    chain.close()  # (this also undoes the emptying of the chain: count, don't compare)
    add_entries(chain, 1)
    never = text("SELECT count(*) FROM audit_entries WHERE target_id = 'never'")
    assert chain.execute(never).scalar_one() == 0
    assert service.verify(chain).ok


def test_savepoint_rollback_discards_only_what_was_queued_inside(chain: Session) -> None:
    service.record(chain, platform(), "orgs:user:update", "user", "kept-1")
    nested = chain.begin_nested()
    service.record(chain, platform(), "orgs:user:update", "user", "dropped")
    nested.rollback()
    service.record(chain, platform(), "orgs:user:update", "user", "kept-2")
    chain.commit()
    assert [e.target_id for e in entries(chain)] == ["kept-1", "kept-2"]
    assert service.verify(chain).ok


def test_empty_chain_verifies(chain: Session) -> None:
    result = service.verify(chain)
    assert (result.ok, result.checked) == (True, 0)


# ---------------------------------------------------------------- tampering


def test_changed_details_are_found(chain: Session) -> None:
    add_entries(chain, 5)
    tamper(chain, "UPDATE audit_entries SET details = :d WHERE seq = 3", d='{"i":99}')
    result = service.verify(chain)
    assert not result.ok
    assert result.first_bad_seq == 3
    assert result.checked == 2
    assert "第 3 条日志内容被修改" in result.reason


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("actor_name", "别人"),
        ("actor_id", 999),
        ("department_id", 5),
        ("ip", "10.0.0.1"),
        ("action", "orgs:user:create"),
        ("target_id", "7"),
        ("role", "operator"),
    ],
)
def test_any_changed_field_is_found(chain: Session, column: str, value: object) -> None:
    add_entries(chain, 4)
    tamper(chain, f"UPDATE audit_entries SET {column} = :v WHERE seq = 2", v=value)  # noqa: S608
    result = service.verify(chain)
    assert (result.ok, result.first_bad_seq) == (False, 2)


def test_changed_time_is_found(chain: Session) -> None:
    add_entries(chain, 4)
    e = entries(chain)[1]
    tamper(
        chain,
        "UPDATE audit_entries SET occurred_at = :t WHERE seq = 2",
        t=e.occurred_at - timedelta(microseconds=1),
    )
    assert service.verify(chain).first_bad_seq == 2


def test_deleted_middle_entry_is_reported_as_missing(chain: Session) -> None:
    add_entries(chain, 6)
    tamper(chain, "DELETE FROM audit_entries WHERE seq = 4")
    result = service.verify(chain)
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 4, 3)
    assert "第 4 条日志缺失" in result.reason


def test_deleted_first_entry_is_reported(chain: Session) -> None:
    add_entries(chain, 3)
    tamper(chain, "DELETE FROM audit_entries WHERE seq = 1")
    assert service.verify(chain).first_bad_seq == 1


def test_deleted_last_entry_is_found_through_the_head(chain: Session) -> None:
    add_entries(chain, 5)
    tamper(chain, "DELETE FROM audit_entries WHERE seq = 5")
    result = service.verify(chain)
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 5, 4)
    assert "第 5 条及之后的日志缺失" in result.reason


def test_rewritten_entry_with_recomputed_hash_breaks_the_next_link(chain: Session) -> None:
    add_entries(chain, 6)
    rehash(chain, 3, details='{"i":"forged"}')
    result = service.verify(chain)
    assert not result.ok
    assert result.first_bad_seq == 3
    assert "第 3 条与第 4 条日志之间的链接断开" in result.reason
    assert result.checked == 3


def test_relinked_entry_with_recomputed_hash_is_found(chain: Session) -> None:
    """An entry whose prev_hash and hash were both rewritten consistently: the broken link
    is reported at the earlier of the two entries it joins."""
    add_entries(chain, 6)
    rehash(chain, 4, prev_hash="f" * 64)
    result = service.verify(chain)
    assert (result.ok, result.first_bad_seq) == (False, 3)
    assert "第 3 条与第 4 条" in result.reason


def test_first_entry_relinked_is_found(chain: Session) -> None:
    add_entries(chain, 3)
    rehash(chain, 1, prev_hash="a" * 64)
    result = service.verify(chain)
    assert (result.ok, result.first_bad_seq) == (False, 1)
    assert "创世哈希" in result.reason


def test_rewritten_last_entry_is_found_through_the_head(chain: Session) -> None:
    add_entries(chain, 4)
    rehash(chain, 4, actor_name="别人")
    result = service.verify(chain)
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 4, 4)
    assert "最后一条" in result.reason


def test_forged_entry_appended_beyond_the_head_is_found(chain: Session) -> None:
    add_entries(chain, 3)
    last = entries(chain)[-1]
    values = {c: getattr(last, c) for c in service_fields()} | {"seq": 4, "prev_hash": last.hash}
    forged = service.entry_hash(**values)  # type: ignore[arg-type]
    chain.execute(
        text(
            "INSERT INTO audit_entries (seq, occurred_at, actor_type, actor_id, actor_name, "
            "role, department_id, action, target_type, target_id, ip, details, prev_hash, hash) "
            "SELECT 4, occurred_at, actor_type, actor_id, actor_name, role, department_id, "
            "action, target_type, target_id, ip, details, :p, :h FROM audit_entries WHERE seq = 3"
        ),
        {"p": last.hash, "h": forged},
    )
    result = service.verify(chain)
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert "不在链头记录之内" in result.reason


def test_progress_is_reported_per_batch(chain: Session) -> None:
    add_entries(chain, 3)
    seen: list[tuple[int, int]] = []
    result = service.verify(chain, batch=1, progress=lambda done, total: seen.append((done, total)))
    assert result.ok
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_values_are_fitted_to_their_columns(chain: Session) -> None:
    """PostgreSQL refuses NUL characters and over-long text: an entry must never fail the
    transaction it records."""
    service.record(chain, platform(), "orgs:access:denied", "path", "/a\x00b" + "x" * 300)
    chain.commit()
    (e,) = entries(chain)
    assert e.target_id.startswith("/a\ufffdb")
    assert len(e.target_id) == 128
    assert e.target_id.endswith("…")
    assert service.verify(chain).ok
