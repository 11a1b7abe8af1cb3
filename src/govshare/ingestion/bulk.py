"""The bulk write path of aggregation: PostgreSQL ``COPY`` for large inserts.

Seed 001 (政务数据资源管理办法) art. 13 asks departments to aggregate their data into the
platform as it is produced, which for a base database means files of millions of rows. The
loader (:mod:`govshare.ingestion.service`) writes a batch chunk by chunk; on PostgreSQL the
rows it inserts (data rows and history rows) go through ``COPY ... FROM STDIN`` on the
session's own connection, inside the batch's one transaction (and its savepoint in
all-or-nothing mode), so a crash or a rollback undoes them exactly like ``INSERT``. SQLite,
where ``executemany`` of a prepared ``INSERT`` is already the fastest path, keeps it.

Below that size, and on SQLite, rows go through one DB-API ``executemany`` of a prepared
``INSERT`` with the columns' SQLAlchemy bind processors applied, which is what
``session.execute(insert(table), rows)`` does without its per-row overhead.

The values written by COPY are the ones the ``INSERT`` path binds: the data tables use no type
decorators, so psycopg's own adaptation of ``str``, ``int``, ``Decimal``, ``date``,
``datetime``, ``bool`` and ``None`` is what SQLAlchemy would send; JSON columns are serialized
with the engine's JSON serializer (``json.dumps`` unless configured otherwise), Python
``None`` included: SQLAlchemy's ``JSON`` (``none_as_null=False``) stores it as JSON ``null``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import JSON, Table
from sqlalchemy.orm import Session

#: below this many rows a COPY does not pay for its round trips: executemany is used
COPY_MIN_ROWS = 100


def copy_supported(session: Session) -> bool:
    """Whether the session's database takes the COPY path (PostgreSQL through psycopg 3)."""
    dialect = session.get_bind().dialect
    return dialect.name == "postgresql" and dialect.driver == "psycopg"


def _serializer(session: Session) -> Callable[[Any], str]:
    serializer = getattr(session.get_bind().dialect, "_json_serializer", None)
    return serializer or json.dumps


def copy_insert(
    session: Session, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert ``rows`` (tuples in the order of ``columns``) into ``table`` with one ``COPY``.

    Runs on the session's connection, in its current transaction or savepoint.
    """
    if not rows:
        return
    dumps = _serializer(session)
    json_positions = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, JSON)]
    driver = session.connection().connection.driver_connection
    assert driver is not None
    quote = session.get_bind().dialect.identifier_preparer.quote
    sql = (
        f"COPY {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
        "FROM STDIN"  # text format: PostgreSQL parses each value by its column's type
    )
    with driver.cursor() as cursor, cursor.copy(sql) as copy:
        write = copy.write_row
        if json_positions:
            null = dumps(None)
            for row in rows:
                values = list(row)
                for i in json_positions:
                    value = values[i]
                    values[i] = null if value is None else dumps(value)
                write(values)
        else:
            for row in rows:
                write(row)


def executemany_insert(
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    skip_conflicts_on: str | None = None,
) -> int:
    """Insert ``rows`` with one DB-API ``executemany`` of a prepared ``INSERT``; returns
    how many rows were inserted.

    The values go through the columns' own SQLAlchemy bind processors (what
    ``session.execute(insert(table), rows)`` applies), without its per-row overhead. With
    ``skip_conflicts_on`` (a column with a unique index) a row whose value is already in
    the table is skipped (``ON CONFLICT DO NOTHING``) rather than failing the statement.
    """
    if not rows:
        return 0
    dialect = session.get_bind().dialect
    quote = dialect.identifier_preparer.quote
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    names = ", ".join(quote(c) for c in columns)
    marks = ", ".join(mark for _ in columns)
    sql = f"INSERT INTO {quote(table.name)} ({names}) VALUES ({marks})"  # noqa: S608
    if skip_conflicts_on is not None:
        sql += f" ON CONFLICT ({quote(skip_conflicts_on)}) DO NOTHING"
    processors = [
        (i, proc)
        for i, c in enumerate(columns)
        if (proc := table.c[c].type._cached_bind_processor(dialect)) is not None
    ]
    if processors:
        # column by column: a batch repeats one object in some columns (its id, its time,
        # None), processed once; the others go through map()
        columns_of = list(zip(*rows, strict=True))
        n = len(rows)
        for i, proc in processors:
            column = columns_of[i]
            first = column[0]
            if column.count(first) == n and all(v is first for v in column):
                columns_of[i] = (proc(first),) * n
            else:
                columns_of[i] = tuple(map(proc, column))
        rows = list(zip(*columns_of, strict=True))
    driver = session.connection().connection.driver_connection
    assert driver is not None
    cursor = driver.cursor()
    try:
        cursor.executemany(sql, rows)
        return int(cursor.rowcount) if cursor.rowcount >= 0 else len(rows)
    finally:
        cursor.close()


def insert_rows(
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    use_copy: bool,
) -> None:
    """Insert ``rows`` (tuples in the order of ``columns``) into ``table``: one COPY when
    ``use_copy`` and the rows are many enough, else one ``executemany``."""
    if not rows:
        return
    if use_copy and len(rows) >= COPY_MIN_ROWS:
        copy_insert(session, table, columns, rows)
    else:
        executemany_insert(session, table, columns, rows)


class CopyStream:
    """One ``COPY`` into a table left open and fed a row at a time: PostgreSQL ingests the
    rows already sent while the caller reads and validates the next ones.

    Nothing else may use the session's connection until :meth:`finish` or :meth:`abort`.
    Only for tables without JSON columns (the data tables).
    """

    def __init__(self, session: Session, table: Table, columns: Sequence[str]) -> None:
        driver = session.connection().connection.driver_connection
        assert driver is not None
        quote = session.get_bind().dialect.identifier_preparer.quote
        sql = f"COPY {quote(table.name)} ({', '.join(quote(c) for c in columns)}) FROM STDIN"
        self._cursor = driver.cursor()
        self._context = self._cursor.copy(sql)
        self.write_row: Callable[[Sequence[Any]], None] = self._context.__enter__().write_row

    def finish(self) -> None:
        """End the COPY; raises what the database refused (a duplicate key, say)."""
        try:
            self._context.__exit__(None, None, None)
        finally:
            self._cursor.close()

    def abort(self) -> None:
        """End the COPY without loading it (the transaction or savepoint is then failed and
        must be rolled back)."""
        try:
            reason = _Aborted("批次中止")
            self._context.__exit__(_Aborted, reason, None)
        finally:
            self._cursor.close()


class _Aborted(Exception):
    """Sent to PostgreSQL as the reason a COPY is abandoned."""
