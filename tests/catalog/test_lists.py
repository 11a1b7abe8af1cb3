"""Lists derived from the catalog: change events and their clocks, the demand list, the
supply–demand list and the responsibility list; their JSON API and pages."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.audit.models import AuditEntry
from govshare.catalog import lists
from govshare.catalog import schemas as catalog_schemas
from govshare.catalog import service as catalog
from govshare.catalog.models import CatalogDemand, DemandStatus
from govshare.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from govshare.orgs.models import User
from govshare.permissions import Perm, Role, permissions_for
from govshare.principal import Principal
from govshare.rules import service as rules_service
from govshare.web import PACKAGE, templates
from tests.catalog.conftest import CatalogWorld, publish, version_in
from tests.conftest import Factory, login
from tests.test_authz_matrix import all_routes, call, fill, required_perm

# ---------------------------------------------------------------- helpers


@pytest.fixture
def app(app: FastAPI) -> FastAPI:
    """The app with this module's routers and templates (until main.py mounts them)."""
    from govshare.catalog import lists_routes

    paths = {path for path, _route in all_routes(app)}
    if "/api/v1/catalog/demands" not in paths:
        app.include_router(lists_routes.api_router, prefix="/api/v1")
    if "/catalog/demands" not in paths:
        app.include_router(lists_routes.page_router, include_in_schema=False)
    folder = str(PACKAGE / "catalog" / "templates")
    searchpath = templates.env.loader.searchpath  # type: ignore[union-attr]
    if folder not in searchpath:
        searchpath.append(folder)
    return app


def on(monkeypatch: pytest.MonkeyPatch, day: date) -> None:
    """Pretend today is ``day`` (China time) for the lists module."""
    monkeypatch.setattr(lists, "china_today", lambda: day)


def actions(db: Session) -> list[str]:
    """The audit log so far (queued entries are written on commit)."""
    db.commit()
    return list(db.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))


def username(db: Session, principal: Principal) -> str:
    user = db.get(User, principal.id)
    assert user is not None
    return user.username


@pytest.fixture
def other_county(db: Session, factory: Factory, world: CatalogWorld) -> dict[str, Any]:
    """A second county under the same city, with its authority and one department."""
    county = factory.jurisdiction("另一县", "county", parent=world.city, code="930122")
    data = factory.department(county, "另一县数据局", is_data_authority=True)
    dept = factory.department(county, "另一县民政局")
    return {
        "county": county,
        "dept": dept,
        "authority": factory.principal(factory.user(Role.AUTHORITY, data)),
        "officer": factory.principal(factory.user(Role.DEPT_OFFICER, dept)),
    }


def file(db: Session, who: Principal, **overrides: Any) -> CatalogDemand:
    data: dict[str, Any] = {
        "title": "婚姻登记需要户籍人口信息",
        "description": "",
        "data_items": ["公民身份号码", "婚姻状况"],
        "scenario": "办理婚姻登记时核验当事人户籍",
        "basis": "《婚姻登记条例》第五条",
        "expected_provider_id": None,
    }
    data.update(overrides)
    return lists.file_demand(db, who, **data)


def id_card_entry() -> dict[str, Any]:
    """A second police entry sharing only the ID-number item with the person entry."""
    return {
        "name": "居民身份证签发信息",
        "summary": "居民身份证的签发机关、签发日期和有效期限。",
        "data_items": [
            {
                "name": "公民身份号码",
                "field": "id_number",
                "data_type": "id_number",
                "required": True,
                "personal": True,
            },
            {"name": "签发机关", "field": "issuer", "data_type": "string"},
        ],
        "update_frequency": "weekly",
    }


# ---------------------------------------------------------------- change events: the clock


def test_calendar_facts_of_national_day_2026(db: Session, world: CatalogWorld):
    """The days the clock test relies on, as the seeded official calendar has them."""
    cal = rules_service.calendar_for(db, world.county)
    facts = {
        d: cal.info(d).is_workday for d in (date(2026, 9, 30) + timedelta(n) for n in range(14))
    }
    assert facts[date(2026, 9, 30)] is True  # Wednesday
    assert not any(facts[date(2026, 10, n)] for n in range(1, 8))  # National Day, Oct 1-7
    assert facts[date(2026, 10, 8)] is True
    assert facts[date(2026, 10, 9)] is True
    assert facts[date(2026, 10, 10)] is True  # Saturday, adjusted working day (调休)
    assert facts[date(2026, 10, 11)] is False  # Sunday
    assert facts[date(2026, 10, 12)] is True
    assert facts[date(2026, 10, 13)] is True


def test_change_clock_counts_working_days_across_national_day(
    db: Session, world: CatalogWorld, monkeypatch: pytest.MonkeyPatch
):
    on(monkeypatch, date(2026, 10, 9))
    event = lists.record_change(
        db, world.officer, None, "law", "《某条例》修订，新增登记事项", date(2026, 9, 30)
    )
    # the county has no rule of its own: the city's rulebook (seed 003 art. 22) applies,
    # 5 working days: Oct 8, 9, 10 (adjusted), 12, 13
    assert event.department_id == world.police.id
    assert event.due == date(2026, 10, 13)
    assert event.due_provisional is False

    def row() -> lists.ChangeOut:
        (only,) = lists.list_changes(db, world.officer)
        return only

    r = row()
    assert (r.working_days, r.cite) == (5, "《南阳市政务数据共享管理暂行办法》第二十二条")
    assert (r.days_left, r.clock_label, r.overdue) == (3, "剩余 3 个工作日", False)
    on(monkeypatch, date(2026, 10, 13))
    assert (row().days_left, row().clock_label) == (0, "今日到期")
    on(monkeypatch, date(2026, 10, 15))
    r = row()
    assert (r.days_left, r.clock_label, r.overdue) == (-2, "已逾期 2 个工作日", True)
    on(monkeypatch, date(2026, 10, 17))  # Saturday: Oct 14, 15, 16 have passed
    assert row().days_left == -3
    assert [e.id for e in lists.overdue_changes(db, date(2026, 10, 14))] == [event.id]
    assert lists.overdue_changes(db, date(2026, 10, 13)) == []
    assert "catalog:change:record" in actions(db)


def test_change_clock_follows_the_jurisdictions_rulebook(
    db: Session, factory: Factory, world: CatalogWorld, monkeypatch: pytest.MonkeyPatch
):
    on(monkeypatch, date(2026, 10, 9))
    xiayi = factory.jurisdiction("夏邑县", "county", code="930123", rulebook="xiayi-2021")
    dept = factory.department(xiayi, "夏邑县民政局")
    officer = factory.principal(factory.user(Role.DEPT_OFFICER, dept))
    event = lists.record_change(db, officer, None, "duty", "机构改革，职能划入", date(2026, 9, 30))
    # 10 working days (seed 002 §2(3)): Oct 8, 9, 10, 12, 13, 14, 15, 16, 19, 20
    assert event.due == date(2026, 10, 20)
    (r,) = lists.list_changes(db, officer)
    assert (r.working_days, r.cite) == (10, "夏“放管服”组办〔2021〕12号 二(三)")
    assert r.trigger_label == "行政管理职能变更"


def test_deadline_in_a_year_without_calendar_is_provisional(
    db: Session, world: CatalogWorld, monkeypatch: pytest.MonkeyPatch
):
    on(monkeypatch, date(2028, 1, 3))
    event = lists.record_change(db, world.officer, None, "law", "法规修订生效", date(2027, 12, 28))
    # 2027 and 2028 are not on file: Monday to Friday, marked provisional
    assert event.due == date(2028, 1, 4)
    assert event.due_provisional is True
    (r,) = lists.list_changes(db, world.officer)
    assert r.due_provisional is True


def test_recording_a_change_checks_who_and_what(
    db: Session, world: CatalogWorld, other_county: dict[str, Any]
):
    today = lists.china_today()
    with pytest.raises(ValidationFailed) as exc:
        lists.record_change(db, world.officer, None, "law", "法规修订", today + timedelta(days=1))
    assert exc.value.field == "occurred_on"
    with pytest.raises(ValidationFailed) as exc:
        lists.record_change(db, world.officer, None, "other", "法规修订", today)
    assert exc.value.field == "trigger"
    with pytest.raises(ValidationFailed) as exc:
        lists.record_change(db, world.officer, None, "law", "改", today)
    assert exc.value.field == "description"
    with pytest.raises(PermissionDenied):
        lists.record_change(db, world.officer, world.civil.id, "law", "法规修订", today)
    with pytest.raises(PermissionDenied):
        lists.record_change(db, world.reviewer, None, "law", "法规修订", today)
    with pytest.raises(PermissionDenied):  # another county's authority
        lists.record_change(db, other_county["authority"], world.civil.id, "law", "法规修订", today)
    by_authority = lists.record_change(
        db, world.authority, world.civil.id, "duty", "职能调整", today
    )
    by_city = lists.record_change(
        db, world.city_authority, world.civil.id, "law", "法规修订", today
    )
    assert by_authority.department_id == by_city.department_id == world.civil.id


def test_changes_are_seen_by_the_department_and_its_authorities(
    db: Session, world: CatalogWorld, other_county: dict[str, Any]
):
    today = lists.china_today()
    police = lists.record_change(db, world.officer, None, "law", "法规修订", today)
    civil = lists.record_change(db, world.other_officer, None, "duty", "职能调整", today)
    other = lists.record_change(db, other_county["officer"], None, "law", "法规修订", today)

    def ids(who: Principal) -> set[int]:
        return {r.id for r in lists.list_changes(db, who)}

    assert ids(world.officer) == ids(world.reviewer) == {police.id}
    assert ids(world.other_officer) == {civil.id}
    assert ids(world.authority) == {police.id, civil.id}
    assert ids(world.city_authority) == {police.id, civil.id, other.id}
    assert ids(other_county["authority"]) == {other.id}
    with pytest.raises(NotFound):
        lists.get_change(db, other_county["authority"], police.id)


# ---------------------------------------------------------------- change events: resolving


def test_department_resolves_with_the_versions_it_filed(db: Session, world: CatalogWorld):
    published = publish(db, world)
    event = lists.record_change(db, world.officer, None, "law", "法规修订", lists.china_today())
    with pytest.raises(ValidationFailed) as exc:  # nothing filed yet
        lists.resolve_change(db, world.officer, event.id, "", [])
    assert exc.value.field == "version_ids"
    draft = catalog.new_version(
        db, world.officer, published.entry, catalog_schemas.NewVersionIn(change_note="依法修订")
    )
    with pytest.raises(ValidationFailed, match="须已提交审核"):
        lists.resolve_change(db, world.officer, event.id, "", [draft.id])
    catalog.submit(db, world.officer, draft)
    assert {v.id for v in lists.candidate_versions(db, event)} == {published.id, draft.id}
    lists.resolve_change(db, world.head, event.id, "已按新条例更新目录", [draft.id])
    (r,) = lists.list_changes(db, world.officer)
    assert r.status == "resolved"
    assert r.version_ids == [draft.id]
    assert r.filed_on == lists.china_today()
    assert r.on_time is True
    assert r.days_left is None
    assert r.clock_label == "已办结（按期）"
    assert lists.list_changes(db, world.officer, open_only=True) == []
    with pytest.raises(Conflict):
        lists.resolve_change(db, world.officer, event.id, "", [draft.id])
    assert actions(db)[-1] == "catalog:change:resolve"


def test_resolving_refuses_versions_filed_before_or_by_others(db: Session, world: CatalogWorld):
    published = publish(db, world)
    civil = catalog.create_entry(db, world.other_officer, version_in(name="婚姻登记信息"))
    catalog.submit(db, world.other_officer, civil)
    event = lists.record_change(db, world.officer, None, "law", "法规修订", lists.china_today())
    with pytest.raises(ValidationFailed, match="不是目录县公安局的目录") as exc:
        lists.resolve_change(db, world.officer, event.id, "", [civil.id])
    assert exc.value.field == "version_ids"
    # the version in force was submitted before the law changed: not an update for it
    published.submitted_at = datetime(2026, 9, 1, 2, tzinfo=UTC)
    db.flush()
    with pytest.raises(ValidationFailed, match="之前"):
        lists.resolve_change(db, world.officer, event.id, "", [published.id])
    assert lists.candidate_versions(db, event) == []
    with pytest.raises(ValidationFailed, match="不存在"):
        lists.resolve_change(db, world.officer, event.id, "", [999_999])
    with pytest.raises(NotFound):  # another department does not even see the event
        lists.resolve_change(db, world.other_officer, event.id, "", [civil.id])


def test_authority_closes_an_event_with_a_reason(
    db: Session, world: CatalogWorld, other_county: dict[str, Any]
):
    event = lists.record_change(db, world.officer, None, "duty", "职能微调", lists.china_today())
    with pytest.raises(NotFound):
        lists.resolve_change(db, other_county["authority"], event.id, "无需更新目录", [])
    with pytest.raises(ValidationFailed) as exc:
        lists.resolve_change(db, world.authority, event.id, "无", [])
    assert exc.value.field == "resolution"
    lists.resolve_change(db, world.authority, event.id, "经核实，职能调整不涉及数据目录", [])
    (r,) = lists.list_changes(db, world.authority)
    assert r.status == "resolved"
    assert r.resolution == "经核实，职能调整不涉及数据目录"
    assert r.on_time is None
    assert r.clock_label == "已办结"


# ---------------------------------------------------------------- demands


def test_filing_a_demand_and_who_sees_it(
    db: Session, world: CatalogWorld, other_county: dict[str, Any]
):
    demand = file(db, world.other_officer, data_items="公民身份号码、婚姻状况\n公民身份号码")
    assert demand.department_id == world.civil.id
    assert demand.data_items == ["公民身份号码", "婚姻状况"]
    assert demand.status == DemandStatus.OPEN
    assert actions(db)[-1] == "catalog:demand:file"

    def ids(who: Principal) -> set[int]:
        return {d.id for d in lists.list_demands(db, who)}

    assert ids(world.other_officer) == {demand.id}
    assert ids(world.officer) == set()
    assert ids(world.authority) == {demand.id}
    assert ids(world.city_authority) == {demand.id}
    assert ids(other_county["authority"]) == set()
    with pytest.raises(NotFound):
        lists.get_demand(db, other_county["authority"], demand.id)
    with pytest.raises(NotFound):
        lists.get_demand(db, world.officer, demand.id)
    # naming the police as the provider lets the police see it, as a demand on them
    lists.update_demand(
        db,
        world.other_officer,
        demand.id,
        lists.DemandUpdate(expected_provider_id=world.police.id),
    )
    assert lists.get_demand(db, world.officer, demand.id).id == demand.id
    assert [d.id for d in lists.demands_to_provide(db, world.officer)] == [demand.id]
    assert ids(world.officer) == set()  # not one of its own demands
    assert actions(db)[-1] == "catalog:demand:update"


def test_filing_a_demand_checks_its_fields(db: Session, world: CatalogWorld):
    with pytest.raises(ValidationFailed) as exc:
        file(db, world.officer, data_items=["", " "])
    assert exc.value.field == "data_items"
    with pytest.raises(ValidationFailed) as exc:
        file(db, world.officer, expected_provider_id=world.police.id)
    assert exc.value.field == "expected_provider_id"
    with pytest.raises(ValidationFailed) as exc:
        file(db, world.officer, scenario="核验")
    assert exc.value.field == "scenario"
    with pytest.raises(ValidationFailed) as exc:
        file(db, world.officer, title="婚")
    assert exc.value.field == "title"
    with pytest.raises(PermissionDenied):
        file(db, world.reviewer)


def test_suggestions_find_published_entries_by_item_name(db: Session, world: CatalogWorld):
    person = publish(db, world)  # 公民身份号码, 姓名, 住址
    id_card = publish(db, world, **id_card_entry())  # 公民身份号码, 签发机关
    catalog.create_entry(db, world.officer, version_in(name="未发布的草稿"))  # never suggested
    demand = file(db, world.other_officer, data_items=["姓名", "公民身份号码", "婚姻状况"])
    found = lists.suggest_matches(db, demand)
    assert [s.entry_id for s in found] == [person.entry_id, id_card.entry_id]
    assert found[0].matched_items == ["姓名", "公民身份号码"]
    assert found[1].matched_items == ["公民身份号码"]
    assert found[0].share_type_name == "条件共享"  # the county's name for it (neixiang-2017)
    assert found[0].department_name == "目录县公安局"
    # the police's own demand for the same items is not answered by its own entries
    own = file(db, world.officer, data_items=["姓名", "公民身份号码"])
    assert lists.suggest_matches(db, own) == []
    # title keywords count when no item name matches
    by_title = file(db, world.other_officer, title="签发机关查询需求", data_items=["证件类别"])
    assert [s.entry_id for s in lists.suggest_matches(db, by_title)] == [id_card.entry_id]
    assert lists.title_keywords("户籍人口信息需求") == ["户籍人口"]


def test_supply_demand_list_marks_gaps(db: Session, world: CatalogWorld):
    person = publish(db, world)
    matched = file(db, world.other_officer, data_items=["公民身份号码", "婚姻状况"])
    suggested = file(db, world.other_officer, title="低保审核", data_items=["住址"])
    gap = file(db, world.other_officer, title="不动产核查", data_items=["不动产权证号"])
    closed = file(db, world.other_officer, title="已撤回的需求", data_items=["不动产权证号"])
    lists.close_demand(db, world.other_officer, closed.id, "需求已不再需要")
    with pytest.raises(PermissionDenied):
        lists.match_demand(db, world.other_officer, matched.id, [person.entry_id])
    lists.match_demand(db, world.authority, matched.id, [person.entry_id], "户籍核验接口")
    result = lists.supply_demand_list(db, world.authority)
    by_id = {r.demand.id: r for r in result.rows}
    assert set(by_id) == {matched.id, suggested.id, gap.id}
    assert (result.total, result.matched, result.suggested, result.gaps) == (3, 1, 1, 1)
    assert by_id[gap.id].gap is True
    assert by_id[gap.id].state_label == "缺口"
    assert by_id[gap.id].suggestions == []
    assert by_id[suggested.id].gap is False
    assert [s.entry_id for s in by_id[suggested.id].suggestions] == [person.entry_id]
    assert by_id[suggested.id].uncovered_items == []  # the candidate holds 住址
    assert by_id[gap.id].uncovered_items == ["不动产权证号"]
    m = by_id[matched.id]
    assert m.state == "matched"
    assert [(e.code, e.department_name, e.share_type_name) for e in m.matched] == [
        (person.entry.code, "目录县公安局", "条件共享")
    ]
    assert m.uncovered_items == ["婚姻状况"]
    assert result.rows[0].state == "gap"  # gaps first
    # the provider sees the demand matched to its entry, as a demand on it
    police = lists.supply_demand_list(db, world.officer)
    assert [(r.demand.id, r.side) for r in police.rows] == [(matched.id, "supply")]
    civil = lists.supply_demand_list(db, world.other_officer)
    assert {r.side for r in civil.rows} == {"demand"}


def test_matching_accepts_only_published_entries_of_other_departments(
    db: Session, world: CatalogWorld, other_county: dict[str, Any]
):
    person = publish(db, world)
    draft = catalog.create_entry(db, world.officer, version_in(name="草稿资源"))
    civil_entry = catalog.create_entry(db, world.other_officer, version_in(name="婚姻登记信息"))
    catalog.submit(db, world.other_officer, civil_entry)
    catalog.review(db, world.authority, civil_entry, catalog_schemas.ReviewIn(decision="approve"))
    demand = file(db, world.other_officer)
    with pytest.raises(ValidationFailed, match="已发布") as exc:
        lists.match_demand(db, world.authority, demand.id, [draft.entry_id])
    assert exc.value.field == "entry_ids"
    with pytest.raises(ValidationFailed, match="自己的资源"):
        lists.match_demand(db, world.authority, demand.id, [civil_entry.entry_id])
    with pytest.raises(ValidationFailed):
        lists.match_demand(db, world.authority, demand.id, [])
    with pytest.raises(NotFound):
        lists.match_demand(db, other_county["authority"], demand.id, [person.entry_id])
    lists.match_demand(db, world.city_authority, demand.id, [person.entry_id])
    assert demand.status == DemandStatus.MATCHED
    assert actions(db)[-1] == "catalog:demand:match"
    with pytest.raises(Conflict):  # a matched demand is no longer edited
        lists.update_demand(db, world.other_officer, demand.id, lists.DemandUpdate(title="新名称"))
    # the entry is withdrawn: the match no longer holds
    catalog.withdraw(db, world.head, person.entry, catalog_schemas.WithdrawIn(reason="职能划转"))
    (row,) = lists.supply_demand_list(db, world.authority).rows
    assert row.state == "gap"
    assert row.matched[0].published is False


def test_closing_a_demand(db: Session, world: CatalogWorld):
    demand = file(db, world.other_officer, expected_provider_id=world.police.id)
    with pytest.raises(PermissionDenied):  # the provider sees it but may not close it
        lists.close_demand(db, world.officer, demand.id, "我们没有该数据")
    with pytest.raises(ValidationFailed) as exc:
        lists.close_demand(db, world.other_officer, demand.id, "不要")
    assert exc.value.field == "reason"
    lists.close_demand(db, world.authority, demand.id, "已通过省级平台解决")
    assert demand.status == DemandStatus.CLOSED
    assert "关闭原因：已通过省级平台解决" in demand.match_note
    assert actions(db)[-1] == "catalog:demand:close"
    with pytest.raises(Conflict):
        lists.close_demand(db, world.other_officer, demand.id, "再次关闭")
    assert lists.supply_demand_list(db, world.authority).rows == []
    assert [d.id for d in lists.list_demands(db, world.authority, "closed")] == [demand.id]


# ---------------------------------------------------------------- responsibility list


def test_responsibility_list_holds_published_entries_only(db: Session, world: CatalogWorld):
    person = publish(db, world)
    id_card = publish(db, world, **id_card_entry())
    withdrawn = publish(db, world, name="已撤销资源")
    catalog.withdraw(db, world.head, withdrawn.entry, catalog_schemas.WithdrawIn(reason="不再采集"))
    catalog.create_entry(db, world.officer, version_in(name="草稿资源"))
    civil = catalog.create_entry(
        db, world.other_officer, version_in(name="婚姻登记信息", update_frequency="monthly")
    )
    catalog.submit(db, world.other_officer, civil)
    catalog.review(db, world.authority, civil, catalog_schemas.ReviewIn(decision="approve"))
    rows = lists.responsibility_list(db, world.reviewer)
    assert {r.entry_id for r in rows} == {person.entry_id, id_card.entry_id, civil.entry_id}
    # by department (each department's rows together), then by resource code
    departments = [r.department_id for r in rows]
    runs = [d for i, d in enumerate(departments) if i == 0 or departments[i - 1] != d]
    assert sorted(runs) == sorted(set(departments))
    police_rows = [r for r in rows if r.department_id == world.police.id]
    assert [r.code for r in police_rows] == sorted([person.entry.code, id_card.entry.code])
    p = next(r for r in rows if r.entry_id == person.entry_id)
    assert p.department_name == "目录县公安局"
    assert p.update_frequency_label == "每日"
    assert p.subject_key_kind == "person"
    assert p.is_returned_data is False
    assert [(i.name, i.field, i.required) for i in p.items] == [
        ("公民身份号码", "id_number", True),
        ("姓名", "name", True),
        ("住址", "address", False),
    ]
    only_civil = lists.responsibility_list(db, world.reviewer, world.civil.id)
    assert [(r.name, r.update_frequency_label) for r in only_civil] == [("婚姻登记信息", "每月")]


def test_responsibility_csv_neutralises_formulas(db: Session, world: CatalogWorld):
    publish(
        db,
        world,
        data_items=[
            {
                "name": "公民身份号码",
                "field": "id_number",
                "data_type": "id_number",
                "required": True,
            },
            {"name": '=HYPERLINK("http://x")', "field": "evil", "data_type": "string"},
        ],
    )
    body = lists.responsibility_csv(db, world.reviewer).decode("utf-8")
    assert body.startswith("\ufeff责任部门,")
    assert "'=HYPERLINK" in body
    assert ",=HYPERLINK" not in body
    assert lists.csv_cell("-1") == "'-1"
    assert lists.csv_cell("@x") == "'@x"
    assert lists.csv_cell("+1") == "'+1"
    assert lists.csv_cell("户籍") == "户籍"
    assert actions(db)[-1] == "catalog:list:export"


# ---------------------------------------------------------------- JSON API


def test_api_permissions(client: TestClient, db: Session, world: CatalogWorld):
    login(client, username(db, world.reviewer))
    r = client.post(
        "/api/v1/catalog/demands",
        json={"title": "婚姻登记", "data_items": ["姓名"], "scenario": "婚姻登记核验"},
    )
    assert r.status_code == 403
    demand = file(db, world.other_officer)
    person = publish(db, world)
    db.commit()
    login(client, username(db, world.officer))
    r = client.post(
        f"/api/v1/catalog/demands/{demand.id}/match", json={"entry_ids": [person.entry_id]}
    )
    assert r.status_code == 403
    r = client.post("/api/v1/catalog/changes/1/resolve", json={})
    assert r.status_code == 404
    huge = 2**40
    assert client.get(f"/api/v1/catalog/demands/{huge}/suggestions").status_code == 404
    r = client.post(
        "/api/v1/catalog/changes",
        json={
            "department_id": huge,
            "trigger": "law",
            "description": "法规修订",
            "occurred_on": "2026-10-09",
        },
    )
    assert r.status_code == 422
    r = client.get("/api/v1/catalog/lists/responsibility", params={"department_id": huge})
    assert r.json() == []


def test_api_demand_flow(client: TestClient, db: Session, world: CatalogWorld):
    person = publish(db, world)
    login(client, username(db, world.other_officer))
    r = client.post(
        "/api/v1/catalog/demands",
        json={
            "title": "婚姻登记需要户籍信息",
            "data_items": ["公民身份号码", "婚姻状况"],
            "scenario": "办理婚姻登记时核验户籍",
            "expected_provider_id": world.police.id,
        },
    )
    assert r.status_code == 201, r.text
    demand = r.json()
    assert demand["status"] == "open"
    assert demand["expected_provider_name"] == "目录县公安局"
    r = client.patch(f"/api/v1/catalog/demands/{demand['id']}", json={"basis": "《婚姻登记条例》"})
    assert r.status_code == 200
    assert r.json()["basis"] == "《婚姻登记条例》"
    r = client.get(f"/api/v1/catalog/demands/{demand['id']}/suggestions")
    assert [s["code"] for s in r.json()] == [person.entry.code]
    r = client.get("/api/v1/catalog/lists/supply-demand")
    assert r.json()["suggested"] == 1
    login(client, username(db, world.authority))
    r = client.post(
        f"/api/v1/catalog/demands/{demand['id']}/match",
        json={"entry_codes": [person.entry.code], "note": "通过核验接口"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "matched"
    assert r.json()["matched_entry_ids"] == [person.entry_id]
    r = client.get("/api/v1/catalog/demands", params={"status": "matched"})
    assert [d["id"] for d in r.json()] == [demand["id"]]
    r = client.post(
        f"/api/v1/catalog/demands/{demand['id']}/close", json={"reason": "对接完毕归档"}
    )
    assert r.json()["status"] == "closed"
    r = client.get(
        "/api/v1/catalog/lists/responsibility", params={"department_id": world.police.id}
    )
    assert [row["code"] for row in r.json()] == [person.entry.code]


def test_api_change_flow(
    client: TestClient, db: Session, world: CatalogWorld, monkeypatch: pytest.MonkeyPatch
):
    on(monkeypatch, date(2026, 10, 15))
    login(client, username(db, world.officer))
    r = client.post(
        "/api/v1/catalog/changes",
        json={"trigger": "law", "description": "条例修订", "occurred_on": "2026-09-30"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["due"], body["days_left"], body["clock_label"]) == (
        "2026-10-13",
        -2,
        "已逾期 2 个工作日",
    )
    r = client.post(
        "/api/v1/catalog/changes",
        json={
            "trigger": "law",
            "description": "条例修订",
            "occurred_on": "2026-09-30",
            "department_id": world.civil.id,
        },
    )
    assert r.status_code == 403
    r = client.post(f"/api/v1/catalog/changes/{body['id']}/resolve", json={"version_ids": []})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "version_ids"
    r = client.get("/api/v1/catalog/changes", params={"open_only": True})
    assert [c["id"] for c in r.json()] == [body["id"]]
    login(client, username(db, world.authority))
    r = client.post(
        f"/api/v1/catalog/changes/{body['id']}/resolve", json={"resolution": "不涉及目录变化"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "resolved"


def test_every_lists_route_for_every_role(
    app: FastAPI, db: Session, factory: Factory, world: CatalogWorld
):
    """Like the authorization matrix: each role lacking a route's permission gets 403, each
    role with it gets past the check, and nothing answers 500."""
    routes = [
        (m, p, r)
        for p, r in all_routes(app)
        for m in sorted(r.methods)
        if p.startswith(
            ("/api/v1/catalog/changes", "/api/v1/catalog/demands", "/api/v1/catalog/lists")
        )
        or p.startswith(("/catalog/changes", "/catalog/demands", "/catalog/lists"))
    ]
    assert len(routes) == 11 + 12
    users = {
        Role.AUTHORITY: db.get(User, world.authority.id),
        Role.DEPT_OFFICER: db.get(User, world.officer.id),
        Role.DEPT_REVIEWER: db.get(User, world.reviewer.id),
        Role.DEPT_HEAD: db.get(User, world.head.id),
        Role.OPERATOR: factory.user(Role.OPERATOR),
        Role.PUBLIC: factory.user(Role.PUBLIC),
    }
    failures: list[str] = []
    for role, user in users.items():
        assert user is not None
        client = TestClient(app)
        token = login(client, user.username)
        perms = permissions_for(role)
        for method, path, route in routes:
            perm = required_perm(route)
            assert perm is not None, f"{method} {path} declares no permission"
            status = call(client, method, fill(path, {}), token)
            where = f"{role.value} {method} {path} -> {status}"
            if status >= 500:
                failures.append(where)
            elif perm in perms and status == 403:
                failures.append(where + f" (has {perm}, refused)")
            elif perm not in perms and status != 403:
                failures.append(where + f" (lacks {perm}, not refused)")
    anon = TestClient(app)
    for method, path, _route in routes:
        status = call(anon, method, fill(path, {}), None)
        expected = 303 if (method == "GET" and not path.startswith("/api/")) else 401
        if status != expected:
            failures.append(f"anonymous {method} {path} -> {status}")
    assert not failures, "\n".join(failures)
    assert Perm.CATALOG_LISTS in permissions_for(Role.OPERATOR)


# ---------------------------------------------------------------- pages


def test_changes_page_shows_clocks_and_records(
    client: TestClient, db: Session, world: CatalogWorld, monkeypatch: pytest.MonkeyPatch
):
    on(monkeypatch, date(2026, 10, 15))
    lists.record_change(db, world.officer, None, "law", "条例修订甲", date(2026, 9, 30))
    lists.record_change(db, world.officer, None, "duty", "职能调整乙", date(2026, 10, 14))
    lists.record_change(db, world.officer, None, "law", "条例修订丙", date(2026, 10, 9))
    db.commit()
    login(client, username(db, world.officer))
    page = client.get("/catalog/changes")
    assert page.status_code == 200
    assert "已逾期 2 个工作日" in page.text
    assert "剩余 4 个工作日" in page.text  # Oct 14 + 5: Oct 21; Oct 16, 19, 20, 21
    assert "今日到期" in page.text  # Oct 9 + 5: Oct 10, 12, 13, 14, 15
    assert "《南阳市政务数据共享管理暂行办法》第二十二条" in page.text
    r = client.post(
        "/catalog/changes",
        data={"trigger": "duty", "description": "机构改革", "occurred_on": "2026-10-15"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    r = client.post(
        "/catalog/changes",
        data={"trigger": "duty", "description": "机构改革", "occurred_on": "2026-10-16"},
    )
    assert r.status_code == 422
    assert "发生日期不能晚于今天" in r.text
    r = client.post("/catalog/changes", data={"description": "机构改革"})
    assert r.status_code == 422
    assert "变更类型：必填" in r.text


def test_change_resolve_page_form(client: TestClient, db: Session, world: CatalogWorld):
    published = publish(db, world)
    event = lists.record_change(db, world.officer, None, "law", "条例修订", lists.china_today())
    draft = catalog.new_version(
        db, world.officer, published.entry, catalog_schemas.NewVersionIn(change_note="依法修订")
    )
    catalog.submit(db, world.officer, draft)
    db.commit()
    login(client, username(db, world.officer))
    page = client.get("/catalog/changes")
    assert f'name="version_ids" value="{draft.id}"' in page.text
    r = client.post(f"/catalog/changes/{event.id}/resolve", data={"resolution": ""})
    assert r.status_code == 422
    assert "请选择为此次变更提交审核" in r.text
    r = client.post(
        f"/catalog/changes/{event.id}/resolve",
        data={"version_ids": str(draft.id), "resolution": "已更新"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    db.refresh(event)
    assert event.version_ids == [draft.id]


def test_demand_pages(client: TestClient, db: Session, world: CatalogWorld):
    person = publish(db, world)
    db.commit()
    login(client, username(db, world.other_officer))
    r = client.post(
        "/catalog/demands",
        data={
            "title": "婚姻登记需要户籍信息",
            "data_items": "公民身份号码\n婚姻状况",
            "scenario": "办理婚姻登记时核验户籍",
            "expected_provider_id": str(world.police.id),
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    demand_id = int(r.headers["location"].rsplit("/", 1)[1])
    r = client.post("/catalog/demands", data={"title": "婚姻登记", "scenario": "核验户籍信息"})
    assert r.status_code == 422
    assert "需要的信息项：必填" in r.text
    r = client.post(
        "/catalog/demands", data={"title": "婚", "data_items": "姓名", "scenario": "核验户籍信息"}
    )
    assert "需求名称：至少 2 个字符" in r.text
    page = client.get(f"/catalog/demands/{demand_id}")
    assert page.status_code == 200
    assert person.entry.code in page.text  # a candidate
    assert 'data-testid="edit-form"' in page.text
    r = client.post(
        f"/catalog/demands/{demand_id}",
        data={
            "title": "婚姻登记需要户籍信息",
            "data_items": "公民身份号码、婚姻状况、姓名",
            "scenario": "办理婚姻登记时核验户籍",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    demand = db.get(CatalogDemand, demand_id)
    assert demand is not None
    db.refresh(demand)
    assert demand.data_items == ["公民身份号码", "婚姻状况", "姓名"]
    assert demand.expected_provider_id is None  # cleared in the form
    listing = client.get("/catalog/demands")
    assert "婚姻登记需要户籍信息" in listing.text

    login(client, username(db, world.authority))
    listing = client.get("/catalog/demands")
    assert f'data-testid="match-form-{demand_id}"' in listing.text
    r = client.post(
        f"/catalog/demands/{demand_id}/match",
        data={"entry_ids": [str(person.entry_id)], "note": "核验接口", "back": "/catalog/demands"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/catalog/demands"
    r = client.post(f"/catalog/demands/{demand_id}/match", data={"entry_codes": "999/99999"})
    assert r.status_code == 422
    assert "资源代码 999/99999 不存在" in r.text
    sd = client.get("/catalog/lists/supply-demand")
    assert sd.status_code == 200
    assert "已对接" in sd.text
    assert person.entry.code in sd.text
    r = client.post(
        f"/catalog/demands/{demand_id}/close", data={"reason": "归档"}, follow_redirects=False
    )
    assert r.status_code == 422
    r = client.post(
        f"/catalog/demands/{demand_id}/close",
        data={"reason": "对接完毕归档"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert client.get("/catalog/demands/999999").status_code == 404


def test_supply_demand_page_marks_gaps(client: TestClient, db: Session, world: CatalogWorld):
    file(db, world.other_officer, title="不动产核查", data_items=["不动产权证号"])
    db.commit()
    login(client, username(db, world.authority))
    page = client.get("/catalog/lists/supply-demand")
    assert page.status_code == 200
    assert 'data-testid="gap"' in page.text
    assert "缺口" in page.text
    assert client.get("/catalog/lists/supply-demand?state=gap").status_code == 200


def test_responsibility_page_and_csv(client: TestClient, db: Session, world: CatalogWorld):
    person = publish(db, world)
    db.commit()
    login(client, username(db, world.reviewer))
    page = client.get("/catalog/lists/responsibility")
    assert page.status_code == 200
    assert f'data-testid="resp-{person.entry.code}"' in page.text
    assert "每日" in page.text
    r = client.get(f"/catalog/lists/responsibility.csv?department_id={world.police.id}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith("\ufeff".encode())
    assert person.entry.code in r.content.decode("utf-8")
    assert client.get("/catalog/lists/responsibility?department_id=x").status_code == 422


def test_pages_for_the_operator(
    client: TestClient, db: Session, factory: Factory, world: CatalogWorld
):
    publish(db, world)
    file(db, world.other_officer)
    lists.record_change(db, world.officer, None, "law", "条例修订", lists.china_today())
    db.commit()
    operator = factory.user(Role.OPERATOR)
    login(client, operator.username)
    for url in (
        "/catalog/changes",
        "/catalog/demands",
        "/catalog/lists/supply-demand",
        "/catalog/lists/responsibility",
    ):
        r = client.get(url)
        assert r.status_code == 200, url
        assert 'data-testid="change-form"' not in r.text
        assert 'data-testid="demand-form"' not in r.text
    assert "条例修订" in client.get("/catalog/changes").text
