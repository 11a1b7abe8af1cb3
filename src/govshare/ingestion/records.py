"""Aggregated records: browse an entry's rows, show a record as of a date, delete by request.

No aggregated record is changed or deleted outside an approved process (seed 001 art. 18):
a department files a deletion request naming the records' keys and the reason; the data
authority over its jurisdiction approves or rejects it. Approval turns each record into a
tombstone (``_deleted``), with its last values kept in the history table, so nothing is
lost and the record can still be shown as of any earlier date. Reading records is audited
like every other access to shared data (seed 003 art. 33).

A record as of a date is rebuilt backwards from its current values: every history entry
after the date is undone (an ``update`` restores its ``_before`` values); the record did
not exist yet if its ``insert`` is after the date, and was deleted if the last of its
operations up to the date is a ``delete``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session

from govshare.audit import service as audit
from govshare.catalog import service as catalog_service
from govshare.catalog.models import CatalogEntry
from govshare.db import LOCAL_TZ, utcnow
from govshare.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from govshare.ingestion import tables
from govshare.ingestion.models import DataTable, DeletionRequest, DeletionStatus
from govshare.orgs.models import Department
from govshare.permissions import Perm
from govshare.principal import Principal

PAGE_SIZE = 50
#: keys one deletion request may name (a larger clean-up is several requests)
MAX_KEYS = 1000
MAX_KEY_LENGTH = 128


# ---------------------------------------------------------------- who may see what


def may_read_entry(session: Session, principal: Principal, entry: CatalogEntry) -> bool:
    """The entry's own department, or the data authority over its jurisdiction."""
    if not principal.can(Perm.RECORD_READ):
        return False
    if principal.department_id is not None and principal.department_id == entry.department_id:
        return True
    return principal.can(Perm.RECORD_DELETE_REVIEW) and catalog_service.covers(
        session, principal, entry.jurisdiction_id
    )


def readable_entry(session: Session, principal: Principal, entry_id: int) -> CatalogEntry:
    entry = session.get(CatalogEntry, entry_id)
    if (
        entry is None
        or session.get(DataTable, entry_id) is None
        or not may_read_entry(session, principal, entry)
    ):
        raise NotFound("目录资源不存在或没有汇聚数据")
    return entry


def readable_entries(session: Session, principal: Principal) -> list[CatalogEntry]:
    """Entries with a data table whose records the principal may read."""
    q = (
        select(CatalogEntry)
        .join(DataTable, DataTable.entry_id == CatalogEntry.id)
        .order_by(CatalogEntry.code)
    )
    if not principal.can(Perm.RECORD_DELETE_REVIEW):
        q = q.where(CatalogEntry.department_id == principal.department_id)
    return [e for e in session.scalars(q) if may_read_entry(session, principal, e)]


def _tables(session: Session, entry: CatalogEntry) -> tuple[DataTable, Table, Table]:
    registry = session.get(DataTable, entry.id)
    if registry is None:
        raise NotFound("该资源没有数据表")
    data, history = tables.tables_for(registry)
    return registry, data, history


def item_columns(registry: DataTable) -> list[tuple[str, str, bool]]:
    """(field, Chinese name, removed) of the data table's item columns, in catalog order."""
    return [(f, c.get("name", f), bool(c.get("removed"))) for f, c in registry.columns.items()]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(LOCAL_TZ).isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


# ---------------------------------------------------------------- browsing


@dataclass
class RecordPage:
    entry: CatalogEntry
    columns: list[tuple[str, str, bool]]
    key_field: str
    rows: list[dict[str, Any]]
    total: int
    page: int
    has_next: bool
    include_deleted: bool
    key: str


def browse(
    session: Session,
    principal: Principal,
    entry: CatalogEntry,
    *,
    key: str = "",
    page: int = 1,
    include_deleted: bool = False,
) -> RecordPage:
    """A page of the entry's records, newest change first; ``key`` finds one by its key
    (exact) or by a prefix of at least 6 characters."""
    registry, data, _ = _tables(session, entry)
    key = key.strip()[:MAX_KEY_LENGTH]
    page = max(1, min(page, 100_000))
    q = select(data)
    count = select(func.count()).select_from(data)
    if not include_deleted:
        q = q.where(data.c._deleted.is_(False))
        count = count.where(data.c._deleted.is_(False))
    if key:
        column = data.c[registry.key_field]
        cond = column == key if len(key) < 6 else column.like(_prefix(key), escape="\\")
        q = q.where(cond)
        count = count.where(cond)
    rows = [
        {k: _plain(v) for k, v in row._mapping.items()}
        for row in session.execute(
            q.order_by(data.c._updated_at.desc(), data.c._id.desc())
            .offset((page - 1) * PAGE_SIZE)
            .limit(PAGE_SIZE + 1)
        )
    ]
    total = int(session.scalar(count) or 0)
    audit.record(
        session,
        principal,
        "ingestion:record:browse",
        "catalog_entry",
        entry.id,
        {"entry": entry.code, "key": key, "page": page, "rows": min(len(rows), PAGE_SIZE)},
    )
    return RecordPage(
        entry=entry,
        columns=item_columns(registry),
        key_field=registry.key_field,
        rows=rows[:PAGE_SIZE],
        total=total,
        page=page,
        has_next=len(rows) > PAGE_SIZE,
        include_deleted=include_deleted,
        key=key,
    )


def _prefix(key: str) -> str:
    escaped = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


# ---------------------------------------------------------------- one record, as of a date


@dataclass
class Change:
    operation: str
    operation_label: str
    changed_at: datetime
    changed_by: str
    batch_id: int | None
    reason: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass
class RecordView:
    entry: CatalogEntry
    key: str
    columns: list[tuple[str, str, bool]]
    #: the values (current, or as of ``as_of``); None when the record did not exist then
    values: dict[str, Any] | None
    deleted: bool
    as_of: date | None
    changes: list[Change] = field(default_factory=list)
    updated_at: datetime | None = None
    updated_by: str = ""


OPERATION_LABELS = {"insert": "新增", "update": "更新", "delete": "删除"}


def _end_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=LOCAL_TZ)


def record(
    session: Session,
    principal: Principal,
    entry: CatalogEntry,
    key: str,
    *,
    as_of: date | None = None,
) -> RecordView:
    """One record with its change history; with ``as_of``, its values at the end of that day."""
    registry, data, history = _tables(session, entry)
    key = key.strip()[:MAX_KEY_LENGTH]
    row = session.execute(select(data).where(data.c[registry.key_field] == key)).first()
    if row is None:
        raise NotFound("没有该主键的记录")
    current = dict(row._mapping)
    changes = [
        Change(
            operation=h._operation,
            operation_label=OPERATION_LABELS.get(h._operation, h._operation),
            changed_at=h._changed_at,
            changed_by=h._changed_by,
            batch_id=h._batch_id,
            reason=h._reason,
            before=h._before,
            after=h._after,
        )
        for h in session.execute(
            select(history)
            .where(history.c._key == key)
            .order_by(history.c._changed_at, history.c._hist_id)
        )
    ]
    fields = [f for f, _, _ in item_columns(registry)]
    values: dict[str, Any] | None = {f: _plain(current.get(f)) for f in fields}
    deleted = bool(current["_deleted"])
    if as_of is not None:
        cutoff = _end_of(as_of)
        for change in reversed(changes):
            if change.changed_at < cutoff:
                break
            if change.operation == "update" and change.before and values is not None:
                values.update(change.before)
        earlier = [c for c in changes if c.changed_at < cutoff]
        if not earlier:
            values = None
            deleted = False
        else:
            deleted = earlier[-1].operation == "delete"
    audit.record(
        session,
        principal,
        "ingestion:record:view",
        "catalog_entry",
        entry.id,
        {"entry": entry.code, "key": key, "as_of": as_of.isoformat() if as_of else None},
    )
    return RecordView(
        entry=entry,
        key=key,
        columns=item_columns(registry),
        values=values,
        deleted=deleted,
        as_of=as_of,
        changes=list(reversed(changes)),
        updated_at=current["_updated_at"],
        updated_by=current["_updated_by"],
    )


# ---------------------------------------------------------------- deletion requests


def parse_keys(text: str | list[str]) -> list[str]:
    """Keys from a textarea (one per line, or separated by commas/spaces) or a list."""
    raw = text if isinstance(text, list) else text.replace(",", "\n").replace("，", "\n").split()
    keys = list(dict.fromkeys(k.strip() for k in raw if k and k.strip()))
    if not keys:
        raise ValidationFailed("请填写要删除的记录主键", field="keys")
    if len(keys) > MAX_KEYS:
        raise ValidationFailed(f"一次最多申请删除 {MAX_KEYS} 条记录，请分批申请", field="keys")
    long = [k for k in keys if len(k) > MAX_KEY_LENGTH]
    if long:
        raise ValidationFailed(f"主键过长：{long[0][:32]}…", field="keys")
    return keys


def request_deletion(
    session: Session, actor: Principal, entry: CatalogEntry, keys: list[str], reason: str
) -> DeletionRequest:
    """A department asks to delete records of its own entry; the authority decides."""
    if not actor.can(Perm.RECORD_DELETE_REQUEST) or actor.department_id != entry.department_id:
        raise PermissionDenied("只能申请删除本部门目录资源的数据")
    reason = reason.strip()
    if len(reason) < 4:
        raise ValidationFailed("请说明删除理由（至少 4 个字）", field="reason")
    if len(reason) > 2000:
        raise ValidationFailed("删除理由最多 2000 字", field="reason")
    registry, data, _ = _tables(session, entry)
    column = data.c[registry.key_field]
    live = set(session.scalars(select(column).where(column.in_(keys), data.c._deleted.is_(False))))
    missing = [k for k in keys if k not in live]
    if missing:
        shown = "、".join(missing[:5]) + ("等" if len(missing) > 5 else "")
        raise ValidationFailed(f"{len(missing)} 个主键没有对应的有效记录：{shown}", field="keys")
    pending = session.scalars(
        select(DeletionRequest).where(
            DeletionRequest.entry_id == entry.id,
            DeletionRequest.status == DeletionStatus.PENDING.value,
        )
    ).all()
    already = {k for r in pending for k in r.keys} & set(keys)
    if already:
        raise Conflict(f"主键 {sorted(already)[0]} 已在待审核的删除申请中")
    req = DeletionRequest(
        entry_id=entry.id,
        department_id=entry.department_id,
        keys=keys,
        reason=reason,
        requested_by=actor.name,
    )
    session.add(req)
    session.flush()
    audit.record(
        session,
        actor,
        "ingestion:deletion:request",
        "deletion_request",
        req.id,
        {"entry": entry.code, "rows": len(keys), "reason": reason[:200]},
    )
    return req


def may_review(session: Session, principal: Principal, req: DeletionRequest) -> bool:
    department = session.get(Department, req.department_id)
    return (
        department is not None
        and principal.can(Perm.RECORD_DELETE_REVIEW)
        and catalog_service.covers(session, principal, department.jurisdiction_id)
    )


def get_request(session: Session, principal: Principal, request_id: int) -> DeletionRequest:
    req = session.get(DeletionRequest, request_id) if 0 < request_id < 2**31 else None
    if req is None or not (
        principal.department_id == req.department_id or may_review(session, principal, req)
    ):
        raise NotFound("删除申请不存在")
    return req


def list_requests(
    session: Session, principal: Principal, *, status: str = "", limit: int = 200
) -> list[DeletionRequest]:
    q = select(DeletionRequest).order_by(DeletionRequest.id.desc()).limit(limit)
    if status:
        q = q.where(DeletionRequest.status == status)
    if not principal.can(Perm.RECORD_DELETE_REVIEW):
        q = q.where(DeletionRequest.department_id == principal.department_id)
    return [
        r
        for r in session.scalars(q)
        if r.department_id == principal.department_id or may_review(session, principal, r)
    ]


def _decided(req: DeletionRequest) -> None:
    if req.status != DeletionStatus.PENDING.value:
        raise Conflict(f"该申请{DeletionStatus(req.status).label}，不能再处理")


def review_deletion(
    session: Session, actor: Principal, req: DeletionRequest, decision: str, comment: str
) -> DeletionRequest:
    """The authority approves (records become tombstones) or rejects (comment required)."""
    if not may_review(session, actor, req):
        raise PermissionDenied("只有本级及上级数据主管部门可以审核删除申请")
    _decided(req)
    comment = comment.strip()[:2000]
    entry = session.get(CatalogEntry, req.entry_id)
    assert entry is not None
    if decision == "reject":
        if not comment:
            raise ValidationFailed("驳回时请填写审核意见", field="comment")
        req.status = DeletionStatus.REJECTED.value
    elif decision == "approve":
        req.rows_deleted = _tombstone(session, actor, entry, req)
        req.status = DeletionStatus.APPROVED.value
    else:
        raise ValidationFailed("审核结论应为批准或驳回", field="decision")
    req.reviewed_at = utcnow()
    req.reviewed_by = actor.name
    req.review_comment = comment
    session.flush()
    audit.record(
        session,
        actor,
        f"ingestion:deletion:{decision}",
        "deletion_request",
        req.id,
        {"entry": entry.code, "rows": len(req.keys), "deleted": req.rows_deleted},
    )
    return req


def withdraw_deletion(session: Session, actor: Principal, req: DeletionRequest) -> None:
    if not actor.can(Perm.RECORD_DELETE_REQUEST) or actor.department_id != req.department_id:
        raise PermissionDenied("只能撤回本部门的删除申请")
    _decided(req)
    req.status = DeletionStatus.WITHDRAWN.value
    req.reviewed_at = utcnow()
    req.reviewed_by = actor.name
    session.flush()
    audit.record(session, actor, "ingestion:deletion:withdraw", "deletion_request", req.id, {})


def _tombstone(
    session: Session, actor: Principal, entry: CatalogEntry, req: DeletionRequest
) -> int:
    registry, data, history = _tables(session, entry)
    column = data.c[registry.key_field]
    fields = [f for f, _, _ in item_columns(registry)]
    now = utcnow()
    reason = f"删除申请 {req.id}：{req.reason}"[:256]
    deleted = 0
    for start in range(0, len(req.keys), 500):
        keys = req.keys[start : start + 500]
        rows = session.execute(
            select(data).where(column.in_(keys), data.c._deleted.is_(False))
        ).all()
        if not rows:
            continue
        session.execute(
            update(data)
            .where(data.c._id.in_([r._mapping["_id"] for r in rows]))
            .values(_deleted=True, _updated_at=now, _updated_by=actor.name)
        )
        session.execute(
            history.insert(),
            [
                {
                    "_key": str(r._mapping[registry.key_field]),
                    "_operation": "delete",
                    "_batch_id": None,
                    "_changed_at": now,
                    "_changed_by": actor.name,
                    "_reason": reason,
                    "_before": {f: _plain(r._mapping[f]) for f in fields},
                    "_after": None,
                }
                for r in rows
            ],
        )
        deleted += len(rows)
    return deleted
