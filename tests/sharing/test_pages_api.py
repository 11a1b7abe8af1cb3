"""The sharing workflow through the JSON API and the pages: file, ask for material once,
resubmit, approve fewer items, reject with a reason; who sees what, which actions each
side gets, clocks in working days flagged overdue the day after the due date."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from govshare.db import china_today
from govshare.orgs.models import User
from govshare.permissions import Role
from govshare.principal import Principal
from govshare.sharing.models import ShareApplication
from tests.catalog.conftest import CatalogWorld, publish
from tests.conftest import Factory, login
from tests.sharing.test_applications import use_rulebook


def as_user(app: FastAPI, db: Session, principal: Principal) -> TestClient:
    user = db.get(User, principal.id)
    assert user is not None
    client = TestClient(app)
    login(client, user.username)
    return client


def body(entry_id: int, **overrides: Any) -> dict[str, Any]:
    today = china_today()
    data: dict[str, Any] = {
        "entry_id": entry_id,
        "items": ["id_number", "name", "address"],
        "scope": "per_subject",
        "methods": ["verification"],
        "purpose": "核验低保申请人的户籍信息",
        "scenario": "最低生活保障申请审核",
        "basis": "《社会救助暂行办法》第十一条",
        "period_start": today.isoformat(),
        "period_end": (today + timedelta(days=365)).isoformat(),
        "consumer_system": "社会救助信息系统",
    }
    return data | overrides


def test_the_api_drives_the_whole_path_to_a_grant_of_fewer_items(
    app: FastAPI, db: Session, world: CatalogWorld, factory: Factory
) -> None:
    use_rulebook(db, world, "pingshan-2026")  # seed 000: the provider reviews, 10 days
    entry_id = publish(db, world).entry_id
    consumer = as_user(app, db, world.other_officer)
    reviewer = as_user(app, db, world.reviewer)

    r = consumer.post("/api/v1/sharing/applications", json=body(entry_id))
    assert r.status_code == 201, r.text
    filed = r.json()
    app_id = filed["id"]
    assert (filed["status"], filed["reviewer"], filed["kind"]) == (
        "pending_review",
        "provider",
        "application",
    )
    assert filed["days_left"] == 10
    assert filed["overdue"] is False
    assert filed["due"] is not None
    assert [e["action"] for e in filed["events"]] == ["file"]

    mine = consumer.get("/api/v1/sharing/applications").json()
    assert [a["id"] for a in mine] == [app_id]
    queue = reviewer.get("/api/v1/sharing/review-queue").json()
    assert [a["id"] for a in queue] == [app_id]
    assert reviewer.get("/api/v1/sharing/applications?role=reviewer").json()[0]["id"] == app_id
    assert reviewer.get("/api/v1/sharing/applications?role=provider").json()[0]["id"] == app_id
    # the consumer cannot decide its own application
    assert (
        consumer.post(f"/api/v1/sharing/applications/{app_id}/approve", json={}).status_code == 403
    )

    r = reviewer.post(
        f"/api/v1/sharing/applications/{app_id}/supplement",
        json={"missing": "请补充低保审批表和申请人授权书"},
    )
    assert r.status_code == 200, r.text
    asked = r.json()
    assert asked["status"] == "supplement_requested"
    assert (asked["due"], asked["days_left"], asked["overdue"]) == (None, None, False)
    assert reviewer.get("/api/v1/sharing/review-queue").json() == []
    # only the consumer resubmits
    r = reviewer.post(f"/api/v1/sharing/applications/{app_id}/resubmit", json={"reply": "已补充"})
    assert r.status_code == 403
    r = consumer.post(
        f"/api/v1/sharing/applications/{app_id}/resubmit",
        json={"reply": "已上传低保审批表和授权书"},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["days_left"]) == ("pending_review", 10)  # restarted
    # material is asked for once (一次性告知)
    r = reviewer.post(
        f"/api/v1/sharing/applications/{app_id}/supplement", json={"missing": "还缺一份材料"}
    )
    assert r.status_code == 409
    assert "一次性告知" in r.json()["error"]["message"]
    # never more than was asked for
    r = reviewer.post(
        f"/api/v1/sharing/applications/{app_id}/approve", json={"items": ["id_number", "gender"]}
    )
    assert r.status_code == 422
    r = reviewer.post(
        f"/api/v1/sharing/applications/{app_id}/approve",
        json={"items": ["id_number", "name"], "conditions": "仅用于低保审核，不得提供给第三方"},
    )
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "approved"
    assert done["decided_items"] == ["id_number", "name"]
    grant = done["grant"]
    assert grant["items"] == ["id_number", "name"]
    assert grant["methods"] == ["verification"]
    assert grant["consumer_department_id"] == world.civil.id
    assert grant["consumer_system"] == "社会救助信息系统"
    assert grant["provider_department_id"] == world.police.id
    assert grant["entry_id"] == entry_id
    assert grant["application_id"] == app_id
    assert grant["conditions"] == "仅用于低保审核，不得提供给第三方"
    assert grant["purpose"] == "核验低保申请人的户籍信息"
    assert grant["approved_by"] == world.reviewer.name
    assert [e["action"] for e in done["events"]] == [
        "file",
        "ask_supplement",
        "resubmit",
        "approve",
    ]
    assert done["events"][-1]["details"]["narrowed"] == ["address"]
    # both sides see the grant; the authority over the provider too
    for who in (consumer, reviewer, as_user(app, db, world.authority)):
        assert [g["id"] for g in who.get("/api/v1/sharing/grants").json()] == [grant["id"]]

    # a third department sees neither the application nor the grant
    education = factory.department(world.county, "目录县教育局")
    stranger = as_user(app, db, factory.principal(factory.user(Role.DEPT_OFFICER, education)))
    assert stranger.get(f"/api/v1/sharing/applications/{app_id}").status_code == 404
    r = stranger.post(f"/api/v1/sharing/applications/{app_id}/withdraw", json={})
    assert r.status_code == 404
    assert stranger.get("/api/v1/sharing/grants").json() == []
    assert stranger.get("/api/v1/sharing/applications").json() == []


def test_reject_needs_a_reason_and_withdraw_ends_an_open_application(
    app: FastAPI, db: Session, world: CatalogWorld
) -> None:
    use_rulebook(db, world, "pingshan-2026")
    entry_id = publish(db, world).entry_id
    consumer = as_user(app, db, world.other_officer)
    reviewer = as_user(app, db, world.reviewer)
    first = consumer.post("/api/v1/sharing/applications", json=body(entry_id)).json()["id"]
    r = reviewer.post(f"/api/v1/sharing/applications/{first}/reject", json={})
    assert r.status_code == 422
    assert r.json()["error"]["message"] == "请填写不同意的理由（至少 4 个字）"
    r = reviewer.post(
        f"/api/v1/sharing/applications/{first}/reject",
        json={"reason": "申请用途与所需住址信息无关"},
    )
    assert (r.status_code, r.json()["status"], r.json()["reason"]) == (
        200,
        "rejected",
        "申请用途与所需住址信息无关",
    )
    assert r.json()["grant"] is None
    second = consumer.post("/api/v1/sharing/applications", json=body(entry_id)).json()["id"]
    r = consumer.post(f"/api/v1/sharing/applications/{second}/withdraw", json={})
    assert r.json()["status"] == "withdrawn"
    r = consumer.post(f"/api/v1/sharing/applications/{second}/withdraw", json={})
    assert r.status_code == 409
    # filing errors come back in Chinese with the field
    r = consumer.post("/api/v1/sharing/applications", json=body(entry_id, basis=""))
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "basis"
    assert "申请依据" in r.json()["error"]["message"]


def test_the_authority_reviews_where_the_rulebook_says_so(
    app: FastAPI, db: Session, world: CatalogWorld
) -> None:
    use_rulebook(db, world, "neixiang-2017")  # seed 003 art. 12: the data authority decides
    entry_id = publish(db, world).entry_id
    consumer = as_user(app, db, world.other_officer)
    app_id = consumer.post("/api/v1/sharing/applications", json=body(entry_id)).json()["id"]
    reviewer = as_user(app, db, world.reviewer)
    authority = as_user(app, db, world.authority)
    city_authority = as_user(app, db, world.city_authority)
    assert reviewer.get("/api/v1/sharing/review-queue").json() == []
    assert [a["id"] for a in authority.get("/api/v1/sharing/review-queue").json()] == [app_id]
    # the city's authority covers its counties
    assert [a["id"] for a in city_authority.get("/api/v1/sharing/review-queue").json()] == [app_id]
    r = reviewer.post(f"/api/v1/sharing/applications/{app_id}/approve", json={})
    assert r.status_code == 403
    r = authority.post(f"/api/v1/sharing/applications/{app_id}/approve", json={})
    assert r.status_code == 200, r.text
    assert r.json()["grant"]["items"] == ["id_number", "name", "address"]


def test_unconditional_data_is_granted_on_filing(
    app: FastAPI, db: Session, world: CatalogWorld
) -> None:
    use_rulebook(db, world, "pingshan-2026")
    entry_id = publish(
        db,
        world,
        name="户籍人口统计信息",
        share_type="unconditional",
        share_scope="",
        share_purpose="",
        data_grade="general",
    ).entry_id
    consumer = as_user(app, db, world.other_officer)
    page = consumer.get(f"/sharing/apply?entry_id={entry_id}")
    assert "无条件共享，提交即获授权" in page.text
    r = consumer.post("/api/v1/sharing/applications", json=body(entry_id, basis=""))
    assert r.status_code == 201, r.text
    assert (r.json()["kind"], r.json()["status"]) == ("request", "approved")
    assert r.json()["grant"]["items"] == ["id_number", "name", "address"]


def test_an_overdue_clock_is_flagged_the_day_after_the_due_date(
    app: FastAPI, db: Session, world: CatalogWorld
) -> None:
    use_rulebook(db, world, "pingshan-2026")
    entry_id = publish(db, world).entry_id
    consumer = as_user(app, db, world.other_officer)
    app_id = consumer.post("/api/v1/sharing/applications", json=body(entry_id)).json()["id"]
    today = china_today()
    db.execute(update(ShareApplication).where(ShareApplication.id == app_id).values(due=today))
    db.commit()
    due_today = consumer.get(f"/api/v1/sharing/applications/{app_id}").json()
    assert (due_today["days_left"], due_today["overdue"]) == (0, False)
    assert "今日到期" in consumer.get("/sharing/applications").text
    past = today - timedelta(days=14)  # two weeks back: working days have passed since
    db.execute(update(ShareApplication).where(ShareApplication.id == app_id).values(due=past))
    db.commit()
    late = consumer.get(f"/api/v1/sharing/applications/{app_id}").json()
    assert late["overdue"] is True
    assert late["days_left"] < 0
    listing = consumer.get("/sharing/applications").text
    assert f"已逾期 {-late['days_left']} 个工作日" in listing
    queue = as_user(app, db, world.reviewer).get("/sharing/review").text
    assert f"已逾期 {-late['days_left']} 个工作日" in queue


def forms_on(html: str) -> set[str]:
    return set(re.findall(r'data-testid="([a-z-]+-form)"', html))


def test_pages_show_each_side_its_actions(app: FastAPI, db: Session, world: CatalogWorld) -> None:
    use_rulebook(db, world, "pingshan-2026")
    entry_id = publish(db, world).entry_id
    consumer = as_user(app, db, world.other_officer)
    reviewer = as_user(app, db, world.reviewer)
    authority = as_user(app, db, world.authority)

    # the catalog entry offers the application to another department only
    assert 'data-testid="apply-share"' in consumer.get(f"/catalog/entries/{entry_id}").text
    provider_officer = as_user(app, db, world.officer)
    assert (
        'data-testid="apply-share"' not in provider_officer.get(f"/catalog/entries/{entry_id}").text
    )
    form = consumer.get(f"/sharing/apply?entry_id={entry_id}")
    assert form.status_code == 200
    assert 'data-testid="apply-form"' in form.text
    assert "有条件共享" in form.text
    assert "第三十八条" in form.text
    assert (
        "本部门的数据无需申请共享"
        in provider_officer.get(f"/sharing/apply?entry_id={entry_id}").text
    )

    # the form files the application (CSRF header set by login(); checkboxes repeat)
    values: dict[str, Any] = body(entry_id) | {"items": ["id_number", "name"]}
    r = consumer.post("/sharing/apply", data=values, follow_redirects=False)
    assert r.status_code == 303, r.text
    app_id = int(r.headers["location"].rsplit("/", 1)[1])
    # an error is shown on the form, in Chinese, with what was typed kept
    r = consumer.post("/sharing/apply", data=values | {"purpose": "无"})
    assert r.status_code == 422
    assert "请填写使用用途（至少 4 个字）" in r.text
    assert "最低生活保障申请审核" in r.text

    page = consumer.get(f"/sharing/applications/{app_id}").text
    assert forms_on(page) == {"withdraw-form"}
    assert "剩余 10 个工作日" in page
    assert "社会救助信息系统" in page
    page = reviewer.get(f"/sharing/applications/{app_id}").text
    assert forms_on(page) == {"approve-form", "supplement-form", "reject-form"}
    page = authority.get(f"/sharing/applications/{app_id}").text
    assert forms_on(page) == set()  # the provider reviews under this rulebook
    assert "待审核" in page

    # page posts need the CSRF token
    bare = TestClient(app)
    user = db.get(User, world.reviewer.id)
    assert user is not None
    login(bare, user.username)
    del bare.headers["X-CSRF-Token"]
    r = bare.post(f"/sharing/applications/{app_id}/reject", data={"reason": "理由足够长了"})
    assert r.status_code == 403
    assert "表单已过期" in r.text

    # a refusal is shown on the page, nothing changes
    r = reviewer.post(f"/sharing/applications/{app_id}/reject", data={"reason": ""})
    assert r.status_code == 422
    assert "请填写不同意的理由" in r.text
    r = reviewer.post(
        f"/sharing/applications/{app_id}/supplement",
        data={"missing": "请补充低保审批表"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = reviewer.get(f"/sharing/applications/{app_id}").text
    assert forms_on(page) == set()
    assert "请补充低保审批表" in page
    page = consumer.get(f"/sharing/applications/{app_id}").text
    assert forms_on(page) == {"resubmit-form", "withdraw-form"}
    assert "期限暂停" in page
    r = consumer.post(
        f"/sharing/applications/{app_id}/resubmit",
        data={"reply": "已上传低保审批表"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = reviewer.get(f"/sharing/applications/{app_id}").text
    # asked once already: no second request for material
    assert forms_on(page) == {"approve-form", "reject-form"}
    r = reviewer.post(
        f"/sharing/applications/{app_id}/approve",
        data={"items": ["name"], "conditions": "仅限低保审核"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = consumer.get(f"/sharing/applications/{app_id}").text
    assert "已同意" in page
    grant_items = re.search(r'data-testid="grant-items">(.*?)</dd>', page)
    assert grant_items is not None
    assert grant_items.group(1) == "姓名"
    assert "仅限低保审核" in page
    assert [
        a for a in ("提交", "一次性告知补正材料", "补正后重新提交", "同意共享") if a in page
    ] == ["提交", "一次性告知补正材料", "补正后重新提交", "同意共享"]
    grants = consumer.get("/sharing/grants").text
    assert f'href="/sharing/applications/{app_id}"' in grants
    assert "目录县公安局" in grants
    assert "姓名" in grants
    # the review page is for reviewers
    assert consumer.get("/sharing/review").status_code == 403


def test_a_not_shared_entry_shows_its_basis_instead(
    app: FastAPI, db: Session, world: CatalogWorld
) -> None:
    entry_id = publish(
        db,
        world,
        share_type="not_shared",
        share_methods=[],
        share_scope="",
        share_purpose="",
        share_basis="《中华人民共和国国家安全法》第五十三条",
        open_type="not_open",
    ).entry_id
    consumer = as_user(app, db, world.other_officer)
    page = consumer.get(f"/catalog/entries/{entry_id}").text
    assert 'data-testid="apply-share"' not in page
    assert "该资源不予共享，依据：《中华人民共和国国家安全法》第五十三条" in page
    form = consumer.get(f"/sharing/apply?entry_id={entry_id}").text
    assert 'data-testid="apply-form"' not in form
    assert "该资源不予共享" in form


def test_the_head_extends_a_reply_period_on_the_page(
    app: FastAPI,
    db: Session,
    world: CatalogWorld,
    monkeypatch: Any,
) -> None:
    """Where the rulebook allows an extension approved by the provider's head, the head
    sees the form and uses it once; the reviewer does not see it."""
    from govshare.sharing import service

    use_rulebook(db, world, "pingshan-2026")
    real = service.context_for

    def extendable(session: Session, provider: Any) -> service.Context:
        ctx = real(session, provider)
        reply = ctx.rules.conditional_reply.model_copy(
            update={"extension_working_days": 10, "extension_approver": "dept_head"}
        )
        rules = ctx.rules.model_copy(update={"conditional_reply": reply})
        return service.Context(provider=ctx.provider, rules=rules, calendar=ctx.calendar)

    monkeypatch.setattr(service, "context_for", extendable)
    consumer = as_user(app, db, world.other_officer)
    filed = consumer.post("/api/v1/sharing/applications", json=body(publish(db, world).entry_id))
    assert filed.status_code == 201, filed.text
    app_id, due = filed.json()["id"], filed.json()["due"]
    reviewer = as_user(app, db, world.reviewer)
    assert 'data-testid="extend-form"' not in reviewer.get(f"/sharing/applications/{app_id}").text
    head = as_user(app, db, world.head)
    page = head.get(f"/sharing/applications/{app_id}").text
    assert 'data-testid="extend-form"' in page
    r = head.post(
        f"/sharing/applications/{app_id}/extend",
        data={"reason": "涉及的数据量较大，需要核对"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    after = head.get(f"/api/v1/sharing/applications/{app_id}").json()
    assert after["due"] > due
    assert 'data-testid="extend-form"' not in head.get(f"/sharing/applications/{app_id}").text
