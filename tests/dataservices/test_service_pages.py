"""The data-service pages: the catalog with its filters and sort, a service's page with
its interface specification and calling examples, the operator's publish / edit /
withdraw forms with their refusals, and a grant's limits form."""

from __future__ import annotations

import html
import json
import re
import shlex
import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from govshare.audit.models import AuditEntry
from govshare.catalog.models import CatalogVersion
from govshare.dataservices import gateway as gw
from govshare.dataservices import service as ds_service
from govshare.dataservices.models import DataService, GrantLimit, UsageEntry
from govshare.db import china_today, utcnow
from govshare.ingestion import service as ingest
from govshare.ingestion.models import BatchSource, DataTable
from govshare.orgs import service as orgs
from govshare.orgs.models import User
from govshare.permissions import Role, permissions_for
from govshare.principal import Principal
from govshare.sharing import grants
from tests.catalog import conftest as catalog_conftest
from tests.catalog.conftest import CatalogWorld, publish
from tests.conftest import Factory, login
from tests.dataservices.conftest import person_row

world = catalog_conftest.world  # the catalog's test world (a fixture)

ALL = ["verification", "query", "batch"]


def as_user(app: FastAPI, db: Session, principal: Principal) -> TestClient:
    user = db.get(User, principal.id)
    assert user is not None
    client = TestClient(app)
    login(client, user.username)
    return client


def operator(app: FastAPI, factory: Factory) -> tuple[TestClient, Principal]:
    user = factory.user(Role.OPERATOR)
    client = TestClient(app)
    login(client, user.username)
    return client, factory.principal(user)


def ingested(db: Session, world: CatalogWorld, rows: int = 5, **overrides: Any) -> CatalogVersion:
    """A published entry of the county police with ``rows`` persons aggregated."""
    version = publish(db, world, **overrides)
    system = orgs.department_principal(world.police, Role.SYSTEM, "户籍系统")
    entry = ingest.target_entry(db, system, version.entry_id)
    ingest.load_rows(
        db,
        system,
        entry,
        [(n + 2, person_row(n)) for n in range(rows)],
        source=BatchSource.PUSH,
        client_batch_id=uuid.uuid4().hex,
    )
    db.commit()
    return version


def org_entry() -> dict[str, Any]:
    return {
        "name": "市场主体登记信息",
        "summary": "本县市场主体的登记信息。",
        "data_items": [
            {
                "name": "统一社会信用代码",
                "field": "credit_code",
                "data_type": "credit_code",
                "length": 18,
                "required": True,
            },
            {"name": "企业名称", "field": "org_name", "data_type": "string", "length": 200},
            {"name": "成立日期", "field": "founded_on", "data_type": "date"},
        ],
        "subject_key_kind": "organization",
        "subject_key_item": "credit_code",
        "share_methods": ALL,
    }


def platform_operator() -> Principal:
    return Principal(
        kind="user",
        id=None,
        name="运维组",
        role=Role.OPERATOR,
        permissions=permissions_for(Role.OPERATOR),
    )


def calls(db: Session, service_id: int, n: int, *, days_ago: int = 0, outcome: str = "ok") -> None:
    """``n`` usage-ledger rows of a service (what the gateway writes for each call)."""
    day = china_today() - timedelta(days=days_ago)
    for _ in range(n):
        db.add(
            UsageEntry(
                occurred_at=utcnow(),
                day=day,
                call_id=uuid.uuid4().hex,
                service_id=service_id,
                consumer_department_id=1,
                calling_system="测试系统",
                calling_user="张三",
                method="verification",
                outcome=outcome,
                items=["name"],
            )
        )
    db.commit()


def audits(db: Session, action: str) -> list[AuditEntry]:
    return list(
        db.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq))
    )


def text_of(r: Any) -> str:
    return html.unescape(r.text)


def service_names(page: str) -> list[str]:
    """The service names in the catalog table, in order."""
    table = page.split('data-testid="services"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<a href="/dataservices/\d+">([^<]+)</a>', table)


def curls(page: str) -> list[str]:
    return [
        html.unescape(m)
        for m in re.findall(r'<pre[^>]*data-testid="curl"><code>(.*?)</code></pre>', page, re.S)
    ]


def body_of(curl: str) -> dict[str, Any]:
    args = shlex.split(curl.replace("\\\n", " "))
    return json.loads(args[args.index("-d") + 1])  # type: ignore[no-any-return]


# ---------------------------------------------------------------- the catalog


def test_catalog_lists_searches_filters_and_sorts_by_calls(
    app: FastAPI, db: Session, world: CatalogWorld, factory: Factory
) -> None:
    person = ingested(db, world)
    org = ingested(db, world, rows=0, **org_entry())
    op = platform_operator()
    verify = ds_service.publish(
        db,
        op,
        entry_id=person.entry_id,
        name="户籍人口身份核验",
        methods=["verification"],
        scenario="身份核验；社会救助",
    )
    query = ds_service.publish(
        db,
        op,
        entry_id=person.entry_id,
        name="户籍人口信息查询",
        methods=["query"],
        scenario="户籍查询",
    )
    market = ds_service.publish(
        db,
        op,
        entry_id=org.entry_id,
        name="市场主体登记查询",
        methods=["query", "batch"],
        scenario="企业开办",
        description="按统一社会信用代码查询登记信息",
    )
    gone = ds_service.publish(
        db, op, entry_id=org.entry_id, name="已停用的旧服务", methods=["query"]
    )
    ds_service.withdraw(db, op, gone, "接口合并")
    db.commit()
    calls(db, query.id, 5)
    calls(db, market.id, 2)
    calls(db, verify.id, 1)
    calls(db, verify.id, 9, days_ago=40)  # outside the 30 days
    calls(db, verify.id, 7, outcome="refused")  # not an answered call

    officer = as_user(app, db, world.other_officer)
    r = officer.get("/dataservices")
    assert r.status_code == 200
    page = text_of(r)
    ours = [
        n
        for n in service_names(page)
        if n in {"户籍人口身份核验", "户籍人口信息查询", "市场主体登记查询"}
    ]
    assert ours == ["户籍人口信息查询", "市场主体登记查询", "户籍人口身份核验"]  # by calls
    assert "已停用的旧服务" not in page
    assert 'data-testid="publish-service"' not in page
    row = page.split(f'data-testid="service-{query.id}"', 1)[1].split("</tr>", 1)[0]
    assert '<td class="text-end" data-testid="calls">5</td>' in row
    assert world.police.name in row
    assert "数据查询" in row
    assert f'href="/catalog/entries/{person.entry_id}"' in row
    verify_row = page.split(f'data-testid="service-{verify.id}"', 1)[1].split("</tr>", 1)[0]
    assert 'data-testid="calls">1</td>' in verify_row
    # the officer may not ask for withdrawn services
    assert "已停用的旧服务" not in text_of(officer.get("/dataservices?include_withdrawn=1"))

    def names(url: str) -> list[str]:
        r = officer.get(url)
        assert r.status_code == 200
        return service_names(text_of(r))

    assert names("/dataservices?q=市场主体") == ["市场主体登记查询"]
    assert names("/dataservices?q=统一社会信用代码") == ["市场主体登记查询"]  # the description
    assert names("/dataservices?scenario=社会救助") == ["户籍人口身份核验"]
    assert set(names("/dataservices?subject_category=organization")) >= {"市场主体登记查询"}
    assert "户籍人口信息查询" not in names("/dataservices?subject_category=organization")
    assert set(names("/dataservices?subject_category=person")) >= {
        "户籍人口信息查询",
        "户籍人口身份核验",
    }
    assert "市场主体登记查询" not in names("/dataservices?subject_category=person")
    batch = names("/dataservices?method=batch")
    assert "市场主体登记查询" in batch
    assert "户籍人口信息查询" not in batch
    newest = names("/dataservices?order=new")
    assert newest.index("市场主体登记查询") < newest.index("户籍人口信息查询")
    assert newest.index("户籍人口信息查询") < newest.index("户籍人口身份核验")
    assert "没有符合条件的共享服务" in text_of(officer.get("/dataservices?q=不存在的服务名"))
    # unknown filter values are ignored, not an error
    assert officer.get("/dataservices?subject_category=x&method=y&order=z").status_code == 200

    client, _ = operator(app, factory)
    page = text_of(client.get("/dataservices"))
    assert 'href="/dataservices/new"' in page
    assert "已停用的旧服务" not in page
    page = text_of(client.get("/dataservices?include_withdrawn=1"))
    assert "已停用的旧服务" in page
    assert "已停用" in page.split(f'data-testid="service-{gone.id}"', 1)[1].split("</tr>", 1)[0]


# ---------------------------------------------------------------- one service


def test_service_page_shows_the_interface_spec_and_working_examples(
    app: FastAPI, db: Session, world: CatalogWorld
) -> None:
    version = ingested(db, world, share_methods=ALL)
    svc = ds_service.publish(
        db,
        platform_operator(),
        entry_id=version.entry_id,
        name="户籍人口核验、查询与批量交换",
        methods=ALL,
        scenario="身份核验",
        description="按公民身份号码核验或查询户籍信息",
        guide="第一步：申请共享\n第二步：签发凭证",
    )
    db.commit()
    calls(db, svc.id, 3)
    consumer = as_user(app, db, world.other_officer)
    r = consumer.get(f"/dataservices/{svc.id}")
    assert r.status_code == 200, r.text
    page = text_of(r)
    base = "http://testserver"
    # facts
    assert world.police.name in page
    assert f'href="/catalog/entries/{version.entry_id}"' in page
    assert "自然人" in page
    assert 'data-testid="calls-30d">3</div>' in page
    assert "第一步：申请共享\n第二步：签发凭证" in page
    assert 'style="white-space: pre-line" data-testid="guide"' in page
    # the spec: every endpoint, the headers and every error code
    for path in ("verify", "query", "exports"):
        assert f"{base}/api/v1/dataservices/{svc.id}/{path}" in page
    assert "Authorization: Bearer <应用凭证>" in page
    assert "X-Govshare-User" in page
    assert "%E5%BC%A0%E4%B8%89" in page
    codes = page.split('data-testid="error-codes"', 1)[1].split("</table>", 1)[0]
    for status in ("401", "403", "404", "410", "422", "429", "503"):
        assert f"<td>{status}</td>" in codes
    assert "Retry-After" in codes
    assert "超出共享授权的每分钟调用次数或每日调用限额" in codes
    items = page.split('data-testid="items"', 1)[1].split("</table>", 1)[0]
    for field, name in (("id_number", "公民身份号码"), ("name", "姓名"), ("address", "住址")):
        assert f'data-testid="item-{field}"' in items
        assert name in items
    assert "身份证号码" in items  # the data type
    assert "有条件共享" in items
    # the examples: one curl per method, built from the entry's items
    examples = curls(r.text)
    verify = next(
        c
        for c in examples
        if c.startswith(f"curl -sS -X POST '{base}/api/v1/dataservices/{svc.id}/verify'")
    )
    assert body_of(verify) == {
        "key": "11010519491231002X",
        "claims": {"name": "<申报的姓名>", "address": "<申报的住址>"},
    }
    assert '-H "Authorization: Bearer $GOVSHARE_TOKEN"' in verify
    assert "-H 'X-Govshare-User: %E5%BC%A0%E4%B8%89'" in verify
    query = next(c for c in examples if f"/dataservices/{svc.id}/query" in c)
    assert body_of(query) == {"key": "11010519491231002X"}
    export = next(c for c in examples if c.endswith("""-d '{"format": "csv"}'"""))
    assert f"{base}/api/v1/dataservices/{svc.id}/exports" in export
    assert any(f'"{base}/api/v1/dataservices/exports/$JOB_ID"' in c for c in examples)
    download = next(c for c in examples if "/download" in c)
    assert download.startswith("FILE=<任务应答中的 file_name>")
    assert download.endswith('-o "$FILE"')
    manifest = next(c for c in examples if "/manifest" in c)
    assert '-o "$FILE.manifest.json"' in manifest
    assert manifest.endswith('govshare verify-signature "$FILE"')
    # the example answers and the signed option
    answer = page.split('data-testid="response-example"><code>', 2)
    first = json.loads(answer[1].split("</code>", 1)[0])
    assert first["results"] == {"name": "match", "address": "no_match"}
    assert first["labels"] == {"name": "一致", "address": "不一致"}
    assert first["meta"]["service_id"] == svc.id
    assert first["meta"]["item_names"] == {"name": "姓名", "address": "住址"}
    second = json.loads(answer[2].split("</code>", 1)[0])
    assert set(second["records"][0]) == {"id_number", "name", "address"}
    assert second["meta"]["grant_id"] == "<共享授权编号>"  # no grant yet
    assert f"{base}/api/v1/dataservices/{svc.id}/verify?signed=1" in page
    assert "govshare verify-signature answer.json" in page
    assert 'href="/signatures/verify"' in page
    assert f'href="/docs#/dataservices/service_{svc.id}_verify"' in page
    assert f'href="/docs#/dataservices/service_{svc.id}_query"' in page
    # no grant: the way to apply, no edit or withdraw for an officer
    assert f'href="/sharing/apply?entry_id={version.entry_id}"' in page
    assert "本部门尚无该资源的共享授权" in page
    assert "withdraw-form" not in page
    assert "edit-service" not in page

    today = china_today()
    grant = grants.issue(
        db,
        Principal.platform("test"),
        consumer_department_id=world.civil.id,
        entry_id=version.entry_id,
        items=["id_number", "name"],
        methods=["verification", "query"],
        purpose="核验低保申请人户籍",
        scenario="低保审核",
        starts_on=today,
        ends_on=today + timedelta(days=90),
        approved_by="公安局审核人",
    )
    db.commit()
    page = text_of(consumer.get(f"/dataservices/{svc.id}"))
    mine = page.split(f'data-testid="my-grant-{grant.id}"', 1)[1].split("</tr>", 1)[0]
    assert "核验低保申请人户籍" in mine
    assert "公民身份号码、姓名" in mine
    assert "数据核验、数据查询" in mine
    assert f"{today} 至 {today + timedelta(days=90)}" in mine
    assert "有效" in mine
    assert f'href="/sharing/grants#grant-{grant.id}"' in mine
    assert 'data-testid="apply-share"' not in page
    # the examples now follow the grant: its items, its id and purpose in the meta
    examples = curls(page.replace("&#34;", '"'))
    verify = next(c for c in examples if f"/dataservices/{svc.id}/verify" in c)
    assert body_of(verify)["claims"] == {"name": "<申报的姓名>"}
    first = json.loads(
        page.split('data-testid="response-example"><code>', 2)[1].split("</code>")[0]
    )
    assert first["meta"]["grant_id"] == grant.id
    assert first["meta"]["purpose"] == "核验低保申请人户籍"

    # the provider's own officer is told it needs no grant
    page = text_of(as_user(app, db, world.officer).get(f"/dataservices/{svc.id}"))
    assert "本部门是该资源的提供部门" in page
    assert "/sharing/apply" not in page
    assert as_user(app, db, world.officer).get("/dataservices/999999").status_code == 404


# ---------------------------------------------------------------- publish


def form(entry_id: int, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "entry_id": str(entry_id),
        "name": "户籍人口身份核验",
        "methods": ["verification", "query"],
        "description": "按公民身份号码核验户籍信息",
        "scenario": "身份核验；社会救助",
        "guide": "1. 申请共享\n2. 签发凭证",
        "rate_per_minute": "120",
        "daily_quota": "",
    }
    return data | overrides


def test_publish_form_lists_the_entries_and_publishes(
    app: FastAPI,
    db: Session,
    world: CatalogWorld,
    factory: Factory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    forgotten: list[int] = []
    monkeypatch.setattr(gw, "forget_all", lambda: forgotten.append(1))
    shared = ingested(db, world)
    refused = publish(db, world, name="涉密人员信息", share_type="not_shared", share_methods=[])
    client, _ = operator(app, factory)

    r = client.get("/dataservices/new")
    assert r.status_code == 200
    page = text_of(r)
    choice = page.split('data-testid="entry-choice"', 1)[1].split("</form>", 1)[0]
    assert f'<option value="{shared.entry_id}"' in choice
    assert f'<option value="{refused.entry_id}"' not in choice  # 不予共享
    assert 'data-testid="service-form"' not in page

    r = client.get(f"/dataservices/new?entry_id={shared.entry_id}")
    page = text_of(r)
    assert 'data-testid="service-form"' in page
    # only the entry's share methods are offered (verification and query, not batch)
    assert 'value="verification"' in page
    assert 'value="query"' in page
    assert 'value="batch"' not in page
    assert f'<option value="{shared.entry_id}" selected>' in page

    r = client.post("/dataservices/new", data=form(shared.entry_id), follow_redirects=False)
    assert r.status_code == 303, r.text
    svc = db.scalar(select(DataService).where(DataService.entry_id == shared.entry_id))
    assert svc is not None
    assert r.headers["location"] == f"/dataservices/{svc.id}"
    assert (svc.name, svc.methods, svc.scenario, svc.rate_per_minute, svc.daily_quota) == (
        "户籍人口身份核验",
        ["verification", "query"],
        "身份核验；社会救助",
        120,
        None,
    )
    assert svc.guide == "1. 申请共享\n2. 签发凭证"
    assert svc.subject_category == "person"
    assert forgotten == [1]
    [entry] = audits(db, "dataservices:service:publish")
    assert entry.target_id == str(svc.id)
    assert json.loads(entry.details)["methods"] == ["verification", "query"]
    page = text_of(client.get(r.headers["location"]))
    assert "已发布共享服务“户籍人口身份核验”" in page
    # the select says which services an entry already has
    page = text_of(client.get("/dataservices/new"))
    assert "已有服务：户籍人口身份核验" in page


def test_publish_form_refusals_keep_the_values(
    app: FastAPI, db: Session, world: CatalogWorld, factory: Factory
) -> None:
    shared = ingested(db, world)
    refused = publish(db, world, name="涉密人员信息", share_type="not_shared", share_methods=[])
    empty = publish(db, world, name="尚未汇聚的资源")
    client, _ = operator(app, factory)

    def refused_with(data: dict[str, Any], status: int, message: str) -> str:
        r = client.post("/dataservices/new", data=data, follow_redirects=False)
        assert r.status_code == status, r.text
        page = text_of(r)
        assert message in page.split('data-testid="error"', 1)[1].split("</div>", 1)[0]
        return page

    # 不予共享
    page = refused_with(form(refused.entry_id), 409, "该资源为不予共享类，不能发布共享服务")
    assert 'data-testid="problem"' in page
    assert (
        text_of(client.get(f"/dataservices/new?entry_id={refused.entry_id}")).count(
            "该资源为不予共享类"
        )
        == 1
    )
    # no data table yet
    db.execute(delete(DataTable).where(DataTable.entry_id == empty.entry_id))
    db.commit()
    refused_with(form(empty.entry_id), 409, "该资源尚无汇聚数据表，请先汇聚数据再发布服务")
    # a method the entry does not offer
    page = refused_with(
        form(shared.entry_id, methods=["batch"], name="批量服务"),
        422,
        "目录资源未登记共享方式“批量交换”，不能发布该方式的服务",
    )
    assert 'value="批量服务"' in page  # the values are kept
    assert 'value="身份核验；社会救助"' in page
    assert "1. 申请共享\n2. 签发凭证</textarea>" in page
    # nothing chosen, no name, a number that is not one, a limit out of range
    refused_with(form(shared.entry_id, methods=[]), 422, "至少选择一种服务方式")
    page = refused_with(form(shared.entry_id, name="  "), 422, "请填写服务名称")
    assert 'class="form-control is-invalid" id="f-name"' in page
    refused_with(form(shared.entry_id, rate_per_minute="很多"), 422, "应为数字")
    refused_with(form(shared.entry_id, daily_quota="0"), 422, "限额须为 1 至 1000000000 之间的整数")
    refused_with(form(999999), 404, "请选择要发布服务的目录资源")
    assert db.scalar(select(func.count()).select_from(DataService)) == 0
    assert audits(db, "dataservices:service:publish") == []


def test_officers_cannot_publish_edit_withdraw_or_set_limits(
    app: FastAPI, db: Session, world: CatalogWorld
) -> None:
    version = ingested(db, world)
    svc = ds_service.publish(
        db, platform_operator(), entry_id=version.entry_id, name="核验", methods=["verification"]
    )
    grant = grants.issue(
        db,
        Principal.platform("test"),
        consumer_department_id=world.civil.id,
        entry_id=version.entry_id,
        items=["name"],
        methods=["verification"],
        purpose="测试",
        scenario="测试",
        starts_on=china_today(),
        ends_on=china_today() + timedelta(days=9),
        approved_by="审核人",
    )
    db.commit()
    for who in (world.officer, world.other_officer, world.head):
        client = as_user(app, db, who)
        assert client.get("/dataservices/new").status_code == 403
        assert client.post("/dataservices/new", data=form(version.entry_id)).status_code == 403
        assert client.get(f"/dataservices/{svc.id}/edit").status_code == 403
        r = client.post(f"/dataservices/{svc.id}/edit", data=form(version.entry_id))
        assert r.status_code == 403
        r = client.post(f"/dataservices/{svc.id}/withdraw", data={"reason": "想停就停"})
        assert r.status_code == 403
        assert client.get(f"/dataservices/grants/{grant.id}/limits").status_code == 403
        r = client.post(f"/dataservices/grants/{grant.id}/limits", data={"daily_quota": "1"})
        assert r.status_code == 403
    db.refresh(svc)
    assert (svc.status, svc.name) == ("published", "核验")
    assert db.get(GrantLimit, grant.id) is None
    assert audits(db, "dataservices:service:withdraw") == []
    assert len(audits(db, "orgs:access:denied")) >= 21


# ---------------------------------------------------------------- edit and withdraw


def test_edit_and_withdraw_with_a_reason(
    app: FastAPI,
    db: Session,
    world: CatalogWorld,
    factory: Factory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    forgotten: list[int] = []
    monkeypatch.setattr(gw, "forget_all", lambda: forgotten.append(1))
    version = ingested(db, world, share_methods=ALL)
    svc = ds_service.publish(
        db,
        platform_operator(),
        entry_id=version.entry_id,
        name="户籍核验",
        methods=["verification"],
        scenario="身份核验",
        daily_quota=1000,
    )
    db.commit()
    client, _ = operator(app, factory)
    page = text_of(client.get(f"/dataservices/{svc.id}"))
    assert f'href="/dataservices/{svc.id}/edit"' in page
    assert 'data-testid="withdraw-form"' in page
    page = text_of(client.get(f"/dataservices/{svc.id}/edit"))
    assert 'value="户籍核验"' in page
    assert 'value="1000"' in page
    assert 'value="batch"' in page  # the entry offers all three
    assert 'id="method-verification" value="verification" checked' in page
    assert 'name="entry_id"' not in page  # the entry is fixed

    r = client.post(
        f"/dataservices/{svc.id}/edit",
        data=form(version.entry_id, name="", methods=["query"]),
    )
    assert r.status_code == 422
    assert "请填写服务名称" in text_of(r)
    assert 'id="method-query" value="query" checked' in text_of(r)
    r = client.post(
        f"/dataservices/{svc.id}/edit",
        data=form(
            version.entry_id,
            name="户籍核验与查询",
            methods=["verification", "query"],
            daily_quota="5000",
            rate_per_minute="",
        ),
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    db.refresh(svc)
    assert (svc.name, svc.methods, svc.daily_quota, svc.rate_per_minute) == (
        "户籍核验与查询",
        ["verification", "query"],
        5000,
        None,
    )
    [entry] = audits(db, "dataservices:service:update")
    changed = json.loads(entry.details)
    assert changed["name"] == {"from": "户籍核验", "to": "户籍核验与查询"}
    assert changed["daily_quota"] == {"from": 1000, "to": 5000}
    assert "已保存共享服务的修改" in text_of(client.get(f"/dataservices/{svc.id}"))

    r = client.post(f"/dataservices/{svc.id}/withdraw", data={"reason": "  "})
    assert r.status_code == 422
    assert "请填写停用原因" in text_of(r)
    r = client.post(
        f"/dataservices/{svc.id}/withdraw",
        data={"reason": "接口迁移至新服务"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    db.refresh(svc)
    assert (svc.status, svc.withdrawn_reason) == ("withdrawn", "接口迁移至新服务")
    [entry] = audits(db, "dataservices:service:withdraw")
    assert json.loads(entry.details) == {"reason": "接口迁移至新服务"}
    assert forgotten == [1, 1]
    page = text_of(client.get(f"/dataservices/{svc.id}"))
    assert "已停用共享服务" in page
    assert "原因：接口迁移至新服务" in page
    assert 'data-testid="withdraw-form"' not in page
    assert "edit-service" not in page
    page = text_of(client.get(f"/dataservices/{svc.id}/edit"))
    assert "服务已停用，不能修改" in page
    assert 'data-testid="service-form"' not in page
    r = client.post(f"/dataservices/{svc.id}/withdraw", data={"reason": "再停一次"})
    assert r.status_code == 409
    assert "服务已停用" in text_of(r)
    assert "户籍核验与查询" not in service_names(text_of(client.get("/dataservices")))


# ---------------------------------------------------------------- limits


def test_limits_form_sets_and_clears_a_grants_limits(
    app: FastAPI,
    db: Session,
    world: CatalogWorld,
    factory: Factory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    forgotten: list[int] = []
    monkeypatch.setattr(gw, "forget_all", lambda: forgotten.append(1))
    version = ingested(db, world)
    svc = ds_service.publish(
        db,
        platform_operator(),
        entry_id=version.entry_id,
        name="户籍核验",
        methods=["verification"],
        rate_per_minute=300,
    )
    grant = grants.issue(
        db,
        Principal.platform("test"),
        consumer_department_id=world.civil.id,
        entry_id=version.entry_id,
        items=["id_number", "name"],
        methods=["verification"],
        purpose="核验低保申请人户籍",
        scenario="低保审核",
        starts_on=china_today(),
        ends_on=china_today() + timedelta(days=30),
        approved_by="审核人",
    )
    db.commit()
    client, _ = operator(app, factory)
    # the service page lists the entry's grants with their limits
    page = text_of(client.get(f"/dataservices/{svc.id}"))
    row = page.split(f'data-testid="supervised-{grant.id}"', 1)[1].split("</tr>", 1)[0]
    assert world.civil.name in row
    assert "<td>300</td>" in row
    assert f'href="/dataservices/grants/{grant.id}/limits"' in row

    url = f"/dataservices/grants/{grant.id}/limits"
    page = text_of(client.get(url))
    assert 'data-testid="source">服务</span>' in page
    assert 'data-testid="rate">300</td>' in page
    assert world.civil.name in page
    assert "核验低保申请人户籍" in page

    r = client.post(
        url, data={"rate_per_minute": "30", "daily_quota": "500"}, follow_redirects=False
    )
    assert r.status_code == 303
    assert r.headers["location"] == url
    row_limit = db.get(GrantLimit, grant.id)
    assert row_limit is not None
    assert (row_limit.rate_per_minute, row_limit.daily_quota) == (30, 500)
    [entry] = audits(db, "dataservices:grant:limit")
    assert entry.target_id == str(grant.id)
    assert json.loads(entry.details) == {
        "from": {"rate_per_minute": None, "daily_quota": None},
        "to": {"rate_per_minute": 30, "daily_quota": 500},
    }
    page = text_of(client.get(url))
    assert "已设置本授权的调用限额" in page
    assert 'data-testid="source">授权</span>' in page
    assert 'data-testid="rate">30</td>' in page
    assert 'data-testid="quota">500</td>' in page
    assert 'data-testid="calls-today">0</strong>' in page

    r = client.post(url, data={"rate_per_minute": "0", "daily_quota": "500"})
    assert r.status_code == 422
    assert "限额须为 1 至 1000000000 之间的整数" in text_of(r)
    assert 'value="0"' in text_of(r)
    r = client.post(url, data={"action": "clear", "rate_per_minute": "30"}, follow_redirects=False)
    assert r.status_code == 303
    db.refresh(row_limit)
    assert (row_limit.rate_per_minute, row_limit.daily_quota) == (None, None)
    assert len(audits(db, "dataservices:grant:limit")) == 2
    assert forgotten == [1, 1]
    page = text_of(client.get(url))
    assert "已清除本授权的调用限额" in page
    assert 'data-testid="source">服务</span>' in page

    # the county's authority may set it too; an authority elsewhere does not see the grant
    assert as_user(app, db, world.authority).get(url).status_code == 200
    elsewhere = factory.jurisdiction("别处市", "city", code="940100")
    other = factory.department(elsewhere, "别处市数据局", is_data_authority=True)
    stranger = as_user(app, db, factory.principal(factory.user(Role.AUTHORITY, other)))
    assert stranger.get(url).status_code == 404
    assert stranger.post(url, data={"daily_quota": "1"}).status_code == 404
    assert client.get("/dataservices/grants/999999/limits").status_code == 404
