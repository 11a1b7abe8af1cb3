"""Each published catalog entry's data table, typed by its data items.

``data_<entry id>`` holds one row per subject (keyed by the entry's key item: ID number,
credit code or a declared key); ``data_<entry id>_history`` keeps every change with who,
when, which batch and why, so a record can be shown as of any date. Tables are created when
an entry is first approved and altered when a later version is approved: a new item adds a
column, a removed item keeps its column and its history. Changing an existing item's type
or the key item cannot be applied to data already held and is refused with a clear message
(add a new item instead).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    inspect,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from govshare.catalog.models import CatalogEntry, CatalogVersion, DataType
from govshare.db import UTCDateTime, utcnow
from govshare.errors import Conflict
from govshare.ingestion.models import DataTable

#: system columns of a data table (item fields match ^[a-z]..., so "_" cannot clash)
SYSTEM = ("_id", "_batch_id", "_updated_at", "_updated_by", "_deleted")
DATA_TABLE_PREFIX = "data_"


def table_name(entry_id: int) -> str:
    return f"{DATA_TABLE_PREFIX}{entry_id}"


def sql_type(data_type: str, length: int | None) -> TypeEngine[Any]:
    kind = DataType(data_type)
    if kind is DataType.STRING:
        return String(length) if length and length <= 4000 else Text()
    types: dict[DataType, TypeEngine[Any]] = {
        DataType.INTEGER: BigInteger(),
        DataType.DECIMAL: Numeric(38, 10),
        DataType.DATE: Date(),
        DataType.DATETIME: DateTime(timezone=True),
        DataType.BOOLEAN: Boolean(),
        DataType.ID_NUMBER: String(18),
        DataType.CREDIT_CODE: String(18),
        DataType.DIVISION_CODE: String(12),
        DataType.PHONE: String(32),
    }
    return types[kind]


def _column_spec(version: CatalogVersion) -> dict[str, dict[str, Any]]:
    return {
        it["field"]: {"type": it["data_type"], "length": it.get("length"), "name": it["name"]}
        for it in version.data_items
    }


@lru_cache(maxsize=512)
def _tables(entry_id: int, spec_key: str) -> tuple[Table, Table]:
    import json

    spec = json.loads(spec_key)
    metadata = MetaData()
    name = table_name(entry_id)
    columns = [
        Column(field, sql_type(col["type"], col.get("length")), nullable=True)
        for field, col in spec["columns"].items()
    ]
    data = Table(
        name,
        metadata,
        Column("_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
        *columns,
        Column("_batch_id", Integer, nullable=True),
        Column("_updated_at", UTCDateTime(), nullable=False),
        Column("_updated_by", String(128), nullable=False),
        Column("_deleted", Boolean, nullable=False, default=False),
        Index(f"uq_{name}_key", spec["key"], unique=True),
    )
    history = Table(
        f"{name}_history",
        metadata,
        Column("_hist_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
        Column("_key", String(128), nullable=False),
        Column("_operation", String(8), nullable=False),  # insert | update | delete
        Column("_batch_id", Integer, nullable=True),
        Column("_changed_at", UTCDateTime(), nullable=False),
        Column("_changed_by", String(128), nullable=False),
        Column("_reason", String(256), nullable=False, default=""),
        Column("_before", JSON, nullable=True),
        Column("_after", JSON, nullable=True),
        Index(f"ix_{name}_history_key", "_key", "_changed_at"),
    )
    return data, history


def tables_for(registry: DataTable) -> tuple[Table, Table]:
    """SQLAlchemy Table objects of an entry's data and history tables (cached per shape)."""
    import json

    live = {f: c for f, c in registry.columns.items()}
    return _tables(
        registry.entry_id, json.dumps({"columns": live, "key": registry.key_field}, sort_keys=True)
    )


def _add_column(conn: Connection, table: str, field: str, col: dict[str, Any]) -> None:
    dialect = conn.dialect
    type_sql = sql_type(col["type"], col.get("length")).compile(dialect=dialect)
    prep = dialect.identifier_preparer
    conn.exec_driver_sql(
        f"ALTER TABLE {prep.quote(table)} ADD COLUMN {prep.quote(field)} {type_sql}"
    )


def ensure_table(session: Session, entry: CatalogEntry) -> DataTable:
    """Create or alter the entry's data table to match its version in force."""
    version = entry.current_version
    if version is None:
        raise Conflict("资源尚未发布，没有数据表")
    wanted = _column_spec(version)
    registry = session.get(DataTable, entry.id)
    conn = session.connection()
    if registry is None:
        registry = DataTable(
            entry_id=entry.id,
            table_name=table_name(entry.id),
            columns={
                f: {**c, "since_version": version.number, "removed": False}
                for f, c in wanted.items()
            },
            key_field=version.subject_key_item,
            version_number=version.number,
        )
        data, history = tables_for(registry)
        data.create(conn, checkfirst=True)
        history.create(conn, checkfirst=True)
        session.add(registry)
        session.flush()
        return registry
    if version.subject_key_item != registry.key_field:
        raise Conflict(
            f"主键信息项由 {registry.key_field} 改为 {version.subject_key_item}，已汇聚的数据无法"
            "自动转换：请保持主键不变，或另建目录资源"
        )
    columns = dict(registry.columns)
    existing = {c["name"] for c in inspect(conn).get_columns(registry.table_name)}
    for field, col in wanted.items():
        old = columns.get(field)
        if old is not None and old["type"] != col["type"]:
            raise Conflict(
                f"信息项“{col['name']}”的数据类型由{DataType(old['type']).label}改为"
                f"{DataType(col['type']).label}，已汇聚的数据无法自动转换：请新增一个信息项"
                "（新的字段名）代替类型变更"
            )
        if old is None:
            if field not in existing:
                _add_column(conn, registry.table_name, field, col)
            columns[field] = {**col, "since_version": version.number, "removed": False}
        else:
            columns[field] = {
                **old,
                "name": col["name"],
                "length": col.get("length"),
                "removed": False,
            }
    for field, old in columns.items():
        if field not in wanted:
            columns[field] = {**old, "removed": True}
    registry.columns = columns
    registry.version_number = version.number
    registry.altered_at = utcnow()
    session.flush()
    return registry


def ensure_all(session: Session) -> int:
    """Create the data tables of published entries that have none (entries published before
    the aggregation tables existed, after ``govshare db upgrade``). Returns how many."""
    from sqlalchemy import select

    from govshare.catalog.models import EntryStatus

    have = set(session.scalars(select(DataTable.entry_id)))
    created = 0
    for entry in session.scalars(
        select(CatalogEntry).where(CatalogEntry.status == EntryStatus.PUBLISHED.value)
    ):
        if entry.id not in have:
            ensure_table(session, entry)
            created += 1
    return created
