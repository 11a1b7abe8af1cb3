"""Batch exchange: export jobs through the API, the runner thread, files, manifests, the
usage ledger, refusals and recovery after a crash (committed ``live`` data on both DBs)."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook  # type: ignore[import-untyped]
from sqlalchemy import select, update

from govshare.audit.models import AuditEntry
from govshare.config import get_settings
from govshare.dataservices import exports
from govshare.dataservices import service as ds_service
from govshare.dataservices.models import ExportJob, UsageEntry
from govshare.db import utcnow
from govshare.ingestion.models import DataTable
from govshare.ingestion.tables import tables_for
from govshare.sharing import grants
from govshare.sharing.models import Grant
from govshare.signing import service as signing
from tests.dataservices.conftest import ROWS, Live, headers, person_key

DELETED = 7  # record marked deleted: never exported
#: rows 0-49 changed at 2021-06-01 00:00 Beijing, rows 50-99 a second before; others today
EDGE_DAY = date(2021, 6, 1)
EXPECTED_ALL = ROWS - 1
EXPECTED_SINCE_EDGE = EXPECTED_ALL - 50
EXPECTED_SINCE_TODAY = ROWS - 100


@dataclass
class Env:
    live: Live
    folder: Path
    consumer: int
    token: str
    grant_id: int


@contextmanager
def export_world(live: Live, folder: Path) -> Iterator[Env]:
    """Exports written under a temporary folder, a signing key, one record deleted, rows
    changed on known days, and a consumer holding a batch grant for two of three items."""
    mp = pytest.MonkeyPatch()
    mp.setenv("GOVSHARE_EXPORT_DIR", str(folder / "files"))
    mp.setenv("GOVSHARE_SIGNING_KEY_FILE", str(folder / "signing" / "sm2.pem"))
    get_settings.cache_clear()
    signing.generate_key()
    with live.session() as s:
        registry = s.get(DataTable, live.entry_id)
        assert registry is not None
        data, _history = tables_for(registry)
        key = data.c["id_number"]
        s.execute(
            update(data)
            .where(key.in_([person_key(n) for n in range(50)]))
            .values(_updated_at=datetime(2021, 5, 31, 16, 0, 0, tzinfo=UTC))
        )
        s.execute(
            update(data)
            .where(key.in_([person_key(n) for n in range(50, 100)]))
            .values(_updated_at=datetime(2021, 5, 31, 15, 59, 59, tzinfo=UTC))
        )
        s.execute(update(data).where(key == person_key(DELETED)).values(_deleted=True))
        s.commit()
    consumer, token = live.consumer()
    grant_id = live.grant(consumer, ["id_number", "name"], ["query", "batch"])
    try:
        yield Env(live, folder, consumer, token, grant_id)
    finally:
        exports.stop_runner()
        mp.undo()
        get_settings.cache_clear()


@pytest.fixture(scope="module")
def env(live: Live, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with export_world(live, tmp_path_factory.mktemp("exports")) as world:
        yield world


def wait_done(client: TestClient, job_id: int, token: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"/api/v1/dataservices/exports/{job_id}", headers=headers(token))
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        if body["status"] in ("done", "failed"):
            return body
        assert time.monotonic() < deadline, f"export {job_id} still {body['status']}"
        time.sleep(0.05)


def ask(client: TestClient, env: Env, token: str | None = None, **body: Any) -> Any:
    return client.post(
        f"/api/v1/dataservices/{env.live.service_id}/exports",
        json=body,
        headers=headers(token or env.token),
    )


def read_csv(content: bytes) -> list[list[str]]:
    assert content.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


def job_row(live: Live, job_id: int) -> ExportJob:
    with live.session() as s:
        job = s.get(ExportJob, job_id)
        assert job is not None
        return job


def test_csv_export_has_granted_items_only_and_no_deleted_record(env: Env) -> None:
    live = env.live
    with live.client() as client:
        r = ask(client, env, format="csv")
        assert r.status_code == 202, r.text
        created = r.json()
        assert created["status"] == "queued"
        assert created["purpose"] == "测试用途：核验申请人信息"
        assert r.headers["Location"] == f"/api/v1/dataservices/exports/{created['id']}"
        job = wait_done(client, created["id"], env.token)
        assert job["status"] == "done", job["error"]
        assert job["rows"] == EXPECTED_ALL
        assert job["signed"] is True
        assert job["error"] == ""

        got = client.get(job["links"]["download"], headers=headers(env.token))
        assert got.status_code == 200
        assert got.headers["content-type"].startswith("text/csv")
        content = got.content
        table = read_csv(content)
        assert table[0] == ["公民身份号码", "姓名"]
        assert table[1] == ["id_number", "name"]
        data = table[2:]
        assert len(data) == EXPECTED_ALL
        assert all(len(row) == 2 for row in data)
        keys = {row[0] for row in data}
        assert person_key(DELETED) not in keys
        assert person_key(8) in keys
        assert [row[1] for row in data if row[0] == person_key(8)] == ["李8"]
        assert "人民路" not in content.decode("utf-8-sig")  # address was not granted

        sm3 = signing.Sm3Stream(content).hexdigest()
        assert job["sm3"] == sm3
        envelope = job["manifest"]
        document = envelope["document"]
        assert document["sm3"] == sm3
        assert document["rows"] == EXPECTED_ALL
        assert document["size"] == len(content)
        assert document["export_id"] == job["id"]
        assert document["grant_id"] == env.grant_id
        assert document["purpose"] == "测试用途：核验申请人信息"
        assert document["approved_by"] == "测试审核人"
        assert document["items"] == [
            {"field": "id_number", "name": "公民身份号码"},
            {"field": "name", "name": "姓名"},
        ]
        assert document["since"] is None
        assert signing.verify_data(envelope, sm3=sm3, size=len(content)).valid

        # the manifest as a download: next to the file, `govshare verify-signature` checks it
        m = client.get(job["links"]["manifest"], headers=headers(env.token))
        assert m.status_code == 200
        name = job["file_name"]
        assert name == f"export-{job['id']}-{name.split('-', 2)[2]}"
        assert f'filename="{name}.manifest.json"' in m.headers["content-disposition"]
        target = env.folder / "received"
        target.mkdir()
        (target / name).write_bytes(content)
        (target / (name + ".manifest.json")).write_bytes(m.content)
        outcome = signing.verify_file(target / name)
        assert outcome.valid, outcome.message
        assert outcome.rows == EXPECTED_ALL
        (target / name).write_bytes(content.replace("李8".encode(), "李9".encode()))
        assert not signing.verify_file(target / name).valid

    with live.session() as s:
        rows = list(s.scalars(select(UsageEntry).where(UsageEntry.export_id == job["id"])))
        assert len(rows) == 1  # one ledger row per delivery, however often downloaded
        led = rows[0]
        assert led.method == "batch"
        assert led.outcome == "ok"
        assert led.volume == EXPECTED_ALL
        assert led.items == ["id_number", "name"]
        assert led.grant_id == env.grant_id
        assert led.consumer_department_id == env.consumer
        assert led.calling_user == "张三"
        assert led.calling_system == "测试业务系统"
        assert led.purpose == "测试用途：核验申请人信息"
        entry = s.scalar(select(AuditEntry).where(AuditEntry.seq == led.audit_seq))
        assert entry is not None
        assert entry.action == "dataservices:call:batch"
        assert json.loads(entry.details)["export_id"] == job["id"]
        downloads = list(
            s.scalars(
                select(AuditEntry).where(
                    AuditEntry.action == "dataservices:export:download",
                    AuditEntry.target_id == str(job["id"]),
                )
            )
        )
        assert len(downloads) == 1
        assert json.loads(downloads[0].details)["sm3"] == sm3
        created_audit = s.scalar(
            select(AuditEntry).where(
                AuditEntry.action == "dataservices:export:create",
                AuditEntry.target_id == str(job["id"]),
            )
        )
        assert created_audit is not None
    assert job_row(live, job["id"]).downloads == 1
    # the file is where the settings say, named after the job and the entry code
    assert (get_settings().resolved_export_dir() / name).read_bytes() == content


def test_xlsx_export_reads_back_with_the_right_rows(env: Env) -> None:
    with env.live.client() as client:
        r = ask(client, env, format="xlsx", items=["name"])
        assert r.status_code == 202, r.text
        job = wait_done(client, r.json()["id"], env.token)
        assert job["status"] == "done", job["error"]
        assert job["file_name"].endswith(".xlsx")
        got = client.get(job["links"]["download"], headers=headers(env.token))
        assert got.status_code == 200
        assert "spreadsheetml" in got.headers["content-type"]
        assert signing.Sm3Stream(got.content).hexdigest() == job["sm3"]
        assert job["manifest"]["document"]["sm3"] == job["sm3"]
        assert job["size"] == len(got.content)
    wb = load_workbook(io.BytesIO(got.content), read_only=True)
    sheet = wb.worksheets[0]
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert values[0] == ["姓名"]
    assert values[1] == ["name"]
    assert len(values) - 2 == EXPECTED_ALL == job["rows"]
    names = {row[0] for row in values[2:]}
    assert f"李{DELETED}" not in names
    assert "李199" in names


def test_since_exports_rows_changed_on_or_after_the_beijing_day(env: Env) -> None:
    with env.live.client() as client:
        edge = ask(client, env, since=EDGE_DAY.isoformat())
        today = ask(
            client, env, since=datetime.now(UTC).astimezone(exports.LOCAL_TZ).date().isoformat()
        )
        everything = ask(client, env)
        jobs = [wait_done(client, r.json()["id"], env.token) for r in (edge, today, everything)]
        assert [j["rows"] for j in jobs] == [
            EXPECTED_SINCE_EDGE,
            EXPECTED_SINCE_TODAY,
            EXPECTED_ALL,
        ]
        content = client.get(jobs[0]["links"]["download"], headers=headers(env.token)).content
    keys = {row[0] for row in read_csv(content)[2:]}
    assert person_key(0) in keys  # changed at 00:00 Beijing on the day
    assert person_key(60) not in keys  # a second before
    assert person_key(150) in keys
    assert jobs[0]["manifest"]["document"]["since"] == EDGE_DAY.isoformat()


def _refused_row(live: Live, consumer: int) -> UsageEntry:
    with live.session() as s:
        row = s.scalar(
            select(UsageEntry)
            .where(UsageEntry.consumer_department_id == consumer)
            .order_by(UsageEntry.id.desc())
        )
        assert row is not None
        entry = s.scalar(select(AuditEntry).where(AuditEntry.seq == row.audit_seq))
        assert entry is not None
        assert entry.action == "dataservices:call:batch"
        return row


def test_refused_without_a_batch_grant_is_ledgered_and_audited(env: Env) -> None:
    live = env.live
    no_batch, no_batch_token = live.consumer()
    live.grant(no_batch, ["id_number", "name"], ["query", "verification"])
    nothing, nothing_token = live.consumer()
    suspended, suspended_token = live.consumer()
    live.grant(suspended, ["id_number", "name"], ["batch"], status="suspended")
    with live.client() as client:
        r = ask(client, env, token=no_batch_token)
        assert r.status_code == 403
        assert "批量交换" in r.json()["error"]["message"]
        row = _refused_row(live, no_batch)
        assert (row.outcome, row.method, row.export_id) == ("refused", "batch", None)
        assert "批量交换" in row.reason

        r = ask(client, env, token=nothing_token)
        assert r.status_code == 403
        assert "没有该资源的共享授权" in r.json()["error"]["message"]
        assert _refused_row(live, nothing).outcome == "refused"

        r = ask(client, env, token=suspended_token)
        assert r.status_code == 403
        assert "暂停" in r.json()["error"]["message"]
        assert "暂停" in _refused_row(live, suspended).reason

        r = ask(client, env, items=["name", "address"])  # an item outside the grant
        assert r.status_code == 403
        assert "address" in r.json()["error"]["message"]
        row = _refused_row(live, env.consumer)
        assert row.outcome == "refused"
        assert row.items == ["name", "address"]

        r = client.post(
            f"/api/v1/dataservices/{live.service_id}/exports",
            json={},
            headers={"Authorization": f"Bearer {env.token}"},
        )
        assert r.status_code == 422
        assert "X-Govshare-User" in r.json()["error"]["message"]

        r = ask(client, env, format="pdf")
        assert r.status_code == 422

    with live.session() as s:
        assert (
            s.scalar(
                select(ExportJob).where(
                    ExportJob.consumer_department_id.in_([no_batch, nothing, suspended])
                )
            )
            is None
        )


def test_withdrawn_service_answers_410(env: Env) -> None:
    live = env.live
    with live.session() as s:
        svc = ds_service.publish(
            s, live.operator, entry_id=live.entry_id, name="批量交换专用", methods=["batch"]
        )
        ds_service.withdraw(s, live.operator, svc, "接口升级")
        s.commit()
        service_id = svc.id
    with live.client() as client:
        r = client.post(
            f"/api/v1/dataservices/{service_id}/exports", json={}, headers=headers(env.token)
        )
        assert r.status_code == 410
        assert "接口升级" in r.json()["error"]["message"]
        assert _refused_row(live, env.consumer).service_id == service_id
        r = client.post("/api/v1/dataservices/999999/exports", json={}, headers=headers(env.token))
        assert r.status_code == 404


def test_another_department_cannot_see_or_download(env: Env) -> None:
    live = env.live
    other, other_token = live.consumer()
    live.grant(other, ["id_number", "name"], ["batch"])
    with live.client() as client:
        job = wait_done(client, ask(client, env).json()["id"], env.token)
        base = f"/api/v1/dataservices/exports/{job['id']}"
        for path in (base, base + "/download", base + "/manifest"):
            r = client.get(path, headers=headers(other_token))
            assert r.status_code == 404, path
        listed = client.get("/api/v1/dataservices/exports", headers=headers(other_token))
        assert listed.status_code == 200
        assert job["id"] not in [j["id"] for j in listed.json()]
        mine = client.get("/api/v1/dataservices/exports", headers=headers(env.token)).json()
        assert job["id"] in [j["id"] for j in mine]
    assert job_row(live, job["id"]).downloads == 0


def test_download_refused_once_the_grant_is_suspended(env: Env) -> None:
    live = env.live
    consumer, token = live.consumer()
    grant_id = live.grant(consumer, ["name"], ["batch"])
    with live.client() as client:
        r = client.post(
            f"/api/v1/dataservices/{live.service_id}/exports", json={}, headers=headers(token)
        )
        assert r.status_code == 202, r.text
        job = wait_done(client, r.json()["id"], token)
        assert job["status"] == "done"
        with live.session() as s:
            g = s.get(Grant, grant_id)
            assert g is not None
            grants.suspend(s, live.authority, g, "发现超范围使用")
            s.commit()
        r = client.get(job["links"]["download"], headers=headers(token))
        assert r.status_code == 403
        assert "发现超范围使用" in r.json()["error"]["message"]


def _insert_job(live: Live, consumer: int, grant_id: int, **values: Any) -> int:
    with live.session() as s:
        job = ExportJob(
            service_id=live.service_id,
            grant_id=grant_id,
            consumer_department_id=consumer,
            requested_by="测试业务系统（key）",
            credential_id=1,
            calling_user="李四",
            file_format="csv",
            items=["name"],
            status=values.pop("status", "queued"),
            rows=0,
            size=0,
            sm3="",
            file_name="",
            error="",
            downloads=0,
            **values,
        )
        s.add(job)
        s.flush()
        job.file_name = exports.file_name_for(job.id, "TEST/01", "csv")
        s.commit()
        return job.id


def _wait_status(live: Live, job_id: int, timeout: float = 60) -> ExportJob:
    deadline = time.monotonic() + timeout
    while True:
        job = job_row(live, job_id)
        if job.status in ("done", "failed"):
            return job
        assert time.monotonic() < deadline, f"export {job_id} still {job.status}"
        time.sleep(0.05)


def test_grant_rechecked_when_the_job_starts(env: Env) -> None:
    live = env.live
    consumer, _token = live.consumer()
    grant_id = live.grant(consumer, ["name"], ["batch"], status="terminated")
    job_id = _insert_job(live, consumer, grant_id)
    exports.runner(live.engine).wake()
    job = _wait_status(live, job_id)
    assert job.status == "failed"
    assert "终止" in job.error
    assert not (get_settings().resolved_export_dir() / job.file_name).exists()
    with live.session() as s:
        row = s.scalar(select(UsageEntry).where(UsageEntry.export_id == job_id))
        assert row is not None
        assert (row.outcome, row.volume) == ("refused", 0)
        assert s.scalar(
            select(AuditEntry).where(
                AuditEntry.action == "dataservices:export:fail",
                AuditEntry.target_id == str(job_id),
            )
        )


def test_only_one_runner_claims_a_job(env: Env) -> None:
    live = env.live
    exports.stop_runner()
    job_id = _insert_job(live, env.consumer, env.grant_id)
    barrier = threading.Barrier(2)
    results: list[tuple[int, datetime] | None] = []

    def claim() -> None:
        barrier.wait()
        results.append(exports.claim_next(live.engine))

    threads = [threading.Thread(target=claim) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [r for r in results if r is not None]
    assert len(claimed) == 1
    assert claimed[0][0] == job_id
    assert job_row(live, job_id).status == "running"
    exports.run_job(live.engine, *claimed[0])
    job = job_row(live, job_id)
    assert job.status == "done", job.error
    assert job.rows == EXPECTED_ALL
    assert job.file_name == f"export-{job_id}-TEST_01.csv"


def test_stale_running_job_is_queued_again_at_start_up(env: Env) -> None:
    live = env.live
    exports.stop_runner()
    stale = _insert_job(live, env.consumer, env.grant_id)
    fresh = _insert_job(live, env.consumer, env.grant_id)
    with live.session() as s:
        s.execute(
            update(ExportJob)
            .where(ExportJob.id == stale)
            .values(status="running", started_at=utcnow() - timedelta(minutes=11))
        )
        s.execute(
            update(ExportJob)
            .where(ExportJob.id == fresh)
            .values(status="running", started_at=utcnow() - timedelta(minutes=1))
        )
        s.commit()
    exports.start_runner(live.engine)  # what the app's start-up does
    job = _wait_status(live, stale)
    assert job.status == "done", job.error
    assert job.rows == EXPECTED_ALL
    assert job_row(live, fresh).status == "running"  # may still be running elsewhere
    with live.session() as s:
        assert s.scalar(
            select(AuditEntry).where(
                AuditEntry.action == "dataservices:export:requeue",
                AuditEntry.target_id == str(stale),
            )
        )
        s.execute(update(ExportJob).where(ExportJob.id == fresh).values(status="failed"))
        s.commit()


def test_a_long_export_whose_runner_is_alive_is_not_taken_from_it(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runner writing a file marks its job alive as it goes; a job started long ago whose
    heartbeat is recent is left to its runner, one whose heartbeat stopped is queued again."""
    live = env.live
    exports.stop_runner()
    long_alive = _insert_job(live, env.consumer, env.grant_id)
    long_dead = _insert_job(live, env.consumer, env.grant_id)
    now = utcnow()
    with live.session() as s:
        for job_id, beat in ((long_alive, 1), (long_dead, 11)):
            s.execute(
                update(ExportJob)
                .where(ExportJob.id == job_id)
                .values(
                    status="running",
                    started_at=now - timedelta(minutes=30),
                    heartbeat_at=now - timedelta(minutes=beat),
                )
            )
        s.commit()
    requeued = exports.requeue_stale(live.engine)
    assert long_dead in requeued
    assert long_alive not in requeued
    assert job_row(live, long_alive).status == "running"
    with live.session() as s:  # neither is run here
        s.execute(
            update(ExportJob)
            .where(ExportJob.id.in_([long_alive, long_dead]))
            .values(status="failed")
        )
        s.commit()

    # the runner beats while it writes (here every 10 rows, at once)
    monkeypatch.setattr(exports, "HEARTBEAT_EVERY", 0.0)
    monkeypatch.setattr(exports, "HEARTBEAT_ROWS", 10)
    with live.client() as client:
        job = wait_done(client, ask(client, env, format="csv").json()["id"], env.token)
    done = job_row(live, job["id"])
    assert done.status == "done"
    assert done.started_at is not None
    assert done.heartbeat_at is not None
    assert done.heartbeat_at > done.started_at


def test_unsigned_manifest_when_no_signing_key(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSHARE_SIGNING_KEY_FILE", str(env.folder / "missing.pem"))
    get_settings.cache_clear()
    try:
        with env.live.client() as client:
            job = wait_done(client, ask(client, env).json()["id"], env.token)
            assert job["status"] == "done"
            assert "未签名" in job["error"]
            assert job["signed"] is False
            assert job["manifest"]["signature"] is None
            assert job["manifest"]["document"]["sm3"] == job["sm3"]
            got = client.get(job["links"]["download"], headers=headers(env.token))
            assert signing.Sm3Stream(got.content).hexdigest() == job["sm3"]
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_streaming_read_does_not_block_writers(env: Env) -> None:
    """An export reading its rows holds no write lock (SQLite: a WAL read outside
    BEGIN IMMEDIATE): the usage ledger and other writers go on while it streams."""
    live = env.live
    with live.session() as s:
        registry = s.get(DataTable, live.entry_id)
        assert registry is not None
        s.expunge(registry)
    rows = exports.stream_rows(live.engine, registry, ["id_number", "name"], None)
    try:
        first = next(rows)
        assert first[0] == person_key(0)
        job_id = _insert_job(live, env.consumer, env.grant_id, status="failed")  # a writer
        assert job_row(live, job_id).status == "failed"
        assert sum(1 for _ in rows) == EXPECTED_ALL - 1
    finally:
        rows.close()


def test_invalid_credential_is_audited_as_anonymous(env: Env) -> None:
    live = env.live
    with live.session() as s:
        before = s.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc())) or 0
    with live.client() as client:
        r = client.post(
            f"/api/v1/dataservices/{live.service_id}/exports",
            json={},
            headers=headers("gsk_nosuchkey_forged"),
        )
        assert r.status_code == 401
        assert r.json()["error"]["message"] == "应用凭证无效"
    with live.session() as s:
        entries = list(
            s.scalars(
                select(AuditEntry).where(
                    AuditEntry.seq > before, AuditEntry.action == "dataservices:call:batch"
                )
            )
        )
    assert [(e.actor_type, e.target_id) for e in entries] == [("anonymous", str(live.service_id))]
    assert json.loads(entries[0].details)["reason"] == "应用凭证无效"


def _parts(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.endswith(".part")]


def test_stopping_puts_a_running_export_back_in_the_queue(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = env.live
    exports.stop_runner()
    job_id = _insert_job(live, env.consumer, env.grant_id)
    claimed = exports.claim_next(live.engine)
    assert claimed is not None
    assert claimed[0] == job_id
    monkeypatch.setattr(exports, "CSV_FLUSH_ROWS", 10)
    stop = threading.Event()
    stop.set()  # the process is shutting down while the job runs
    exports.run_job(live.engine, *claimed, stop)
    job = job_row(live, job_id)
    assert (job.status, job.started_at) == ("queued", None)
    folder = get_settings().resolved_export_dir()
    assert not _parts(folder)
    assert not (folder / job.file_name).exists()
    exports.runner(live.engine).wake()  # the next runner produces it
    assert _wait_status(live, job_id).status == "done"


def test_failed_export_leaves_no_partial_file(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    live = env.live
    exports.stop_runner()
    job_id = _insert_job(live, env.consumer, env.grant_id)
    claimed = exports.claim_next(live.engine)
    assert claimed is not None
    monkeypatch.setattr(exports, "CSV_FLUSH_ROWS", 10)
    calls = [0]
    real = exports.csv_value

    def breaks(value: Any) -> str:
        calls[0] += 1
        if calls[0] > 50:
            raise OSError("磁盘已满")
        return real(value)

    monkeypatch.setattr(exports, "csv_value", breaks)
    exports.run_job(live.engine, *claimed)
    job = job_row(live, job_id)
    assert job.status == "failed"
    assert "磁盘已满" in job.error
    assert job.finished_at is not None
    folder = get_settings().resolved_export_dir()
    assert not _parts(folder)
    assert not (folder / job.file_name).exists()
    with live.session() as s:  # nothing was delivered: no ledger row of a delivery
        assert s.scalar(select(UsageEntry).where(UsageEntry.export_id == job_id)) is None
        assert s.scalar(
            select(AuditEntry).where(
                AuditEntry.action == "dataservices:export:fail",
                AuditEntry.target_id == str(job_id),
            )
        )


def test_a_runner_that_lost_its_job_does_not_deliver_it(env: Env) -> None:
    """A job re-queued while its first runner still worked (that process was thought dead)
    is delivered once, by the runner that holds it; the other one's file and ledger row are
    discarded."""
    live = env.live
    exports.stop_runner()
    job_id = _insert_job(live, env.consumer, env.grant_id)
    first = exports.claim_next(live.engine)
    assert first is not None
    assert exports.requeue_stale(live.engine, older_than=timedelta(0)) == [job_id]
    second = exports.claim_next(live.engine)
    assert second is not None
    assert second[0] == job_id
    assert second[1] != first[1]
    exports.run_job(live.engine, *second)
    done = job_row(live, job_id)
    assert done.status == "done"
    exports.run_job(live.engine, *first)  # the first runner finishes late
    again = job_row(live, job_id)
    assert (again.status, again.sm3, again.finished_at) == ("done", done.sm3, done.finished_at)
    folder = get_settings().resolved_export_dir()
    assert signing.hash_file(folder / done.file_name)[0] == done.sm3
    assert not _parts(folder)
    with live.session() as s:
        rows = list(s.scalars(select(UsageEntry).where(UsageEntry.export_id == job_id)))
        assert [(r.outcome, r.volume) for r in rows] == [("ok", EXPECTED_ALL)]


def finished_days_ago(live: Live, job_id: int, days: int) -> None:
    """Make a finished job look ``days`` days old."""
    with live.session() as s:
        s.execute(
            update(ExportJob)
            .where(ExportJob.id == job_id)
            .values(finished_at=utcnow() - timedelta(days=days))
        )
        s.commit()


def test_files_past_their_retention_are_deleted_and_the_job_says_so(env: Env) -> None:
    """A finished export's file is kept ``export_retention_days`` (7) and then deleted by
    the runner: the job, its manifest and its ledger rows stay, a download is refused with
    the reason, and the deletion is audited. A younger file stays."""
    live = env.live
    with live.client() as client:
        old = wait_done(client, ask(client, env, format="csv").json()["id"], env.token)
        young = wait_done(client, ask(client, env, format="csv").json()["id"], env.token)
        assert (old["status"], young["status"]) == ("done", "done")
        old_file = exports.export_path(job_row(live, old["id"]))
        young_file = exports.export_path(job_row(live, young["id"]))
        assert old_file.is_file()
        assert young_file.is_file()
        finished_days_ago(live, old["id"], 8)
        assert old["id"] in exports.expire_files(live.engine)
        assert not old_file.exists()
        assert young_file.is_file()
        expired = job_row(live, old["id"])
        assert expired.status == "expired"
        assert "7 天保存期限" in expired.error
        assert expired.sm3 == old["sm3"]
        assert expired.manifest is not None
        assert job_row(live, young["id"]).status == "done"

        r = client.get(old["links"]["download"], headers=headers(env.token))
        assert r.status_code == 409, r.text
        assert "7 天保存期限" in r.json()["error"]["message"]
        r = client.get(f"/api/v1/dataservices/exports/{old['id']}", headers=headers(env.token))
        assert (r.json()["status"], r.json()["status_label"]) == ("expired", "文件已过期删除")
        r = client.get(young["links"]["download"], headers=headers(env.token))
        assert r.status_code == 200
    with live.session() as s:
        entry = s.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "dataservices:export:expire",
                AuditEntry.target_id == str(old["id"]),
            )
        ).one()
        assert old["sm3"] in entry.details
    assert exports.expire_files(live.engine) == []  # once
