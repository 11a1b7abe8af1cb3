"""Catalog search: Chinese keywords, facets with counts, relevance or date order.

What is searched
  One row per published entry in ``catalog_search`` (kept by ``service.index_entry``): its
  ``text`` is the lower-cased name, summary, data item names and fields, code and department
  name. A keyword is split on white space and every term must occur in ``text`` as a
  substring, not as a word: Chinese has no spaces, and 户籍 must find 户籍人口基本信息.
  Relevance puts entries with more terms in their name first, newest first among equals.

Facets are standard: each facet's counts are taken over the keyword-matched entries with
every *other* filter applied, so the siblings of a selected value keep their counts.

How it is made fast (DESIGN.md: p95 under 50 ms over 100,000 entries)
  A bare substring scan of 100,000 rows costs 40-70 ms on either database before a single
  facet is counted, and SQLite cannot keep an FTS5 table in the schema without it showing
  up as drift against the models. So each process keeps a replica of the search table in
  memory (``Replica``): the rows' facet values, one int bitset per facet value, and an
  in-memory SQLite FTS5 index with one token per character, in which a term is the phrase
  of its characters (exact substring matching, any length, one character included).
  A search is then one FTS5 lookup, a few ANDs and popcounts per facet value, and a walk
  down the date order for the page. Before each search one indexed query (count, sum and
  maximum of version ids, latest publication: migration 0003) tells whether the table
  changed; if it did, only the changed rows are reloaded. The replica reads through the
  caller's session, so a search sees its own transaction's changes. About 1 KB of memory
  per entry; the first search of a process loads it (about 4 s for 100,000 entries).

  PostgreSQL beyond ``REPLICA_MAX_ROWS`` entries searches in the database instead: a GIN
  index over ``govshare_grams(text)`` (every character and every pair of adjacent
  characters, migration 0003) finds the rows holding all the pairs of the terms, ``strpos``
  confirms longer terms, and one statement counts every facet (GROUPING SETS), the total
  and the page. pg_trgm would not serve two-character words.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    String,
    Text,
    and_,
    case,
    cast,
    func,
    literal,
    null,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from govshare.catalog import service as catalog_service
from govshare.catalog.models import (
    CatalogKind,
    CatalogSearch,
    CatalogVersion,
    DataGrade,
    OpenType,
    ResourceFormat,
    ShareType,
    UpdateFrequency,
)
from govshare.errors import PermissionDenied, ValidationFailed
from govshare.orgs.models import Department, Jurisdiction
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.rules import service as rules_service
from govshare.rules.rulebook import Rulebook

#: the facets, in the order the page shows them, with their headings
FACETS: dict[str, str] = {
    "department_id": "提供部门",
    "catalog_kind": "目录类别",
    "share_type": "共享类型",
    "open_type": "开放类型",
    "resource_format": "资源格式",
    "update_frequency": "更新周期",
    "data_grade": "数据分级",
}
_ENUM_FACETS: dict[str, tuple[str, ...]] = {
    "catalog_kind": tuple(v.value for v in CatalogKind),
    "share_type": tuple(v.value for v in ShareType),
    "open_type": tuple(v.value for v in OpenType),
    "resource_format": tuple(v.value for v in ResourceFormat),
    "update_frequency": tuple(v.value for v in UpdateFrequency),
    "data_grade": tuple(v.value for v in DataGrade),
}
SORTS: dict[str, str] = {"relevance": "按相关度", "date": "按发布日期"}
_DROP = frozenset({"Cc", "Cs"})
MAX_QUERY_LENGTH = 200
MAX_TERMS = 10
MAX_PER_PAGE = 100
MAX_PAGE = 10_000
SNIPPET_WIDTH = 90


# ---------------------------------------------------------------- the question and the answer


@dataclass(frozen=True)
class SearchQuery:
    """A validated search: terms, the active facet filters (facet -> value as text)."""

    q: str = ""
    terms: tuple[str, ...] = ()
    filters: dict[str, str] = field(default_factory=dict)
    jurisdiction_id: int | None = None
    sort: str = "relevance"
    page: int = 1
    per_page: int = 20

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    def params(self, *, page: bool = True) -> dict[str, str]:
        """The query-string parameters that reproduce this search."""
        out: dict[str, str] = {}
        if self.q:
            out["q"] = self.q
        if self.jurisdiction_id is not None:
            out["jurisdiction_id"] = str(self.jurisdiction_id)
        out.update({k: self.filters[k] for k in FACETS if k in self.filters})
        if self.sort != "relevance":
            out["sort"] = self.sort
        if page and self.page != 1:
            out["page"] = str(self.page)
        if page and self.per_page != 20:
            out["per_page"] = str(self.per_page)
        return out

    def query_string(self, *, page: bool = True) -> str:
        return urlencode(self.params(page=page))

    def toggled(self, facet: str, value: str) -> SearchQuery:
        """The same search with ``facet=value`` added, or removed if it was active; page 1."""
        filters = dict(self.filters)
        if filters.get(facet) == value:
            del filters[facet]
        else:
            filters[facet] = value
        return replace(self, filters=filters, page=1)

    def with_sort(self, sort: str) -> SearchQuery:
        return replace(self, sort=sort, page=1)

    def at_page(self, page: int) -> SearchQuery:
        return replace(self, page=page)


@dataclass(frozen=True)
class FacetValue:
    """One value of a facet; unpacks as ``(value, label, count)``."""

    value: str
    label: str
    count: int

    def __iter__(self) -> Iterator[Any]:
        return iter((self.value, self.label, self.count))


@dataclass(frozen=True)
class SearchHit:
    entry_id: int
    code: str
    name: str
    department_id: int
    department_name: str
    catalog_kind: str
    catalog_kind_label: str
    share_type: str
    share_type_name: str
    open_type: str
    open_type_name: str
    resource_format: str
    resource_format_label: str
    update_frequency: str
    update_frequency_label: str
    data_grade: str
    data_grade_label: str
    published_at: datetime
    snippet: str
    #: [start, end) character offsets of the matched terms in ``snippet``
    highlights: tuple[tuple[int, int], ...] = ()
    name_highlights: tuple[tuple[int, int], ...] = ()

    @property
    def snippet_parts(self) -> list[tuple[str, bool]]:
        """The snippet cut into (text, is_match) parts: the template escapes each part."""
        return _parts(self.snippet, self.highlights)

    @property
    def name_parts(self) -> list[tuple[str, bool]]:
        return _parts(self.name, self.name_highlights)


@dataclass(frozen=True)
class SearchResult:
    items: list[SearchHit]
    total: int
    #: facet -> [(value, label, count)], counts ignoring that facet's own filter
    facets: dict[str, list[FacetValue]]
    page: int
    per_page: int
    has_next: bool
    query: SearchQuery

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass
class _Found:
    """What a backend found: the total, every facet's counts and the page's entry ids."""

    total: int
    counts: dict[str, dict[str, int]]
    page_ids: list[int]
    has_next: bool


# ---------------------------------------------------------------- entry point


def search(
    session: Session,
    principal: Principal,
    *,
    q: str = "",
    department_id: int | None = None,
    jurisdiction_id: int | None = None,
    catalog_kind: str | None = None,
    share_type: str | None = None,
    open_type: str | None = None,
    resource_format: str | None = None,
    update_frequency: str | None = None,
    data_grade: str | None = None,
    sort: str = "relevance",
    page: int = 1,
    per_page: int = 20,
) -> SearchResult:
    """Search the published catalog (see the module docstring)."""
    if not principal.can(Perm.CATALOG_READ):
        raise PermissionDenied()
    query = make_query(
        q=q,
        department_id=department_id,
        jurisdiction_id=jurisdiction_id,
        catalog_kind=catalog_kind,
        share_type=share_type,
        open_type=open_type,
        resource_format=resource_format,
        update_frequency=update_frequency,
        data_grade=data_grade,
        sort=sort,
        page=page,
        per_page=per_page,
    )
    if use_replica(session):
        found = replica_for(session).search(session, query)
    else:
        found = _search_postgresql(session, query)
    return _present(session, principal, query, found)


def make_query(
    *,
    q: str = "",
    department_id: int | None = None,
    jurisdiction_id: int | None = None,
    catalog_kind: str | None = None,
    share_type: str | None = None,
    open_type: str | None = None,
    resource_format: str | None = None,
    update_frequency: str | None = None,
    data_grade: str | None = None,
    sort: str = "relevance",
    page: int = 1,
    per_page: int = 20,
) -> SearchQuery:
    """Validate a search's parameters (Chinese messages naming the field)."""
    # white space separates terms; other control characters and lone surrogates go
    q = "".join(c for c in " ".join((q or "").split()) if unicodedata.category(c) not in _DROP)
    if len(q) > MAX_QUERY_LENGTH:
        raise ValidationFailed(f"关键词不能超过 {MAX_QUERY_LENGTH} 个字", field="q")
    terms = tuple(dict.fromkeys(q.lower().split()))
    if len(terms) > MAX_TERMS:
        raise ValidationFailed(f"关键词最多 {MAX_TERMS} 个（以空格分隔）", field="q")
    filters: dict[str, str] = {}
    if department_id is not None:
        if department_id < 1:
            raise ValidationFailed("提供部门取值无效", field="department_id")
        filters["department_id"] = str(department_id)
    given = {
        "catalog_kind": catalog_kind,
        "share_type": share_type,
        "open_type": open_type,
        "resource_format": resource_format,
        "update_frequency": update_frequency,
        "data_grade": data_grade,
    }
    for facet, raw in given.items():
        if raw is None or raw == "":
            continue
        value = str(getattr(raw, "value", raw))
        if value not in _ENUM_FACETS[facet]:
            raise ValidationFailed(f"{FACETS[facet]}取值无效：{value}", field=facet)
        filters[facet] = value
    if sort not in SORTS:
        raise ValidationFailed(
            "排序方式只能是 relevance（相关度）或 date（发布日期）", field="sort"
        )
    if not 1 <= page <= MAX_PAGE:
        raise ValidationFailed(f"页码应在 1 到 {MAX_PAGE} 之间", field="page")
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise ValidationFailed(f"每页条数应在 1 到 {MAX_PER_PAGE} 之间", field="per_page")
    if jurisdiction_id is not None and jurisdiction_id < 1:
        raise ValidationFailed("行政区取值无效", field="jurisdiction_id")
    return SearchQuery(
        q=q,
        terms=terms,
        filters=filters,
        jurisdiction_id=jurisdiction_id,
        sort=sort,
        page=page,
        per_page=per_page,
    )


# ---------------------------------------------------------------- PostgreSQL


def grams(term: str) -> list[str]:
    """The index keys a row must hold to contain ``term``: its character pairs (or the
    character itself for a one-character term)."""
    if len(term) == 1:
        return [term]
    return sorted({term[i : i + 2] for i in range(len(term) - 1)})


def _search_postgresql(session: Session, query: SearchQuery) -> _Found:
    """One statement: the matched rows once (a materialized CTE when there is a keyword),
    every facet's counts in one pass (GROUPING SETS, each set counting with the filters
    of the other facets), the total, and the page (top-N by the sort keys)."""
    cs = CatalogSearch
    where: list[ColumnElement[bool]] = []
    if query.terms:
        keys = sorted({g for t in query.terms for g in grams(t)})
        where.append(func.govshare_grams(cs.text).bool_op("@>")(literal(keys, ARRAY(Text))))
        # the index is exact for one- and two-character terms; longer ones are confirmed
        where += [func.strpos(cs.text, t) > 0 for t in query.terms if len(t) > 2]
    if query.jurisdiction_id is not None:
        where.append(cs.jurisdiction_id == query.jurisdiction_id)
    columns: dict[str, ColumnElement[Any]] = {f: getattr(cs, f) for f in FACETS}
    filters: dict[str, str | int] = {
        f: int(v) if f == "department_id" else v for f, v in query.filters.items()
    }
    if len(filters) >= 2:  # a row failing two filters counts in no facet
        failures = [case((columns[f] != v, 1), else_=0) for f, v in filters.items()]
        where.append(sum(failures[1:], failures[0]) <= 1)
    if query.terms:
        hits = [case((func.strpos(func.lower(cs.name), t) > 0, 1), else_=0) for t in query.terms]
        score: ColumnElement[int] = sum(hits[1:], hits[0])
    else:
        score = literal(0, Integer)
    m = (
        select(
            cs.entry_id,
            *(columns[f].label(f) for f in FACETS),
            cs.published_at,
            score.label("score"),
        )
        .where(*where)
        .cte("m")
    )
    # with a keyword, find the rows once; without one, let each part take its own path
    m = m.prefix_with("MATERIALIZED" if query.terms else "NOT MATERIALIZED")

    def matching(*, but: str | None = None) -> list[ColumnElement[bool]]:
        return [m.c[f] == v for f, v in filters.items() if f != but]

    def counted(*, but: str | None = None) -> ColumnElement[int]:
        conditions = matching(but=but)
        return func.count().filter(and_(*conditions)) if conditions else func.count()

    facet_of = case(*((func.grouping(m.c[f]) == 0, literal(f, String)) for f in FACETS), else_=None)
    count_of = case(*((func.grouping(m.c[f]) == 0, counted(but=f)) for f in FACETS), else_=0)
    facets = select(
        facet_of.label("k"),
        func.coalesce(*(cast(m.c[f], String) for f in FACETS)).label("v"),
        count_of.label("n"),
        cast(null(), m.c.published_at.type).label("ts"),
    ).group_by(func.grouping_sets(*(m.c[f] for f in FACETS)))
    total = (
        select(
            literal("total", String),
            cast(null(), String),
            func.count(),
            cast(null(), m.c.published_at.type),
        )
        .select_from(m)
        .where(*matching())
    )
    if query.sort == "date":
        order = [m.c.published_at.desc(), m.c.entry_id.desc()]
    else:
        order = [m.c.score.desc(), m.c.published_at.desc(), m.c.entry_id.desc()]
    ranked = (
        select(m.c.entry_id, m.c.score, m.c.published_at)
        .where(*matching())
        .order_by(*order)
        .limit(query.per_page + 1)
        .offset(query.offset)
        .subquery()
    )
    page = select(
        literal("page", String),
        cast(ranked.c.entry_id, String),
        ranked.c.score,
        ranked.c.published_at,
    )
    stmt = union_all(facets, total, page)
    if query.terms:
        # The planner would rather scan every row when a pair is frequent, computing the
        # grams of each row; the index answers such a search faster. JIT only adds latency.
        before = session.execute(
            text("SELECT current_setting('enable_seqscan'), current_setting('jit')")
        ).one()
        session.execute(
            text("SELECT set_config('enable_seqscan', 'off', true), set_config('jit', 'off', true)")
        )
        try:
            rows = session.execute(stmt).all()
        finally:
            session.execute(
                text("SELECT set_config('enable_seqscan', :s, true), set_config('jit', :j, true)"),
                {"s": before[0], "j": before[1]},
            )
    else:
        rows = session.execute(stmt).all()
    counts: dict[str, dict[str, int]] = {f: {} for f in FACETS}
    total_count = 0
    ranked_rows: list[tuple[int, datetime, int]] = []
    for kind, value, n, published in rows:
        if kind == "total":
            total_count = int(n)
        elif kind == "page":
            ranked_rows.append((int(n), published, int(value)))
        elif kind in counts and value is not None:
            counts[kind][str(value)] = int(n)
    if query.sort == "date":
        ranked_rows.sort(key=lambda r: (r[1], r[2]), reverse=True)
    else:
        ranked_rows.sort(reverse=True)
    ids = [eid for _, _, eid in ranked_rows]
    return _Found(
        total=total_count,
        counts=counts,
        page_ids=ids[: query.per_page],
        has_next=len(ids) > query.per_page,
    )


# ---------------------------------------------------------------- the in-memory replica

#: up to this many published entries (PostgreSQL's estimate), PostgreSQL searches use the
#: in-memory replica too (about 1 KB of memory per entry and process); beyond it, and
#: always if 0, they search in the database
REPLICA_MAX_ROWS = 250_000
#: the FTS5 index has one token per character: every character is a token character but
#: the space that separates them (the text's own white space is mapped to private-use
#: characters first), so that a term is the phrase of its characters
_TOKENIZER = "unicode61 remove_diacritics 0 categories 'L* N* Co Cn Cs Cc Cf M* P* S* Zl Zp'"
_WHITESPACE = str.maketrans(
    {c: chr(0xE000 + i) for i, c in enumerate(c for c in map(chr, range(0x3001)) if c.isspace())}
)
#: has the search table changed? Each part is answered from an index (migration 0003)
_VERSIONS = select(
    func.count(CatalogSearch.version_id).label("n"),
    func.coalesce(func.sum(CatalogSearch.version_id), 0).label("total"),
).subquery()
_FINGERPRINT = select(
    _VERSIONS.c.n,
    _VERSIONS.c.total,
    select(func.max(CatalogSearch.version_id)).scalar_subquery(),
    select(func.max(CatalogSearch.published_at)).scalar_subquery(),
)
_ROW_COLUMNS = (
    CatalogSearch.entry_id,
    CatalogSearch.version_id,
    CatalogSearch.published_at,
    CatalogSearch.name,
    CatalogSearch.text,
    CatalogSearch.jurisdiction_id,
    CatalogSearch.department_id,
    *(getattr(CatalogSearch, f) for f in FACETS if f != "department_id"),
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
#: the set bits of each byte value
_BYTE_BITS = tuple(tuple(i for i in range(8) if b >> i & 1) for b in range(256))
#: below this many rows a set is listed and sorted; above, the date order is walked
_LIST_LIMIT = 4096
#: the replica is rebuilt when more rows than this (and than a quarter) are dead
REBUILD_AFTER_DEAD = 1000


def _tokens(s: str) -> str:
    return " ".join(s.translate(_WHITESPACE))


def _phrase(column: str, term: str) -> str:
    return column + ' : "' + _tokens(term).replace('"', '""') + '"'


def _micros(ts: datetime) -> int:
    return (ts - _EPOCH) // _MICROSECOND


def _bits(slots: Iterable[int], size: int) -> int:
    """The set of ``slots`` as an int bitset."""
    data = bytearray((size + 7) // 8)
    for s in slots:
        data[s >> 3] |= 1 << (s & 7)
    return int.from_bytes(data, "little")


def _members(bits: int) -> list[int]:
    """The slots in an int bitset, ascending."""
    out: list[int] = []
    for i, byte in enumerate(bits.to_bytes((bits.bit_length() + 7) // 8, "little")):
        if byte:
            base = i * 8
            out += [base + j for j in _BYTE_BITS[byte]]
    return out


class Replica:
    """An in-memory copy of ``catalog_search`` for one database (see the module docstring).

    Rows live in slots (parallel lists; the FTS5 rowid of a row is its slot). A changed or
    removed row leaves a dead slot behind (FTS5 cannot forget a row of a contentless
    table); live slots are masked with ``live`` and the replica is rebuilt once dead slots
    pile up. Sets of rows are int bitsets over slots, one per facet value, so that the
    counts of a facet are a few ANDs and popcounts whatever the number of matches."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fingerprint: tuple[Any, ...] | None = None
        self.fts: sqlite3.Connection | None = None
        self._reset()

    def _reset(self) -> None:
        self.fingerprint = None
        self.slot_of: dict[int, int] = {}  # live rows: entry id -> slot
        self.entry_id: list[int] = []
        self.version: list[tuple[int, int]] = []  # (version id, published µs)
        self.order: list[int] = []  # published µs, then entry id: the date order
        self.jurisdiction_id: list[int] = []
        self.cols: dict[str, list[str]] = {f: [] for f in FACETS}
        self.dead = 0
        self.live = 0
        self.value_bits: dict[str, dict[str, int]] = {f: {} for f in FACETS}
        self.jurisdiction_bits: dict[int, int] = {}
        self.by_date: list[int] = []  # live slots, oldest first
        if self.fts is not None:
            self.fts.close()
        self.fts = sqlite3.connect(":memory:", check_same_thread=False)
        try:
            self.fts.execute(
                "CREATE VIRTUAL TABLE grams USING fts5(name, body, content='', "
                f'columnsize=0, tokenize="{_TOKENIZER}")'
            )
            self.texts: dict[str, list[str]] | None = None
        except sqlite3.Error:  # no FTS5 in this SQLite: scan the texts in memory instead
            self.fts.close()
            self.fts = None
            self.texts = {"name": [], "body": []}

    # ------------------------------------------------------------ keeping in step

    def refresh(self, session: Session) -> None:
        """Bring the replica in step with the search table as ``session`` sees it."""
        fingerprint = tuple(session.execute(_FINGERPRINT).one())
        if fingerprint == self.fingerprint:
            return
        try:
            self._catch_up(session, fingerprint)
        except BaseException:
            self._reset()  # half caught up: start afresh next time
            raise

    def _catch_up(self, session: Session, fingerprint: tuple[Any, ...]) -> None:
        current = {
            eid: (vid, _micros(published))
            for eid, vid, published in session.execute(
                select(CatalogSearch.entry_id, CatalogSearch.version_id, CatalogSearch.published_at)
            )
        }
        stale = [
            eid for eid, slot in self.slot_of.items() if current.get(eid) != self.version[slot]
        ]
        if self.dead + len(stale) > max(REBUILD_AFTER_DEAD, len(current) // 4):
            self._reset()
            stale = []
        for eid in stale:
            del self.slot_of[eid]
        self.dead += len(stale)
        missing = [eid for eid in current if eid not in self.slot_of]
        rows = select(*_ROW_COLUMNS).execution_options(yield_per=2000)
        if len(missing) > len(current) // 2:
            wanted = set(missing)
            self._add(r for r in session.execute(rows) if r[0] in wanted)
        else:
            for i in range(0, len(missing), 500):
                chunk = missing[i : i + 500]
                self._add(session.execute(rows.where(CatalogSearch.entry_id.in_(chunk))))
        if stale or missing or self.fingerprint is None:
            self._derive()
        self.fingerprint = fingerprint

    def _add(self, rows: Iterable[Any]) -> None:
        batch: list[tuple[int, str, str]] = []
        for eid, vid, published, name, body, juris, dept, *facets in rows:
            slot = len(self.entry_id)
            micros = _micros(published)
            self.slot_of[eid] = slot
            self.entry_id.append(eid)
            self.version.append((vid, micros))
            self.order.append((micros << 32) + eid)
            self.jurisdiction_id.append(juris)
            for f, v in zip(FACETS, (str(dept), *facets), strict=True):
                self.cols[f].append(_intern(v))
            if self.texts is not None:
                self.texts["name"].append(name.lower())
                self.texts["body"].append(body)
            else:
                batch.append((slot, _tokens(name.lower()), _tokens(body)))
                if len(batch) >= 2000:
                    self._index(batch)
        self._index(batch)

    def _index(self, batch: list[tuple[int, str, str]]) -> None:
        if self.fts is not None and batch:
            self.fts.executemany("INSERT INTO grams(rowid, name, body) VALUES (?, ?, ?)", batch)
        batch.clear()

    def _derive(self) -> None:
        """Rebuild the bitsets and the date order from the live slots."""
        size = len(self.entry_id)
        live = sorted(self.slot_of.values())
        self.live = _bits(live, size)
        for f in FACETS:
            col = self.cols[f]
            groups: dict[str, list[int]] = {}
            for s in live:
                groups.setdefault(col[s], []).append(s)
            self.value_bits[f] = {v: _bits(slots, size) for v, slots in groups.items()}
        by_jurisdiction: dict[int, list[int]] = {}
        for s in live:
            by_jurisdiction.setdefault(self.jurisdiction_id[s], []).append(s)
        self.jurisdiction_bits = {j: _bits(slots, size) for j, slots in by_jurisdiction.items()}
        self.by_date = sorted(live, key=self.order.__getitem__)

    # ------------------------------------------------------------ searching

    def _matching(self, terms: tuple[str, ...], column: str = "body") -> int:
        """The live rows whose ``column`` (body: the whole search text) holds every term."""
        if self.texts is not None or self.fts is None:
            texts = (self.texts or {}).get(column, [])
            found = (s for s in self.slot_of.values() if all(t in texts[s] for t in terms))
            return _bits(found, len(self.entry_id))
        expr = " AND ".join(_phrase(column, t) for t in terms)
        cursor = self.fts.execute("SELECT rowid FROM grams WHERE grams MATCH ?", (expr,))
        return _bits((r[0] for r in cursor), len(self.entry_id)) & self.live

    def search(self, session: Session, query: SearchQuery) -> _Found:
        with self.lock:
            self.refresh(session)
            matched = self._matching(query.terms) if query.terms else self.live
            if query.jurisdiction_id is not None:
                matched &= self.jurisdiction_bits.get(query.jurisdiction_id, 0)
            filter_bits = {f: self.value_bits[f].get(v, 0) for f, v in query.filters.items()}
            selected = matched
            for bits in filter_bits.values():
                selected &= bits
            counts: dict[str, dict[str, int]] = {}
            for f in FACETS:
                base = matched
                for g, bits in filter_bits.items():
                    if g != f:
                        base &= bits
                found = ((v, (base & bits).bit_count()) for v, bits in self.value_bits[f].items())
                counts[f] = {v: n for v, n in found if n}
            ids = [self.entry_id[s] for s in self._page(selected, query)]
        return _Found(
            total=selected.bit_count(),
            counts=counts,
            page_ids=ids[: query.per_page],
            has_next=len(ids) > query.per_page,
        )

    def _page(self, selected: int, query: SearchQuery) -> list[int]:
        """The slots of the page (and one more): by score then date, or by date."""
        if query.sort == "date" or not query.terms:
            groups = [selected]
        else:  # relevance: more terms in the name first (a bit-sliced count of name hits)
            planes: list[int] = []
            for bits in (self._matching((t,), "name") for t in query.terms):
                carry = bits & selected
                i = 0
                while carry:
                    if i == len(planes):
                        planes.append(0)
                    planes[i], carry = planes[i] ^ carry, planes[i] & carry
                    i += 1
            groups = []
            for score in range(len(query.terms), -1, -1):
                if score >> len(planes):
                    continue
                group = selected
                for i, plane in enumerate(planes):
                    group &= plane if score >> i & 1 else ~plane
                groups.append(group)
        skip, wanted = query.offset, query.per_page + 1
        out: list[int] = []
        for group in groups:
            size = group.bit_count()
            if skip >= size:
                skip -= size
                continue
            out += self._newest(group, size, skip + wanted - len(out))[skip:]
            skip = 0
            if len(out) >= wanted:
                break
        return out[:wanted]

    def _newest(self, group: int, size: int, n: int) -> list[int]:
        """The ``n`` newest slots of a set of ``size`` slots."""
        if size <= _LIST_LIMIT:
            return sorted(_members(group), key=self.order.__getitem__, reverse=True)[:n]
        member = group.to_bytes((len(self.entry_id) + 7) // 8, "little")
        out: list[int] = []
        for s in reversed(self.by_date):
            if member[s >> 3] >> (s & 7) & 1:
                out.append(s)
                if len(out) == n:
                    break
        return out


_INTERNED: dict[str, str] = {}


def _intern(value: str) -> str:
    """One string object per facet value (100,000 rows share a handful of values)."""
    return _INTERNED.setdefault(value, value)


_replicas: dict[str, Replica] = {}
_replicas_lock = threading.Lock()


def _database_key(session: Session) -> str:
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    return engine.url.render_as_string(hide_password=True)


def use_replica(session: Session) -> bool:
    """SQLite always; PostgreSQL up to ``REPLICA_MAX_ROWS`` published entries (never if
    it is 0)."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    if REPLICA_MAX_ROWS <= 0:
        return False
    estimate = session.execute(
        text("SELECT reltuples FROM pg_class WHERE oid = 'catalog_search'::regclass")
    ).scalar()
    if estimate is None or estimate <= REPLICA_MAX_ROWS:
        return True
    with _replicas_lock:  # grown past it: free the memory
        _replicas.pop(_database_key(session), None)
    return False


def replica_for(session: Session) -> Replica:
    url = _database_key(session)
    with _replicas_lock:
        replica = _replicas.get(url)
        if replica is None:
            replica = _replicas[url] = Replica()
        return replica


def warm(session: Session) -> None:
    """Load the replica now (say in a background thread at start-up) rather than on the
    first search: about 4 s for 100,000 entries."""
    if use_replica(session):
        replica = replica_for(session)
        with replica.lock:
            replica.refresh(session)


def invalidate() -> None:
    """Forget every replica (the next search reloads): for whoever rewrites search rows in
    place without a new version or publication time."""
    with _replicas_lock:
        _replicas.clear()


# ---------------------------------------------------------------- labels, snippets


def _book(session: Session, principal: Principal) -> Rulebook:
    juris = (
        session.get(Jurisdiction, principal.jurisdiction_id)
        if principal.jurisdiction_id is not None
        else None
    )
    return rules_service.rulebook_for(session, juris)


def _labels(
    session: Session, principal: Principal, dept_ids: set[int]
) -> dict[str, dict[str, str]]:
    book = _book(session, principal)
    departments = (
        {
            dept_id: name
            for dept_id, name in session.execute(
                select(Department.id, Department.name).where(Department.id.in_(dept_ids))
            )
        }
        if dept_ids
        else {}
    )
    return {
        "department_id": {str(k): v for k, v in departments.items()},
        "catalog_kind": {v.value: v.label for v in CatalogKind},
        "share_type": {v.value: catalog_service.share_type_name(book, v.value) for v in ShareType},
        "open_type": {v.value: catalog_service.open_type_name(book, v.value) for v in OpenType},
        "resource_format": {v.value: v.label for v in ResourceFormat},
        "update_frequency": {v.value: v.label for v in UpdateFrequency},
        "data_grade": {v.value: v.label for v in DataGrade},
    }


def _pattern(terms: Sequence[str]) -> re.Pattern[str] | None:
    if not terms:
        return None
    alternatives = sorted(terms, key=len, reverse=True)
    return re.compile("|".join(re.escape(t) for t in alternatives), re.IGNORECASE)


def _marks(s: str, pattern: re.Pattern[str] | None) -> tuple[tuple[int, int], ...]:
    if pattern is None:
        return ()
    return tuple(m.span() for m in pattern.finditer(s))


def snippet(
    summary: str, item_names: Sequence[str], terms: Sequence[str], width: int = SNIPPET_WIDTH
) -> tuple[str, tuple[tuple[int, int], ...]]:
    """A piece of the summary (or of the data item list) around the first matched term."""
    pattern = _pattern(terms)
    summary = " ".join(summary.split())
    sources = [summary]
    if item_names:
        sources.append("信息项：" + "、".join(item_names))
    for source in sources:
        match = pattern.search(source) if pattern else None
        if match is None:
            continue
        start = max(0, match.start() - width // 3)
        end = min(len(source), start + width)
        start = max(0, min(start, end - width))
        piece = ("…" if start > 0 else "") + source[start:end] + ("…" if end < len(source) else "")
        return piece, _marks(piece, pattern)
    piece = summary[:width] + ("…" if len(summary) > width else "")
    return piece, _marks(piece, pattern)


def _parts(s: str, spans: Sequence[tuple[int, int]]) -> list[tuple[str, bool]]:
    parts: list[tuple[str, bool]] = []
    pos = 0
    for start, end in spans:
        if start < pos:
            continue
        if start > pos:
            parts.append((s[pos:start], False))
        parts.append((s[start:end], True))
        pos = end
    if pos < len(s):
        parts.append((s[pos:], False))
    return parts


def _present(
    session: Session, principal: Principal, query: SearchQuery, found: _Found
) -> SearchResult:
    rows = (
        {
            r.entry_id: r
            for r in session.execute(
                select(
                    CatalogSearch.entry_id,
                    CatalogSearch.code,
                    CatalogSearch.name,
                    CatalogSearch.department_id,
                    CatalogSearch.catalog_kind,
                    CatalogSearch.share_type,
                    CatalogSearch.open_type,
                    CatalogSearch.resource_format,
                    CatalogSearch.update_frequency,
                    CatalogSearch.data_grade,
                    CatalogSearch.published_at,
                    CatalogVersion.summary,
                    CatalogVersion.data_items,
                )
                .join(CatalogVersion, CatalogVersion.id == CatalogSearch.version_id)
                .where(CatalogSearch.entry_id.in_(found.page_ids))
            )
        }
        if found.page_ids
        else {}
    )
    dept_ids = {int(v) for v in found.counts["department_id"]}
    dept_ids |= {r.department_id for r in rows.values()}
    if "department_id" in query.filters:
        dept_ids.add(int(query.filters["department_id"]))
    labels = _labels(session, principal, dept_ids)
    pattern = _pattern(query.terms)
    items: list[SearchHit] = []
    for eid in found.page_ids:
        r = rows.get(eid)
        if r is None:  # withdrawn between the two reads
            continue
        text_, marks = snippet(
            r.summary, [str(it.get("name", "")) for it in r.data_items or []], query.terms
        )
        items.append(
            SearchHit(
                entry_id=r.entry_id,
                code=r.code,
                name=r.name,
                department_id=r.department_id,
                department_name=labels["department_id"].get(str(r.department_id), ""),
                catalog_kind=r.catalog_kind,
                catalog_kind_label=labels["catalog_kind"].get(r.catalog_kind, r.catalog_kind),
                share_type=r.share_type,
                share_type_name=labels["share_type"].get(r.share_type, r.share_type),
                open_type=r.open_type,
                open_type_name=labels["open_type"].get(r.open_type, r.open_type),
                resource_format=r.resource_format,
                resource_format_label=labels["resource_format"].get(
                    r.resource_format, r.resource_format
                ),
                update_frequency=r.update_frequency,
                update_frequency_label=labels["update_frequency"].get(
                    r.update_frequency, r.update_frequency
                ),
                data_grade=r.data_grade,
                data_grade_label=labels["data_grade"].get(r.data_grade, r.data_grade),
                published_at=r.published_at,
                snippet=text_,
                highlights=marks,
                name_highlights=_marks(r.name, pattern),
            )
        )
    facets: dict[str, list[FacetValue]] = {}
    for facet in FACETS:
        counts = dict(found.counts.get(facet, {}))
        chosen = query.filters.get(facet)
        if chosen is not None:
            counts.setdefault(chosen, 0)
        names = labels[facet]
        if facet == "department_id":
            order = sorted(counts, key=lambda v: (-counts[v], names.get(v, ""), v))
        else:
            known = _ENUM_FACETS[facet]
            order = [v for v in known if v in counts] + sorted(v for v in counts if v not in known)
        facets[facet] = [
            FacetValue(v, names.get(v, v), counts[v]) for v in order if counts[v] or v == chosen
        ]
    return SearchResult(
        items=items,
        total=found.total,
        facets=facets,
        page=query.page,
        per_page=query.per_page,
        has_next=found.has_next,
        query=query,
    )
