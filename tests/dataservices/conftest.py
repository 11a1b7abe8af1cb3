"""Data-service fixtures: a committed database (the gateway reads on its own connection and
its ledger writer commits in its own thread, so the rolled-back ``db`` fixture cannot be
used) with a provider's published person entry holding records, a published service, and
helpers to make consumers, credentials and grants in any state."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from govshare import migrate
from govshare.catalog import schemas as catalog_schemas
from govshare.catalog import service as catalog
from govshare.dataservices import gateway as gw
from govshare.dataservices import ledger
from govshare.dataservices import service as ds_service
from govshare.db import china_today, make_engine, set_engine
from govshare.ingestion import service as ingest
from govshare.ingestion.models import BatchSource
from govshare.ingestion.validators import id_check_digit
from govshare.orgs import schemas as orgs_schemas
from govshare.orgs import service as orgs
from govshare.orgs.codes import credit_code
from govshare.orgs.models import Department, Level
from govshare.permissions import Role, permissions_for
from govshare.principal import Principal
from govshare.sharing import grants
from govshare.sharing.models import Grant
from tests.catalog.conftest import person_entry
from tests.conftest import drop_pg_database, fresh_database_url

ROWS = 200
ACTOR = Principal.platform("test_dataservices")


def person_key(n: int) -> str:
    body = f"411302{date(1960, 1, 1) + timedelta(days=n):%Y%m%d}{n % 1000:03d}"
    return body + id_check_digit(body)


def person_row(n: int) -> dict[str, Any]:
    return {"id_number": person_key(n), "name": f"李{n}", "address": f"人民路{n}号"}


@dataclass
class Live:
    """A committed world: provider police, its entry (``ROWS`` persons) and service."""

    engine: Engine
    url: str
    entry_id: int
    service_id: int
    police_id: int
    jurisdiction_code: str
    authority: Principal
    operator: Principal
    _n: list[int] = field(default_factory=lambda: [0])

    def session(self) -> Session:
        return sessionmaker(bind=self.engine, expire_on_commit=False)()

    def consumer(self, name: str | None = None) -> tuple[int, str]:
        """A new consumer department and an app credential of it: (department id, token)."""
        self._n[0] += 1
        with self.session() as s:
            dept = orgs.create_department(
                s,
                ACTOR,
                orgs_schemas.DepartmentIn(
                    name=name or f"测试使用部门{uuid.uuid4().hex[:6]}",
                    credit_code=credit_code(self.jurisdiction_code, 5000 + self._n[0] * 7 + 11),
                    jurisdiction_code=self.jurisdiction_code,
                ),
            )
            issued = orgs.create_credential(
                s,
                ACTOR,
                orgs_schemas.CredentialIn(
                    department_id=dept.id, system_name="测试业务系统", valid_days=30
                ),
            )
            s.commit()
            return dept.id, issued.token

    def grant(
        self,
        consumer_id: int,
        items: list[str],
        methods: list[str],
        *,
        starts_on: date | None = None,
        ends_on: date | None = None,
        status: str = "active",
    ) -> int:
        """Issue a grant to the consumer, then put it in ``status`` (suspended/terminated)."""
        today = china_today()
        with self.session() as s:
            g = grants.issue(
                s,
                ACTOR,
                consumer_department_id=consumer_id,
                entry_id=self.entry_id,
                items=items,
                methods=methods,
                purpose="测试用途：核验申请人信息",
                scenario="测试场景",
                starts_on=starts_on or today - timedelta(days=1),
                ends_on=ends_on or today + timedelta(days=30),
                approved_by="测试审核人",
            )
            s.flush()
            if status == "suspended":
                grants.suspend(s, self.authority, g, "测试暂停")
            elif status == "terminated":
                grants.terminate(s, self.authority, g, "测试终止")
            s.commit()
            gid = g.id
        gw.forget_all()
        return gid

    def grant_row(self, grant_id: int) -> Grant:
        with self.session() as s:
            g = s.get(Grant, grant_id)
            assert g is not None
            return g

    def client(self) -> TestClient:
        from govshare.main import create_app

        set_engine(self.engine)
        return TestClient(create_app())


def headers(token: str, user: str = "%E5%BC%A0%E4%B8%89") -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-Govshare-User": user}


def build_live(url: str) -> Live:
    engine = make_engine(url)
    migrate.upgrade(engine)
    set_engine(engine)
    code = "411300"
    with sessionmaker(bind=engine, expire_on_commit=False)() as s:
        orgs.create_jurisdiction(
            s, ACTOR, orgs_schemas.JurisdictionIn(code=code, name="南阳市", level=Level.CITY)
        )
        authority_dept = orgs.create_department(
            s,
            ACTOR,
            orgs_schemas.DepartmentIn(
                name="南阳市数据局",
                credit_code=credit_code(code, 1),
                jurisdiction_code=code,
                is_data_authority=True,
            ),
        )
        police = orgs.create_department(
            s,
            ACTOR,
            orgs_schemas.DepartmentIn(
                name="南阳市公安局", credit_code=credit_code(code, 2), jurisdiction_code=code
            ),
        )
        officer = orgs.department_principal(police, Role.DEPT_OFFICER, "数据专员")
        authority = orgs.department_principal(authority_dept, Role.AUTHORITY, "数据局审核人")
        version = catalog.create_entry(
            s,
            officer,
            catalog_schemas.EntryCreate.model_validate(
                person_entry(share_methods=["verification", "query", "batch"])
            ),
        )
        catalog.submit(s, officer, version)
        catalog.review(s, authority, version, catalog_schemas.ReviewIn(decision="approve"))
        s.flush()
        system = orgs.department_principal(police, Role.SYSTEM, "户籍系统")
        entry = ingest.target_entry(s, system, version.entry_id)
        ingest.load_rows(
            s,
            system,
            entry,
            [(n + 2, person_row(n)) for n in range(ROWS)],
            source=BatchSource.PUSH,
            client_batch_id="live-fixture",
        )
        operator = Principal(
            kind="user",
            id=None,
            name="运维组",
            role=Role.OPERATOR,
            permissions=permissions_for(Role.OPERATOR),
        )
        svc = ds_service.publish(
            s,
            operator,
            entry_id=version.entry_id,
            name="户籍人口核验与查询",
            methods=["verification", "query", "batch"],
            scenario="身份核验",
        )
        s.commit()
        return Live(
            engine=engine,
            url=url,
            entry_id=version.entry_id,
            service_id=svc.id,
            police_id=police.id,
            jurisdiction_code=code,
            authority=authority,
            operator=operator,
        )


@pytest.fixture(scope="module")
def live(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    path: Path = tmp_path_factory.mktemp(f"live-{backend}")
    url = fresh_database_url(backend, path)
    world = build_live(url)
    yield world
    ledger.stop_writer()
    world.engine.dispose()
    if backend == "postgresql":
        drop_pg_database(url)


def department(live: Live, dept_id: int) -> Department:
    with live.session() as s:
        d = s.get(Department, dept_id)
        assert d is not None
        return d
