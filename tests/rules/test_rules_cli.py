"""``govshare calendar ...`` and ``govshare rulebook ...`` run as real subprocesses."""

from __future__ import annotations

import subprocess
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.audit.models import AuditEntry
from govshare.db import make_engine
from govshare.orgs.models import Jurisdiction
from tests.conftest import run_cli

ALL_BOOKS = (
    "national",
    "county-2024",
    "nanyang-2021",
    "neixiang-2017",
    "pingshan-2026",
    "xiayi-2021",
)


def run(*args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, url=url)


def ok(*args: str, url: str | None = None) -> list[str]:
    result = run(*args, url=url)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


def test_calendar_commands(fresh_db_url: str, tmp_path: Path) -> None:
    url = fresh_db_url
    ok("db", "upgrade", url=url)

    assert ok("calendar", "due", "--from", "2026-09-30", "--days", "10", url=url)[0] == (
        "2026-10-20"
    )
    lines = ok("calendar", "due", "--from", "2026-12-28", "--days", "5", url=url)
    assert lines[0] == "2027-01-04 provisional"
    assert lines[0].endswith(" provisional")
    assert "2027 年的工作日历尚未导入" in lines[1]

    csv_file = tmp_path / "2027.csv"
    csv_file.write_bytes("日期,类型,名称\r\n2027-01-01,节假日,元旦\r\n".encode("gbk"))
    lines = ok("calendar", "import", str(csv_file), url=url)
    assert "已导入 2027 年工作日历" in lines[0]
    # now final: Dec 29-31 (1-3), Jan 1 is a holiday, Jan 4 (4), Jan 5 (5)
    assert ok("calendar", "due", "--from", "2026-12-28", "--days", "5", url=url) == ["2027-01-05"]

    lines = ok("calendar", "set", "2026-10-09", "节假日", "--name", "临时放假", url=url)
    assert lines == ["已将 2026-10-09 设为节假日（临时放假）"]
    assert ok("calendar", "due", "--from", "2026-09-30", "--days", "10", url=url)[0] == (
        "2026-10-21"
    )

    years = "\n".join(ok("calendar", "years", url=url))
    assert "2004" in years
    assert "2026" in years
    assert "chinese-calendar" in years
    assert "2027" in years
    assert "import" in years
    assert ok("calendar", "seed", url=url) == ["chinese-calendar 收录的年度均已载入，没有变化"]

    engine = make_engine(url)
    try:
        with Session(engine) as s:
            entries = s.execute(
                select(AuditEntry.action, AuditEntry.actor_name).where(
                    AuditEntry.action.like("rules:calendar:%")
                )
            ).all()
    finally:
        engine.dispose()
    assert ("rules:calendar:import", "govshare calendar import") in entries
    assert ("rules:calendar:edit", "govshare calendar set") in entries


def test_calendar_command_errors(tmp_path: Path) -> None:
    # each of these is refused before the database is read: an empty one will do
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    r = run("calendar", "due", "--from", "30.09.2026", "--days", "10", url=url)
    assert r.returncode == 1
    assert "收到日期“30.09.2026”不是 YYYY-MM-DD 格式的日期" in r.stderr
    r = run("calendar", "set", "2026-10-17", "工作日", url=url)
    assert r.returncode == 1
    assert "周末上班的日子请选择“调休上班”" in r.stderr
    r = run("calendar", "set", "2026-10-16", "放个假", url=url)
    assert r.returncode == 1
    assert "类型“放个假”无效" in r.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("日期,类型\n2027-01-01,节假日\n2028-01-01,节假日\n", encoding="utf-8")
    r = run("calendar", "import", str(bad), url=url)
    assert r.returncode == 1
    assert "一次只能导入一个年度，文件中包含 2027, 2028" in r.stderr
    r = run("calendar", "import", str(tmp_path / "missing.csv"), url=url)
    assert r.returncode == 1
    assert "无法读取文件" in r.stderr


def test_rulebook_list_and_show() -> None:
    text = "\n".join(ok("rulebook", "list"))
    for name in ALL_BOOKS:
        assert name in text
    assert "南阳市政务数据共享管理暂行办法" in text

    shown = "\n".join(ok("rulebook", "show", "nanyang-2021"))
    assert shown.splitlines()[0] == "南阳市政务数据共享管理暂行办法（nanyang-2021）"
    assert "第二十二条" in shown
    assert "【违规情形】" in shown
    assert "数据主管部门审核目录更新：5 个工作日" in shown
    assert "依据：《南阳市政务数据共享管理暂行办法》第二十二条" in shown

    r = run("rulebook", "show", "nope")
    assert r.returncode == 1
    assert "没有名为 nope 的规则" in r.stderr
    r = run("rulebook", "show")
    assert r.returncode == 1
    assert "请给出规则名称" in r.stderr


def test_rulebook_show_for_a_jurisdiction(fresh_db_url: str) -> None:
    url = fresh_db_url
    ok("db", "upgrade", url=url)
    engine = make_engine(url)
    try:
        with Session(engine) as s:
            city = Jurisdiction(code="411300", name="南阳市", level="city", rulebook="nanyang-2021")
            s.add(city)
            s.flush()
            s.add(Jurisdiction(code="411325", name="内乡县", level="county", parent_id=city.id))
            s.commit()
    finally:
        engine.dispose()

    lines = ok("rulebook", "show", "--jurisdiction", "411325", url=url)
    assert lines[0] == "内乡县（411325）实际适用的规则"
    assert lines[1] == "规则链：national → nanyang-2021（由南阳市（411300）指定）"
    assert "第二十二条" in "\n".join(lines)

    lines = ok("rulebook", "show", "neixiang-2017", "--jurisdiction", "411325", url=url)
    assert lines[0].startswith("预览：")
    assert lines[1] == "规则链：national → nanyang-2021 → neixiang-2017（由内乡县（411325）指定）"
    assert "有条件共享申请的答复时限：7 个工作日" in "\n".join(lines)

    r = run("rulebook", "show", "--jurisdiction", "999999", url=url)
    assert r.returncode == 1
    assert "行政区划代码 999999 不存在" in r.stderr
    r = run(
        "calendar",
        "due",
        "--from",
        "2026-09-30",
        "--days",
        "10",
        "--jurisdiction",
        "999999",
        url=url,
    )
    assert r.returncode == 1
    assert "行政区划代码 999999 不存在" in r.stderr
    # the county inherits nothing local: the national calendar applies
    assert ok(
        "calendar",
        "due",
        "--from",
        "2026-09-30",
        "--days",
        "10",
        "--jurisdiction",
        "411325",
        url=url,
    ) == ["2026-10-20"]
