"""One data item, one source (一数一源): repeat-collection flags and the conflicts list.

Seed 003 (南阳市政务数据共享管理暂行办法) art. 24: collection follows the responsibility list
and "一数一源、一源多用"; data that can be obtained or confirmed by sharing must not be
collected again or by several departments, unless a law or regulation says otherwise.
Seed 004 (内乡县政务信息资源共享管理办法（试行）) art. 7: the same principle, and an
administrative body must not collect again what it can obtain by sharing; art. 15: when
bodies provide the same information with different contents, the informatization
authority verifies it together with the providing bodies and proposes how to handle it.

What this module decides:

- **A data item** is identified within a subject kind (person: ID number; organization:
  credit code) by its Chinese name, normalised (NFKC, whitespace removed): two entries of
  the same subject kind that both carry 婚姻状况 carry the same item. Field names are NOT
  used to identify items: they are technical names each department chooses (``name`` is
  姓名 in one entry and 企业名称 in another), so equal field names would flag unrelated
  items. Entries keyed by another kind of key (``other``) have no common subject to compare
  and are left out. The subject key item itself (ID number, credit code) is the join key,
  never a repeat collection.
- **The source** of an item is, by default, the entry that first listed it, as the
  responsibility list records it (seed 003 art. 21): the earliest publish date of an
  approved version of a published entry that carries the item, then the lowest entry id.
  The authority may designate another entry as the source, or mark the item as a shared
  identifying item (姓名, 企业名称: carried by everyone to identify the subject, never
  flagged). Because both seeds except collection a law or regulation requires ("法律法规另有
  规定的除外"), the authority may also exempt one entry from the flag for one item, citing
  that basis. A designation whose entry no longer carries the item falls back to the default
  (and says so).
- **A repeat-collection flag**: entry E of department D carries item I whose source is an
  entry S of another department, and E actually aggregates it (its data table holds at
  least one live, non-null value in that column). Entries of returned data (回流, seed 003
  art. 29) receive their data from the higher level and are never flagged; neither are
  items of the same department (one department's own duplicates are its business). Flags
  are computed on demand.
- **Conflicts**: for each flagged (S, E, I), the two data tables are joined on their key
  values in SQL (live rows, both values non-null) and the subjects whose values differ are
  stored (strings compared stripped, numbers, dates and times by value). At most
  :data:`CONFLICT_CAP` conflicts are stored per pair: beyond it the pair is reported as
  truncated and conflicts of that pair are not auto-closed. Items whose two columns have
  different kinds of type (a date in one table, text in the other) are not compared and are
  reported as skipped. Re-detection updates values, closes what no longer disagrees
  (resolved by the platform, note 数据已一致) and reopens a resolved conflict only if its
  values changed again.

The item index (which published entries carry which items) is derived from the catalog and
cached per database, keyed by a fingerprint of the catalog tables, so that detection after a
batch is cheap when the entry shares no item with another department.

Services ``flush()``, never commit, and audit every change.
"""

from __future__ import annotations

import csv
import io
import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    exists,
    false,
    func,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.orm import Session, aliased

from govshare.audit import service as audit
from govshare.catalog import lists
from govshare.catalog.models import (
    CatalogEntry,
    CatalogVersion,
    DataType,
    EntryStatus,
    SubjectKeyKind,
    VersionState,
)
from govshare.db import utcnow
from govshare.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from govshare.ingestion import tables
from govshare.ingestion.models import DataTable
from govshare.ingestion.source_models import (
    ConflictStatus,
    ItemExemption,
    ItemRole,
    ItemSource,
    SourceConflict,
)
from govshare.orgs import repository as orgs_repo
from govshare.orgs.models import Department
from govshare.permissions import Perm
from govshare.principal import Principal

#: conflicts stored per (source entry, other entry, item); the counts say when a pair has more
CONFLICT_CAP = 10_000
#: who closes a conflict whose values agree again
PLATFORM_RESOLVER = "平台自动核验"
NOTE_CONSISTENT = "数据已一致"
NOTE_GONE = "一方已无此数据（记录已删除或该项为空），不再比对"
NOTE_NOT_FLAGGED = "已不属于重复采集（来源已调整、已豁免或信息项已变更），不再比对"
CITE = (
    "《南阳市政务数据共享管理暂行办法》第二十四条、《内乡县政务信息资源共享管理办法（试行）》第七条"
)
CITE_CONFLICT = "《内乡县政务信息资源共享管理办法（试行）》第十五条"
KINDS = (SubjectKeyKind.PERSON.value, SubjectKeyKind.ORGANIZATION.value)
MAX_ID = lists.MAX_ID
_IN_CHUNK = 1000
#: PostgreSQL advisory lock key of conflict detection ("1s1y": 一数一源)
_DETECT_LOCK = 0x31733179
_WS = re.compile(r"\s+")

_CATEGORY = {
    DataType.STRING.value: "text",
    DataType.ID_NUMBER.value: "text",
    DataType.CREDIT_CODE.value: "text",
    DataType.DIVISION_CODE.value: "text",
    DataType.PHONE.value: "text",
    DataType.INTEGER.value: "number",
    DataType.DECIMAL.value: "number",
    DataType.DATE.value: "date",
    DataType.DATETIME.value: "datetime",
    DataType.BOOLEAN.value: "boolean",
}


def normalise_name(name: str) -> str:
    """An item name as it identifies the item: NFKC (full-width forms), no whitespace."""
    return _WS.sub("", unicodedata.normalize("NFKC", name or ""))[:64]


def entry_url(entry_id: int) -> str:
    return f"/catalog/entries/{entry_id}"


def kind_label(kind: str) -> str:
    return {"person": "自然人", "organization": "法人和其他组织"}.get(kind, kind)


# ---------------------------------------------------------------- the item index


@dataclass(frozen=True)
class Carrier:
    """A published entry carrying an item (from its version in force)."""

    entry_id: int
    code: str
    entry_name: str
    department_id: int
    jurisdiction_id: int
    field: str
    data_type: str
    #: publish date of the entry's first approved version that listed the item
    first_listed: date | None
    is_returned: bool
    key_field: str


ItemKey = tuple[str, str]  # (subject kind, normalised item name)


@dataclass(frozen=True)
class ItemIndex:
    #: items carried by at least two published entries -> carriers (by entry id)
    items: dict[ItemKey, tuple[Carrier, ...]]
    #: entry id -> the keys of its items that another entry also carries
    entry_items: dict[int, tuple[ItemKey, ...]]
    #: item key -> the name as first written
    display: dict[ItemKey, str]


_cache: dict[str, tuple[tuple[Any, ...], ItemIndex]] = {}
_cache_lock = threading.Lock()


def _fingerprint(session: Session) -> tuple[Any, ...]:
    """Changes whenever a version is created or changes state, or an entry is published or
    withdrawn (``updated_at`` is set on every change of a version)."""
    v = session.execute(
        select(
            func.count(CatalogVersion.id),
            func.max(CatalogVersion.id),
            func.max(CatalogVersion.updated_at),
        )
    ).one()
    e = session.execute(
        select(
            func.count(CatalogEntry.id),
            func.sum(CatalogEntry.current_version_id),
            func.max(CatalogEntry.published_at),
            func.max(CatalogEntry.withdrawn_at),
        ).where(CatalogEntry.status == EntryStatus.PUBLISHED.value)
    ).one()
    return (*tuple(v), *tuple(e))


def _build(session: Session) -> ItemIndex:
    rows = session.execute(
        select(
            CatalogEntry.id,
            CatalogEntry.code,
            CatalogEntry.department_id,
            CatalogEntry.jurisdiction_id,
            CatalogVersion.name,
            CatalogVersion.data_items,
            CatalogVersion.subject_key_kind,
            CatalogVersion.subject_key_item,
            CatalogVersion.is_returned_data,
            CatalogVersion.publish_date,
        )
        .join(CatalogVersion, CatalogVersion.id == CatalogEntry.current_version_id)
        .where(CatalogEntry.status == EntryStatus.PUBLISHED.value)
        .where(CatalogVersion.subject_key_kind.in_(KINDS))
        .order_by(CatalogEntry.id)  # an item is shown by its name in the earliest entry
    ).all()
    found: dict[ItemKey, list[dict[str, Any]]] = {}
    display: dict[ItemKey, str] = {}
    for eid, code, dept, juris, ename, items, kind, key_field, returned, pub in rows:
        seen: set[str] = set()
        for it in items or []:
            field = it.get("field", "")
            norm = normalise_name(str(it.get("name", "")))
            if not norm or field == key_field or norm in seen:
                continue
            seen.add(norm)
            key = (kind, norm)
            display.setdefault(key, str(it.get("name", "")).strip())
            found.setdefault(key, []).append(
                {
                    "entry_id": eid,
                    "code": code,
                    "entry_name": ename,
                    "department_id": dept,
                    "jurisdiction_id": juris,
                    "field": field,
                    "data_type": it.get("data_type", DataType.STRING.value),
                    "first_listed": pub,
                    "is_returned": bool(returned),
                    "key_field": key_field,
                }
            )
    shared = {k: v for k, v in found.items() if len(v) >= 2}
    involved = sorted({c["entry_id"] for v in shared.values() for c in v})
    # when each entry first listed each item: its earliest approved version carrying it
    first: dict[tuple[int, str], date] = {}
    for chunk in _chunks(involved, _IN_CHUNK):
        for eid, pub, items in session.execute(
            select(CatalogVersion.entry_id, CatalogVersion.publish_date, CatalogVersion.data_items)
            .where(CatalogVersion.entry_id.in_(chunk))
            .where(
                CatalogVersion.state.in_(
                    (VersionState.APPROVED.value, VersionState.SUPERSEDED.value)
                )
            )
        ):
            if pub is None:
                continue
            for it in items or []:
                k = (eid, normalise_name(str(it.get("name", ""))))
                if k not in first or pub < first[k]:
                    first[k] = pub
    items_out: dict[ItemKey, tuple[Carrier, ...]] = {}
    entry_items: dict[int, list[ItemKey]] = {}
    for key, carriers in shared.items():
        out = []
        for c in carriers:
            c["first_listed"] = first.get((c["entry_id"], key[1]), c["first_listed"])
            out.append(Carrier(**c))
            entry_items.setdefault(c["entry_id"], []).append(key)
        items_out[key] = tuple(sorted(out, key=lambda c: c.entry_id))
    return ItemIndex(
        items=items_out,
        entry_items={k: tuple(v) for k, v in entry_items.items()},
        display={k: display[k] for k in items_out},
    )


def item_index(session: Session) -> ItemIndex:
    """The index of shared items, rebuilt only when the catalog changed."""
    where = str(session.connection().engine.url)
    fp = _fingerprint(session)
    with _cache_lock:
        hit = _cache.get(where)
    if hit is not None and hit[0] == fp:
        return hit[1]
    index = _build(session)
    with _cache_lock:
        _cache[where] = (fp, index)
    return index


def _chunks(seq: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


# ---------------------------------------------------------------- designations and sources


@dataclass(frozen=True)
class Decisions:
    designations: dict[ItemKey, ItemSource]
    exemptions: dict[ItemKey, dict[int, ItemExemption]]


def _decisions(session: Session) -> Decisions:
    designations = {(d.subject_kind, d.item_name): d for d in session.scalars(select(ItemSource))}
    exemptions: dict[ItemKey, dict[int, ItemExemption]] = {}
    for x in session.scalars(select(ItemExemption)):
        exemptions.setdefault((x.subject_kind, x.item_name), {})[x.entry_id] = x
    return Decisions(designations, exemptions)


def default_source(carriers: Sequence[Carrier]) -> Carrier:
    """The entry that first listed the item: earliest publish date, then lowest entry id."""
    return min(carriers, key=lambda c: (c.first_listed or date.max, c.entry_id))


def source_of(
    carriers: Sequence[Carrier], designation: ItemSource | None
) -> tuple[Carrier | None, str]:
    """The source of an item and how it was decided: "designated", "default", "stale"
    (designated entry no longer carries it: default used), or "identifying" (no source)."""
    if designation is not None and designation.role == ItemRole.IDENTIFYING.value:
        return None, "identifying"
    if designation is not None and designation.role == ItemRole.SOURCE.value:
        for c in carriers:
            if c.entry_id == designation.source_entry_id:
                return c, "designated"
        return default_source(carriers), "stale"
    return default_source(carriers), "default"


@dataclass(frozen=True)
class Pair:
    key: ItemKey
    source: Carrier
    other: Carrier


def _candidate_pairs(
    index: ItemIndex, decisions: Decisions, keys: Iterable[ItemKey] | None = None
) -> list[Pair]:
    """(source, other, item) where the other entry would be a repeat collection if it
    aggregates the item."""
    out: list[Pair] = []
    for key in index.items if keys is None else keys:
        carriers = index.items.get(key)
        if not carriers:
            continue
        source, _how = source_of(carriers, decisions.designations.get(key))
        if source is None:
            continue
        exempt = decisions.exemptions.get(key, {})
        for c in carriers:
            if (
                c.entry_id == source.entry_id
                or c.department_id == source.department_id
                or c.is_returned
                or c.entry_id in exempt
            ):
                continue
            out.append(Pair(key, source, c))
    return out


def _data_table(session: Session, entry_id: int) -> Table | None:
    registry = session.get(DataTable, entry_id)
    if registry is None:
        return None
    return tables.tables_for(registry)[0]


def _aggregating(session: Session, wanted: dict[int, set[str]]) -> set[tuple[int, str]]:
    """Which (entry, field) have at least one live non-null value: one query per entry."""
    out: set[tuple[int, str]] = set()
    for entry_id, fields in wanted.items():
        data = _data_table(session, entry_id)
        if data is None:
            continue
        cols = sorted(f for f in fields if f in data.c)
        if not cols:
            continue
        stmt = select(
            *[
                exists().where(data.c[f].is_not(None), data.c._deleted == false()).label(f"c{i}")
                for i, f in enumerate(cols)
            ]
        )
        row = session.execute(stmt).one()
        out.update((entry_id, f) for f, has in zip(cols, row, strict=True) if has)
    return out


def _flagged_pairs(
    session: Session, index: ItemIndex, decisions: Decisions, keys: Iterable[ItemKey] | None
) -> list[Pair]:
    pairs = _candidate_pairs(index, decisions, keys)
    wanted: dict[int, set[str]] = {}
    for p in pairs:
        wanted.setdefault(p.other.entry_id, set()).add(p.other.field)
    live = _aggregating(session, wanted)
    return [p for p in pairs if (p.other.entry_id, p.other.field) in live]


# ---------------------------------------------------------------- who sees what


def _scope(session: Session, principal: Principal) -> lists.Scope:
    if not principal.can(Perm.SOURCE_READ):
        raise PermissionDenied()
    return lists.visible_to(session, principal, Perm.SOURCE_MANAGE)


def _sees(scope: lists.Scope, c: Carrier) -> bool:
    if scope.everything:
        return True
    if scope.jurisdiction_ids is not None:
        return c.jurisdiction_id in scope.jurisdiction_ids
    return scope.department_id is not None and c.department_id == scope.department_id


def _clause(scope: lists.Scope, department_id: Any, jurisdiction_id: Any) -> ColumnElement[bool]:
    if scope.everything:
        return true()
    if scope.jurisdiction_ids is not None:
        return jurisdiction_id.in_(scope.jurisdiction_ids)  # type: ignore[no-any-return]
    if scope.department_id is not None:
        return department_id == scope.department_id  # type: ignore[no-any-return]
    return false()


def _managed(session: Session, principal: Principal) -> frozenset[int] | None:
    """Jurisdictions whose items the principal may manage (None: all of them), as
    :func:`govshare.catalog.service.covers` decides: an authority's own and those below."""
    if not principal.can(Perm.SOURCE_MANAGE):
        return frozenset()
    if principal.jurisdiction_id is None:
        return None if principal.kind == "system" else frozenset()
    return frozenset(orgs_repo.jurisdiction_subtree_ids(session, principal.jurisdiction_id))


def _covered(managed: frozenset[int] | None, jurisdiction_ids: Iterable[int]) -> bool:
    return managed is None or all(j in managed for j in jurisdiction_ids)


def _manage_over(session: Session, principal: Principal, jurisdiction_ids: Iterable[int]) -> bool:
    if not principal.can(Perm.SOURCE_MANAGE):
        return False
    return _covered(_managed(session, principal), jurisdiction_ids)


def _department_names(session: Session) -> dict[int, str]:
    return {i: n for i, n in session.execute(select(Department.id, Department.name))}


# ---------------------------------------------------------------- output models


class CarrierOut(BaseModel):
    entry_id: int
    code: str
    entry_name: str
    url: str
    department_id: int
    department_name: str
    field: str
    data_type: str
    first_listed: date | None
    is_returned: bool
    is_source: bool
    exempt: bool


class ItemOut(BaseModel):
    subject_kind: str
    subject_kind_label: str
    item_name: str
    #: "default" (first listed), "designated", "stale" (designated entry no longer carries
    #: it: default used), "identifying" (shared identifying item: no source, no flags)
    decision: Literal["default", "designated", "stale", "identifying"]
    decision_label: str
    source: CarrierOut | None
    carriers: list[CarrierOut]
    departments: int
    multi_department: bool
    basis: str
    designated_by: str | None
    designated_at: datetime | None
    manageable: bool


class FlagOut(BaseModel):
    subject_kind: str
    item_name: str
    entry_id: int
    entry_code: str
    entry_name: str
    department_id: int
    department_name: str
    field: str
    source_entry_id: int
    source_code: str
    source_name: str
    source_department_id: int
    source_department_name: str
    source_url: str
    advice: str


class Advice(BaseModel):
    item_name: str
    field: str
    source_entry_id: int
    source_code: str
    source_name: str
    source_department_id: int
    source_department_name: str
    url: str
    message: str


class ConflictOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    subject_kind: str
    item_name: str
    key_value: str
    source_entry_id: int
    source_code: str
    source_department_name: str
    source_field: str
    source_value: str
    other_entry_id: int
    other_code: str
    other_department_name: str
    other_field: str
    other_value: str
    status: str
    status_label: str
    first_detected_at: datetime
    last_detected_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str


class ConflictPage(BaseModel):
    total: int
    rows: list[ConflictOut]


class DetectionResult(BaseModel):
    pairs_checked: int = 0
    #: pairs whose two columns are of different kinds of type (not compared)
    pairs_skipped: list[str] = Field(default_factory=list)
    #: pairs with more than CONFLICT_CAP differing subjects (only the first are stored)
    pairs_truncated: list[str] = Field(default_factory=list)
    #: differing subjects found in this run (at most CONFLICT_CAP per pair)
    differing: int = 0
    opened: int = 0
    reopened: int = 0
    updated: int = 0
    closed: int = 0

    @property
    def changed(self) -> int:
        return self.opened + self.reopened + self.updated + self.closed


class ExemptionOut(BaseModel):
    id: int
    subject_kind: str
    item_name: str
    entry_id: int
    entry_code: str
    department_name: str
    basis: str
    granted_by: str
    granted_at: datetime
    manageable: bool


class DesignationOut(BaseModel):
    subject_kind: str
    item_name: str
    #: "source", "identifying", or "default" (designation removed)
    role: str
    source_entry_id: int | None
    basis: str
    designated_by: str | None
    designated_at: datetime | None


class SourceSummary(BaseModel):
    flag_count: int
    open_conflicts: int
    top_flags: list[FlagOut]
    #: items with the most open conflicts: (item name, count)
    top_conflict_items: list[tuple[str, int]]


# ---------------------------------------------------------------- input models


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class DesignateIn(_In):
    subject_kind: Literal["person", "organization"] = Field(description="主体类型")
    item_name: str = Field(min_length=1, max_length=64, description="信息项名称")
    action: Literal["source", "identifying", "default"] = Field(
        description="source 指定来源 / identifying 共用标识项 / default 恢复默认（最早发布）"
    )
    source_entry_id: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="指定为来源的目录资源"
    )
    basis: str = Field(default="", max_length=4000, description="依据（如职责规定）")


class ExemptionIn(_In):
    entry_id: int = Field(ge=1, le=MAX_ID, description="目录资源")
    item_name: str = Field(min_length=1, max_length=64, description="信息项名称")
    basis: str = Field(min_length=4, max_length=4000, description="法律法规依据")


class DetectIn(_In):
    entry_ids: list[int] | None = Field(
        default=None, max_length=1000, description="只核验涉及这些资源的信息项；空则全部"
    )


class ResolveIn(_In):
    note: str = Field(min_length=4, max_length=4000, description="处理意见")


FIELD_LABELS = {
    "subject_kind": "主体类型",
    "item_name": "信息项名称",
    "action": "处理方式",
    "source_entry_id": "来源资源",
    "basis": "依据",
    "entry_id": "目录资源",
    "note": "处理意见",
    "entry_ids": "目录资源",
}


# ---------------------------------------------------------------- the item -> source table


def _carrier_out(
    c: Carrier, names: dict[int, str], source: Carrier | None, exempt: dict[int, ItemExemption]
) -> CarrierOut:
    return CarrierOut(
        entry_id=c.entry_id,
        code=c.code,
        entry_name=c.entry_name,
        url=entry_url(c.entry_id),
        department_id=c.department_id,
        department_name=names.get(c.department_id, ""),
        field=c.field,
        data_type=c.data_type,
        first_listed=c.first_listed,
        is_returned=c.is_returned,
        is_source=source is not None and source.entry_id == c.entry_id,
        exempt=c.entry_id in exempt,
    )


_DECISION_LABELS = {
    "default": "默认：最早发布的资源",
    "designated": "数据主管部门指定",
    "stale": "指定的资源已不含此项，按默认",
    "identifying": "共用标识项（不判重复采集）",
}


def list_items(session: Session, principal: Principal, *, item: str = "") -> list[ItemOut]:
    """Items carried by more than one published entry (and items with a designation), with
    their source: those of entries the principal sees. Multi-department items first."""
    scope = _scope(session, principal)
    index = item_index(session)
    decisions = _decisions(session)
    names = _department_names(session)
    wanted = normalise_name(item)
    managed = _managed(session, principal) if principal.can(Perm.SOURCE_MANAGE) else frozenset()
    keys = set(index.items) | set(decisions.designations)
    out: list[ItemOut] = []
    for key in keys:
        if wanted and wanted not in key[1]:
            continue
        carriers = index.items.get(key, ())
        designation = decisions.designations.get(key)
        if carriers and not any(_sees(scope, c) for c in carriers):
            continue
        if not carriers and not (scope.everything or scope.jurisdiction_ids is not None):
            continue
        if carriers:
            source, how = source_of(carriers, designation)
        else:
            source, how = None, "identifying" if designation is not None else "default"
            if designation is not None and designation.role == ItemRole.SOURCE.value:
                how = "stale"
        exempt = decisions.exemptions.get(key, {})
        departments = len({c.department_id for c in carriers})
        out.append(
            ItemOut(
                subject_kind=key[0],
                subject_kind_label=kind_label(key[0]),
                item_name=index.display.get(key, key[1]),
                decision=how,
                decision_label=_DECISION_LABELS[how],
                source=_carrier_out(source, names, source, exempt) if source else None,
                carriers=[_carrier_out(c, names, source, exempt) for c in carriers],
                departments=departments,
                multi_department=departments >= 2,
                basis=designation.basis if designation else "",
                designated_by=designation.designated_by if designation else None,
                designated_at=designation.designated_at if designation else None,
                manageable=principal.can(Perm.SOURCE_MANAGE)
                and _covered(managed, [c.jurisdiction_id for c in carriers]),
            )
        )
    out.sort(key=lambda i: (not i.multi_department, i.subject_kind, i.item_name))
    return out


def designate(
    session: Session,
    actor: Principal,
    subject_kind: str,
    item_name: str,
    action: str,
    source_entry_id: int | None = None,
    basis: str = "",
) -> ItemSource | None:
    """The authority designates an item's source, marks it as a shared identifying item, or
    returns it to the default (the entry that first listed it). Audited. Returns the
    designation (None after ``default``)."""
    if not actor.can(Perm.SOURCE_MANAGE):
        raise PermissionDenied("只有数据主管部门可以指定数据来源")
    if subject_kind not in KINDS:
        raise ValidationFailed("主体类型应为自然人或法人和其他组织", field="subject_kind")
    name = normalise_name(item_name)
    if not name:
        raise ValidationFailed("请填写信息项名称", field="item_name")
    if action not in ("source", "identifying", "default"):
        raise ValidationFailed("处理方式应为指定来源、共用标识项或恢复默认", field="action")
    basis = (basis or "").strip()
    key = (subject_kind, name)
    index = item_index(session)
    carriers = index.items.get(key, ())
    jurisdictions = [c.jurisdiction_id for c in carriers]
    source_entry: CatalogEntry | None = None
    if action == "source":
        source_entry = lists.fetch(session, CatalogEntry, source_entry_id)
        version = source_entry.current_version if source_entry is not None else None
        if (
            source_entry is None
            or version is None
            or source_entry.status != EntryStatus.PUBLISHED.value
        ):
            raise ValidationFailed("来源资源不存在或未发布", field="source_entry_id")
        if version.subject_key_kind != subject_kind or not any(
            normalise_name(str(it.get("name", ""))) == name
            and it.get("field") != version.subject_key_item
            for it in version.data_items
        ):
            raise ValidationFailed(
                f"资源 {source_entry.code} 的现行版本不含{kind_label(subject_kind)}信息项“{name}”",
                field="source_entry_id",
            )
        jurisdictions.append(source_entry.jurisdiction_id)
    if action != "default" and len(basis) < 4:
        raise ValidationFailed("请写明依据（至少 4 个字），如部门职责或法律法规", field="basis")
    if not _manage_over(session, actor, jurisdictions):
        raise PermissionDenied("该信息项涉及本辖区以外的部门，请由上级数据主管部门指定")
    row = session.scalar(
        select(ItemSource).where(
            ItemSource.subject_kind == subject_kind, ItemSource.item_name == name
        )
    )
    before = (
        {"role": row.role, "source_entry_id": row.source_entry_id, "basis": row.basis}
        if row is not None
        else None
    )
    if action == "default":
        if row is None:
            raise Conflict("该信息项已按默认确定来源")
        session.delete(row)
        session.flush()
        result = None
    else:
        if row is None:
            row = ItemSource(subject_kind=subject_kind, item_name=name, designated_by=actor.name)
            session.add(row)
        row.role = action
        row.source_entry_id = source_entry.id if source_entry is not None else None
        row.basis = basis
        row.designated_by = actor.name
        row.designated_at = utcnow()
        session.flush()
        result = row
    audit.record(
        session,
        actor,
        "ingestion:source:designate",
        "item_source",
        f"{subject_kind}:{name}",
        {
            "action": action,
            "source_entry": source_entry.code if source_entry is not None else None,
            "basis": basis[:500],
            "before": before,
        },
    )
    return result


def grant_exemption(
    session: Session, actor: Principal, entry_id: int, item_name: str, basis: str
) -> ItemExemption:
    """Let one entry collect an item another department is the source of, because a law or
    regulation requires it (seed 003 art. 24, seed 004 art. 7: 法律法规另有规定的除外)."""
    if not actor.can(Perm.SOURCE_MANAGE):
        raise PermissionDenied("只有数据主管部门可以豁免")
    entry = lists.fetch(session, CatalogEntry, entry_id)
    version = entry.current_version if entry is not None else None
    if entry is None or version is None or entry.status != EntryStatus.PUBLISHED.value:
        raise ValidationFailed("目录资源不存在或未发布", field="entry_id")
    name = normalise_name(item_name)
    if not any(normalise_name(str(it.get("name", ""))) == name for it in version.data_items):
        raise ValidationFailed(f"资源 {entry.code} 不含信息项“{name}”", field="item_name")
    basis = (basis or "").strip()
    if len(basis) < 4:
        raise ValidationFailed("请写明法律法规依据（至少 4 个字）", field="basis")
    if not _manage_over(session, actor, [entry.jurisdiction_id]):
        raise PermissionDenied("该资源不在本辖区内")
    kind = version.subject_key_kind
    if session.scalar(
        select(ItemExemption.id).where(
            ItemExemption.subject_kind == kind,
            ItemExemption.item_name == name,
            ItemExemption.entry_id == entry.id,
        )
    ):
        raise Conflict("该资源的此信息项已豁免")
    row = ItemExemption(
        subject_kind=kind, item_name=name, entry_id=entry.id, basis=basis, granted_by=actor.name
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "ingestion:source:exempt",
        "item_exemption",
        row.id,
        {"entry": entry.code, "item": name, "basis": basis[:500]},
    )
    return row


def revoke_exemption(session: Session, actor: Principal, exemption_id: int) -> None:
    if not actor.can(Perm.SOURCE_MANAGE):
        raise PermissionDenied("只有数据主管部门可以撤销豁免")
    row = lists.fetch(session, ItemExemption, exemption_id)
    if row is None:
        raise NotFound("豁免不存在")
    entry = session.get(CatalogEntry, row.entry_id)
    if entry is not None and not _manage_over(session, actor, [entry.jurisdiction_id]):
        raise PermissionDenied("该资源不在本辖区内")
    details = {"entry": entry.code if entry else row.entry_id, "item": row.item_name}
    session.delete(row)
    session.flush()
    audit.record(
        session, actor, "ingestion:source:unexempt", "item_exemption", exemption_id, details
    )


def exemption_out(
    session: Session,
    principal: Principal,
    x: ItemExemption,
    managed: frozenset[int] | None = frozenset(),
) -> ExemptionOut:
    if managed == frozenset():
        managed = _managed(session, principal)
    entry = session.get(CatalogEntry, x.entry_id)
    if entry is None:
        raise NotFound("目录资源不存在")
    return ExemptionOut(
        id=x.id,
        subject_kind=x.subject_kind,
        item_name=x.item_name,
        entry_id=entry.id,
        entry_code=entry.code,
        department_name=entry.department.name,
        basis=x.basis,
        granted_by=x.granted_by,
        granted_at=x.granted_at,
        manageable=principal.can(Perm.SOURCE_MANAGE) and _covered(managed, [entry.jurisdiction_id]),
    )


def list_exemptions(session: Session, principal: Principal) -> list[ExemptionOut]:
    """Exemptions of entries the principal sees."""
    scope = _scope(session, principal)
    rows = session.scalars(
        select(ItemExemption)
        .join(CatalogEntry, CatalogEntry.id == ItemExemption.entry_id)
        .where(_clause(scope, CatalogEntry.department_id, CatalogEntry.jurisdiction_id))
        .order_by(ItemExemption.item_name, CatalogEntry.code)
    )
    managed = _managed(session, principal)
    return [exemption_out(session, principal, x, managed) for x in list(rows)]


# ---------------------------------------------------------------- flags and advice


def _advice_text(item: str, source: Carrier, department_name: str) -> str:
    return (
        f"信息项“{item}”由{department_name}负责采集（资源 {source.code}「{source.entry_name}」），"
        f"请通过共享申请获取，不要重复采集（{CITE}）。"
    )


def _flag_out(index: ItemIndex, p: Pair, names: dict[int, str]) -> FlagOut:
    item = index.display.get(p.key, p.key[1])
    sdept = names.get(p.source.department_id, "")
    return FlagOut(
        subject_kind=p.key[0],
        item_name=item,
        entry_id=p.other.entry_id,
        entry_code=p.other.code,
        entry_name=p.other.entry_name,
        department_id=p.other.department_id,
        department_name=names.get(p.other.department_id, ""),
        field=p.other.field,
        source_entry_id=p.source.entry_id,
        source_code=p.source.code,
        source_name=p.source.entry_name,
        source_department_id=p.source.department_id,
        source_department_name=sdept,
        source_url=entry_url(p.source.entry_id),
        advice=_advice_text(item, p.source, sdept),
    )


def list_flags(
    session: Session, principal: Principal, *, department_id: int | None = None
) -> list[FlagOut]:
    """Repeat collections involving entries the principal sees (a department: its own
    entries, as collector or as source; the authority: its jurisdiction and below)."""
    scope = _scope(session, principal)
    index = item_index(session)
    decisions = _decisions(session)
    keys = [k for k, carriers in index.items.items() if any(_sees(scope, c) for c in carriers)]
    pairs = [
        p
        for p in _flagged_pairs(session, index, decisions, keys)
        if (_sees(scope, p.other) or _sees(scope, p.source))
        and (
            department_id is None
            or department_id in (p.other.department_id, p.source.department_id)
        )
    ]
    names = _department_names(session)
    flags = [_flag_out(index, p, names) for p in pairs]
    flags.sort(key=lambda f: (f.department_name, f.entry_code, f.item_name))
    return flags


def advice_for_entry(session: Session, entry: CatalogEntry) -> list[Advice]:
    """For an entry a department is about to aggregate into: the items another department is
    the source of, where to get them (the source entry) and the sentence telling the
    department to obtain them by sharing instead. Empty for returned data (回流)."""
    index = item_index(session)
    keys = index.entry_items.get(entry.id, ())
    if not keys:
        return []
    decisions = _decisions(session)
    names = _department_names(session)
    out: list[Advice] = []
    for p in _candidate_pairs(index, decisions, keys):
        if p.other.entry_id != entry.id:
            continue
        item = index.display.get(p.key, p.key[1])
        sdept = names.get(p.source.department_id, "")
        out.append(
            Advice(
                item_name=item,
                field=p.other.field,
                source_entry_id=p.source.entry_id,
                source_code=p.source.code,
                source_name=p.source.entry_name,
                source_department_id=p.source.department_id,
                source_department_name=sdept,
                url=entry_url(p.source.entry_id),
                message=_advice_text(item, p.source, sdept),
            )
        )
    return out


# ---------------------------------------------------------------- conflict detection


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, Decimal):
        s = format(value.normalize(), "f")
        return s[:512]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str):
        return value.strip()[:512]
    return str(value)[:512]


def _pair_label(index: ItemIndex, p: Pair) -> str:
    return f"{index.display.get(p.key, p.key[1])}：{p.source.code} / {p.other.code}"


def _pair_filter(p: Pair) -> ColumnElement[bool]:
    return and_(
        SourceConflict.source_entry_id == p.source.entry_id,
        SourceConflict.other_entry_id == p.other.entry_id,
        SourceConflict.subject_kind == p.key[0],
        SourceConflict.item_name == p.key[1],
    )


def _compare(session: Session, p: Pair) -> tuple[dict[str, tuple[str, str]], bool] | None:
    """Differing subjects of a pair (at most CONFLICT_CAP) and whether there were more; None
    when the two columns cannot be compared (different kinds of type)."""
    category = _CATEGORY.get(p.source.data_type)
    if category is None or category != _CATEGORY.get(p.other.data_type):
        return None
    s = _data_table(session, p.source.entry_id)
    e = _data_table(session, p.other.entry_id)
    if s is None or e is None or p.source.field not in s.c or p.other.field not in e.c:
        return {}, False
    sk, ek = s.c[p.source.key_field], e.c[p.other.key_field]
    sv, ev = s.c[p.source.field], e.c[p.other.field]
    differs = func.trim(sv) != func.trim(ev) if category == "text" else sv != ev
    stmt = (
        select(sk, sv, ev)
        .select_from(s.join(e, sk == ek))
        .where(
            s.c._deleted == false(),
            e.c._deleted == false(),
            sv.is_not(None),
            ev.is_not(None),
            differs,
        )
        .order_by(sk)
        .limit(CONFLICT_CAP + 1)
    )
    rows = session.execute(stmt).all()
    found = {str(k): (_text(a), _text(b)) for k, a, b in rows[:CONFLICT_CAP]}
    return found, len(rows) > CONFLICT_CAP


def _agreeing(session: Session, p: Pair, keys: list[str]) -> set[str]:
    """Of ``keys``, those both tables hold live with non-null values (that now agree)."""
    s = _data_table(session, p.source.entry_id)
    e = _data_table(session, p.other.entry_id)
    if s is None or e is None or p.source.field not in s.c or p.other.field not in e.c:
        return set()
    sk, ek = s.c[p.source.key_field], e.c[p.other.key_field]
    out: set[str] = set()
    for chunk in _chunks(keys, _IN_CHUNK):
        out.update(
            str(k)
            for k in session.scalars(
                select(sk)
                .select_from(s.join(e, sk == ek))
                .where(
                    sk.in_(chunk),
                    s.c._deleted == false(),
                    e.c._deleted == false(),
                    s.c[p.source.field].is_not(None),
                    e.c[p.other.field].is_not(None),
                )
            )
        )
    return out


def _close(session: Session, ids: list[int], note: str, now: datetime) -> None:
    for chunk in _chunks(ids, _IN_CHUNK):
        session.execute(
            update(SourceConflict)
            .where(SourceConflict.id.in_(chunk))
            .values(
                status=ConflictStatus.RESOLVED.value,
                resolved_at=now,
                resolved_by=PLATFORM_RESOLVER,
                resolution=note,
            ),
            execution_options={"synchronize_session": False},
        )


def _detect_pair(
    session: Session, p: Pair, found: dict[str, tuple[str, str]], truncated: bool, now: datetime
) -> tuple[int, int, int, int]:
    existing = {
        c.key_value: c for c in session.scalars(select(SourceConflict).where(_pair_filter(p)))
    }
    opened = reopened = updated = 0
    seen_open: list[int] = []
    for key, (a, b) in found.items():
        c = existing.get(key)
        if c is None:
            session.add(
                SourceConflict(
                    subject_kind=p.key[0],
                    item_name=p.key[1],
                    key_value=key[:128],
                    source_entry_id=p.source.entry_id,
                    source_field=p.source.field,
                    source_value=a,
                    other_entry_id=p.other.entry_id,
                    other_field=p.other.field,
                    other_value=b,
                    status=ConflictStatus.OPEN.value,
                    first_detected_at=now,
                    last_detected_at=now,
                )
            )
            opened += 1
            continue
        changed = (c.source_value, c.other_value) != (a, b)
        if c.status == ConflictStatus.RESOLVED.value:
            if not changed:
                continue  # resolved, and the values are the ones it was resolved with
            c.status = ConflictStatus.OPEN.value
            c.resolved_at = None
            c.resolved_by = None
            c.resolution = ""
            reopened += 1
        elif changed:
            updated += 1
        else:
            seen_open.append(c.id)
            continue
        c.source_value, c.other_value = a, b
        c.source_field, c.other_field = p.source.field, p.other.field
        c.last_detected_at = now
    session.flush()
    for chunk in _chunks(seen_open, _IN_CHUNK):
        session.execute(
            update(SourceConflict).where(SourceConflict.id.in_(chunk)).values(last_detected_at=now),
            execution_options={"synchronize_session": False},
        )
    closed = 0
    if not truncated:
        gone = [
            c
            for k, c in existing.items()
            if c.status == ConflictStatus.OPEN.value and k not in found
        ]
        if gone:
            agree = _agreeing(session, p, [c.key_value for c in gone])
            _close(session, [c.id for c in gone if c.key_value in agree], NOTE_CONSISTENT, now)
            _close(session, [c.id for c in gone if c.key_value not in agree], NOTE_GONE, now)
            closed = len(gone)
    return opened, reopened, updated, closed


def _may_detect(session: Session, actor: Principal, entry_ids: set[int] | None) -> bool:
    if actor.can(Perm.SOURCE_MANAGE):
        return True
    if entry_ids is None or actor.department_id is None:
        return False
    # a department's own batch: the loader checks for the entries it just aggregated into
    owners = set(
        session.scalars(select(CatalogEntry.department_id).where(CatalogEntry.id.in_(entry_ids)))
    )
    return owners <= {actor.department_id}


def detect(
    session: Session, actor: Principal, entry_ids: set[int] | None = None
) -> DetectionResult:
    """Find the subjects on which a source and a repeating collector disagree (seed 004
    art. 15) and keep the conflicts list in step; only the items of ``entry_ids`` when given
    (after a batch), else everything. Idempotent: a second run changes nothing. Cheap when
    the entries share no item with another department (the item index is cached)."""
    if not _may_detect(session, actor, entry_ids):
        raise PermissionDenied("只有数据主管部门可以运行冲突核验")
    index = item_index(session)
    decisions = _decisions(session)
    if entry_ids is None:
        keys: list[ItemKey] | None = None
    else:
        keys = sorted({k for eid in entry_ids for k in index.entry_items.get(eid, ())})
    pairs = _flagged_pairs(session, index, decisions, keys)
    if entry_ids is not None:
        pairs = [
            p for p in pairs if p.source.entry_id in entry_ids or p.other.entry_id in entry_ids
        ]
    if pairs and session.connection().dialect.name == "postgresql":
        # two app processes detecting at once would insert the same conflicts: one at a
        # time (held to the end of the transaction; SQLite serialises writers anyway). Taken
        # only when there is something to compare, so batches of entries that share no
        # item with another department never wait for each other here.
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _DETECT_LOCK})
    result = DetectionResult()
    now = utcnow()
    compared: set[tuple[int, int, str, str]] = set()
    for p in pairs:
        outcome = _compare(session, p)
        ident = (p.source.entry_id, p.other.entry_id, p.key[0], p.key[1])
        if outcome is None:
            result.pairs_skipped.append(_pair_label(index, p))
            compared.add(ident)  # left as it is
            continue
        found, truncated = outcome
        compared.add(ident)
        result.pairs_checked += 1
        result.differing += len(found)
        if truncated:
            result.pairs_truncated.append(_pair_label(index, p))
        o, r, u, c = _detect_pair(session, p, found, truncated, now)
        result.opened += o
        result.reopened += r
        result.updated += u
        result.closed += c
    # open conflicts of pairs that are no longer repeat collections
    q = select(
        SourceConflict.id,
        SourceConflict.source_entry_id,
        SourceConflict.other_entry_id,
        SourceConflict.subject_kind,
        SourceConflict.item_name,
    ).where(SourceConflict.status == ConflictStatus.OPEN.value)
    if entry_ids is not None:
        ids = sorted(entry_ids)
        q = q.where(
            or_(SourceConflict.source_entry_id.in_(ids), SourceConflict.other_entry_id.in_(ids))
        )
    stale = [cid for cid, s, o, k, n in session.execute(q) if (s, o, k, n) not in compared]
    if stale:
        _close(session, stale, NOTE_NOT_FLAGGED, now)
        result.closed += len(stale)
    session.flush()
    # bulk updates bypassed the identity map: reload conflicts held by the session
    for obj in list(session.identity_map.values()):
        if isinstance(obj, SourceConflict):
            session.expire(obj)
    if result.changed or entry_ids is None:
        audit.record(
            session,
            actor,
            "ingestion:source:detect",
            "source_conflicts",
            ",".join(str(i) for i in sorted(entry_ids)) if entry_ids is not None else "all",
            result.model_dump(),
        )
    return result


# ---------------------------------------------------------------- the conflicts list


def _conflict_query(
    session: Session,
    principal: Principal,
    *,
    status: str | None = None,
    department_id: int | None = None,
    item: str = "",
) -> Any:
    scope = _scope(session, principal)
    se = aliased(CatalogEntry)
    oe = aliased(CatalogEntry)
    q = (
        select(SourceConflict, se, oe)
        .join(se, se.id == SourceConflict.source_entry_id)
        .join(oe, oe.id == SourceConflict.other_entry_id)
        .where(
            or_(
                _clause(scope, se.department_id, se.jurisdiction_id),
                _clause(scope, oe.department_id, oe.jurisdiction_id),
            )
        )
    )
    if status:
        q = q.where(SourceConflict.status == status)
    if department_id is not None:
        q = q.where(or_(se.department_id == department_id, oe.department_id == department_id))
    name = normalise_name(item)
    if name:
        q = q.where(SourceConflict.item_name.contains(name, autoescape=True))
    return q


def _conflict_out(
    c: SourceConflict, se: CatalogEntry, oe: CatalogEntry, names: dict[int, str]
) -> ConflictOut:
    return ConflictOut(
        id=c.id,
        subject_kind=c.subject_kind,
        item_name=c.item_name,
        key_value=c.key_value,
        source_entry_id=se.id,
        source_code=se.code,
        source_department_name=names.get(se.department_id, ""),
        source_field=c.source_field,
        source_value=c.source_value,
        other_entry_id=oe.id,
        other_code=oe.code,
        other_department_name=names.get(oe.department_id, ""),
        other_field=c.other_field,
        other_value=c.other_value,
        status=c.status,
        status_label=ConflictStatus(c.status).label,
        first_detected_at=c.first_detected_at,
        last_detected_at=c.last_detected_at,
        resolved_at=c.resolved_at,
        resolved_by=c.resolved_by,
        resolution=c.resolution,
    )


def check_status(status: str | None) -> str | None:
    if not status:
        return None
    if status not in {s.value for s in ConflictStatus}:
        raise ValidationFailed("状态应为 open 或 resolved", field="status")
    return status


def list_conflicts(
    session: Session,
    principal: Principal,
    *,
    status: str | None = None,
    department_id: int | None = None,
    item: str = "",
    limit: int = 500,
    offset: int = 0,
) -> ConflictPage:
    """Conflicts involving entries the principal sees, newest first."""
    status = check_status(status)
    if department_id is not None and not 1 <= department_id <= MAX_ID:
        return ConflictPage(total=0, rows=[])
    q = _conflict_query(session, principal, status=status, department_id=department_id, item=item)
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    names = _department_names(session)
    rows = [
        _conflict_out(c, se, oe, names)
        for c, se, oe in session.execute(
            q.order_by(SourceConflict.last_detected_at.desc(), SourceConflict.id.desc())
            .limit(max(1, min(limit, 10_000)))
            .offset(max(0, offset))
        )
    ]
    return ConflictPage(total=total, rows=rows)


def resolve_conflict(
    session: Session, actor: Principal, conflict_id: int, note: str
) -> SourceConflict:
    """The authority records how a conflict was settled with the departments (seed 004
    art. 15), e.g. "以某某部门数据为准，已通知某某部门更正". Audited."""
    if not actor.can(Perm.SOURCE_MANAGE):
        raise PermissionDenied("只有数据主管部门可以处理数据冲突")
    conflict = lists.fetch(session, SourceConflict, conflict_id)
    if conflict is None:
        raise NotFound("数据冲突不存在")
    se = session.get(CatalogEntry, conflict.source_entry_id)
    oe = session.get(CatalogEntry, conflict.other_entry_id)
    if se is None or oe is None:
        raise NotFound("数据冲突涉及的目录资源不存在")
    if not _manage_over(session, actor, [se.jurisdiction_id, oe.jurisdiction_id]):
        raise PermissionDenied("该冲突涉及本辖区以外的部门，请由上级数据主管部门处理")
    if conflict.status != ConflictStatus.OPEN.value:
        raise Conflict("该冲突已处理")
    note = (note or "").strip()
    if len(note) < 4:
        raise ValidationFailed("请写明处理意见（至少 4 个字）", field="note")
    conflict.status = ConflictStatus.RESOLVED.value
    conflict.resolved_at = utcnow()
    conflict.resolved_by = actor.name
    conflict.resolution = note[:4000]
    session.flush()
    audit.record(
        session,
        actor,
        "ingestion:source:resolve",
        "source_conflict",
        conflict.id,
        {
            "item": conflict.item_name,
            "key": conflict.key_value,
            "source_entry": se.code,
            "source_value": conflict.source_value,
            "other_entry": oe.code,
            "other_value": conflict.other_value,
            "note": note[:500],
        },
    )
    return conflict


def conflict_out(session: Session, conflict: SourceConflict) -> ConflictOut:
    se = session.get(CatalogEntry, conflict.source_entry_id)
    oe = session.get(CatalogEntry, conflict.other_entry_id)
    if se is None or oe is None:
        raise NotFound("数据冲突涉及的目录资源不存在")
    return _conflict_out(conflict, se, oe, _department_names(session))


CSV_HEADER = [
    "主体类型",
    "信息项",
    "主体标识",
    "来源部门",
    "来源资源",
    "来源值",
    "其他部门",
    "其他资源",
    "其他值",
    "状态",
    "首次发现",
    "最近发现",
    "处理人",
    "处理时间",
    "处理意见",
]
CSV_MAX_ROWS = 100_000


def conflicts_csv(
    session: Session,
    principal: Principal,
    *,
    status: str | None = None,
    department_id: int | None = None,
    item: str = "",
) -> bytes:
    """The conflicts list as CSV (UTF-8 with BOM; formula-like cells neutralised); audited
    as an export."""
    page = list_conflicts(
        session,
        principal,
        status=status,
        department_id=department_id,
        item=item,
        limit=CSV_MAX_ROWS,
    )
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_HEADER)
    for r in page.rows:
        writer.writerow(
            lists.csv_cell(v)
            for v in (
                kind_label(r.subject_kind),
                r.item_name,
                r.key_value,
                r.source_department_name,
                r.source_code,
                r.source_value,
                r.other_department_name,
                r.other_code,
                r.other_value,
                r.status_label,
                r.first_detected_at.isoformat(timespec="seconds"),
                r.last_detected_at.isoformat(timespec="seconds"),
                r.resolved_by or "",
                r.resolved_at.isoformat(timespec="seconds") if r.resolved_at else "",
                r.resolution,
            )
        )
    audit.record(
        session,
        principal,
        "ingestion:source:export",
        "source_conflicts",
        "csv",
        {
            "status": status,
            "department_id": department_id,
            "item": item[:64],
            "rows": len(page.rows),
            "total": page.total,
        },
    )
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


# ---------------------------------------------------------------- dashboard


def dashboard_summary(session: Session, principal: Principal, top: int = 5) -> SourceSummary:
    """For the home page of a principal with SOURCE_READ: repeat-collection flags and open
    conflicts it sees, with the first few flags and the items with most open conflicts."""
    flags = list_flags(session, principal)
    q = _conflict_query(session, principal, status=ConflictStatus.OPEN.value).subquery()
    open_count = session.scalar(select(func.count()).select_from(q)) or 0
    by_item = session.execute(
        select(q.c.item_name, func.count())
        .group_by(q.c.item_name)
        .order_by(func.count().desc(), q.c.item_name)
        .limit(top)
    )
    return SourceSummary(
        flag_count=len(flags),
        open_conflicts=open_count,
        top_flags=flags[:top],
        top_conflict_items=[(str(n), int(c)) for n, c in by_item],
    )
