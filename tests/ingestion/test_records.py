"""Aggregated records: browsing, a record as of a date, deletion by approved request."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from govshare.audit.models import AuditEntry
from govshare.db import LOCAL_TZ
from govshare.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from govshare.ingestion import records, tables
from govshare.ingestion.models import DataTable, DeletionStatus
from tests.catalog.conftest import CatalogWorld, publish
from tests.conftest import login
from tests.ingestion.test_api_views import username
from tests.ingestion.test_service import ITEMS, load, person_id, rows


def _entry(db: Session, world: CatalogWorld) -> Any:
    entry_id = publish(db, world, data_items=ITEMS).entry_id
    load(
        db,
        world,
        entry_id,
        rows(
            {"id_number": person_id(1), "name": "张三", "address": "城关镇一号"},
            {"id_number": person_id(2), "name": "李四", "address": "城关镇二号"},
            {"id_number": person_id(3), "name": "王五", "address": ""},
        ),
    )
    db.commit()
    return records.readable_entry(db, world.officer, entry_id)


def _history(db: Session, entry_id: int) -> Any:
    registry = db.get(DataTable, entry_id)
    assert registry is not None
    return tables.tables_for(registry)


def _at(day: str) -> datetime:
    return datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=LOCAL_TZ).replace(
        hour=10
    )


def test_browse_finds_records_by_key_and_hides_tombstones(db: Session, world: CatalogWorld) -> None:
    entry = _entry(db, world)
    page = records.browse(db, world.officer, entry)
    assert page.total == 3
    assert {r["id_number"] for r in page.rows} == {person_id(n) for n in (1, 2, 3)}
    assert [name for _, name, _ in page.columns] == ["公民身份号码", "姓名", "住址"]
    one = records.browse(db, world.officer, entry, key=person_id(2))
    assert [r["name"] for r in one.rows] == ["李四"]
    # a prefix of 6 or more characters; LIKE wildcards in the key are literal
    assert records.browse(db, world.officer, entry, key=person_id(1)[:14]).total == 1
    assert records.browse(db, world.officer, entry, key="410102%").total == 0
    data, _ = _history(db, entry.id)
    db.execute(update(data).where(data.c.id_number == person_id(3)).values(_deleted=True))
    assert records.browse(db, world.officer, entry).total == 2
    assert records.browse(db, world.officer, entry, include_deleted=True).total == 3
    # every browse is an audited access
    db.commit()
    actions = db.scalars(
        select(AuditEntry.action).where(AuditEntry.action == "ingestion:record:browse")
    ).all()
    assert len(actions) == 6


def test_a_record_as_of_a_date(db: Session, world: CatalogWorld) -> None:
    entry = _entry(db, world)
    key = person_id(1)
    load(db, world, entry.id, rows({"id_number": key, "name": "张三", "address": "新区五号"}))
    load(db, world, entry.id, rows({"id_number": key, "name": "张三丰", "address": "新区五号"}))
    db.commit()
    _, history = _history(db, entry.id)
    ids = db.scalars(
        select(history.c._hist_id).where(history.c._key == key).order_by(history.c._hist_id)
    ).all()
    assert len(ids) == 3  # insert, address, name
    for hist_id, day in zip(ids, ["2026-03-02", "2026-05-11", "2026-08-03"], strict=True):
        db.execute(
            update(history).where(history.c._hist_id == hist_id).values(_changed_at=_at(day))
        )
    db.commit()

    def values(as_of: str | None) -> dict[str, Any] | None:
        day = date.fromisoformat(as_of) if as_of else None
        return records.record(db, world.officer, entry, key, as_of=day).values

    assert values(None) == {"id_number": key, "name": "张三丰", "address": "新区五号"}
    assert values("2026-03-01") is None  # not aggregated yet
    assert values("2026-03-02") == {"id_number": key, "name": "张三", "address": "城关镇一号"}
    assert values("2026-05-10") == {"id_number": key, "name": "张三", "address": "城关镇一号"}
    assert values("2026-05-11") == {"id_number": key, "name": "张三", "address": "新区五号"}
    assert values("2026-08-03") == {"id_number": key, "name": "张三丰", "address": "新区五号"}
    view = records.record(db, world.officer, entry, key)
    assert [c.operation for c in view.changes] == ["update", "update", "insert"]
    assert view.changes[0].before == {"name": "张三"}
    with pytest.raises(NotFound):
        records.record(db, world.officer, entry, person_id(99))


def test_deletion_needs_the_authoritys_approval_and_leaves_a_tombstone(
    db: Session, world: CatalogWorld
) -> None:
    entry = _entry(db, world)
    key = person_id(2)
    req = records.request_deletion(db, world.officer, entry, [key], "户籍注销，重复登记")
    db.commit()
    assert req.status == DeletionStatus.PENDING
    # pending: the record is untouched, and no second request may name it
    assert records.browse(db, world.officer, entry, key=key).total == 1
    with pytest.raises(Conflict):
        records.request_deletion(db, world.officer, entry, [key], "再次申请删除")
    # a department cannot approve; another department cannot even see the request
    with pytest.raises(PermissionDenied):
        records.review_deletion(db, world.officer, req, "approve", "")
    with pytest.raises(NotFound):
        records.get_request(db, world.other_officer, req.id)
    records.review_deletion(db, world.authority, req, "approve", "同意")
    db.commit()
    assert (req.status, req.rows_deleted, req.reviewed_by) == (
        DeletionStatus.APPROVED,
        1,
        world.authority.name,
    )
    data, history = _history(db, entry.id)
    row = db.execute(select(data).where(data.c.id_number == key)).one()._mapping
    assert row["_deleted"] is True
    assert row["name"] == "李四"
    hist = (
        db.execute(select(history).where(history.c._key == key, history.c._operation == "delete"))
        .one()
        ._mapping
    )
    assert hist["_before"]["name"] == "李四"
    assert hist["_reason"].startswith(f"删除申请 {req.id}：户籍注销")
    view = records.record(db, world.officer, entry, key)
    assert view.deleted
    assert view.values is not None
    assert view.values["name"] == "李四"
    assert not records.record(db, world.officer, entry, key, as_of=date(2026, 1, 1)).deleted
    assert records.browse(db, world.officer, entry).total == 2
    with pytest.raises(Conflict):
        records.review_deletion(db, world.authority, req, "reject", "晚了")
    db.commit()
    audit = db.scalars(
        select(AuditEntry.action).where(AuditEntry.action.like("ingestion:deletion:%"))
    ).all()
    assert sorted(audit) == ["ingestion:deletion:approve", "ingestion:deletion:request"]
    # the department's system sends the person again later: the record lives again, and
    # its history shows the deletion and the return
    load(db, world, entry.id, rows({"id_number": key, "name": "李四", "address": "城关镇二号"}))
    db.commit()
    back = records.record(db, world.officer, entry, key)
    assert not back.deleted
    assert [c.operation for c in back.changes] == ["update", "delete", "insert"]


def test_deletion_requests_are_checked(db: Session, world: CatalogWorld) -> None:
    entry = _entry(db, world)
    with pytest.raises(ValidationFailed, match="没有对应的有效记录"):
        records.request_deletion(db, world.officer, entry, [person_id(50)], "数据有误需删除")
    with pytest.raises(ValidationFailed, match="删除理由"):
        records.request_deletion(db, world.officer, entry, [person_id(1)], "删")
    with pytest.raises(PermissionDenied):
        records.request_deletion(db, world.other_officer, entry, [person_id(1)], "不是本部门的")
    with pytest.raises(ValidationFailed):
        records.parse_keys(" \n ")
    with pytest.raises(ValidationFailed, match="最多"):
        records.parse_keys([str(n) for n in range(records.MAX_KEYS + 1)])
    assert records.parse_keys(f"{person_id(1)}\n{person_id(2)}，{person_id(1)}") == [
        person_id(1),
        person_id(2),
    ]
    req = records.request_deletion(db, world.officer, entry, [person_id(1)], "重复登记的记录")
    with pytest.raises(ValidationFailed, match="驳回时请填写"):
        records.review_deletion(db, world.authority, req, "reject", "")
    records.review_deletion(db, world.authority, req, "reject", "该记录仍有效，不予删除")
    assert req.status == DeletionStatus.REJECTED
    assert records.browse(db, world.officer, entry, key=person_id(1)).total == 1
    other = records.request_deletion(db, world.officer, entry, [person_id(3)], "住址为空的记录")
    records.withdraw_deletion(db, world.officer, other)
    assert other.status == DeletionStatus.WITHDRAWN
    # the city authority is above the county: it may review the county's requests
    third = records.request_deletion(db, world.officer, entry, [person_id(3)], "住址为空的记录")
    assert records.may_review(db, world.city_authority, third)


def test_records_and_deletions_through_pages_and_api(
    client: TestClient, db: Session, world: CatalogWorld
) -> None:
    entry = _entry(db, world)
    key = person_id(1)
    login(client, username(db, world.officer.id))
    r = client.get("/ingestion/records")
    assert r.status_code == 200
    assert entry.code in r.text
    r = client.get(f"/ingestion/records/{entry.id}", params={"key": key})
    assert r.status_code == 200
    assert "张三" in r.text
    assert "李四" not in r.text
    r = client.get(f"/ingestion/records/{entry.id}/record", params={"key": key})
    assert r.status_code == 200
    assert "城关镇一号" in r.text
    assert "变更记录" in r.text
    r = client.get(
        f"/ingestion/records/{entry.id}/record", params={"key": key, "as_of": "2020-01-01"}
    )
    assert "尚未汇聚" in r.text
    r = client.get(f"/api/v1/ingestion/entries/{entry.id}/record", params={"key": key})
    assert r.status_code == 200
    assert r.json()["values"]["name"] == "张三"
    r = client.get(
        f"/api/v1/ingestion/entries/{entry.id}/record", params={"key": key, "as_of": "2999-01-01"}
    )
    assert r.status_code == 422
    # the page form files a request; errors come back on the page in Chinese
    r = client.post(
        "/ingestion/deletions",
        data={"entry_id": str(entry.id), "keys": "nope", "reason": "重复登记"},
    )
    assert r.status_code == 422
    assert "没有对应的有效记录" in r.text
    r = client.post(
        "/ingestion/deletions",
        data={"entry_id": str(entry.id), "keys": key, "reason": "重复登记的记录"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    request_url = r.headers["location"]
    assert client.get(request_url).status_code == 200
    # the officer may not review it
    assert client.post(f"{request_url}/review", data={"decision": "approve"}).status_code == 403
    # the authority approves through the API
    client.cookies.clear()
    login(client, username(db, world.authority.id))
    pending = client.get("/api/v1/ingestion/deletions", params={"status": "pending"}).json()
    assert [p["keys"] for p in pending] == [[key]]
    r = client.post(
        f"/api/v1/ingestion/deletions/{pending[0]['id']}/review",
        json={"decision": "approve", "comment": "同意"},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["rows_deleted"]) == ("approved", 1)
    rec = client.get(f"/api/v1/ingestion/entries/{entry.id}/record", params={"key": key}).json()
    assert rec["deleted"] is True
    assert rec["changes"][0]["operation"] == "delete"
    assert "已批准" in client.get(request_url).text
    # another department sees neither the records nor the request
    client.cookies.clear()
    login(client, username(db, world.other_officer.id))
    assert client.get(f"/ingestion/records/{entry.id}").status_code == 404
    assert client.get(request_url).status_code == 404
