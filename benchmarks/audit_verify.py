"""Benchmark: verifying the SM3 audit chain (DESIGN.md: 10 million entries in under 60 s).

Builds a database with N valid chained entries, then times, in the same run:

  verify  the platform's verifier (``govshare.audit.service.verify_engine``, what
          ``govshare audit verify`` runs): stream every entry, recompute its SM3 hash, check
          the links, the checkpoint and the chain head;
  scan    the peer: a bare streaming SELECT of the same columns through the same driver,
          no hashing (the floor any verifier pays to read the log);
  sm3     the SM3 hashing of the same payloads, no database.

Prints entries, seconds and entries/s for each, the ratio verify/scan, the extrapolated time
for 10 million entries and PASS/FAIL against 60 s (extrapolated unless --entries >= 10M).

    python benchmarks/audit_verify.py --entries 200000
    python benchmarks/audit_verify.py --entries 200000 \\
        --database-url postgresql://postgres@127.0.0.1:5432/govshare_bench

The database must be empty (a temporary SQLite file by default).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, insert, select, update

from govshare import migrate
from govshare.audit import service
from govshare.audit.models import AuditEntry, AuditHead
from govshare.db import make_engine

TARGET_ENTRIES = 10_000_000
TARGET_SECONDS = 60.0
ACTIONS = [
    ("orgs:session:login", "user"),
    ("orgs:user:update", "user"),
    ("orgs:contact:file", "contact_filing"),
    ("orgs:credential:create", "app_credential"),
    ("rules:calendar:edit", "calendar_day"),
    ("orgs:access:denied", "path"),
]
ROLES = ["authority", "dept_officer", "dept_reviewer", "dept_head", "operator", "system"]
NAMES = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "黄强", "周婷", "吴昊"]


def generate(engine: Engine, n: int, batch: int, keep_payloads: int) -> list[bytes]:
    """Insert ``n`` valid chained entries; return the first ``keep_payloads`` hash payloads."""
    rnd = random.Random(20261121)
    start = datetime.now(UTC) - timedelta(days=200)
    step = timedelta(days=199) / max(n, 1)
    prev = service.GENESIS_HASH
    payloads: list[bytes] = []
    table = AuditEntry.__table__
    rows: list[dict[str, Any]] = []
    with engine.begin() as conn:
        for seq in range(1, n + 1):
            action, target_type = ACTIONS[seq % len(ACTIONS)]
            dept = rnd.randint(1, 400)
            entry: dict[str, Any] = {
                "seq": seq,
                "occurred_at": start + step * seq,
                "actor_type": "user",
                "actor_id": rnd.randint(1, 5000),
                "actor_name": NAMES[seq % len(NAMES)] + str(seq % 97),
                "role": ROLES[seq % len(ROLES)],
                "department_id": dept,
                "action": action,
                "target_type": target_type,
                "target_id": str(rnd.randint(1, 10**6)),
                "ip": f"10.{dept % 256}.{seq % 256}.{rnd.randint(1, 254)}",
                "details": service.canonical_json(
                    {"method": "POST", "fields": ["name", "phone"], "request_id": seq}
                ),
                "prev_hash": prev,
            }
            payload = service.entry_payload(
                seq,
                service.format_ts(entry["occurred_at"]),
                *(entry[k] for k in list(entry)[2:13]),
            )
            if len(payloads) < keep_payloads:
                payloads.append(payload)
            entry["hash"] = prev = service.sm3_hex(payload)
            rows.append(entry)
            if len(rows) >= batch:
                conn.execute(insert(table), rows)
                rows = []
        if rows:
            conn.execute(insert(table), rows)
        conn.execute(update(AuditHead).where(AuditHead.id == 1).values(last_seq=n, last_hash=prev))
    return payloads


def scan(engine: Engine, batch: int) -> int:
    """The peer: stream the same columns through the same driver, touch every row."""
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        assert driver is not None
        sql = (
            "SELECT seq, occurred_at, actor_type, actor_id, actor_name, role, department_id, "
            "action, target_type, target_id, ip, details, prev_hash, hash "
            "FROM audit_entries WHERE seq >= {p} AND seq <= {p} ORDER BY seq"
        )
        if engine.dialect.name == "postgresql":
            driver.rollback()
            cur = driver.cursor(name=f"bench_scan_{uuid.uuid4().hex[:8]}")
            cur.itersize = batch
            cur.execute(sql.format(p="%s"), (1, 1 << 62))
        else:
            cur = driver.cursor()
            cur.execute(sql.format(p="?"), (1, 1 << 62))
        count = 0
        last = None
        while rows := cur.fetchmany(batch):
            for row in rows:
                last = row[13]
                count += 1
        cur.close()
        driver.rollback()
        assert last is not None or count == 0
        return count
    finally:
        raw.close()


def hash_only(payloads: list[bytes]) -> None:
    sm3 = service.sm3_hex
    for p in payloads:
        sm3(p)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of N timings")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="verify with this many processes even for a small log (default: as the "
        "platform decides: one process below 1M entries, else one per CPU, at most 8)",
    )
    args = parser.parse_args()

    tmpdir = None
    url = args.database_url
    if not url:
        tmpdir = tempfile.TemporaryDirectory(prefix="govshare-bench-")
        url = f"sqlite:///{Path(tmpdir.name) / 'audit.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        existing = conn.scalar(select(func.count()).select_from(AuditEntry.__table__))
    if existing:
        print(f"database {url} already holds {existing} audit entries; use an empty one")
        return 2

    if args.workers is not None and args.workers > 1:
        service.PARALLEL_MIN_ENTRIES = 0  # measure the parallel path whatever N is
    n = args.entries
    keep = min(n, 1_000_000)
    print(f"govshare audit verify benchmark: {n:,} entries on {engine.dialect.name}")
    workers = args.workers or service.default_workers()
    mode = "parallel" if workers > 1 and n >= service.PARALLEL_MIN_ENTRIES else "1 process"
    print(
        f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs "
        f"(load average {os.getloadavg()[0]:.1f}), SM3 via {service.sm3_hex.__name__}, "
        f"verify: {mode}"
    )
    t0 = time.perf_counter()
    payloads = generate(engine, n, 10_000, keep)
    print(f"generated and inserted in {time.perf_counter() - t0:.1f} s")

    def best(fn: Any) -> tuple[float, Any]:
        times, out = [], None
        for _ in range(args.repeat):
            t = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t)
        return min(times), out

    t_scan, scanned = best(lambda: scan(engine, args.batch))
    t_verify, result = best(
        lambda: service.verify_engine(engine, batch=args.batch, workers=args.workers)
    )
    t_hash, _ = best(lambda: hash_only(payloads))
    engine.dispose()
    if tmpdir is not None:
        tmpdir.cleanup()

    if not result.ok or result.checked != n or scanned != n:
        print(f"ERROR: verify={result}, scanned={scanned}")
        return 1
    t_hash_n = t_hash * n / len(payloads)
    print()
    print(f"{'':8}{'entries':>12}{'seconds':>10}{'entries/s':>14}")
    for label, secs in (("verify", t_verify), ("scan", t_scan), ("sm3", t_hash_n)):
        print(f"{label:8}{n:>12,}{secs:>10.2f}{n / secs:>14,.0f}")
    print()
    print(
        f"ratio verify/scan: {t_verify / t_scan:.2f}x (hashing share of verify: "
        f"{t_hash_n / t_verify:.0%})"
    )
    projected = t_verify * TARGET_ENTRIES / n
    how = "measured" if n >= TARGET_ENTRIES else "extrapolated"
    verdict = "PASS" if projected < TARGET_SECONDS else "FAIL"
    print(f"10,000,000 entries: {projected:.1f} s ({how}); bar {TARGET_SECONDS:.0f} s: {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
