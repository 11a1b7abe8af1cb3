"""``kill -9`` during ``govshare import`` leaves no partial batch, and the import re-runs.

DESIGN.md (reliability bars): a batch interrupted by a crash leaves no partial state. The
import runs as a real subprocess against a file-backed SQLite database and a scratch
PostgreSQL database; it is killed once its progress shows rows written in its transaction.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from govshare.catalog import schemas as catalog_schemas
from govshare.catalog import service as catalog
from govshare.db import make_engine
from govshare.ingestion.models import IngestBatch, IngestError
from govshare.ingestion.validators import id_check_digit
from govshare.orgs import schemas as orgs_schemas
from govshare.orgs import service as orgs
from govshare.orgs.codes import credit_code
from govshare.orgs.models import Level
from govshare.permissions import Role
from govshare.principal import Principal
from tests.catalog.conftest import person_entry
from tests.conftest import run_cli

ROWS = 100_000
BAD_ROWS = 3
#: the import is killed once its progress line (printed after a chunk is written) shows this
KILL_AFTER_ROWS = 2_000  # the first line: one chunk written


def set_up(url: str, var_dir: Path) -> tuple[int, str, str]:
    """A migrated database with a city, its authority, its police and a published entry."""
    upgraded = run_cli("db", "upgrade", url=url, env={"GOVSHARE_VAR_DIR": str(var_dir)})
    assert upgraded.returncode == 0, upgraded.stderr
    engine = make_engine(url)
    with Session(engine, expire_on_commit=False) as s:
        actor = Principal.platform("test_crash")
        orgs.create_jurisdiction(
            s, actor, orgs_schemas.JurisdictionIn(code="411300", name="南阳市", level=Level.CITY)
        )
        authority = orgs.create_department(
            s,
            actor,
            orgs_schemas.DepartmentIn(
                name="南阳市数据局",
                credit_code=credit_code("411300", 1),
                jurisdiction_code="411300",
                is_data_authority=True,
            ),
        )
        police = orgs.create_department(
            s,
            actor,
            orgs_schemas.DepartmentIn(
                name="南阳市公安局",
                credit_code=credit_code("411300", 2),
                jurisdiction_code="411300",
            ),
        )
        officer = orgs.department_principal(police, Role.DEPT_OFFICER, "test_crash")
        version = catalog.create_entry(
            s, officer, catalog_schemas.EntryCreate.model_validate(person_entry())
        )
        catalog.submit(s, officer, version)
        catalog.review(
            s,
            orgs.department_principal(authority, Role.AUTHORITY, "test_crash"),
            version,
            catalog_schemas.ReviewIn(decision="approve"),
        )
        s.commit()
        result = (version.entry_id, version.entry.code, police.credit_code)
    engine.dispose()
    return result


def write_people(path: Path) -> None:
    with path.open("w", encoding="utf-8") as f:
        f.write("公民身份号码,姓名,住址\n")
        for n in range(ROWS):
            body = f"411302{date(1950, 1, 1) + timedelta(days=n % 20000):%Y%m%d}{n // 20000:03d}"
            f.write(f"{body + id_check_digit(body)},李{n},人民路{n}号\n")
        for n in range(BAD_ROWS):
            f.write(f"12{n},坏行,某地\n")


def counts(url: str, entry_id: int) -> tuple[int, int, int, int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        data = conn.scalar(text(f"SELECT count(*) FROM data_{entry_id}"))  # noqa: S608
        history = conn.scalar(text(f"SELECT count(*) FROM data_{entry_id}_history"))  # noqa: S608
        batches = conn.scalar(select(func.count()).select_from(IngestBatch))
        errors = conn.scalar(select(func.count()).select_from(IngestError))
    engine.dispose()
    return int(data or 0), int(history or 0), int(batches or 0), int(errors or 0)


def test_kill_9_mid_import_leaves_nothing_and_the_import_reruns(
    fresh_db_url: str, tmp_path: Path
) -> None:
    var_dir = tmp_path / "var"
    entry_id, code, department = set_up(fresh_db_url, var_dir)
    csv = tmp_path / "people.csv"
    write_people(csv)
    env = os.environ | {
        "GOVSHARE_DATABASE_URL": fresh_db_url,
        "GOVSHARE_VAR_DIR": str(var_dir),
        "COLUMNS": "200",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "govshare.cli",
            "import",
            code,
            str(csv),
            "--department",
            department,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = []
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break  # the import ended before it was killed: the assertions below fail
            seen.append(line)
            m = re.search(r"已处理 ([\d,]+) 行", line)
            if m and int(m.group(1).replace(",", "")) >= KILL_AFTER_ROWS:
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.wait(timeout=60)
        if proc.stderr is not None:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    # nothing of the killed batch: no rows, no history, no batch, no error report
    assert counts(fresh_db_url, entry_id) == (0, 0, 0, 0)

    again = run_cli(
        "import",
        code,
        str(csv),
        "--department",
        department,
        url=fresh_db_url,
        env={"GOVSHARE_VAR_DIR": str(var_dir)},
    )
    assert again.returncode == 0, again.stderr
    assert f"新增 {ROWS} 行" in again.stdout
    assert f"拒绝 {BAD_ROWS} 行" in again.stdout
    data, history, batches, errors = counts(fresh_db_url, entry_id)
    assert (data, history, batches) == (ROWS, ROWS, 1)
    assert errors == BAD_ROWS
    engine = make_engine(fresh_db_url)
    with Session(engine) as s:
        batch = s.scalars(select(IngestBatch)).one()
        assert (batch.status, batch.rows_total, batch.rows_loaded, batch.rows_rejected) == (
            "committed",
            ROWS + BAD_ROWS,
            ROWS,
            BAD_ROWS,
        )
    engine.dispose()
