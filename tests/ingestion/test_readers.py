"""Streaming readers of uploaded CSV / XLSX data files (no database)."""

from __future__ import annotations

import csv
import random
import tracemalloc
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook  # type: ignore[import-untyped]

from govshare.errors import ValidationFailed
from govshare.ingestion.readers import (
    Header,
    detect_encoding,
    match_columns,
    open_table,
    preview,
)

ITEMS: list[dict[str, Any]] = [
    {"name": "统一社会信用代码", "field": "credit_code", "required": True},
    {"name": "企业名称", "field": "company_name", "required": True},
    {"name": "注册资本", "field": "capital"},
    {"name": "成立日期", "field": "founded_on"},
    {"name": "法定代表人", "field": "legal_rep", "required": True},
]
MB = 1024 * 1024
HEADER = ["统一社会信用代码", "企业名称", "注册资本", "法定代表人"]
DATA = [
    ["91110000100000000A", "北京市某某科技有限公司", "1000.5", "张三"],
    ["91310000200000000B", "上海“双引号”, 逗号公司", "", "李四"],
    ["91440000300000000C", "广州多行\n名称公司", "30", "王五"],
]


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def write_xlsx(path: Path, rows: list[list[Any]]) -> Path:
    wb = Workbook()
    ws = wb.active
    for row in rows:
        ws.append(row)
    wb.save(path)
    return path


def read_all(path: Path, **kwargs: Any) -> list[tuple[int, dict[str, Any]]]:
    kwargs.setdefault("max_bytes", 50 * MB)
    with open_table(path, ITEMS, **kwargs) as table:
        return list(table)


def error_of(path: Path, **kwargs: Any) -> str:
    with pytest.raises(ValidationFailed) as info:
        read_all(path, **kwargs)
    assert info.value.field == "file"
    return info.value.message


# --- encodings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "detected"),
    [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("gbk", "gb18030"), ("gb18030", "gb18030")],
)
def test_csv_encodings_read_identically(tmp_path: Path, encoding: str, detected: str) -> None:
    path = write_csv(tmp_path / "data.csv", [HEADER, *DATA], encoding)
    with open_table(path, ITEMS, max_bytes=MB) as table:
        assert table.kind == "csv"
        assert table.encoding == detected
        rows = list(table)
    assert rows == [
        (
            2,
            {
                "credit_code": "91110000100000000A",
                "company_name": "北京市某某科技有限公司",
                "capital": "1000.5",
                "legal_rep": "张三",
            },
        ),
        (
            3,
            {
                "credit_code": "91310000200000000B",
                "company_name": "上海“双引号”, 逗号公司",
                "capital": "",
                "legal_rep": "李四",
            },
        ),
        (
            4,
            {
                "credit_code": "91440000300000000C",
                "company_name": "广州多行\n名称公司",
                "capital": "30",
                "legal_rep": "王五",
            },
        ),
    ]


def test_detect_encoding_samples() -> None:
    text = "企业名称,法定代表人\n"
    assert detect_encoding(b"\xef\xbb\xbf" + text.encode()) == "utf-8-sig"
    assert detect_encoding(text.encode()) == "utf-8"
    assert detect_encoding(text.encode("gbk")) == "gb18030"
    assert detect_encoding(b"name,field\n") == "utf-8"
    # a sample cut in the middle of a multibyte character is still recognised
    assert detect_encoding(text.encode()[:4]) == "utf-8"
    assert detect_encoding("企业".encode()[:5]) == "utf-8"
    assert detect_encoding("企业名称".encode("gbk")[:7]) == "gb18030"


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        (b"abc\x00def", "不是文本格式"),
        (b"a\x01\x02\x03\x04b,c\x05\x06\x07\x08\n", "不是文本格式"),
        (b"\xff\xfea\x00b\x00", "UTF-16"),
        (b"abc\x80\x80\xff\xffdef", "编码无法识别"),
    ],
)
def test_detect_encoding_refuses(sample: bytes, message: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        detect_encoding(sample)
    assert message in info.value.message


def test_gbk_after_a_long_ascii_start_is_detected(tmp_path: Path) -> None:
    # the first 64 KB are pure ASCII: the encoding comes from the first non-ASCII bytes
    rows = [["credit_code", "company_name", "legal_rep"]]
    rows += [[f"9111{i:014d}", f"company {i}", "someone"] for i in range(5000)]
    rows += [["91110000999999999Z", "河北某某有限公司", "赵六"]]
    path = write_csv(tmp_path / "data.csv", rows, "gbk")
    assert path.stat().st_size > 64 * 1024
    with open_table(path, ITEMS, max_bytes=MB) as table:
        assert table.encoding == "gb18030"
        last = list(table)[-1]
    assert last == (
        5002,
        {
            "credit_code": "91110000999999999Z",
            "company_name": "河北某某有限公司",
            "legal_rep": "赵六",
        },
    )


def test_mixed_encodings_name_the_row(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    body = ",".join(HEADER).encode() + b"\n"
    body += b"".join(f"9111{i:014d},某公司{i},1,张三\n".encode() for i in range(2, 5000))
    body += "91110000999999999Z,河北公司,1,赵六\n".encode("gbk")
    path.write_bytes(body)
    message = error_of(path)
    assert "第 5000 行" in message
    assert "企业名称" in message
    assert "编码" in message


# --- header matching -----------------------------------------------------------------


def test_match_columns_by_name_and_field() -> None:
    header = match_columns(
        [" 统一社会信用代码* ", "ＣＯＭＰＡＮＹ＿ＮＡＭＥ", "注册 资本＊", "Legal_Rep", "备注", ""],
        ITEMS,
    )
    assert header == Header(
        columns=[
            "统一社会信用代码*",
            "ＣＯＭＰＡＮＹ＿ＮＡＭＥ",
            "注册 资本＊",
            "Legal_Rep",
            "备注",
            "",
        ],
        mapping={0: "credit_code", 1: "company_name", 2: "capital", 3: "legal_rep"},
        unmatched=["备注"],
        missing_required=[],
    )


def test_match_columns_reports_unmatched_and_missing_required() -> None:
    header = match_columns(["企业名称", "联系电话", "成立日期"], ITEMS)
    assert header.mapping == {0: "company_name", 2: "founded_on"}
    assert header.unmatched == ["联系电话"]
    assert header.missing_required == ["统一社会信用代码", "法定代表人"]


def test_match_columns_refuses_duplicates() -> None:
    with pytest.raises(ValidationFailed) as info:
        match_columns(["企业名称", "统一社会信用代码", "company_name"], ITEMS)
    assert "company_name" in info.value.message
    assert "企业名称" in info.value.message


# --- rows ----------------------------------------------------------------------------


def test_blank_rows_skipped_and_row_numbers_kept(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text(
        '企业名称,法定代表人,备注\n甲公司,张三,x\n,,\n\n" ", ,\n"乙\n公司",李四\n丙公司,王五,y\n',
        encoding="utf-8",
    )
    with open_table(path, ITEMS, max_bytes=MB) as table:
        assert table.header.unmatched == ["备注"]
        assert table.header.missing_required == ["统一社会信用代码"]
        rows = list(table)
    assert rows == [
        (2, {"company_name": "甲公司", "legal_rep": "张三"}),
        (6, {"company_name": "乙\n公司", "legal_rep": "李四"}),
        (7, {"company_name": "丙公司", "legal_rep": "王五"}),
    ]


def test_xlsx_typed_cells(tmp_path: Path) -> None:
    # decided by content, not by the name
    path = write_xlsx(
        tmp_path / "upload.bin",
        [
            ["统一社会信用代码*", "企业名称", "注册资本", "成立日期", "法定代表人", "是否"],
            ["91110000100000000A", "甲公司", 1000, datetime(2020, 5, 17, 8, 30), "张三", True],
            [None, None, None, None, None, None],
            ["91110000100000000B", "乙公司", 12.5, datetime(2021, 1, 2), None, False],
        ],
    )
    with open_table(path, ITEMS, max_bytes=MB) as table:
        assert table.kind == "xlsx"
        assert table.encoding is None
        assert table.header.unmatched == ["是否"]
        rows = list(table)
    assert rows == [
        (
            2,
            {
                "credit_code": "91110000100000000A",
                "company_name": "甲公司",
                "capital": 1000,
                "founded_on": datetime(2020, 5, 17, 8, 30),
                "legal_rep": "张三",
            },
        ),
        (
            4,
            {
                "credit_code": "91110000100000000B",
                "company_name": "乙公司",
                "capital": 12.5,
                "founded_on": datetime(2021, 1, 2),
                "legal_rep": None,
            },
        ),
    ]
    assert isinstance(rows[0][1]["capital"], int)
    assert isinstance(rows[1][1]["capital"], float)


def test_preview(tmp_path: Path) -> None:
    rows = [["企业名称", "联系电话", "法定代表人"]] + [
        [f"公司{i}", "1", f"人{i}"] for i in range(50)
    ]
    path = write_csv(tmp_path / "data.csv", rows, "gbk")
    result = preview(path, ITEMS, max_bytes=MB, rows=3)
    assert result == {
        "kind": "csv",
        "encoding": "gb18030",
        "columns": ["企业名称", "联系电话", "法定代表人"],
        "mapping": [
            {"index": 0, "column": "企业名称", "field": "company_name", "name": "企业名称"},
            {"index": 2, "column": "法定代表人", "field": "legal_rep", "name": "法定代表人"},
        ],
        "unmatched": ["联系电话"],
        "missing_required": ["统一社会信用代码"],
        "rows": [
            {"row": 2, "values": {"company_name": "公司0", "legal_rep": "人0"}},
            {"row": 3, "values": {"company_name": "公司1", "legal_rep": "人1"}},
            {"row": 4, "values": {"company_name": "公司2", "legal_rep": "人2"}},
        ],
    }


# --- hostile input -------------------------------------------------------------------


def test_zip_bomb_xlsx_refused(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "bomb.xlsx", [HEADER, DATA[0]])
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zeros = b"\0" * MB
        with zf.open("xl/media/padding.bin", "w", force_zip64=True) as member:
            for _ in range(300):
                member.write(zeros)
    assert path.stat().st_size < 2 * MB
    message = error_of(path, max_bytes=10 * MB)
    assert "压缩炸弹" in message


def test_zip_with_too_many_members_refused(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "many.xlsx", [HEADER])
    with zipfile.ZipFile(path, "a") as zf:
        for i in range(2001):
            zf.writestr(f"xl/junk/{i}.xml", "")
    assert "部件过多" in error_of(path)


def test_zip_that_is_no_workbook_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    assert "不是有效的 Excel 工作簿" in error_of(path)
    truncated = tmp_path / "truncated.xlsx"
    truncated.write_bytes(write_xlsx(tmp_path / "ok.xlsx", [HEADER]).read_bytes()[:200])
    assert "不是有效的 Excel 工作簿" in error_of(truncated)


def test_random_binary_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(random.Random(7).randbytes(20_000))
    assert "不是文本格式" in error_of(path)


def test_old_xls_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600))
    assert ".xls" in error_of(path)


def test_file_over_max_bytes_and_empty_file_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "data.csv", [HEADER, *DATA])
    message = error_of(path, max_bytes=100)
    assert "超过" in message
    assert "100 字节" in message
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert "空的" in error_of(empty)
    blank_header = write_csv(tmp_path / "blank.csv", [["", ""], ["甲", "乙"]])
    assert "表头" in error_of(blank_header)


def test_long_cell_names_row_and_column(tmp_path: Path) -> None:
    # one char over: caught per cell, naming the column
    rows = [HEADER, DATA[0], ["9111", "公" * 101, "1", "张三"]]
    message = error_of(write_csv(tmp_path / "a.csv", rows), max_cell_chars=100)
    assert "第 3 行" in message
    assert "企业名称" in message
    assert "100 个字符" in message
    # far over: the csv module's field limit stops it
    rows = [HEADER, DATA[0], DATA[1], ["9111", "1", "2", "x" * 100_000]]
    message = error_of(write_csv(tmp_path / "b.csv", rows), max_cell_chars=100)
    assert "第 4 行" in message
    # an unclosed quote swallowing the rest of the file
    path = tmp_path / "c.csv"
    path.write_text(",".join(HEADER) + '\n1,"甲公司,1,张三\n' + "2,乙,1,李四\n" * 100)
    assert "第 2 行" in error_of(path, max_cell_chars=100)


def test_long_cell_in_xlsx(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "a.xlsx", [HEADER, DATA[0], DATA[1], ["1", "2", "3", "x" * 101]])
    message = error_of(path, max_cell_chars=100)
    assert "第 4 行" in message
    assert "法定代表人" in message


def test_huge_line_without_newline_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(",".join(HEADER).encode() + b"\n" + b"a," * 2 * MB)
    message = error_of(path, max_cell_chars=100, max_columns=10)
    assert "第 2 行过长" in message


def test_too_many_columns(tmp_path: Path) -> None:
    wide = write_csv(tmp_path / "wide.csv", [[*HEADER, "a", "b"], DATA[0]])
    assert "5 列" in error_of(wide, max_columns=5)
    row = write_csv(tmp_path / "row.csv", [HEADER, DATA[0], [*DATA[1], "", "x"]])
    assert "第 3 行超过 5 列" in error_of(row, max_columns=5)
    # trailing empty cells do not count
    padded = write_csv(tmp_path / "padded.csv", [[*HEADER, "", ""], [*DATA[0], "", "", ""]])
    assert len(read_all(padded, max_columns=5)) == 1
    xlsx = write_xlsx(tmp_path / "wide.xlsx", [[*HEADER, "a", "b"], DATA[0]])
    assert "5 列" in error_of(xlsx, max_columns=5)
    xlsx_row = write_xlsx(tmp_path / "row.xlsx", [HEADER, [*DATA[0], None, "x"]])
    assert "第 2 行超过 5 列" in error_of(xlsx_row, max_columns=5)


def test_large_csv_streams_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    note = "备注说明文字" * 15
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("统一社会信用代码,企业名称,法定代表人,备注\n")
        for i in range(200_000):
            f.write(f"9111{i:014d},某某科技有限公司第{i}号,张三,{note}\n")
    assert path.stat().st_size > 40 * MB  # more than the memory allowed below
    tracemalloc.start()
    try:
        count = 0
        last = 0
        with open_table(path, ITEMS, max_bytes=100 * MB) as table:
            for number, values in table:
                count += 1
                last = number
                assert values["legal_rep"] == "张三"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 200_000
    assert last == 200_001
    assert peak < 20 * MB


def test_csv_field_size_limit_restored(tmp_path: Path) -> None:
    before = csv.field_size_limit()
    rows = [HEADER, DATA[0], ["1", "2", "3", "x" * 100_000]]
    error_of(write_csv(tmp_path / "a.csv", rows), max_cell_chars=100)
    read_all(write_csv(tmp_path / "b.csv", [HEADER, *DATA]), max_cell_chars=100)
    assert csv.field_size_limit() == before
