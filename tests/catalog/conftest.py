"""Catalog fixtures: a valid entry's metadata, a county with its officer and authority."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.orm import Session

from govshare.catalog import schemas
from govshare.catalog import service as catalog
from govshare.catalog.models import CatalogVersion
from govshare.orgs.models import Department, Jurisdiction
from govshare.permissions import Role
from govshare.principal import Principal
from govshare.rules import service as rules_service
from tests.conftest import Factory, platform


def person_entry(**overrides: Any) -> dict[str, Any]:
    """A valid conditional population entry keyed by ID number."""
    data: dict[str, Any] = {
        "catalog_kind": "department",
        "item_code": "01",
        "category_code": "001",
        "name": "户籍人口基本信息",
        "summary": "本县户籍人口的姓名、性别、出生日期、住址等基本信息。",
        "resource_format": "database",
        "data_items": [
            {
                "name": "公民身份号码",
                "field": "id_number",
                "data_type": "id_number",
                "length": 18,
                "required": True,
                "personal": True,
                "sensitive": True,
            },
            {
                "name": "姓名",
                "field": "name",
                "data_type": "string",
                "length": 50,
                "required": True,
                "personal": True,
            },
            {
                "name": "住址",
                "field": "address",
                "data_type": "string",
                "length": 200,
                "personal": True,
            },
        ],
        "subject_key_kind": "person",
        "subject_key_item": "id_number",
        "share_type": "conditional",
        "share_scope": "本县政务部门办理行政审批、公共服务事项",
        "share_purpose": "核验申请人户籍信息",
        "share_basis": "《中华人民共和国居民身份证法》第十三条",
        "share_methods": ["verification", "query"],
        "open_type": "not_open",
        "open_basis": "《中华人民共和国个人信息保护法》第二十八条",
        "update_frequency": "daily",
        "data_grade": "important",
    }
    data.update(overrides)
    return data


def version_in(**overrides: Any) -> schemas.EntryCreate:
    return schemas.EntryCreate.model_validate(person_entry(**overrides))


@dataclass
class CatalogWorld:
    city: Jurisdiction
    county: Jurisdiction
    county_authority_dept: Department
    police: Department
    civil: Department
    officer: Principal
    head: Principal
    other_officer: Principal
    authority: Principal
    city_authority: Principal
    reviewer: Principal


@pytest.fixture
def world(db: Session, factory: Factory) -> CatalogWorld:
    rules_service.seed_from_package(db, platform(), years=[2025, 2026])
    city = factory.jurisdiction("目录市", "city", code="930100", rulebook="nanyang-2021")
    county = factory.jurisdiction(
        "目录县", "county", parent=city, code="930121", rulebook="neixiang-2017"
    )
    city_data = factory.department(city, "目录市数据局", is_data_authority=True)
    county_data = factory.department(county, "目录县数据局", is_data_authority=True)
    police = factory.department(county, "目录县公安局")
    civil = factory.department(county, "目录县民政局")
    db.commit()
    return CatalogWorld(
        city=city,
        county=county,
        county_authority_dept=county_data,
        police=police,
        civil=civil,
        officer=factory.principal(factory.user(Role.DEPT_OFFICER, police)),
        head=factory.principal(factory.user(Role.DEPT_HEAD, police)),
        other_officer=factory.principal(factory.user(Role.DEPT_OFFICER, civil)),
        authority=factory.principal(factory.user(Role.AUTHORITY, county_data)),
        city_authority=factory.principal(factory.user(Role.AUTHORITY, city_data)),
        reviewer=factory.principal(factory.user(Role.DEPT_REVIEWER, police)),
    )


def publish(db: Session, world: CatalogWorld, **overrides: Any) -> CatalogVersion:
    """Draft, submit and approve an entry of the county police."""
    version = catalog.create_entry(db, world.officer, version_in(**overrides))
    catalog.submit(db, world.officer, version)
    catalog.review(db, world.authority, version, schemas.ReviewIn(decision="approve"))
    db.commit()
    return version
