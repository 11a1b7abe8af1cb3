"""Two pushes of the same new client batch at once: one loads, the other gets it back as a
duplicate (HTTP 200, ``duplicate: true``), never a 500 from the unique index.

On PostgreSQL two connections really race: the second insert of the batch row waits on the
unique index ``uq_ingest_batches_client_batch`` until the first transaction commits. SQLite
serialises writers (BEGIN IMMEDIATE), so there the window between a request's look-up and
its insert is reproduced by hiding the earlier batch from the look-ups that precede it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from govshare.db import make_engine
from govshare.ingestion import service
from govshare.ingestion.models import BatchSource, IngestBatch
from govshare.orgs import schemas as orgs_schemas
from govshare.orgs import service as orgs_service
from govshare.orgs.models import Department
from govshare.permissions import Role
from tests.catalog.conftest import CatalogWorld, publish
from tests.ingestion.test_crash import set_up
from tests.ingestion.test_service import ITEMS, person_id


def hide_first_lookups(monkeypatch: pytest.MonkeyPatch, hidden: int) -> None:
    """The first ``hidden`` look-ups of a client batch find nothing (they ran before the
    other request committed); later ones see the database."""
    real = service.find_batch
    calls = {"n": 0}

    def lookup(*args: Any, **kw: Any) -> IngestBatch | None:
        calls["n"] += 1
        return None if calls["n"] <= hidden else real(*args, **kw)

    monkeypatch.setattr(service, "find_batch", lookup)


def test_a_push_losing_the_race_gets_the_earlier_batch(
    client: TestClient, db: Session, world: CatalogWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry_id = publish(db, world, data_items=ITEMS).entry_id
    issued = orgs_service.create_credential(
        db,
        world.authority,
        orgs_schemas.CredentialIn(department_id=world.police.id, system_name="户籍系统"),
    )
    db.commit()
    headers = {"Authorization": f"Bearer {issued.token}"}
    url = f"/api/v1/ingestion/entries/{entry_id}/push"
    first = client.post(
        url,
        json={"client_batch_id": "race-001", "rows": [{"id_number": person_id(1), "name": "张三"}]},
        headers=headers,
    )
    assert first.status_code == 201, first.text
    # the second request looked before the first committed (the API's look-up and the
    # loader's), and only its insert of the batch row meets the first batch
    hide_first_lookups(monkeypatch, hidden=2)
    second = client.post(
        url,
        json={"client_batch_id": "race-001", "rows": [{"id_number": person_id(1), "name": "李四"}]},
        headers=headers,
    )
    assert second.status_code == 200, second.text
    assert second.json()["duplicate"] is True
    assert second.json()["batch"]["id"] == first.json()["batch"]["id"]
    assert db.scalar(select(func.count()).select_from(IngestBatch)) == 1


def test_the_loader_returns_the_winner_when_its_insert_loses(
    db: Session, world: CatalogWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry_id = publish(db, world, data_items=ITEMS).entry_id
    entry = service.target_entry(db, world.officer, entry_id)
    winner = service.load_rows(
        db,
        world.officer,
        entry,
        [(1, {"id_number": person_id(1), "name": "张三"})],
        source=BatchSource.PUSH,
        client_batch_id="race-002",
    )
    db.commit()
    hide_first_lookups(monkeypatch, hidden=1)
    loser = service.load_rows(
        db,
        world.officer,
        entry,
        [(1, {"id_number": person_id(1), "name": "李四"})],
        source=BatchSource.PUSH,
        client_batch_id="race-002",
    )
    assert (winner.duplicate, loser.duplicate) == (False, True)
    assert loser.batch.id == winner.batch.id
    assert (loser.inserted, loser.updated) == (0, 0)
    # the session goes on after the rolled-back savepoint
    db.commit()
    assert db.scalar(select(func.count()).select_from(IngestBatch)) == 1


def _waiting_on_a_lock(url: str, database: str) -> bool:
    engine = make_engine(url, poolclass=None)
    with engine.connect() as conn:
        n = conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = :db AND wait_event_type = 'Lock'"
            ),
            {"db": database},
        )
    engine.dispose()
    return bool(n)


@pytest.mark.postgresql_only  # SQLite serialises writers: covered by the tests above
def test_two_connections_racing_on_postgresql(
    fresh_db_url: str, backend: str, tmp_path: Path
) -> None:
    entry_id, _code, credit = set_up(fresh_db_url, tmp_path / "var")
    engine = make_engine(fresh_db_url)
    with Session(engine) as s:
        police = s.scalars(select(Department).where(Department.credit_code == credit)).one()
        actor = orgs_service.department_principal(police, Role.SYSTEM, "户籍系统")
    first_loaded = threading.Event()
    release_first = threading.Event()
    results: dict[str, Any] = {}

    def push(name: str, value: str, hold: bool) -> None:
        try:
            with Session(engine, expire_on_commit=False) as s:
                entry = service.target_entry(s, actor, entry_id)
                outcome = service.load_rows(
                    s,
                    actor,
                    entry,
                    [(1, {"id_number": person_id(1), "name": value})],
                    source=BatchSource.PUSH,
                    client_batch_id="race-003",
                )
                if hold:
                    first_loaded.set()
                    assert release_first.wait(30)
                s.commit()
                results[name] = (outcome.duplicate, outcome.batch.id, outcome.inserted)
        except BaseException as exc:  # reported by the main thread
            results[name] = exc
            first_loaded.set()

    a = threading.Thread(target=push, args=("a", "张三", True))
    a.start()
    assert first_loaded.wait(30)
    b = threading.Thread(target=push, args=("b", "李四", False))
    b.start()
    database = str(engine.url.database)
    deadline = time.monotonic() + 30
    while not _waiting_on_a_lock(fresh_db_url, database):  # b waits on the unique index
        assert time.monotonic() < deadline, results
        time.sleep(0.05)
    release_first.set()
    a.join(30)
    b.join(30)
    assert not isinstance(results["a"], BaseException), results["a"]
    assert not isinstance(results["b"], BaseException), results["b"]
    (a_dup, a_batch, a_inserted), (b_dup, b_batch, b_inserted) = results["a"], results["b"]
    assert (a_dup, a_inserted) == (False, 1)
    assert (b_dup, b_inserted) == (True, 0)
    assert a_batch == b_batch
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(IngestBatch)) == 1
        name = s.scalar(text(f"SELECT name FROM data_{entry_id}"))  # noqa: S608
        assert name == "张三"
    engine.dispose()
