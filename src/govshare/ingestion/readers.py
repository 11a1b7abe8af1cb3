"""Streaming readers for the data files departments upload (CSV and XLSX).

Files can hold a million rows, so nothing here reads a whole file into memory: CSV is
decoded incrementally from the binary file, XLSX goes through openpyxl's read-only
mode. Whatever is wrong with a file — binary garbage, an unknown encoding, a zip bomb,
an over-long cell, too many columns — ends as one ``ValidationFailed`` with a Chinese
message (naming the row and column where there is one) and nothing else.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

from openpyxl import load_workbook  # type: ignore[import-untyped]

from govshare.errors import ValidationFailed

SAMPLE_BYTES = 64 * 1024
"""How much of a CSV file the encoding is guessed from."""
SCAN_CHUNK_BYTES = 1024 * 1024
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
"""The most an XLSX may declare to unpack to (all members together)."""
MAX_ZIP_MEMBERS = 2000
CONTROL_RATIO = 0.05
"""Above this share of control bytes a “CSV” is taken for a binary file."""

_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_CONTROL_BYTES = bytes(set(range(32)) - {9, 10, 12, 13}) + b"\x7f"
_NON_ASCII = re.compile(rb"[\x80-\xff]")
# what errors="surrogateescape" turns undecodable bytes into
_UNDECODABLE = re.compile("[\udc80-\udcff]")
_INVISIBLE = dict.fromkeys(map(ord, "\ufeff\u200b\u200c\u200d\u2060"))

Kind = Literal["csv", "xlsx"]


def _fail(message: str) -> ValidationFailed:
    return ValidationFailed(message, field="file")


def _size_text(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / 1024 / 1024:g} MB"
    if n >= 1024:
        return f"{n / 1024:g} KB"
    return f"{n} 字节"


# --- encoding ------------------------------------------------------------------------


def detect_encoding(head: bytes) -> str:
    """The encoding of a CSV file from a sample of its bytes (which may end mid-character).

    ``utf-8-sig`` when it starts with a BOM, ``utf-8`` when the sample is valid UTF-8,
    ``gb18030`` (a superset of GBK and GB2312) when it is valid GB18030; binary data and
    anything else is refused.
    """
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise _fail("文件是 UTF-16 编码，暂不支持，请另存为 UTF-8 或 GBK 编码的 CSV")
    controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
    if b"\x00" in head or (head and controls / len(head) > CONTROL_RATIO):
        raise _fail("文件不是文本格式的 CSV，可能是二进制文件或已损坏，请上传 CSV 或 XLSX 文件")
    for encoding in ("utf-8", "gb18030"):
        try:
            # final=False: a multibyte character cut at the end of the sample is no error
            codecs.getincrementaldecoder(encoding)().decode(head, final=False)
        except UnicodeDecodeError:
            continue
        return encoding
    raise _fail("文件编码无法识别（不是 UTF-8 或 GBK），请另存为 UTF-8 或 GBK 编码的 CSV")


def _sniff(f: IO[bytes]) -> str:
    """Detect the encoding of the binary file ``f`` and rewind it.

    When the first sample is plain ASCII (an English header, say) it tells nothing, so the
    file is scanned on, a chunk at a time, for its first non-ASCII bytes.
    """
    head = f.read(SAMPLE_BYTES)
    encoding = detect_encoding(head)
    if head.isascii() and len(head) == SAMPLE_BYTES:
        while chunk := f.read(SCAN_CHUNK_BYTES):
            found = _NON_ASCII.search(chunk)
            if found is None:
                continue
            # the byte before is ASCII, so the sample starts on a character boundary
            sample = chunk[found.start() : found.start() + SAMPLE_BYTES]
            if len(sample) < SAMPLE_BYTES:
                sample += f.read(SAMPLE_BYTES - len(sample))
            encoding = detect_encoding(sample)
            break
    f.seek(0)
    return encoding


# --- header matching -----------------------------------------------------------------


@dataclass
class Header:
    columns: list[str]
    """The header cells as written (stripped)."""
    mapping: dict[int, str]
    """Column index → the field of the data item it holds."""
    unmatched: list[str]
    """Non-blank header cells that match no data item."""
    missing_required: list[str]
    """Names of the required data items no column holds."""


def normalize_header(text: str) -> str:
    """Compare key of a header cell: NFKC, no whitespace, case-folded, no trailing “*”."""
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    return "".join(text.split()).casefold().rstrip("*")


def match_columns(header_cells: Sequence[str], items: Sequence[Mapping[str, Any]]) -> Header:
    """Match header cells to data items by Chinese name or English field name."""
    lookup: dict[str, str] = {}
    for item in items:
        for key in (item["name"], item["field"]):
            lookup.setdefault(normalize_header(str(key)), str(item["field"]))
    columns = [cell.strip() for cell in header_cells]
    mapping: dict[int, str] = {}
    taken: dict[str, str] = {}
    unmatched: list[str] = []
    for index, cell in enumerate(columns):
        key = normalize_header(cell)
        if not key:
            continue
        field = lookup.get(key)
        if field is None:
            unmatched.append(cell)
            continue
        if field in taken:
            raise _fail(
                f"表头“{cell}”（第 {index + 1} 列）与“{taken[field]}”对应同一个信息项，"
                "请删除重复的列"
            )
        taken[field] = cell
        mapping[index] = field
    missing = [str(i["name"]) for i in items if i.get("required") and i["field"] not in taken]
    return Header(columns=columns, mapping=mapping, unmatched=unmatched, missing_required=missing)


# --- the table -----------------------------------------------------------------------


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


class Table:
    """The rows of an uploaded file: iterate for ``(row_number, {field: raw value})``.

    Row numbers are those of the file (the header is row 1); blank rows are skipped.
    Use as a context manager (or call ``close()``) to release the file.
    """

    def __init__(
        self,
        *,
        kind: Kind,
        encoding: str | None,
        header: Header,
        rows: Iterator[tuple[int, Sequence[Any]]],
        closers: list[Callable[[], None]],
        max_cell_chars: int,
        max_columns: int,
    ) -> None:
        self.kind: Kind = kind
        self.encoding = encoding
        self.header = header
        self._rows = rows
        self._closers = closers
        self._max_cell_chars = max_cell_chars
        self._max_columns = max_columns
        self._iter = self._generate()

    def __iter__(self) -> Iterator[tuple[int, dict[str, Any]]]:
        return self._iter

    def __next__(self) -> tuple[int, dict[str, Any]]:
        return next(self._iter)

    def __enter__(self) -> Table:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        closers, self._closers = self._closers, []
        for close in reversed(closers):
            close()

    def _column_text(self, index: int) -> str:
        columns = self.header.columns
        name = columns[index] if index < len(columns) else ""
        return f"第 {index + 1} 列（“{name}”）" if name else f"第 {index + 1} 列"

    def _generate(self) -> Iterator[tuple[int, dict[str, Any]]]:
        mapping = self.header.mapping
        limit = self._max_cell_chars
        width = self._max_columns
        missing: Any = "" if self.kind == "csv" else None
        csv_kind = self.kind == "csv"
        for number, cells in self._rows:
            if csv_kind:
                # CSV cells are all text: check the row as one string first (the common,
                # clean row costs a few C calls), and look at single cells only on a hit
                joined = "\x1f".join(cells)  # \x1f is whitespace to str.strip()
                if not joined.strip():
                    continue  # every cell blank
                if len(cells) <= width and len(joined) <= limit and not _UNDECODABLE.search(joined):
                    n = len(cells)
                    yield number, {f: cells[i] if i < n else missing for i, f in mapping.items()}
                    continue
            if len(cells) > width and not all(_blank(c) for c in cells[width:]):
                raise _fail(f"第 {number} 行超过 {width} 列的上限，请删除多余的列")
            if all(_blank(c) for c in cells):
                continue
            for index, value in enumerate(cells):
                if isinstance(value, str):
                    if len(value) > limit:
                        raise _fail(
                            f"第 {number} 行{self._column_text(index)}的内容超过 {limit} 个字符"
                        )
                    if self.kind == "csv" and _UNDECODABLE.search(value):
                        raise _fail(
                            f"第 {number} 行{self._column_text(index)}含有无法按 "
                            f"{self.encoding} 解码的字节，文件可能混用了多种编码，"
                            "请统一另存为 UTF-8 或 GBK 编码的 CSV"
                        )
            n = len(cells)
            yield number, {f: cells[i] if i < n else missing for i, f in mapping.items()}


# --- CSV -----------------------------------------------------------------------------


class _CsvSource:
    """Records of a CSV file, each with its number (counted in records, as Excel shows)."""

    def __init__(self, f: IO[bytes], encoding: str, max_cell_chars: int, max_columns: int):
        # undecodable bytes become lone surrogates, found per cell so the error names it
        self.text = io.TextIOWrapper(f, encoding=encoding, errors="surrogateescape", newline="")
        self.max_cell_chars = max_cell_chars
        # a longer physical line holds too many columns or an over-long cell
        # (a quoted cell of quotes doubles in length)
        self.line_limit = max_columns * (2 * max_cell_chars + 3) + 2
        self.number = 0

    def _lines(self) -> Iterator[str]:
        while line := self.text.readline(self.line_limit):
            if len(line) >= self.line_limit and not line.endswith(("\n", "\r")):
                raise _fail(f"第 {self.number + 1} 行过长（单元格过长或列数过多），请检查文件内容")
            yield line

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        reader = csv.reader(self._lines())
        while True:
            # the limit is process-wide: set it only while this reader parses a record
            previous = csv.field_size_limit(self.max_cell_chars + 1)
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                number = self.number + 1
                if "field larger than field limit" in str(exc):
                    raise _fail(
                        f"第 {number} 行有单元格的内容超过 {self.max_cell_chars} 个字符"
                        "（也可能是引号未成对）"
                    ) from None
                raise _fail(f"第 {number} 行的 CSV 格式有误，请检查引号是否成对") from None
            finally:
                csv.field_size_limit(previous)
            self.number += 1
            yield self.number, cells


def _trim(cells: Sequence[Any]) -> list[Any]:
    out = list(cells)
    while out and _blank(out[-1]):
        out.pop()
    return out


def _header_cells(
    rows: Iterator[tuple[int, Sequence[Any]]], max_columns: int, max_cell_chars: int
) -> list[str]:
    first = next(rows, None)
    cells = _trim(first[1]) if first is not None else []
    if not cells:
        raise _fail("文件第 1 行应为表头（信息项名称或英文字段名），但它是空的")
    if len(cells) > max_columns:
        raise _fail(f"表头超过 {max_columns} 列的上限，请删除多余的列")
    texts = ["" if c is None else str(c) for c in cells]
    for index, text in enumerate(texts):
        if len(text) > max_cell_chars:
            raise _fail(f"表头第 {index + 1} 列的内容超过 {max_cell_chars} 个字符")
        if _UNDECODABLE.search(text):
            raise _fail("表头含有无法识别的字符，请另存为 UTF-8 或 GBK 编码的 CSV")
    return texts


def _open_csv(
    f: IO[bytes],
    items: Sequence[Mapping[str, Any]],
    *,
    max_cell_chars: int,
    max_columns: int,
    closers: list[Callable[[], None]],
) -> Table:
    encoding = _sniff(f)
    source = _CsvSource(f, encoding, max_cell_chars, max_columns)
    closers.append(source.text.close)
    rows = source.rows()
    header = match_columns(_header_cells(rows, max_columns, max_cell_chars), items)
    return Table(
        kind="csv",
        encoding=encoding,
        header=header,
        rows=rows,
        closers=closers,
        max_cell_chars=max_cell_chars,
        max_columns=max_columns,
    )


# --- XLSX ----------------------------------------------------------------------------


def _bad_xlsx(detail: str = "") -> ValidationFailed:
    return _fail(
        f"文件不是有效的 Excel 工作簿（.xlsx）{detail}：请在 Excel 或 WPS 中“另存为 Excel 工作簿"
        "（*.xlsx）”后重试（不支持 .xls 和设有打开密码的文件）"
    )


def check_xlsx_container(f: IO[bytes], *, max_unpacked_bytes: int = MAX_UNPACKED_BYTES) -> None:
    """Refuse a zip that is no workbook or declares too much to unpack, before parsing
    (aggregation files, and catalog imports through ``catalog.exchange.check_container``).

    The declared sizes bound what ``zipfile`` will inflate, so checking them is enough.
    """
    try:
        with zipfile.ZipFile(f) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise _bad_xlsx() from None
    if len(infos) > MAX_ZIP_MEMBERS:
        raise _bad_xlsx("（包含的部件过多）")
    if sum(i.file_size for i in infos) > max_unpacked_bytes:
        raise _fail(
            f"文件解压后超过 {_size_text(max_unpacked_bytes)}，可能是压缩炸弹或包含大量空白格式，"
            "已拒绝"
        )
    names = {i.filename for i in infos}
    if "[Content_Types].xml" not in names or "xl/workbook.xml" not in names:
        raise _bad_xlsx()
    f.seek(0)


def _xlsx_rows(ws: Any, max_col: int) -> Iterator[tuple[int, Sequence[Any]]]:
    values = ws.iter_rows(max_col=max_col, values_only=True)
    number = 0
    while True:
        try:
            row = next(values)
        except StopIteration:
            return
        except Exception:
            raise _fail(f"工作表第 {number + 1} 行附近的内容已损坏，无法读取") from None
        number += 1
        yield number, row


def _open_xlsx(
    f: IO[bytes],
    items: Sequence[Mapping[str, Any]],
    *,
    max_cell_chars: int,
    max_columns: int,
    max_unpacked_bytes: int,
    closers: list[Callable[[], None]],
) -> Table:
    check_xlsx_container(f, max_unpacked_bytes=max_unpacked_bytes)
    try:
        wb = load_workbook(f, read_only=True, data_only=True)
    except Exception:
        raise _bad_xlsx() from None
    closers.append(wb.close)
    if not wb.worksheets:
        raise _bad_xlsx("（没有工作表）")
    # one column past the limit, to notice a file that has more
    rows = _xlsx_rows(wb.worksheets[0], max_columns + 1)
    header = match_columns(_header_cells(rows, max_columns, max_cell_chars), items)
    return Table(
        kind="xlsx",
        encoding=None,
        header=header,
        rows=rows,
        closers=closers,
        max_cell_chars=max_cell_chars,
        max_columns=max_columns,
    )


# --- entry points --------------------------------------------------------------------


def open_table(
    path: Path | str,
    items: Sequence[Mapping[str, Any]],
    *,
    max_bytes: int,
    max_cell_chars: int = 4000,
    max_columns: int = 200,
    max_unpacked_bytes: int = MAX_UNPACKED_BYTES,
) -> Table:
    """Open an uploaded CSV or XLSX file (decided by its content) and read its header.

    ``items`` are the data items of the target table (``name``, ``field``, ``required``).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        raise _fail("无法读取上传的文件") from None
    if size == 0:
        raise _fail("上传的文件是空的")
    if size > max_bytes:
        raise _fail(f"文件大小超过 {_size_text(max_bytes)} 的上限，请拆分后分批上传")
    f = path.open("rb")
    closers: list[Callable[[], None]] = [f.close]
    try:
        magic = f.read(len(_OLE_MAGIC))
        f.seek(0)
        if magic.startswith(_ZIP_MAGIC):
            return _open_xlsx(
                f,
                items,
                max_cell_chars=max_cell_chars,
                max_columns=max_columns,
                max_unpacked_bytes=max_unpacked_bytes,
                closers=closers,
            )
        if magic == _OLE_MAGIC:
            raise _fail("不支持旧版 Excel（.xls）文件，请另存为 .xlsx 或 CSV 后重试")
        return _open_csv(
            f, items, max_cell_chars=max_cell_chars, max_columns=max_columns, closers=closers
        )
    except BaseException:
        for close in reversed(closers):
            close()
        raise


def preview(
    path: Path | str,
    items: Sequence[Mapping[str, Any]],
    *,
    max_bytes: int,
    rows: int = 20,
    max_cell_chars: int = 4000,
    max_columns: int = 200,
) -> dict[str, Any]:
    """What the upload preview page shows: the column mapping and the first ``rows`` rows."""
    names = {str(i["field"]): str(i["name"]) for i in items}
    with open_table(
        path, items, max_bytes=max_bytes, max_cell_chars=max_cell_chars, max_columns=max_columns
    ) as table:
        sample = list(itertools.islice(table, rows))
    header = table.header
    return {
        "kind": table.kind,
        "encoding": table.encoding,
        "columns": header.columns,
        "mapping": [
            {"index": i, "column": header.columns[i], "field": f, "name": names[f]}
            for i, f in sorted(header.mapping.items())
        ],
        "unmatched": header.unmatched,
        "missing_required": header.missing_required,
        "rows": [{"row": number, "values": values} for number, values in sample],
    }
