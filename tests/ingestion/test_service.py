"""Loading rows into a data table: validation, upsert with history, modes, idempotency."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from govshare.audit.models import AuditEntry
from govshare.errors import Conflict, PermissionDenied, ValidationFailed
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


def history_rows(db: Session, entry_id: int) -> list[dict[str, Any]]:
    registry = db.get(DataTable, entry_id)
    assert registry is not None
    _, history = tables.tables_for(registry)
    return [dict(r._mapping) for r in db.execute(select(history).order_by(history.c._hist_id))]


def test_all_or_nothing_writes_chunks_and_rolls_them_back_at_the_first_bad_row(
    db: Session, world: CatalogWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "CHUNK", 3)  # the bad row comes after three written chunks
    entry_id = publish(db, world, data_items=ITEMS).entry_id
    load(db, world, entry_id, rows({"id_number": person_id(20), "name": "旧名"}))
    good = [{"id_number": person_id(n), "name": f"张{n}"} for n in range(1, 10)]
    progress: list[int] = []
    out = load(
        db,
        world,
        entry_id,
        rows(
            {"id_number": person_id(20), "name": "新名"},  # an update, written then undone
            *good,
            {"id_number": "123", "name": "坏行"},
            {"id_number": person_id(11), "name": ""},
            {"id_number": person_id(1), "name": "重复"},
        ),
        mode=BatchMode.ALL_OR_NOTHING,
        progress=lambda o: progress.append(o.rows_total),
    )
    db.commit()
    batch = out.batch
    assert batch.status == BatchStatus.REJECTED
    assert (batch.rows_total, batch.rows_loaded, batch.rows_unchanged) == (13, 0, 0)
    assert (batch.rows_rejected, batch.rows_duplicate) == (3, 1)
    assert (out.inserted, out.updated) == (0, 0)
    assert "有 3 行不合格" in batch.message
    # the chunks written before the bad row were rolled back with their history
    assert set(table_rows(db, entry_id)) == {person_id(20)}
    assert table_rows(db, entry_id)[person_id(20)]["name"] == "旧名"
    assert len(history_rows(db, entry_id)) == 1
    # the error report survives the rollback, every bad row in it
    errors = service.errors_of(db, batch.id)
    assert [(e.row_number, e.column) for e in errors] == [
        (12, "公民身份号码"),
        (13, "姓名"),
        (14, "公民身份号码"),
    ]
    assert "与第 3 行的主键重复" in errors[2].reason
    # progress after each chunk (the rows read by then: the next chunk is read meanwhile)
    assert len(progress) >= 4
    assert progress[0] >= 3
    assert progress[-1] == 13


def test_all_or_nothing_without_bad_rows_loads_every_chunk(
    db: Session, world: CatalogWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "CHUNK", 4)
    entry_id = publish(db, world, data_items=ITEMS).entry_id
    out = load(
        db,
        world,
        entry_id,
        rows(*({"id_number": person_id(n), "name": f"张{n}"} for n in range(1, 11))),
        mode=BatchMode.ALL_OR_NOTHING,
    )
    db.commit()
    assert out.batch.status == BatchStatus.COMMITTED
    assert (out.batch.rows_loaded, out.batch.rows_rejected, out.batch.rows_duplicate) == (10, 0, 0)
    assert len(table_rows(db, entry_id)) == 10
    assert [h["_operation"] for h in history_rows(db, entry_id)] == ["insert"] * 10


def test_repeated_keys_are_counted_and_found_beyond_the_window(
    db: Session, world: CatalogWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond the in-memory window of recent keys a repeat is found through the database
    (a key this batch already wrote), so memory stays bounded and no repeat slips through."""
    monkeypatch.setattr(service, "CHUNK", 2)
    monkeypatch.setattr(service, "KEY_WINDOW", 2)
    entry_id = publish(db, world, data_items=ITEMS).entry_id
    load(db, world, entry_id, rows({"id_number": person_id(9), "name": "王五"}))
    out = load(
        db,
        world,
        entry_id,
        rows(
            {"id_number": person_id(1), "name": "张三"},
            {"id_number": person_id(1), "name": "张三二"},  # within the window
            {"id_number": person_id(9), "name": "王五改"},  # updates the earlier batch's row
            *({"id_number": person_id(n), "name": f"赵{n}"} for n in range(2, 8)),
            {"id_number": person_id(1), "name": "张三三"},  # far back: through the database
            {"id_number": person_id(9), "name": "王五再改"},  # updated by this batch: refused
        ),
    )
    db.commit()
    batch = out.batch
    assert (out.inserted, out.updated, out.rejected_rows, out.duplicate_rows) == (7, 1, 3, 3)
    assert (batch.rows_rejected, batch.rows_duplicate) == (3, 3)
    assert "主键重复 3 行" in batch.message
    stored = table_rows(db, entry_id)
    assert (stored[person_id(1)]["name"], stored[person_id(9)]["name"]) == ("张三", "王五改")
    reasons = {e.row_number: e.reason for e in service.errors_of(db, batch.id)}
    assert reasons[3] == "与第 2 行的主键重复"
    assert reasons[11] == service.DUPLICATE_EARLIER
    assert reasons[12] == service.DUPLICATE_EARLIER


def test_the_window_of_recent_keys_is_bounded() -> None:
    recent = service._RecentKeys(100)
    for n in range(10_000):
        recent.add(n, n + 2)
    assert len(recent.new) + len(recent.old) <= 200
    assert recent.get(9_999) == 10_001
    assert recent.get(0) is None


def test_inserts_keep_an_insert_history_row(db: Session, world: CatalogWorld) -> None:
    entry_id = publish(db, world, data_items=ITEMS).entry_id
    out = load(db, world, entry_id, rows({"id_number": person_id(1), "name": "张三"}))
    (h,) = history_rows(db, entry_id)
    assert (h["_operation"], h["_key"], h["_batch_id"]) == ("insert", person_id(1), out.batch.id)
    assert h["_changed_at"] is not None
    assert (h["_before"], h["_after"]) == (None, None)  # the values are the data row's


def test_a_key_found_unchanged_is_not_loaded_again_further_on(
    db: Session, world: CatalogWorld, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """An unchanged row does not carry the batch id: beyond the window its key is found in
    the batch's temporary table of unchanged keys, which is gone after the batch."""
    monkeypatch.setattr(service, "CHUNK", 2)
    monkeypatch.setattr(service, "KEY_WINDOW", 2)
    entry_id = publish(db, world, data_items=ITEMS).entry_id
    load(db, world, entry_id, rows({"id_number": person_id(9), "name": "王五"}))
    for mode in (BatchMode.VALID_ROWS, BatchMode.ALL_OR_NOTHING):
        out = load(
            db,
            world,
            entry_id,
            rows(
                {"id_number": person_id(9), "name": "王五"},  # unchanged
                *({"id_number": person_id(n), "name": f"赵{n}"} for n in range(2, 8)),
                {"id_number": person_id(9), "name": "王五改"},  # the same key, far back
            ),
            mode=mode,
        )
        db.commit()
        assert (out.rejected_rows, out.duplicate_rows) == (1, 1), mode
        reasons = {e.row_number: e.reason for e in service.errors_of(db, out.batch.id)}
        assert reasons == {9: service.DUPLICATE_EARLIER}
        assert table_rows(db, entry_id)[person_id(9)]["name"] == "王五"
    # the next batch starts afresh (its temporary table is its own)
    out = load(db, world, entry_id, rows({"id_number": person_id(9), "name": "王五改"}))
    assert (out.updated, out.rejected_rows) == (1, 0)
    if backend == "sqlite":
        assert not db.execute(text("SELECT name FROM sqlite_temp_master")).all()


def test_a_first_load_writes_the_history_later_loads_write(
    db: Session, world: CatalogWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Into an empty table chunks are inserted without key look-ups (in a savepoint each); a
    later load looks keys up: the history rows are the same. A key repeated beyond the
    window makes the first load fall back to looking keys up."""
    monkeypatch.setattr(service, "CHUNK", 2)
    monkeypatch.setattr(service, "KEY_WINDOW", 2)
    entry_id = publish(db, world, data_items=ITEMS).entry_id
    first = load(
        db,
        world,
        entry_id,
        rows(
            *({"id_number": person_id(n), "name": f"赵{n}"} for n in range(1, 8)),
            {"id_number": person_id(2), "name": "赵二改"},  # far back: refused, not loaded
            {"id_number": person_id(8), "name": "赵8"},
        ),
    )
    later = load(db, world, entry_id, rows({"id_number": person_id(9), "name": "王五"}))
    db.commit()
    assert (first.inserted, first.rejected_rows, first.duplicate_rows) == (8, 1, 1)
    assert later.inserted == 1
    assert table_rows(db, entry_id)[person_id(2)]["name"] == "赵2"
    reasons = {e.row_number: e.reason for e in service.errors_of(db, first.batch.id)}
    assert reasons == {9: service.DUPLICATE_EARLIER}
    registry = db.get(DataTable, entry_id)
    assert registry is not None
    _, history = tables.tables_for(registry)
    columns = "_key, _operation, _batch_id, _changed_by, _reason"
    json_text = "CAST(_before AS TEXT), CAST(_after AS TEXT)"
    sql = f'SELECT {columns}, {json_text} FROM "{history.name}" ORDER BY _hist_id'  # noqa: S608
    stored = db.execute(text(sql)).all()
    assert [r[0] for r in stored] == [person_id(n) for n in range(1, 10)]
    # the same stored values on both paths (JSON null, as SQLAlchemy binds Python None)
    assert {tuple(r[1:2]) + tuple(r[3:]) for r in stored} == {
        ("insert", world.officer.name, "汇聚", "null", "null")
    }
    assert [r[2] for r in stored] == [first.batch.id] * 8 + [later.batch.id]


def test_a_bad_row_in_the_middle_of_a_first_all_or_nothing_load(
    db: Session, world: CatalogWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the rows of a first load are streamed into an open COPY as they are
    validated: a bad row in the middle of a chunk abandons it, and nothing stays."""
    monkeypatch.setattr(service, "CHUNK", 4)
    entry_id = publish(db, world, data_items=ITEMS).entry_id
    good = [{"id_number": person_id(n), "name": f"张{n}"} for n in range(1, 7)]
    out = load(
        db,
        world,
        entry_id,
        rows(*good, {"id_number": person_id(7), "name": ""}, *good[:1]),
        mode=BatchMode.ALL_OR_NOTHING,
    )
    db.commit()
    assert out.batch.status == BatchStatus.REJECTED
    assert (out.batch.rows_rejected, out.batch.rows_duplicate, out.batch.rows_loaded) == (2, 1, 0)
    assert table_rows(db, entry_id) == {}
    assert history_rows(db, entry_id) == []
    again = load(db, world, entry_id, rows(*good), mode=BatchMode.ALL_OR_NOTHING)
    db.commit()
    assert again.batch.rows_loaded == 6
    assert len(history_rows(db, entry_id)) == 6


def test_a_file_failing_mid_load_leaves_the_session_usable(
    db: Session, world: CatalogWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader error in the middle of a chunk (a broken file) propagates; the open COPY is
    abandoned so the caller's rollback works, and nothing of the batch stays."""
    monkeypatch.setattr(service, "CHUNK", 4)
    entry_id = publish(db, world, data_items=ITEMS).entry_id

    def broken() -> Iterator[tuple[int, dict[str, Any]]]:
        for n in range(1, 7):
            yield n + 1, {"id_number": person_id(n), "name": f"张{n}"}
        raise ValidationFailed("第 8 行含有无法解码的字节", field="file")

    entry = service.target_entry(db, world.officer, entry_id)
    with pytest.raises(ValidationFailed):
        service.load_rows(db, world.officer, entry, broken(), source=BatchSource.CLI)
    db.rollback()
    assert table_rows(db, entry_id) == {}
    assert history_rows(db, entry_id) == []
    out = load(db, world, entry_id, rows({"id_number": person_id(1), "name": "张1"}))
    assert out.inserted == 1
