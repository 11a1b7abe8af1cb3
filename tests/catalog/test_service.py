"""Catalog rules and the review workflow."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.audit.models import AuditEntry
from govshare.catalog import schemas
from govshare.catalog import service as catalog
from govshare.catalog.models import (
    CatalogReport,
    CatalogSearch,
    EntryStatus,
    VersionState,
)
from govshare.errors import Conflict, PermissionDenied, ValidationFailed
from tests.catalog.conftest import CatalogWorld, publish, version_in


def actions(db: Session) -> list[str]:
    return list(db.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))


def test_draft_gets_a_resource_code_from_its_classification(db: Session, world: CatalogWorld):
    first = catalog.create_entry(db, world.officer, version_in())
    second = catalog.create_entry(db, world.officer, version_in(name="户籍迁移信息"))
    base = catalog.create_entry(
        db,
        world.officer,
        version_in(
            catalog_kind="base",
            base_database="population",
            share_type="unconditional",
            share_scope="",
            share_purpose="",
            item_code="02",
            category_code="000",
            data_items=[
                {
                    "name": "公民身份号码",
                    "field": "id_number",
                    "data_type": "id_number",
                    "required": True,
                    "personal": True,
                }
            ],
        ),
    )
    assert first.entry.code == "301001/00001"
    assert second.entry.code == "301001/00002"
    assert base.entry.code == "102000/00001"
    assert first.state == VersionState.DRAFT
    assert first.entry.status == EntryStatus.DRAFT


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"share_scope": ""}, "share_scope", "须列明共享范围"),
        ({"share_purpose": ""}, "share_purpose", "须列明使用用途"),
        (
            {"share_type": "not_shared", "share_methods": [], "share_basis": "工作需要"},
            "share_basis",
            "须引用法律、行政法规或国务院决定",
        ),
        (
            {"catalog_kind": "base", "base_database": "population"},
            "share_type",
            "《南阳市政务数据共享管理暂行办法》第三十七条",
        ),
        ({"catalog_kind": "base"}, "base_database", "须注明所属基础库"),
        ({"is_classified": True}, "is_classified", "涉及国家秘密"),
        ({"subject_key_item": "name"}, "subject_key_item", "类型应为身份证号码"),
        ({"subject_key_item": "nope"}, "subject_key_item", "不在信息项中"),
        ({"share_methods": []}, "share_methods", "至少选择一种共享方式"),
        ({"open_type": "unconditional", "open_basis": ""}, "open_type", "敏感个人信息"),
        ({"related_codes": ["999999/99999"]}, "related_codes", "不存在"),
        ({"is_returned_data": True}, "returned_from", "回流数据须写明来源"),
    ],
)
def test_rules_are_enforced_with_the_field_named(
    db: Session, world: CatalogWorld, overrides: dict[str, object], field: str, fragment: str
) -> None:
    with pytest.raises(ValidationFailed) as err:
        catalog.create_entry(db, world.officer, version_in(**overrides))
    assert err.value.field == field
    assert fragment in err.value.message


def test_share_type_names_come_from_the_rulebook(db: Session, world: CatalogWorld) -> None:
    # the county uses neixiang-2017: 条件共享 / 不予共享, basis only for 不予共享
    with pytest.raises(ValidationFailed) as err:
        catalog.create_entry(db, world.officer, version_in(share_scope=""))
    assert "条件共享的资源须列明共享范围" in err.value.message
    assert "有条件共享" not in err.value.message
    items = [
        {
            "name": "公民身份号码",
            "field": "id_number",
            "data_type": "id_number",
            "required": True,
            "share_type": "conditional",
        }
    ]
    with pytest.raises(ValidationFailed) as err:
        catalog.create_entry(
            db, world.officer, version_in(share_type="unconditional", data_items=items)
        )
    assert "资源为强制共享" in err.value.message


def test_not_shared_with_a_named_law_is_accepted(db: Session, world: CatalogWorld) -> None:
    items = [
        {
            "name": "公民身份号码",
            "field": "id_number",
            "data_type": "id_number",
            "required": True,
            "personal": True,
        }
    ]
    v = catalog.create_entry(
        db,
        world.officer,
        version_in(
            share_type="not_shared",
            share_methods=[],
            data_items=items,
            share_basis="《中华人民共和国反恐怖主义法》第四十八条",
        ),
    )
    assert v.share_type == "not_shared"


def test_only_own_department_edits(db: Session, world: CatalogWorld) -> None:
    v = catalog.create_entry(db, world.officer, version_in())
    with pytest.raises(PermissionDenied):
        catalog.update_version(db, world.other_officer, v, version_in(name="别人的修改"))
    with pytest.raises(PermissionDenied):
        catalog.create_entry(db, world.reviewer, version_in())
    with pytest.raises(PermissionDenied):
        catalog.create_entry(db, world.officer, version_in(department_id=world.civil.id))


def test_submit_review_publish_with_working_day_deadline(db: Session, world: CatalogWorld):
    v = catalog.create_entry(db, world.officer, version_in())
    catalog.submit(db, world.officer, v)
    assert v.state == VersionState.SUBMITTED
    assert v.review_due is not None
    assert v.review_due > v.submitted_at.date()
    assert [x.id for x in catalog.review_queue(db, world.authority)] == [v.id]
    # the department cannot approve its own entry; another county's authority cannot either
    with pytest.raises(PermissionDenied):
        catalog.review(db, world.head, v, schemas.ReviewIn(decision="approve"))
    with pytest.raises(ValidationFailed):
        catalog.review(db, world.authority, v, schemas.ReviewIn(decision="return"))
    catalog.review(
        db, world.authority, v, schemas.ReviewIn(decision="return", comment="请补充共享依据条款")
    )
    assert v.state == VersionState.RETURNED
    catalog.update_version(db, world.officer, v, version_in(share_basis="《居民身份证法》第十三条"))
    catalog.submit(db, world.officer, v)
    catalog.review(db, world.authority, v, schemas.ReviewIn(decision="approve", comment="同意"))
    db.commit()
    entry = v.entry
    assert entry.status == EntryStatus.PUBLISHED
    assert entry.current_version_id == v.id
    assert v.publish_date is not None
    row = db.get(CatalogSearch, entry.id)
    assert row is not None
    assert "户籍人口基本信息" in row.name
    # a county's approved catalog is reported to its city (seed 003 art. 23)
    report = db.scalar(select(CatalogReport).where(CatalogReport.version_id == v.id))
    assert report is not None
    assert report.to_jurisdiction_id == world.city.id
    assert {
        "catalog:entry:create",
        "catalog:version:submit",
        "catalog:version:return",
        "catalog:version:update",
        "catalog:version:approve",
    } <= set(actions(db))


def test_city_authority_reviews_county_entries_too(db: Session, world: CatalogWorld) -> None:
    v = catalog.create_entry(db, world.officer, version_in())
    catalog.submit(db, world.officer, v)
    assert [x.id for x in catalog.review_queue(db, world.city_authority)] == [v.id]
    catalog.review(db, world.city_authority, v, schemas.ReviewIn(decision="approve"))
    assert v.state == VersionState.APPROVED


def test_a_change_is_a_new_version_and_the_old_stays_in_force(db: Session, world: CatalogWorld):
    v1 = publish(db, world)
    entry = v1.entry
    v2 = catalog.new_version(db, world.officer, entry, schemas.NewVersionIn(change_note="新增字段"))
    with pytest.raises(Conflict):
        catalog.new_version(db, world.officer, entry, schemas.NewVersionIn(change_note="再来"))
    items = [
        *v1.data_items,
        {
            "name": "民族",
            "field": "ethnicity",
            "data_type": "string",
            "required": False,
            "personal": True,
        },
    ]
    catalog.update_version(db, world.officer, v2, version_in(data_items=items, name="户籍人口信息"))
    catalog.submit(db, world.officer, v2)
    db.refresh(entry)
    assert entry.current_version_id == v1.id  # still in force while v2 is reviewed
    catalog.review(db, world.authority, v2, schemas.ReviewIn(decision="approve"))
    db.refresh(entry)
    db.refresh(v1)
    assert entry.current_version_id == v2.id
    assert v1.state == VersionState.SUPERSEDED
    changes = {c.label: c for c in catalog.diff(v1, v2)}
    assert changes["资源名称"].before == "户籍人口基本信息"
    assert changes["资源名称"].after == "户籍人口信息"
    assert "信息项“民族”（新增）" in changes
    assert [v.number for v in catalog.versions_of(db, world.officer, entry)] == [2, 1]


def test_withdraw_keeps_everything(db: Session, world: CatalogWorld) -> None:
    v = publish(db, world)
    entry = v.entry
    with pytest.raises(PermissionDenied):
        catalog.withdraw(db, world.officer, entry, schemas.WithdrawIn(reason="职能划转"))
    catalog.withdraw(db, world.head, entry, schemas.WithdrawIn(reason="职能划转至市局"))
    db.commit()
    assert entry.status == EntryStatus.WITHDRAWN
    assert db.get(CatalogSearch, entry.id) is None
    assert catalog.get_entry(db, world.other_officer, entry.id).withdrawn_reason == "职能划转至市局"
    assert len(catalog.versions_of(db, world.officer, entry)) == 1


def test_drafts_are_private_to_their_department_and_reviewers(db: Session, world: CatalogWorld):
    from govshare.errors import NotFound

    v = catalog.create_entry(db, world.officer, version_in())
    assert catalog.get_entry(db, world.reviewer, v.entry_id).id == v.entry_id
    assert catalog.get_entry(db, world.authority, v.entry_id).id == v.entry_id
    with pytest.raises(NotFound):
        catalog.get_entry(db, world.other_officer, v.entry_id)


def test_a_decided_version_cannot_be_decided_again(db: Session, world: CatalogWorld) -> None:
    v = catalog.create_entry(db, world.officer, version_in())
    catalog.submit(db, world.officer, v)
    catalog.review(db, world.authority, v, schemas.ReviewIn(decision="approve"))
    with pytest.raises(Conflict):
        catalog.review(
            db, world.city_authority, v, schemas.ReviewIn(decision="return", comment="晚到的退回")
        )


def test_item_settings_from_the_form_and_versions_without_them_compare_equal(
    db: Session, world: CatalogWorld
) -> None:
    """取值范围 and 校验位仅提示 come from the entry form; an item without them is stored
    as before, so versions made before the settings existed show no spurious change."""
    from govshare.catalog.views import form_to_version

    form = {
        "items-0-name": ["婚姻状况"],
        "items-0-field": ["marital"],
        "items-0-data_type": ["string"],
        "items-0-enumeration": ["未婚、已婚，离婚"],
        "items-1-name": ["统一社会信用代码"],
        "items-1-field": ["uscc"],
        "items-1-data_type": ["credit_code"],
        "items-1-checkdigit_warn": ["1"],
    }
    items = [schemas.DataItem(**it) for it in form_to_version(form)["data_items"]]
    assert items[0].enumeration == ["未婚", "已婚", "离婚"]
    assert items[1].checkdigit_warn is True
    version = publish(db, world)
    stored = version.data_items
    assert all("enumeration" not in it and "checkdigit_warn" not in it for it in stored)
