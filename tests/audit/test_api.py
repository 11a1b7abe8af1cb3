"""The audit JSON API: listing with filters, verify, purge, checkpoints; who may do what."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.audit import service
from govshare.audit.models import AuditEntry
from govshare.db import utcnow
from govshare.permissions import Role
from tests.audit.conftest import add_entries, clock, tamper
from tests.conftest import Factory, login


def actions(db: Session) -> list[str]:
    db.expire_all()
    return list(db.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))


def local_day(days_ago: int) -> str:
    return str((utcnow() - timedelta(days=days_ago)).astimezone(service.LOCAL_TZ).date())


@pytest.fixture
def authority(client: TestClient, chain: Session, factory: Factory) -> TestClient:
    login(client, factory.user(Role.AUTHORITY).username)
    return client


def test_anonymous_is_asked_to_log_in(client: TestClient) -> None:
    r = client.get("/api/v1/audit/entries")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "not_authenticated"


def test_authority_lists_entries_newest_first_with_every_field(
    authority: TestClient, chain: Session
) -> None:
    add_entries(chain, 3, details={"字段": ["姓名"], "n": 1})
    r = authority.get("/api/v1/audit/entries")
    assert r.status_code == 200, r.text
    body = r.json()
    items = body["items"]
    assert [i["seq"] for i in items] == sorted((i["seq"] for i in items), reverse=True)
    assert items[0]["action"] == "orgs:user:update"
    assert items[0]["details"] == {"字段": ["姓名"], "n": 1}
    assert items[-1]["action"] == "orgs:session:login"  # the log-in itself came first
    assert set(items[0]) == {
        "seq",
        "occurred_at",
        "actor_type",
        "actor_id",
        "actor_name",
        "role",
        "department_id",
        "action",
        "target_type",
        "target_id",
        "ip",
        "details",
        "prev_hash",
        "hash",
    }
    assert items[0]["prev_hash"] == items[1]["hash"]
    assert len(items[0]["hash"]) == 64
    assert (body["page"], body["per_page"], body["has_next"]) == (1, 50, False)


def test_pages(authority: TestClient, chain: Session) -> None:
    add_entries(chain, 5)  # plus the log-in: 6 entries
    first = authority.get("/api/v1/audit/entries", params={"per_page": 4}).json()
    second = authority.get("/api/v1/audit/entries", params={"per_page": 4, "page": 2}).json()
    assert [i["seq"] for i in first["items"]] == [6, 5, 4, 3]
    assert first["has_next"] is True
    assert [i["seq"] for i in second["items"]] == [2, 1]
    assert second["has_next"] is False


def test_filters(
    authority: TestClient, chain: Session, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    officer = factory.principal(factory.user(Role.DEPT_OFFICER))
    with clock(monkeypatch, utcnow() - timedelta(days=10)):
        add_entries(chain, 2, action="rules:calendar:edit", target_type="calendar_day")
    add_entries(chain, 3, actor=officer, action="orgs:contact:file", target_type="contact")
    add_entries(chain, 1, action="orgs:user:create")

    def listed(**params: object) -> list[str]:
        r = authority.get("/api/v1/audit/entries", params=params)
        assert r.status_code == 200, r.text
        return [f"{i['action']}#{i['target_id']}" for i in r.json()["items"]]

    contacts = [f"orgs:contact:file#{i}" for i in (3, 2, 1)]
    assert listed(action="orgs:contact:") == contacts
    assert listed(action="rules:") == ["rules:calendar:edit#2", "rules:calendar:edit#1"]
    assert listed(action="orgs:user:") == ["orgs:user:create#1"]
    assert listed(actor=officer.name[2:]) == listed(department_id=officer.department_id)
    assert len(listed(department_id=officer.department_id)) == 3
    assert listed(target_type="contact", target_id="2") == ["orgs:contact:file#2"]
    assert listed(until=local_day(5)) == ["rules:calendar:edit#2", "rules:calendar:edit#1"]
    assert "rules:calendar:edit#1" not in listed(since=local_day(1))
    assert listed(since=local_day(11), until=local_day(9), action="rules:") == [
        "rules:calendar:edit#2",
        "rules:calendar:edit#1",
    ]
    assert listed(action="orgs:user:%") == []  # LIKE wildcards are literal


@pytest.mark.parametrize(
    "params",
    [
        {"per_page": 201},
        {"page": 0},
        {"since": "2026-02-30"},
        {"since": "2026-03-02", "until": "2026-03-01"},
    ],
)
def test_bad_filters_are_refused(authority: TestClient, params: dict[str, object]) -> None:
    r = authority.get("/api/v1/audit/entries", params=params)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_failed"


def test_verify_reports_the_count_and_is_itself_audited(
    authority: TestClient, chain: Session
) -> None:
    add_entries(chain, 4)
    r = authority.post("/api/v1/audit/verify")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "ok": True,
        "checked": 5,  # the log-in and the four entries
        "first_bad_seq": None,
        "reason": "",
        "checkpoint_seq": None,
    }
    last = chain.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
    assert last is not None
    assert last.action == "audit:log:verify"
    assert '"checked":5' in last.details
    assert '"ok":true' in last.details
    assert service.verify(chain).checked == 6


def test_verify_reports_the_first_altered_entry(authority: TestClient, chain: Session) -> None:
    add_entries(chain, 4)
    tamper(chain, "UPDATE audit_entries SET actor_name = '别人' WHERE seq = 3")
    r = authority.post("/api/v1/audit/verify")
    body = r.json()
    assert r.status_code == 200
    assert (body["ok"], body["first_bad_seq"], body["checked"]) == (False, 3, 2)
    assert "第 3 条" in body["reason"]


def test_dept_officer_is_refused_and_the_refusal_is_audited(
    client: TestClient, chain: Session, factory: Factory
) -> None:
    officer = factory.user(Role.DEPT_OFFICER)
    login(client, officer.username)
    r = client.get("/api/v1/audit/entries")
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "permission_denied"
    assert client.post("/api/v1/audit/verify").status_code == 403
    assert client.post("/api/v1/audit/purge", json={"before": "2020-01-01"}).status_code == 403
    assert client.get("/api/v1/audit/checkpoints").status_code == 403
    denied = chain.scalars(
        select(AuditEntry).where(AuditEntry.action == "orgs:access:denied").order_by(AuditEntry.seq)
    ).all()
    assert [(d.target_id, d.actor_id) for d in denied] == [
        ("/api/v1/audit/entries", officer.id),
        ("/api/v1/audit/verify", officer.id),
        ("/api/v1/audit/purge", officer.id),
        ("/api/v1/audit/checkpoints", officer.id),
    ]
    assert '"method":"GET"' in denied[0].details
    assert service.verify(chain).ok


def test_operator_can_verify_but_not_read_or_purge(
    client: TestClient, chain: Session, factory: Factory
) -> None:
    login(client, factory.user(Role.OPERATOR).username)
    assert client.get("/api/v1/audit/entries").status_code == 403
    r = client.post("/api/v1/audit/verify")
    assert r.status_code == 200
    assert r.json()["ok"] is True
    assert client.post("/api/v1/audit/purge", json={"before": "2020-01-01"}).status_code == 403
    assert actions(chain)[-3:] == ["orgs:access:denied", "audit:log:verify", "orgs:access:denied"]


def test_purge_refuses_inside_retention_and_purges_only_a_prefix(
    authority: TestClient, chain: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    with clock(monkeypatch, utcnow() - timedelta(days=400)):
        add_entries(chain, 3)
    policy = authority.get("/api/v1/audit/purge-policy").json()
    assert policy["retention_months"] == 6
    too_late = authority.post("/api/v1/audit/purge", json={"before": local_day(30)})
    assert too_late.status_code == 422
    assert "至少保留 6 个月" in too_late.json()["error"]["message"]
    assert too_late.json()["error"]["field"] == "before"
    r = authority.post("/api/v1/audit/purge", json={"before": policy["latest_before"]})
    assert r.status_code == 200, r.text
    body = r.json()
    # the log-in (seq 1) is recent, so nothing older precedes it: only a prefix is purged
    assert body["purged"] == 0
    assert body["checkpoint"] is None
    assert body["message"] == "没有需要清理的日志"


def test_purge_through_the_api_leaves_a_listed_checkpoint(
    client: TestClient, chain: Session, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    with clock(monkeypatch, utcnow() - timedelta(days=400)):
        add_entries(chain, 3)
    login(client, factory.user(Role.AUTHORITY).username)
    r = client.post("/api/v1/audit/purge", json={"before": local_day(200)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["purged"] == 3
    assert body["checkpoint"]["last_seq"] == 3
    cps = client.get("/api/v1/audit/checkpoints").json()
    assert [(c["last_seq"], c["entries_purged"]) for c in cps] == [(3, 3)]
    assert cps[0]["hash"] == body["checkpoint"]["hash"]
    v = client.post("/api/v1/audit/verify").json()
    assert v["ok"] is True
    assert v["checkpoint_seq"] == 3
    assert v["checked"] == 2  # the log-in and the purge
    bad = client.post("/api/v1/audit/purge", json={"before": "not-a-date"})
    assert bad.status_code == 422


@pytest.mark.parametrize(
    "params",
    [
        {"since": "0001-01-01"},
        {"until": "9999-12-31"},
        {"department_id": str(10**20)},
        {"page": str(10**9)},
    ],
)
def test_extreme_filters_are_refused_not_crashed(
    authority: TestClient, params: dict[str, str]
) -> None:
    r = authority.get("/api/v1/audit/entries", params=params)
    assert r.status_code == 422, r.text


def test_extreme_purge_dates_are_refused(authority: TestClient) -> None:
    for before in ("0001-01-01", "9999-12-31"):
        r = authority.post("/api/v1/audit/purge", json={"before": before})
        assert r.status_code == 422, r.text


def test_nul_in_a_filter_is_refused(authority: TestClient) -> None:
    r = authority.get("/api/v1/audit/entries", params={"actor": "a\x00b"})
    assert r.status_code == 422
