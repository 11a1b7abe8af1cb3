"""What the gateway remembers between calls: today's date (until China's midnight), the grant
a call's items and method were allowed by (until the grants are read again or the day
changes), and the decoded user header."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from govshare.dataservices import gateway as gw
from govshare.db import china_today
from tests.dataservices.conftest import Live, headers, person_key


def test_today_changes_at_china_midnight(monkeypatch: pytest.MonkeyPatch) -> None:
    # 2026-03-01 15:59:59.5 UTC is 23:59:59.5 in Beijing; half a second later it is the 2nd
    before = datetime(2026, 3, 1, 15, 59, 59, 500_000, tzinfo=UTC).timestamp()
    today = gw._Today()
    monkeypatch.setattr(gw.time, "time", lambda: before)
    assert today() == date(2026, 3, 1)
    assert today.until == before + 0.5
    monkeypatch.setattr(gw.time, "time", lambda: before + 0.5)
    assert today() == date(2026, 3, 2)
    monkeypatch.setattr(gw.time, "time", lambda: before + 0.5 + 86_399.9)
    assert today() == date(2026, 3, 2)
    monkeypatch.setattr(gw.time, "time", lambda: before + 0.5 + 86_400)
    assert today() == date(2026, 3, 3)


def test_the_gateways_today_is_chinas() -> None:
    assert gw.china_today() == china_today()


def test_the_user_header_is_decoded_once_per_value() -> None:
    gw._USERS.clear()
    raw = b"%E5%BC%A0%E4%B8%89%00%0A"
    assert gw._user_from(raw) == "张三"
    assert gw._USERS[raw] == "张三"
    assert gw._user_from(b"%E6%9D%8E%E5%9B%9B") == "李四"


def test_a_grant_allowed_today_is_decided_again_tomorrow(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer, token = live.consumer()
    today = china_today()
    live.grant(consumer, ["id_number", "name"], ["verification"], ends_on=today)
    body = {"key": person_key(5), "claims": {"name": "李5"}}
    path = f"/api/v1/dataservices/{live.service_id}/verify"
    with live.client() as client:
        for _ in range(2):  # the second call is allowed by the remembered decision
            r = client.post(path, json=body, headers=headers(token))
            assert r.status_code == 200, r.text
            assert r.json()["results"] == {"name": "match"}
        # the same grants, still cached: the next day's calls are refused all the same
        monkeypatch.setattr(gw, "china_today", lambda: today + timedelta(days=1))
        r = client.post(path, json=body, headers=headers(token))
    assert r.status_code == 403, r.text
    assert "到期" in r.json()["error"]["message"]
