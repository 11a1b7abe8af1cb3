"""The ledger of real calls through the gateway: the calling system reads and exports its
department's calls, the authority traces a subject by the ID number the gateway hashed."""

from __future__ import annotations

import csv
import io
from urllib.parse import quote

from sqlalchemy import select

from govshare.audit.models import AuditEntry
from govshare.dataservices import usage
from govshare.dataservices.models import UsageEntry
from tests.dataservices.conftest import Live, headers, person_key


def test_real_calls_are_listed_exported_and_traced(live: Live) -> None:
    consumer, token = live.consumer("台账测试使用部门")
    live.grant(consumer, ["id_number", "name", "address"], ["verification", "query"])
    auth = {"Authorization": f"Bearer {token}"}
    with live.client() as client:
        r = client.post(
            f"/api/v1/dataservices/{live.service_id}/verify",
            json={"key": person_key(21), "claims": {"name": "李21"}},
            headers=headers(token),
        )
        assert r.status_code == 200, r.text
        verify_id = r.headers["X-Govshare-Call-Id"]
        r = client.post(
            f"/api/v1/dataservices/{live.service_id}/query",
            json={"keys": [person_key(22), person_key(23)], "items": ["name"]},
            headers=headers(token, quote("王五")),
        )
        assert r.status_code == 200, r.text
        query_id = r.headers["X-Govshare-Call-Id"]

        # the calling system reads its department's ledger, newest first
        mine = client.get("/api/v1/dataservices/ledger", headers=auth)
        assert mine.status_code == 200, mine.text
        items = mine.json()["items"]
        assert [c["call_id"] for c in items] == [query_id, verify_id]
        query_row, verify_row = items
        assert query_row["calling_user"] == "王五"
        assert query_row["item_names"] == ["姓名"]
        assert (query_row["subject_count"], query_row["volume"]) == (2, 2)
        assert verify_row["method_label"] == "数据核验"
        assert verify_row["approved_by"] == "测试审核人"
        assert verify_row["consumer"] == "台账测试使用部门"
        assert verify_row["service"] == "户籍人口核验与查询"
        # ... and nothing else
        assert client.get(
            "/api/v1/dataservices/ledger?view=provider", headers=auth
        ).status_code == (403)
        assert client.get("/api/v1/dataservices/stats", headers=auth).status_code == 403

        # the export is streamed from a session of its own, on the real engine
        export = client.get("/api/v1/dataservices/ledger.csv", headers=auth)
        assert export.status_code == 200, export.text
        rows = list(csv.reader(io.StringIO(export.content.decode("utf-8-sig"))))
        assert [row[0] for row in rows[1:]] == [query_id, verify_id]
        assert rows[1][12] == "姓名"
        assert rows[2][11] == "数据核验"

    # the authority finds the query by one of its ID numbers (as typed, lower-case x kept)
    with live.session() as s:
        f = usage.parse_filter(live.authority, {"view": "authority", "subject": person_key(22)})
        page = usage.list_calls(s, live.authority, f)
        assert [row.entry.call_id for row in page.rows] == [query_id]
        other = usage.parse_filter(live.authority, {"view": "authority", "subject": person_key(21)})
        assert [row.entry.call_id for row in usage.list_calls(s, live.authority, other).rows] == [
            verify_id
        ]
        s.commit()
        traces = list(
            s.scalars(
                select(AuditEntry).where(
                    AuditEntry.action == "dataservices:ledger:trace",
                    AuditEntry.target_id.in_([f.subject_hash, other.subject_hash]),
                )
            )
        )
        assert len(traces) == 2
        assert all(person_key(22) not in t.details for t in traces)
        stored = s.scalar(select(UsageEntry.subjects).where(UsageEntry.call_id == query_id))
        assert stored is not None
        assert usage.subject_hash(person_key(22)) in stored.split(",")
