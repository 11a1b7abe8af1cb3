"""The calling examples of a service's page work: the curl commands shown to a consumer,
run as they are (with the consumer's credential, a real subject in place of the
placeholders, and the job id and file name the previous step answered), are answered with
the granted items; the signed answer and the exported file verify."""

from __future__ import annotations

import html
import json
import re
import shlex
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from govshare.config import get_settings
from govshare.dataservices.models import UsageEntry
from govshare.orgs.models import User
from govshare.permissions import Role
from govshare.security import hash_password
from govshare.signing import service as signing
from tests.conftest import TEST_PASSWORD, login
from tests.dataservices.conftest import ROWS, Live, person_key

EXAMPLE_KEY = "11010519491231002X"


@pytest.fixture
def signing_key(tmp_path: Path) -> Iterator[Path]:
    """A platform signing key and an export folder of this test's own."""
    mp = pytest.MonkeyPatch()
    mp.setenv("GOVSHARE_EXPORT_DIR", str(tmp_path / "exports"))
    mp.setenv("GOVSHARE_SIGNING_KEY_FILE", str(tmp_path / "signing" / "sm2.pem"))
    get_settings.cache_clear()
    signing.generate_key()
    try:
        yield tmp_path
    finally:
        mp.undo()
        get_settings.cache_clear()


def page_user(live: Live, department_id: int) -> str:
    username = f"ds_{uuid.uuid4().hex[:8]}"
    with live.session() as s:
        s.add(
            User(
                username=username,
                display_name="使用部门专员",
                password_hash=hash_password(TEST_PASSWORD),
                role=Role.DEPT_OFFICER.value,
                department_id=department_id,
            )
        )
        s.commit()
    return username


def curl_commands(page: str) -> list[str]:
    return [
        html.unescape(m)
        for m in re.findall(r'<pre[^>]*data-testid="curl"><code>(.*?)</code></pre>', page, re.S)
    ]


def signed_commands(page: str) -> list[str]:
    return [
        html.unescape(m)
        for m in re.findall(
            r'<pre[^>]*data-testid="signed-curl"><code>(.*?)</code></pre>', page, re.S
        )
    ]


class Shell:
    """Runs the page's curl commands through the test client, as a shell would: variables
    (``$GOVSHARE_TOKEN``, ``$JOB_ID``, ``$FILE``) substituted, ``-o`` written under
    ``folder``."""

    def __init__(self, client: TestClient, folder: Path, token: str) -> None:
        self.client = client
        self.folder = folder
        self.vars = {"GOVSHARE_TOKEN": token}

    def expand(self, text: str) -> str:
        for name, value in sorted(self.vars.items(), key=lambda kv: -len(kv[0])):
            text = text.replace("$" + name, value)
        return text

    def run(self, script: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """The one curl command of ``script`` (``NAME=<...>`` lines must be set already);
        ``body`` replaces the JSON of ``-d`` (the example with real values)."""
        lines = [ln for ln in script.split("\n") if ln and not re.match(r"^[A-Z_]+=", ln)]
        command = "\n".join(ln for ln in lines if ln.startswith(("curl", " ")))
        args = shlex.split(command.replace("\\\n", " "))
        assert args[:2] == ["curl", "-sS"]
        post = args[2:4] == ["-X", "POST"]
        url = self.expand(args[4] if post else args[2])
        headers: dict[str, str] = {}
        data: str | None = None
        out = ""
        for i, arg in enumerate(args):
            if arg == "-H":
                name, _, value = args[i + 1].partition(": ")
                headers[name] = self.expand(value)
            elif arg == "-d":
                data = args[i + 1]
            elif arg == "-o":
                out = self.expand(args[i + 1])
        if body is not None:
            assert data is not None
            data = json.dumps(body, ensure_ascii=False)
        path = url.removeprefix("http://testserver")
        if post:
            r = self.client.post(path, headers=headers, content=data)
        else:
            r = self.client.get(path, headers=headers)
        if out and r.status_code == 200:
            (self.folder / out).write_bytes(r.content)
        return r


def example_body(script: str) -> dict[str, Any]:
    command = script.replace("\\\n", " ")
    args = shlex.split(command.split("\n")[-1] if "\n" in command else command)
    return json.loads(args[args.index("-d") + 1])  # type: ignore[no-any-return]


def test_the_examples_of_the_page_are_answered(
    live: Live, signing_key: Path, tmp_path: Path
) -> None:
    consumer, token = live.consumer()
    grant_id = live.grant(
        consumer, ["id_number", "name", "address"], ["verification", "query", "batch"]
    )
    username = page_user(live, consumer)
    with live.client() as client:
        login(client, username)
        page = client.get(f"/dataservices/{live.service_id}")
        assert page.status_code == 200, page.text
        examples = curl_commands(page.text)
        signed = signed_commands(page.text)
        shown = re.findall(
            r'data-testid="response-example"><code>(.*?)</code>', html.unescape(page.text), re.S
        )
        client.headers.pop("X-CSRF-Token")
        client.cookies.clear()  # a business system calls with its credential, not a session
        shell = Shell(client, tmp_path, token)

        # verification: the example's claims, with a real subject and values
        verify = next(c for c in examples if f"/dataservices/{live.service_id}/verify'" in c)
        body = example_body(verify)
        assert body["key"] == EXAMPLE_KEY
        assert set(body["claims"]) == {"name", "address"}
        real = {"key": person_key(9), "claims": {"name": "李9", "address": "别处"}}
        answer = shell.run(verify, real)
        assert answer.status_code == 200, answer.text
        got = answer.json()
        assert got["results"] == {"name": "match", "address": "no_match"}
        assert got["meta"]["grant_id"] == grant_id
        assert set(json.loads(shown[0])) == set(got)
        assert set(json.loads(shown[0])["meta"]) == set(got["meta"])

        # query: the example's shape is the answer's
        query = next(c for c in examples if f"/dataservices/{live.service_id}/query'" in c)
        assert example_body(query) == {"key": EXAMPLE_KEY}
        answer = shell.run(query, {"key": person_key(9)})
        assert answer.status_code == 200, answer.text
        got = answer.json()
        assert got["records"] == [
            {"id_number": person_key(9), "name": "李9", "address": "人民路9号"}
        ]
        example = json.loads(shown[1])
        assert set(example) == set(got)
        assert set(example["meta"]) == set(got["meta"])
        assert example["meta"]["grant_id"] == grant_id
        call_id = answer.headers["X-Govshare-Call-Id"]

        # the signed answer (?signed=1) is saved with -o and verifies
        signed_query = next(c for c in signed if "/query?signed=1'" in c)
        assert signed_query.endswith("govshare verify-signature answer.json")
        answer = shell.run(signed_query, {"key": person_key(9)})
        assert answer.status_code == 200, answer.text
        assert answer.json()["document"]["records"] == got["records"]
        outcome = signing.verify_file(tmp_path / "answer.json")
        assert outcome.valid, outcome.message

        # batch exchange: submit, poll, download the file and the manifest, verify
        steps = [c for c in examples if "/exports" in c]
        assert len(steps) == 4
        created = shell.run(steps[0])
        assert created.status_code == 202, created.text
        shell.vars["JOB_ID"] = str(created.json()["id"])
        deadline = time.monotonic() + 60
        while True:
            job = shell.run(steps[1])
            assert job.status_code == 200, job.text
            if job.json()["status"] in ("done", "failed") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert job.json()["status"] == "done", job.text
        assert job.json()["rows"] == ROWS
        shell.vars["FILE"] = job.json()["file_name"]
        assert shell.run(steps[2]).status_code == 200
        assert shell.run(steps[3]).status_code == 200
        assert steps[3].endswith('govshare verify-signature "$FILE"')
        outcome = signing.verify_file(tmp_path / job.json()["file_name"])
        assert outcome.valid, outcome.message
        assert outcome.rows == ROWS
    with live.session() as s:
        row = s.query(UsageEntry).filter_by(call_id=call_id).one()
        assert row.calling_user == "张三"  # the example's X-Govshare-User, decoded
        assert row.grant_id == grant_id
