"""Cell validation for aggregated data (汇聚数据校验).

A department's rows arrive as CSV strings or XLSX typed cells. Each catalog data item
(信息项) becomes an :class:`ItemRule`; :func:`convert` turns one raw cell into the Python
value stored in the typed data table and lists what is wrong with it, and
:func:`validate_row` does that for a whole row.

Every problem carries a short Simplified Chinese reason meant for the department's staff.
A cell with an error converts to ``None``; a cell with only warnings keeps its value.

This runs for millions of rows, so the converters are plain functions chosen once per
rule, regexes are precompiled, and the costly look-ups (the division table, birth dates)
are cached. The GB 11643 check digit is computed here rather than through python-stdnum,
which is only used for its administrative division table.

Decisions worth knowing:

* Text keeps tabs and line breaks inside a value (remarks and addresses legitimately have
  them); other control characters, bidirectional overrides and lone surrogates are refused.
* Text that starts with ``= + - @`` is kept as text as it is. It is never evaluated here;
  neutralising formulas is the job of whatever exports to a spreadsheet.
* A division code is "known" when python-stdnum's table lists it, including codes that
  have since been abolished: old records and ID numbers legitimately carry them. The
  birth year of an ID number is not compared with the years a code was in use, because
  many people were issued their number long after birth.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Literal, TypeAlias
from zoneinfo import ZoneInfo

from govshare.catalog.models import DataType

__all__ = [
    "BEIJING",
    "ItemRule",
    "Problem",
    "Raw",
    "Severity",
    "Value",
    "convert",
    "credit_check_digit",
    "division_known",
    "id_check_digit",
    "make_rules",
    "validate_row",
]

BEIJING = ZoneInfo("Asia/Shanghai")

Severity: TypeAlias = Literal["error", "warning"]
Raw: TypeAlias = str | int | float | Decimal | date | datetime | bool | None
Value: TypeAlias = str | int | Decimal | date | datetime | bool | None

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_SHOW_MAX = 100  # characters of an offending value repeated in a problem


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one cell."""

    field: str
    value: str
    reason: str
    severity: Severity = "error"


# --------------------------------------------------------------------------- helpers


def _show(raw: object) -> str:
    """The offending value as text for the problem list, shortened when very long."""
    if raw is None:
        return ""
    if isinstance(raw, datetime):
        text = raw.isoformat(sep=" ")
    elif isinstance(raw, float) and raw.is_integer():
        text = str(int(raw))
    else:
        text = str(raw)
    if len(text) > _SHOW_MAX:
        return text[:_SHOW_MAX] + "…"
    return text


def _quote(raw: object) -> str:
    return f"「{_show(raw)}」"


def _fail(
    problems: list[Problem], rule: ItemRule, raw: object, reason: str, severity: Severity = "error"
) -> None:
    problems.append(Problem(rule.field, _show(raw), reason, severity))


def _integral_text(raw: int | float | Decimal) -> str | None:
    """Digits of a number cell that holds a whole number (Excel stores them as floats)."""
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, float):
        if raw.is_integer():
            return str(int(raw))
        return None
    if raw.is_finite() and raw == raw.to_integral_value():
        return str(int(raw))
    return None


class _Today:
    """Today's date in Beijing as ``YYYYMMDD``, recomputed at most once a minute."""

    __slots__ = ("_key", "_until")

    def __init__(self) -> None:
        self._key = ""
        self._until = 0.0

    def key(self) -> str:
        now = time.time()
        if now >= self._until:
            self._key = datetime.now(BEIJING).strftime("%Y%m%d")
            self._until = now + 60.0
        return self._key


_today = _Today()


@lru_cache(maxsize=16384)
def division_known(code6: str) -> bool:
    """Whether python-stdnum's division table (used by ``stdnum.cn.ric``) lists a county code.

    ``stdnum.cn.ric.get_birth_place`` looks the first six digits up in the ``cn/loc`` number
    database; a province prefix alone (``419999``) is not a known code.
    """
    from stdnum import numdb

    if len(code6) != 6 or not code6.isascii() or not code6.isdigit():
        return False
    return any("county" in props for _part, props in numdb.get("cn/loc").info(code6))


# --------------------------------------------------------------------------- converters
# Each converter gets a non-empty cell (strings already stripped) and returns the value,
# or None after appending an error.

_Converter: TypeAlias = Callable[["ItemRule", Any, list[Problem]], Value]

_BAD_CHARS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _to_string(rule: ItemRule, raw: Any, problems: list[Problem]) -> Value:
    if isinstance(raw, str):
        text = raw
    elif isinstance(raw, bool):
        text = "是" if raw else "否"
    elif isinstance(raw, datetime):
        text = raw.isoformat(sep=" ")
    elif isinstance(raw, float):
        text = str(int(raw)) if raw.is_integer() else repr(raw)
    else:
        text = str(raw)
    bad = _BAD_CHARS.search(text)
    if bad is not None:
        _fail(problems, rule, raw, f"含有不可见的控制字符（U+{ord(bad.group()):04X}）")
        return None
    if rule.length is not None and len(text) > rule.length:
        _fail(problems, rule, raw, f"长度 {len(text)} 超过 {rule.length} 个字")
        return None
    return text


_INTEGER = re.compile(r"[+-]?\d+(?:\.0*)?", re.ASCII)


def _to_integer(rule: ItemRule, raw: Any, problems: list[Problem]) -> Value:
    value: int
    if isinstance(raw, bool):
        _fail(problems, rule, raw, f"{_quote(raw)}不是整数")
        return None
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, float | Decimal):
        text = _integral_text(raw)
        if text is None:
            _fail(problems, rule, raw, f"{_quote(raw)}不是整数")
            return None
        value = int(text)
    elif isinstance(raw, str) and _INTEGER.fullmatch(raw):
        value = int(raw.partition(".")[0])
    else:
        _fail(problems, rule, raw, f"{_quote(raw)}不是整数")
        return None
    if not _INT64_MIN <= value <= _INT64_MAX:
        _fail(problems, rule, raw, f"整数 {_show(raw)} 超出取值范围")
        return None
    return value


_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,4})?", re.ASCII)


def _to_decimal(rule: ItemRule, raw: Any, problems: list[Problem]) -> Value:
    if isinstance(raw, bool):
        _fail(problems, rule, raw, f"{_quote(raw)}不是有效的数值")
        return None
    if isinstance(raw, int):
        return Decimal(raw)
    if isinstance(raw, float):
        if raw != raw or raw in (float("inf"), float("-inf")):
            _fail(problems, rule, raw, f"{_quote(raw)}不是有效的数值")
            return None
        return Decimal(repr(raw))  # 0.1 stays 0.1, not its binary approximation
    if isinstance(raw, Decimal):
        if not raw.is_finite():
            _fail(problems, rule, raw, f"{_quote(raw)}不是有效的数值")
            return None
        return raw
    if isinstance(raw, str) and _DECIMAL.fullmatch(raw):
        try:
            return Decimal(raw)
        except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
            pass
    _fail(problems, rule, raw, f"{_quote(raw)}不是有效的数值")
    return None


_DATE = re.compile(
    r"(\d{4})(?:([-/])(\d{1,2})\2(\d{1,2})|(\d{2})(\d{2})|年(\d{1,2})月(\d{1,2})日)", re.ASCII
)
_DATE_FORMS = "YYYY-MM-DD、YYYY/MM/DD、YYYYMMDD 或 YYYY年M月D日"


def _parse_date(
    rule: ItemRule, raw: object, text: str, problems: list[Problem], what: str = "日期"
) -> date | None:
    m = _DATE.fullmatch(text)
    if m is None:
        _fail(problems, rule, raw, f"{_quote(raw)}不是有效的日期（应为 {_DATE_FORMS}）")
        return None
    g = m.groups()
    y = int(g[0])
    mo, d = (g[2], g[3]) if g[1] else (g[4], g[5]) if g[4] else (g[6], g[7])
    return _make_date(rule, raw, y, int(mo), int(d), problems, what)


def _make_date(
    rule: ItemRule,
    raw: object,
    y: int,
    mo: int,
    d: int,
    problems: list[Problem],
    what: str,
) -> date | None:
    try:
        return date(y, mo, d)
    except ValueError:
        _fail(problems, rule, raw, f"{what} {y:04d}-{mo:02d}-{d:02d} 不存在")
        return None


def _to_date(rule: ItemRule, raw: Any, problems: list[Problem]) -> Value:
    if isinstance(raw, datetime):
        if raw.time() != datetime.min.time():
            _fail(problems, rule, raw, f"{_quote(raw)}含有时间，本项只填日期")
            return None
        return raw.date()
    if isinstance(raw, date):
        return raw
    if isinstance(raw, str):
        return _parse_date(rule, raw, raw, problems)
    if not isinstance(raw, bool) and isinstance(raw, int | float | Decimal):
        text = _integral_text(raw)  # 19900307 typed into a number cell
        if text is not None:
            return _parse_date(rule, raw, text, problems)
    _fail(problems, rule, raw, f"{_quote(raw)}不是有效的日期（应为 {_DATE_FORMS}）")
    return None


_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6}))?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?",
    re.ASCII,
)
_DATETIME_FORMS = "YYYY-MM-DD HH:MM[:SS] 或 ISO 8601"


def _to_datetime(rule: ItemRule, raw: Any, problems: list[Problem]) -> Value:
    if isinstance(raw, datetime):
        if raw.tzinfo is None:
            return raw.replace(tzinfo=BEIJING)
        return raw.astimezone(BEIJING)
    if isinstance(raw, date):
        return datetime(raw.year, raw.month, raw.day, tzinfo=BEIJING)
    m = _DATETIME.fullmatch(raw) if isinstance(raw, str) else None
    if m is None:
        _fail(problems, rule, raw, f"{_quote(raw)}不是有效的日期时间（应为 {_DATETIME_FORMS}）")
        return None
    y, mo, d, hh, mi, ss, frac, zone = m.groups()
    tz: timezone | ZoneInfo = BEIJING
    if zone == "Z":
        tz = UTC
    elif zone:
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
        if offset >= timedelta(hours=24):
            _fail(problems, rule, raw, f"{_quote(raw)}的时区偏移无效")
            return None
        tz = timezone(-offset if zone[0] == "-" else offset)
    try:
        value = datetime(
            int(y),
            int(mo),
            int(d),
            int(hh),
            int(mi),
            int(ss or 0),
            int((frac or "0").ljust(6, "0")),
            tzinfo=tz,
        )
    except ValueError:
        _fail(problems, rule, raw, f"日期时间 {_show(raw)} 不存在")
        return None
    return value if tz is BEIJING else value.astimezone(BEIJING)


_BOOLEANS: dict[str, bool] = {
    "是": True,
    "否": False,
    "true": True,
    "false": False,
    "1": True,
    "0": False,
    "y": True,
    "n": False,
}


def _to_boolean(rule: ItemRule, raw: Any, problems: list[Problem]) -> Value:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        found = _BOOLEANS.get(raw.lower())
        if found is not None:
            return found
    elif isinstance(raw, int | float | Decimal) and raw in (0, 1):
        return raw == 1
    _fail(problems, rule, raw, f"{_quote(raw)}不是有效的布尔值（应为 是/否）")
    return None


_ID18 = re.compile(r"\d{17}[\dX]", re.ASCII)
_ID15 = re.compile(r"\d{15}", re.ASCII)
_ID_CHECK = "10X98765432"


@lru_cache(maxsize=65536)
def _birth_reason(ymd: str) -> str | None:
    """Why the eight birth-date digits of an ID number are impossible, or None (no future
    check: that depends on today)."""
    y, mo, d = int(ymd[:4]), int(ymd[4:6]), int(ymd[6:])
    try:
        date(y, mo, d)
    except ValueError:
        return f"出生日期 {ymd[:4]}-{ymd[4:6]}-{ymd[6:]} 不存在"
    if y < 1850:
        return f"出生日期 {ymd[:4]}-{ymd[4:6]}-{ymd[6:]} 早于 1850 年，不合理"
    return None


def id_check_digit(first17: str) -> str:
    """GB 11643 check digit of the first 17 digits of an ID number.

    Equivalent to the weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2 and the map "10X98765432":
    the weights are 2^(17-i) mod 11 and 13 ≡ 2 (mod 11), so parsing the digits in base 13
    gives the weighted sum (halved) in C.
    """
    return _ID_CHECK[(2 * int(first17, 13)) % 11]


def _to_id_number(rule: ItemRule, raw: Any, problems: list[Problem]) -> Value:
    if not isinstance(raw, str):
        _fail(problems, rule, raw, "身份证号码须按文本填写（数字格式会丢失末尾的位数）")
        return None
    number = raw.upper()
    if _ID18.fullmatch(number) is None:
        if _ID15.fullmatch(number):
            _fail(problems, rule, raw, "不支持 15 位的旧身份证号码，请填写 18 位号码")
        elif len(number) != 18:
            _fail(problems, rule, raw, f"身份证号码应为 18 位，实际 {len(number)} 位")
        else:
            _fail(problems, rule, raw, "身份证号码只能由 17 位数字加 1 位数字或 X 组成")
        return None
    ok = True
    if _ID_CHECK[(2 * int(number[:17], 13)) % 11] != number[17]:
        _fail(problems, rule, raw, "身份证号码校验位错误")
        ok = False
    ymd = number[6:14]
    reason = _birth_reason(ymd)
    if reason is None and ymd > _today.key():
        reason = f"出生日期 {ymd[:4]}-{ymd[4:6]}-{ymd[6:]} 晚于今天"
    if reason is not None:
        _fail(problems, rule, raw, reason)
        ok = False
    if not division_known(number[:6]):
        _fail(problems, rule, raw, f"身份证号码中的行政区划代码 {number[:6]} 不存在")
        ok = False
    return number if ok else None


_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUES = {c: i for i, c in enumerate(_USCC_ALPHABET)}
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_CHARS = re.compile(f"[{_USCC_ALPHABET}]{{18}}")
_USCC_DIVISION = re.compile(r"..\d{6}.{10}", re.ASCII)


def credit_check_digit(first17: str) -> str:
    """GB 32100 check digit of the first 17 characters of a credit code."""
    total = sum(_USCC_VALUES[c] * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return _USCC_ALPHABET[(31 - total % 31) % 31]


def _to_credit_code(rule: ItemRule, raw: Any, problems: list[Problem]) -> Value:
    if not isinstance(raw, str):
        _fail(problems, rule, raw, "统一社会信用代码须按文本填写")
        return None
    code = raw.upper()
    if len(code) != 18:
        _fail(problems, rule, raw, f"统一社会信用代码应为 18 位，实际 {len(code)} 位")
        return None
    if _USCC_CHARS.fullmatch(code) is None:
        _fail(
            problems,
            rule,
            raw,
            "统一社会信用代码含有非法字符（只用数字和除 I、O、S、V、Z 外的大写字母）",
        )
        return None
    if _USCC_DIVISION.fullmatch(code) is None:
        _fail(problems, rule, raw, "统一社会信用代码第 3 至 8 位应为数字（行政区划代码）")
        return None
    if credit_check_digit(code[:17]) != code[17]:
        if rule.credit_code_checkdigit == "warn":
            _fail(problems, rule, raw, "统一社会信用代码校验位错误（按本项设置仅提示）", "warning")
            return code
        _fail(problems, rule, raw, "统一社会信用代码校验位错误")
        return None
    return code


_DIVISION = re.compile(r"\d{6}(?:\d{3}){0,2}", re.ASCII)


def _to_division_code(rule: ItemRule, raw: Any, problems: list[Problem]) -> Value:
    if isinstance(raw, str):
        code: str | None = raw
    elif not isinstance(raw, bool) and isinstance(raw, int | float | Decimal):
        code = _integral_text(raw)
    else:
        code = None
    if code is None or _DIVISION.fullmatch(code) is None:
        _fail(problems, rule, raw, f"{_quote(raw)}不是有效的行政区划代码（应为 6、9 或 12 位数字）")
        return None
    if not division_known(code[:6]):
        _fail(problems, rule, raw, f"行政区划代码 {code[:6]} 不存在")
        return None
    return code


_PHONE = re.compile(
    r"1[3-9]\d{9}"  # mobile
    r"|(?:010|02\d)-?\d{7,8}(?:-\d{1,6})?"  # Beijing and the 02x cities: 3-digit area code
    r"|0[3-9]\d{2}-?\d{7,8}(?:-\d{1,6})?",  # elsewhere: 4-digit area code
    re.ASCII,
)
_SPACES = re.compile(r"\s+")


def _to_phone(rule: ItemRule, raw: Any, problems: list[Problem]) -> Value:
    if isinstance(raw, str):
        phone: str | None = _SPACES.sub("", raw) if " " in raw or "\u3000" in raw else raw
    elif not isinstance(raw, bool) and isinstance(raw, int | float | Decimal):
        phone = _integral_text(raw)
    else:
        phone = None
    if phone is None or _PHONE.fullmatch(phone) is None:
        _fail(
            problems,
            rule,
            raw,
            f"{_quote(raw)}不是有效的电话号码（手机号 11 位，固定电话如 0371-12345678）",
        )
        return None
    return phone


_CONVERTERS: dict[DataType, _Converter] = {
    DataType.STRING: _to_string,
    DataType.INTEGER: _to_integer,
    DataType.DECIMAL: _to_decimal,
    DataType.DATE: _to_date,
    DataType.DATETIME: _to_datetime,
    DataType.BOOLEAN: _to_boolean,
    DataType.ID_NUMBER: _to_id_number,
    DataType.CREDIT_CODE: _to_credit_code,
    DataType.DIVISION_CODE: _to_division_code,
    DataType.PHONE: _to_phone,
}


# --------------------------------------------------------------------------- rules


def _enum_text(value: Value) -> str:
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


class ItemRule:
    """How one data item's cells are checked and converted.

    ``item`` is a data item as stored in ``CatalogVersion.data_items`` (``name``, ``field``,
    ``data_type``, ``length``, ``required``; other keys are ignored).

    ``credit_code_checkdigit`` decides what a wrong GB 32100 check digit means for a credit
    code item: ``"block"`` (the default) refuses the cell; ``"warn"`` keeps it with a
    warning. Some codes actually issued are reported to fail the check digit, and a
    department holding such records can choose to accept them rather than lose the rows.

    ``enumeration`` limits the item to the listed values, compared with the converted
    value as text (booleans as 是/否).
    """

    __slots__ = (
        "_convert",
        "_enum",
        "credit_code_checkdigit",
        "data_type",
        "enumeration",
        "field",
        "length",
        "name",
        "required",
    )

    def __init__(
        self,
        item: Mapping[str, Any],
        *,
        credit_code_checkdigit: Literal["block", "warn"] = "block",
        enumeration: Sequence[str] | None = None,
    ) -> None:
        if credit_code_checkdigit not in ("block", "warn"):
            raise ValueError(
                f"credit_code_checkdigit must be block or warn: {credit_code_checkdigit!r}"
            )
        self.field: str = str(item["field"])
        self.name: str = str(item.get("name") or self.field)
        self.data_type: DataType = DataType(item.get("data_type") or DataType.STRING)
        length = item.get("length")
        self.length: int | None = int(length) if length is not None else None
        self.required: bool = bool(item.get("required", False))
        self.credit_code_checkdigit: Literal["block", "warn"] = credit_code_checkdigit
        self.enumeration: tuple[str, ...] | None = (
            tuple(str(v) for v in enumeration) if enumeration is not None else None
        )
        self._enum: frozenset[str] | None = (
            frozenset(self.enumeration) if self.enumeration is not None else None
        )
        self._convert: _Converter = _CONVERTERS[self.data_type]

    def __repr__(self) -> str:
        return f"ItemRule({self.field!r}, {self.data_type.value!r}, required={self.required})"

    def check(self, raw: Raw, problems: list[Problem]) -> Value:
        """Convert one cell, appending its problems to ``problems``."""
        if raw is None:
            if self.required:
                problems.append(Problem(self.field, "", "必填项为空"))
            return None
        if type(raw) is str:
            raw = raw.strip()
            if not raw:
                if self.required:
                    problems.append(Problem(self.field, "", "必填项为空"))
                return None
        value = self._convert(self, raw, problems)
        if self._enum is not None and value is not None:
            text = _enum_text(value)
            if text not in self._enum:
                shown = "、".join(self.enumeration[:10]) if self.enumeration else ""
                more = "等" if self.enumeration and len(self.enumeration) > 10 else ""
                problems.append(
                    Problem(self.field, _show(raw), f"「{text}」不在可选值（{shown}{more}）之中")
                )
                return None
        return value


_SETTINGS = frozenset({"credit_code_checkdigit", "enumeration"})


def _catalog_settings(item: Mapping[str, Any]) -> dict[str, Any]:
    """Settings a catalog data item carries: its enumeration (取值范围) and, for a credit
    code item, ``checkdigit_warn`` (a wrong check digit warns instead of refusing)."""
    own: dict[str, Any] = {}
    if item.get("enumeration"):
        own["enumeration"] = list(item["enumeration"])
    if item.get("checkdigit_warn"):
        own["credit_code_checkdigit"] = "warn"
    return own


def make_rules(
    data_items: Sequence[Mapping[str, Any]],
    settings: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[ItemRule]:
    """Rules for a table's data items; ``settings`` maps a field name to its item settings.

    Settings for a field that is not an item, or unknown setting names, raise ValueError.
    """
    settings = settings or {}
    fields = {str(item["field"]) for item in data_items}
    stray = set(settings) - fields
    if stray:
        raise ValueError(f"settings for unknown fields: {sorted(stray)}")
    rules = []
    for item in data_items:
        own = {**_catalog_settings(item), **settings.get(str(item["field"]), {})}
        unknown = set(own) - _SETTINGS
        if unknown:
            raise ValueError(f"unknown item settings for {item['field']}: {sorted(unknown)}")
        rules.append(ItemRule(item, **own))
    return rules


def convert(rule: ItemRule, raw: Raw) -> tuple[Value, list[Problem]]:
    """Turn one raw cell (CSV text or XLSX typed cell) into its stored value.

    The value is None when the cell is empty or has an error; warnings keep the value.
    """
    problems: list[Problem] = []
    value = rule.check(raw, problems)
    return value, problems


def validate_row(
    rules: Sequence[ItemRule], values: Mapping[str, Raw]
) -> tuple[dict[str, Value], list[Problem]]:
    """Convert every item of one row; a missing key counts as an empty cell."""
    problems: list[Problem] = []
    get = values.get
    out = {rule.field: rule.check(get(rule.field), problems) for rule in rules}
    return out, problems
