"""The page 批量交换 (/dataservices/exports): asking for an export as a logged-in department
user, the jobs table polling while a job runs, downloads, refusals (committed data)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from govshare.dataservices import exports
from govshare.dataservices.models import ExportJob, UsageEntry
from govshare.orgs.models import Department, User
from govshare.permissions import Role
from tests.conftest import Factory, login
from tests.dataservices.conftest import Live, headers
from tests.dataservices.test_exports import (
    EXPECTED_ALL,
    Env,
    _insert_job,
    _wait_status,
    export_world,
    finished_days_ago,
    read_csv,
    wait_done,
)


@pytest.fixture(scope="module")
def env(live: Live, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with export_world(live, tmp_path_factory.mktemp("exports")) as world:
        yield world


def officer(live: Live, department_id: int, role: Role = Role.DEPT_OFFICER) -> tuple[str, str]:
    """A user of the department (made by the first test that asks): (username, name)."""
    username = f"exp_{department_id}_{role.value}"
    with live.session() as s:
        user = s.scalar(select(User).where(User.username == username))
        if user is None:
            dept = s.get(Department, department_id)
            assert dept is not None
            user = Factory(s).user(role, dept, username=username)
        return user.username, user.display_name


def test_department_user_asks_for_an_export_on_the_page(env: Env) -> None:
    live = env.live
    username, display = officer(live, env.consumer)
    with live.client() as client:
        login(client, username)
        page = client.get("/dataservices/exports")
        assert page.status_code == 200
        assert 'data-testid="export-form"' in page.text
        assert f'<option value="{live.service_id}"' in page.text
        assert "测试用途：核验申请人信息" in page.text  # the purpose of the grant

        r = client.post(
            "/dataservices/exports",
            data={"service_id": str(live.service_id), "file_format": "csv", "since": ""},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/dataservices/exports"
        with live.session() as s:
            row = s.scalar(
                select(ExportJob)
                .where(ExportJob.user_id.is_not(None))
                .order_by(ExportJob.id.desc())
            )
            assert row is not None
            job_id = row.id
            assert row.calling_user == display
        job = _wait_status(live, job_id)
        assert job.status == "done", job.error

        fragment = client.get("/dataservices/exports/jobs")
        assert fragment.status_code == 200
        assert f'data-testid="export-{job_id}"' in fragment.text
        assert "已完成" in fragment.text
        assert job.sm3 in fragment.text
        assert "测试用途：核验申请人信息" in fragment.text
        assert f'href="/dataservices/exports/{job_id}/download"' in fragment.text
        assert f'href="/dataservices/exports/{job_id}/manifest"' in fragment.text

        got = client.get(f"/dataservices/exports/{job_id}/download")
        assert got.status_code == 200
        assert len(read_csv(got.content)) - 2 == EXPECTED_ALL
        manifest = client.get(f"/dataservices/exports/{job_id}/manifest")
        assert manifest.status_code == 200
        assert manifest.json()["document"]["sm3"] == job.sm3
    with live.session() as s:
        led = s.scalar(select(UsageEntry).where(UsageEntry.export_id == job_id))
        assert led is not None
        assert led.calling_user == display
        assert led.calling_system == exports.WEB_SYSTEM
        assert led.volume == EXPECTED_ALL


def test_jobs_table_polls_while_a_job_is_queued(env: Env) -> None:
    live = env.live
    username, _display = officer(live, env.consumer, Role.DEPT_HEAD)
    with live.client() as client:  # (the app's start-up may start the runner)
        login(client, username)
        exports.stop_runner()
        job_id = _insert_job(live, env.consumer, env.grant_id)
        fragment = client.get("/dataservices/exports/jobs").text
        row = re.search(rf'data-testid="export-{job_id}".*?</tr>', fragment, re.S)
        assert row is not None
        assert "排队中" in row.group(0)
        assert 'hx-trigger="every 3s"' in fragment
        exports.runner(live.engine).wake()
        assert _wait_status(live, job_id).status == "done"
        fragment = client.get("/dataservices/exports/jobs").text
        assert "hx-trigger" not in fragment
        assert f"/dataservices/exports/{job_id}/download" in fragment


def test_refused_on_the_page_is_shown_and_ledgered(env: Env) -> None:
    live = env.live
    consumer, _token = live.consumer()
    live.grant(consumer, ["name"], ["query"])
    username, display = officer(live, consumer)
    with live.client() as client:
        login(client, username)
        page = client.get("/dataservices/exports")
        assert 'data-testid="no-batch-grant"' in page.text
        r = client.post(
            "/dataservices/exports",
            data={"service_id": str(live.service_id), "file_format": "xlsx"},
        )
        assert r.status_code == 403
        assert "共享授权不包括共享方式“批量交换”" in r.text
        bad = client.post(
            "/dataservices/exports",
            data={"service_id": str(live.service_id), "since": "2021-13-01"},
        )
        assert bad.status_code == 422
        assert "YYYY-MM-DD" in bad.text
    with live.session() as s:
        rows = list(
            s.scalars(select(UsageEntry).where(UsageEntry.consumer_department_id == consumer))
        )
        assert [(r.outcome, r.method, r.calling_user) for r in rows] == [
            ("refused", "batch", display)
        ]


def test_another_departments_user_cannot_download(env: Env) -> None:
    live = env.live
    other, _token = live.consumer()
    live.grant(other, ["id_number", "name"], ["batch"])
    username, _display = officer(live, other)
    job_id = _insert_job(live, env.consumer, env.grant_id)
    exports.runner(live.engine).wake()
    assert _wait_status(live, job_id).status == "done"
    with live.client() as client:
        login(client, username)
        assert client.get(f"/dataservices/exports/{job_id}/download").status_code == 404
        assert client.get(f"/dataservices/exports/{job_id}/manifest").status_code == 404
        assert f'data-testid="export-{job_id}"' not in client.get("/dataservices/exports").text


def test_page_needs_the_service_call_permission(env: Env) -> None:
    live = env.live
    username, _display = officer(live, env.consumer, Role.DEPT_REVIEWER)
    with live.client() as client:
        login(client, username)
        assert client.get("/dataservices/exports").status_code == 403
        r = client.post(f"/api/v1/dataservices/{live.service_id}/exports", json={"format": "csv"})
        assert r.status_code == 403


def test_an_expired_job_says_why_its_file_is_gone(env: Env) -> None:
    live = env.live
    username, _display = officer(live, env.consumer)
    with live.client() as client:
        r = client.post(
            f"/api/v1/dataservices/{live.service_id}/exports", json={}, headers=headers(env.token)
        )
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        assert wait_done(client, job_id, env.token)["status"] == "done"
        finished_days_ago(live, job_id, 30)
        assert job_id in exports.expire_files(live.engine)
        login(client, username)
        fragment = client.get("/dataservices/exports/jobs").text
    row = fragment.split(f'data-testid="export-{job_id}"')[1].split("</tr>")[0]
    assert "文件已过期删除" in row
    assert 'data-testid="export-expired"' in row
    assert "7 天保存期限" in row
    assert f'data-testid="download-{job_id}"' not in row
