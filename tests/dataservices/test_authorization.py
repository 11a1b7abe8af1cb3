"""Every delivery method against every grant state, with only granted items and with an item
outside the grant; credentials, services and headers that must be refused; quotas and rate
limits. Each refused authenticated call must leave a usage-ledger row (outcome ``refused`` or
``limited``, with the reason) and an audit entry; a call without a valid credential is
audited only, as an anonymous actor.

Each test makes its own consumer department (``live.consumer()``), so its grants and ledger
rows are its own.

The batch method (``POST /api/v1/dataservices/{id}/exports``) is tested the same way as query
and verification: a request refused is ledgered at once; an accepted one answers 202 with the
job, and its delivery is ledgered by the export runner when the file is written.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from govshare.audit.models import AuditEntry
from govshare.dataservices import gateway as gw
from govshare.dataservices import ledger
from govshare.dataservices import service as ds_service
from govshare.dataservices.models import DataService, UsageEntry
from govshare.db import china_today, utcnow
from govshare.orgs import schemas as orgs_schemas
from govshare.orgs import service as orgs
from govshare.orgs.models import AppCredential
from govshare.sharing import grants
from govshare.sharing.models import Grant
from tests.dataservices.conftest import ACTOR, ROWS, Live, headers, person_key

METHODS = ["query", "verification", "batch"]
PATHS = {"query": "query", "verification": "verify", "batch": "exports"}
LABELS = {"query": "数据查询接口", "verification": "数据核验", "batch": "批量交换"}
GRANTED = ["id_number", "name"]
OUTSIDE = "address"

NO_GRANT = "本部门没有该资源的共享授权，请先提出共享申请"
OUTSIDE_REASON = f"共享授权不包括信息项 {OUTSIDE}"
STATES = [
    "none",
    "active",
    "suspended",
    "terminated",
    "expired",
    "not_started",
    "method_excluded",
]


# ---------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def api(live: Live) -> Iterator[TestClient]:
    with live.client() as client:
        yield client


def url(service_id: int, method: str) -> str:
    return f"/api/v1/dataservices/{service_id}/{PATHS[method]}"


def body(method: str, n: int, outside: bool) -> dict[str, Any]:
    """A call's body asking for granted items only, or also for ``OUTSIDE``."""
    if method == "query":
        return {"key": person_key(n), "items": ["name", OUTSIDE] if outside else ["name"]}
    if method == "verification":
        claims: dict[str, str] = {"name": f"李{n}"}
        if outside:
            claims[OUTSIDE] = f"人民路{n}号"
        return {"key": person_key(n), "claims": claims}
    out: dict[str, Any] = {"format": "csv"}
    if outside:
        out["items"] = ["name", OUTSIDE]
    return out


def call(
    api: TestClient,
    service_id: int,
    method: str,
    payload: dict[str, Any],
    hdrs: dict[str, str],
) -> httpx.Response:
    return api.post(url(service_id, method), json=payload, headers=hdrs)


def ledger_rows(live: Live, consumer_id: int) -> list[UsageEntry]:
    with live.session() as s:
        return list(
            s.scalars(
                select(UsageEntry)
                .where(UsageEntry.consumer_department_id == consumer_id)
                .order_by(UsageEntry.id)
            )
        )


def audit_of(live: Live, row: UsageEntry) -> tuple[AuditEntry, dict[str, Any]]:
    assert row.audit_seq is not None
    with live.session() as s:
        entry = s.get(AuditEntry, row.audit_seq)
        assert entry is not None
        return entry, json.loads(entry.details)


def last_seq(live: Live) -> int:
    with live.session() as s:
        return int(s.scalar(select(func.coalesce(func.max(AuditEntry.seq), 0))) or 0)


def assert_ledgered(
    live: Live,
    consumer_id: int,
    method: str,
    outcome: str,
    reason: str,
    r: httpx.Response,
    *,
    service_id: int | None,
    grant_id: int | None = None,
) -> UsageEntry:
    """The consumer's latest ledger row is this call's, with its audit entry."""
    rows = ledger_rows(live, consumer_id)
    assert rows, "no usage-ledger row for the call"
    row = rows[-1]
    if "X-Govshare-Call-Id" in r.headers:
        assert row.call_id == r.headers["X-Govshare-Call-Id"]
    assert row.method == method
    assert row.outcome == outcome
    assert row.reason == reason
    assert row.service_id == service_id
    assert row.grant_id == grant_id
    assert row.calling_user == "张三"
    assert row.credential_id is not None
    assert row.calling_system == "测试业务系统"
    entry, details = audit_of(live, row)
    assert entry.action == f"dataservices:call:{method}"
    assert entry.actor_type == "credential"
    assert entry.actor_id == row.credential_id
    assert entry.department_id == consumer_id
    assert details["call_id"] == row.call_id
    assert details["outcome"] == outcome
    assert details.get("reason", "") == reason
    return row


def assert_refused(
    live: Live,
    consumer_id: int,
    method: str,
    r: httpx.Response,
    status: int,
    code: str,
    reason: str,
    *,
    service_id: int | None,
) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"] == {"code": code, "message": reason, "field": None}
    assert "李" not in r.text  # no data leaves on a refusal
    assert "人民路" not in r.text
    assert_ledgered(live, consumer_id, method, "refused", reason, r, service_id=service_id)


def make_grant(live: Live, consumer_id: int, state: str, method: str) -> int | None:
    today = china_today()
    if state == "none":
        return None
    if state in ("active", "suspended", "terminated"):
        return live.grant(consumer_id, GRANTED, METHODS, status=state)
    if state == "expired":
        return live.grant(
            consumer_id,
            GRANTED,
            METHODS,
            starts_on=today - timedelta(days=30),
            ends_on=today - timedelta(days=1),
        )
    if state == "not_started":
        return live.grant(
            consumer_id,
            GRANTED,
            METHODS,
            starts_on=today + timedelta(days=1),
            ends_on=today + timedelta(days=30),
        )
    assert state == "method_excluded"
    return live.grant(consumer_id, GRANTED, [m for m in METHODS if m != method])


def expected_reason(state: str, method: str, outside: bool) -> str | None:
    """What :func:`govshare.sharing.grants.decide` answers; None when the call is allowed."""
    today = china_today()
    return {
        "none": NO_GRANT,
        "active": OUTSIDE_REASON if outside else None,
        "suspended": "共享授权已被暂停：测试暂停",
        "terminated": "共享授权已被终止：测试终止",
        "expired": f"共享授权已于 {(today - timedelta(days=1)).isoformat()} 到期，请重新申请",
        "not_started": f"共享授权自 {(today + timedelta(days=1)).isoformat()} 起生效",
        # a grant in force is first checked item by item, then for the method
        "method_excluded": OUTSIDE_REASON
        if outside
        else f"共享授权不包括共享方式“{LABELS[method]}”",
    }[state]


def assert_allowed(
    live: Live, consumer_id: int, grant_id: int, method: str, n: int, r: httpx.Response
) -> None:
    if method == "batch":
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["grant_id"] == grant_id
        assert [i["field"] for i in job["items"]] == GRANTED
        # the delivery is ledgered by the export runner when the file is written
        deadline = time.monotonic() + 30
        rows: list[UsageEntry] = []
        while time.monotonic() < deadline:
            rows = [row for row in ledger_rows(live, consumer_id) if row.export_id == job["id"]]
            if rows:
                break
            time.sleep(0.05)
        assert len(rows) == 1, "the export's delivery left no usage-ledger row"
        row = rows[0]
        assert (row.method, row.outcome, row.reason) == ("batch", "ok", "")
        assert row.grant_id == grant_id
        assert row.items == GRANTED
        assert row.volume == ROWS
        entry, details = audit_of(live, row)
        assert entry.action == "dataservices:call:batch"
        assert details["call_id"] == row.call_id
        assert details["export_id"] == job["id"]
        return
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["meta"]["grant_id"] == grant_id
    assert OUTSIDE not in r.text
    assert "人民路" not in r.text
    if method == "query":
        assert [rec["name"] for rec in doc["records"]] == [f"李{n}"]
    else:
        assert doc["results"] == {"name": "match"}
    row = assert_ledgered(
        live, consumer_id, method, "ok", "", r, service_id=live.service_id, grant_id=grant_id
    )
    assert row.items == ["name"]
    assert row.volume == 1


# ---------------------------------------------------------------- grant states × methods


@pytest.mark.parametrize("outside", [False, True], ids=["granted_items", "item_outside"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("state", STATES)
def test_every_method_against_every_grant_state(
    live: Live, api: TestClient, state: str, method: str, outside: bool
) -> None:
    consumer, token = live.consumer()
    grant_id = make_grant(live, consumer, state, method)
    n = 11
    r = call(api, live.service_id, method, body(method, n, outside), headers(token))
    reason = expected_reason(state, method, outside)
    if reason is None:
        assert grant_id is not None
        assert_allowed(live, consumer, grant_id, method, n, r)
    else:
        assert_refused(
            live,
            consumer,
            method,
            r,
            403,
            "permission_denied",
            reason,
            service_id=live.service_id,
        )
        assert len(ledger_rows(live, consumer)) == 1


def test_newest_grant_in_force_wins_over_ended_ones(live: Live, api: TestClient) -> None:
    """An ended grant next to one in force does not refuse; the one in force is used."""
    consumer, token = live.consumer()
    live.grant(consumer, GRANTED, METHODS, status="terminated")
    active = live.grant(consumer, GRANTED, ["verification"])
    live.grant(consumer, GRANTED, METHODS, status="suspended")
    r = call(api, live.service_id, "verification", body("verification", 5, False), headers(token))
    assert_allowed(live, consumer, active, "verification", 5, r)
    r = call(api, live.service_id, "query", body("query", 5, False), headers(token))
    assert_refused(
        live,
        consumer,
        "query",
        r,
        403,
        "permission_denied",
        "共享授权不包括共享方式“数据查询接口”",
        service_id=live.service_id,
    )


# ---------------------------------------------------------------- credentials


def _credential(live: Live, token: str) -> int:
    with live.session() as s:
        cred_id = s.scalar(
            select(AppCredential.id).where(AppCredential.key_id == token.split("_")[1])
        )
        assert cred_id is not None
        return cred_id


def _revoke(live: Live, token: str) -> None:
    with live.session() as s:
        cred = s.get(AppCredential, _credential(live, token))
        assert cred is not None
        orgs.revoke_credential(
            s, ACTOR, cred, orgs_schemas.CredentialRevoke(reason="测试吊销：系统下线")
        )
        s.commit()
    gw.forget_all()


def _expire(live: Live, token: str) -> None:
    with live.session() as s:
        cred = s.get(AppCredential, _credential(live, token))
        assert cred is not None
        cred.expires_at = utcnow() - timedelta(seconds=1)
        s.commit()
    gw.forget_all()


CREDENTIAL_CASES = {
    "revoked": "应用凭证已吊销",
    "expired": "应用凭证已过期",
    "bad_token": "应用凭证无效",
    "other_secret": "应用凭证无效",
    "no_bearer": "请使用应用凭证调用（Authorization: Bearer ...）",
}


@pytest.mark.parametrize(
    ("case", "method"),
    [
        pytest.param(
            case,
            method,
            marks=[],
        )
        for case in CREDENTIAL_CASES
        for method in METHODS
    ],
)
def test_credentials_that_are_not_valid_answer_401(
    live: Live, api: TestClient, case: str, method: str
) -> None:
    consumer, token = live.consumer()
    live.grant(consumer, GRANTED, METHODS)
    hdrs = headers(token)
    if case == "revoked":
        _revoke(live, token)
    elif case == "expired":
        _expire(live, token)
    elif case == "bad_token":
        hdrs = headers("not-a-credential")
    elif case == "other_secret":  # a real key id with a forged secret
        prefix, key_id, _secret = token.split("_", 2)
        hdrs = headers(f"{prefix}_{key_id}_{'A' * 43}")
    else:
        hdrs = {"Authorization": f"Basic {token}", "X-Govshare-User": "%E5%BC%A0%E4%B8%89"}
    before = last_seq(live)
    r = call(api, live.service_id, method, body(method, 3, False), hdrs)
    reason = CREDENTIAL_CASES[case]
    if method == "batch" and case == "no_bearer":
        # the batch endpoint also serves logged-in users: without a credential it asks for
        # a login (an anonymous web request is not a data-service call: not audited)
        reason = "请先登录"
    assert r.status_code == 401, r.text
    assert r.json()["error"]["message"] == reason
    assert "李" not in r.text
    # no consumer is known: audited only, as an anonymous actor
    assert ledger_rows(live, consumer) == []
    if method == "batch" and case == "no_bearer":
        return
    with live.session() as s:
        entries = list(
            s.scalars(
                select(AuditEntry).where(
                    AuditEntry.seq > before,
                    AuditEntry.action == f"dataservices:call:{method}",
                )
            )
        )
    assert len(entries) == 1, [e.details for e in entries]
    entry = entries[0]
    assert entry.actor_type == "anonymous"
    assert entry.actor_id is None
    assert entry.department_id is None
    assert entry.target_type == "data_service"
    assert entry.target_id == str(live.service_id)
    details = json.loads(entry.details)
    assert details["outcome"] == "refused"
    assert details["reason"] == reason
    assert details["call_id"]


# ---------------------------------------------------------------- services and headers


WITHDRAW_REASON = "测试停用：接口迁移至新服务"


@pytest.fixture(scope="module")
def withdrawn_service(live: Live) -> int:
    """A second service of the live entry, withdrawn (grants are per entry: still active)."""
    with live.session() as s:
        svc = ds_service.publish(
            s,
            live.operator,
            entry_id=live.entry_id,
            name="户籍人口核验（旧版）",
            methods=METHODS,
        )
        s.flush()
        ds_service.withdraw(s, live.operator, svc, WITHDRAW_REASON)
        s.commit()
        service_id = svc.id
    gw.forget_all()
    return service_id


@pytest.mark.parametrize("method", METHODS)
def test_withdrawn_service_answers_410(
    live: Live, api: TestClient, withdrawn_service: int, method: str
) -> None:
    consumer, token = live.consumer()
    live.grant(consumer, GRANTED, METHODS)
    r = call(api, withdrawn_service, method, body(method, 4, False), headers(token))
    assert_refused(
        live,
        consumer,
        method,
        r,
        410,
        "service_withdrawn",
        f"共享服务已停用：{WITHDRAW_REASON}",
        service_id=withdrawn_service,
    )


@pytest.mark.parametrize("method", METHODS)
def test_unknown_service_answers_404(live: Live, api: TestClient, method: str) -> None:
    consumer, token = live.consumer()
    live.grant(consumer, GRANTED, METHODS)
    with live.session() as s:
        missing = int(s.scalar(select(func.max(DataService.id))) or 0) + 1000
    r = call(api, missing, method, body(method, 4, False), headers(token))
    assert_refused(live, consumer, method, r, 404, "not_found", "共享服务不存在", service_id=None)


@pytest.mark.parametrize("method", METHODS)
def test_missing_user_header_answers_422(live: Live, api: TestClient, method: str) -> None:
    consumer, token = live.consumer()
    live.grant(consumer, GRANTED, METHODS)
    r = call(
        api,
        live.service_id,
        method,
        body(method, 4, False),
        {"Authorization": f"Bearer {token}"},
    )
    reason = "请在请求头 X-Govshare-User 中注明经办人（UTF-8 百分号编码）"
    assert r.status_code == 422, r.text
    assert r.json()["error"]["message"] == reason
    rows = ledger_rows(live, consumer)
    assert len(rows) == 1
    row = rows[0]
    assert (row.method, row.outcome, row.reason, row.calling_user) == (
        method,
        "refused",
        reason,
        "",
    )
    entry, details = audit_of(live, row)
    assert entry.action == f"dataservices:call:{method}"
    assert (details["call_id"], details["outcome"], details["reason"]) == (
        row.call_id,
        "refused",
        reason,
    )


# ---------------------------------------------------------------- changes take effect at once


def _grant(s: Any, grant_id: int) -> Grant:
    g = s.get(Grant, grant_id)
    assert g is not None
    return g


@pytest.mark.parametrize("method", METHODS)
def test_suspension_and_termination_take_effect_at_once(
    live: Live, api: TestClient, method: str
) -> None:
    consumer, token = live.consumer()
    grant_id = live.grant(consumer, GRANTED, METHODS)
    r = call(api, live.service_id, method, body(method, 8, False), headers(token))
    assert_allowed(live, consumer, grant_id, method, 8, r)

    with live.session() as s:
        grants.suspend(s, live.authority, _grant(s, grant_id), "发现超范围使用，暂停核查")
        s.commit()
    gw.forget_all()
    r = call(api, live.service_id, method, body(method, 8, False), headers(token))
    assert_refused(
        live,
        consumer,
        method,
        r,
        403,
        "permission_denied",
        "共享授权已被暂停：发现超范围使用，暂停核查",
        service_id=live.service_id,
    )

    with live.session() as s:
        grants.resume(s, live.authority, _grant(s, grant_id), "整改完成，恢复共享")
        s.commit()
    gw.forget_all()
    r = call(api, live.service_id, method, body(method, 9, False), headers(token))
    assert_allowed(live, consumer, grant_id, method, 9, r)

    with live.session() as s:
        grants.terminate(s, live.authority, _grant(s, grant_id), "违规向第三方提供，终止共享")
        s.commit()
    gw.forget_all()
    r = call(api, live.service_id, method, body(method, 9, False), headers(token))
    assert_refused(
        live,
        consumer,
        method,
        r,
        403,
        "permission_denied",
        "共享授权已被终止：违规向第三方提供，终止共享",
        service_id=live.service_id,
    )


# ---------------------------------------------------------------- quotas and rate limits


def _limit(live: Live, grant_id: int, *, rate: int | None, quota: int | None) -> None:
    with live.session() as s:
        ds_service.set_grant_limits(
            s, live.authority, _grant(s, grant_id), rate_per_minute=rate, daily_quota=quota
        )
        s.commit()
    gw.forget_all()


@pytest.mark.parametrize("method", ["query", "verification"])
def test_daily_quota_answers_429_with_retry_after(live: Live, api: TestClient, method: str) -> None:
    consumer, token = live.consumer()
    grant_id = live.grant(consumer, GRANTED, METHODS)
    _limit(live, grant_id, rate=None, quota=2)
    for n in (1, 2):
        r = call(api, live.service_id, method, body(method, n, False), headers(token))
        assert_allowed(live, consumer, grant_id, method, n, r)
    r = call(api, live.service_id, method, body(method, 3, False), headers(token))
    assert r.status_code == 429, r.text
    reason = "今日调用已达共享授权的日限额 2 次"
    assert r.json()["error"] == {"code": "quota_exceeded", "message": reason, "field": None}
    retry = int(r.headers["Retry-After"])
    assert 1 <= retry <= 24 * 3600
    assert "李" not in r.text
    assert_ledgered(
        live,
        consumer,
        method,
        "limited",
        reason,
        r,
        service_id=live.service_id,
        grant_id=grant_id,
    )
    # a limited call does not count as a served one: still limited, still ledgered
    r = call(api, live.service_id, method, body(method, 4, False), headers(token))
    assert r.status_code == 429
    outcomes = [row.outcome for row in ledger_rows(live, consumer)]
    assert outcomes == ["ok", "ok", "limited", "limited"]
    # raising the quota lets the consumer call again at once
    _limit(live, grant_id, rate=None, quota=3)
    r = call(api, live.service_id, method, body(method, 5, False), headers(token))
    assert_allowed(live, consumer, grant_id, method, 5, r)


@pytest.mark.parametrize("method", ["query", "verification"])
def test_rate_limit_answers_429_with_retry_after(live: Live, api: TestClient, method: str) -> None:
    consumer, token = live.consumer()
    grant_id = live.grant(consumer, GRANTED, METHODS)
    _limit(live, grant_id, rate=1, quota=None)
    r = call(api, live.service_id, method, body(method, 1, False), headers(token))
    assert_allowed(live, consumer, grant_id, method, 1, r)
    r = call(api, live.service_id, method, body(method, 2, False), headers(token))
    assert r.status_code == 429, r.text
    reason = "调用过于频繁：共享授权限每分钟 1 次"
    assert r.json()["error"] == {"code": "rate_limited", "message": reason, "field": None}
    assert int(r.headers["Retry-After"]) >= 1
    assert_ledgered(
        live,
        consumer,
        method,
        "limited",
        reason,
        r,
        service_id=live.service_id,
        grant_id=grant_id,
    )


def test_daily_quota_holds_in_a_worker_that_has_not_served_the_grant(
    live: Live, api: TestClient
) -> None:
    consumer, token = live.consumer()
    grant_id = live.grant(consumer, GRANTED, METHODS)
    _limit(live, grant_id, rate=None, quota=2)
    for n in (1, 2):
        r = call(
            api, live.service_id, "verification", body("verification", n, False), headers(token)
        )
        assert r.status_code == 200, r.text
    with live.session() as s:
        assert ds_service.calls_today(s, grant_id) == 2
    # what a freshly started worker process knows of today's calls: nothing in memory
    ledger.writer(live.engine).counts.values.clear()
    gw.forget_all()
    r = call(api, live.service_id, "verification", body("verification", 3, False), headers(token))
    assert r.status_code == 429, "a third call past the daily quota of 2 was served"
