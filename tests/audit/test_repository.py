"""Audit queries: who sees what, and the per-day counts behind the chart."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy.orm import Session

from govshare.audit import repository as repo
from govshare.permissions import Role
from tests.audit.conftest import add_entries, clock
from tests.conftest import Factory, platform


def test_only_the_audit_readers_see_entries(chain: Session, factory: Factory) -> None:
    add_entries(chain, 2)
    assert len(repo.list_entries(chain, factory.authority())[0]) == 2
    for role in (Role.OPERATOR, Role.DEPT_OFFICER, Role.DEPT_HEAD, Role.PUBLIC):
        principal = factory.principal(factory.user(role))
        assert repo.list_entries(chain, principal) == ([], False)
        assert repo.list_checkpoints(chain, principal) == []


def test_per_page_is_capped(chain: Session) -> None:
    add_entries(chain, 3)
    entries, has_next = repo.list_entries(chain, platform(), per_page=10_000)
    assert (len(entries), has_next) == (3, False)
    entries, has_next = repo.list_entries(chain, platform(), per_page=2, page=0)
    assert ([e.seq for e in entries], has_next) == ([3, 2], True)


def test_counts_by_day_use_beijing_days(chain: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    times = [
        datetime(2026, 3, 1, 15, 59, 59, tzinfo=UTC),  # 2026-03-01 23:59:59 in Beijing
        datetime(2026, 3, 1, 16, 0, 0, tzinfo=UTC),  # 2026-03-02 00:00:00
        datetime(2026, 3, 1, 16, 30, 0, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC),  # outside the 30 days
    ]
    for t, action in zip(times, ["orgs:a:b", "orgs:a:b", "rules:c:d", "orgs:a:b"], strict=True):
        with clock(monkeypatch, t):
            add_entries(chain, 1, action=action)
    days = repo.action_counts_by_day(chain, 30, now=datetime(2026, 3, 5, 1, 0, tzinfo=UTC))
    assert len(days) == 30
    assert (days[0].day, days[-1].day) == (date(2026, 2, 4), date(2026, 3, 5))
    by_day = {d.day: (d.total, d.by_domain) for d in days if d.total}
    assert by_day == {
        date(2026, 3, 1): (1, {"orgs": 1}),
        date(2026, 3, 2): (2, {"orgs": 1, "rules": 1}),
    }
