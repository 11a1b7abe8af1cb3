"""The govshare command end to end, as a subprocess on a database of its own."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from govshare import migrate
from govshare.audit import service as audit_service
from govshare.audit.models import AuditEntry
from govshare.catalog.models import CatalogChangeEvent, CatalogDemand, CatalogEntry
from govshare.db import make_engine
from govshare.ingestion import demo as ingestion_demo
from govshare.ingestion.models import DeletionRequest, IngestBatch
from govshare.ingestion.source_models import SourceConflict
from govshare.orgs.models import ContactFiling, Department, User
from govshare.rules.models import CalendarYear
from govshare.sharing.models import Grant, ShareAgreement, ShareApplication, ShareDispute
from tests.conftest import run_cli


def run(
    url: str, tmp_path: Path, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = run_cli(
        *args, url=url, env={"GOVSHARE_VAR_DIR": str(tmp_path / "var")}, stdin=stdin, timeout=120
    )
    if check and proc.returncode != 0:
        pytest.fail(f"govshare {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_demo_is_complete_and_idempotent(fresh_db_url: str, tmp_path: Path) -> None:
    out = run(fresh_db_url, tmp_path, "demo", "--no-serve").stdout
    assert "演示数据已载入" in out
    assert "汇聚数据 26,500 行" in out
    for username in ("authority", "officer", "reviewer", "head", "operator", "citizen"):
        assert username in out
    assert "gsk_" in out  # the demo credential is shown once
    again = run(fresh_db_url, tmp_path, "demo", "--no-serve").stdout
    assert "演示数据已存在" in again
    assert "gsk_" not in again
    engine = make_engine(fresh_db_url)
    with Session(engine) as s:
        depts = list(s.scalars(select(Department)))
        assert len(depts) == 13
        assert {d.jurisdiction.level for d in depts} == {"city", "county"}
        for d in depts:  # every department has its contacts on file
            assert (
                s.scalar(
                    select(func.count(ContactFiling.id)).where(ContactFiling.department_id == d.id)
                )
                == 3
            )
        roles = set(s.scalars(select(User.role)))
        assert roles == {
            "authority",
            "dept_officer",
            "dept_reviewer",
            "dept_head",
            "operator",
            "public",
        }
        assert s.scalar(select(func.count(CalendarYear.year))) >= 20
        published = s.scalar(
            select(func.count(CatalogEntry.id)).where(CatalogEntry.status == "published")
        )
        assert published is not None
        assert published >= 30
        assert s.scalar(select(func.count(CatalogDemand.id))) == 2
        assert s.scalar(select(func.count(CatalogChangeEvent.id))) == 2
        batches = s.scalars(select(IngestBatch).order_by(IngestBatch.id)).all()
        assert [(b.rows_loaded, b.rows_rejected) for b in batches] == [
            (20_000, 0),
            (5_000, 0),
            (1_500, ingestion_demo.MISTYPED + ingestion_demo.REPEATED),
        ]
        # the civil affairs names keyed differently are one-source conflicts; a deletion
        # request waits for the authority
        assert s.scalar(select(func.count(SourceConflict.id))) == ingestion_demo.MISRECORDED
        assert s.scalar(select(func.count(DeletionRequest.id))) == 1
        # sharing applications in every state the demo's rulebooks produce, two grants
        statuses = sorted(s.scalars(select(ShareApplication.status)))
        assert statuses == [
            "approved",
            "approved",
            "approved",  # the data services demo's batch request (unconditional)
            "pending_review",
            "pending_review",
            "rejected",
            "supplement_requested",
            "withdrawn",
        ]
        grant_states = sorted(s.scalars(select(Grant.status)))
        # one from an agreement, one for the data services demo's batch exchange
        assert grant_states == ["active", "active", "active", "suspended"]
        assert sorted(s.scalars(select(ShareDispute.status))) == ["escalated", "open"]
        # published services, and real calls with the demo credential in the usage ledger
        from govshare.dataservices.models import DataService, UsageEntry

        assert s.scalar(select(func.count(DataService.id))) == 3
        outcomes = dict(
            s.execute(select(UsageEntry.outcome, func.count()).group_by(UsageEntry.outcome)).all()
        )
        assert outcomes == {"ok": 58, "refused": 1}
        assert list(s.scalars(select(ShareAgreement.status))) == ["active"]
        assert audit_service.verify(s).ok
        assert s.scalar(select(func.count(AuditEntry.seq))) > 50
    engine.dispose()


def test_users_create_and_list(fresh_db_url: str, tmp_path: Path) -> None:
    run(fresh_db_url, tmp_path, "db", "upgrade")
    weak = run(
        fresh_db_url,
        tmp_path,
        "users",
        "create",
        "--username",
        "citizen1",
        "--name",
        "公众甲",
        "--role",
        "public",
        "--password",
        "weak",
        check=False,
    )
    assert weak.returncode == 1
    assert "密码至少" in weak.stderr
    ok = run(
        fresh_db_url,
        tmp_path,
        "users",
        "create",
        "--username",
        "citizen1",
        "--name",
        "公众甲",
        "--role",
        "public",
        "--password",
        "Citizen-Passw0rd",
    )
    assert "已创建用户 citizen1" in ok.stdout
    bad_role = run(
        fresh_db_url,
        tmp_path,
        "users",
        "create",
        "--username",
        "x",
        "--name",
        "某某",
        "--role",
        "boss",
        "--password",
        "Citizen-Passw0rd",
        check=False,
    )
    assert bad_role.returncode == 1
    assert "角色 boss 无效" in bad_role.stderr
    listing = run(fresh_db_url, tmp_path, "users", "list").stdout
    assert "citizen1" in listing
    assert "公众用户" in listing
    engine = make_engine(fresh_db_url)
    with Session(engine) as s:
        user = s.scalar(select(User).where(User.username == "citizen1"))
        assert user is not None
        assert user.password_hash.startswith("$argon2id$")
        assert "Citizen-Passw0rd" not in user.password_hash
    engine.dispose()


def test_serve_refuses_an_unmigrated_database(fresh_db_url: str, tmp_path: Path) -> None:
    proc = run(fresh_db_url, tmp_path, "serve", "--port", "1", check=False)
    assert proc.returncode == 1
    assert "govshare db upgrade" in proc.stderr


def test_db_upgrade_reports_and_is_repeatable(fresh_db_url: str, tmp_path: Path) -> None:
    first = run(fresh_db_url, tmp_path, "db", "upgrade").stdout
    assert "已载入工作日历：2004–2026 年" in first
    second = run(fresh_db_url, tmp_path, "db", "upgrade").stdout
    assert "数据库已是最新结构" in second
    assert "已载入工作日历" not in second
    head = ScriptDirectory.from_config(migrate.alembic_config(fresh_db_url)).get_current_head()
    assert run(fresh_db_url, tmp_path, "db", "current").stdout.strip() == head


def test_setup_on_an_empty_database_only(fresh_db_url: str, tmp_path: Path) -> None:
    from govshare.orgs.codes import credit_code

    args = [
        "setup",
        "--jurisdiction-code",
        "411300",
        "--jurisdiction-name",
        "某市",
        "--level",
        "city",
        "--rulebook",
        "nanyang-2021",
        "--department-name",
        "某市数据局",
        "--credit-code",
        credit_code("411300", 1),
        "--admin-username",
        "admin",
        "--admin-name",
        "管理员",
        "--password",
        "Admin-Passw0rd!",
    ]
    out = run(fresh_db_url, tmp_path, *args).stdout
    assert "已设置 某市（411300）" in out
    again = run(fresh_db_url, tmp_path, *args, check=False)
    assert again.returncode == 1
    assert "已经设置过" in again.stderr
    engine = make_engine(fresh_db_url)
    with Session(engine) as s:
        admin = s.scalar(select(User).where(User.username == "admin"))
        assert admin is not None
        assert admin.role == "authority"
        assert admin.department is not None
        assert admin.department.is_data_authority
        assert admin.department.jurisdiction.rulebook == "nanyang-2021"
    engine.dispose()
