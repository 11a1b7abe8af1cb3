"""Catalog search: Chinese substring keywords, facets that ignore their own filter, sorting,
what never shows, who may search; the JSON API and the browse page.

Searches go through the in-memory replica (SQLite always; PostgreSQL up to
``REPLICA_MAX_ROWS`` entries). On PostgreSQL, the search in the database (GIN index over
characters and character pairs, for larger catalogs) must give the very same answers."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from govshare.catalog import schemas
from govshare.catalog import search as catalog_search
from govshare.catalog import service as catalog
from govshare.catalog.models import CatalogEntry
from govshare.catalog.search import SearchResult, search
from govshare.errors import PermissionDenied, ValidationFailed
from govshare.orgs.models import User
from govshare.permissions import Role
from govshare.principal import Principal
from tests.catalog.conftest import CatalogWorld, publish, version_in
from tests.conftest import Factory, login
from tests.test_authz_matrix import all_routes

# ---------------------------------------------------------------- helpers


@pytest.fixture
def app(app: FastAPI) -> FastAPI:
    """The app with this module's routers (until main.py mounts them)."""
    from govshare.catalog import search_routes

    paths = {path for path, _route in all_routes(app)}
    if "/api/v1/catalog/search" not in paths:
        app.include_router(search_routes.api_router, prefix="/api/v1")
    if "/catalog" not in paths:
        app.include_router(search_routes.page_router, include_in_schema=False)
    return app


def item(name: str, field: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "field": field, "data_type": "string", **extra}


KEY = item("公民身份号码", "id_number", required=True, personal=True)
KEY["data_type"] = "id_number"


def unconditional(**overrides: Any) -> dict[str, Any]:
    return {"share_type": "unconditional", "share_scope": "", "share_purpose": ""} | overrides


def not_shared(**overrides: Any) -> dict[str, Any]:
    return {"share_type": "not_shared", "share_methods": []} | overrides


def publish_as(db: Session, world: CatalogWorld, officer: Principal, **overrides: Any) -> int:
    """Draft, submit and approve an entry of ``officer``'s department; its entry id."""
    version = catalog.create_entry(db, officer, version_in(**overrides))
    catalog.submit(db, officer, version)
    catalog.review(db, world.authority, version, schemas.ReviewIn(decision="approve"))
    db.commit()
    return version.entry_id


def names(result: SearchResult) -> list[str]:
    return [hit.name for hit in result.items]


def counts(result: SearchResult, facet: str) -> dict[str, int]:
    return {v.value: v.count for v in result.facets[facet]}


def username(db: Session, principal: Principal) -> str:
    user = db.get(User, principal.id)
    assert user is not None
    return user.username


@pytest.fixture
def catalog_world(db: Session, world: CatalogWorld) -> dict[str, int]:
    """Seven published entries of the police and the civil affairs bureau, oldest first."""
    ids = {
        "户籍": publish(
            db,
            world,
            name="户籍人口基本信息",
            summary="本县户籍人口的姓名、性别、出生日期、住址等基本信息。",
        ).entry_id,
        "流动": publish(
            db,
            world,
            name="流动人口居住登记信息",
            summary="在本县居住半年以上的流动人口及其户籍所在地。",
            update_frequency="weekly",
        ).entry_id,
        "车辆": publish(
            db,
            world,
            name="机动车登记信息",
            summary="本县登记的机动车号牌、车辆类型和所有人。",
            data_items=[KEY, item("号牌号码", "plate_no"), item("车辆识别代号", "vin_code")],
            **unconditional(update_frequency="realtime", resource_format="interface"),
        ).entry_id,
        "出入境": publish(
            db,
            world,
            name="出入境证件签发信息",
            summary="护照、往来港澳通行证的签发记录。",
            data_items=[KEY, item("证件号码", "doc_no"), item("签发机关", "issuer")],
            **not_shared(data_grade="core"),
        ).entry_id,
        "婚姻": publish_as(
            db,
            world,
            world.other_officer,
            name="婚姻登记信息",
            summary="结婚、离婚登记的当事人及登记日期。",
            data_items=[KEY, item("配偶姓名", "spouse_name"), item("登记日期", "reg_date")],
            **unconditional(update_frequency="weekly"),
        ),
        "救助": publish_as(
            db,
            world,
            world.other_officer,
            name="社会救助对象信息",
            summary="最低生活保障、特困人员救助供养对象，含户籍地址。",
            data_items=[KEY, item("救助类型", "aid_kind"), item("宗教信仰", "religion")],
        ),
        "殡葬": publish_as(
            db,
            world,
            world.other_officer,
            name="殡葬服务记录",
            summary="火化、安葬服务的办理记录。",
            data_items=[KEY, item("火化日期", "cremation_date")],
            **unconditional(update_frequency="monthly", data_grade="general"),
        ),
    }
    return ids


# ---------------------------------------------------------------- keywords


def test_two_character_word_finds_longer_names(
    db: Session, world: CatalogWorld, catalog_world: dict[str, int]
) -> None:
    result = search(db, world.officer, q="户籍")
    # name, summary (流动人口…户籍所在地) and summary (救助…户籍地址): all three, no others
    assert sorted(names(result)) == ["户籍人口基本信息", "流动人口居住登记信息", "社会救助对象信息"]
    assert result.total == 3
    assert names(search(db, world.officer, q="户籍人口")) == ["户籍人口基本信息"]
    assert names(search(db, world.officer, q="籍人")) == ["户籍人口基本信息"]  # any substring
    assert search(db, world.officer, q="户口本").total == 0
    # one character, upper-case Latin letters and surrounding blanks
    assert sorted(names(search(db, world.officer, q="  婚 "))) == ["婚姻登记信息"]
    assert names(search(db, world.officer, q="VIN_CODE")) == ["机动车登记信息"]
    assert search(db, world.officer, q="vin-code").total == 0  # punctuation matches exactly


def test_every_term_must_match(
    db: Session, world: CatalogWorld, catalog_world: dict[str, int]
) -> None:
    assert sorted(names(search(db, world.officer, q="户籍 居住"))) == ["流动人口居住登记信息"]
    assert names(search(db, world.officer, q="登记 配偶")) == ["婚姻登记信息"]
    assert search(db, world.officer, q="户籍 配偶").total == 0


def test_data_item_names_fields_codes_and_departments_are_searched(
    db: Session, world: CatalogWorld, catalog_world: dict[str, int]
) -> None:
    # 宗教信仰 and religion appear only among the data items of the social assistance entry
    assert names(search(db, world.officer, q="宗教信仰")) == ["社会救助对象信息"]
    assert names(search(db, world.officer, q="religion")) == ["社会救助对象信息"]
    marriage = db.get(CatalogEntry, catalog_world["婚姻"])
    assert marriage is not None
    hit = search(db, world.officer, q=marriage.code).items
    assert [h.entry_id for h in hit] == [catalog_world["婚姻"]]
    assert search(db, world.officer, q="民政局").total == 3  # the department's name


# ---------------------------------------------------------------- facets and filters


def test_facet_counts_ignore_their_own_filter(
    db: Session, world: CatalogWorld, catalog_world: dict[str, int]
) -> None:
    everything = search(db, world.officer)
    assert everything.total == 7
    assert counts(everything, "share_type") == {
        "unconditional": 3,
        "conditional": 3,
        "not_shared": 1,
    }
    assert counts(everything, "department_id") == {
        str(world.police.id): 4,
        str(world.civil.id): 3,
    }
    assert counts(everything, "update_frequency") == {
        "realtime": 1,
        "daily": 3,
        "weekly": 2,
        "monthly": 1,
    }

    unconditional_only = search(db, world.officer, share_type="unconditional")
    assert unconditional_only.total == 3
    # the share type facet still counts every share type (its own filter is ignored) ...
    assert counts(unconditional_only, "share_type") == counts(everything, "share_type")
    # ... while the other facets count only unconditional entries
    assert counts(unconditional_only, "update_frequency") == {
        "realtime": 1,
        "weekly": 1,
        "monthly": 1,
    }
    assert counts(unconditional_only, "department_id") == {
        str(world.police.id): 1,
        str(world.civil.id): 2,
    }
    # facets count the keyword-matched entries only
    keyword = search(db, world.officer, q="登记", share_type="unconditional")
    assert sorted(names(keyword)) == ["婚姻登记信息", "机动车登记信息"]
    assert counts(keyword, "share_type") == {"unconditional": 2, "conditional": 1}


def test_filters_combine_and_each_facet_ignores_only_its_own(
    db: Session, world: CatalogWorld, catalog_world: dict[str, int]
) -> None:
    result = search(db, world.officer, department_id=world.civil.id, update_frequency="weekly")
    assert names(result) == ["婚姻登记信息"]
    # department facet: weekly entries of every department; frequency facet: civil affairs
    assert counts(result, "department_id") == {str(world.police.id): 1, str(world.civil.id): 1}
    assert counts(result, "update_frequency") == {"weekly": 1, "daily": 1, "monthly": 1}
    assert counts(result, "share_type") == {"unconditional": 1}
    # a selected value with no entries is still listed (so that it can be removed)
    empty = search(db, world.officer, q="户籍", data_grade="core")
    assert empty.total == 0
    assert counts(empty, "data_grade") == {"important": 3, "core": 0}
    assert search(db, world.officer, resource_format="interface", open_type="not_open").total == 1
    assert search(db, world.officer, catalog_kind="department").total == 7
    assert search(db, world.officer, catalog_kind="base").total == 0
    assert search(db, world.officer, jurisdiction_id=world.county.id).total == 7
    assert search(db, world.officer, jurisdiction_id=world.city.id).total == 0


def test_facet_labels_and_share_type_names_follow_the_rulebook(
    db: Session, world: CatalogWorld, catalog_world: dict[str, int]
) -> None:
    county = search(db, world.officer, q="户籍人口")  # the county uses neixiang-2017
    labels = {v.value: v.label for v in county.facets["share_type"]}
    assert labels == {"conditional": "条件共享"}
    assert county.items[0].share_type_name == "条件共享"
    assert county.items[0].open_type_name
    everything = search(db, world.officer)
    assert {v.value: v.label for v in everything.facets["share_type"]} == {
        "unconditional": "强制共享",
        "conditional": "条件共享",
        "not_shared": "不予共享",
    }
    assert {v.value: v.label for v in everything.facets["department_id"]} == {
        str(world.police.id): "目录县公安局",
        str(world.civil.id): "目录县民政局",
    }
    assert {v.label for v in everything.facets["update_frequency"]} == {
        "实时",
        "每日",
        "每周",
        "每月",
    }
    assert {v.label for v in everything.facets["data_grade"]} == {
        "重要数据",
        "一般数据",
        "核心数据",
    }
    # the city's authority reads the names of the city's rulebook
    city = search(db, world.city_authority, q="户籍人口")
    assert city.items[0].share_type_name == "有条件共享"
    assert city.items[0].department_name == "目录县公安局"
    assert city.items[0].update_frequency_label == "每日"
    assert city.items[0].resource_format_label == "数据库"
    assert city.items[0].data_grade_label == "重要数据"


# ---------------------------------------------------------------- order and pages


def test_relevance_puts_name_matches_first_then_newest(
    db: Session, world: CatalogWorld, catalog_world: dict[str, int]
) -> None:
    # 户籍 is in the oldest entry's name, and in two newer entries' summaries only
    by_relevance = names(search(db, world.officer, q="户籍"))
    assert by_relevance == ["户籍人口基本信息", "社会救助对象信息", "流动人口居住登记信息"]
    by_date = names(search(db, world.officer, q="户籍", sort="date"))
    assert by_date == ["社会救助对象信息", "流动人口居住登记信息", "户籍人口基本信息"]
    # two terms: both in the name (the oldest) beats one in the name (newer ones)
    two = names(search(db, world.officer, q="户籍 信息"))
    assert two == ["户籍人口基本信息", "社会救助对象信息", "流动人口居住登记信息"]
    assert names(search(db, world.officer, q="户籍 信息", sort="date"))[0] == "社会救助对象信息"
    # without a keyword the newest come first
    assert names(search(db, world.officer))[:2] == ["殡葬服务记录", "社会救助对象信息"]


def test_pages(db: Session, world: CatalogWorld, catalog_world: dict[str, int]) -> None:
    seen: list[str] = []
    for page in (1, 2, 3):
        result = search(db, world.officer, sort="date", page=page, per_page=3)
        assert result.total == 7
        assert result.has_next == (page < 3)
        assert result.pages == 3
        seen += names(result)
    assert len(seen) == 7 == len(set(seen))
    assert search(db, world.officer, page=4, per_page=3).items == []
    relevance = [names(search(db, world.officer, q="户籍", page=p, per_page=1)) for p in (1, 2, 3)]
    assert relevance == [["户籍人口基本信息"], ["社会救助对象信息"], ["流动人口居住登记信息"]]


# ---------------------------------------------------------------- what never shows


def test_drafts_submitted_and_withdrawn_entries_never_appear(
    db: Session, world: CatalogWorld, catalog_world: dict[str, int]
) -> None:
    assert search(db, world.officer, q="户籍").total == 3  # builds the replica first
    catalog.create_entry(db, world.officer, version_in(name="户籍迁移草稿信息"))
    submitted = catalog.create_entry(db, world.officer, version_in(name="户籍待审核信息"))
    catalog.submit(db, world.officer, submitted)
    # a published entry's pending new version does not replace what is found
    entry = db.get(CatalogEntry, catalog_world["户籍"])
    assert entry is not None
    draft = catalog.new_version(db, world.officer, entry, schemas.NewVersionIn(change_note="改名"))
    catalog.update_version(
        db, world.officer, draft, version_in(name="户籍人口变更草稿", change_note="改名")
    )
    catalog.withdraw(
        db,
        world.head,
        db.get(CatalogEntry, catalog_world["流动"]),  # type: ignore[arg-type]
        schemas.WithdrawIn(reason="职能调整，不再采集"),
    )
    db.commit()
    for principal in (world.officer, world.authority):  # not even for their owners
        result = search(db, principal, q="户籍")
        assert sorted(names(result)) == ["户籍人口基本信息", "社会救助对象信息"]
    assert search(db, world.officer, q="草稿").total == 0
    assert search(db, world.officer, q="待审核").total == 0
    assert search(db, world.officer).total == 6


def test_search_keeps_in_step_with_publication(
    db: Session, world: CatalogWorld, catalog_world: dict[str, int]
) -> None:
    assert search(db, world.officer, q="不动产").total == 0
    new = publish(db, world, name="不动产登记信息", summary="不动产权利人及坐落。")
    assert names(search(db, world.officer, q="不动产")) == ["不动产登记信息"]
    # an approved new version replaces the old text
    entry = new.entry
    draft = catalog.new_version(db, world.officer, entry, schemas.NewVersionIn(change_note="改名"))
    catalog.update_version(
        db,
        world.officer,
        draft,
        version_in(name="不动产权属信息", summary="不动产权利人及坐落、面积。", change_note="改名"),
    )
    catalog.submit(db, world.officer, draft)
    catalog.review(db, world.authority, draft, schemas.ReviewIn(decision="approve"))
    db.commit()
    assert names(search(db, world.officer, q="不动产")) == ["不动产权属信息"]
    assert search(db, world.officer, q="不动产登记").total == 0
    assert search(db, world.officer, q="面积").total == 1


AGREEMENT_QUERIES: list[dict[str, Any]] = [
    {},
    {"q": "户籍"},
    {"q": "户籍", "sort": "date"},
    {"q": "户籍人口"},
    {"q": "籍人"},
    {"q": "婚"},
    {"q": "VIN_CODE"},
    {"q": "vin-code"},
    {"q": "户籍 信息"},
    {"q": "登记 配偶"},
    {"q": "宗教信仰"},
    {"q": "民政局", "update_frequency": "weekly"},
    {"q": "登记", "share_type": "unconditional"},
    {"q": "户籍", "data_grade": "core"},
    {"share_type": "unconditional"},
    {"share_type": "conditional", "update_frequency": "daily", "data_grade": "important"},
    {"update_frequency": "weekly", "sort": "date", "per_page": 1, "page": 2},
    {"q": "信息", "per_page": 2, "page": 2},
    {"q": "信息", "resource_format": "interface", "open_type": "not_open"},
    {"catalog_kind": "base"},
]


def test_in_database_search_agrees_with_the_replica(
    db: Session,
    world: CatalogWorld,
    catalog_world: dict[str, int],
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if backend == "sqlite":  # nothing to compare: SQLite always searches the replica
        assert catalog_search.use_replica(db)
        return
    params: list[dict[str, Any]] = [
        *AGREEMENT_QUERIES,
        {"department_id": world.civil.id, "update_frequency": "weekly"},
        {"q": "登记", "jurisdiction_id": world.county.id, "department_id": world.police.id},
    ]
    assert catalog_search.use_replica(db)
    replica = [search(db, world.officer, **p) for p in params]
    monkeypatch.setattr(catalog_search, "use_replica", lambda session: False)
    in_database = [search(db, world.officer, **p) for p in params]
    for p, a, b in zip(params, replica, in_database, strict=True):
        assert a.total == b.total, p
        assert [h.entry_id for h in a.items] == [h.entry_id for h in b.items], p
        assert a.items == b.items, p
        assert a.facets == b.facets, p
        assert a.has_next == b.has_next, p
    assert sum(r.total for r in replica) > 40  # the queries do find things


def test_replica_without_fts5_or_rebuilt_gives_the_same_answers(
    db: Session,
    world: CatalogWorld,
    catalog_world: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queries: list[dict[str, Any]] = [*AGREEMENT_QUERIES, {"q": "vin_code"}, {"q": "，"}]
    expected = [search(db, world.officer, **p) for p in queries]
    # without FTS5 the replica scans its texts: same answers
    catalog_search.invalidate()
    tokenizer = catalog_search._TOKENIZER
    monkeypatch.setattr(catalog_search, "_TOKENIZER", "no_such_tokenizer")
    without_fts = [search(db, world.officer, **p) for p in queries]
    assert catalog_search.replica_for(db).fts is None
    for p, a, b in zip(queries, expected, without_fts, strict=True):
        assert [h.entry_id for h in a.items] == [h.entry_id for h in b.items], p
        assert (a.total, a.facets, a.has_next) == (b.total, b.facets, b.has_next), p
    catalog_search.invalidate()
    monkeypatch.setattr(catalog_search, "_TOKENIZER", tokenizer)
    # a changed row leaves a dead slot; past the limit the replica is rebuilt from scratch
    assert search(db, world.officer, q="殡葬").total == 1
    assert len(catalog_search.replica_for(db).entry_id) == 7
    monkeypatch.setattr(catalog_search, "REBUILD_AFTER_DEAD", 0)
    for key in ("殡葬", "婚姻"):  # more than a quarter of the rows
        entry = db.get(CatalogEntry, catalog_world[key])
        assert entry is not None
        catalog.withdraw(db, world.authority, entry, schemas.WithdrawIn(reason="测试重建索引"))
    db.commit()
    assert search(db, world.officer, q="殡葬").total == 0
    replica = catalog_search.replica_for(db)
    assert replica.dead == 0
    assert len(replica.entry_id) == 5  # rebuilt: no dead slot left
    assert names(search(db, world.officer, q="户籍")) == names(expected[1])


def test_warm_up_and_switching_postgresql_to_the_database(
    db: Session,
    world: CatalogWorld,
    catalog_world: dict[str, int],
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    catalog_search.invalidate()
    catalog_search.warm(db)
    if backend == "sqlite":
        assert catalog_search.replica_for(db).fingerprint is not None
        monkeypatch.setattr(catalog_search, "REPLICA_MAX_ROWS", 0)
        assert catalog_search.use_replica(db)  # SQLite has no other way
        return
    assert catalog_search.replica_for(db).fingerprint is not None
    monkeypatch.setattr(catalog_search, "REPLICA_MAX_ROWS", 0)
    assert not catalog_search.use_replica(db)
    assert names(search(db, world.officer, q="户籍人口")) == ["户籍人口基本信息"]


# ---------------------------------------------------------------- who may search, what is asked


def test_staff_may_search_the_public_may_not(
    db: Session, world: CatalogWorld, factory: Factory, catalog_world: dict[str, int]
) -> None:
    for principal in (world.officer, world.other_officer, world.authority, world.reviewer):
        assert search(db, principal, q="户籍").total == 3
    public = factory.principal(factory.user(Role.PUBLIC))
    with pytest.raises(PermissionDenied):
        search(db, public, q="户籍")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"share_type": "mandatory"}, "share_type"),
        ({"data_grade": "secret"}, "data_grade"),
        ({"sort": "name"}, "sort"),
        ({"page": 0}, "page"),
        ({"per_page": 101}, "per_page"),
        ({"department_id": 0}, "department_id"),
        ({"q": "词" * 201}, "q"),
        ({"q": " ".join("abcdefghijk")}, "q"),
    ],
)
def test_bad_parameters_are_refused_with_the_field(
    db: Session, world: CatalogWorld, params: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationFailed) as info:
        search(db, world.officer, **params)
    assert info.value.field == field


def test_snippet_shows_where_the_term_is() -> None:
    summary = "本数据集记录" + "甲" * 100 + "户籍地址及迁入日期" + "乙" * 100
    text, marks = catalog_search.snippet(summary, ["姓名"], ["户籍"])
    assert text.startswith("…")
    assert text.endswith("…")
    assert [text[a:b] for a, b in marks] == ["户籍"]
    # not in the summary: the data items are shown instead
    text, marks = catalog_search.snippet("简短摘要。", ["姓名", "宗教信仰"], ["宗教"])
    assert text == "信息项：姓名、宗教信仰"
    assert [text[a:b] for a, b in marks] == ["宗教"]
    # case-insensitive, every occurrence, longest term first
    text, marks = catalog_search.snippet("ID 与 id 及 户籍人口", [], ["id", "户籍", "户籍人口"])
    assert [text[a:b] for a, b in marks] == ["ID", "id", "户籍人口"]


# ---------------------------------------------------------------- JSON API


def test_api_search_with_filters(
    client: TestClient, db: Session, world: CatalogWorld, catalog_world: dict[str, int]
) -> None:
    login(client, username(db, world.officer))
    r = client.get(
        "/api/v1/catalog/search",
        params={"q": "登记", "share_type": "unconditional", "sort": "date", "per_page": 1},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 2
    assert body["has_next"] is True
    assert body["page"] == 1
    hit = body["items"][0]
    assert hit["name"] == "婚姻登记信息"
    assert hit["share_type_name"] == "强制共享"
    assert hit["department_name"] == "目录县民政局"
    assert hit["snippet"][slice(*hit["highlights"][0])] == "登记"
    share = {f["value"]: f for f in body["facets"]["share_type"]}
    assert share["conditional"] == {"value": "conditional", "label": "条件共享", "count": 1}
    assert set(body["facets"]) == set(catalog_search.FACETS)
    assert client.get("/api/v1/catalog/search", params={"share_type": "x"}).status_code == 422
    r = client.get("/api/v1/catalog/search", params={"department_id": world.civil.id})
    assert r.json()["total"] == 3


def test_api_refuses_the_public_and_anonymous(
    client: TestClient, db: Session, world: CatalogWorld, factory: Factory
) -> None:
    assert client.get("/api/v1/catalog/search", params={"q": "户籍"}).status_code == 401
    public = factory.user(Role.PUBLIC)
    login(client, public.username)
    r = client.get("/api/v1/catalog/search", params={"q": "户籍"})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "permission_denied"
    client.cookies.clear()
    login(client, username(db, world.authority))
    assert client.get("/api/v1/catalog/search", params={"q": "户籍"}).status_code == 200


# ---------------------------------------------------------------- the browse page


def test_page_highlights_escapes_and_links(
    client: TestClient, db: Session, world: CatalogWorld, catalog_world: dict[str, int]
) -> None:
    publish(
        db,
        world,
        name="户籍<b>标签</b>测试信息",
        summary="摘要含有<script>alert(1)</script>与户籍两个字。",
    )
    login(client, username(db, world.officer))
    r = client.get("/catalog", params={"q": "户籍", "share_type": "conditional"})
    assert r.status_code == 200
    html = r.text
    assert "<mark>户籍</mark>" in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<mark>户籍</mark>&lt;b&gt;标签&lt;/b&gt;测试信息" in html
    assert 'data-testid="total">共 <strong>4</strong>' in html
    # facet values are links (plain and HTMX) that add or remove their filter
    police = f'data-facet="department_id" data-value="{world.police.id}"'
    assert police in html
    assert "条件共享" in html
    assert "有条件共享" not in html
    links = re.findall(r'href="(/catalog\?[^"]*)" hx-get="([^"]*)"', html)
    assert links
    assert all(href == hx for href, hx in links)
    hrefs = {h.replace("&amp;", "&") for h, _ in links}
    assert (
        f"/catalog?q=%E6%88%B7%E7%B1%8D&department_id={world.police.id}&share_type=conditional"
        in hrefs
    )
    assert "/catalog?q=%E6%88%B7%E7%B1%8D" in hrefs  # removes share_type=conditional
    assert 'hx-push-url="true"' in html
    assert '/catalog/export.xlsx?q=%E6%88%B7%E7%B1%8D&amp;share_type=conditional"' in html
    assert "导出本次结果" in html
    assert f'href="/catalog/entries/{catalog_world["户籍"]}"' in html
    assert "按发布日期" in html
    assert "按相关度" in html
    assert "<html" in html


def test_page_htmx_fragment_pages_and_errors(
    client: TestClient, db: Session, world: CatalogWorld, catalog_world: dict[str, int]
) -> None:
    login(client, username(db, world.authority))
    headers = {"HX-Request": "true", "HX-Target": "catalog-results"}
    r = client.get("/catalog", params={"per_page": 3, "page": 2, "sort": "date"}, headers=headers)
    assert r.status_code == 200
    assert "<html" not in r.text
    assert 'id="catalog-results"' in r.text
    assert "第 2 / 3 页" in r.text
    assert "sort=date&amp;page=3&amp;per_page=3" in r.text  # the next page
    assert "sort=date&amp;per_page=3" in r.text  # the previous one, page 1 needs no number
    assert r.headers["vary"] == "HX-Request, HX-Target"
    bad = client.get("/catalog", params={"share_type": "x"})
    assert bad.status_code == 422
    assert "共享类型取值无效" in bad.text
    assert client.get("/catalog", params={"department_id": "abc"}).status_code == 422
    empty = client.get("/catalog", params={"q": "没有这样的资源"})
    assert "没有符合条件的目录资源" in empty.text


def test_page_refuses_the_public_and_sends_anonymous_to_log_in(
    client: TestClient, factory: Factory, world: CatalogWorld
) -> None:
    r = client.get("/catalog", params={"q": "户籍"}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=/catalog")
    login(client, factory.user(Role.PUBLIC).username)
    assert client.get("/catalog").status_code == 403
