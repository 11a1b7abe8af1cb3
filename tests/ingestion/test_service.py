"""Loading rows into a data table: validation, upsert with history, modes, idempotency."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.audit.models import AuditEntry
from govshare.errors import Conflict, PermissionDenied
from govshare.ingestion import service, tables
from govshare.ingestion.models import BatchMode, BatchSource, BatchStatus, DataTable
from govshare.ingestion.validators import id_check_digit
from tests.catalog.conftest import CatalogWorld, publish


def person_id(n: int) -> str:
    body = f"410102{19900101 + n:08d}{n % 1000:03d}"
    return body + id_check_digit(body)


ITEMS = [
    {
        "name": "公民身份号码",
        "field": "id_number",
        "data_type": "id_number",
        "required": True,
        "personal": True,
    },
    {
        "name": "姓名",
        "field": "name",
        "data_type": "string",
        "length": 20,
        "required": True,
        "personal": True,
    },
    {"name": "住址", "field": "address", "data_type": "string", "length": 100, "personal": True},
]


def rows(*records: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    return [(i + 2, r) for i, r in enumerate(records)]


def load(
    db: Session,
    world: CatalogWorld,
    entry_id: int,
    data: list[tuple[int, dict[str, Any]]],
    **kw: Any,
) -> service.Outcome:
    entry = service.target_entry(db, world.officer, entry_id)
    return service.load_rows(db, world.officer, entry, data, source=BatchSource.CLI, **kw)


def table_rows(db: Session, entry_id: int) -> dict[str, dict[str, Any]]:
    registry = db.get(DataTable, entry_id)
    assert registry is not None
    data, _ = tables.tables_for(registry)
    return {r._mapping["id_number"]: dict(r._mapping) for r in db.execute(select(data))}


def test_valid_rows_land_and_bad_rows_are_reported(db: Session, world: CatalogWorld) -> None:
    entry_id = publish(db, world, data_items=ITEMS).entry_id
    bad_id = person_id(2)[:-1] + ("0" if person_id(2)[-1] != "0" else "1")
    out = load(
        db,
        world,
        entry_id,
        rows(
            {"id_number": person_id(1), "name": "张三", "address": "人民路1号"},
            {"id_number": bad_id, "name": "李四"},
            {"id_number": person_id(3), "name": ""},
            {"id_number": person_id(4), "name": "王五"},
        ),
    )
    db.commit()
    assert (out.inserted, out.rejected_rows) == (2, 2)
    assert out.batch.status == BatchStatus.COMMITTED
    assert set(table_rows(db, entry_id)) == {person_id(1), person_id(4)}
    errors = service.errors_of(db, out.batch.id)
    assert [(e.row_number, e.column) for e in errors] == [(3, "公民身份号码"), (4, "姓名")]
    assert "校验位" in errors[0].reason
    assert "ingestion:batch:load" in set(db.scalars(select(AuditEntry.action)))


def test_all_or_nothing_loads_nothing_when_a_row_is_bad(db: Session, world: CatalogWorld):
    entry_id = publish(db, world, data_items=ITEMS).entry_id
    out = load(
        db,
        world,
        entry_id,
        rows(
            {"id_number": person_id(1), "name": "张三"},
            {"id_number": "123", "name": "李四"},
        ),
        mode=BatchMode.ALL_OR_NOTHING,
    )
    assert out.batch.status == BatchStatus.REJECTED
    assert table_rows(db, entry_id) == {}
    assert out.batch.rows_rejected == 1


def test_changes_keep_history_and_identical_rows_change_nothing(db: Session, world: CatalogWorld):
    entry_id = publish(db, world, data_items=ITEMS).entry_id
    load(db, world, entry_id, rows({"id_number": person_id(1), "name": "张三", "address": "甲"}))
    out = load(
        db,
        world,
        entry_id,
        rows(
            {"id_number": person_id(1), "name": "张三", "address": "乙"},
            {"id_number": person_id(2), "name": "李四"},
        ),
    )
    again = load(
        db, world, entry_id, rows({"id_number": person_id(1), "name": "张三", "address": "乙"})
    )
    assert (out.inserted, out.updated, again.unchanged) == (1, 1, 1)
    registry = db.get(DataTable, entry_id)
    assert registry is not None
    _, history = tables.tables_for(registry)
    changes = db.execute(
        select(history).where(history.c._key == person_id(1)).order_by(history.c._hist_id)
    ).all()
    assert [c._mapping["_operation"] for c in changes] == ["insert", "update"]
    assert changes[1]._mapping["_before"] == {"address": "甲"}
    assert changes[1]._mapping["_after"] == {"address": "乙"}
    assert table_rows(db, entry_id)[person_id(1)]["address"] == "乙"


def test_a_repeated_key_in_one_batch_is_refused(db: Session, world: CatalogWorld) -> None:
    entry_id = publish(db, world, data_items=ITEMS).entry_id
    out = load(
        db,
        world,
        entry_id,
        rows(
            {"id_number": person_id(1), "name": "张三"},
            {"id_number": person_id(1), "name": "张三丰"},
        ),
    )
    assert (out.inserted, out.rejected_rows) == (1, 1)
    assert "与第 2 行的主键重复" in service.errors_of(db, out.batch.id)[0].reason


def test_a_retried_client_batch_is_not_loaded_twice(db: Session, world: CatalogWorld) -> None:
    entry_id = publish(db, world, data_items=ITEMS).entry_id
    first = load(
        db,
        world,
        entry_id,
        rows({"id_number": person_id(1), "name": "张三"}),
        client_batch_id="push-001",
    )
    second = load(
        db,
        world,
        entry_id,
        rows({"id_number": person_id(1), "name": "改名"}),
        client_batch_id="push-001",
    )
    assert second.batch.id == first.batch.id
    assert table_rows(db, entry_id)[person_id(1)]["name"] == "张三"


def test_only_own_published_entries(db: Session, world: CatalogWorld) -> None:
    entry_id = publish(db, world, data_items=ITEMS).entry_id
    with pytest.raises(PermissionDenied):
        service.target_entry(db, world.other_officer, entry_id)
    from govshare.catalog import schemas
    from govshare.catalog import service as catalog
    from tests.catalog.conftest import version_in

    draft = catalog.create_entry(db, world.officer, version_in(data_items=ITEMS))
    with pytest.raises(Conflict):
        service.target_entry(db, world.officer, draft.entry_id)
    catalog.withdraw(
        db,
        world.head,
        catalog.get_entry(db, world.head, entry_id),
        schemas.WithdrawIn(reason="职能划转至市局"),
    )
    with pytest.raises(Conflict):
        service.target_entry(db, world.officer, entry_id)
