"""What the gateway remembers between calls: credentials, services and grants (read again in
the background near the end of their life), today's date (until China's midnight), the grant
a call's items and method were allowed by (until the grants are read again or the day
changes), and the decoded user header."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, date, datetime, timedelta

import pytest

from govshare.dataservices import gateway as gw
from govshare.db import china_today
from tests.dataservices.conftest import Live, headers, person_key


def test_today_changes_at_china_midnight() -> None:
    # 2026-03-01 15:59:59.5 UTC is 23:59:59.5 in Beijing; half a second later it is the 2nd
    before = datetime(2026, 3, 1, 15, 59, 59, 500_000, tzinfo=UTC).timestamp()
    now = [before]
    today = gw._Today(lambda: now[0])
    assert today() == date(2026, 3, 1)
    assert today.until == before + 0.5
    now[0] = before + 0.5
    assert today() == date(2026, 3, 2)
    now[0] = before + 0.5 + 86_399.9
    assert today() == date(2026, 3, 2)
    now[0] = before + 0.5 + 86_400
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


def _clock(gate: gw.Gateway, start: float) -> list[float]:
    now = [start]
    gate.clock = lambda: now[0]
    return now


def test_a_value_near_the_end_of_its_life_is_read_again_in_the_background(live: Live) -> None:
    gate = gw.Gateway(live.engine)
    ttl = gate.ttl
    now = _clock(gate, 1000.0)
    cache: dict[object, tuple[float, object]] = {}
    reads: list[tuple[str, bool]] = []
    loop_thread: list[int] = []

    def load() -> str:
        reads.append(("v", threading.get_ident() != loop_thread[0]))
        return f"v{len(reads)}"

    async def run() -> list[object]:
        loop_thread.append(threading.get_ident())
        got = [gate._cached(cache, "k", load)]  # read on the spot
        now[0] += ttl / 2
        got.append(gate._cached(cache, "k", load))  # fresh: no read
        now[0] += ttl / 4 + 0.01  # in its last quarter: used, and read again meanwhile
        got.append(gate._cached(cache, "k", load))
        got.append(gate._cached(cache, "k", load))  # the read under way is not repeated
        for _ in range(200):
            await asyncio.sleep(0.01)
            if cache["k"][1] == "v2":
                break
        got.append(gate._cached(cache, "k", load))
        return got

    try:
        got = asyncio.run(run())
    finally:
        if gate._refresher is not None:
            gate._refresher.shutdown()
    assert got == ["v1", "v1", "v1", "v1", "v2"]
    assert reads == [("v", False), ("v", True)]  # the second read was not on the loop
    # its life counts from when the background read began
    assert cache["k"][0] == pytest.approx(1000.0 + ttl * 3 / 4 + 0.01 + ttl)


def test_a_background_read_is_dropped_when_the_gateway_forgets_meanwhile(live: Live) -> None:
    gate = gw.Gateway(live.engine)
    now = _clock(gate, 1000.0)
    cache: dict[object, tuple[float, object]] = {}
    release = threading.Event()

    def load() -> str:
        if cache:  # the background read: wait until the gateway has forgotten
            release.wait(5)
            return "read before the change"
        return "first"

    async def run() -> None:
        gate._cached(cache, "k", load)
        now[0] += gate.ttl * 0.8
        assert gate._cached(cache, "k", load) == "first"
        gate.forget()  # e.g. a grant was suspended here
        cache["k"] = (now[0] + gate.ttl, "after the change")
        release.set()
        for _ in range(50):
            await asyncio.sleep(0.01)
        assert not gate._refreshing

    try:
        asyncio.run(run())
    finally:
        if gate._refresher is not None:
            gate._refresher.shutdown()
    assert cache["k"][1] == "after the change"


def test_without_an_event_loop_an_expired_value_is_read_on_the_spot(live: Live) -> None:
    gate = gw.Gateway(live.engine)
    now = _clock(gate, 1000.0)
    cache: dict[object, tuple[float, object]] = {}
    reads: list[int] = []

    def load() -> int:
        reads.append(1)
        return len(reads)

    assert gate._cached(cache, "k", load) == 1
    now[0] += gate.ttl * 0.9  # last quarter, but no loop to read it in the background
    assert gate._cached(cache, "k", load) == 1
    assert gate._refresher is None
    now[0] += gate.ttl * 0.2  # past its life
    assert gate._cached(cache, "k", load) == 2


def test_seconds_to_midnight_counts_to_chinas_next_midnight() -> None:
    left = gw.seconds_to_midnight()
    now = datetime.now(UTC).astimezone(gw.LOCAL_TZ)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), gw.LOCAL_TZ)
    assert 1 <= left <= 86_400
    assert abs(left - (midnight - now).total_seconds()) <= 2
