"""Timeliness and quality of aggregated data: measures with hand-computed numbers, the
timeliness rule on the official calendar (National Day 2026), scoping, pages and API."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from govshare.catalog import schemas as catalog_schemas
from govshare.catalog import service as catalog
from govshare.catalog.models import CatalogEntry
from govshare.db import LOCAL_TZ
from govshare.errors import NotFound, PermissionDenied
from govshare.ingestion import quality, service, tables
from govshare.ingestion.models import BatchMode, BatchSource, DataTable
from govshare.orgs.models import User
from govshare.principal import Principal
from govshare.rules import service as rules_service
from tests.catalog.conftest import CatalogWorld, publish, version_in
from tests.conftest import login
from tests.ingestion.test_service import ITEMS, person_id

# 2026: 1-7 October is the National Day holiday, Saturday 10 October an adjusted working day
NATIONAL_DAY_EVE = date(2026, 9, 30)  # a Wednesday, a working day


def at(day: date, hour: int = 10) -> datetime:
    """A China-time instant on ``day``."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=LOCAL_TZ)


def load(
    db: Session,
    world: CatalogWorld,
    entry_id: int,
    records: list[dict[str, Any]],
    *,
    finished: datetime | None = None,
    mode: BatchMode = BatchMode.VALID_ROWS,
    actor: Principal | None = None,
) -> service.Outcome:
    """Load ``records`` as one batch and pin its finish time (tests do not read the clock)."""
    actor = actor or world.officer
    entry = service.target_entry(db, actor, entry_id)
    out = service.load_rows(
        db,
        actor,
        entry,
        [(i + 2, r) for i, r in enumerate(records)],
        source=BatchSource.CLI,
        mode=mode,
    )
    if finished is not None:
        out.batch.finished_at = finished
    db.flush()
    return out


def published_on(db: Session, entry_id: int, day: date) -> None:
    entry = db.get(CatalogEntry, entry_id)
    assert entry is not None
    entry.published_at = at(day, 9)
    db.flush()


def entry_of(world: CatalogWorld, db: Session, **overrides: Any) -> int:
    """A published police entry (first published on 1 September 2026)."""
    entry_id = publish(db, world, data_items=ITEMS, **overrides).entry_id
    published_on(db, entry_id, date(2026, 9, 1))
    return entry_id


def civil_entry(world: CatalogWorld, db: Session, **overrides: Any) -> int:
    """A published entry of the civil affairs bureau (the other department)."""
    version = catalog.create_entry(
        db, world.other_officer, version_in(data_items=ITEMS, **overrides)
    )
    catalog.submit(db, world.other_officer, version)
    catalog.review(db, world.authority, version, catalog_schemas.ReviewIn(decision="approve"))
    db.commit()
    return version.entry_id


def data_table(db: Session, entry_id: int) -> Any:
    registry = db.get(DataTable, entry_id)
    assert registry is not None
    return tables.tables_for(registry)[0]


def bad_id(n: int) -> str:
    good = person_id(n)
    return good[:-1] + ("0" if good[-1] != "0" else "1")


def only(rows: list[quality.EntryQuality], entry_id: int) -> quality.EntryQuality:
    (row,) = [r for r in rows if r.entry_id == entry_id]
    return row


# ---------------------------------------------------------------- measures


def test_each_measure_with_hand_computed_numbers(db: Session, world: CatalogWorld) -> None:
    entry_id = entry_of(world, db)
    out = load(
        db,
        world,
        entry_id,
        [
            {"id_number": person_id(1), "name": "张三", "address": "人民路1号"},
            {"id_number": person_id(2), "name": "李四"},
            {"id_number": person_id(3), "name": "王五", "address": "建设路2号"},
            {"id_number": person_id(4), "name": "赵六", "address": "解放路3号"},
            {"id_number": bad_id(5), "name": "钱七"},  # invalid: check digit
            {"id_number": person_id(1), "name": "张三丰"},  # duplicate key of row 2
            {"id_number": person_id(6), "name": ""},  # invalid: a blank required item
        ],
        finished=at(NATIONAL_DAY_EVE),
    )
    assert (out.batch.rows_total, out.batch.rows_loaded, out.batch.rows_rejected) == (7, 4, 3)
    assert out.batch.rows_duplicate == 1
    data = data_table(db, entry_id)
    # a tombstone is not a live row; a legacy blank required cell is not filled
    db.execute(update(data).where(data.c.id_number == person_id(4)).values(_deleted=True))
    db.execute(update(data).where(data.c.id_number == person_id(3)).values(name=""))
    db.flush()

    row = only(quality.entry_measures(db, world.officer, today=date(2026, 10, 8)), entry_id)
    assert row.live_rows == 3
    # required: id_number and name; 3 live rows x 2 items = 6 cells, 5 filled
    assert (row.required_items, row.required_cells, row.filled_required_cells) == (2, 6, 5)
    assert row.completeness == pytest.approx(5 / 6)
    # 7 submitted, 2 failed validation (the duplicate passed it and is counted apart)
    assert (row.rows_submitted, row.rows_valid, row.rows_invalid) == (7, 5, 2)
    assert row.validity == pytest.approx(5 / 7)
    assert (row.duplicates, row.duplicate_rate) == (1, pytest.approx(1 / 7))
    assert row.batches_counted == 1
    assert row.window_label.startswith("近 90 天")
    assert row.timeliness.status == "on_time"  # daily, due 8 October (after the holiday)
    assert row.overall == pytest.approx((5 / 6 + 5 / 7 + 1) / 3)

    detail = quality.entry_detail(db, world.officer, entry_id, today=date(2026, 10, 8))
    fills = {it.field: (it.filled, it.fill_rate, it.required) for it in detail.items}
    assert fills == {
        "id_number": (3, pytest.approx(1.0), True),
        "name": (2, pytest.approx(2 / 3), True),
        "address": (2, pytest.approx(2 / 3), False),  # the tombstone's address is not counted
    }
    assert [b.id for b in detail.recent_batches] == [out.batch.id]
    assert detail.recent_batches[0].rows_duplicate == 1
    assert detail.completeness == row.completeness


def test_validity_window_and_latest_batch_fallback(db: Session, world: CatalogWorld) -> None:
    entry_id = entry_of(world, db, update_frequency="yearly")
    load(
        db,
        world,
        entry_id,
        [{"id_number": person_id(1), "name": "张三"}, {"id_number": bad_id(2), "name": "李四"}],
        finished=at(date(2026, 3, 2)),
    )
    load(
        db,
        world,
        entry_id,
        [{"id_number": person_id(3), "name": "王五"}, {"id_number": person_id(4), "name": "赵六"}],
        finished=at(date(2026, 8, 3)),
    )
    # on 1 October only the August batch is within 90 days
    row = only(quality.entry_measures(db, world.officer, today=date(2026, 10, 1)), entry_id)
    assert (row.batches_counted, row.rows_submitted, row.validity) == (1, 2, 1.0)
    # in December there is no batch in the window: the latest batch is used
    row = only(quality.entry_measures(db, world.officer, today=date(2026, 12, 1)), entry_id)
    assert (row.batches_counted, row.rows_submitted) == (1, 2)
    assert "最近一批" in row.window_label
    # on 1 May only the March batch had happened
    row = only(quality.entry_measures(db, world.officer, today=date(2026, 5, 1)), entry_id)
    assert (row.rows_submitted, row.rows_valid) == (2, 1)
    assert row.timeliness.last_aggregated_at == at(date(2026, 3, 2)).astimezone(UTC)


def test_an_entry_without_rows_or_batches(db: Session, world: CatalogWorld) -> None:
    entry_id = entry_of(world, db)
    row = only(quality.entry_measures(db, world.officer, today=date(2026, 9, 1)), entry_id)
    assert (row.live_rows, row.completeness, row.validity, row.duplicate_rate) == (
        0,
        None,
        None,
        None,
    )
    assert row.window_label == "暂无汇聚批次"
    assert row.timeliness.status == "on_time"  # published today: due the next working day
    assert row.overall == 1.0


# ---------------------------------------------------------------- timeliness


def test_daily_entry_across_national_day(db: Session, world: CatalogWorld) -> None:
    entry_id = entry_of(world, db)
    # last aggregated on 30 September at 23:00 (15:00 UTC); the next working day is 8 October
    load(
        db,
        world,
        entry_id,
        [{"id_number": person_id(1), "name": "张三"}],
        finished=at(NATIONAL_DAY_EVE, 23),
    )

    def judge(today: date) -> quality.Timeliness:
        return only(quality.entry_measures(db, world.officer, today=today), entry_id).timeliness

    during = judge(date(2026, 10, 5))
    assert (during.status, during.due, during.unit) == (
        "on_time",
        date(2026, 10, 8),
        "working_days",
    )
    assert during.counted_from == NATIONAL_DAY_EVE
    assert during.label == "按时（2026-10-08 到期）"
    assert judge(date(2026, 10, 8)).label == "今日到期"
    late = judge(date(2026, 10, 9))
    assert (late.status, late.late_working_days, late.label) == ("late", 1, "逾期 1 个工作日")
    # Friday 9, Saturday 10 (an adjusted working day) and Monday 12 October
    late = judge(date(2026, 10, 12))
    assert (late.late_working_days, late.late_calendar_days) == (3, 4)
    assert late.provisional is False
    assert [
        r.entry_id for r in quality.late_entries(db, world.officer, today=date(2026, 10, 12))
    ] == [entry_id]


def test_a_batch_with_only_unchanged_rows_counts_a_rejected_one_does_not(
    db: Session, world: CatalogWorld
) -> None:
    entry_id = entry_of(world, db)
    record = {"id_number": person_id(1), "name": "张三"}
    load(db, world, entry_id, [record], finished=at(date(2026, 10, 8)))
    again = load(db, world, entry_id, [record], finished=at(date(2026, 10, 9)))
    assert (again.batch.rows_loaded, again.batch.rows_unchanged) == (0, 1)
    refused = load(
        db,
        world,
        entry_id,
        [{"id_number": person_id(2), "name": "李四"}, {"id_number": "x", "name": "王五"}],
        finished=at(date(2026, 10, 12)),
        mode=BatchMode.ALL_OR_NOTHING,
    )
    assert refused.batch.status == "rejected"
    t = only(quality.entry_measures(db, world.officer, today=date(2026, 10, 12)), entry_id)
    assert t.timeliness.last_aggregated_at == at(date(2026, 10, 9)).astimezone(UTC)
    assert (t.timeliness.due, t.timeliness.status) == (date(2026, 10, 10), "late")
    assert t.timeliness.late_working_days == 1  # Monday 12 October
    # the refused batch still counts for validity: 2 + 1 + 2 rows submitted, 1 invalid
    assert (t.rows_submitted, t.rows_invalid) == (4, 1)


def test_calendar_rules_roll_to_the_next_working_day(db: Session, world: CatalogWorld) -> None:
    cal = rules_service.calendar_for(db, world.county)
    weekly = quality.timeliness("weekly", cal, date(2026, 10, 12), at(date(2026, 9, 28)), None)
    # 28 September + 7 days = 5 October, a holiday: due on Thursday 8 October
    assert (weekly.due, weekly.status, weekly.unit) == (date(2026, 10, 8), "late", "calendar_days")
    assert (weekly.late_working_days, weekly.late_calendar_days) == (3, 4)
    assert weekly.label == "逾期 3 个工作日（4 日）"
    monthly = quality.timeliness("monthly", cal, date(2026, 9, 30), at(date(2026, 8, 31)), None)
    assert (monthly.due, monthly.status) == (date(2026, 9, 30), "on_time")
    quarterly = quality.timeliness("quarterly", cal, date(2026, 6, 1), at(date(2026, 3, 2)), None)
    assert (quarterly.due, quarterly.status) == (date(2026, 6, 2), "on_time")
    yearly = quality.timeliness("yearly", cal, date(2026, 10, 12), at(date(2025, 10, 8)), None)
    assert yearly.due == date(2026, 10, 8)
    assert yearly.late_working_days == 3
    realtime = quality.timeliness("realtime", cal, date(2026, 10, 12), at(date(2026, 10, 9)), None)
    assert (realtime.due, realtime.late_working_days) == (date(2026, 10, 10), 1)
    assert quality.add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert quality.add_months(date(2026, 11, 30), 3) == date(2027, 2, 28)
    # a count reaching into a year whose calendar is not on file is provisional
    ahead = quality.timeliness("daily", cal, date(2027, 1, 11), at(date(2026, 12, 31)), None)
    assert ahead.status == "late"
    assert ahead.provisional is True


def test_never_aggregated_is_late_from_its_publish_date(db: Session, world: CatalogWorld) -> None:
    entry_id = entry_of(world, db)
    published_on(db, entry_id, NATIONAL_DAY_EVE)
    row = only(quality.entry_measures(db, world.officer, today=date(2026, 10, 12)), entry_id)
    t = row.timeliness
    assert (t.counted_from_kind, t.counted_from, t.last_aggregated_at) == (
        "publication",
        NATIONAL_DAY_EVE,
        None,
    )
    assert (t.status, t.due, t.late_working_days) == ("late", date(2026, 10, 8), 3)


def test_irregular_entries_are_not_judged(db: Session, world: CatalogWorld) -> None:
    irregular = entry_of(world, db, update_frequency="irregular", name="不定期资源")
    daily = entry_of(world, db, name="每日资源")
    today = date(2026, 12, 1)
    rows = quality.entry_measures(db, world.officer, today=today)
    t = only(rows, irregular).timeliness
    assert (t.status, t.label, t.due) == ("not_judged", "不定期，不评价", None)
    assert [r.entry_id for r in quality.late_entries(db, world.officer, today=today)] == [daily]
    total = quality.totals(rows)
    assert (total.entries, total.late, total.on_time, total.not_judged) == (2, 1, 0, 1)
    assert total.timeliness == 0.0  # of the judged entries, none on time


# ---------------------------------------------------------------- departments, scope


def test_departments_weighted_and_scoped(db: Session, world: CatalogWorld) -> None:
    police = entry_of(world, db)
    load(
        db,
        world,
        police,
        [{"id_number": person_id(i), "name": f"人{i}"} for i in range(1, 4)],
        finished=at(date(2026, 10, 12)),
    )
    data = data_table(db, police)
    db.execute(update(data).where(data.c.id_number == person_id(1)).values(name=None))
    second = entry_of(world, db, name="第二资源", update_frequency="weekly")
    load(
        db,
        world,
        second,
        [{"id_number": person_id(9), "name": "甲"}],
        finished=at(date(2026, 9, 1)),
    )
    civil_id = civil_entry(world, db, update_frequency="irregular")
    today = date(2026, 10, 12)

    depts = {
        d.department_id: d for d in quality.department_measures(db, world.authority, today=today)
    }
    assert set(depts) == {world.police.id, world.civil.id}
    p = depts[world.police.id]
    # the daily entry is on time (due 13 October), the weekly one late since 8 September
    assert (p.entries, p.late, p.on_time, p.live_rows) == (2, 1, 1, 4)
    # completeness weighted by rows: (5/6 x 3 + 1 x 1) / 4
    assert p.completeness == pytest.approx((5 / 6 * 3 + 1) / 4)
    assert (p.rows_submitted, p.validity, p.timeliness) == (4, 1.0, 0.5)
    assert p.overall == pytest.approx(((5 / 6 * 3 + 1) / 4 + 1 + 0.5) / 3)
    assert p.max_late_working_days > 0
    # the most late department first
    assert next(iter(depts.values())).department_id == world.police.id
    # the city's authority sees the county's departments too
    city = quality.department_measures(db, world.city_authority, today=today)
    assert {d.department_id for d in city} == {world.police.id, world.civil.id}

    # a department sees only its own entries; another department's entry is not found
    own = quality.entry_measures(db, world.other_officer, today=today)
    assert [r.entry_id for r in own] == [civil_id]
    with pytest.raises(NotFound):
        quality.entry_detail(db, world.other_officer, police, today=today)
    with pytest.raises(NotFound):
        quality.department_in_scope(db, world.other_officer, world.police.id)
    assert quality.entry_detail(db, world.reviewer, police, today=today).entry_id == police


def test_returned_data_is_marked_and_principals_without_the_permission_are_refused(
    db: Session, world: CatalogWorld
) -> None:
    entry_id = entry_of(world, db, is_returned_data=True, returned_from="目录市公安局")
    row = only(quality.entry_measures(db, world.authority, today=date(2026, 9, 2)), entry_id)
    assert (row.is_returned_data, row.returned_from) == (True, "目录市公安局")
    nobody = Principal(kind="user", id=None, name="公众", role=None)
    with pytest.raises(PermissionDenied):
        quality.entry_measures(db, nobody)


def test_dashboard_summary(db: Session, world: CatalogWorld) -> None:
    late = entry_of(world, db, name="逾期资源")
    fine = entry_of(world, db, name="按时资源")
    load(
        db,
        world,
        fine,
        [{"id_number": person_id(1), "name": "张三"}],
        finished=at(date(2026, 10, 12)),
    )
    summary = quality.dashboard_summary(db, world.authority, today=date(2026, 10, 12))
    assert (summary.entries, summary.late, summary.not_judged) == (2, 1, 0)
    assert [w.entry_id for w in summary.worst] == [late]
    assert (summary.completeness, summary.validity, summary.timeliness) == (1.0, 1.0, 0.5)
    assert summary.overall == pytest.approx(2.5 / 3)


# ---------------------------------------------------------------- pages and API


def username(db: Session, principal: Principal) -> str:
    user = db.get(User, principal.id)
    assert user is not None
    return user.username


def _stale_world(db: Session, world: CatalogWorld) -> tuple[int, int]:
    """A police entry last aggregated two months ago (late) and a civil returned entry."""
    stale = entry_of(world, db, name="户籍人口基本信息")
    old = datetime.now(UTC) - timedelta(days=60)
    load(
        db,
        world,
        stale,
        [
            {"id_number": person_id(1), "name": "张三", "address": "人民路1号"},
            {"id_number": person_id(1), "name": "张三"},
            {"id_number": bad_id(2), "name": "李四"},
        ],
        finished=old,
    )
    civil = civil_entry(world, db, is_returned_data=True, returned_from="市人社局")
    db.commit()
    return stale, civil


def test_pages_render_for_the_authority(client: TestClient, db: Session, world: CatalogWorld):
    stale, civil = _stale_world(db, world)
    login(client, username(db, world.authority))
    page = client.get("/ingestion/quality")
    assert page.status_code == 200, page.text
    assert "数据质量与及时性" in page.text
    assert "部门汇总" in page.text
    assert f'data-testid="dept-{world.police.id}"' in page.text
    assert f"/ingestion/quality?department_id={world.civil.id}" in page.text
    drill = client.get(f"/ingestion/quality?department_id={world.police.id}")
    assert drill.status_code == 200
    assert f'data-testid="entry-{stale}"' in drill.text
    assert "户籍人口基本信息" in drill.text
    assert "66.7%" in drill.text  # validity: 2 of 3 rows passed (1 of them a duplicate)
    assert "33.3%" in drill.text  # duplicate rate
    assert re.search(r'data-testid="timeliness">逾期 \d+ 个工作日<', drill.text)
    civil_page = client.get(f"/ingestion/quality?department_id={world.civil.id}")
    assert f'data-testid="entry-{civil}"' in civil_page.text
    assert "回流 · 来自市人社局" in civil_page.text
    late = client.get("/ingestion/quality/late")
    assert late.status_code == 200
    assert "未按更新周期汇聚的资源" in late.text
    assert f'data-testid="late-{stale}"' in late.text
    entry = client.get(f"/ingestion/quality/entries/{stale}")
    assert entry.status_code == 200
    assert "信息项填充率" in entry.text
    assert "最近的汇聚批次" in entry.text
    assert 'data-testid="item-address"' in entry.text
    assert "100.0%" in entry.text
    assert client.get("/ingestion/quality?department_id=999999").status_code == 404


def test_pages_for_a_department_and_empty_states(
    client: TestClient, db: Session, world: CatalogWorld
) -> None:
    login(client, username(db, world.other_officer))
    page = client.get("/ingestion/quality")
    assert page.status_code == 200
    assert "部门汇总" not in page.text
    assert "没有已发布并建有数据表的目录资源" in page.text
    assert "没有逾期未汇聚的资源" in client.get("/ingestion/quality/late").text
    stale, civil = _stale_world(db, world)
    page = client.get("/ingestion/quality")
    assert f'data-testid="entry-{civil}"' in page.text
    assert f'data-testid="entry-{stale}"' not in page.text
    assert client.get(f"/ingestion/quality/entries/{stale}").status_code == 404
    assert client.get(f"/ingestion/quality?department_id={world.police.id}").status_code == 404
    entry = client.get(f"/ingestion/quality/entries/{civil}")
    assert "该资源尚未汇聚过数据" in entry.text
    assert "回流" in entry.text


def test_api_shapes_and_scope(client: TestClient, db: Session, world: CatalogWorld) -> None:
    stale, civil = _stale_world(db, world)
    login(client, username(db, world.authority))
    entries = client.get("/api/v1/ingestion/quality/entries")
    assert entries.status_code == 200
    by_id = {e["entry_id"]: e for e in entries.json()}
    assert set(by_id) == {stale, civil}
    e = by_id[stale]
    assert (e["live_rows"], e["rows_submitted"], e["rows_valid"], e["duplicates"]) == (1, 3, 2, 1)
    assert e["completeness"] == 1.0
    assert e["validity"] == pytest.approx(2 / 3)
    assert e["timeliness"]["status"] == "late"
    assert e["timeliness"]["late_working_days"] >= 1
    assert e["timeliness"]["unit"] == "working_days"
    assert by_id[civil]["is_returned_data"] is True
    assert by_id[civil]["returned_from"] == "市人社局"
    only_police = client.get(f"/api/v1/ingestion/quality/entries?department_id={world.police.id}")
    assert [r["entry_id"] for r in only_police.json()] == [stale]
    detail = client.get(f"/api/v1/ingestion/quality/entries/{stale}").json()
    assert [i["field"] for i in detail["items"]] == ["id_number", "name", "address"]
    assert detail["items"][2]["fill_rate"] == 1.0
    assert detail["recent_batches"][0]["rows_duplicate"] == 1
    depts = client.get("/api/v1/ingestion/quality/departments").json()
    assert {d["department_id"] for d in depts} == {world.police.id, world.civil.id}
    assert {"entries", "late", "completeness", "validity", "timeliness", "overall"} <= set(depts[0])
    late = client.get("/api/v1/ingestion/quality/late").json()
    assert [r["entry_id"] for r in late][:1] == [stale]
    assert client.get("/api/v1/ingestion/quality/entries/999999").status_code == 404

    client.cookies.clear()
    login(client, username(db, world.other_officer))
    mine = client.get("/api/v1/ingestion/quality/entries").json()
    assert [r["entry_id"] for r in mine] == [civil]
    assert client.get(f"/api/v1/ingestion/quality/entries/{stale}").status_code == 404
    r = client.get(f"/api/v1/ingestion/quality/entries?department_id={world.police.id}")
    assert r.status_code == 404
    assert [
        d["department_id"] for d in client.get("/api/v1/ingestion/quality/departments").json()
    ] == [world.civil.id]


def test_the_version_in_force_gives_the_frequency(db: Session, world: CatalogWorld) -> None:
    entry_id = entry_of(world, db, update_frequency="monthly")
    row = only(quality.entry_measures(db, world.officer, today=date(2026, 9, 15)), entry_id)
    assert (row.update_frequency, row.update_frequency_label) == ("monthly", "每月")
    # published 1 September: due 1 October, a holiday, so Thursday 8 October
    assert row.timeliness.due == date(2026, 10, 8)
    assert row.timeliness.counted_from_kind == "publication"
