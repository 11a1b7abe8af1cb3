"""Loading rows into an entry's data table: one batch, one transaction.

A batch is atomic: its rows, their history and its error report are written in the caller's
single transaction, so a crash leaves nothing partial and the batch can simply be run again.
In ``valid_rows`` mode invalid rows are reported and valid rows land; in ``all_or_nothing``
mode any invalid row rejects the whole batch (its error report is still kept). Rows are
keyed by the entry's key item: a new key inserts, a changed row updates and keeps its
previous values in the history table, an identical row changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from govshare.audit import service as audit
from govshare.catalog.models import CatalogEntry, EntryStatus
from govshare.db import utcnow
from govshare.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from govshare.ingestion import tables
from govshare.ingestion.models import (
    BatchMode,
    BatchSource,
    BatchStatus,
    DataTable,
    IngestBatch,
    IngestError,
)
from govshare.ingestion.validators import Problem, make_rules, validate_row
from govshare.permissions import Perm
from govshare.principal import Principal

CHUNK = 2000
#: rejected cells kept per batch (the counts stay exact beyond it)
MAX_STORED_ERRORS = 10_000


@dataclass
class Outcome:
    batch: IngestBatch
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected_rows: int = 0
    errors: list[IngestError] = field(default_factory=list)


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
    progress: Any = None,
) -> Outcome:
    """Validate and load ``rows`` ((row number, {field: raw value})) as one batch."""
    registry = session.get(DataTable, entry.id)
    version = entry.current_version
    if registry is None or version is None:
        raise Conflict("该资源的数据表尚未建立")
    if client_batch_id:
        earlier = find_batch(session, entry, entry.department_id, client_batch_id)
        if earlier is not None:
            return Outcome(batch=earlier)  # a retried push: nothing is loaded twice
    names = dict(column_names or {})
    for it in version.data_items:
        names.setdefault(it["field"], it["name"])
    rules = make_rules(version.data_items, settings)
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
    session.add(batch)
    session.flush()
    outcome = Outcome(batch=batch)
    stored_errors = 0
    seen_keys: dict[Any, int] = {}

    def report(row_number: int, problem: Problem) -> None:
        nonlocal stored_errors
        if stored_errors >= MAX_STORED_ERRORS:
            return
        stored_errors += 1
        session.add(
            IngestError(
                batch_id=batch.id,
                row_number=row_number,
                field=problem.field,
                column=names.get(problem.field, problem.field)[:64],
                value=problem.value[:512],
                reason=problem.reason[:512],
                severity=problem.severity,
            )
        )

    def chunks() -> Iterator[list[tuple[int, dict[str, Any]]]]:
        chunk: list[tuple[int, dict[str, Any]]] = []
        for row_number, raw in rows:
            outcome.batch.rows_total += 1
            values, problems = validate_row(rules, raw)
            errors = [p for p in problems if p.severity == "error"]
            for p in problems:
                report(row_number, p)
            key_value = values.get(key)
            if not errors and key_value in seen_keys:
                report(
                    row_number,
                    Problem(key, str(key_value), f"与第 {seen_keys[key_value]} 行的主键重复"),
                )
                errors = [problems[0]] if problems else [Problem(key, "", "主键重复")]
            if errors:
                outcome.rejected_rows += 1
                continue
            seen_keys[key_value] = row_number
            chunk.append((row_number, values))
            if len(chunk) >= CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    now = utcnow()
    pending: list[list[tuple[int, dict[str, Any]]]] = []
    for chunk in chunks():
        if mode is BatchMode.ALL_OR_NOTHING and outcome.rejected_rows:
            continue  # keep validating (for the report), load nothing
        if mode is BatchMode.ALL_OR_NOTHING:
            pending.append(chunk)
        else:
            _write(session, actor, data, history, key, batch.id, now, chunk, outcome)
        if progress is not None:
            progress(outcome)
    if mode is BatchMode.ALL_OR_NOTHING and not outcome.rejected_rows:
        for chunk in pending:
            _write(session, actor, data, history, key, batch.id, now, chunk, outcome)
    if mode is BatchMode.ALL_OR_NOTHING and outcome.rejected_rows:
        batch.status = BatchStatus.REJECTED.value
        batch.message = f"有 {outcome.rejected_rows} 行不合格，按“全部有效才入库”未导入任何数据"
    else:
        batch.status = BatchStatus.COMMITTED.value
        batch.message = (
            f"新增 {outcome.inserted} 行，更新 {outcome.updated} 行，未变 {outcome.unchanged} 行，"
            f"拒绝 {outcome.rejected_rows} 行"
        )
    batch.rows_loaded = outcome.inserted + outcome.updated
    batch.rows_unchanged = outcome.unchanged
    batch.rows_rejected = outcome.rejected_rows
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
            "file": file_name[:128],
        },
    )
    return outcome


def _write(
    session: Session,
    actor: Principal,
    data: Any,
    history: Any,
    key: str,
    batch_id: int,
    now: datetime,
    chunk: list[tuple[int, dict[str, Any]]],
    outcome: Outcome,
) -> None:
    keys = [values[key] for _, values in chunk]
    fields = [c.name for c in data.columns if not c.name.startswith("_")]
    existing = {
        row._mapping[key]: row._mapping
        for row in session.execute(select(data).where(data.c[key].in_(keys)))
    }
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    for _, values in chunk:
        k = values[key]
        old = existing.get(k)
        if old is None:
            inserts.append(
                {
                    **values,
                    "_batch_id": batch_id,
                    "_updated_at": now,
                    "_updated_by": actor.name,
                    "_deleted": False,
                }
            )
            changes.append(
                {
                    "_key": str(k),
                    "_operation": "insert",
                    "_batch_id": batch_id,
                    "_changed_at": now,
                    "_changed_by": actor.name,
                    "_reason": "汇聚",
                    "_before": None,
                    "_after": {f: _jsonable(v) for f, v in values.items()},
                }
            )
            continue
        diff = {f: v for f, v in values.items() if f in fields and not _same(old[f], v)}
        if not diff and not old["_deleted"]:
            outcome.unchanged += 1
            continue
        updates.append(
            {
                "b_id": old["_id"],
                **{f"b_{f}": v for f, v in values.items()},
                "b__batch_id": batch_id,
                "b__updated_at": now,
                "b__updated_by": actor.name,
            }
        )
        changes.append(
            {
                "_key": str(k),
                "_operation": "update",
                "_batch_id": batch_id,
                "_changed_at": now,
                "_changed_by": actor.name,
                "_reason": "汇聚",
                "_before": {f: _jsonable(old[f]) for f in diff},
                "_after": {f: _jsonable(values[f]) for f in diff},
            }
        )
    if inserts:
        session.execute(insert(data), inserts)
        outcome.inserted += len(inserts)
    if updates:
        from sqlalchemy import bindparam

        value_fields = [f for f in chunk[0][1]]
        stmt = (
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
        session.connection().execute(stmt, updates)
        outcome.updated += len(updates)
    if changes:
        session.execute(insert(history), changes)


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
