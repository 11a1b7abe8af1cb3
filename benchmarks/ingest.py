"""Benchmark: aggregating 1,000,000 person rows (DESIGN.md: at most 2x a raw executemany of
the same rows into the same database, peak memory under 500 MB whatever the file size).

Generates a CSV of N valid person rows (18-digit resident ID numbers with GB 11643 check
digits, birth dates and real county codes from python-stdnum's division table, Chinese names,
addresses, mobile numbers), streamed to a temporary file. Then, on each database, in a scratch
database it creates (``govshare db upgrade`` plus one city, its data authority, its public
security bureau and a published person entry) and drops at the end, times in the same run:

  import  the real command, as a subprocess: ``govshare import CODE FILE --department CODE``
          (stream the file, validate every cell, load it as one batch with its history and
          audit record, one transaction); its peak memory is the larger of its peak RSS
          (``wait4``) and the peak PSS of it and its file-reading child process together,
          sampled from /proc every 0.2 s;
  raw     the peer: the same CSV read with the ``csv`` module and the same rows inserted
          with a bare DB-API ``executemany`` (2,000 rows a call, one transaction, no ORM, no
          validation, no history) into an empty copy of the same data table (same columns,
          same unique key index) in the same database.

Prints rows, seconds and rows/s for both, the ratio import/raw and the import's peak memory,
with PASS/FAIL against the bars; exits non-zero when a bar is missed.

    python benchmarks/ingest.py                       # 1,000,000 rows, SQLite (+ PostgreSQL
                                                      # when GOVSHARE_TEST_POSTGRES_URL is set)
    python benchmarks/ingest.py --rows 200000 --postgres postgresql://postgres@127.0.0.1/postgres
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Index, MetaData, Table, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from govshare.db import make_engine

TARGET_ROWS = 1_000_000
MAX_RATIO = 2.0
MAX_RSS_MB = 500.0
RAW_CHUNK = 2000

ITEMS = [
    ("公民身份号码", "id_number", "id_number", 18, True),
    ("姓名", "name", "string", 50, True),
    ("性别", "gender", "string", 4, True),
    ("出生日期", "birth_date", "date", None, True),
    ("户籍地址", "address", "string", 200, True),
    ("行政区划代码", "division_code", "division_code", None, False),
    ("联系电话", "phone", "phone", None, False),
]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈欧阳"  # noqa: E501
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华建国志红玉文博子涵浩然雨轩欣怡梓萱佳一诺思远晨曦"  # noqa: E501
STREETS = ["人民路", "解放路", "建设路", "中州路", "新华路", "七一路", "工业路", "文化路", "光明街"]
VILLAGES = ["东关", "西营", "南庄", "北湖", "杨庄", "李营", "王岗", "张湾", "刘集", "陈楼"]


def county_codes() -> list[str]:
    """Real county-level division codes from python-stdnum's table (what the validator uses)."""
    from stdnum import numdb

    from govshare.ingestion.validators import division_known

    codes: list[str] = []

    def walk(prefixes: Any, acc: str) -> None:
        for _length, low, high, _props, children in prefixes:
            if low != high:
                continue
            code = acc + low
            if len(code) == 6 and not code.endswith("00") and division_known(code):
                codes.append(code)
            walk(children, code)

    walk(numdb.get("cn/loc").prefixes, "")
    return codes


def generate_csv(path: Path, n: int, seed: int = 20261121) -> None:
    """Write ``n`` valid, distinct person rows as UTF-8 CSV (streamed, not held in memory)."""
    from govshare.ingestion.validators import id_check_digit

    rng = random.Random(seed)
    divisions = county_codes()
    start = date(1940, 1, 1)
    used: set[int] = set()
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow([name for name, *_ in ITEMS])
        written = 0
        while written < n:
            division = rng.choice(divisions)
            born = start + timedelta(days=rng.randrange(0, 365 * 84))
            seq = rng.randrange(0, 1000)
            body = f"{division}{born:%Y%m%d}{seq:03d}"
            if int(body) in used:
                continue
            used.add(int(body))
            name = rng.choice(SURNAMES) + "".join(
                rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2)))
            )
            if rng.random() < 0.5:
                address = (
                    f"{rng.choice(STREETS)}{rng.randrange(1, 500)}号"
                    f"{rng.randrange(1, 30)}号楼{rng.randrange(1, 6)}单元"
                    f"{rng.randrange(101, 2802)}室"
                )
            else:
                address = (
                    f"{rng.choice(VILLAGES)}村{rng.randrange(1, 12)}组{rng.randrange(1, 200)}号"
                )
            phone = f"1{rng.choice('3456789')}{rng.randrange(0, 10**9):09d}"
            out.writerow(
                [
                    body + id_check_digit(body),
                    name,
                    "男" if seq % 2 else "女",
                    born.isoformat(),
                    address,
                    division,
                    phone if rng.random() < 0.9 else "",
                ]
            )
            written += 1


# ------------------------------------------------------------------------- scratch databases


def scratch_postgres(base_url: str) -> str:
    name = f"govshare_bench_ingest_{uuid.uuid4().hex[:8]}"
    admin = make_engine(base_url, isolation_level="AUTOCOMMIT", poolclass=None)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


def drop_postgres(base_url: str, url: str) -> None:
    admin = make_engine(base_url, isolation_level="AUTOCOMMIT", poolclass=None)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def govshare(*args: str, url: str, var_dir: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {
        "GOVSHARE_DATABASE_URL": url,
        "GOVSHARE_VAR_DIR": str(var_dir),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "govshare.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@dataclass
class World:
    entry_id: int
    code: str
    credit_code: str


def set_up(url: str, var_dir: Path) -> World:
    """``govshare db upgrade``, then a city, its data authority, its public security bureau and
    a published person entry (through the platform's own services, as an operator would)."""
    done = govshare("db", "upgrade", url=url, var_dir=var_dir)
    if done.returncode != 0:
        raise SystemExit(f"govshare db upgrade failed:\n{done.stdout}{done.stderr}")
    from govshare.catalog import schemas as catalog_schemas
    from govshare.catalog import service as catalog
    from govshare.orgs import schemas as orgs_schemas
    from govshare.orgs import service as orgs
    from govshare.orgs.codes import credit_code
    from govshare.orgs.models import Level
    from govshare.permissions import Role
    from govshare.principal import Principal

    engine = make_engine(url)
    with Session(engine, expire_on_commit=False) as s:
        platform_actor = Principal.platform("benchmarks/ingest.py")
        orgs.create_jurisdiction(
            s,
            platform_actor,
            orgs_schemas.JurisdictionIn(code="411300", name="南阳市", level=Level.CITY),
        )
        authority = orgs.create_department(
            s,
            platform_actor,
            orgs_schemas.DepartmentIn(
                name="南阳市数据局",
                credit_code=credit_code("411300", 1),
                jurisdiction_code="411300",
                is_data_authority=True,
            ),
        )
        police = orgs.create_department(
            s,
            platform_actor,
            orgs_schemas.DepartmentIn(
                name="南阳市公安局",
                credit_code=credit_code("411300", 2),
                jurisdiction_code="411300",
            ),
        )
        officer = orgs.department_principal(police, Role.DEPT_OFFICER, "benchmarks/ingest.py")
        reviewer = orgs.department_principal(authority, Role.AUTHORITY, "benchmarks/ingest.py")
        version = catalog.create_entry(
            s,
            officer,
            catalog_schemas.EntryCreate.model_validate(
                {
                    "catalog_kind": "base",
                    "item_code": "01",
                    "category_code": "001",
                    "base_database": "population",
                    "name": "户籍人口基本信息",
                    "summary": "全市户籍人口的身份号码、姓名、性别、出生日期、住址等基础信息。",
                    "resource_format": "database",
                    "subject_key_kind": "person",
                    "subject_key_item": "id_number",
                    "data_items": [
                        {
                            "name": name,
                            "field": field,
                            "data_type": kind,
                            **({"length": length} if length else {}),
                            "required": required,
                            "personal": True,
                        }
                        for name, field, kind, length, required in ITEMS
                    ],
                    "share_type": "unconditional",
                    "share_methods": ["verification", "query"],
                    "update_frequency": "realtime",
                    "data_grade": "important",
                    "open_type": "not_open",
                    "open_basis": "《中华人民共和国个人信息保护法》第二十八条",
                }
            ),
        )
        catalog.submit(s, officer, version)
        catalog.review(s, reviewer, version, catalog_schemas.ReviewIn(decision="approve"))
        s.commit()
        entry = version.entry
        world = World(entry_id=entry.id, code=entry.code, credit_code=police.credit_code)
    engine.dispose()
    return world


# ------------------------------------------------------------------------------- the runs


@dataclass
class Run:
    seconds: float
    rows: int
    peak_rss_mb: float = 0.0


def run_import(url: str, var_dir: Path, world: World, csv_path: Path) -> Run:
    env = os.environ | {
        "GOVSHARE_DATABASE_URL": url,
        "GOVSHARE_VAR_DIR": str(var_dir),
        "COLUMNS": "200",
    }
    cmd = [sys.executable, "-m", "govshare.cli", "import", world.code, str(csv_path)]
    cmd += ["--department", world.credit_code]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        sampler = PssSampler(proc.pid)
        sampler.start()
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        sampler.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"govshare import failed ({proc.returncode}):\n{stdout}\n{stderr}")
    print(f"  import: {stdout.strip().splitlines()[0]}")
    # ru_maxrss is in KiB on Linux; the import reads the file in a second process: the bar
    # is checked against the larger of the peak RSS and the peak PSS of both processes
    # together (PSS shares the pages they have in common between them, RSS counts them twice)
    return Run(
        seconds=seconds,
        rows=0,
        peak_rss_mb=max(usage.ru_maxrss / 1024, sampler.peak_kb / 1024),
    )


class PssSampler(threading.Thread):
    """Samples the proportional set size of a process and its children (Linux /proc)."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.peak_kb = pid, every, 0
        self._done = threading.Event()

    @staticmethod
    def _pss_kb(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def _tree(self) -> list[int]:
        try:
            with open(f"/proc/{self.pid}/task/{self.pid}/children") as f:
                return [self.pid, *map(int, f.read().split())]
        except OSError:
            return [self.pid]

    def run(self) -> None:
        while not self._done.wait(self.every):
            self.peak_kb = max(self.peak_kb, sum(self._pss_kb(p) for p in self._tree()))

    def stop(self) -> None:
        self._done.set()
        self.join()


def raw_copy_of(url: str, entry_id: int) -> tuple[Table, list[str]]:
    """An empty copy of the entry's data table (same columns and unique key index)."""
    from govshare.ingestion import tables
    from govshare.ingestion.models import DataTable

    engine = make_engine(url)
    with Session(engine) as s:
        registry = s.get(DataTable, entry_id)
        assert registry is not None
        data, _ = tables.tables_for(registry)
        key = registry.key_field
    metadata = MetaData()
    raw = Table(f"{data.name}_raw", metadata, *(c._copy() for c in data.columns))
    Index(f"uq_{data.name}_raw_key", raw.c[key], unique=True)
    metadata.create_all(engine)
    engine.dispose()
    return raw, [c.name for c in raw.columns if c.name != "_id"]


def run_raw(url: str, raw: Table, columns: list[str], csv_path: Path) -> Run:
    """The peer: read the CSV, bare executemany of the same rows into the copy table."""
    engine = make_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    mark = "?" if sqlite else "%s"
    names = ", ".join(columns)
    marks = ", ".join(mark for _ in columns)
    sql = f"INSERT INTO {raw.name} ({names}) VALUES ({marks})"  # noqa: S608 - our own names
    now: Any = datetime.now(UTC)
    if sqlite:  # what SQLAlchemy binds on SQLite: text
        now = now.strftime("%Y-%m-%d %H:%M:%S.%f")
    fields = [field for _name, field, *_ in ITEMS]
    birth = fields.index("birth_date")
    system: dict[str, Any] = {
        "_batch_id": None,
        "_updated_at": now,
        "_updated_by": "benchmarks/ingest.py",
        "_deleted": False,
    }
    # CSV position (or None: a system column) of each inserted column, in the table's order
    order = [fields.index(c) if c in fields else None for c in columns]
    constants = [system.get(c) for c in columns]
    rows = 0
    conn = engine.raw_connection()
    try:
        cur = conn.cursor()
        t0 = time.perf_counter()
        if sqlite:
            cur.execute("BEGIN IMMEDIATE")
        with csv_path.open(encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            next(reader)
            batch: list[tuple[Any, ...]] = []
            for record in reader:
                values: list[Any] = [v or None for v in record]
                if not sqlite:
                    values[birth] = date.fromisoformat(values[birth])
                batch.append(
                    tuple(
                        values[i] if i is not None else const
                        for i, const in zip(order, constants, strict=True)
                    )
                )
                if len(batch) >= RAW_CHUNK:
                    cur.executemany(sql, batch)
                    rows += len(batch)
                    batch = []
            if batch:
                cur.executemany(sql, batch)
                rows += len(batch)
        if sqlite:
            cur.execute("COMMIT")
        else:
            conn.commit()
        seconds = time.perf_counter() - t0
        cur.close()
    finally:
        conn.close()
        engine.dispose()
    return Run(seconds=seconds, rows=rows)


def count(url: str, table: str) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        n = conn.scalar(select(func.count()).select_from(text(table)))
    engine.dispose()
    return int(n or 0)


def bench(label: str, url: str, csv_path: Path, n: int, work: Path) -> bool:
    print(f"\n{label}: setting up a scratch database")
    var_dir = work / f"var-{label}"
    world = set_up(url, var_dir)
    raw_table, columns = raw_copy_of(url, world.entry_id)
    print(f"  raw executemany into {raw_table.name} ...")
    raw = run_raw(url, raw_table, columns, csv_path)
    print(f"  govshare import {world.code} ...")
    imp = run_import(url, var_dir, world, csv_path)
    data_rows = count(url, f"data_{world.entry_id}")
    history_rows = count(url, f"data_{world.entry_id}_history")
    raw_rows = count(url, raw_table.name)
    ok_rows = data_rows == history_rows == raw_rows == raw.rows == n
    if not ok_rows:
        print(f"  ERROR: data {data_rows}, history {history_rows}, raw {raw_rows}, expected {n}")
    ratio = imp.seconds / raw.seconds
    print()
    print(f"  {'':8}{'rows':>12}{'seconds':>10}{'rows/s':>12}{'peak mem':>12}")
    print(
        f"  {'import':8}{n:>12,}{imp.seconds:>10.1f}{n / imp.seconds:>12,.0f}"
        f"{imp.peak_rss_mb:>9.0f} MB"
    )
    print(f"  {'raw':8}{raw.rows:>12,}{raw.seconds:>10.1f}{raw.rows / raw.seconds:>12,.0f}")
    ratio_ok = ratio <= MAX_RATIO
    rss_ok = imp.peak_rss_mb < MAX_RSS_MB
    print(
        f"  ratio import/raw: {ratio:.2f}x (bar {MAX_RATIO:g}x: {'PASS' if ratio_ok else 'FAIL'});"
        f" peak memory {imp.peak_rss_mb:.0f} MB (bar {MAX_RSS_MB:.0f} MB: "
        f"{'PASS' if rss_ok else 'FAIL'})"
    )
    return ok_rows and ratio_ok and rss_ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=TARGET_ROWS)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("GOVSHARE_TEST_POSTGRES_URL", ""),
        help="a PostgreSQL server URL (a scratch database is created and dropped on it)",
    )
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--csv", type=Path, help="keep the generated CSV at this path")
    args = parser.parse_args()

    n = args.rows
    print(f"govshare import benchmark: {n:,} person rows")
    print(
        f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs "
        f"(load average {os.getloadavg()[0]:.1f})"
    )
    ok = True
    with tempfile.TemporaryDirectory(prefix="govshare-bench-ingest-") as tmp:
        work = Path(tmp)
        csv_path = args.csv or work / "persons.csv"
        t0 = time.perf_counter()
        generate_csv(csv_path, n)
        size = csv_path.stat().st_size / 1024 / 1024
        print(f"generated {csv_path.name} ({size:.0f} MB) in {time.perf_counter() - t0:.1f} s")
        if not args.no_sqlite:
            ok &= bench("sqlite", f"sqlite:///{work / 'bench.db'}", csv_path, n, work)
        if args.postgres:
            url = scratch_postgres(args.postgres)
            try:
                ok &= bench("postgresql", url, csv_path, n, work)
            finally:
                drop_postgres(args.postgres, url)
        else:
            print("\npostgresql: skipped (set GOVSHARE_TEST_POSTGRES_URL or give --postgres)")
    print("\nPASS" if ok else "\nFAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
