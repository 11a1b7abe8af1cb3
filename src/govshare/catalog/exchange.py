"""Import and export of the catalog.

- An Excel template (sheets “目录”, “信息项”, “填写说明”) with drop-down lists, the way
  government catalogs are compiled.
- Bulk import of that workbook as drafts of the importing department: every row is checked
  (cell values, the schema, every rule of :func:`service.validate`) and either every entry
  is created or none is, with a per-row error list (sheet, row, column, value, reason).
- Export of published entries matching the search filters to XLSX.
- The published catalog as DCAT-AP 3 JSON-LD.

Workbooks are read with openpyxl in read-only, values-only mode after a look at the zip
container (size, members), so a zip bomb or a file that is not a workbook is refused with
a clear message. Text that Excel would take for a formula (leading ``= + - @``) is written
as text with a quote prefix, so no formula ever runs in an exported file.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from openpyxl import Workbook, load_workbook  # type: ignore[import-untyped]
from openpyxl.cell import WriteOnlyCell  # type: ignore[import-untyped]
from openpyxl.styles import Alignment, Font, PatternFill  # type: ignore[import-untyped]
from openpyxl.utils import get_column_letter  # type: ignore[import-untyped]
from openpyxl.worksheet.datavalidation import DataValidation  # type: ignore[import-untyped]
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.audit import service as audit
from govshare.catalog import schemas, service
from govshare.catalog import search as catalog_search
from govshare.catalog.models import (
    BaseDatabase,
    CatalogEntry,
    CatalogKind,
    CatalogSearch,
    CatalogVersion,
    DataGrade,
    DataType,
    EntryStatus,
    OpenType,
    ResourceFormat,
    ShareMethod,
    ShareType,
    SubjectKeyKind,
    UpdateFrequency,
)
from govshare.config import get_settings
from govshare.errors import PermissionDenied, ValidationFailed
from govshare.ingestion import readers
from govshare.orgs import repository as orgs_repo
from govshare.orgs.models import Department, Jurisdiction
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.rules import service as rules_service
from govshare.rules.rulebook import Rulebook

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PLATFORM_NAME = "政务数据共享交换平台"

#: limits of an import
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_ENTRIES = 2000
MAX_ITEM_ROWS = 100_000
MAX_CELL_CHARS = 4000
#: a workbook that unpacks to more than this is refused (zip bomb)
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
#: columns read per row, and rows scanned per sheet (blank rows included)
MAX_COLUMNS = 64
MAX_SCANNED_ROWS = 300_000
#: errors listed in one report
MAX_ERRORS = 2000
#: rows in one export
MAX_EXPORT_ROWS = 50_000

ENTRY_SHEET = "目录"
ITEM_SHEET = "信息项"
HELP_SHEET = "填写说明"
TEMPLATE_ROWS = 2000  # rows covered by the drop-down lists

#: text that a spreadsheet would read as a formula (OWASP CSV injection)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_LIST_SPLIT = re.compile(r"[、,，;；\s]+")
_HEADER_NOTE = re.compile(r"[（(][^）)]*[）)]")


# ---------------------------------------------------------------- the columns


@dataclass(frozen=True)
class Column:
    header: str  # as the template writes it
    key: str  # field of schemas.EntryCreate / schemas.DataItem ("" for the link column)
    kind: Literal["text", "choice", "multi", "list", "bool", "int", "code"] = "text"
    required: bool = False
    width: int = 14
    note: str = ""
    digits: int = 0  # "code": zero-padded to this many digits


ENTRY_COLUMNS: tuple[Column, ...] = (
    Column("资源名称", "name", required=True, width=24, note="2–128 个字；同一文件内不得重复"),
    Column("资源摘要", "summary", required=True, width=40, note="10–4000 个字"),
    Column("目录类别", "catalog_kind", "choice", required=True, width=16),
    Column("分类项", "item_code", "code", required=True, width=8, note="2 位数字", digits=2),
    Column("分类目", "category_code", "code", width=8, note="3 位数字，空则为 000", digits=3),
    Column("所属基础库", "base_database", "choice", width=18, note="仅基础信息资源填写"),
    Column("资源格式", "resource_format", "choice", required=True, width=12),
    Column("主体标识", "subject_key_kind", "choice", required=True, width=22),
    Column("主键字段", "subject_key_item", required=True, width=14, note="主键信息项的英文字段名"),
    Column("共享类型", "share_type", "choice", required=True, width=12),
    Column("共享范围", "share_scope", width=24, note="有条件共享的资源必填"),
    Column("使用用途", "share_purpose", width=24, note="有条件共享的资源必填"),
    Column("共享依据", "share_basis", width=30, note="按规则须写明依据的共享类型必填"),
    Column("共享方式", "share_methods", "multi", width=22, note="多个用顿号“、”分隔"),
    Column("开放类型", "open_type", "choice", width=12, note="空则为不予开放"),
    Column("开放条件", "open_conditions", width=20, note="有条件开放的资源必填"),
    Column("开放依据", "open_basis", width=24),
    Column("更新周期", "update_frequency", "choice", required=True, width=10),
    Column("数据分级", "data_grade", "choice", width=10, note="空则为一般数据"),
    Column("关联资源代码", "related_codes", "list", width=18, note="多个用顿号“、”分隔"),
    Column("回流数据（是/否）", "is_returned_data", "bool", width=10),
    Column("回流来源", "returned_from", width=18, note="回流数据必填：上级部门或系统"),
)

ITEM_COLUMNS: tuple[Column, ...] = (
    Column("资源名称", "", required=True, width=24, note="与“目录”工作表的资源名称一致"),
    Column("信息项名称", "name", required=True, width=18),
    Column(
        "字段名",
        "field",
        required=True,
        width=16,
        note="小写英文字母开头，只含小写字母、数字、下划线",
    ),
    Column("数据类型", "data_type", "choice", width=16, note="空则为字符型"),
    Column("长度", "length", "int", width=8, note="1–65535 的整数"),
    Column("必填（是/否）", "required", "bool", width=10),
    Column("说明", "description", width=30),
    Column("个人信息（是/否）", "personal", "bool", width=10),
    Column("敏感个人信息（是/否）", "sensitive", "bool", width=12),
    Column("共享类型", "share_type", "choice", width=12, note="空则与资源相同"),
)

ENTRY_BY_KEY = {c.key: c for c in ENTRY_COLUMNS}
ITEM_BY_KEY = {c.key: c for c in ITEM_COLUMNS if c.key}


def normalize_header(text: str) -> str:
    """“回流数据（是/否）*” and “回流数据” name the same column."""
    return _HEADER_NOTE.sub("", re.sub(r"\s+", "", text)).rstrip("*＊")


_HALF_TO_FULL = str.maketrans({"(": "（", ")": "）", ",": "，", ";": "；"})


def _norm(text: str) -> str:
    """Compare choices without spaces, case, or half- versus full-width punctuation."""
    return re.sub(r"\s+", "", text).lower().translate(_HALF_TO_FULL)


# ---------------------------------------------------------------- allowed values


@dataclass(frozen=True)
class Choices:
    """The values a column accepts (normalized text -> stored value) and the labels the
    template offers, for one department's rulebook."""

    accepted: dict[str, dict[str, str]]
    offered: dict[str, list[str]]

    def parse(self, key: str, text: str) -> str | None:
        return self.accepted[key].get(_norm(text))


def _enum_map(pairs: Iterable[tuple[str, Sequence[str]]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value, names in pairs:
        out[_norm(value)] = value
        for name in names:
            out[_norm(name)] = value
    return out


def _book(session: Session, department: Department | None) -> Rulebook:
    """The department's rulebook; the national default for a principal without one."""
    if department is None:
        return rules_service.rulebook_for(session, None)
    return service.rulebook_of(session, department)


GENERIC_SHARE = {
    "unconditional": "无条件共享",
    "conditional": "有条件共享",
    "not_shared": "不予共享",
}
GENERIC_OPEN = {"unconditional": "无条件开放", "conditional": "有条件开放", "not_open": "不予开放"}


def choices_for(book: Rulebook) -> Choices:
    """Share and open types by the rulebook's names, the generic names and the codes;
    every other enumeration by its Chinese label (or its stored value)."""
    share = {
        t: getattr(book.share_types, t) for t in ("unconditional", "conditional", "not_shared")
    }
    opened = {t: getattr(book.open_types, t) for t in ("unconditional", "conditional", "not_open")}
    accepted = {
        "catalog_kind": _enum_map(
            (k.value, (k.label, k.label.removesuffix("信息资源"), k.label + "目录"))
            for k in CatalogKind
        ),
        "base_database": _enum_map(
            (b.value, (b.label, b.label.removesuffix("信息库").removesuffix("库")))
            for b in BaseDatabase
        ),
        "resource_format": _enum_map((f.value, (f.label,)) for f in ResourceFormat),
        "subject_key_kind": _enum_map(
            (k.value, (k.label, k.label.split("（")[0])) for k in SubjectKeyKind
        )
        | {_norm("法人"): SubjectKeyKind.ORGANIZATION.value},
        "share_type": _enum_map(
            (t, (kind.name, kind.code, GENERIC_SHARE[t])) for t, kind in share.items()
        ),
        "open_type": _enum_map(
            (t, (kind.name, kind.code, GENERIC_OPEN[t])) for t, kind in opened.items()
        ),
        "share_methods": _enum_map(
            (m.value, (m.label, m.label.removesuffix("接口"))) for m in ShareMethod
        ),
        "update_frequency": _enum_map(
            (f.value, (f.label, f.label.removeprefix("每"))) for f in UpdateFrequency
        )
        | {_norm("每季"): UpdateFrequency.QUARTERLY.value},
        "data_grade": _enum_map((g.value, (g.label, g.label[:2])) for g in DataGrade),
        "data_type": _enum_map((t.value, (t.label,)) for t in DataType),
    }
    offered = {
        "catalog_kind": [k.label for k in CatalogKind],
        "base_database": [b.label for b in BaseDatabase],
        "resource_format": [f.label for f in ResourceFormat],
        "subject_key_kind": [k.label for k in SubjectKeyKind],
        "share_type": [kind.name for kind in share.values()],
        "open_type": [kind.name for kind in opened.values()],
        "share_methods": [m.label for m in ShareMethod],
        "update_frequency": [f.label for f in UpdateFrequency],
        "data_grade": [g.label for g in DataGrade],
        "data_type": [t.label for t in DataType],
    }
    return Choices(accepted, offered)


_TRUE = {"是", "y", "yes", "true", "1", "√", "✓"}
_FALSE = {"否", "n", "no", "false", "0", "×"}


# ---------------------------------------------------------------- writing workbooks


def _risky(value: object) -> bool:
    return isinstance(value, str) and value.startswith(_FORMULA_START)


def _cell(ws: Any, value: object, *, font: Any = None) -> Any:
    """A write-only cell; text that looks like a formula stays text (quote prefix)."""
    cell = WriteOnlyCell(ws, value=value)
    if _risky(value):
        cell.data_type = "s"
        cell.quotePrefix = True
    if font is not None:
        cell.font = font
    return cell


def _put(ws: Any, row: int, col: int, value: object) -> Any:
    """Set a cell of a normal worksheet; formula-looking text stays text."""
    cell = ws.cell(row=row, column=col, value=value)
    if _risky(value):
        cell.data_type = "s"
        cell.quotePrefix = True
    return cell


HEADER_FONT = Font(bold=True, color="FFFFFF")
HEADER_FILL = PatternFill("solid", fgColor="1F4E79")
REQUIRED_FILL = PatternFill("solid", fgColor="9C2A2A")
BOLD = Font(bold=True)


def _header_row(ws: Any, columns: Sequence[Column]) -> None:
    for i, col in enumerate(columns, start=1):
        cell = ws.cell(row=1, column=i, value=col.header)
        cell.font = HEADER_FONT
        cell.fill = REQUIRED_FILL if col.required else HEADER_FILL
        cell.alignment = Alignment(vertical="center", wrap_text=True)
        ws.column_dimensions[get_column_letter(i)].width = col.width
        if col.kind in ("code", "list") or col.key in ("subject_key_item", "field"):
            ws.column_dimensions[get_column_letter(i)].number_format = "@"
    ws.freeze_panes = "A2"


def _dropdowns(ws: Any, columns: Sequence[Column], choices: Choices) -> None:
    for i, col in enumerate(columns, start=1):
        if col.kind != "choice":
            options = ["是", "否"] if col.kind == "bool" else None
        else:
            options = choices.offered[col.key]
        if not options:
            continue
        letter = get_column_letter(i)
        dv = DataValidation(
            type="list",
            formula1='"' + ",".join(options) + '"',
            allow_blank=True,
            showErrorMessage=True,
            errorStyle="warning",
            errorTitle="取值不在列表中",
            error=f"{col.header}可选：{'、'.join(options)}",
        )
        dv.add(f"{letter}2:{letter}{TEMPLATE_ROWS + 1}")
        ws.add_data_validation(dv)


def _save(wb: Any) -> bytes:
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def example_rows(book: Rulebook) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The template's example: a conditional population resource keyed by ID number."""
    name = "户籍人口基本信息（示例）"
    entry: dict[str, Any] = {
        "name": name,
        "summary": "本部门登记的户籍人口姓名、公民身份号码、住址等基本信息"
        "（示例行，导入前请删除或改写）。",
        "catalog_kind": CatalogKind.DEPARTMENT.label,
        "item_code": "01",
        "category_code": "001",
        "base_database": "",
        "resource_format": ResourceFormat.DATABASE.label,
        "subject_key_kind": SubjectKeyKind.PERSON.label,
        "subject_key_item": "id_number",
        "share_type": book.share_types.conditional.name,
        "share_scope": "本级政务部门办理行政审批和公共服务事项",
        "share_purpose": "核验办事群众的户籍信息",
        "share_basis": "《中华人民共和国居民身份证法》第十三条",
        "share_methods": "、".join([ShareMethod.QUERY.label, ShareMethod.VERIFICATION.label]),
        "open_type": book.open_types.not_open.name,
        "open_conditions": "",
        "open_basis": "《中华人民共和国个人信息保护法》第二十八条",
        "update_frequency": UpdateFrequency.DAILY.label,
        "data_grade": DataGrade.IMPORTANT.label,
        "related_codes": "",
        "is_returned_data": "否",
        "returned_from": "",
    }
    items: list[dict[str, Any]] = [
        {
            "": name,
            "name": "公民身份号码",
            "field": "id_number",
            "data_type": DataType.ID_NUMBER.label,
            "length": 18,
            "required": "是",
            "description": "18 位公民身份号码",
            "personal": "是",
            "sensitive": "是",
            "share_type": "",
        },
        {
            "": name,
            "name": "姓名",
            "field": "name",
            "data_type": DataType.STRING.label,
            "length": 50,
            "required": "是",
            "description": "",
            "personal": "是",
            "sensitive": "否",
            "share_type": "",
        },
        {
            "": name,
            "name": "住址",
            "field": "address",
            "data_type": DataType.STRING.label,
            "length": 200,
            "required": "否",
            "description": "户籍登记住址",
            "personal": "是",
            "sensitive": "否",
            "share_type": "",
        },
    ]
    return entry, items


def _help_rows(book: Rulebook, choices: Choices) -> list[tuple[str, str, str, str, str]]:
    """(sheet, column, required, description, allowed values) for the 填写说明 sheet."""
    share_names = "、".join(
        f"{getattr(book.share_types, t).name}（代码 {getattr(book.share_types, t).code}）"
        for t in ("unconditional", "conditional", "not_shared")
    )
    open_names = "、".join(
        f"{getattr(book.open_types, t).name}（代码 {getattr(book.open_types, t).code}）"
        for t in ("unconditional", "conditional", "not_open")
    )
    allowed: dict[str, str] = {
        "share_type": share_names + "；也可填 " + "、".join(GENERIC_SHARE.values()),
        "open_type": open_names + "；也可填 " + "、".join(GENERIC_OPEN.values()),
        "share_methods": "、".join(choices.offered["share_methods"]) + "（可多选，顿号分隔）",
    }
    rows: list[tuple[str, str, str, str, str]] = []
    for sheet, columns in ((ENTRY_SHEET, ENTRY_COLUMNS), (ITEM_SHEET, ITEM_COLUMNS)):
        for col in columns:
            if col.key in allowed and (sheet == ENTRY_SHEET or col.key != "share_type"):
                values = allowed[col.key]
            elif col.kind == "choice":
                values = "、".join(choices.offered[col.key])
                if col.key == "share_type":  # an item's share type
                    values = allowed["share_type"]
            elif col.kind == "bool":
                values = "是、否（空为否）"
            else:
                values = ""
            rows.append((sheet, col.header, "必填" if col.required else "", col.note, values))
    return rows


def template_xlsx(session: Session, actor: Principal) -> bytes:
    """The import template, with the share and open type names of the actor's rulebook."""
    department = session.get(Department, actor.department_id) if actor.department_id else None
    book = _book(session, department)
    choices = choices_for(book)
    wb = Workbook()
    ws = wb.active
    ws.title = ENTRY_SHEET
    _header_row(ws, ENTRY_COLUMNS)
    _dropdowns(ws, ENTRY_COLUMNS, choices)
    entry, items = example_rows(book)
    for i, col in enumerate(ENTRY_COLUMNS, start=1):
        _put(ws, 2, i, entry[col.key] or None)
    wi = wb.create_sheet(ITEM_SHEET)
    _header_row(wi, ITEM_COLUMNS)
    _dropdowns(wi, ITEM_COLUMNS, choices)
    for r, item in enumerate(items, start=2):
        for i, col in enumerate(ITEM_COLUMNS, start=1):
            _put(wi, r, i, item[col.key] if item[col.key] != "" else None)
    wh = wb.create_sheet(HELP_SHEET)
    intro = [
        "政务数据资源目录导入模板",
        f"适用规则：{book.title}（{book.name}）。共享类型、开放类型按本规则的名称填写。",
        f"“{ENTRY_SHEET}”每行一条资源；“{ITEM_SHEET}”每行一个信息项，按“资源名称”归入对应资源，"
        "每条资源至少一个信息项。",
        "第 2 行为示例，导入前请删除或改写。红色表头为必填列。",
        f"一次最多导入 {MAX_ENTRIES} 条资源；文件不超过 {MAX_FILE_BYTES // 1024 // 1024} MB；"
        f"单元格不超过 {MAX_CELL_CHARS} 个字。",
        "导入时逐行检查全部规则：只要有一行有误，就不创建任何资源，并列出每处错误"
        "（工作表、行号、列名、原因）。全部无误时，所有资源作为本部门的草稿创建，再逐条提交审核。",
        "有条件共享的资源须列明共享范围和使用用途；不予共享的资源须引用法律、行政法规或"
        "国务院决定（写明文件名称，如《中华人民共和国个人信息保护法》，及条款）。",
        "以 = + - @ 开头的内容按文本处理，不会作为公式计算。",
        "",
    ]
    for r, text in enumerate(intro, start=1):
        cell = _put(wh, r, 1, text)
        if r == 1:
            cell.font = Font(bold=True, size=14)
    start = len(intro) + 1
    for i, header in enumerate(("工作表", "列名", "是否必填", "说明", "允许的取值"), start=1):
        _put(wh, start, i, header).font = BOLD
    for r, row in enumerate(_help_rows(book, choices), start=start + 1):
        for i, value in enumerate(row, start=1):
            _put(wh, r, i, value)
    for letter, width in zip("ABCDE", (10, 22, 10, 36, 70), strict=True):
        wh.column_dimensions[letter].width = width
    return _save(wb)


# ---------------------------------------------------------------- reading workbooks


@dataclass(frozen=True)
class RowError:
    """One problem of an imported workbook."""

    sheet: str
    row: int
    column: str
    value: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "sheet": self.sheet,
            "row": self.row,
            "column": self.column,
            "value": self.value,
            "reason": self.reason,
        }


class RowErrorOut(BaseModel):
    sheet: str
    row: int
    column: str
    value: str
    reason: str


@dataclass
class _Row:
    sheet: str
    row: int
    cells: dict[str, Any]  # column key -> raw cell value ("" key: the link column)


@dataclass
class _Sheet:
    rows: list[_Row]
    columns: set[str]  # keys of the columns present


def _bad_file(detail: str = "") -> ValidationFailed:
    message = (
        "无法读取该文件：它不是有效的 Excel 工作簿（.xlsx）。"
        "请在 Excel 或 WPS 中“另存为 Excel 工作簿（*.xlsx）”后重新上传"
        "（不支持 .xls、.csv 和设有打开密码的文件）"
    )
    return ValidationFailed(message + (f"；{detail}" if detail else ""), field="file")


def check_container(content: bytes) -> None:
    """Refuse what is not an XLSX zip, or unpacks to too much (zip bomb), before parsing."""
    if not content:
        raise ValidationFailed("上传的文件是空的", field="file")
    if len(content) > MAX_FILE_BYTES:
        raise ValidationFailed(
            f"文件超过 {MAX_FILE_BYTES // 1024 // 1024} MB，请分批导入", field="file"
        )
    readers.check_xlsx_container(io.BytesIO(content), max_unpacked_bytes=MAX_UNPACKED_BYTES)


def _read_sheet(wb: Any, name: str, columns: Sequence[Column], limit: int) -> _Sheet:
    ws = wb[name]
    by_header = {normalize_header(c.header): c for c in columns}
    rows = ws.iter_rows(max_col=MAX_COLUMNS, values_only=True)
    header = next(rows, None) or ()
    positions: dict[int, Column] = {}
    for i, value in enumerate(header):
        col = by_header.get(normalize_header(str(value))) if value is not None else None
        if col is not None and col not in positions.values():
            positions[i] = col
    out: list[_Row] = []
    for number, values in enumerate(rows, start=2):
        if number > MAX_SCANNED_ROWS:
            raise ValidationFailed(
                f"工作表“{name}”的行数过多（超过 {MAX_SCANNED_ROWS} 行），请删除空行后重试",
                field="file",
            )
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
            continue
        if len(out) >= limit:
            what = "资源" if name == ENTRY_SHEET else "信息项"
            raise ValidationFailed(
                f"一次最多导入 {limit} 条{what}，“{name}”工作表超过了这个数量，请分批导入",
                field="file",
            )
        cells = {col.key: values[i] if i < len(values) else None for i, col in positions.items()}
        out.append(_Row(name, number, cells))
    return _Sheet(out, {c.key for c in positions.values()})


def read_workbook(content: bytes) -> tuple[_Sheet, _Sheet]:
    """The “目录” and “信息项” sheets' rows, or a ValidationFailed naming the problem."""
    check_container(content)
    try:
        wb = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception:
        raise _bad_file() from None
    try:
        missing = [s for s in (ENTRY_SHEET, ITEM_SHEET) if s not in wb.sheetnames]
        if missing:
            raise ValidationFailed(
                f"找不到工作表“{'”“'.join(missing)}”：请使用平台提供的导入模板", field="file"
            )
        try:
            entries = _read_sheet(wb, ENTRY_SHEET, ENTRY_COLUMNS, MAX_ENTRIES)
            items = _read_sheet(wb, ITEM_SHEET, ITEM_COLUMNS, MAX_ITEM_ROWS)
        except ValidationFailed:
            raise
        except Exception:
            raise _bad_file("工作表内容已损坏") from None
    finally:
        wb.close()
    return entries, items


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else str(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


# ---------------------------------------------------------------- checking rows


@dataclass
class _Entry:
    row: _Row
    data: dict[str, Any]
    #: the item rows that were read without error
    items: list[tuple[_Row, dict[str, Any]]] = field(default_factory=list)
    ok: bool = True
    #: some item rows had errors: the entry is still checked without them, but what their
    #: absence may cause (no items, no key item, an item rule) is not reported
    dropped: bool = False


class _Checker:
    def __init__(self, choices: Choices, book: Rulebook) -> None:
        self.choices = choices
        self.book = book
        self.errors: list[RowError] = []

    def error(self, row: _Row, column: str, value: object, reason: str) -> None:
        shown = _text(value)
        if len(shown) > 200:
            shown = shown[:200] + "…"
        self.errors.append(RowError(row.sheet, row.row, column, shown, reason))

    def convert(self, row: _Row, columns: Sequence[Column]) -> dict[str, Any] | None:
        """A row's cells as input-model values; None (with errors recorded) if any is bad."""
        out: dict[str, Any] = {}
        ok = True
        for col in columns:
            if not col.key or col.key not in row.cells:
                continue
            raw = row.cells[col.key]
            text = _text(raw)
            if len(text) > MAX_CELL_CHARS:
                self.error(row, col.header, raw, f"超过 {MAX_CELL_CHARS} 个字符")
                ok = False
                continue
            if text == "":
                if col.required:
                    self.error(row, col.header, raw, "必填")
                    ok = False
                continue
            try:
                out[col.key] = self._value(col, raw, text)
            except ValueError as exc:
                self.error(row, col.header, raw, str(exc))
                ok = False
        return out if ok else None

    def _value(self, col: Column, raw: object, text: str) -> Any:
        if col.kind == "text":
            return text
        if col.kind == "code":
            if isinstance(raw, int | float) and not isinstance(raw, bool) and text.isdigit():
                return text.zfill(col.digits)  # “01” typed into a number cell became 1
            return text
        if col.kind == "int":
            if isinstance(raw, int | float) and not isinstance(raw, bool):
                if float(raw).is_integer():
                    return int(raw)
            elif text.isdigit():
                return int(text)
            raise ValueError("应为正整数")
        if col.kind == "bool":
            value = _norm(text)
            if value in _TRUE:
                return True
            if value in _FALSE:
                return False
            raise ValueError("应填“是”或“否”")
        if col.kind == "list":
            return [p for p in _LIST_SPLIT.split(text) if p]
        if col.kind == "multi":
            values = []
            for part in (p for p in _LIST_SPLIT.split(text) if p):
                parsed = self.choices.parse(col.key, part)
                if parsed is None:
                    raise ValueError(self._unknown(col, part))
                values.append(parsed)
            return values
        parsed = self.choices.parse(col.key, text)
        if parsed is None:
            raise ValueError(self._unknown(col, text))
        return parsed

    def _unknown(self, col: Column, text: str) -> str:
        allowed = self.choices.offered[col.key]
        return f"“{text}”不是允许的{col.header.split('（')[0]}，可选：{'、'.join(allowed)}"


_PATTERN_REASONS = {
    "item_code": "应为 2 位数字",
    "category_code": "应为 3 位数字",
    "field": "应以小写英文字母开头，只含小写字母、数字和下划线（不超过 63 位）",
}


def _reason(key: str, err: Any) -> str:
    kind = str(err["type"])
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return "必填"
    if kind == "string_too_short":
        return f"至少 {ctx.get('min_length')} 个字符"
    if kind == "string_too_long":
        return f"不能超过 {ctx.get('max_length')} 个字符"
    if kind == "string_pattern_mismatch":
        return _PATTERN_REASONS.get(key, "格式不正确")
    if kind == "too_short":
        return f"至少 {ctx.get('min_length')} 项"
    if kind == "too_long":
        return f"最多 {ctx.get('max_length')} 项"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return "数值超出允许范围"
    if kind in ("enum", "literal_error"):
        return "不是允许的取值"
    return "取值无效"


#: rules that an item row left out (for its own error) may break
_ITEM_DEPENDENT = frozenset({"data_items", "subject_key_item", "open_type"})


def _item_row_named(entry: _Entry, message: str) -> tuple[_Row, str] | None:
    for row, data in entry.items:
        if f"“{data.get('name', '')}”" in message:
            return row, str(data.get("name", ""))
    return None


def check_rows(
    session: Session, department: Department, entries: _Sheet, items: _Sheet
) -> tuple[list[RowError], list[schemas.EntryCreate]]:
    """Every problem of every row; the entries to create when there is none."""
    book = service.rulebook_of(session, department)
    checker = _Checker(choices_for(book), book)
    for sheet, columns in ((entries, ENTRY_COLUMNS), (items, ITEM_COLUMNS)):
        if not sheet.rows and sheet is entries:
            raise ValidationFailed(f"“{ENTRY_SHEET}”工作表没有数据行", field="file")
        missing = [c for c in columns if c.required and c.key not in sheet.columns]
        for col in missing:
            name = ENTRY_SHEET if sheet is entries else ITEM_SHEET
            checker.errors.append(RowError(name, 1, col.header, "", "缺少此列（表头）"))
    if checker.errors:
        return checker.errors, []

    parsed: list[_Entry] = []
    by_name: dict[str, _Entry] = {}
    for row in entries.rows:
        data = checker.convert(row, ENTRY_COLUMNS)
        entry = _Entry(row, data or {}, ok=data is not None)
        parsed.append(entry)
        name = _text(row.cells.get("name"))
        if name in by_name:
            checker.error(
                row,
                "资源名称",
                name,
                f"与第 {by_name[name].row.row} 行的资源名称重复"
                "（信息项按资源名称归属，名称须唯一）",
            )
            entry.ok = False
        elif name:
            by_name[name] = entry
    for row in items.rows:
        owner_name = _text(row.cells.get(""))
        owner = by_name.get(owner_name)
        data = checker.convert(row, ITEM_COLUMNS)
        if not owner_name:
            checker.error(
                row, "资源名称", None, f"必填：信息项所属资源在“{ENTRY_SHEET}”工作表中的名称"
            )
            continue
        if owner is None:
            checker.error(row, "资源名称", owner_name, f"“{ENTRY_SHEET}”工作表中没有这个资源名称")
            continue
        if data is None:
            owner.dropped = True
        else:
            owner.items.append((row, data))

    out: list[schemas.EntryCreate] = []
    for entry in parsed:
        if not entry.ok:
            continue
        values = dict(entry.data)
        values["data_items"] = [data for _row, data in entry.items]
        try:
            model = schemas.EntryCreate.model_validate(values)
        except ValidationError as exc:
            for err in exc.errors():
                loc = list(err["loc"])
                if entry.dropped and loc and loc[0] in _ITEM_DEPENDENT:
                    continue
                if loc and loc[0] == "data_items" and len(loc) >= 3 and isinstance(loc[1], int):
                    item_row, item_data = entry.items[loc[1]]
                    key = str(loc[2])
                    header = ITEM_BY_KEY[key].header if key in ITEM_BY_KEY else key
                    checker.error(item_row, header, item_data.get(key), _reason(key, err))
                elif loc and loc[0] == "data_items":
                    checker.error(
                        entry.row,
                        "资源名称",
                        entry.data.get("name"),
                        f"“{ITEM_SHEET}”工作表中没有这个资源的信息项（至少需要一个）"
                        if err["type"] == "too_short"
                        else f"信息项{_reason('data_items', err)}",
                    )
                else:
                    key = str(loc[0]) if loc else ""
                    header = ENTRY_BY_KEY[key].header if key in ENTRY_BY_KEY else key
                    checker.error(entry.row, header, entry.row.cells.get(key), _reason(key, err))
            continue
        try:
            service.validate(session, model, department)
        except ValidationFailed as exc:
            key = exc.field or ""
            if entry.dropped and key in _ITEM_DEPENDENT:
                continue
            if key == "data_items":
                found = _item_row_named(entry, exc.message)
                if found is not None:
                    checker.error(found[0], "信息项名称", found[1], exc.message)
                else:
                    checker.error(entry.row, "资源名称", entry.data.get("name"), exc.message)
            else:
                header = ENTRY_BY_KEY[key].header if key in ENTRY_BY_KEY else "资源名称"
                value = entry.row.cells.get(key) if key in ENTRY_BY_KEY else None
                checker.error(entry.row, header, value, exc.message)
            continue
        if not entry.dropped:
            out.append(model)
    order = {ENTRY_SHEET: 0, ITEM_SHEET: 1}
    errors = sorted(checker.errors, key=lambda e: (order.get(e.sheet, 2), e.row))
    return errors, out


# ---------------------------------------------------------------- importing


@dataclass
class ImportResult:
    errors: list[RowError]
    created: list[CatalogVersion]
    entry_rows: int
    item_rows: int

    @property
    def ok(self) -> bool:
        return not self.errors

    def errors_shown(self) -> list[RowError]:
        return self.errors[:MAX_ERRORS]


def import_entries(
    session: Session, actor: Principal, content: bytes, filename: str = ""
) -> ImportResult:
    """Import a filled-in template as drafts of the actor's department: all or nothing."""
    if not actor.can(Perm.CATALOG_EDIT):
        raise PermissionDenied("只有部门数据专员或负责人可以导入目录")
    department = session.get(Department, actor.department_id) if actor.department_id else None
    if department is None or not department.is_active:
        raise PermissionDenied("只能由部门用户导入本部门的目录")
    entries, items = read_workbook(content)
    errors, models = check_rows(session, department, entries, items)
    result = ImportResult(errors, [], len(entries.rows), len(items.rows))
    if errors:
        return result
    for model in models:
        result.created.append(service.create_entry(session, actor, model))
    audit.record(
        session,
        actor,
        "catalog:entry:import",
        "department",
        department.id,
        {
            "file": filename[:128],
            "entries": len(result.created),
            "items": result.item_rows,
            "codes": [v.entry.code for v in result.created][:200],
        },
    )
    return result


def error_report_xlsx(errors: Sequence[RowError]) -> bytes:
    """The errors of an import as a workbook (values are written as text, never formulas)."""
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("错误报告")
    ws.column_dimensions["A"].width = 10
    ws.column_dimensions["B"].width = 8
    ws.column_dimensions["C"].width = 18
    ws.column_dimensions["D"].width = 30
    ws.column_dimensions["E"].width = 70
    ws.append([_cell(ws, h, font=BOLD) for h in ("工作表", "行号", "列名", "填写的值", "原因")])
    for e in errors[:MAX_ERRORS]:
        ws.append([_cell(ws, v) for v in (e.sheet, e.row, e.column, e.value, e.reason)])
    return _save(wb)


def parse_report_rows(raw: object) -> list[RowError]:
    """Error rows posted back by the import page (for the report download)."""
    rows: list[RowError] = []
    if not isinstance(raw, list):
        raise ValidationFailed("错误报告的格式不正确", field="report")
    for item in raw[:MAX_ERRORS]:
        if not isinstance(item, dict):
            raise ValidationFailed("错误报告的格式不正确", field="report")
        try:
            rows.append(
                RowError(
                    sheet=str(item.get("sheet", ""))[:32],
                    row=int(item.get("row", 0)),
                    column=str(item.get("column", ""))[:64],
                    value=str(item.get("value", ""))[:MAX_CELL_CHARS],
                    reason=str(item.get("reason", ""))[:MAX_CELL_CHARS],
                )
            )
        except (TypeError, ValueError):
            raise ValidationFailed("错误报告的格式不正确", field="report") from None
    return rows


# ---------------------------------------------------------------- exporting


class ExportFilters(BaseModel):
    """The search page's query (blank = any); checked again by ``search.make_query``."""

    q: str = Field(default="", max_length=catalog_search.MAX_QUERY_LENGTH)
    department_id: int | None = Field(default=None, ge=1)
    jurisdiction_id: int | None = Field(default=None, ge=1)
    catalog_kind: CatalogKind | None = None
    share_type: ShareType | None = None
    open_type: OpenType | None = None
    resource_format: ResourceFormat | None = None
    update_frequency: UpdateFrequency | None = None
    data_grade: DataGrade | None = None
    sort: Literal["relevance", "date"] = "relevance"

    def as_audit(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in self.model_dump(mode="json").items()
            if v not in ("", None) and not (k == "sort" and v == "relevance")
        }


FILTER_LABELS = dict(catalog_search.FACETS) | {
    "q": "关键词",
    "jurisdiction_id": "行政区",
    "sort": "排序方式",
}


def parse_filters(params: dict[str, str]) -> ExportFilters:
    values: dict[str, Any] = {}
    for key in ExportFilters.model_fields:
        text = " ".join((params.get(key) or "").split())
        if text:
            values[key] = text
    try:
        return ExportFilters.model_validate(values)
    except ValidationError as exc:
        key = str(exc.errors()[0]["loc"][0])
        raise ValidationFailed(f"{FILTER_LABELS.get(key, key)}的取值无效", field=key) from None


def published_matching(
    session: Session, principal: Principal, filters: ExportFilters
) -> list[tuple[CatalogEntry, CatalogVersion]]:
    """Every published entry the search finds for ``filters``, in the search's order, with
    the version in force that the search indexed."""
    args = filters.model_dump()
    ids: list[int] = []
    page = 1
    while True:
        result = catalog_search.search(
            session, principal, **args, page=page, per_page=catalog_search.MAX_PER_PAGE
        )
        if result.total > MAX_EXPORT_ROWS:
            raise ValidationFailed(
                f"符合条件的资源超过 {MAX_EXPORT_ROWS} 条，请缩小筛选范围后再导出", field="q"
            )
        ids += [hit.entry_id for hit in result.items]
        if not result.has_next:
            break
        page += 1
    found: dict[int, tuple[CatalogEntry, CatalogVersion]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for row in session.execute(
            select(CatalogEntry, CatalogVersion)
            .join(CatalogSearch, CatalogSearch.entry_id == CatalogEntry.id)
            .join(CatalogVersion, CatalogVersion.id == CatalogSearch.version_id)
            .where(CatalogEntry.id.in_(chunk))
            .where(CatalogEntry.status == EntryStatus.PUBLISHED.value)
        ):
            found[row[0].id] = (row[0], row[1])
    return [found[i] for i in ids if i in found]


class _Labels:
    """Chinese labels of an entry's values, share/open names by its own rulebook."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.books: dict[int, Rulebook] = {}

    def book(self, entry: CatalogEntry) -> Rulebook:
        if entry.jurisdiction_id not in self.books:
            self.books[entry.jurisdiction_id] = service.rulebook_of(self.session, entry)
        return self.books[entry.jurisdiction_id]

    def entry_values(self, entry: CatalogEntry, v: CatalogVersion) -> dict[str, Any]:
        book = self.book(entry)
        return {
            "name": v.name,
            "summary": v.summary,
            "catalog_kind": CatalogKind(v.catalog_kind).label,
            "item_code": v.item_code,
            "category_code": v.category_code,
            "base_database": BaseDatabase(v.base_database).label if v.base_database else "",
            "resource_format": ResourceFormat(v.resource_format).label,
            "subject_key_kind": SubjectKeyKind(v.subject_key_kind).label,
            "subject_key_item": v.subject_key_item,
            "share_type": service.share_type_name(book, v.share_type),
            "share_scope": v.share_scope,
            "share_purpose": v.share_purpose,
            "share_basis": v.share_basis,
            "share_methods": "、".join(ShareMethod(m).label for m in v.share_methods),
            "open_type": service.open_type_name(book, v.open_type),
            "open_conditions": v.open_conditions,
            "open_basis": v.open_basis,
            "update_frequency": UpdateFrequency(v.update_frequency).label,
            "data_grade": DataGrade(v.data_grade).label,
            "related_codes": "、".join(v.related_codes),
            "is_returned_data": "是" if v.is_returned_data else "否",
            "returned_from": v.returned_from,
        }

    def item_values(self, entry: CatalogEntry, item: dict[str, Any]) -> dict[str, Any]:
        book = self.book(entry)
        share = item.get("share_type")
        return {
            "name": item.get("name", ""),
            "field": item.get("field", ""),
            "data_type": DataType(item.get("data_type", "string")).label,
            "length": item.get("length"),
            "required": "是" if item.get("required") else "否",
            "description": item.get("description", ""),
            "personal": "是" if item.get("personal") else "否",
            "sensitive": "是" if item.get("sensitive") else "否",
            "share_type": service.share_type_name(book, share) if share else "",
        }


def export_xlsx(session: Session, actor: Principal, filters: ExportFilters) -> tuple[bytes, int]:
    """Published entries matching ``filters``: the template's columns plus 资源代码, 提供部门,
    发布日期, 版本; the data items on a second sheet. Audited with the filters and count."""
    if not actor.can(Perm.CATALOG_EXPORT):
        raise PermissionDenied("您没有导出目录的权限")
    rows = published_matching(session, actor, filters)
    labels = _Labels(session)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(ENTRY_SHEET)
    wi = wb.create_sheet(ITEM_SHEET)
    entry_headers = ["资源代码", *(c.header for c in ENTRY_COLUMNS), "提供部门", "发布日期", "版本"]
    item_headers = ["资源代码", *(c.header for c in ITEM_COLUMNS)]
    for sheet, headers in ((ws, entry_headers), (wi, item_headers)):
        for i, header in enumerate(headers, start=1):
            width = 14 if header == "资源代码" else 16
            sheet.column_dimensions[get_column_letter(i)].width = width
        sheet.freeze_panes = "B2"
        sheet.append([_cell(sheet, h, font=BOLD) for h in headers])
    for entry, v in rows:
        values = labels.entry_values(entry, v)
        published = v.publish_date.isoformat() if v.publish_date else ""
        ws.append(
            [
                _cell(ws, entry.code),
                *(_cell(ws, values[c.key]) for c in ENTRY_COLUMNS),
                _cell(ws, entry.department.name),
                _cell(ws, published),
                _cell(ws, v.number),
            ]
        )
        for item in v.data_items:
            iv = labels.item_values(entry, item)
            wi.append(
                [
                    _cell(wi, entry.code),
                    _cell(wi, v.name),
                    *(_cell(wi, iv[c.key]) for c in ITEM_COLUMNS if c.key),
                ]
            )
    audit.record(
        session,
        actor,
        "catalog:entry:export",
        "catalog_search",
        "",
        {"filters": filters.as_audit(), "rows": len(rows)},
    )
    return _save(wb), len(rows)


# ---------------------------------------------------------------- DCAT-AP 3 (JSON-LD)

DCAT_CONTEXT: dict[str, str] = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}
EU_FREQUENCY = "http://publications.europa.eu/resource/authority/frequency/"
EU_FILE_TYPE = "http://publications.europa.eu/resource/authority/file-type/"
EU_ACCESS_RIGHT = "http://publications.europa.eu/resource/authority/access-right/"
EU_LANGUAGE_ZH = "http://publications.europa.eu/resource/authority/language/ZHO"
IANA_MEDIA_TYPE = "http://www.iana.org/assignments/media-types/"

FREQUENCY_CODES: dict[str, str] = {
    UpdateFrequency.REALTIME: "CONT",
    UpdateFrequency.DAILY: "DAILY",
    UpdateFrequency.WEEKLY: "WEEKLY",
    UpdateFrequency.MONTHLY: "MONTHLY",
    UpdateFrequency.QUARTERLY: "QUARTERLY",
    UpdateFrequency.YEARLY: "ANNUAL",
    UpdateFrequency.IRREGULAR: "IRREG",
}
#: resource format -> (EU file type, IANA media type), where one is meaningful
FORMAT_TYPES: dict[str, tuple[str, str]] = {
    ResourceFormat.SPREADSHEET: (
        "XLSX",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    ResourceFormat.INTERFACE: ("JSON", "application/json"),
}
#: where the data services domain answers calls for an entry (query and verification)
DATA_SERVICE_PATH = "api/v1/dataservices/entries/{entry_id}"


def entry_page(base: str, entry_id: int) -> str:
    """The entry's page on the platform (the dataset's landing page and access URL)."""
    return f"{base}catalog/entries/{entry_id}"


def dataset_iri(base: str, entry_id: int) -> str:
    """The dataset itself, distinct from the page that describes it."""
    return f"{entry_page(base, entry_id)}#dataset"


def _zh(text: str) -> dict[str, str]:
    return {"@value": text, "@language": "zh"}


def _agent(base: str, department: Department) -> dict[str, Any]:
    return {
        "@id": f"{base}orgs/departments/{department.id}",
        "@type": "foaf:Agent",
        "foaf:name": _zh(department.name),
        "dct:identifier": department.credit_code,
    }


def top_jurisdiction(session: Session) -> Jurisdiction | None:
    """The deployment's top jurisdiction: the configured one, else the first root."""
    code = get_settings().root_jurisdiction
    if code:
        found = orgs_repo.jurisdiction_by_code(session, code)
        if found is not None:
            return found
    return session.scalar(
        select(Jurisdiction).where(Jurisdiction.parent_id.is_(None)).order_by(Jurisdiction.id)
    )


def catalog_publisher(session: Session, base: str) -> dict[str, Any]:
    top = top_jurisdiction(session)
    authority = None
    if top is not None:
        authority = session.scalar(
            select(Department)
            .where(Department.jurisdiction_id == top.id)
            .where(Department.is_data_authority.is_(True))
            .where(Department.is_active.is_(True))
            .order_by(Department.id)
        )
    if authority is not None:
        return _agent(base, authority)
    return {"@id": f"{base}#platform", "@type": "foaf:Agent", "foaf:name": _zh(PLATFORM_NAME)}


def _access_rights(v: CatalogVersion) -> str:
    if v.open_type == OpenType.UNCONDITIONAL:
        return "PUBLIC"
    if v.share_type == ShareType.NOT_SHARED and v.open_type == OpenType.NOT_OPEN:
        return "NON_PUBLIC"
    return "RESTRICTED"


def dcat_catalog(session: Session, base_url: str) -> dict[str, Any]:
    """The published catalog as DCAT-AP 3 JSON-LD; IRIs are based on ``base_url``."""
    base = base_url if base_url.endswith("/") else base_url + "/"
    rows = [
        (row[0], row[1])
        for row in session.execute(
            select(CatalogEntry, CatalogVersion)
            .join(CatalogVersion, CatalogVersion.id == CatalogEntry.current_version_id)
            .where(CatalogEntry.status == EntryStatus.PUBLISHED.value)
            .order_by(CatalogEntry.code)
        )
    ]
    published = {entry.code: dataset_iri(base, entry.id) for entry, _v in rows}
    top = top_jurisdiction(session)
    scheme_id = f"{base}catalog/classification"
    scheme = {
        "@id": scheme_id,
        "@type": "skos:ConceptScheme",
        "dct:title": _zh("政务信息资源目录分类（基础、主题、部门信息资源）"),
    }
    datasets: list[dict[str, Any]] = []
    services: list[dict[str, Any]] = []
    for entry, v in rows:
        page = entry_page(base, entry.id)
        kind = CatalogKind(v.catalog_kind)
        prefix = f"{kind.class_digit}{v.item_code}{v.category_code}"
        publisher = _agent(base, entry.department)
        distribution: dict[str, Any] = {
            "@id": f"{page}#distribution",
            "@type": "dcat:Distribution",
            "dct:title": _zh(f"{v.name}（{ResourceFormat(v.resource_format).label}）"),
            "dcat:accessURL": {"@id": page, "@type": "rdfs:Resource"},
        }
        formats = FORMAT_TYPES.get(v.resource_format)
        if formats is not None:
            distribution["dct:format"] = {
                "@id": EU_FILE_TYPE + formats[0],
                "@type": "dct:MediaTypeOrExtent",
            }
            distribution["dcat:mediaType"] = {
                "@id": IANA_MEDIA_TYPE + formats[1],
                "@type": "dct:MediaType",
            }
        dataset: dict[str, Any] = {
            "@id": dataset_iri(base, entry.id),
            "@type": "dcat:Dataset",
            "dct:title": _zh(v.name),
            "dct:description": _zh(v.summary),
            "dct:identifier": entry.code,
            "dct:publisher": publisher,
            "dcat:theme": {
                "@id": f"{scheme_id}/{prefix}",
                "@type": "skos:Concept",
                "skos:prefLabel": _zh(f"{kind.label} {v.item_code}项 {v.category_code}目"),
                "skos:inScheme": {"@id": scheme_id},
            },
            "dct:accrualPeriodicity": {
                "@id": EU_FREQUENCY + FREQUENCY_CODES[UpdateFrequency(v.update_frequency)],
                "@type": "dct:Frequency",
            },
            "dct:accessRights": {
                "@id": EU_ACCESS_RIGHT + _access_rights(v),
                "@type": "dct:RightsStatement",
            },
            "dct:language": {"@id": EU_LANGUAGE_ZH, "@type": "dct:LinguisticSystem"},
            "dcat:landingPage": {"@id": page, "@type": "foaf:Document"},
            "dcat:distribution": [distribution],
        }
        if v.publish_date is not None:
            dataset["dct:issued"] = {"@value": v.publish_date.isoformat(), "@type": "xsd:date"}
        related = [published[c] for c in v.related_codes if c in published]
        if related:
            dataset["dct:relation"] = [{"@id": iri, "@type": "rdfs:Resource"} for iri in related]
        methods = [m for m in v.share_methods if m in (ShareMethod.QUERY, ShareMethod.VERIFICATION)]
        if methods and v.share_type != ShareType.NOT_SHARED:
            service_id = f"{page}#service"
            labels = "、".join(ShareMethod(m).label for m in methods)
            services.append(
                {
                    "@id": service_id,
                    "@type": "dcat:DataService",
                    "dct:title": _zh(f"{v.name}（{labels}）"),
                    "dct:description": _zh(
                        f"经共享授权后按主体标识调用的{labels}服务，仅返回授权的信息项。"
                    ),
                    "dcat:endpointURL": {
                        "@id": base + DATA_SERVICE_PATH.format(entry_id=entry.id),
                        "@type": "rdfs:Resource",
                    },
                    "dct:publisher": publisher,
                    "dcat:servesDataset": [{"@id": dataset_iri(base, entry.id)}],
                }
            )
            distribution["dcat:accessService"] = [{"@id": service_id}]
        datasets.append(dataset)
    area = top.name if top is not None else ""
    catalog: dict[str, Any] = {
        "@id": f"{base}catalog",
        "@type": "dcat:Catalog",
        "dct:title": _zh(f"{area}政务数据资源目录"),
        "dct:description": _zh(
            f"{area}{PLATFORM_NAME}发布的政务数据资源目录，共 {len(datasets)} 项已发布资源；"
            "按 DCAT-AP 3 表示。"
        ),
        "dct:publisher": catalog_publisher(session, base),
        "dct:language": {"@id": EU_LANGUAGE_ZH, "@type": "dct:LinguisticSystem"},
        "foaf:homepage": {"@id": base, "@type": "foaf:Document"},
        "dcat:themeTaxonomy": scheme,
        "dcat:dataset": datasets,
        "dcat:service": services,
    }
    return {"@context": DCAT_CONTEXT, "@graph": [catalog]}
