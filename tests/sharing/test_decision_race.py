"""Two reviewers deciding the same application at once, on two PostgreSQL connections:
exactly one decision lands; the other reviewer is told that someone else decided."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from govshare.db import china_today, make_engine
from govshare.errors import Conflict
from govshare.orgs import schemas as orgs_schemas
from govshare.orgs import service as orgs_service
from govshare.orgs.codes import credit_code
from govshare.orgs.models import Department
from govshare.permissions import Role
from govshare.principal import Principal
from govshare.sharing import service as sharing
from govshare.sharing.models import ApplicationEvent, ApplicationStatus, Grant, ShareApplication
from tests.ingestion.test_crash import set_up
from tests.ingestion.test_push_race import _waiting_on_a_lock


@pytest.mark.postgresql_only  # SQLite serialises writers (BEGIN IMMEDIATE)
def test_two_reviewers_at_once_make_one_decision(
    fresh_db_url: str, backend: str, tmp_path: Path
) -> None:
    entry_id, _code, credit = set_up(fresh_db_url, tmp_path / "var")
    engine = make_engine(fresh_db_url)
    today = china_today()
    with Session(engine, expire_on_commit=False) as s:
        police = s.scalars(select(Department).where(Department.credit_code == credit)).one()
        civil = orgs_service.create_department(
            s,
            Principal.platform("test"),
            orgs_schemas.DepartmentIn(
                name="南阳市民政局",
                credit_code=credit_code("411300", 3),
                jurisdiction_code="411300",
            ),
        )
        app = sharing.file_application(
            s,
            orgs_service.department_principal(civil, Role.DEPT_OFFICER, "民政专员"),
            sharing.ApplicationIn(
                entry_id=entry_id,
                items=["id_number", "name"],
                scope="per_subject",
                methods=["verification"],
                purpose="核验低保申请人的户籍信息",
                scenario="最低生活保障申请审核",
                basis="《社会救助暂行办法》第十一条",
                period_start=today,
                period_end=today + timedelta(days=365),
            ),
            today=today,
        )
        s.commit()
        app_id = app.id
    first_decided = threading.Event()
    release_first = threading.Event()
    results: dict[str, Any] = {}

    def decide(name: str, approve: bool, hold: bool) -> None:
        reviewer = orgs_service.department_principal(police, Role.DEPT_REVIEWER, f"审核人{name}")
        try:
            with Session(engine, expire_on_commit=False) as s:
                app = s.get(ShareApplication, app_id)
                assert app is not None
                if approve:
                    sharing.approve(s, reviewer, app, today=today)
                else:
                    sharing.reject(s, reviewer, app, "申请用途与共享范围不符")
                if hold:
                    first_decided.set()
                    assert release_first.wait(30)
                s.commit()
                results[name] = app.status
        except BaseException as exc:  # reported by the main thread
            results[name] = exc
            first_decided.set()

    a = threading.Thread(target=decide, args=("甲", True, True))
    a.start()
    assert first_decided.wait(30)
    b = threading.Thread(target=decide, args=("乙", False, False))
    b.start()
    deadline = time.monotonic() + 30
    while not _waiting_on_a_lock(fresh_db_url, str(engine.url.database)):
        assert time.monotonic() < deadline, results  # 乙 waits on 甲's row lock
        time.sleep(0.05)
    release_first.set()
    a.join(30)
    b.join(30)
    assert results["甲"] == ApplicationStatus.APPROVED
    assert isinstance(results["乙"], Conflict), results["乙"]
    assert "已由他人处理" in results["乙"].message
    with Session(engine) as s:
        app = s.get(ShareApplication, app_id)
        assert app is not None
        assert (app.status, app.decided_by) == ("approved", "审核人甲")
        assert s.scalar(select(func.count()).select_from(Grant)) == 1
        actions = s.scalars(
            select(ApplicationEvent.action)
            .where(ApplicationEvent.application_id == app_id)
            .order_by(ApplicationEvent.id)
        ).all()
        assert actions == ["file", "approve"]
    engine.dispose()
