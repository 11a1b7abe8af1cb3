"""Query and verification through the gateway: answers, ledger rows and audit entries."""

from __future__ import annotations

from sqlalchemy import select

from govshare.audit.models import AuditEntry
from govshare.dataservices.models import UsageEntry
from tests.dataservices.conftest import Live, headers, person_key


def test_verify_answers_per_item_and_is_ledgered(live: Live) -> None:
    consumer, token = live.consumer()
    grant_id = live.grant(consumer, ["id_number", "name", "address"], ["verification", "query"])
    with live.client() as client:
        r = client.post(
            f"/api/v1/dataservices/{live.service_id}/verify",
            json={"key": person_key(7), "claims": {"name": "李7", "address": "别处"}},
            headers=headers(token),
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["results"] == {"name": "match", "address": "no_match"}
        assert body["meta"]["grant_id"] == grant_id
        assert body["meta"]["purpose"] == "测试用途：核验申请人信息"
        assert "李7" not in r.text  # never the stored value
        call_id = r.headers["X-Govshare-Call-Id"]
    with live.session() as s:
        row = s.scalar(select(UsageEntry).where(UsageEntry.call_id == call_id))
        assert row is not None
        assert row.outcome == "ok"
        assert row.items == ["name", "address"]
        assert row.calling_user == "张三"
        assert row.approved_by == "测试审核人"
        assert person_key(7) not in row.subjects
        assert len(row.subjects) == 32
        entry = s.scalar(select(AuditEntry).where(AuditEntry.seq == row.audit_seq))
        assert entry is not None
        assert entry.action == "dataservices:call:verification"
        assert call_id in entry.details


def test_query_returns_only_granted_items(live: Live) -> None:
    consumer, token = live.consumer()
    live.grant(consumer, ["id_number", "name"], ["query"])
    with live.client() as client:
        r = client.post(
            f"/api/v1/dataservices/{live.service_id}/query",
            json={"keys": [person_key(3), person_key(4), "41130219600101999X"]},
            headers=headers(token),
        )
        assert r.status_code == 200, r.text
        records = r.json()["records"]
        assert sorted(rec["name"] for rec in records) == ["李3", "李4"]
        assert all(set(rec) == {"id_number", "name"} for rec in records)
        refused = client.post(
            f"/api/v1/dataservices/{live.service_id}/query",
            json={"key": person_key(3), "items": ["address"]},
            headers=headers(token),
        )
        assert refused.status_code == 403
        assert "address" in refused.json()["error"]["message"] or "住址" in refused.text


def test_control_characters_in_the_user_header_are_dropped(live: Live) -> None:
    """A percent-encoded NUL would be refused by PostgreSQL and fail the whole shared
    ledger commit; it is removed where the header is read."""
    consumer, token = live.consumer()
    live.grant(consumer, ["id_number", "name"], ["verification"])
    with live.client() as client:
        r = client.post(
            f"/api/v1/dataservices/{live.service_id}/verify",
            json={"key": person_key(5), "claims": {"name": "李5"}},
            headers=headers(token, user="%00%E5%BC%A0%0A%E4%B8%89"),
        )
        assert r.status_code == 200, r.text
        call_id = r.headers["X-Govshare-Call-Id"]
    with live.session() as s:
        row = s.scalar(select(UsageEntry).where(UsageEntry.call_id == call_id))
        assert row is not None
        assert row.calling_user == "张三"
