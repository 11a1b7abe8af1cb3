"""Reading and validating a file in a second process (what ``govshare import`` does)."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from govshare.errors import ValidationFailed
from govshare.ingestion import prefetch, readers
from govshare.ingestion.validators import make_rules, validate_row
from tests.ingestion.test_service import ITEMS, person_id


def _csv(path: Path, n: int) -> Path:
    lines = ["公民身份号码,姓名,住址"]
    lines += [f"{person_id(i)},张{i},城关镇{i}号" for i in range(n)]
    lines.append("12345,,坏行")
    path.write_text("\n".join(lines) + "\n", encoding="gbk")
    return path


def test_the_child_gives_what_validating_here_gives(tmp_path: Path) -> None:
    path = _csv(tmp_path / "persons.csv", 2 * prefetch.CHUNK + 7)
    rules = make_rules(ITEMS)
    with readers.open_table(path, ITEMS, max_bytes=10**8) as table:
        here = [(n, *validate_row(rules, raw)) for n, raw in table]
    with prefetch.checked_rows(path, ITEMS, max_bytes=10**8) as rows:
        there = list(rows)
    assert there == here
    assert len(there) == 2 * prefetch.CHUNK + 8
    assert [p.reason for p in there[-1][2]] == ["身份证号码应为 18 位，实际 5 位", "必填项为空"]


def test_a_file_the_reader_refuses_fails_the_same_way(tmp_path: Path) -> None:
    # UTF-8 for thousands of rows, then a row saved in GBK
    path = tmp_path / "mixed.csv"
    body = "公民身份号码,姓名\n".encode() + b"".join(
        f"{person_id(i)},张{i}\n".encode() for i in range(5000)
    )
    path.write_bytes(body + f"{person_id(9999)},赵六\n".encode("gbk"))
    with (
        pytest.raises(ValidationFailed) as here,
        readers.open_table(path, ITEMS, max_bytes=10**8) as table,
    ):
        list(table)
    with (
        pytest.raises(ValidationFailed) as there,
        prefetch.checked_rows(path, ITEMS, max_bytes=10**8) as rows,
    ):
        list(rows)
    assert there.value.message == here.value.message
    assert "编码" in there.value.message


def test_leaving_early_stops_the_child(tmp_path: Path) -> None:
    path = _csv(tmp_path / "persons.csv", 20 * prefetch.CHUNK)
    with prefetch.checked_rows(path, ITEMS, max_bytes=10**8) as rows:
        next(rows)
        (child,) = multiprocessing.active_children()
    deadline = time.monotonic() + 5
    while child.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not child.is_alive()
