"""The usage ledger and call statistics on known rows (inserted directly: these tests read):
who sees which calls, the filters, tracing a subject, the CSV export and the counts."""

from __future__ import annotations

import csv
import hmac
import io
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from govshare.audit.models import AuditEntry
from govshare.catalog.models import CatalogEntry
from govshare.config import get_settings
from govshare.dataservices import usage
from govshare.dataservices.models import DataService, UsageEntry
from govshare.db import china_today
from govshare.errors import PermissionDenied, ValidationFailed
from govshare.orgs.models import Department, User
from govshare.permissions import Role, permissions_for
from govshare.principal import Principal
from tests.catalog.conftest import (
    CatalogWorld,
    publish,
    world,  # noqa: F401 (a fixture)
)
from tests.conftest import Factory, login, platform

KEY_A = "41130219600101001X"
KEY_B = "411302196001020027"


@dataclass
class Ledger:
    world: CatalogWorld
    service_id: int
    entry_id: int
    #: a department of another city, and its data authority
    outsider: Department
    outsider_authority: Principal
    rows: dict[str, UsageEntry]

    @property
    def police(self) -> Department:
        return self.world.police

    @property
    def civil(self) -> Department:
        return self.world.civil


def add_call(db: Session, **values: Any) -> UsageEntry:
    day: date = values.pop("day", china_today())
    at = datetime(day.year, day.month, day.day, 4, 0, tzinfo=UTC)  # 12:00 in Beijing
    row = UsageEntry(
        occurred_at=values.pop("occurred_at", at),
        day=day,
        call_id=values.pop("call_id", uuid.uuid4().hex[:24]),
        calling_system=values.pop("calling_system", "社会救助信息系统"),
        calling_user=values.pop("calling_user", "张三"),
        purpose=values.pop("purpose", "核验低保申请人户籍"),
        scenario=values.pop("scenario", "最低生活保障审核"),
        approved_by=values.pop("approved_by", "公安局审核人"),
        method=values.pop("method", "query"),
        outcome=values.pop("outcome", "ok"),
        items=values.pop("items", ["id_number", "name"]),
        subjects=values.pop("subjects", ""),
        subject_count=values.pop("subject_count", 1),
        volume=values.pop("volume", 1),
        **values,
    )
    db.add(row)
    db.flush()
    return row


@pytest.fixture
def ledger(db: Session, world: CatalogWorld, factory: Factory) -> Ledger:  # noqa: F811
    entry_id = publish(db, world).entry_id
    service = DataService(
        entry_id=entry_id,
        provider_department_id=world.police.id,
        name="户籍人口核验与查询",
        subject_category="person",
        methods=["query", "verification"],
        published_by="运维组",
    )
    db.add(service)
    db.flush()
    other_city = factory.jurisdiction("别处市", "city", code="939900")
    outsider = factory.department(other_city, "别处市人社局")
    other_data = factory.department(other_city, "别处市数据局", is_data_authority=True)
    outsider_authority = factory.principal(factory.user(Role.AUTHORITY, other_data))
    common = {
        "service_id": service.id,
        "entry_id": entry_id,
        "provider_department_id": world.police.id,
    }
    rows = {
        # the civil affairs bureau queries the police's data
        "civil_query": add_call(
            db,
            **common,
            consumer_department_id=world.civil.id,
            grant_id=11,
            subjects=usage.subject_hash(KEY_A),
            calling_user="张三",
        ),
        # a department of another city verifies against the same data
        "outsider_verify": add_call(
            db,
            **common,
            consumer_department_id=outsider.id,
            grant_id=12,
            method="verification",
            outcome="not_found",
            subjects=usage.subject_hash(KEY_B),
            calling_user="王五",
            calling_system="人社业务系统",
            items=["name"],
            volume=0,
            day=china_today() - timedelta(days=3),
        ),
        # the civil affairs bureau, refused by a service that does not exist
        "civil_refused": add_call(
            db,
            consumer_department_id=world.civil.id,
            outcome="refused",
            reason="共享服务不存在",
            purpose="",
            scenario="",
            approved_by="",
            volume=0,
            items=[],
            calling_user="李四",
            day=china_today() - timedelta(days=40),
        ),
    }
    db.commit()
    return Ledger(world, service.id, entry_id, outsider, outsider_authority, rows)


def ids(page: usage.LedgerPage) -> set[int]:
    return {r.entry.id for r in page.rows}


def listed(
    db: Session, principal: Principal, params: dict[str, str] | None = None
) -> usage.LedgerPage:
    return usage.list_calls(db, principal, usage.parse_filter(principal, params or {}))


def app_credential(dept: Department) -> Principal:
    return Principal(
        kind="credential",
        id=999,
        name="社会救助信息系统（应用凭证）",
        role=Role.SYSTEM,
        department_id=dept.id,
        jurisdiction_id=dept.jurisdiction_id,
        permissions=permissions_for(Role.SYSTEM),
    )


# ---------------------------------------------------------------- visibility


def test_each_side_sees_its_own_calls(db: Session, ledger: Ledger) -> None:
    w, r = ledger.world, ledger.rows
    civil_query, outsider_verify, civil_refused = (
        r["civil_query"].id,
        r["outsider_verify"].id,
        r["civil_refused"].id,
    )
    # the consumer: its own calls, by default
    assert ids(listed(db, w.other_officer)) == {civil_query, civil_refused}
    # the provider: who used its data
    provider = listed(db, w.officer, {"view": "provider"})
    assert ids(provider) == {civil_query, outsider_verify}
    assert {row.consumer for row in provider.rows} == {"目录县民政局", "别处市人社局"}
    # as a consumer the police made no call
    assert ids(listed(db, w.officer)) == set()
    # the county's authority: calls on its entries and calls by its departments
    assert ids(listed(db, w.authority, {"view": "authority"})) == {
        civil_query,
        outsider_verify,
        civil_refused,
    }
    # the city's covers the county below it
    assert ids(listed(db, w.city_authority, {"view": "authority"})) == {
        civil_query,
        outsider_verify,
        civil_refused,
    }
    # another city's authority: only the call its own department made
    assert ids(listed(db, ledger.outsider_authority, {"view": "authority"})) == {outsider_verify}
    # the platform itself sees everything
    assert {civil_query, outsider_verify, civil_refused} <= ids(
        usage.list_calls(
            db,
            platform(),
            usage.parse_filter(platform(), {"view": "authority"}),
            per_page=10_000,
        )
    )


def test_views_offered_and_refused(db: Session, ledger: Ledger, factory: Factory) -> None:
    w = ledger.world
    assert usage.ledger_views(w.other_officer) == [usage.View.CONSUMER, usage.View.PROVIDER]
    assert usage.ledger_views(w.authority)[-1] is usage.View.AUTHORITY
    assert usage.ledger_views(platform()) == [usage.View.AUTHORITY]
    system = app_credential(w.civil)
    assert usage.ledger_views(system) == [usage.View.CONSUMER]
    assert ids(listed(db, system)) == {
        ledger.rows["civil_query"].id,
        ledger.rows["civil_refused"].id,
    }
    with pytest.raises(PermissionDenied, match="业务系统凭证"):
        usage.parse_filter(system, {"view": "provider"})
    with pytest.raises(PermissionDenied, match="数据主管部门"):
        usage.parse_filter(w.other_officer, {"view": "authority"})
    with pytest.raises(ValidationFailed, match="查看范围"):
        usage.parse_filter(w.other_officer, {"view": "everyone"})
    # the technical service unit has no ledger, only the platform-wide statistics
    operator = factory.principal(factory.user(Role.OPERATOR))
    assert usage.ledger_views(operator) == []
    assert usage.stats_views(operator) == [usage.View.PLATFORM]


def test_rows_carry_names_and_item_names(db: Session, ledger: Ledger) -> None:
    page = listed(db, ledger.world.other_officer, {"call_id": ledger.rows["civil_query"].call_id})
    (row,) = page.rows
    assert row.service == "户籍人口核验与查询"
    assert row.provider == "目录县公安局"
    assert row.consumer == "目录县民政局"
    assert row.item_names == ["公民身份号码", "姓名"]
    assert (row.method_label, row.outcome_label) == ("数据查询", "成功")
    out = row.out()
    assert out["subjects"] == [usage.subject_hash(KEY_A)]
    assert KEY_A not in str(out)


# ---------------------------------------------------------------- filters


def test_filters(db: Session, ledger: Ledger) -> None:
    w, r = ledger.world, ledger.rows
    today = china_today()
    police = w.officer

    def provider(**params: str) -> set[int]:
        return ids(listed(db, police, {"view": "provider", **params}))

    both = {r["civil_query"].id, r["outsider_verify"].id}
    assert provider(since=today.isoformat()) == {r["civil_query"].id}
    assert provider(until=(today - timedelta(days=1)).isoformat()) == {r["outsider_verify"].id}
    assert provider(service_id=str(ledger.service_id)) == both
    assert provider(grant_id="12") == {r["outsider_verify"].id}
    assert provider(consumer_department_id=str(w.civil.id)) == {r["civil_query"].id}
    assert provider(method="verification") == {r["outsider_verify"].id}
    assert provider(outcome="ok") == {r["civil_query"].id}
    assert provider(user="王") == {r["outsider_verify"].id}
    assert provider(call_id=r["civil_query"].call_id) == {r["civil_query"].id}
    assert provider(user="%") == set()  # a literal, not a wildcard
    consumer = ids(listed(db, w.other_officer, {"provider_department_id": str(w.police.id)}))
    assert consumer == {r["civil_query"].id}
    for params, message in (
        ({"since": "2026-13-01"}, "起始日期"),
        ({"method": "download"}, "调用方式"),
        ({"service_id": "x"}, "共享服务"),
        ({"since": "2026-05-02", "until": "2026-05-01"}, "起始日期不能晚于截止日期"),
        ({"call_id": "a b"}, "调用编号"),
    ):
        with pytest.raises(ValidationFailed, match=message):
            usage.parse_filter(police, {"view": "provider", **params})


def test_keyset_paging_newest_first(db: Session, ledger: Ledger) -> None:
    civil = ledger.civil
    made = [
        add_call(db, consumer_department_id=civil.id, calling_user=f"经办人{n}").id
        for n in range(7)
    ]
    db.commit()
    principal = ledger.world.other_officer
    f = usage.parse_filter(principal, {"user": "经办人"})
    first = usage.list_calls(db, principal, f, per_page=3)
    assert [r.entry.id for r in first.rows] == made[::-1][:3]
    assert first.next_before == made[4]
    second = usage.list_calls(db, principal, f, before=first.next_before, per_page=3)
    assert [r.entry.id for r in second.rows] == made[::-1][3:6]
    third = usage.list_calls(db, principal, f, before=second.next_before, per_page=3)
    assert [r.entry.id for r in third.rows] == [made[0]]
    assert third.next_before is None


# ---------------------------------------------------------------- tracing a subject


def test_subject_hash_is_keyed_hmac_sm3() -> None:
    secret = ("subject:" + get_settings().resolved_secret_key()).encode()
    expected = hmac.new(secret, KEY_A.encode(), "sm3").hexdigest()[:32]
    assert usage.subject_hash(KEY_A) == expected
    assert usage.subject_hash(KEY_A) == expected  # the cached key gives the same digest
    assert usage.subject_hash(KEY_B) != expected
    assert usage.normalize_subject(" 41130219600101001x ") == KEY_A


def as_user(app: FastAPI, db: Session, principal: Principal) -> TestClient:
    user = db.get(User, principal.id)
    assert user is not None
    client = TestClient(app)
    login(client, user.username)
    return client


def test_authority_traces_a_subject_and_it_is_audited(
    app: FastAPI, db: Session, ledger: Ledger
) -> None:
    authority = as_user(app, db, ledger.world.authority)
    # typed in lower case with spaces, as a person would
    r = authority.get(
        "/api/v1/dataservices/ledger",
        params={"view": "authority", "subject": " 41130219600101001x "},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [c["call_id"] for c in body["items"]] == [ledger.rows["civil_query"].call_id]
    digest = usage.subject_hash(KEY_A)
    assert body["filters"]["subject_hash"] == digest
    assert "subject" not in body["filters"]
    entry = db.scalar(
        select(AuditEntry)
        .where(AuditEntry.action == "dataservices:ledger:trace")
        .order_by(AuditEntry.seq.desc())
    )
    assert entry is not None
    assert entry.target_id == digest
    assert entry.actor_id == ledger.world.authority.id
    assert KEY_A not in entry.details
    assert '"rows":1' in entry.details.replace(" ", "")
    # the digest alone traces too
    again = authority.get(
        "/api/v1/dataservices/ledger", params={"view": "authority", "subject_hash": digest}
    )
    assert [c["call_id"] for c in again.json()["items"]] == [ledger.rows["civil_query"].call_id]
    # only the authority may trace
    officer = as_user(app, db, ledger.world.other_officer)
    refused = officer.get("/api/v1/dataservices/ledger", params={"subject": KEY_A})
    assert refused.status_code == 403
    assert "数据主管部门" in refused.json()["error"]["message"]


def test_the_trace_box_keeps_the_key_out_of_links(
    app: FastAPI, db: Session, ledger: Ledger
) -> None:
    authority = as_user(app, db, ledger.world.authority)
    r = authority.post(
        "/dataservices/ledger/trace", data={"subject": KEY_B}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    location = r.headers["location"]
    assert KEY_B not in location
    assert f"subject_hash={usage.subject_hash(KEY_B)}" in location
    page = authority.get(location)
    assert page.status_code == 200
    assert "正在按主体追溯" in page.text
    assert ledger.rows["outsider_verify"].call_id in page.text
    assert ledger.rows["civil_query"].call_id not in page.text
    empty = authority.post("/dataservices/ledger/trace", data={"subject": ""})
    assert empty.status_code == 422
    assert "请填写要追溯的身份证号码" in empty.text
    officer = as_user(app, db, ledger.world.other_officer)
    assert officer.post("/dataservices/ledger/trace", data={"subject": KEY_B}).status_code == 403


# ---------------------------------------------------------------- CSV export


def test_csv_export_content_and_audit(app: FastAPI, db: Session, ledger: Ledger) -> None:
    consumer = as_user(app, db, ledger.world.other_officer)
    r = consumer.get("/api/v1/dataservices/ledger.csv")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    assert r.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert tuple(rows[0]) == usage.CSV_HEADER
    assert rows[0][:3] == ["调用编号", "调用时间（北京时间）", "共享服务"]
    body = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert [b["调用编号"] for b in body] == [
        ledger.rows["civil_query"].call_id,
        ledger.rows["civil_refused"].call_id,
    ]
    first = body[0]
    assert first["共享服务"] == "户籍人口核验与查询"
    assert first["使用部门"] == "目录县民政局"
    assert first["提供部门"] == "目录县公安局"
    assert first["信息项"] == "公民身份号码、姓名"
    assert first["调用方式"] == "数据查询"
    assert first["调用结果"] == "成功"
    assert first["经办人"] == "张三"
    assert first["调用时间（北京时间）"].endswith("12:00:00")
    assert first["主体标识摘要"] == usage.subject_hash(KEY_A)
    assert body[1]["调用结果"] == "拒绝"
    assert body[1]["说明"] == "共享服务不存在"
    entry = db.scalar(
        select(AuditEntry)
        .where(AuditEntry.action == "dataservices:ledger:export")
        .order_by(AuditEntry.seq.desc())
    )
    assert entry is not None
    assert entry.actor_id == ledger.world.other_officer.id
    assert '"view":"consumer"' in entry.details.replace(" ", "")
    # filters apply to the export
    only = consumer.get("/api/v1/dataservices/ledger.csv", params={"outcome": "refused"})
    assert only.content.decode("utf-8-sig").count("\n") == 2


def test_csv_export_streams_many_rows_in_batches(app: FastAPI, db: Session, ledger: Ledger) -> None:
    n = 1234
    day = china_today()
    at = datetime(day.year, day.month, day.day, 2, 0, tzinfo=UTC)
    db.execute(
        insert(UsageEntry),
        [
            {
                "occurred_at": at,
                "day": day,
                "call_id": f"bulk{i:08d}{uuid.uuid4().hex[:8]}",
                "consumer_department_id": ledger.civil.id,
                "provider_department_id": ledger.police.id,
                "service_id": ledger.service_id,
                "entry_id": ledger.entry_id,
                "calling_system": "批量测试系统",
                "calling_user": "=cmd|' /C calc'!A0" if i == 0 else "赵六",
                "method": "verification",
                "outcome": "ok",
                "items": ["name"],
                "subjects": "",
                "subject_count": 1,
                "volume": 1,
            }
            for i in range(n)
        ],
    )
    db.commit()
    consumer = as_user(app, db, ledger.world.other_officer)
    with consumer.stream(
        "GET", "/api/v1/dataservices/ledger.csv", params={"method": "verification"}
    ) as r:
        assert r.status_code == 200
        chunks = list(r.iter_bytes())
    text = b"".join(chunks).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) == n + 1
    assert {row[4] for row in rows[1:]} == {"批量测试系统"}
    assert {row[12] for row in rows[1:]} == {"姓名"}
    # a formula typed as a user's name is neutralised
    assert "'=cmd|' /C calc'!A0" in {row[5] for row in rows[1:]}


# ---------------------------------------------------------------- statistics


def test_statistics_count_the_calls_that_failed(db: Session, ledger: Ledger) -> None:
    """A call the platform failed to answer (its record lookup failed) is in the ledger with
    outcome ``error``: counted as a call, apart from the answered ones, in every grouping."""
    w = ledger.world
    common = {
        "service_id": ledger.service_id,
        "entry_id": ledger.entry_id,
        "provider_department_id": w.police.id,
        "consumer_department_id": w.civil.id,
    }
    add_call(db, **common, method="verification", outcome="error", volume=0)
    db.commit()
    stats = usage.statistics(
        db, w.other_officer, usage.parse_filter(w.other_officer, {}, stats=True)
    )
    # the fixture's civil_query (today, ok) and the failed call
    assert (stats.calls, stats.ok, stats.error, stats.refused, stats.limited) == (2, 1, 1, 0, 0)
    assert {g.key: (g.label, g.calls, g.error) for g in stats.by_outcome} == {
        "ok": ("成功", 1, 0),
        "error": ("平台出错", 1, 1),
    }
    (service,) = stats.by_service
    assert (service.calls, service.ok, service.error) == (2, 1, 1)
    assert stats.out()["error"] == 1
    assert stats.out()["by_service"][0]["error"] == 1
    assert {"name": "平台出错", "value": 1} in stats.chart()["outcomes"]
    only = usage.statistics(
        db, w.other_officer, usage.parse_filter(w.other_officer, {"outcome": "error"}, stats=True)
    )
    assert (only.calls, only.error) == (1, 1)


def test_statistics_on_known_rows(db: Session, ledger: Ledger) -> None:
    w = ledger.world
    today = china_today()
    common = {
        "service_id": ledger.service_id,
        "entry_id": ledger.entry_id,
        "provider_department_id": w.police.id,
        "consumer_department_id": w.civil.id,
    }
    # in the period besides the fixture's civil_query (today, query ok, volume 1)
    add_call(db, **common, volume=5, day=today - timedelta(days=1), scenario="临时救助审核")
    add_call(db, **common, method="verification", volume=1, day=today - timedelta(days=1))
    add_call(db, **common, outcome="limited", volume=0, day=today)
    # outside the period (the fixture's civil_refused is 40 days ago too)
    add_call(db, **common, volume=100, day=today - timedelta(days=31))
    db.commit()

    f = usage.parse_filter(w.other_officer, {}, stats=True)
    assert (f.since, f.until) == (today - timedelta(days=29), today)
    stats = usage.statistics(db, w.other_officer, f)
    assert stats.days == 30
    assert (stats.calls, stats.ok, stats.limited, stats.volume) == (4, 3, 1, 7)
    assert stats.per_day == round(4 / 30, 2)
    assert stats.subjects == 4
    by_method = {g.key: (g.calls, g.volume) for g in stats.by_method}
    assert by_method == {"query": (3, 6), "verification": (1, 1)}
    assert {g.key: g.calls for g in stats.by_outcome} == {"ok": 3, "limited": 1}
    (service,) = stats.by_service
    assert (service.label, service.calls, service.ok, service.limited) == (
        "户籍人口核验与查询",
        4,
        3,
        1,
    )
    assert [(g.label, g.calls) for g in stats.by_consumer] == [("目录县民政局", 4)]
    assert [(g.label, g.calls) for g in stats.by_provider] == [("目录县公安局", 4)]
    assert {g.label: g.calls for g in stats.by_scenario} == {
        "最低生活保障审核": 3,
        "临时救助审核": 1,
    }
    assert len(stats.daily) == 30
    assert stats.daily[-1] == (today, {"query": 2})
    assert stats.daily[-2] == (today - timedelta(days=1), {"query": 1, "verification": 1})
    chart = stats.chart()
    assert [s["name"] for s in chart["daily"]] == ["数据查询", "数据核验"]
    assert chart["services"] == {"names": ["户籍人口核验与查询"], "calls": [4]}

    # a longer period reaches the older calls; the provider counts the outsider's call too
    wide = usage.statistics(
        db, w.officer, usage.parse_filter(w.officer, {"view": "provider", "days": "60"}, stats=True)
    )
    assert wide.calls == 6
    assert {g.label for g in wide.by_consumer} == {"目录县民政局", "别处市人社局"}
    # an empty period
    empty = usage.statistics(
        db,
        w.other_officer,
        usage.parse_filter(
            w.other_officer, {"since": "2020-01-01", "until": "2020-01-07"}, stats=True
        ),
    )
    assert (empty.calls, empty.days, len(empty.daily)) == (0, 7, 7)
    with pytest.raises(ValidationFailed, match="366"):
        usage.parse_filter(w.other_officer, {"days": "400"}, stats=True)


def test_stats_api(app: FastAPI, db: Session, ledger: Ledger) -> None:
    authority = as_user(app, db, ledger.world.authority)
    r = authority.get("/api/v1/dataservices/stats", params={"view": "authority", "days": "7"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["days"] == 7
    assert body["calls"] == 2  # civil_query today, outsider_verify 3 days ago
    assert {g["key"] for g in body["by_method"]} == {"query", "verification"}
    assert len(body["daily"]) == 7
    assert body["daily"][-1]["by_method"] == {"query": 1}
    outsider = TestClient(app)
    user = db.get(User, ledger.outsider_authority.id)
    assert user is not None
    login(outsider, user.username)
    theirs = outsider.get("/api/v1/dataservices/stats", params={"view": "authority"}).json()
    assert theirs["calls"] == 1
    assert [g["label"] for g in theirs["by_consumer"]] == ["别处市人社局"]


def test_ledger_api_lists_and_pages(app: FastAPI, db: Session, ledger: Ledger) -> None:
    provider = as_user(app, db, ledger.world.officer)
    r = provider.get("/api/v1/dataservices/ledger", params={"view": "provider"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["view"] == "provider"
    assert body["per_page"] == 50
    assert body["next_before"] is None
    first = body["items"][0]
    assert first["call_id"] == ledger.rows["civil_query"].call_id
    assert first["item_names"] == ["公民身份号码", "姓名"]
    assert first["consumer"] == "目录县民政局"
    assert first["method_label"] == "数据查询"
    bad = provider.get("/api/v1/dataservices/ledger", params={"since": "yesterday"})
    assert bad.status_code == 422
    assert "起始日期" in bad.json()["error"]["message"]


# ---------------------------------------------------------------- pages


def test_pages_per_role(app: FastAPI, db: Session, ledger: Ledger, factory: Factory) -> None:
    consumer = as_user(app, db, ledger.world.other_officer)
    page = consumer.get("/dataservices/ledger")
    assert page.status_code == 200
    for text in ("使用台账", "本部门调用", "本部门数据被使用", "导出 CSV", "公民身份号码、姓名"):
        assert text in page.text
    assert "监督追溯" not in page.text
    assert "按主体追溯" not in page.text
    assert ledger.rows["civil_query"].call_id in page.text
    assert "/api/v1/dataservices/ledger.csv?view=consumer" in page.text
    filtered = consumer.get("/dataservices/ledger", params={"outcome": "refused"})
    assert ledger.rows["civil_refused"].call_id in filtered.text
    assert ledger.rows["civil_query"].call_id not in filtered.text
    assert "outcome=refused" in filtered.text  # the export link keeps the filters
    partial = consumer.get(
        "/dataservices/ledger", headers={"HX-Request": "true", "HX-Target": "ledger-table"}
    )
    assert partial.status_code == 200
    assert "<html" not in partial.text
    assert 'id="ledger-table"' in partial.text
    bad = consumer.get("/dataservices/ledger", params={"since": "2026-02-30"})
    assert bad.status_code == 422
    assert "起始日期：应为 YYYY-MM-DD 格式的日期" in bad.text

    provider = as_user(app, db, ledger.world.officer)
    used = provider.get("/dataservices/ledger", params={"view": "provider"})
    assert used.status_code == 200
    assert "别处市人社局" in used.text
    assert "人社业务系统" in used.text

    authority = as_user(app, db, ledger.world.authority)
    traced = authority.get("/dataservices/ledger", params={"view": "authority"})
    assert traced.status_code == 200
    for text in ("监督追溯", "按主体追溯", "共享服务不存在"):
        assert text in traced.text

    stats = consumer.get("/dataservices/stats")
    assert stats.status_code == 200
    for text in (
        "调用统计",
        "按共享服务",
        "按应用场景",
        "每日调用",
        "echarts.min.js",
        "最近 30 天",
    ):
        assert text in stats.text
    assert 'id="stats-data"' in stats.text
    assert "户籍人口核验与查询" in stats.text
    week = authority.get("/dataservices/stats", params={"view": "authority", "days": "7"})
    assert week.status_code == 200
    assert "共 7 天" in week.text
    wrong = consumer.get("/dataservices/stats", params={"days": "999"})
    assert wrong.status_code == 422
    assert "统计期间不能超过 366 天" in wrong.text

    operator = TestClient(app)
    login(operator, factory.user(Role.OPERATOR).username)
    assert operator.get("/dataservices/ledger").status_code == 403
    ops = operator.get("/dataservices/stats")
    assert ops.status_code == 200
    assert "全平台运行" in ops.text

    public = TestClient(app)
    login(public, factory.user(Role.PUBLIC).username)
    assert public.get("/dataservices/ledger").status_code == 403
    assert public.get("/dataservices/stats").status_code == 403
    assert public.get("/api/v1/dataservices/ledger").status_code == 403
    assert public.get("/api/v1/dataservices/ledger.csv").status_code == 403
    assert public.get("/api/v1/dataservices/stats").status_code == 403
    anonymous = TestClient(app)
    assert anonymous.get("/api/v1/dataservices/ledger").status_code == 401


def test_entry_jurisdiction_decides_the_authoritys_scope(db: Session, ledger: Ledger) -> None:
    """Moving nothing but the entry to another city takes the call out of the county
    authority's scope when the consumer is not its department either."""
    row = ledger.rows["outsider_verify"]
    entry = db.get(CatalogEntry, ledger.entry_id)
    assert entry is not None
    assert ids(listed(db, ledger.world.authority, {"view": "authority"})) >= {row.id}
    outsider_jurisdiction = ledger.outsider.jurisdiction_id
    entry.jurisdiction_id = outsider_jurisdiction
    db.flush()
    assert row.id not in ids(listed(db, ledger.world.authority, {"view": "authority"}))
    assert row.id in ids(listed(db, ledger.outsider_authority, {"view": "authority"}))
