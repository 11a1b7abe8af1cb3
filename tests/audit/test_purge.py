"""Purging entries older than the retention period leaves a verifiable chain."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from govshare.audit import service
from govshare.audit.models import AuditCheckpoint, AuditEntry
from govshare.db import utcnow
from govshare.errors import PermissionDenied, ValidationFailed
from govshare.permissions import Role
from govshare.rules import service as rules_service
from tests.audit.conftest import add_entries, clock, seqs, tamper
from tests.conftest import Factory, platform


def months_ago(months: int) -> date:
    return service.add_months(utcnow().astimezone(service.LOCAL_TZ), -months).date()


@pytest.fixture
def aged(chain: Session, monkeypatch: pytest.MonkeyPatch) -> Session:
    """Entries 1-3 from 400 days ago, 4-5 from 100 days ago, 6-7 from now."""
    with clock(monkeypatch, utcnow() - timedelta(days=400)):
        add_entries(chain, 3)
    with clock(monkeypatch, utcnow() - timedelta(days=100)):
        add_entries(chain, 2)
    add_entries(chain, 2)
    return chain


def test_purge_deletes_the_old_prefix_and_leaves_a_checkpoint(aged: Session) -> None:
    before = months_ago(7)
    cp = service.purge_before_date(aged, platform(), before)
    aged.commit()
    assert cp is not None
    assert (cp.last_seq, cp.entries_purged, cp.created_by) == (3, 3, "test")
    assert cp.purged_before == service.local_midnight(before)
    assert cp.hash == service.checkpoint_hash(cp)
    assert seqs(aged) == [4, 5, 6, 7, 8]
    purge_entry = aged.get(AuditEntry, 8)
    assert purge_entry is not None
    assert purge_entry.action == "audit:log:purge"
    assert cp.hash in purge_entry.details
    result = service.verify(aged)
    assert result.ok, result.reason
    assert (result.checked, result.checkpoint_seq) == (5, 3)


def test_purge_keeps_everything_from_the_first_recent_entry(
    chain: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a prefix goes: an old-dated entry after a recent one stays (seq order wins)."""
    old = utcnow() - timedelta(days=400)
    with clock(monkeypatch, old):
        add_entries(chain, 2)
    add_entries(chain, 1)
    with clock(monkeypatch, old):
        add_entries(chain, 1)
    cp = service.purge_before_date(chain, platform(), months_ago(7))
    chain.commit()
    assert cp is not None
    assert cp.last_seq == 2
    assert seqs(chain) == [3, 4, 5]
    assert service.verify(chain).ok


def test_purge_refuses_a_date_inside_the_retention(aged: Session) -> None:
    with pytest.raises(ValidationFailed, match="至少保留 6 个月") as exc:
        service.purge_before_date(aged, platform(), months_ago(5))
    assert exc.value.field == "before"
    assert seqs(aged) == [1, 2, 3, 4, 5, 6, 7]


def test_latest_allowed_date_is_allowed_and_the_next_day_is_not(aged: Session) -> None:
    policy = service.purge_policy(aged)
    assert policy.retention_months == 6
    assert policy.latest_before == months_ago(6)
    with pytest.raises(ValidationFailed):
        service.purge_before_date(aged, platform(), policy.latest_before + timedelta(days=1))
    cp = service.purge_before_date(aged, platform(), policy.latest_before)
    assert cp is not None
    assert cp.last_seq == 3


def test_a_longer_rulebook_retention_wins(aged: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rules_service, "longest_log_retention_months", lambda _s: 24)
    with pytest.raises(ValidationFailed, match="至少保留 24 个月"):
        service.purge_before_date(aged, platform(), months_ago(7))


def test_retention_never_goes_under_six_months(
    aged: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rules_service, "longest_log_retention_months", lambda _s: 1)
    assert service.retention_months(aged) == 6
    with pytest.raises(ValidationFailed, match="至少保留 6 个月"):
        service.purge(aged, platform(), service.local_midnight(months_ago(2)), 1)


def test_nothing_to_purge_returns_none(chain: Session) -> None:
    add_entries(chain, 2)
    assert service.purge_before_date(chain, platform(), months_ago(7)) is None
    chain.commit()
    assert seqs(chain) == [1, 2]
    assert chain.scalar(select(AuditCheckpoint.id)) is None


def test_purge_needs_the_permission(aged: Session, factory: Factory) -> None:
    operator = factory.principal(factory.user(Role.OPERATOR))
    with pytest.raises(PermissionDenied):
        service.purge_before_date(aged, operator, months_ago(7))


def test_a_second_purge_starts_from_the_newest_checkpoint(
    aged: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    service.purge_before_date(aged, platform(), months_ago(7))
    aged.commit()
    with clock(monkeypatch, utcnow() + timedelta(days=400)):
        # a year later the entries from "100 days ago" are old enough too
        cp = service.purge(aged, platform(), utcnow() - timedelta(days=30), 6)
        aged.commit()
    assert cp is not None
    assert cp.last_seq == 5
    result = service.verify(aged)
    assert result.ok, result.reason
    assert result.checkpoint_seq == 5


# ---------------------------------------------------------------- tampering


@pytest.fixture
def purged(aged: Session) -> Session:
    service.purge_before_date(aged, platform(), months_ago(7))
    aged.commit()
    return aged


def test_changed_checkpoint_is_found(purged: Session) -> None:
    tamper(purged, "UPDATE audit_checkpoints SET entries_purged = entries_purged + 1")
    result = service.verify(purged)
    assert (result.ok, result.first_bad_seq) == (False, 3)
    assert result.reason == "清理检查点被篡改"


def test_checkpoint_moved_forward_is_found(purged: Session) -> None:
    """Moving the checkpoint to hide entries 4-5 (hash recomputed) no longer matches the
    purge's own audit entry."""
    e5 = purged.get(AuditEntry, 5)
    assert e5 is not None
    tamper(purged, "DELETE FROM audit_entries WHERE seq IN (4, 5)")
    tamper(purged, "UPDATE audit_checkpoints SET last_seq = 5, last_hash = :h", h=e5.hash)
    cp = purged.scalars(select(AuditCheckpoint)).one()
    purged.refresh(cp)
    tamper(purged, "UPDATE audit_checkpoints SET hash = :h", h=service.checkpoint_hash(cp))
    result = service.verify(purged)
    assert not result.ok
    assert result.reason == "清理检查点没有对应的审计记录"


def test_deleted_checkpoint_is_found(purged: Session) -> None:
    tamper(purged, "DELETE FROM audit_checkpoints")
    result = service.verify(purged)
    assert (result.ok, result.first_bad_seq) == (False, 1)


def test_entry_after_the_checkpoint_rewritten_is_found(purged: Session) -> None:
    tamper(purged, "UPDATE audit_entries SET prev_hash = :p WHERE seq = 4", p="0" * 64)
    result = service.verify(purged)
    assert (result.ok, result.first_bad_seq) == (False, 4)


def test_purge_entry_details_reference_the_checkpoint(purged: Session) -> None:
    row = purged.execute(
        text("SELECT details FROM audit_entries WHERE action = 'audit:log:purge'")
    ).scalar_one()
    assert '"entries_purged":3' in row
    assert '"last_seq":3' in row
