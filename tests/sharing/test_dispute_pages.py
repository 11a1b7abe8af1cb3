"""Sharing disputes through the JSON API and the pages (seed 000 art. 20, seed 003 art. 40,
seed 004 art. 16): raised by the consumer on a refusal, stated by the provider,
coordinated by the authority (uphold, order the grant, escalate, the government's
decision); the coordination clock shown to both sides; who may and may not."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.orm import Session

from govshare.db import china_today
from govshare.permissions import Role
from govshare.sharing import dispute_routes
from govshare.sharing.models import ShareDispute
from tests.catalog.conftest import CatalogWorld, publish
from tests.conftest import Factory
from tests.sharing.test_applications import use_rulebook
from tests.sharing.test_pages_api import as_user, body, forms_on


def wire(app: FastAPI, module: object, probe: str) -> FastAPI:
    """Include a module's routers unless the application already does."""
    if not any(getattr(r, "path", None) == probe for r in app.routes):
        app.include_router(module.api_router, prefix="/api/v1")  # type: ignore[attr-defined]
        app.include_router(module.page_router)  # type: ignore[attr-defined]
    return app


@pytest.fixture
def web(app: FastAPI) -> FastAPI:
    return wire(app, dispute_routes, "/sharing/disputes")


def rejected_app(web: FastAPI, db: Session, world: CatalogWorld) -> int:
    """An application filed through the API and refused by the provider's reviewer."""
    use_rulebook(db, world, "pingshan-2026")  # seed 000: coordinated in 10 working days
    entry_id = publish(db, world).entry_id
    consumer = as_user(web, db, world.other_officer)
    r = consumer.post("/api/v1/sharing/applications", json=body(entry_id))
    assert r.status_code == 201, r.text
    app_id: int = r.json()["id"]
    reviewer = as_user(web, db, world.reviewer)
    r = reviewer.post(
        f"/api/v1/sharing/applications/{app_id}/reject", json={"reason": "涉及个人隐私，不予提供"}
    )
    assert r.status_code == 200, r.text
    return app_id


def test_the_api_raises_coordinates_and_orders_a_grant(
    web: FastAPI, db: Session, world: CatalogWorld, factory: Factory
) -> None:
    app_id = rejected_app(web, db, world)
    consumer = as_user(web, db, world.other_officer)
    provider = as_user(web, db, world.reviewer)
    authority = as_user(web, db, world.authority)
    outsider = as_user(
        web, db, factory.principal(factory.user(Role.DEPT_OFFICER, world.county_authority_dept))
    )

    # only the consumer raises; a statement is required
    r = provider.post(f"/api/v1/sharing/applications/{app_id}/disputes", json={"statement": "x"})
    assert r.status_code == 403
    r = consumer.post(f"/api/v1/sharing/applications/{app_id}/disputes", json={"statement": ""})
    assert r.status_code == 422
    assert "争议理由" in r.json()["error"]["message"]
    r = consumer.post(
        f"/api/v1/sharing/applications/{app_id}/disputes",
        json={"statement": "低保审核依法需要核验户籍信息"},
    )
    assert r.status_code == 201, r.text
    d = r.json()
    dispute_id = d["id"]
    assert (d["status"], d["grounds"], d["days_left"], d["overdue"]) == (
        "open",
        "rejected",
        10,
        False,
    )
    assert d["due"] is not None
    r = consumer.post(
        f"/api/v1/sharing/applications/{app_id}/disputes", json={"statement": "再提一次争议"}
    )
    assert r.status_code == 409

    # both sides and the coordinating authority see it; the city authority does not
    for side in (consumer, provider, authority):
        assert [x["id"] for x in side.get("/api/v1/sharing/disputes").json()] == [dispute_id]
    assert outsider.get("/api/v1/sharing/disputes").json() == []
    assert outsider.get(f"/api/v1/sharing/disputes/{dispute_id}").status_code == 404
    assert consumer.get("/api/v1/sharing/disputes/999999").status_code == 404

    # the provider states its side; the consumer may not coordinate
    r = provider.post(
        f"/api/v1/sharing/disputes/{dispute_id}/statement",
        json={"statement": "申请的住址信息超出低保审核所需"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["provider_statement"] == "申请的住址信息超出低保审核所需"
    assert (
        consumer.post(f"/api/v1/sharing/disputes/{dispute_id}/coordinate", json={}).status_code
        == 403
    )
    assert (
        provider.post(f"/api/v1/sharing/disputes/{dispute_id}/coordinate", json={}).status_code
        == 403
    )
    # ordering before coordination starts is refused
    r = authority.post(f"/api/v1/sharing/disputes/{dispute_id}/order", json={"record": "协调一致"})
    assert r.status_code == 409
    r = authority.post(
        f"/api/v1/sharing/disputes/{dispute_id}/coordinate", json={"note": "召集双方协调"}
    )
    assert (r.status_code, r.json()["status"]) == (200, "coordinating")
    r = authority.post(
        f"/api/v1/sharing/disputes/{dispute_id}/order",
        json={"record": "双方同意只共享身份证号和姓名", "items": ["id_number", "gender"]},
    )
    assert r.status_code == 422  # never more than was asked for
    r = authority.post(
        f"/api/v1/sharing/disputes/{dispute_id}/order",
        json={
            "record": "双方同意只共享身份证号和姓名",
            "items": ["id_number", "name"],
            "conditions": "仅用于低保审核",
        },
    )
    assert r.status_code == 200, r.text
    done = r.json()
    assert (done["status"], done["outcome"], done["days_left"]) == (
        "resolved_granted",
        "granted",
        None,
    )
    assert done["grant"]["items"] == ["id_number", "name"]
    assert [h["action"] for h in done["history"]] == [
        "raise",
        "provider_statement",
        "coordinate",
        "order_grant",
    ]
    # the ordered grant shows on the grants page, with where it came from
    grants_page = consumer.get("/sharing/grants").text
    assert f'href="/sharing/disputes/{dispute_id}"' in grants_page
    assert "争议协调" in grants_page
    # settled: a new dispute may be raised on nothing (the application now has a grant)
    r = authority.post(
        f"/api/v1/sharing/disputes/{dispute_id}/uphold", json={"record": "维持原决定"}
    )
    assert r.status_code == 409


def test_the_api_escalates_and_records_the_government_decision(
    web: FastAPI, db: Session, world: CatalogWorld
) -> None:
    app_id = rejected_app(web, db, world)
    consumer = as_user(web, db, world.other_officer)
    authority = as_user(web, db, world.authority)
    dispute_id = consumer.post(
        f"/api/v1/sharing/applications/{app_id}/disputes",
        json={"statement": "低保审核依法需要核验户籍信息"},
    ).json()["id"]
    authority.post(f"/api/v1/sharing/disputes/{dispute_id}/coordinate", json={})
    r = authority.post(f"/api/v1/sharing/disputes/{dispute_id}/escalate", json={"record": "太短"})
    assert r.status_code == 422
    r = authority.post(
        f"/api/v1/sharing/disputes/{dispute_id}/escalate",
        json={"record": "经两次协调双方未达成一致，报县人民政府决定"},
    )
    assert (r.status_code, r.json()["status"]) == (200, "escalated")
    assert r.json()["escalation_record"] == "经两次协调双方未达成一致，报县人民政府决定"
    r = consumer.post(
        f"/api/v1/sharing/disputes/{dispute_id}/government-decision",
        json={"decision": "县政府决定共享", "outcome": "granted"},
    )
    assert r.status_code == 403
    r = authority.post(
        f"/api/v1/sharing/disputes/{dispute_id}/government-decision",
        json={"decision": "县政府办公室函〔2026〕1号：不予共享", "outcome": "maybe"},
    )
    assert r.status_code == 422
    r = authority.post(
        f"/api/v1/sharing/disputes/{dispute_id}/government-decision",
        json={"decision": "县政府办公室函〔2026〕1号：不予共享", "outcome": "upheld"},
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["status"], out["government_outcome"], out["grant"]) == (
        "decided_by_government",
        "upheld",
        None,
    )
    page = consumer.get(f"/sharing/disputes/{dispute_id}").text
    assert "本级人民政府已决定" in page
    assert "县政府办公室函〔2026〕1号" in page


def test_pages_show_the_clock_and_each_side_its_forms(
    web: FastAPI, db: Session, world: CatalogWorld, factory: Factory
) -> None:
    app_id = rejected_app(web, db, world)
    consumer = as_user(web, db, world.other_officer)
    provider = as_user(web, db, world.reviewer)
    authority = as_user(web, db, world.authority)

    # raised from a page form; an empty statement is refused on the page in Chinese
    r = consumer.post(f"/sharing/applications/{app_id}/disputes", data={"statement": ""})
    assert r.status_code == 422
    assert "请填写争议理由" in r.text
    assert 'data-testid="raise-dispute-form"' in r.text
    r = provider.post(f"/sharing/applications/{app_id}/disputes", data={"statement": "提供方提"})
    assert r.status_code == 403
    assert (
        'data-testid="raise-dispute-form"'
        in consumer.get(f"/sharing/applications/{app_id}/disputes/new").text
    )
    r = consumer.post(
        f"/sharing/applications/{app_id}/disputes",
        data={"statement": "低保审核依法需要核验户籍信息"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    dispute_id = int(r.headers["location"].rsplit("/", 1)[1])

    # the clock is shown to both sides with the days left
    for side in (consumer, provider, authority):
        page = side.get(f"/sharing/disputes/{dispute_id}").text
        assert "剩余 10 个工作日" in page
        assert f'href="/sharing/applications/{app_id}"' in page
        assert "低保审核依法需要核验户籍信息" in page
    assert "剩余 10 个工作日" in consumer.get("/sharing/disputes").text
    assert forms_on(consumer.get(f"/sharing/disputes/{dispute_id}").text) == set()
    assert forms_on(provider.get(f"/sharing/disputes/{dispute_id}").text) == {"statement-form"}
    assert forms_on(authority.get(f"/sharing/disputes/{dispute_id}").text) == {"coordinate-form"}
    outsider = factory.principal(factory.user(Role.DEPT_OFFICER, world.county_authority_dept))
    assert as_user(web, db, outsider).get(f"/sharing/disputes/{dispute_id}").status_code == 404

    r = provider.post(
        f"/sharing/disputes/{dispute_id}/statement",
        data={"statement": "住址超出所需"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    r = authority.post(
        f"/sharing/disputes/{dispute_id}/coordinate", data={}, follow_redirects=False
    )
    assert r.status_code == 303
    page = authority.get(f"/sharing/disputes/{dispute_id}").text
    assert forms_on(page) == {"order-form", "uphold-form", "escalate-form"}
    assert "住址超出所需" in page
    # a refusal is shown on the page, what was typed kept
    r = authority.post(f"/sharing/disputes/{dispute_id}/order", data={"record": "协调一致同意共享"})
    assert r.status_code == 422
    assert "至少授权一个信息项" in r.text
    assert "协调一致同意共享" in r.text

    # overdue the day after the due date
    db.execute(
        update(ShareDispute)
        .where(ShareDispute.id == dispute_id)
        .values(due=china_today() - timedelta(days=1))
    )
    db.commit()
    page = consumer.get(f"/sharing/disputes/{dispute_id}").text
    assert 'data-testid="overdue"' in page
    assert 'data-testid="overdue"' in consumer.get("/sharing/disputes").text

    r = authority.post(
        f"/sharing/disputes/{dispute_id}/order",
        data={"record": "协调一致同意共享", "items": ["id_number", "name"]},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    page = consumer.get(f"/sharing/disputes/{dispute_id}").text
    assert "协调解决：决定共享" in page
    assert 'data-testid="grant"' in page
    assert 'data-testid="overdue"' not in page  # the clock stopped


def test_application_page_context_lists_disputes_and_offers_raising(
    web: FastAPI, db: Session, world: CatalogWorld
) -> None:
    from govshare.sharing import service

    app_id = rejected_app(web, db, world)
    app = service.get_application(db, world.other_officer, app_id)
    ctx = dispute_routes.application_context(db, world.other_officer, app)
    assert (ctx["disputes"], ctx["may_raise_dispute"]) == ([], True)
    assert dispute_routes.application_context(db, world.reviewer, app)["may_raise_dispute"] is False
    consumer = as_user(web, db, world.other_officer)
    consumer.post(
        f"/api/v1/sharing/applications/{app_id}/disputes",
        json={"statement": "低保审核依法需要核验户籍信息"},
    )
    db.expire_all()
    ctx = dispute_routes.application_context(db, world.other_officer, app)
    assert [r.status_label for r in ctx["disputes"]] == ["待协调"]
    assert ctx["may_raise_dispute"] is False  # one unsettled dispute at a time


def test_an_unanswered_application_is_disputed_once_overdue(
    web: FastAPI, db: Session, world: CatalogWorld
) -> None:
    use_rulebook(db, world, "pingshan-2026")
    entry_id = publish(db, world).entry_id
    consumer = as_user(web, db, world.other_officer)
    app_id = consumer.post("/api/v1/sharing/applications", json=body(entry_id)).json()["id"]
    r = consumer.post(
        f"/api/v1/sharing/applications/{app_id}/disputes", json={"statement": "迟迟没有答复"}
    )
    assert r.status_code == 422
    assert "答复期限内" in r.json()["error"]["message"]
    from govshare.sharing.models import ShareApplication

    db.execute(
        update(ShareApplication)
        .where(ShareApplication.id == app_id)
        .values(due=china_today() - timedelta(days=1))
    )
    db.commit()
    r = consumer.post(
        f"/api/v1/sharing/applications/{app_id}/disputes", json={"statement": "逾期未答复"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["grounds"] == "overdue"
    assert r.json()["grounds_label"] == "逾期未答复"
