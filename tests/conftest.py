"""Test fixtures: every database test runs on SQLite and, where a PostgreSQL server is
reachable through GOVSHARE_TEST_POSTGRES_URL, again on PostgreSQL.

Schemas are built by Alembic (``upgrade head``), once per backend per test process; each
test runs inside a transaction that is rolled back at the end (services' commits become
savepoint releases).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import Request
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from govshare import migrate
from govshare.db import make_engine, set_engine
from govshare.deps import get_db, request_transaction
from govshare.orgs.codes import credit_code
from govshare.orgs.models import Department, Jurisdiction, User
from govshare.orgs.service import principal_for_user
from govshare.permissions import Role, permissions_for
from govshare.principal import Principal
from govshare.security import hash_password

PG_URL = os.environ.get("GOVSHARE_TEST_POSTGRES_URL", "")
REQUIRE_PG = os.environ.get("GOVSHARE_REQUIRE_POSTGRES", "") == "1"
TEST_PASSWORD = "Test-Passw0rd!"
_PASSWORD_HASH = hash_password(TEST_PASSWORD)

os.environ.setdefault("GOVSHARE_SECRET_KEY", "test-secret-key-not-for-production")


def _pg_admin_engine() -> Engine:
    return make_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=None)


def create_pg_database(prefix: str) -> str:
    """Create an empty PostgreSQL database and return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    name = make_url(url).database
    admin = _pg_admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _backend_params() -> list[object]:
    pg_marks = []
    if not PG_URL:
        reason = "GOVSHARE_TEST_POSTGRES_URL is not set"
        pg_marks = [pytest.mark.skip(reason=reason)]
    return ["sqlite", pytest.param("postgresql", marks=pg_marks)]


def pytest_configure(config: pytest.Config) -> None:
    if REQUIRE_PG and not PG_URL:
        raise pytest.UsageError("GOVSHARE_REQUIRE_POSTGRES=1 but GOVSHARE_TEST_POSTGRES_URL unset")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A ``postgresql_only`` test exists only in its PostgreSQL variant (nothing to skip)."""
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend") if callspec else None
        if item.get_closest_marker("postgresql_only") and backend == "sqlite":
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    """In CI a skipped PostgreSQL run is a failure."""
    if not REQUIRE_PG:
        return
    skipped = terminalreporter.stats.get("skipped", [])
    pg_skips = [r for r in skipped if "postgresql" in r.nodeid]
    if pg_skips:
        terminalreporter.write_line(
            f"FAILED: {len(pg_skips)} PostgreSQL tests were skipped in CI", red=True
        )
        config._govshare_pg_skipped = True


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if REQUIRE_PG and PG_URL:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        stats = getattr(reporter, "stats", {})
        if any("postgresql" in r.nodeid for r in stats.get("skipped", [])):
            session.exitstatus = 1


@pytest.fixture(scope="session", params=_backend_params())
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def fresh_database_url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'govshare.db'}"
    return create_pg_database("govshare_t")


@pytest.fixture(scope="session")
def engine(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    url = fresh_database_url(backend, tmp_path_factory.mktemp(f"db-{backend}"))
    eng = make_engine(url)
    migrate.upgrade(eng)
    set_engine(eng)
    yield eng
    eng.dispose()
    if backend == "postgresql":
        drop_pg_database(url)


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test."""
    set_engine(engine)
    connection = engine.connect()
    outer = connection.begin()
    session = Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        connection.close()


@pytest.fixture
def fresh_db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own (for CLI and multi-process tests that commit)."""
    url = fresh_database_url(backend, tmp_path)
    yield url
    if backend == "postgresql":
        drop_pg_database(url)


@pytest.fixture
def app(db: Session):  # type: ignore[no-untyped-def]
    from govshare.main import create_app

    application = create_app()

    def override(request: Request) -> Iterator[Session]:
        yield from request_transaction(db, request)

    application.dependency_overrides[get_db] = override
    return application


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app) as c:
        yield c


# ---------------------------------------------------------------- factories


class Factory:
    """Builds a small world: jurisdictions, departments and users per role.

    Each object is committed (a savepoint release inside the test's outer transaction), so
    a request that fails and rolls back later in the test does not take the set-up with it.
    """

    def __init__(self, session: Session) -> None:
        self.s = session
        self._seq = 0

    def seq(self) -> int:
        self._seq += 1
        return self._seq

    def jurisdiction(
        self,
        name: str = "测试市",
        level: str = "city",
        parent: Jurisdiction | None = None,
        code: str | None = None,
        rulebook: str | None = None,
    ) -> Jurisdiction:
        code = code or f"{9000 + self.seq():04d}00"
        j = Jurisdiction(
            code=code,
            name=name,
            level=level,
            parent_id=parent.id if parent else None,
            rulebook=rulebook,
        )
        self.s.add(j)
        self.s.commit()
        return j

    def department(
        self,
        jurisdiction: Jurisdiction | None = None,
        name: str | None = None,
        is_data_authority: bool = False,
    ) -> Department:
        jurisdiction = jurisdiction or self.jurisdiction()
        n = self.seq()
        d = Department(
            name=name or f"测试部门{n}",
            credit_code=credit_code(jurisdiction.code, 500 + n),
            jurisdiction_id=jurisdiction.id,
            is_data_authority=is_data_authority,
        )
        self.s.add(d)
        self.s.commit()
        return d

    def user(
        self,
        role: Role | str = Role.DEPT_OFFICER,
        department: Department | None = None,
        username: str | None = None,
        must_change_password: bool = False,
    ) -> User:
        role = Role(role)
        if department is None and role not in (Role.PUBLIC, Role.OPERATOR):
            department = self.department(is_data_authority=role is Role.AUTHORITY)
        u = User(
            username=username or f"u{self.seq()}_{role.value}",
            display_name=f"测试{role.label}",
            password_hash=_PASSWORD_HASH,
            role=role.value,
            department_id=department.id if department else None,
            must_change_password=must_change_password,
        )
        self.s.add(u)
        self.s.commit()
        self.s.refresh(u)
        return u

    def principal(self, user: User) -> Principal:
        return principal_for_user(user, "127.0.0.1")

    def authority(self) -> Principal:
        return self.principal(self.user(Role.AUTHORITY))


@pytest.fixture
def factory(db: Session) -> Factory:
    return Factory(db)


def login(client: TestClient, username: str, password: str = TEST_PASSWORD) -> str:
    """Log in through the JSON API; returns the CSRF token for later unsafe calls."""
    r = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    token: str = r.json()["csrf_token"]
    client.headers["X-CSRF-Token"] = token
    return token


def run_cli(
    *args: str,
    url: str | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: int = 300,
) -> subprocess.CompletedProcess[str]:
    """Run ``govshare ARGS`` as a subprocess (the installed command, as a user would)."""
    full_env = os.environ | {"COLUMNS": "200"} | (env or {})
    if url:
        full_env["GOVSHARE_DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "govshare.cli", *args],
        env=full_env,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=timeout,
        check=False,
    )


def platform() -> Principal:
    return Principal(
        kind="system",
        id=None,
        name="test",
        role=Role.AUTHORITY,
        ip="127.0.0.1",
        permissions=permissions_for(Role.AUTHORITY),
    )
