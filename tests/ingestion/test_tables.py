"""Each approved catalog entry gets a data table typed by its items; later versions alter it."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import insert, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from govshare.catalog import schemas
from govshare.catalog import service as catalog
from govshare.db import utcnow
from govshare.errors import Conflict
from govshare.ingestion import tables
from govshare.ingestion.models import DataTable
from tests.catalog.conftest import CatalogWorld, publish, version_in


def columns(db: Session, name: str) -> dict[str, str]:
    return {c["name"]: str(c["type"]).upper() for c in inspect(db.connection()).get_columns(name)}


def approve_change(db: Session, world: CatalogWorld, entry_id: int, **overrides: object) -> None:
    entry = catalog.get_entry(db, world.officer, entry_id)
    v = catalog.new_version(db, world.officer, entry, schemas.NewVersionIn(change_note="调整"))
    catalog.update_version(db, world.officer, v, version_in(**overrides))
    catalog.submit(db, world.officer, v)
    catalog.review(db, world.authority, v, schemas.ReviewIn(decision="approve"))


def test_approval_creates_a_typed_table_and_its_history(db: Session, world: CatalogWorld):
    items = [
        {"name": "公民身份号码", "field": "id_number", "data_type": "id_number", "required": True},
        {"name": "姓名", "field": "name", "data_type": "string", "length": 50, "required": True},
        {"name": "出生日期", "field": "birth_date", "data_type": "date"},
        {"name": "月收入", "field": "income", "data_type": "decimal"},
        {"name": "家庭人口", "field": "members", "data_type": "integer"},
        {"name": "是否低保", "field": "on_dibao", "data_type": "boolean"},
    ]
    v = publish(db, world, data_items=items)
    registry = db.get(DataTable, v.entry_id)
    assert registry is not None
    assert registry.table_name == f"data_{v.entry_id}"
    assert registry.key_field == "id_number"
    cols = columns(db, registry.table_name)
    assert {
        "id_number",
        "name",
        "birth_date",
        "income",
        "members",
        "on_dibao",
        "_id",
        "_batch_id",
        "_updated_at",
        "_updated_by",
        "_deleted",
    } <= set(cols)
    assert "VARCHAR(50)" in cols["name"]
    assert "DATE" in cols["birth_date"]
    assert "NUMERIC" in cols["income"]
    assert "INT" in cols["members"]
    assert "history" in f"{registry.table_name}_history"
    assert "_before" in columns(db, f"{registry.table_name}_history")
    # rows go in typed, and the key is unique
    data, _history = tables.tables_for(registry)
    row = {
        "id_number": "410102199003070012",
        "name": "张三",
        "birth_date": date(1990, 3, 7),
        "_updated_at": utcnow(),
        "_updated_by": "test",
        "_deleted": False,
    }
    db.execute(insert(data), [row])
    assert db.execute(select(data.c.name)).scalar_one() == "张三"
    with pytest.raises(IntegrityError), db.begin_nested():
        db.execute(insert(data), [row])


def test_a_new_version_adds_a_column_and_a_removed_item_keeps_its_column(
    db: Session,
    world: CatalogWorld,
) -> None:
    v1 = publish(db, world)
    base_items = list(v1.data_items)
    approve_change(
        db,
        world,
        v1.entry_id,
        data_items=[
            *base_items,
            {"name": "民族", "field": "ethnicity", "data_type": "string", "length": 20},
        ],
    )
    registry = db.get(DataTable, v1.entry_id)
    assert registry is not None
    assert "ethnicity" in columns(db, registry.table_name)
    assert registry.columns["ethnicity"]["since_version"] == 2
    assert registry.version_number == 2
    without_address = [it for it in base_items if it["field"] != "address"]
    approve_change(db, world, v1.entry_id, data_items=without_address)
    db.refresh(registry)
    assert "address" in columns(db, registry.table_name)  # history of the column is kept
    assert registry.columns["address"]["removed"] is True
    assert registry.columns["ethnicity"]["removed"] is True


def test_a_type_change_of_held_data_is_refused(db: Session, world: CatalogWorld) -> None:
    v1 = publish(db, world)
    items = [dict(it) for it in v1.data_items]
    for it in items:
        if it["field"] == "address":
            it["data_type"] = "integer"
    with pytest.raises(Conflict) as err:
        approve_change(db, world, v1.entry_id, data_items=items)
    assert "数据类型由字符型改为整数型" in err.value.message


def test_a_key_change_is_refused(db: Session, world: CatalogWorld) -> None:
    items = [
        {"name": "公民身份号码", "field": "id_number", "data_type": "id_number", "required": True},
        {"name": "证件号码", "field": "other_id", "data_type": "id_number", "required": True},
    ]
    v1 = publish(db, world, data_items=items)
    with pytest.raises(Conflict) as err:
        approve_change(db, world, v1.entry_id, data_items=items, subject_key_item="other_id")
    assert "主键信息项由 id_number 改为 other_id" in err.value.message
