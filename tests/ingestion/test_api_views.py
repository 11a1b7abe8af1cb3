"""Aggregation through the API (push with an app credential) and the pages (upload, preview,
confirm, batch, error report)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.catalog.models import CatalogEntry
from govshare.orgs import schemas as orgs_schemas
from govshare.orgs import service as orgs_service
from govshare.orgs.models import User
from tests.catalog.conftest import CatalogWorld, publish
from tests.conftest import login
from tests.ingestion.test_service import ITEMS, person_id


@pytest.fixture(autouse=True)
def _uploads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Uploads go to a var/ of the test's own; the settings cache is reset around it."""
    from govshare.config import get_settings

    monkeypatch.setenv("GOVSHARE_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def username(db: Session, principal_id: int | None) -> str:
    user = db.get(User, principal_id)
    assert user is not None
    return user.username


def test_push_with_an_app_credential_is_idempotent(
    client: TestClient, db: Session, world: CatalogWorld
) -> None:
    entry_id = publish(db, world, data_items=ITEMS).entry_id
    issued = orgs_service.create_credential(
        db,
        world.authority,
        orgs_schemas.CredentialIn(department_id=world.police.id, system_name="户籍系统"),
    )
    db.commit()
    headers = {"Authorization": f"Bearer {issued.token}"}
    body = {
        "client_batch_id": "hj-20261121-001",
        "rows": [{"id_number": person_id(1), "name": "张三"}, {"id_number": "bad", "name": "李四"}],
    }
    r = client.post(f"/api/v1/ingestion/entries/{entry_id}/push", json=body, headers=headers)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["duplicate"] is False
    assert (out["batch"]["rows_loaded"], out["batch"]["rows_rejected"]) == (1, 1)
    assert out["errors"][0]["row_number"] == 2
    again = client.post(f"/api/v1/ingestion/entries/{entry_id}/push", json=body, headers=headers)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["batch"]["id"] == out["batch"]["id"]
    # another department's system may not push into this entry
    other = orgs_service.create_credential(
        db,
        world.authority,
        orgs_schemas.CredentialIn(department_id=world.civil.id, system_name="救助系统"),
    )
    db.commit()
    r = client.post(
        f"/api/v1/ingestion/entries/{entry_id}/push",
        json=body | {"client_batch_id": "x"},
        headers={"Authorization": f"Bearer {other.token}"},
    )
    assert r.status_code == 403


def test_upload_preview_confirm_and_error_report(
    client: TestClient, db: Session, world: CatalogWorld
) -> None:
    entry_id = publish(db, world, data_items=ITEMS).entry_id
    login(client, username(db, world.officer.id))
    page = client.get(f"/ingestion/upload?entry_id={entry_id}")
    assert page.status_code == 200
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    content = (
        f"公民身份号码,姓名*,住址\n{person_id(1)},张三,人民路1号\n{person_id(2)},,\n=cmd(),王五,\n"
    ).encode("gbk")
    r = client.post(
        "/ingestion/upload",
        data={"csrf_token": csrf, "entry_id": str(entry_id), "mode": "valid_rows"},
        files={"file": ("人口.csv", content, "text/csv")},
    )
    assert r.status_code == 200, r.text
    assert "gb18030" in r.text
    assert "人民路1号" in r.text
    token = re.search(r'name="token" value="([0-9a-f]{32})"', r.text).group(1)  # type: ignore[union-attr]
    r = client.post(
        "/ingestion/upload/confirm",
        data={
            "csrf_token": csrf,
            "entry_id": str(entry_id),
            "token": token,
            "mode": "valid_rows",
            "file_name": "人口.csv",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    batch_page = client.get(r.headers["location"])
    assert "新增 1 行" in batch_page.text
    assert "拒绝 2 行" in batch_page.text
    batch_id = int(r.headers["location"].rsplit("/", 1)[1])
    report = client.get(f"/ingestion/batches/{batch_id}/errors.csv")
    assert report.status_code == 200
    text = report.content.decode("utf-8-sig")
    assert "姓名" in text
    assert "'=cmd()" in text  # a formula-like value is neutralised
    # the token was used up
    r = client.post(
        "/ingestion/upload/confirm",
        data={"csrf_token": csrf, "entry_id": str(entry_id), "token": token, "mode": "valid_rows"},
    )
    assert r.status_code == 404


def test_garbage_upload_is_refused_and_leaves_nothing(
    client: TestClient, db: Session, world: CatalogWorld
) -> None:
    entry_id = publish(db, world, data_items=ITEMS).entry_id
    login(client, username(db, world.officer.id))
    page = client.get("/ingestion/upload")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = client.post(
        "/ingestion/upload",
        data={"csrf_token": csrf, "entry_id": str(entry_id)},
        files={"file": ("x.csv", bytes(range(256)) * 50, "text/csv")},
    )
    assert r.status_code == 422
    assert "不是文本格式" in r.text
    from govshare.config import get_settings

    assert list((get_settings().var_dir / "uploads").iterdir()) == []
    assert db.scalar(select(CatalogEntry.id).where(CatalogEntry.id == entry_id)) == entry_id


def test_abandoned_previews_are_swept_after_a_day() -> None:
    import os
    import time

    from govshare.ingestion import views

    folder = views.upload_dir()
    old = folder / ("a" * 32)
    fresh = folder / ("b" * 32)
    other = folder / "keep.txt"
    for path in (old, fresh, other):
        path.write_bytes(b"x")
    day_ago = time.time() - views.UPLOAD_TTL_SECONDS - 60
    os.utime(old, (day_ago, day_ago))
    os.utime(other, (day_ago, day_ago))
    assert views.sweep_uploads() == 1
    assert not old.exists()
    assert fresh.exists()
    assert other.exists()  # only the upload tokens' files are touched
