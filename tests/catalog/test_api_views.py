"""The catalog's JSON API and pages: compile, submit, review, versions, diffs, withdraw."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.catalog.models import CatalogEntry, VersionState
from govshare.orgs.models import User
from tests.catalog.conftest import CatalogWorld, person_entry, publish
from tests.conftest import login


def username(db: Session, principal_id: int | None) -> str:
    user = db.get(User, principal_id)
    assert user is not None
    return user.username


def test_api_compile_submit_review_publish(client: TestClient, db: Session, world: CatalogWorld):
    login(client, username(db, world.officer.id))
    r = client.post("/api/v1/catalog/entries", json=person_entry())
    assert r.status_code == 201, r.text
    version = r.json()
    assert version["state"] == "draft"
    entry_id = version["entry_id"]
    r = client.post("/api/v1/catalog/entries", json=person_entry(share_scope=""))
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "share_scope"
    r = client.post(f"/api/v1/catalog/versions/{version['id']}/submit")
    assert r.status_code == 200, r.text
    assert r.json()["review_due"] is not None
    # the officer cannot review
    r = client.post(
        f"/api/v1/catalog/versions/{version['id']}/review", json={"decision": "approve"}
    )
    assert r.status_code == 403
    client.cookies.clear()
    login(client, username(db, world.authority.id))
    queue = client.get("/api/v1/catalog/review-queue").json()
    assert [v["id"] for v in queue] == [version["id"]]
    r = client.post(
        f"/api/v1/catalog/versions/{version['id']}/review",
        json={"decision": "approve", "comment": "同意发布"},
    )
    assert r.status_code == 200, r.text
    detail = client.get(f"/api/v1/catalog/entries/{entry_id}").json()
    assert detail["entry"]["status"] == "published"
    assert detail["current"]["id"] == version["id"]
    assert detail["share_type_name"] == "条件共享"  # neixiang-2017's name for conditional
    code = detail["entry"]["code"]
    assert client.get("/api/v1/catalog/entries", params={"code": code}).json()[0]["id"] == (
        entry_id
    )


def test_api_versions_diff_and_withdraw(client: TestClient, db: Session, world: CatalogWorld):
    v1 = publish(db, world)
    login(client, username(db, world.officer.id))
    r = client.post(
        f"/api/v1/catalog/entries/{v1.entry_id}/versions", json={"change_note": "职能调整"}
    )
    assert r.status_code == 201, r.text
    v2 = r.json()
    r = client.put(
        f"/api/v1/catalog/versions/{v2['id']}",
        json=person_entry(name="户籍人口基础信息", update_frequency="realtime"),
    )
    assert r.status_code == 200, r.text
    diff = client.get(f"/api/v1/catalog/versions/{v1.id}/diff/{v2['id']}").json()
    labels = {c["label"]: (c["before"], c["after"]) for c in diff["changes"]}
    assert labels["资源名称"] == ("户籍人口基本信息", "户籍人口基础信息")
    assert labels["更新周期"] == ("daily", "realtime")
    versions = client.get(f"/api/v1/catalog/entries/{v1.entry_id}/versions").json()
    assert [v["number"] for v in versions] == [2, 1]
    # another department sees the published version only
    client.cookies.clear()
    login(client, username(db, world.other_officer.id))
    versions = client.get(f"/api/v1/catalog/entries/{v1.entry_id}/versions").json()
    assert [v["number"] for v in versions] == [1]
    assert client.get(f"/api/v1/catalog/versions/{v2['id']}").status_code == 404
    r = client.post(
        f"/api/v1/catalog/entries/{v1.entry_id}/withdraw", json={"reason": "不是我的资源"}
    )
    assert r.status_code == 403
    client.cookies.clear()
    login(client, username(db, world.head.id))
    r = client.post(
        f"/api/v1/catalog/entries/{v1.entry_id}/withdraw", json={"reason": "职能划转至市局"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "withdrawn"


def page_csrf(client: TestClient, path: str) -> tuple[str, str]:
    page = client.get(path)
    assert page.status_code == 200, page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    return page.text, token.group(1)


def test_pages_compile_with_data_items_then_review(
    client: TestClient, db: Session, world: CatalogWorld
) -> None:
    login(client, username(db, world.officer.id))
    html, csrf = page_csrf(client, "/catalog/entries/new")
    assert "条件共享" in html  # names from the county's rulebook
    form = {
        "csrf_token": csrf,
        "name": "居住证办理信息",
        "catalog_kind": "department",
        "item_code": "01",
        "category_code": "002",
        "summary": "居住证申领、签注和换领的办理信息。",
        "resource_format": "database",
        "update_frequency": "daily",
        "data_grade": "general",
        "subject_key_kind": "person",
        "subject_key_item": "id_number",
        "share_type": "conditional",
        "share_scope": "",
        "share_purpose": "居住证核验",
        "share_methods": ["verification", "query"],
        "open_type": "not_open",
        "open_basis": "《中华人民共和国个人信息保护法》第三十四条",
        "items-0-name": "公民身份号码",
        "items-0-field": "id_number",
        "items-0-data_type": "id_number",
        "items-0-required": "1",
        "items-0-personal": "1",
        "items-1-name": "居住地址",
        "items-1-field": "address",
        "items-1-data_type": "string",
        "items-1-length": "200",
        "items-2-name": "",
        "items-2-field": "",
    }
    r = client.post("/catalog/entries", data=form)
    assert r.status_code == 422
    assert "须列明共享范围" in r.text
    assert "居住证办理信息" in r.text  # the form keeps what was typed
    assert 'value="address"' in r.text  # and the data items
    r = client.post(
        "/catalog/entries", data=form | {"share_scope": "本县各政务部门"}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    entry = db.scalar(select(CatalogEntry).where(CatalogEntry.code.startswith("301002/")))
    assert entry is not None
    page, csrf = page_csrf(client, f"/catalog/entries/{entry.id}")
    assert "提交审核" in page
    pending = entry.current_version or None
    assert pending is None
    version_id = int(re.search(r"/catalog/versions/(\d+)/submit", page).group(1))  # type: ignore[union-attr]
    r = client.post(
        f"/catalog/versions/{version_id}/submit", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert r.status_code == 303
    client.cookies.clear()
    login(client, username(db, world.authority.id))
    html, csrf = page_csrf(client, "/catalog/review")
    assert "居住证办理信息" in html
    assert "剩余" in html or "今日到期" in html
    r = client.post(
        f"/catalog/versions/{version_id}/review",
        data={"csrf_token": csrf, "decision": "return", "comment": ""},
    )
    assert r.status_code == 422
    assert "退回时须写明理由" in r.text
    r = client.post(
        f"/catalog/versions/{version_id}/review",
        data={"csrf_token": csrf, "decision": "approve", "comment": "同意"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    db.refresh(entry)
    assert entry.status == "published"
    assert entry.current_version is not None
    assert entry.current_version.state == VersionState.APPROVED


def test_version_page_shows_the_diff(client: TestClient, db: Session, world: CatalogWorld):
    v1 = publish(db, world)
    login(client, username(db, world.officer.id))
    r = client.get(f"/api/v1/catalog/entries/{v1.entry_id}")
    assert r.status_code == 200
    v2 = client.post(
        f"/api/v1/catalog/entries/{v1.entry_id}/versions", json={"change_note": "新增民族"}
    ).json()
    items = [*v1.data_items, {"name": "民族", "field": "ethnicity", "data_type": "string"}]
    client.put(f"/api/v1/catalog/versions/{v2['id']}", json=person_entry(data_items=items))
    page = client.get(f"/catalog/versions/{v1.id}?to={v2['id']}")
    assert page.status_code == 200
    assert "信息项“民族”（新增）" in page.text
    work = client.get("/catalog/work")
    assert "户籍人口基本信息" in work.text
    assert "草稿" in work.text


def test_city_sees_and_acknowledges_county_reports(
    client: TestClient, db: Session, world: CatalogWorld
) -> None:
    v = publish(db, world)
    login(client, username(db, world.city_authority.id))
    html, csrf = page_csrf(client, "/catalog/review")
    assert "下级目录报备" in html
    assert "户籍人口基本信息" in html
    report_id = int(re.search(r"/catalog/reports/(\d+)/acknowledge", html).group(1))  # type: ignore[union-attr]
    r = client.post(
        f"/catalog/reports/{report_id}/acknowledge",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303
    from govshare.catalog.models import CatalogReport

    report = db.get(CatalogReport, report_id)
    assert report is not None
    assert report.version_id == v.id
    assert report.acknowledged_at is not None
    # the county's own authority has nothing reported to it
    client.cookies.clear()
    login(client, username(db, world.authority.id))
    assert "下级目录报备" not in client.get("/catalog/review").text
