"""Agreement sharing (seed 004 art. 16(3)) and grant supervision (seed 003 art. 41, seed
000 art. 30(7)) through the JSON API and the pages: drafted by the consumer, signed by
both sides, filed by the authority into a grant; the authority suspends, resumes and
terminates, a provider may not."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session

from govshare.db import china_today
from govshare.sharing import agreement_routes
from tests.catalog.conftest import CatalogWorld, publish
from tests.sharing.test_applications import use_rulebook
from tests.sharing.test_dispute_pages import wire
from tests.sharing.test_pages_api import as_user, forms_on


@pytest.fixture
def web(app: FastAPI) -> FastAPI:
    return wire(app, agreement_routes, "/sharing/agreements")


def draft_body(entry_id: int, **overrides: Any) -> dict[str, Any]:
    today = china_today()
    data: dict[str, Any] = {
        "entry_id": entry_id,
        "items": ["id_number", "name"],
        "methods": ["verification"],
        "purpose": "长期核验低保对象户籍信息",
        "scenario": "最低生活保障动态管理",
        "text": "双方约定由公安局通过平台长期提供户籍核验服务，民政局仅用于低保审核。",
        "starts_on": today.isoformat(),
        "ends_on": (today + timedelta(days=700)).isoformat(),
    }
    return data | overrides


def test_the_api_drafts_signs_files_and_the_authority_supervises(
    web: FastAPI, db: Session, world: CatalogWorld
) -> None:
    entry_id = publish(db, world).entry_id
    use_rulebook(db, world, "neixiang-2017")  # seed 004 has agreement sharing
    consumer = as_user(web, db, world.other_officer)
    head = as_user(web, db, world.head)
    reviewer = as_user(web, db, world.reviewer)
    authority = as_user(web, db, world.authority)

    assert reviewer.post("/api/v1/sharing/agreements", json=draft_body(entry_id)).status_code == 403
    r = consumer.post("/api/v1/sharing/agreements", json=draft_body(entry_id, text="太短"))
    assert r.status_code == 422
    r = consumer.post("/api/v1/sharing/agreements", json=draft_body(entry_id))
    assert r.status_code == 201, r.text
    a = r.json()
    agreement_id = a["id"]
    assert (a["status"], a["grant"]) == ("draft", None)
    assert a["number"].startswith("XY-")
    # filing needs both signatures and the authority
    r = authority.post(f"/api/v1/sharing/agreements/{agreement_id}/file", json={})
    assert r.status_code == 422
    assert "双方部门签署" in r.json()["error"]["message"]
    assert consumer.post(f"/api/v1/sharing/agreements/{agreement_id}/sign").status_code == 200
    assert consumer.post(f"/api/v1/sharing/agreements/{agreement_id}/sign").status_code == 409
    r = head.post(f"/api/v1/sharing/agreements/{agreement_id}/sign")
    assert r.status_code == 200
    assert r.json()["provider_signed_by"] == world.head.name
    assert head.post(f"/api/v1/sharing/agreements/{agreement_id}/file", json={}).status_code == 403
    r = authority.post(f"/api/v1/sharing/agreements/{agreement_id}/file", json={"note": "已备案"})
    assert r.status_code == 200, r.text
    filed = r.json()
    assert filed["status"] == "active"
    grant = filed["grant"]
    assert grant["items"] == ["id_number", "name"]
    grant_id = grant["id"]
    assert [x["id"] for x in consumer.get("/api/v1/sharing/agreements").json()] == [agreement_id]

    # grant supervision: a reason is required; the provider may not end it
    r = head.post(f"/api/v1/sharing/grants/{grant_id}/terminate", json={"reason": "不想提供了"})
    assert r.status_code == 403
    assert "第三十条第（七）项" in r.json()["error"]["message"]
    r = head.post(f"/api/v1/sharing/grants/{grant_id}/suspend", json={"reason": "不想提供了"})
    assert r.status_code == 403
    assert (
        consumer.post(
            f"/api/v1/sharing/grants/{grant_id}/suspend", json={"reason": "自己暂停"}
        ).status_code
        == 403
    )
    r = authority.post(f"/api/v1/sharing/grants/{grant_id}/suspend", json={"reason": ""})
    assert r.status_code == 422
    r = authority.post(
        f"/api/v1/sharing/grants/{grant_id}/suspend", json={"reason": "发现超范围使用，暂停核查"}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["status_reason"], r.json()["agreement_id"]) == (
        "suspended",
        "发现超范围使用，暂停核查",
        agreement_id,
    )
    page = consumer.get("/sharing/grants").text
    assert "已暂停" in page
    assert "发现超范围使用，暂停核查" in page
    assert f'href="/sharing/agreements/{agreement_id}"' in page
    r = authority.post(f"/api/v1/sharing/grants/{grant_id}/resume", json={"reason": "已完成整改"})
    assert (r.status_code, r.json()["status"]) == (200, "active")
    # terminating the agreement terminates its grant
    r = head.post(
        f"/api/v1/sharing/agreements/{agreement_id}/terminate", json={"reason": "不想提供了"}
    )
    assert r.status_code == 403
    assert "第三十条第（七）项" in r.json()["error"]["message"]
    r = authority.post(
        f"/api/v1/sharing/agreements/{agreement_id}/terminate",
        json={"reason": "违法违规使用，终止协议"},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["grant"]["status"]) == ("terminated", "terminated")
    assert consumer.get(f"/api/v1/sharing/grants/{grant_id}").json()["status"] == "terminated"


def test_pages_draft_sign_file_and_supervise(
    web: FastAPI, db: Session, world: CatalogWorld
) -> None:
    entry_id = publish(db, world).entry_id
    use_rulebook(db, world, "neixiang-2017")
    consumer = as_user(web, db, world.other_officer)
    head = as_user(web, db, world.head)
    authority = as_user(web, db, world.authority)

    chooser = consumer.get("/sharing/agreements/new").text
    assert 'data-testid="choose-entry-form"' in chooser
    assert f'value="{entry_id}"' in chooser
    form = consumer.get(f"/sharing/agreements/new?entry_id={entry_id}")
    assert 'data-testid="agreement-form"' in form.text
    values = draft_body(entry_id)
    r = consumer.post("/sharing/agreements/new", data=values | {"purpose": "无"})
    assert r.status_code == 422
    assert "请填写使用用途（至少 4 个字）" in r.text
    assert "最低生活保障动态管理" in r.text  # what was typed is kept
    r = consumer.post("/sharing/agreements/new", data=values, follow_redirects=False)
    assert r.status_code == 303, r.text
    agreement_id = int(r.headers["location"].rsplit("/", 1)[1])
    assert "待签署备案" in consumer.get("/sharing/agreements").text

    assert forms_on(consumer.get(f"/sharing/agreements/{agreement_id}").text) == {"sign-form"}
    assert forms_on(head.get(f"/sharing/agreements/{agreement_id}").text) == {"sign-form"}
    assert forms_on(authority.get(f"/sharing/agreements/{agreement_id}").text) == {"file-form"}
    # filing before the signatures is refused on the page
    r = authority.post(f"/sharing/agreements/{agreement_id}/file", data={})
    assert r.status_code == 422
    assert "协议须经双方部门签署后才能备案" in r.text
    for side in (consumer, head):
        r = side.post(f"/sharing/agreements/{agreement_id}/sign", data={}, follow_redirects=False)
        assert r.status_code == 303
    assert forms_on(consumer.get(f"/sharing/agreements/{agreement_id}").text) == set()
    r = authority.post(
        f"/sharing/agreements/{agreement_id}/file",
        data={"note": "同意备案"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = authority.get(f"/sharing/agreements/{agreement_id}").text
    assert "履行中" in page
    assert 'data-testid="grant"' in page
    assert forms_on(page) == {"terminate-form"}
    grant_id = int(page.split("共享授权 第 ", 1)[1].split(" ", 1)[0])

    # grants page: the authority gets the supervision form, the provider does not
    assert f'data-testid="supervise-form-{grant_id}"' in authority.get("/sharing/grants").text
    assert f'data-testid="supervise-form-{grant_id}"' not in head.get("/sharing/grants").text
    r = head.post(f"/sharing/grants/{grant_id}/terminate", data={"reason": "不想提供了"})
    assert r.status_code == 403
    r = authority.post(f"/sharing/grants/{grant_id}/suspend", data={"reason": ""})
    assert r.status_code == 422
    assert "请填写暂停的理由" in r.text
    r = authority.post(
        f"/sharing/grants/{grant_id}/suspend",
        data={"reason": "发现超范围使用，暂停核查"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = consumer.get("/sharing/grants").text
    assert "已暂停" in page
    assert "发现超范围使用，暂停核查" in page
    r = authority.post(
        f"/sharing/agreements/{agreement_id}/terminate",
        data={"reason": "违法违规使用，终止协议"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = consumer.get(f"/sharing/agreements/{agreement_id}").text
    assert "已终止" in page
    assert "违法违规使用，终止协议" in page
