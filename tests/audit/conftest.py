"""Audit test helpers: an empty chain inside the test's transaction, entries at any time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from govshare.audit import service
from govshare.db import utcnow
from govshare.principal import Principal
from tests.conftest import platform


@pytest.fixture
def chain(db: Session) -> Session:
    """The test's session with the audit chain emptied (rolled back with the test), so
    that counts and sequence numbers are exact."""
    db.execute(text("DELETE FROM audit_entries"))
    db.execute(text("DELETE FROM audit_checkpoints"))
    db.execute(
        text("UPDATE audit_head SET last_seq = 0, last_hash = :g WHERE id = 1"),
        {"g": service.GENESIS_HASH},
    )
    db.flush()
    return db


@contextmanager
def clock(monkeypatch: pytest.MonkeyPatch, when: datetime) -> Iterator[None]:
    """Entries recorded inside happen at ``when``."""
    monkeypatch.setattr(service, "utcnow", lambda: when)
    try:
        yield
    finally:
        monkeypatch.setattr(service, "utcnow", utcnow)


def add_entries(
    db: Session,
    n: int,
    *,
    actor: Principal | None = None,
    action: str = "orgs:user:update",
    target_type: str = "user",
    details: dict[str, Any] | None = None,
) -> None:
    """Record ``n`` entries and commit them."""
    who = actor or platform()
    for i in range(n):
        service.record(db, who, action, target_type, i + 1, details or {"i": i, "名称": "测试"})
    db.commit()


def seqs(db: Session) -> list[int]:
    return [int(s) for s in db.scalars(text("SELECT seq FROM audit_entries ORDER BY seq"))]


def tamper(db: Session, sql: str, **params: Any) -> None:
    db.execute(text(sql), params)
    db.flush()
