"""kill -9 under load: no response a client received is missing from the usage ledger.

The real server (uvicorn, one worker process, with its ledger writer process) serves the
live database; 16 client threads post verifications over keep-alive connections and record
every 200 response with its call id; after about 1.5 s of load (longer on a busy machine,
until a few hundred responses have been received) a process is killed with SIGKILL:

- the serving process: the writer process must then exit by itself;
- the writer process: the calls waiting for it answer 503, the server starts a new writer
  and serves again.

Every call id a client received with a 200 must then be in the usage ledger, with its audit
entry (the response is sent only after both are committed), and ``govshare audit verify``
must find the chain intact.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from govshare.audit.models import AuditEntry
from govshare.audit.service import verify_engine
from govshare.dataservices import gateway as gw
from govshare.dataservices import service as ds_service
from govshare.dataservices.models import UsageEntry
from govshare.sharing.models import Grant
from tests.conftest import run_cli
from tests.dataservices.conftest import ROWS, Live, person_key

THREADS = 16
LOAD_SECONDS = 1.5
MIN_RESPONSES = 100


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _writer_process(pid: int) -> int:
    """The server's one child: its usage ledger writer (uvicorn itself does not fork)."""
    children = _children(pid)
    assert len(children) == 1, f"expected one child, the ledger writer: {children}"
    assert "govshare.dataservices.ledger_process" in _cmdline(children[0])
    return children[0]


def _gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1]
        except (OSError, IndexError):
            return True
        if state == "Z":  # exited; its parent (killed) no longer reaps it
            return True
        time.sleep(0.05)
    return False


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def server(live: Live, tmp_path: Path) -> Iterator[Server]:
    port = _free_port()
    log = tmp_path / "uvicorn.log"
    env = os.environ | {
        "GOVSHARE_DATABASE_URL": live.url,
        "GOVSHARE_VAR_DIR": str(tmp_path / "var"),
        "GOVSHARE_SECRET_KEY": os.environ["GOVSHARE_SECRET_KEY"],
        "GOVSHARE_WORKERS": "1",
        "GOVSHARE_LEDGER_PROCESS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "govshare.main:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    srv = Server(proc, port, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"server exited at start-up:\n{srv.output()}"
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                resp = conn.getresponse()
                resp.read()
                conn.close()
                if resp.status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"server did not answer /healthz:\n{srv.output()}"
            time.sleep(0.1)
        yield srv
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@dataclass
class Client:
    """One load thread's keep-alive connection and what it received."""

    port: int
    token: str
    index: int
    stop: threading.Event
    killed: threading.Event
    ok: list[str] = field(default_factory=list)
    #: 503 ledger_unavailable: the writer process was killed while the call waited for it
    unavailable: list[str] = field(default_factory=list)
    other: list[tuple[int, str]] = field(default_factory=list)
    errors_before_kill: list[str] = field(default_factory=list)

    def run(self, service_id: int) -> None:
        path = f"/api/v1/dataservices/{service_id}/verify"
        headers = {
            "Authorization": f"Bearer {self.token}",
            "X-Govshare-User": quote(f"压测经办人{self.index}"),
            "Content-Type": "application/json",
        }
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        n = self.index
        try:
            while not self.stop.is_set():
                n = (n + THREADS) % ROWS
                payload = json.dumps(
                    {"key": person_key(n), "claims": {"name": f"李{n}"}}, ensure_ascii=False
                ).encode()
                try:
                    conn.request("POST", path, body=payload, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                except (OSError, http.client.HTTPException) as exc:
                    if not self.killed.is_set():
                        self.errors_before_kill.append(repr(exc))
                    return
                call_id = resp.getheader("X-Govshare-Call-Id")
                if (
                    resp.status == 200
                    and call_id
                    and json.loads(data)["results"] == {"name": "match"}
                ):
                    self.ok.append(call_id)
                elif resp.status == 503 and b"ledger_unavailable" in data:
                    self.unavailable.append(call_id or "")
                else:
                    self.other.append((resp.status, data.decode(errors="replace")[:300]))
        finally:
            conn.close()


def _grant(live: Live, consumer: int) -> int:
    grant_id = live.grant(consumer, ["id_number", "name"], ["verification"])
    with live.session() as s:
        grant = s.get(Grant, grant_id)
        assert grant is not None
        # no quota or rate limit gets in the way of the load
        ds_service.set_grant_limits(
            s, live.authority, grant, rate_per_minute=10**9, daily_quota=10**9
        )
        s.commit()
    gw.forget_all()
    return grant_id


def _load(clients: list[Client], at_least: int) -> None:
    """Let the clients run ``LOAD_SECONDS``, and on a busy machine until they have
    received ``at_least`` responses in all."""
    time.sleep(LOAD_SECONDS)
    deadline = time.monotonic() + 20
    while sum(len(c.ok) for c in clients) < at_least and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.parametrize("victim", ["server", "writer"])
def test_kill_9_under_load_loses_no_ledger_entry_of_a_sent_response(
    live: Live, server: Server, victim: str
) -> None:
    consumer, token = live.consumer()
    grant_id = _grant(live, consumer)
    stop, killed = threading.Event(), threading.Event()
    clients = [Client(server.port, token, i, stop, killed) for i in range(THREADS)]
    threads = [
        threading.Thread(target=c.run, args=(live.service_id,), name=f"load-{c.index}")
        for c in clients
    ]
    writer = _writer_process(server.proc.pid)
    for t in threads:
        t.start()
    _load(clients, 3 * MIN_RESPONSES)
    sent_before_kill = sum(len(c.ok) for c in clients)
    if victim == "server":
        killed.set()
        os.kill(server.proc.pid, signal.SIGKILL)
        assert server.proc.wait(timeout=10) == -signal.SIGKILL
        for t in threads:
            t.join(timeout=30)
        stop.set()
        with pytest.raises(ConnectionRefusedError):  # nobody serves any more
            socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
        # the writer commits what it was sent, sees its worker gone and exits
        assert _gone(writer, 15), "the ledger writer outlived its worker"
    else:
        os.kill(writer, signal.SIGKILL)
        assert _gone(writer, 10)
        served_at_kill = sum(len(c.ok) for c in clients)
        # the server starts a new writer and serves again
        _load(clients, served_at_kill + MIN_RESPONSES)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        new_writer = _writer_process(server.proc.pid)
        assert new_writer != writer
        assert sum(len(c.ok) for c in clients) >= served_at_kill + MIN_RESPONSES, (
            "the server did not serve again after its writer was killed"
        )
    assert not any(t.is_alive() for t in threads), "a client thread hung after the kill"

    errors = [e for c in clients for e in c.errors_before_kill]
    other = [o for c in clients for o in c.other]
    unavailable = [u for c in clients for u in c.unavailable]
    received = [cid for c in clients for cid in c.ok]
    print(
        f"\n{live.engine.dialect.name}, {victim} killed: {len(received)} responses received "
        f"({sent_before_kill} before the kill signal), {len(unavailable)} answered 503, "
        f"{len(other)} other, {len(errors)} errors before the kill"
    )
    assert errors == [], errors[:5]
    assert other == [], other[:5]
    # a call answers 503 only when it was waiting for the killed writer: at most one per
    # client
    assert len(unavailable) <= (THREADS if victim == "writer" else 0), unavailable[:5]
    assert len(received) > MIN_RESPONSES, "too little load to prove anything"
    assert len(set(received)) == len(received), "a call id was sent twice"

    found: dict[str, UsageEntry] = {}
    with live.session() as s:
        for i in range(0, len(received), 500):
            chunk = received[i : i + 500]
            for row in s.scalars(select(UsageEntry).where(UsageEntry.call_id.in_(chunk))):
                found[row.call_id] = row
        missing = [cid for cid in received if cid not in found]
        assert missing == [], f"{len(missing)} sent responses are not in the ledger"
        seqs = {row.audit_seq: row.call_id for row in found.values()}
        assert None not in seqs
        audited: dict[int, str] = {}
        keys = list(seqs)
        for i in range(0, len(keys), 500):
            for entry in s.scalars(select(AuditEntry).where(AuditEntry.seq.in_(keys[i : i + 500]))):
                assert entry.action == "dataservices:call:verification"
                audited[entry.seq] = json.loads(entry.details)["call_id"]
        assert audited == seqs, "a ledger row without its audit entry"
        by_outcome = s.execute(
            select(UsageEntry.outcome, func.count())
            .where(UsageEntry.grant_id == grant_id)
            .group_by(UsageEntry.outcome)
        ).all()
        outcomes = {outcome: int(n) for outcome, n in by_outcome}
    # only served calls were ledgered; some were committed but their response never left
    assert set(outcomes) == {"ok"}, outcomes
    assert outcomes["ok"] >= len(received)
    print(f"{outcomes['ok']} ledger rows, {outcomes['ok'] - len(received)} not answered")
    for row in found.values():
        assert row.outcome == "ok"
        assert row.grant_id == grant_id
        assert row.consumer_department_id == consumer
        assert row.calling_user.startswith("压测经办人")

    result = verify_engine(live.engine, workers=1)
    assert result.ok, result.reason
    cli = run_cli("audit", "verify", "--json", "--no-progress", url=live.url)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    report = json.loads(cli.stdout)
    assert report["ok"] is True
    assert report["checked"] >= len(received)
