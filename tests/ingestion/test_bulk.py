"""The bulk write path: PostgreSQL COPY writes exactly what executemany writes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from govshare.ingestion import bulk, service, tables
from govshare.ingestion.models import BatchSource, DataTable
from govshare.ingestion.validators import id_check_digit
from tests.catalog.conftest import CatalogWorld, publish

ITEMS = [
    {"name": "公民身份号码", "field": "id_number", "data_type": "id_number", "required": True},
    {"name": "姓名", "field": "name", "data_type": "string", "length": 50, "required": True},
    {"name": "备注", "field": "remark", "data_type": "string"},
    {"name": "出生日期", "field": "born", "data_type": "date"},
    {"name": "登记时间", "field": "registered", "data_type": "datetime"},
    {"name": "补贴金额", "field": "amount", "data_type": "decimal"},
    {"name": "户内人数", "field": "members", "data_type": "integer"},
    {"name": "是否在册", "field": "active", "data_type": "boolean"},
]


def person_id(n: int) -> str:
    body = f"410102{date(1960, 1, 1) + timedelta(days=n):%Y%m%d}{n % 1000:03d}"
    return body + id_check_digit(body)


AWKWARD = [
    "含\t制表符",
    "两行\n文字",
    "反斜杠 \\N 不是空值",
    "C:\\路径\\文件",
    "回车\r\n换行",
    "引号 \"双\" 与 '单'",
    "Ωµ é 中文 𠀀",
    "",
]


def records(n: int, offset: int = 0) -> list[tuple[int, dict[str, Any]]]:
    out = []
    for i in range(n):
        m = i + offset
        out.append(
            (
                i + 2,
                {
                    "id_number": person_id(m),
                    "name": f"张{m}",
                    "remark": AWKWARD[m % len(AWKWARD)] if m % 5 else None,
                    "born": f"19{50 + m % 50}-0{1 + m % 9}-1{m % 10}" if m % 7 else "",
                    "registered": (
                        f"2024-03-0{1 + m % 9} 08:0{m % 10}:1{m % 10}+0{m % 9}:00" if m % 6 else ""
                    ),
                    "amount": f"{m}.{m % 100:02d}" if m % 4 else ("-0.0000000001" if m % 8 else ""),
                    "members": str(m % 9) if m % 3 else "",
                    "active": ("是", "否", "")[m % 3],
                },
            )
        )
    return out


def snapshot(db: Session, entry_id: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every data and history row as PostgreSQL prints it (text, byte for byte)."""
    registry = db.get(DataTable, entry_id)
    assert registry is not None
    data, history = tables.tables_for(registry)
    fields = [c.name for c in data.columns if c.name not in ("_id", "_batch_id")]
    cast = ", ".join(f'"{f}"::text' for f in fields)
    rows = db.execute(text(f'SELECT {cast} FROM "{data.name}" ORDER BY id_number')).all()  # noqa: S608
    hist = db.execute(
        text(
            f"SELECT _key, _operation, _changed_at::text, _changed_by, _reason, _before::text, "  # noqa: S608
            f'_after::text FROM "{history.name}" ORDER BY _key, _hist_id'
        )
    ).all()
    return [tuple(r) for r in rows], [tuple(r) for r in hist]


def load_twice(
    db: Session, world: CatalogWorld, monkeypatch: pytest.MonkeyPatch, use_copy: bool
) -> tuple[int, Any]:
    """Publish an entry, load 500 rows, then update 250 of them and insert 250 more."""
    monkeypatch.setattr(bulk, "copy_supported", lambda session: use_copy)
    monkeypatch.setattr(service, "utcnow", lambda: datetime(2026, 3, 1, 9, 30, tzinfo=UTC))
    entry_id = publish(db, world, data_items=ITEMS).entry_id
    entry = service.target_entry(db, world.officer, entry_id)
    first = service.load_rows(db, world.officer, entry, records(500), source=BatchSource.CLI)
    changed = [
        (n, v | {"name": v["name"] + "改", "remark": "新\t备注\\", "active": "是"})
        for n, v in records(250)
    ]
    second = service.load_rows(
        db, world.officer, entry, changed + records(250, offset=500), source=BatchSource.CLI
    )
    assert (first.inserted, second.updated, second.inserted) == (500, 250, 250)
    return entry_id, snapshot(db, entry_id)


@pytest.mark.postgresql_only
def test_copy_writes_what_executemany_writes(
    db: Session, world: CatalogWorld, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert bulk.copy_supported(db)
    assert bulk.COPY_MIN_ROWS <= 250  # both batches' chunks take the COPY path
    entry_id, by_copy = load_twice(db, world, monkeypatch, use_copy=True)
    _, by_insert = load_twice(db, world, monkeypatch, use_copy=False)
    assert by_copy == by_insert
    data_rows, history_rows = by_copy
    assert len(data_rows) == 750
    assert len(history_rows) == 1000
    # and what they wrote is the values of the file, awkward text included
    registry = db.get(DataTable, entry_id)
    assert registry is not None
    data, _ = tables.tables_for(registry)
    stored = {r.id_number: r for r in db.execute(select(data))}
    for _n, raw in records(250, offset=500):
        row = stored[raw["id_number"]]
        assert row.remark == (raw["remark"] or None)
        assert row.born == (date.fromisoformat(raw["born"]) if raw["born"] else None)
        registered = datetime.fromisoformat(raw["registered"]) if raw["registered"] else None
        assert row.registered == registered
        assert row.amount == (Decimal(raw["amount"]) if raw["amount"] else None)
        assert row.members == (int(raw["members"]) if raw["members"] else None)
        assert row.active == {"是": True, "否": False, "": None}[raw["active"]]
    assert stored[person_id(3)].remark == "新\t备注\\"
    assert any("\n" in (r.remark or "") for r in stored.values())


def test_small_chunks_use_executemany(db: Session, world: CatalogWorld) -> None:
    """Below COPY_MIN_ROWS (and always on SQLite) rows go through executemany, with the
    columns' own bind processing: dates, decimals and JSON history come back as written."""
    entry_id = publish(db, world, data_items=ITEMS).entry_id
    entry = service.target_entry(db, world.officer, entry_id)
    out = service.load_rows(db, world.officer, entry, records(12), source=BatchSource.CLI)
    again = service.load_rows(
        db,
        world.officer,
        entry,
        [(2, records(1)[0][1] | {"amount": "7.5", "born": "2001-02-03"})],
        source=BatchSource.CLI,
    )
    assert (out.inserted, again.updated) == (12, 1)
    registry = db.get(DataTable, entry_id)
    assert registry is not None
    data, history = tables.tables_for(registry)
    row = db.execute(select(data).where(data.c.id_number == person_id(0))).one()
    assert (row.amount, row.born) == (Decimal("7.5"), date(2001, 2, 3))
    changes = db.execute(
        select(history).where(history.c._key == person_id(0)).order_by(history.c._hist_id)
    ).all()
    assert [(c._operation, c._after) for c in changes] == [
        ("insert", None),
        ("update", {"born": "2001-02-03", "amount": "7.5"}),
    ]
    assert changes[1]._before == {"born": None, "amount": None}
