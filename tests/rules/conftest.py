"""Fixtures for the rules tests: the database is built by Alembic but not seeded, so
calendar tests load only the chinese-calendar years they need."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session

from govshare.rules import service as rules_service
from tests.conftest import platform


@pytest.fixture
def seed_years(db: Session) -> Callable[..., list[int]]:
    """Load the given years from the chinese-calendar package into the test transaction."""

    def seed(*years: int) -> list[int]:
        added = rules_service.seed_from_package(db, platform(), years=years)
        # commit (a savepoint release): a request that fails rolls the session back and
        # must not take the calendar with it; the test's outer transaction still ends it
        db.commit()
        return added

    return seed


@pytest.fixture
def cal2026(db: Session, seed_years: Callable[..., list[int]]) -> Session:
    """The test session with the official 2026 calendar on file (2027 is not)."""
    assert seed_years(2026) == [2026]
    return db
