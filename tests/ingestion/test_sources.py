"""One data item, one source (一数一源): default source, repeat-collection flags and their
exemptions, designations, conflict detection and resolution, pages, API and CSV
(seed 003 art. 24; seed 004 art. 7 and 15)."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from govshare.audit.models import AuditEntry
from govshare.catalog import schemas
from govshare.catalog import service as catalog
from govshare.errors import PermissionDenied, ValidationFailed
from govshare.ingestion import service, sources, tables
from govshare.ingestion.models import BatchSource, DataTable
from govshare.ingestion.source_models import ConflictStatus, SourceConflict
from govshare.orgs.models import User
from govshare.permissions import Role
from govshare.principal import Principal
from tests.catalog.conftest import CatalogWorld, version_in
from tests.conftest import Factory, login
from tests.ingestion.test_service import person_id

KEY = {
    "name": "公民身份号码",
    "field": "id_number",
    "data_type": "id_number",
    "required": True,
    "personal": True,
}
POLICE_ITEMS = [
    KEY,
    {"name": "姓名", "field": "name", "data_type": "string", "length": 20, "personal": True},
    {"name": "婚姻状况", "field": "marital", "data_type": "string", "length": 10},
    {"name": "出生日期", "field": "birth", "data_type": "date"},
]
# the same items under other field names, one name written with a (full-width) space
CIVIL_ITEMS = [
    {**KEY, "field": "sfzh"},
    {"name": "姓名", "field": "xm", "data_type": "string", "length": 20, "personal": True},
    {"name": "婚姻\u3000状况", "field": "hyzk", "data_type": "string", "length": 10},
    {"name": "出生日期", "field": "csrq", "data_type": "date"},
    {"name": "低保标识", "field": "dibao", "data_type": "boolean"},
]


def publish_as(db: Session, world: CatalogWorld, officer: Principal, **overrides: Any) -> int:
    version = catalog.create_entry(db, officer, version_in(**overrides))
    catalog.submit(db, officer, version)
    catalog.review(db, world.authority, version, schemas.ReviewIn(decision="approve"))
    db.commit()
    return version.entry_id


def load(
    db: Session, officer: Principal, entry_id: int, *records: dict[str, Any]
) -> service.Outcome:
    entry = service.target_entry(db, officer, entry_id)
    out = service.load_rows(
        db,
        officer,
        entry,
        [(i + 2, r) for i, r in enumerate(records)],
        source=BatchSource.CLI,
    )
    assert out.rejected_rows == 0, [e.reason for e in out.errors]
    db.commit()
    return out


@pytest.fixture
def manual_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches do not run the detection: the test counts what explicit runs find."""
    monkeypatch.setattr(service, "AUTO_DETECT", False)


@pytest.fixture
def pair(db: Session, world: CatalogWorld) -> tuple[int, int]:
    """The police (first published: the default source) and civil affairs entries."""
    police = publish_as(db, world, world.officer, data_items=POLICE_ITEMS)
    civil = publish_as(
        db,
        world,
        world.other_officer,
        name="低保对象信息",
        data_items=CIVIL_ITEMS,
        subject_key_item="sfzh",
    )
    return police, civil


def flag_set(flags: list[sources.FlagOut]) -> set[tuple[int, str, int]]:
    return {(f.entry_id, f.item_name, f.source_entry_id) for f in flags}


def username(db: Session, principal: Principal) -> str:
    user = db.get(User, principal.id)
    assert user is not None
    return user.username


# ---------------------------------------------------------------- sources and flags


def test_default_source_is_the_first_listing_and_flags_need_values(
    db: Session, world: CatalogWorld, pair: tuple[int, int]
) -> None:
    police, civil = pair
    items = {i.item_name: i for i in sources.list_items(db, world.authority)}
    # whitespace-normalised names: 婚姻　状况 is 婚姻状况; the key item is never an item here
    assert set(items) == {"姓名", "婚姻状况", "出生日期"}
    marital = items["婚姻状况"]
    assert marital.decision == "default"
    assert marital.source is not None
    assert marital.source.entry_id == police
    assert marital.multi_department
    assert marital.departments == 2
    assert {c.entry_id: c.field for c in marital.carriers} == {police: "marital", civil: "hyzk"}

    # civil affairs is told where to get them before aggregating anything
    advice = sources.advice_for_entry(db, service.target_entry(db, world.other_officer, civil))
    assert {a.item_name for a in advice} == {"姓名", "婚姻状况", "出生日期"}
    a = next(a for a in advice if a.item_name == "婚姻状况")
    assert (a.source_entry_id, a.url, a.source_department_name) == (
        police,
        f"/catalog/entries/{police}",
        world.police.name,
    )
    assert "共享申请" in a.message
    assert "《南阳市政务数据共享管理暂行办法》第二十四条" in a.message
    # the source itself gets no advice
    assert sources.advice_for_entry(db, service.target_entry(db, world.officer, police)) == []

    # nothing aggregated yet: no flag
    assert sources.list_flags(db, world.authority) == []
    load(db, world.other_officer, civil, {"sfzh": person_id(1), "xm": "张三"})
    # only the column that holds values is a repeat collection
    assert flag_set(sources.list_flags(db, world.authority)) == {(civil, "姓名", police)}
    load(db, world.other_officer, civil, {"sfzh": person_id(2), "hyzk": "已婚"})
    assert flag_set(sources.list_flags(db, world.authority)) == {
        (civil, "姓名", police),
        (civil, "婚姻状况", police),
    }
    # the source aggregating its own items is no flag
    load(db, world.officer, police, {"id_number": person_id(1), "name": "张三", "marital": "已婚"})
    assert len(sources.list_flags(db, world.authority)) == 2
    # a tombstoned row does not count
    registry = db.get(DataTable, civil)
    assert registry is not None
    data, _ = tables.tables_for(registry)
    db.execute(update(data).where(data.c.sfzh == person_id(2)).values(_deleted=True))
    db.commit()
    assert flag_set(sources.list_flags(db, world.authority)) == {(civil, "姓名", police)}


def test_returned_data_is_not_flagged(db: Session, world: CatalogWorld) -> None:
    police = publish_as(db, world, world.officer, data_items=POLICE_ITEMS)
    civil = publish_as(
        db,
        world,
        world.other_officer,
        name="回流婚姻登记信息",
        data_items=CIVIL_ITEMS,
        subject_key_item="sfzh",
        is_returned_data=True,
        returned_from="省民政厅婚姻登记系统",
    )
    load(db, world.other_officer, civil, {"sfzh": person_id(1), "xm": "张三", "hyzk": "已婚"})
    assert sources.list_flags(db, world.authority) == []
    assert sources.advice_for_entry(db, service.target_entry(db, world.other_officer, civil)) == []
    items = {i.item_name: i for i in sources.list_items(db, world.authority)}
    assert items["婚姻状况"].source is not None
    assert items["婚姻状况"].source.entry_id == police


def test_identifying_items_and_designation(
    db: Session, world: CatalogWorld, pair: tuple[int, int]
) -> None:
    police, civil = pair
    load(db, world.officer, police, {"id_number": person_id(1), "name": "张三", "marital": "已婚"})
    load(db, world.other_officer, civil, {"sfzh": person_id(1), "xm": "张三", "hyzk": "已婚"})
    assert flag_set(sources.list_flags(db, world.authority)) == {
        (civil, "姓名", police),
        (civil, "婚姻状况", police),
    }
    # a department may not designate
    with pytest.raises(PermissionDenied):
        sources.designate(
            db, world.other_officer, "person", "姓名", "identifying", None, "标识主体"
        )
    with pytest.raises(ValidationFailed):
        sources.designate(db, world.authority, "person", "姓名", "identifying", None, "")
    sources.designate(
        db, world.authority, "person", " 姓 名 ", "identifying", None, "用于识别主体的共用项"
    )
    db.commit()
    assert flag_set(sources.list_flags(db, world.authority)) == {(civil, "婚姻状况", police)}

    # civil affairs registers marriages: the authority designates its entry as the source
    with pytest.raises(ValidationFailed):  # the entry must carry the item
        sources.designate(db, world.authority, "person", "住址", "source", civil, "婚姻登记职责")
    sources.designate(
        db, world.authority, "person", "婚姻状况", "source", civil, "民政部门负责婚姻登记"
    )
    db.commit()
    assert flag_set(sources.list_flags(db, world.authority)) == {(police, "婚姻状况", civil)}
    items = {i.item_name: i for i in sources.list_items(db, world.authority)}
    assert items["婚姻状况"].decision == "designated"
    assert items["婚姻状况"].source is not None
    assert items["婚姻状况"].source.entry_id == civil
    assert items["姓名"].decision == "identifying"
    assert items["姓名"].source is None
    advice = sources.advice_for_entry(db, service.target_entry(db, world.officer, police))
    assert [a.item_name for a in advice] == ["婚姻状况"]
    # back to the default
    sources.designate(db, world.authority, "person", "婚姻状况", "default")
    db.commit()
    assert flag_set(sources.list_flags(db, world.authority)) == {(civil, "婚姻状况", police)}

    # an exemption by law removes the flag of that entry only
    x = sources.grant_exemption(
        db, world.authority, civil, "婚姻状况", "《社会救助暂行办法》第十一条规定须核对"
    )
    db.commit()
    assert sources.list_flags(db, world.authority) == []
    sources.revoke_exemption(db, world.authority, x.id)
    db.commit()
    assert len(sources.list_flags(db, world.authority)) == 1

    actions = [
        json.loads(e.details)
        for e in db.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "ingestion:source:designate")
            .order_by(AuditEntry.seq)
        )
    ]
    assert [d["action"] for d in actions] == ["identifying", "source", "default"]
    assert db.scalar(select(AuditEntry.seq).where(AuditEntry.action == "ingestion:source:exempt"))


# ---------------------------------------------------------------- conflicts


def conflicts(db: Session) -> dict[tuple[str, str], SourceConflict]:
    return {(c.item_name, c.key_value): c for c in db.scalars(select(SourceConflict))}


@pytest.mark.usefixtures("manual_detection")
def test_detection_finds_exactly_the_differing_subjects(
    db: Session, world: CatalogWorld, pair: tuple[int, int]
) -> None:
    police, civil = pair
    p = [person_id(i) for i in range(6)]
    load(
        db,
        world.officer,
        police,
        {"id_number": p[1], "name": "张三", "marital": "已婚", "birth": "1990-01-01"},
        {"id_number": p[2], "name": "李四", "marital": "未婚", "birth": "1991-02-03"},
        {"id_number": p[3], "name": "王五", "marital": "已婚"},
        {"id_number": p[4], "name": "赵六"},
    )
    load(
        db,
        world.other_officer,
        civil,
        # same values (birth written otherwise but the same date)
        {"sfzh": p[1], "xm": "张三", "hyzk": "已婚", "csrq": "1990-01-01"},
        # differs on marital status and on birth date
        {"sfzh": p[2], "xm": "李四", "hyzk": "已婚", "csrq": "1991-02-04"},
        # differs, but the row will be a tombstone
        {"sfzh": p[3], "xm": "王五", "hyzk": "离婚"},
        # the police hold no marital status for p4: nothing to compare
        {"sfzh": p[4], "xm": "赵六", "hyzk": "未婚"},
        # only civil affairs knows p5
        {"sfzh": p[5], "xm": "孙七", "hyzk": "未婚"},
    )
    registry = db.get(DataTable, civil)
    assert registry is not None
    data, _ = tables.tables_for(registry)
    db.execute(update(data).where(data.c.sfzh == p[3]).values(_deleted=True))
    db.commit()

    result = sources.detect(db, world.authority)
    db.commit()
    assert result.pairs_checked == 3  # 姓名, 婚姻状况, 出生日期
    assert (result.opened, result.closed, result.differing) == (2, 0, 2)
    found = conflicts(db)
    assert set(found) == {("婚姻状况", p[2]), ("出生日期", p[2])}
    c = found[("婚姻状况", p[2])]
    assert (c.source_entry_id, c.source_value, c.other_entry_id, c.other_value) == (
        police,
        "未婚",
        civil,
        "已婚",
    )
    assert c.status == ConflictStatus.OPEN
    assert found[("出生日期", p[2])].other_value == "1991-02-04"

    # idempotent
    again = sources.detect(db, world.authority)
    db.commit()
    assert (again.opened, again.reopened, again.updated, again.closed) == (0, 0, 0, 0)
    assert set(conflicts(db)) == set(found)

    # the authority resolves the birth-date conflict with the departments
    birth = found[("出生日期", p[2])]
    with pytest.raises(PermissionDenied):
        sources.resolve_conflict(db, world.other_officer, birth.id, "以公安数据为准")
    with pytest.raises(ValidationFailed):
        sources.resolve_conflict(db, world.authority, birth.id, "好")
    sources.resolve_conflict(
        db, world.authority, birth.id, "以县公安局数据为准，已通知县民政局更正"
    )
    db.commit()
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "ingestion:source:resolve"))
    assert entry is not None
    assert json.loads(entry.details)["note"].startswith("以县公安局数据为准")

    # civil affairs corrects the marital status: the conflict closes by itself
    load(db, world.other_officer, civil, {"sfzh": p[2], "xm": "李四", "hyzk": "未婚"})
    third = sources.detect(db, world.authority, {civil})
    db.commit()
    assert (third.opened, third.reopened, third.closed) == (0, 0, 1)
    fixed = conflicts(db)[("婚姻状况", p[2])]
    assert fixed.status == ConflictStatus.RESOLVED
    assert (fixed.resolved_by, fixed.resolution) == (
        sources.PLATFORM_RESOLVER,
        sources.NOTE_CONSISTENT,
    )
    # the resolved birth-date conflict stays resolved while its values are the same ...
    assert conflicts(db)[("出生日期", p[2])].status == ConflictStatus.RESOLVED
    # ... and reopens when they change again
    load(db, world.other_officer, civil, {"sfzh": p[2], "xm": "李四", "csrq": "1991-02-05"})
    fourth = sources.detect(db, world.authority, {civil})
    db.commit()
    assert fourth.reopened == 1
    reopened = conflicts(db)[("出生日期", p[2])]
    assert (reopened.status, reopened.other_value, reopened.resolution) == (
        ConflictStatus.OPEN,
        "1991-02-05",
        "",
    )
    assert db.scalar(select(AuditEntry.seq).where(AuditEntry.action == "ingestion:source:detect"))


def test_detection_for_an_entry_without_shared_items_changes_nothing(
    db: Session, world: CatalogWorld, pair: tuple[int, int]
) -> None:
    police, _civil = pair
    lone = publish_as(
        db,
        world,
        world.officer,
        name="出入境证件信息",
        data_items=[KEY, {"name": "护照号码", "field": "passport", "data_type": "string"}],
    )
    load(db, world.officer, lone, {"id_number": person_id(1), "passport": "E12345678"})
    before = db.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()))
    result = sources.detect(db, world.officer, {lone})  # the department's own batch
    db.commit()
    assert result.pairs_checked == 0
    assert result.changed == 0
    assert db.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc())) == before
    # a department may not run a detection over everything, or over others' entries
    with pytest.raises(PermissionDenied):
        sources.detect(db, world.officer)
    with pytest.raises(PermissionDenied):
        sources.detect(db, world.other_officer, {police})


def test_designation_moves_conflicts_and_closes_the_old_orientation(
    db: Session, world: CatalogWorld, pair: tuple[int, int]
) -> None:
    police, civil = pair
    load(db, world.officer, police, {"id_number": person_id(1), "marital": "未婚"})
    load(db, world.other_officer, civil, {"sfzh": person_id(1), "hyzk": "已婚"})
    sources.detect(db, world.authority)
    sources.designate(db, world.authority, "person", "婚姻状况", "source", civil, "婚姻登记职责")
    result = sources.detect(db, world.authority)
    db.commit()
    assert (result.opened, result.closed) == (1, 1)
    rows = list(db.scalars(select(SourceConflict).order_by(SourceConflict.id)))
    assert [(r.source_entry_id, r.status) for r in rows] == [
        (police, ConflictStatus.RESOLVED),
        (civil, ConflictStatus.OPEN),
    ]
    assert rows[0].resolution == sources.NOTE_NOT_FLAGGED


def test_visibility_and_summary(
    db: Session, world: CatalogWorld, factory: Factory, pair: tuple[int, int]
) -> None:
    police, civil = pair
    load(db, world.officer, police, {"id_number": person_id(1), "marital": "未婚"})
    load(db, world.other_officer, civil, {"sfzh": person_id(1), "hyzk": "已婚"})
    sources.detect(db, world.authority)
    db.commit()
    outsider = factory.principal(
        factory.user(Role.DEPT_OFFICER, factory.department(world.county, "目录县教育局"))
    )
    assert sources.list_conflicts(db, world.other_officer).total == 1
    assert sources.list_conflicts(db, world.officer).total == 1
    assert sources.list_conflicts(db, outsider).total == 0
    assert sources.list_flags(db, outsider) == []
    assert len(sources.list_flags(db, world.other_officer)) == 1
    assert sources.list_conflicts(db, world.city_authority).total == 1

    summary = sources.dashboard_summary(db, world.authority)
    assert (summary.flag_count, summary.open_conflicts) == (1, 1)
    assert summary.top_conflict_items == [("婚姻状况", 1)]
    assert summary.top_flags[0].entry_id == civil
    assert sources.dashboard_summary(db, outsider).flag_count == 0


# ---------------------------------------------------------------- pages, API, CSV


@pytest.mark.usefixtures("manual_detection")
def test_pages_api_and_csv(
    client: TestClient, db: Session, world: CatalogWorld, pair: tuple[int, int]
) -> None:
    police, civil = pair
    load(db, world.officer, police, {"id_number": person_id(1), "marital": "未婚"})
    load(db, world.other_officer, civil, {"sfzh": person_id(1), "hyzk": "=1+1"})

    # a department sees its flag with the advice, and cannot act
    login(client, username(db, world.other_officer))
    page = client.get("/ingestion/sources")
    assert page.status_code == 200, page.text
    assert "请通过共享获取" in page.text
    assert "婚姻状况" in page.text
    assert 'data-testid="own-flags"' in page.text
    assert 'action="/ingestion/sources/designate"' not in page.text
    assert client.post("/api/v1/ingestion/sources/detect", json={}).status_code == 403
    refused = client.post(
        "/api/v1/ingestion/sources/conflicts/1/resolve", json={"note": "以我为准"}
    )
    assert refused.status_code == 403
    advice = client.get(f"/api/v1/ingestion/sources/advice/{civil}")
    assert advice.status_code == 200
    assert advice.json()[0]["source_entry_id"] == police
    client.post("/api/v1/auth/logout")

    # the authority runs the detection and resolves through the page
    client.cookies.clear()
    token = login(client, username(db, world.authority))
    r = client.post("/api/v1/ingestion/sources/detect", json={})
    assert r.status_code == 200, r.text
    assert r.json()["opened"] == 1
    conflicts_page = client.get("/ingestion/sources/conflicts")
    assert conflicts_page.status_code == 200
    assert person_id(1) in conflicts_page.text
    assert "=1+1" in conflicts_page.text
    listed = client.get("/api/v1/ingestion/sources/conflicts", params={"status": "open"}).json()
    assert listed["total"] == 1
    cid = listed["rows"][0]["id"]

    csv_r = client.get("/ingestion/sources/conflicts.csv?status=open")
    assert csv_r.status_code == 200
    assert csv_r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(csv_r.content.decode("utf-8-sig"))))
    assert rows[0] == sources.CSV_HEADER
    assert rows[1][1] == "婚姻状况"
    assert rows[1][8] == "'=1+1"

    bad = client.post(
        f"/ingestion/sources/conflicts/{cid}/resolve", data={"csrf_token": token, "note": "x"}
    )
    assert bad.status_code == 422
    ok = client.post(
        f"/ingestion/sources/conflicts/{cid}/resolve",
        data={"csrf_token": token, "note": "以县公安局数据为准，已通知县民政局更正"},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    done = client.get("/ingestion/sources/conflicts?status=resolved")
    assert "已通知县民政局更正" in done.text

    # designation through the page and the API
    page = client.get("/ingestion/sources")
    assert 'data-testid="designate-person-婚姻状况"' in page.text
    r = client.post(
        "/ingestion/sources/designate",
        data={
            "csrf_token": token,
            "subject_kind": "person",
            "item_name": "婚姻状况",
            "action": "source",
            "source_entry_id": str(civil),
            "basis": "民政部门负责婚姻登记",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    r = client.post(
        "/api/v1/ingestion/sources/designations",
        json={
            "subject_kind": "person",
            "item_name": "姓名",
            "action": "identifying",
            "basis": "主体标识共用项",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["role"] == "identifying"
    flags = client.get("/api/v1/ingestion/sources/flags").json()
    assert [(f["entry_id"], f["item_name"]) for f in flags] == [(police, "婚姻状况")]
    items = client.get("/api/v1/ingestion/sources/items").json()
    assert {i["item_name"]: i["decision"] for i in items}["婚姻状况"] == "designated"
    summary = client.get("/api/v1/ingestion/sources/summary").json()
    assert summary["flag_count"] == 1
    assert date.fromisoformat(items[0]["carriers"][0]["first_listed"])


@pytest.mark.usefixtures("manual_detection")
def test_stored_conflicts_are_capped_per_pair(
    db: Session, world: CatalogWorld, pair: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    police, civil = pair
    monkeypatch.setattr(sources, "CONFLICT_CAP", 2)
    p = [person_id(i) for i in range(1, 4)]
    load(db, world.officer, police, *({"id_number": k, "marital": "未婚"} for k in p))
    load(db, world.other_officer, civil, *({"sfzh": k, "hyzk": "已婚"} for k in p))
    result = sources.detect(db, world.authority)
    db.commit()
    assert (result.opened, result.differing) == (2, 2)
    assert len(result.pairs_truncated) == 1
    assert "婚姻状况" in result.pairs_truncated[0]
    stored = sorted(c.key_value for c in db.scalars(select(SourceConflict)))
    assert stored == sorted(p)[:2]
    # with more than the cap, what is not seen is not taken as fixed
    load(db, world.other_officer, civil, {"sfzh": sorted(p)[0], "hyzk": "未婚"})
    again = sources.detect(db, world.authority)
    db.commit()
    assert (again.opened, again.closed) == (1, 1)
    assert {c.key_value: c.status for c in db.scalars(select(SourceConflict))} == {
        sorted(p)[0]: ConflictStatus.RESOLVED,
        sorted(p)[1]: ConflictStatus.OPEN,
        sorted(p)[2]: ConflictStatus.OPEN,
    }


def test_a_committed_batch_checks_its_entry_at_once(
    db: Session, world: CatalogWorld, pair: tuple[int, int]
) -> None:
    """No button needed: the loader compares what a batch wrote with the source's copy."""
    police, civil = pair
    load(db, world.officer, police, {"id_number": person_id(1), "name": "张三", "marital": "已婚"})
    load(db, world.other_officer, civil, {"sfzh": person_id(1), "xm": "张叁", "hyzk": "已婚"})
    open_now = db.scalars(
        select(SourceConflict).where(SourceConflict.status == ConflictStatus.OPEN.value)
    ).all()
    assert [(c.item_name, c.source_value, c.other_value) for c in open_now] == [
        ("姓名", "张三", "张叁")
    ]
    # the civil affairs bureau corrects the name: the next batch closes the conflict
    load(db, world.other_officer, civil, {"sfzh": person_id(1), "xm": "张三", "hyzk": "已婚"})
    db.refresh(open_now[0])
    assert open_now[0].status == ConflictStatus.RESOLVED.value
    assert open_now[0].resolution == sources.NOTE_CONSISTENT
