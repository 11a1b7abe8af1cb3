"""Loading rows into an entry's data table: one batch, one transaction.

A batch is atomic: its rows, their history and its error report are written in the caller's
single transaction, so a crash leaves nothing partial and the batch can simply be run again.
In ``valid_rows`` mode invalid rows are reported and valid rows land; in ``all_or_nothing``
mode any invalid row rejects the whole batch (its error report is still kept). Rows are
keyed by the entry's key item: a new key inserts, a changed row updates and keeps its
previous values in the history table, an identical row changes nothing. A key repeated
within one batch is refused (the later row), so one batch never overwrites its own rows.

Memory stays bounded whatever the size of the batch (seed 001 art. 13: departments aggregate
whole base databases): rows are validated and written a chunk at a time; all-or-nothing
batches write each chunk inside a SAVEPOINT that is rolled back at the first invalid row;
repeated keys are found in a bounded window of recent keys (with their row numbers) and,
further back, through the database: a key this batch wrote carries its batch id, and the
keys it found unchanged go to a temporary table of the transaction.

On PostgreSQL inserts go through ``COPY`` (:mod:`govshare.ingestion.bulk`). A first load
(the table held no row when the batch began) needs no key look-ups: on PostgreSQL each
chunk's rows are streamed into an open ``COPY`` as they are validated, in a savepoint of the
chunk (should the unique index refuse a key repeated from far back, the chunk is rolled back
and written the usual way); on SQLite, the only writer, rows go in with ``ON CONFLICT DO
NOTHING`` and the skipped keys are reported. The history rows of these inserts are then
written by one ``INSERT ... SELECT``.

History contract (relied on by the record views): an ``update`` keeps the changed fields'
previous values in ``_before`` and their new values in ``_after``; an ``insert`` has a
history row (operation, time, batch) with no ``_after`` (the inserted values are the data
row's, and a later update keeps them in its ``_before``: storing them twice would double
the cost of a bulk load); a ``delete`` keeps the row's values in ``_before``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Column,
    MetaData,
    Table,
    any_,
    bindparam,
    cast,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, SessionTransaction

from govshare.audit import service as audit
from govshare.catalog.models import CatalogEntry, EntryStatus
from govshare.db import utcnow
from govshare.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from govshare.ingestion import bulk, tables
from govshare.ingestion.models import (
    BatchMode,
    BatchSource,
    BatchStatus,
    DataTable,
    IngestBatch,
    IngestError,
)
from govshare.ingestion.validators import ItemRule, Problem, make_rules, validate_row
from govshare.permissions import Perm
from govshare.principal import Principal

#: compare every committed batch with the sources of its items (tests of the detection
#: itself switch it off to count what one explicit run finds)
AUTO_DETECT = True
CHUNK = 2000
#: rejected cells kept per batch (the counts stay exact beyond it)
MAX_STORED_ERRORS = 10_000
#: recent keys remembered with their row numbers (two generations of this many, so between
#: KEY_WINDOW and 2 * KEY_WINDOW); older repeats are found through the database
KEY_WINDOW = 100_000
assert KEY_WINDOW >= CHUNK

DUPLICATE_EARLIER = "与本批次前面某一行的主键重复"
HISTORY_COLUMNS = (
    "_key",
    "_operation",
    "_batch_id",
    "_changed_at",
    "_changed_by",
    "_reason",
    "_before",
    "_after",
)


@dataclass
class Outcome:
    batch: IngestBatch
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected_rows: int = 0
    #: rejected rows whose key repeats an earlier row of the batch (counted in rejected_rows)
    duplicate_rows: int = 0
    #: rows read so far (the batch's ``rows_total`` is set when the batch ends)
    rows_total: int = 0
    #: a retried client batch: the earlier batch is returned and nothing is loaded
    duplicate: bool = False


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        try:
            return Decimal(str(a)) == Decimal(str(b))
        except ArithmeticError:
            return False
    if isinstance(a, datetime) and isinstance(b, datetime):
        return a == b
    return bool(a == b)


def target_entry(session: Session, actor: Principal, entry_id: int) -> CatalogEntry:
    """An entry the actor's department may aggregate into: its own, published."""
    entry = session.get(CatalogEntry, entry_id)
    if entry is None:
        raise NotFound("目录资源不存在")
    if entry.department_id != actor.department_id:
        raise PermissionDenied("只能向本部门的目录资源汇聚数据")
    if entry.status != EntryStatus.PUBLISHED:
        raise Conflict("只能向已发布的目录资源汇聚数据")
    if session.get(DataTable, entry.id) is None:
        raise Conflict("该资源的数据表尚未建立，请联系数据主管部门")
    return entry


def find_batch(
    session: Session, entry: CatalogEntry, department_id: int, client_batch_id: str
) -> IngestBatch | None:
    return session.scalar(
        select(IngestBatch).where(
            IngestBatch.entry_id == entry.id,
            IngestBatch.department_id == department_id,
            IngestBatch.client_batch_id == client_batch_id,
        )
    )


class _RecentKeys:
    """Key -> row number of the most recent accepted rows, in bounded memory."""

    __slots__ = ("new", "old", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.new: dict[Any, int] = {}
        self.old: dict[Any, int] = {}

    def get(self, key: Any) -> int | None:
        found = self.new.get(key)
        return self.old.get(key) if found is None else found

    def add(self, key: Any, row_number: int) -> None:
        self.new[key] = row_number
        if len(self.new) >= self.size:
            self.rotate()

    def rotate(self) -> None:
        """The recent keys become the older generation; the oldest are forgotten."""
        self.old = self.new
        self.new = {}


def _start_batch(session: Session, batch: IngestBatch, entry: CatalogEntry) -> IngestBatch | None:
    """Insert the batch row; for a client batch id another request inserted first (two
    pushes of the same batch racing), return that earlier batch instead."""
    if not batch.client_batch_id:
        session.add(batch)
        session.flush()
        return None
    try:
        with session.begin_nested():
            session.add(batch)
            session.flush()
    except IntegrityError:
        # the unique index uq_ingest_batches_client_batch: on PostgreSQL the insert waited
        # for the other transaction and failed when it committed; its batch is visible now
        earlier = find_batch(session, entry, batch.department_id, batch.client_batch_id)
        if earlier is None:
            raise
        return earlier
    return None


def _validated(
    rules: list[ItemRule], rows: Iterable[tuple[int, Mapping[str, Any]]]
) -> Iterator[tuple[int, dict[str, Any], list[Problem]]]:
    for row_number, raw in rows:
        values, problems = validate_row(rules, raw)
        yield row_number, values, problems


def load_rows(
    session: Session,
    actor: Principal,
    entry: CatalogEntry,
    rows: Iterable[tuple[int, Mapping[str, Any]]],
    *,
    source: BatchSource,
    mode: BatchMode = BatchMode.VALID_ROWS,
    file_name: str = "",
    encoding: str = "",
    client_batch_id: str | None = None,
    column_names: Mapping[str, str] | None = None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    progress: Callable[[Outcome], Any] | None = None,
    checked: Iterable[tuple[int, dict[str, Any], list[Problem]]] | None = None,
) -> Outcome:
    """Validate and load ``rows`` ((row number, {field: raw value})) as one batch.

    ``progress`` is called with the outcome so far after each chunk of rows is written.
    ``checked`` replaces ``rows`` with rows validated already (row number, converted
    values, problems), as :mod:`govshare.ingestion.prefetch` reads them in a second
    process; they must have been validated against this entry's items.
    """
    registry = session.get(DataTable, entry.id)
    version = entry.current_version
    if registry is None or version is None:
        raise Conflict("该资源的数据表尚未建立")
    if client_batch_id:
        earlier = find_batch(session, entry, entry.department_id, client_batch_id)
        if earlier is not None:
            # a retried push: nothing is loaded twice
            return Outcome(batch=earlier, duplicate=True)
    names = dict(column_names or {})
    for it in version.data_items:
        names.setdefault(it["field"], it["name"])
    rules = make_rules(version.data_items, settings)
    checked_rows = checked if checked is not None else _validated(rules, rows)
    data, history = tables.tables_for(registry)
    key = registry.key_field
    batch = IngestBatch(
        entry_id=entry.id,
        department_id=entry.department_id,
        source=source.value,
        mode=mode.value,
        client_batch_id=client_batch_id,
        file_name=file_name[:256],
        encoding=encoding,
        created_by=actor.name,
    )
    earlier = _start_batch(session, batch, entry)
    if earlier is not None:
        return Outcome(batch=earlier, duplicate=True)
    outcome = Outcome(batch=batch)
    batch_id = batch.id
    errors: list[dict[str, Any]] = []
    stored_errors = 0

    def report(row_number: int, problem: Problem) -> None:
        nonlocal stored_errors
        if stored_errors >= MAX_STORED_ERRORS:
            return
        stored_errors += 1
        errors.append(
            {
                "batch_id": batch_id,
                "row_number": row_number,
                "field": problem.field,
                "column": names.get(problem.field, problem.field)[:64],
                "value": problem.value[:512],
                "reason": problem.reason[:512],
                "severity": problem.severity,
            }
        )

    def save_errors() -> None:
        if errors:
            session.execute(insert(IngestError), errors)
            errors.clear()

    writer = _Writer(session, actor, data, history, key, batch_id, report, outcome)
    all_or_nothing = mode is BatchMode.ALL_OR_NOTHING
    # all-or-nothing: chunks are written inside a savepoint, rolled back at the first bad row
    savepoint: SessionTransaction | None = session.begin_nested() if all_or_nothing else None
    writing = True
    recent = _RecentKeys(KEY_WINDOW)
    chunk: list[tuple[int, dict[str, Any]]] = []

    def reject_all() -> None:
        nonlocal savepoint, writing
        writer.abort_stream()
        if savepoint is not None:
            savepoint.rollback()
            savepoint = None
        writing = False
        writer.forget()
        chunk.clear()
        outcome.inserted = outcome.updated = outcome.unchanged = 0

    def flush_chunk() -> None:
        if writing and chunk:
            writer.write(chunk)
        chunk.clear()
        if all_or_nothing and writing and outcome.rejected_rows:
            reject_all()  # a repeated key found through the database
        if savepoint is None:  # errors kept outside the savepoint (bounded meanwhile)
            save_errors()
        if progress is not None:
            progress(outcome)

    # the loop below runs once per row of files of millions: names are bound locally
    chunk_size = CHUNK
    recent_new, recent_old = recent.new, recent.old
    append = chunk.append
    streaming = writer.streaming
    stream_row = writer.stream_row
    with session.no_autoflush:
        try:
            for row_number, values, problems in checked_rows:
                outcome.rows_total += 1
                failed = False
                if problems:
                    for p in problems:
                        report(row_number, p)
                        if p.severity == "error":
                            failed = True
                key_value = values.get(key)
                if not failed:
                    first = recent_new.get(key_value)
                    if first is None:
                        first = recent_old.get(key_value)
                    if first is not None:
                        report(
                            row_number, Problem(key, str(key_value), f"与第 {first} 行的主键重复")
                        )
                        outcome.duplicate_rows += 1
                        failed = True
                if failed:
                    outcome.rejected_rows += 1
                    if all_or_nothing and writing:
                        reject_all()
                    continue
                recent_new[key_value] = row_number
                if len(recent_new) >= recent.size:
                    recent.rotate()
                    recent_new, recent_old = recent.new, recent.old
                if writing:
                    append((row_number, values))
                    if streaming:
                        stream_row(values)
                    if len(chunk) >= chunk_size:
                        flush_chunk()
                        streaming = writing and writer.streaming
                elif outcome.rows_total % chunk_size == 0 and progress is not None:
                    progress(outcome)
            flush_chunk()
            writer.close()
            if savepoint is not None:
                savepoint.commit()  # RELEASE SAVEPOINT: the rows stay in the batch's transaction
            save_errors()
        except BaseException:
            writer.abort_stream()  # the connection must be usable for the rollback
            raise
    if all_or_nothing and outcome.rejected_rows:
        batch.status = BatchStatus.REJECTED.value
        batch.message = f"有 {outcome.rejected_rows} 行不合格，按“全部有效才入库”未导入任何数据"
    else:
        batch.status = BatchStatus.COMMITTED.value
        batch.message = (
            f"新增 {outcome.inserted} 行，更新 {outcome.updated} 行，未变 {outcome.unchanged} 行，"
            f"拒绝 {outcome.rejected_rows} 行"
        )
        if outcome.duplicate_rows:
            batch.message += f"（其中主键重复 {outcome.duplicate_rows} 行）"
    batch.rows_total = outcome.rows_total
    batch.rows_loaded = outcome.inserted + outcome.updated
    batch.rows_unchanged = outcome.unchanged
    batch.rows_rejected = outcome.rejected_rows
    batch.rows_duplicate = outcome.duplicate_rows
    batch.finished_at = utcnow()
    session.flush()
    audit.record(
        session,
        actor,
        "ingestion:batch:load",
        "ingest_batch",
        batch.id,
        {
            "entry": entry.code,
            "source": source.value,
            "mode": mode.value,
            "status": batch.status,
            "rows": batch.rows_total,
            "inserted": outcome.inserted,
            "updated": outcome.updated,
            "rejected": outcome.rejected_rows,
            "duplicate": outcome.duplicate_rows,
            "file": file_name[:128],
        },
    )
    if AUTO_DETECT and batch.status == BatchStatus.COMMITTED.value and batch.rows_loaded:
        # one data item, one source: compare what changed with the other departments'
        # copies of the same items (seed 004 art. 15); cheap when the entry shares none
        from govshare.ingestion import sources

        sources.detect(session, Principal.platform("govshare 一数一源核验"), {entry.id})
    return outcome


class _Writer:
    """Writes chunks of valid rows of one batch: inserts, updates and their history."""

    def __init__(
        self,
        session: Session,
        actor: Principal,
        data: Table,
        history: Table,
        key: str,
        batch_id: int,
        report: Callable[[int, Problem], None],
        outcome: Outcome,
    ) -> None:
        self.session = session
        self.actor_name = actor.name
        self.data = data
        self.history = history
        self.key = key
        self.batch_id = batch_id
        self.report = report
        self.outcome = outcome
        self.now = utcnow()
        self.fields = {c.name for c in data.columns if not c.name.startswith("_")}
        self.use_copy = bulk.copy_supported(session)
        self._update_stmt: Any = None
        self._columns: list[str] | None = None
        #: the table held no row when the batch began (a first load): chunks are inserted
        #: without looking their keys up (see _insert_all)
        self.fresh = session.execute(select(data.c._id).limit(1)).first() is None
        dbapi = session.get_bind().dialect.dbapi
        self._driver_integrity_error: type[Exception] = (
            dbapi.IntegrityError if dbapi is not None else IntegrityError
        )
        #: keys this batch found unchanged (their rows do not carry the batch id), in a
        #: temporary table of the transaction, created at the first unchanged row
        self._unchanged: Table | None = None
        #: rows inserted by _insert_all whose history rows are still to be written
        self._fresh_pending = 0
        #: PostgreSQL, first load: the chunk's rows are streamed into an open COPY as they
        #: are validated (inside a savepoint of the chunk), see stream_row
        self._stream: bulk.CopyStream | None = None
        self._stream_savepoint: SessionTransaction | None = None
        self._stream_rows = 0
        self._system: tuple[Any, ...] = (batch_id, self.now, self.actor_name, False)

    def _remember_unchanged(self, keys: list[Any]) -> None:
        if self._unchanged is None:
            column = self.data.c[self.key]
            self._unchanged = Table(
                f"ingest_unchanged_{self.batch_id}",
                MetaData(),
                Column("k", column.type, primary_key=True),
                prefixes=["TEMPORARY"],
                postgresql_on_commit="DROP",
            )
            self._unchanged.create(self.session.connection())
        bulk.insert_rows(
            self.session, self._unchanged, ("k",), [(k,) for k in keys], use_copy=self.use_copy
        )

    def _found_unchanged(self, keys: list[Any]) -> set[Any]:
        if self._unchanged is None or not keys:
            return set()
        t = self._unchanged
        return set(self.session.scalars(select(t.c.k).where(t.c.k.in_(keys))))

    @property
    def streaming(self) -> bool:
        """Whether rows are streamed to the database as they are validated."""
        return self.fresh and self.use_copy

    def stream_row(self, values: dict[str, Any]) -> None:
        """Send one valid row of the current chunk into the chunk's open COPY."""
        if self._stream is None:
            if self._columns is None:
                self._columns = [*values, "_batch_id", "_updated_at", "_updated_by", "_deleted"]
            self._stream_savepoint = self.session.begin_nested()
            self._stream = bulk.CopyStream(self.session, self.data, self._columns)
            self._stream_rows = 0
        self._stream.write_row((*values.values(), *self._system))
        self._stream_rows += 1

    def _finish_stream(self) -> bool:
        """End the chunk's COPY: True when its rows are in, False (nothing written) when
        the unique index refused a key."""
        stream, savepoint = self._stream, self._stream_savepoint
        assert stream is not None
        assert savepoint is not None
        self._stream = self._stream_savepoint = None
        try:
            stream.finish()
        except (IntegrityError, self._driver_integrity_error):
            savepoint.rollback()
            return False
        savepoint.commit()
        self.outcome.inserted += self._stream_rows
        self._fresh_pending += self._stream_rows
        return True

    def abort_stream(self) -> None:
        """Abandon the chunk's open COPY (a bad row in all-or-nothing mode, an error)."""
        stream, savepoint = self._stream, self._stream_savepoint
        self._stream = self._stream_savepoint = None
        if stream is not None:
            stream.abort()
        if savepoint is not None and savepoint.is_active:
            savepoint.rollback()

    def forget(self) -> None:
        """After a rollback of the savepoint: its rows and temporary table went with it."""
        self._unchanged = None
        self._fresh_pending = 0

    def close(self) -> None:
        """At the end of the batch (before the savepoint of all-or-nothing is released)."""
        self._write_fresh_history()
        if self._unchanged is not None:
            self._unchanged.drop(self.session.connection())
            self._unchanged = None

    def _update(self, value_fields: list[str]) -> Any:
        data = self.data
        return (
            update(data)
            .where(data.c._id == bindparam("b_id"))
            .values(
                {f: bindparam(f"b_{f}") for f in value_fields}
                | {
                    "_batch_id": bindparam("b__batch_id"),
                    "_updated_at": bindparam("b__updated_at"),
                    "_updated_by": bindparam("b__updated_by"),
                    "_deleted": False,
                }
            )
        )

    def _existing(self, keys: list[Any]) -> dict[Any, Any]:
        data, key = self.data, self.key
        column = data.c[key]
        if self.use_copy:  # one array parameter rather than thousands in an IN list
            condition = column == any_(bindparam("keys", keys, type_=ARRAY(column.type)))
        else:
            condition = column.in_(keys)
        return {
            row[key]: row for row in self.session.execute(select(data).where(condition)).mappings()
        }

    def _insert_all(self, chunk: list[tuple[int, dict[str, Any]]]) -> None:
        """Insert a chunk into a table that was empty when the batch began (SQLite, where
        the batch is the only writer: BEGIN IMMEDIATE). Every row is new unless this batch
        had its key further back than the window of keys: such rows are skipped by the
        unique index (``ON CONFLICT DO NOTHING``, no savepoint needed) and reported. The
        history of the inserts is written by one statement later
        (:meth:`_write_fresh_history`)."""
        assert self._columns is not None
        system = self._system
        inserts = [(*values.values(), *system) for _, values in chunk]
        inserted = bulk.executemany_insert(
            self.session, self.data, self._columns, inserts, skip_conflicts_on=self.key
        )
        if inserted < len(inserts):
            # the rows of this chunk are the table's last `inserted` rows; a key of the
            # chunk held by an earlier row was skipped
            data, key = self.data, self.key
            newest = select(data.c._id).order_by(data.c._id.desc()).limit(inserted).subquery()
            first_new = self.session.scalar(select(func.min(newest.c._id)))
            keys = [values[key] for _, values in chunk]
            condition = data.c[key].in_(keys)
            if first_new is not None:
                condition = condition & (data.c._id < first_new)
            skipped = set(self.session.scalars(select(data.c[key]).where(condition)))
            for row_number, values in chunk:
                if values[key] in skipped:
                    self.report(row_number, Problem(key, str(values[key]), DUPLICATE_EARLIER))
                    self.outcome.rejected_rows += 1
                    self.outcome.duplicate_rows += 1
        self.outcome.inserted += inserted
        self._fresh_pending += inserted

    def _write_fresh_history(self) -> None:
        """The insert history rows of the rows inserted by :meth:`_insert_all`: while the
        batch inserts into a table that was empty, every row carrying its id is one of
        them, so the database writes them in one ``INSERT ... SELECT`` (the values the
        Python path writes: the key as text, JSON null before and after), ordered by key
        so that the history's index is filled in order (written chunk by chunk instead,
        the import took a quarter longer on SQLite)."""
        if not self._fresh_pending:
            return
        data, history = self.data, self.history
        json_null = history.c._before.type
        stmt = insert(history).from_select(
            list(HISTORY_COLUMNS),
            select(
                cast(data.c[self.key], history.c._key.type),
                literal("insert", history.c._operation.type),
                literal(self.batch_id, history.c._batch_id.type),
                literal(self.now, history.c._changed_at.type),
                literal(self.actor_name, history.c._changed_by.type),
                literal("汇聚", history.c._reason.type),
                bindparam("before", None, type_=json_null),
                bindparam("after", None, type_=json_null),
            )
            .where(data.c._batch_id == self.batch_id)
            .order_by(data.c[self.key]),
        )
        self.session.execute(stmt)
        self._fresh_pending = 0

    def write(self, chunk: list[tuple[int, dict[str, Any]]]) -> None:
        session, key, batch_id, now = self.session, self.key, self.batch_id, self.now
        actor_name, outcome, fields = self.actor_name, self.outcome, self.fields
        if self._columns is None:
            self._columns = [*chunk[0][1], "_batch_id", "_updated_at", "_updated_by", "_deleted"]
        if self.fresh and self._stream is None:
            self._insert_all(chunk)
            return
        if self.fresh:
            if self._finish_stream():
                return
            self.fresh = False  # a key repeated from far back: look keys up from now on
            self._write_fresh_history()
        existing = self._existing([values[key] for _, values in chunk])
        system = (batch_id, now, actor_name, False)
        # keys written earlier by this batch carry its id; keys it found unchanged are kept
        # in the temporary table (both only matter beyond the in-memory window of keys)
        earlier = self._found_unchanged(
            [k for k, row in existing.items() if row["_batch_id"] != batch_id]
        )
        unchanged: list[Any] = []
        inserts: list[tuple[Any, ...]] = []
        updates: list[dict[str, Any]] = []
        changes: list[tuple[Any, ...]] = []
        for row_number, values in chunk:
            k = values[key]
            old = existing.get(k)
            if old is None:
                inserts.append((*values.values(), *system))
                # the inserted values are the data row's; later updates keep them in _before
                changes.append((str(k), "insert", batch_id, now, actor_name, "汇聚", None, None))
                continue
            if old["_batch_id"] == batch_id or k in earlier:
                # this batch had the key already, further back than the window of keys
                self.report(row_number, Problem(key, str(k), DUPLICATE_EARLIER))
                outcome.rejected_rows += 1
                outcome.duplicate_rows += 1
                continue
            diff = {f: v for f, v in values.items() if f in fields and not _same(old[f], v)}
            if not diff and not old["_deleted"]:
                outcome.unchanged += 1
                unchanged.append(k)
                continue
            updates.append(
                {
                    "b_id": old["_id"],
                    **{f"b_{f}": v for f, v in values.items()},
                    "b__batch_id": batch_id,
                    "b__updated_at": now,
                    "b__updated_by": actor_name,
                }
            )
            changes.append(
                (
                    str(k),
                    "update",
                    batch_id,
                    now,
                    actor_name,
                    "汇聚",
                    {f: _jsonable(old[f]) for f in diff},
                    {f: _jsonable(values[f]) for f in diff},
                )
            )
        if inserts:
            bulk.insert_rows(session, self.data, self._columns, inserts, use_copy=self.use_copy)
            outcome.inserted += len(inserts)
        if updates:
            if self._update_stmt is None:
                self._update_stmt = self._update(list(chunk[0][1]))
            session.connection().execute(self._update_stmt, updates)
            outcome.updated += len(updates)
        if changes:
            bulk.insert_rows(
                session, self.history, HISTORY_COLUMNS, changes, use_copy=self.use_copy
            )
        if unchanged:
            self._remember_unchanged(unchanged)


def errors_of(session: Session, batch_id: int, limit: int = 1000) -> list[IngestError]:
    return list(
        session.scalars(
            select(IngestError)
            .where(IngestError.batch_id == batch_id)
            .order_by(IngestError.row_number, IngestError.id)
            .limit(limit)
        )
    )


def check_mode(value: str) -> BatchMode:
    try:
        return BatchMode(value)
    except ValueError:
        raise ValidationFailed("导入方式应为 valid_rows 或 all_or_nothing", field="mode") from None


def batches_for(
    session: Session, principal: Principal, *, entry_id: int | None = None, limit: int = 200
) -> list[IngestBatch]:
    """Batches a principal may see: its own department's, or all for the authority."""
    q = select(IngestBatch).order_by(IngestBatch.id.desc()).limit(limit)
    if entry_id is not None:
        q = q.where(IngestBatch.entry_id == entry_id)
    if not principal.can(Perm.CATALOG_REVIEW):
        q = q.where(IngestBatch.department_id == principal.department_id)
    return list(session.scalars(q))


def get_batch(session: Session, principal: Principal, batch_id: int) -> IngestBatch:
    batch = session.get(IngestBatch, batch_id)
    if batch is None or (
        not principal.can(Perm.CATALOG_REVIEW) and batch.department_id != principal.department_id
    ):
        raise NotFound("导入批次不存在")
    return batch


def own_entries(session: Session, principal: Principal) -> list[CatalogEntry]:
    """Published entries of the principal's department that have a data table."""
    return list(
        session.scalars(
            select(CatalogEntry)
            .join(DataTable, DataTable.entry_id == CatalogEntry.id)
            .where(CatalogEntry.department_id == principal.department_id)
            .where(CatalogEntry.status == EntryStatus.PUBLISHED.value)
            .order_by(CatalogEntry.code)
        )
    )
