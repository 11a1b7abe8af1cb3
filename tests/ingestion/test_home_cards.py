"""What aggregation puts in front of people: the home page's quality, one-source and
deletion cards, and the one-source advice on the upload preview."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from govshare.ingestion import records, sources
from tests.catalog.conftest import CatalogWorld
from tests.conftest import login
from tests.ingestion.test_service import person_id
from tests.ingestion.test_sources import load, pair, username  # noqa: F401 (a fixture)


@pytest.fixture(autouse=True)
def _uploads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from govshare.config import get_settings

    monkeypatch.setenv("GOVSHARE_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_authoritys_home_page_shows_aggregation(
    client: TestClient,
    db: Session,
    world: CatalogWorld,
    pair: tuple[int, int],  # noqa: F811
) -> None:
    police, civil = pair
    load(db, world.officer, police, {"id_number": person_id(1), "name": "张三", "marital": "已婚"})
    load(db, world.other_officer, civil, {"sfzh": person_id(1), "xm": "张叁", "hyzk": "已婚"})
    sources.detect(db, world.authority, None)
    entry = records.readable_entry(db, world.officer, police)
    records.request_deletion(db, world.officer, entry, [person_id(1)], "重复登记的记录")
    db.commit()
    login(client, username(db, world.authority))
    page = client.get("/").text
    assert 'data-testid="quality-card"' in page
    assert 'data-testid="sources-card"' in page
    # civil affairs collects 姓名 and 婚姻状况 that the police are the source of
    assert 'data-testid="flag-count">2<' in page
    assert 'data-testid="conflict-count">1<' in page  # 张三 / 张叁
    assert "1 件删除申请待审核" in page
    # a department officer sees its quality, not the deletion queue
    client.cookies.clear()
    login(client, username(db, world.other_officer))
    page = client.get("/").text
    assert 'data-testid="quality-card"' in page
    assert "删除申请待审核" not in page


def test_the_upload_preview_says_where_to_get_an_item_by_sharing(
    client: TestClient,
    db: Session,
    world: CatalogWorld,
    pair: tuple[int, int],  # noqa: F811
) -> None:
    _, civil = pair
    login(client, username(db, world.other_officer))
    body = f"公民身份号码,姓名,低保标识\n{person_id(3)},王五,是\n".encode()
    r = client.post(
        "/ingestion/upload",
        data={"entry_id": str(civil), "mode": "valid_rows"},
        files={"file": ("dibao.csv", body, "text/csv")},
    )
    assert r.status_code == 200, r.text
    assert 'data-testid="source-advice"' in r.text
    assert "姓名" in r.text
    assert "目录县公安局" in r.text
