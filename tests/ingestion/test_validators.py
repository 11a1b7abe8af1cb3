"""Cell validation of aggregated data: every data type, valid and invalid, without a database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from govshare.ingestion.validators import (
    ItemRule,
    Problem,
    convert,
    credit_check_digit,
    division_known,
    id_check_digit,
    make_rules,
    validate_row,
)
from govshare.orgs.codes import credit_code

BEIJING = ZoneInfo("Asia/Shanghai")
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_number(first17: str) -> str:
    """An ID number with its GB 11643 check digit, computed the textbook way."""
    total = sum(int(c) * w for c, w in zip(first17, WEIGHTS, strict=True))
    return first17 + "10X98765432"[total % 11]


def wrong_last(code: str, alphabet: str = "0123456789X") -> str:
    return code[:-1] + next(c for c in alphabet if c != code[-1])


def rule(data_type: str, **kw: Any) -> ItemRule:
    item: dict[str, Any] = {"name": "测试项", "field": "f", "data_type": data_type}
    for key in ("length", "required"):
        if key in kw:
            item[key] = kw.pop(key)
    return ItemRule(item, **kw)


def ok(r: ItemRule, raw: Any) -> Any:
    value, problems = convert(r, raw)
    assert problems == [], problems
    return value


def reasons(r: ItemRule, raw: Any) -> list[str]:
    value, problems = convert(r, raw)
    assert value is None
    assert problems
    assert all(p.severity == "error" and p.field == "f" for p in problems)
    return [p.reason for p in problems]


VALID_ID = id_number("41010219900307001")


# --------------------------------------------------------------------------- string


def test_string_is_stripped_and_length_counts_characters() -> None:
    r = rule("string", length=4)
    assert ok(r, "  郑州市人  ") == "郑州市人"
    assert reasons(r, "郑州市金水区") == ["长度 6 超过 4 个字"]


def test_string_refuses_control_characters_but_keeps_line_breaks() -> None:
    r = rule("string")
    assert reasons(r, "张\x07三") == ["含有不可见的控制字符（U+0007）"]
    assert reasons(r, "abc\u202edef")[0].startswith("含有不可见的控制字符")
    assert ok(r, "第一行\n第二行") == "第一行\n第二行"


@pytest.mark.parametrize("text", ["=SUM(A1:A2)", "+8613800000000", "-1+2", "@cmd"])
def test_formula_leading_text_is_kept_as_text(text: str) -> None:
    assert ok(rule("string"), text) == text


def test_string_from_typed_cells() -> None:
    r = rule("string")
    assert ok(r, 12.0) == "12"
    assert ok(r, 1.5) == "1.5"
    assert ok(r, 7) == "7"
    assert ok(r, date(2024, 1, 2)) == "2024-01-02"


# --------------------------------------------------------------------------- integer


def test_integer_accepts_integral_values() -> None:
    r = rule("integer")
    assert ok(r, "12") == 12
    assert ok(r, "12.0") == 12
    assert ok(r, 12.0) == 12
    assert ok(r, "-3") == -3
    assert ok(r, 42) == 42
    assert ok(r, str(2**63 - 1)) == 2**63 - 1


@pytest.mark.parametrize("raw", ["1.5", 1.5, "abc", "1e3", True])
def test_integer_refuses_non_integers(raw: Any) -> None:
    assert reasons(rule("integer"), raw)[0].endswith("不是整数")


def test_integer_range_is_64_bit() -> None:
    assert reasons(rule("integer"), str(2**63)) == [f"整数 {2**63} 超出取值范围"]


# --------------------------------------------------------------------------- decimal


def test_decimal() -> None:
    r = rule("decimal")
    assert ok(r, "3.14") == Decimal("3.14")
    assert ok(r, 0.1) == Decimal("0.1")
    assert ok(r, 5) == Decimal(5)
    assert ok(r, "-.5") == Decimal("-0.5")


@pytest.mark.parametrize("raw", ["NaN", "inf", "-Infinity", float("nan"), float("inf"), "1,2"])
def test_decimal_refuses_nan_and_infinity(raw: Any) -> None:
    assert reasons(rule("decimal"), raw)[0].endswith("不是有效的数值")


# --------------------------------------------------------------------------- date


@pytest.mark.parametrize("raw", ["2024-03-07", "2024/3/7", "20240307", "2024年3月7日"])
def test_date_formats(raw: str) -> None:
    assert ok(rule("date"), raw) == date(2024, 3, 7)


def test_date_from_excel_cells() -> None:
    r = rule("date")
    assert ok(r, datetime(2024, 3, 7)) == date(2024, 3, 7)
    assert ok(r, date(2024, 3, 7)) == date(2024, 3, 7)
    assert ok(r, 20240307) == date(2024, 3, 7)
    assert reasons(r, datetime(2024, 3, 7, 10, 30)) == [
        "「2024-03-07 10:30:00」含有时间，本项只填日期"
    ]


def test_impossible_dates_are_refused() -> None:
    r = rule("date")
    assert reasons(r, "2031-02-30") == ["日期 2031-02-30 不存在"]
    assert reasons(r, "2023年2月29日") == ["日期 2023-02-29 不存在"]
    assert reasons(r, "2024.03.07")[0].startswith("「2024.03.07」不是有效的日期")
    assert reasons(r, "2024-3-7x")[0].startswith("「2024-3-7x」不是有效的日期")


# --------------------------------------------------------------------------- datetime


def test_datetime_naive_is_beijing_time() -> None:
    r = rule("datetime")
    expected = datetime(2024, 3, 7, 9, 30, tzinfo=BEIJING)
    for raw in ("2024-03-07 09:30", "2024-03-07 09:30:00", "2024-03-07T09:30:00"):
        value = ok(r, raw)
        assert value == expected
        assert value.tzinfo is BEIJING
    assert ok(r, datetime(2024, 3, 7, 9, 30)) == expected


def test_datetime_with_offset_is_converted_to_beijing() -> None:
    r = rule("datetime")
    value = ok(r, "2024-03-07T01:30:00Z")
    assert value == datetime(2024, 3, 7, 1, 30, tzinfo=UTC)
    assert value.utcoffset() == timedelta(hours=8)
    assert value.hour == 9
    assert ok(r, "2024-03-07T09:30:00.5+08:00").microsecond == 500000


def test_datetime_refusals() -> None:
    r = rule("datetime")
    assert reasons(r, "2024-02-30 10:00") == ["日期时间 2024-02-30 10:00 不存在"]
    assert reasons(r, "2024-03-07 25:00") == ["日期时间 2024-03-07 25:00 不存在"]
    assert reasons(r, "2024-03-07")[0].startswith("「2024-03-07」不是有效的日期时间")


# --------------------------------------------------------------------------- boolean


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("是", True),
        ("否", False),
        ("TRUE", True),
        ("false", False),
        ("1", True),
        ("0", False),
        ("Y", True),
        ("n", False),
        (True, True),
        (0, False),
        (1.0, True),
    ],
)
def test_boolean(raw: Any, expected: bool) -> None:
    assert ok(rule("boolean"), raw) is expected


@pytest.mark.parametrize("raw", ["对", "2", 2, "yes!"])
def test_boolean_refusals(raw: Any) -> None:
    assert reasons(rule("boolean"), raw) == [f"「{raw}」不是有效的布尔值（应为 是/否）"]


# --------------------------------------------------------------------------- ID number


def test_check_digit_helper_matches_the_textbook_weights() -> None:
    for first17 in ("41010219900307001", "11010519491231002", "44030819800101123"):
        assert first17 + id_check_digit(first17) == id_number(first17)
    # a number whose check digit is X exists among the first few sequence numbers
    assert any(id_number(f"410102199003070{n:02d}").endswith("X") for n in range(100))


def test_valid_id_number() -> None:
    r = rule("id_number")
    assert ok(r, VALID_ID) == VALID_ID
    x = next(i for i in (id_number(f"410102199003070{n:02d}") for n in range(100)) if i[-1] == "X")
    assert ok(r, " " + x.lower() + " ") == x


def test_id_number_wrong_check_digit() -> None:
    assert reasons(rule("id_number"), wrong_last(VALID_ID)) == ["身份证号码校验位错误"]


def test_id_number_future_birth_date() -> None:
    tomorrow = datetime.now(BEIJING).date() + timedelta(days=1)
    number = id_number(f"410102{tomorrow:%Y%m%d}001")
    assert reasons(rule("id_number"), number) == [f"出生日期 {tomorrow.isoformat()} 晚于今天"]


def test_id_number_impossible_birth_date() -> None:
    number = id_number("41010220310230001")
    assert reasons(rule("id_number"), number) == ["出生日期 2031-02-30 不存在"]


def test_id_number_unknown_division() -> None:
    number = id_number("99999919900307001")
    assert reasons(rule("id_number"), number) == ["身份证号码中的行政区划代码 999999 不存在"]
    # a known province with an unknown county (stdnum's own get_birth_place trips on this)
    number = id_number("41999919900307001")
    assert reasons(rule("id_number"), number) == ["身份证号码中的行政区划代码 419999 不存在"]


def test_id_number_format_refusals() -> None:
    r = rule("id_number")
    assert reasons(r, "410102900307001") == ["不支持 15 位的旧身份证号码，请填写 18 位号码"]
    assert reasons(r, "4101021990030700") == ["身份证号码应为 18 位，实际 16 位"]
    assert reasons(r, "41010219900307A01X") == ["身份证号码只能由 17 位数字加 1 位数字或 X 组成"]
    assert reasons(r, 410102199003070010) == ["身份证号码须按文本填写（数字格式会丢失末尾的位数）"]


def test_id_number_reports_every_problem() -> None:
    number = wrong_last(id_number("99999920310230001"))
    assert reasons(rule("id_number"), number) == [
        "身份证号码校验位错误",
        "出生日期 2031-02-30 不存在",
        "身份证号码中的行政区划代码 999999 不存在",
    ]


# --------------------------------------------------------------------------- credit code

CREDIT = credit_code("411300", 1)
CREDIT_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def test_valid_credit_code() -> None:
    assert credit_check_digit(CREDIT[:17]) == CREDIT[17]
    assert ok(rule("credit_code"), CREDIT.lower()) == CREDIT


def test_credit_code_wrong_check_digit_blocks_by_default() -> None:
    bad = wrong_last(CREDIT, CREDIT_ALPHABET)
    assert reasons(rule("credit_code"), bad) == ["统一社会信用代码校验位错误"]
    assert reasons(rule("credit_code", credit_code_checkdigit="block"), bad) == [
        "统一社会信用代码校验位错误"
    ]


def test_credit_code_wrong_check_digit_can_only_warn() -> None:
    bad = wrong_last(CREDIT, CREDIT_ALPHABET)
    value, problems = convert(rule("credit_code", credit_code_checkdigit="warn"), bad)
    assert value == bad
    assert problems == [
        Problem("f", bad, "统一社会信用代码校验位错误（按本项设置仅提示）", "warning")
    ]


def test_credit_code_format_refusals() -> None:
    r = rule("credit_code")
    assert reasons(r, CREDIT[:17]) == ["统一社会信用代码应为 18 位，实际 17 位"]
    assert reasons(r, CREDIT[:10] + "I" + CREDIT[11:])[0].startswith("统一社会信用代码含有非法字符")
    assert reasons(r, "11A" + CREDIT[3:]) == [
        "统一社会信用代码第 3 至 8 位应为数字（行政区划代码）"
    ]


def test_credit_code_setting_is_checked() -> None:
    with pytest.raises(ValueError, match="credit_code_checkdigit"):
        rule("credit_code", credit_code_checkdigit="ignore")


# --------------------------------------------------------------------------- division code


@pytest.mark.parametrize("raw", ["410102", "410102001", "410102001001", 410102, "110000"])
def test_division_code_valid(raw: Any) -> None:
    assert ok(rule("division_code"), raw) == str(raw)


def test_division_code_refusals() -> None:
    r = rule("division_code")
    assert reasons(r, "999999") == ["行政区划代码 999999 不存在"]
    assert reasons(r, "999999001") == ["行政区划代码 999999 不存在"]
    assert reasons(r, "4101021") == ["「4101021」不是有效的行政区划代码（应为 6、9 或 12 位数字）"]
    assert reasons(r, "41010A")[0].startswith("「41010A」不是有效的行政区划代码")


def test_division_known() -> None:
    assert division_known("410102")
    assert division_known("110103")  # 崇文区, abolished in 2010: old records still carry it
    assert not division_known("999999")
    assert not division_known("419999")
    assert not division_known("4101")


# --------------------------------------------------------------------------- phone


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13812345678", "13812345678"),
        ("138 1234 5678", "13812345678"),
        (13812345678, "13812345678"),
        ("0371-12345678", "0371-12345678"),
        ("037112345678", "037112345678"),
        ("010-1234567", "010-1234567"),
        ("010-12345678-123", "010-12345678-123"),
        ("0371 - 6512 3456", "0371-65123456"),
    ],
)
def test_phone_valid(raw: Any, expected: str) -> None:
    assert ok(rule("phone"), raw) == expected


@pytest.mark.parametrize(
    "raw", ["12812345678", "1381234567", "371-12345678", "0371-123456", "电话"]
)
def test_phone_refusals(raw: str) -> None:
    assert reasons(rule("phone"), raw) == [
        f"「{raw}」不是有效的电话号码（手机号 11 位，固定电话如 0371-12345678）"
    ]


# --------------------------------------------------------------------------- required, enum


@pytest.mark.parametrize("data_type", ["string", "integer", "date", "id_number", "phone"])
@pytest.mark.parametrize("raw", [None, "", "   ", "\u3000"])
def test_required_empty(data_type: str, raw: Any) -> None:
    value, problems = convert(rule(data_type, required=True), raw)
    assert value is None
    assert problems == [Problem("f", "", "必填项为空")]
    assert convert(rule(data_type), raw) == (None, [])


def test_enumeration() -> None:
    r = rule("string", enumeration=["男", "女"])
    assert ok(r, " 女 ") == "女"
    assert reasons(r, "未知") == ["「未知」不在可选值（男、女）之中"]
    assert convert(r, "") == (None, [])
    numbers = rule("integer", enumeration=["1", "2"])
    assert ok(numbers, 2.0) == 2
    assert reasons(numbers, "3") == ["「3」不在可选值（1、2）之中"]


# --------------------------------------------------------------------------- rows

ITEMS: list[dict[str, Any]] = [
    {"name": "姓名", "field": "name", "data_type": "string", "length": 20, "required": True},
    {"name": "身份证号码", "field": "id_no", "data_type": "id_number", "required": True},
    {"name": "性别", "field": "gender", "data_type": "string", "length": 1},
    {"name": "出生日期", "field": "birth", "data_type": "date"},
    {"name": "联系电话", "field": "phone", "data_type": "phone"},
    {"name": "户籍地", "field": "division", "data_type": "division_code"},
]


def test_validate_row() -> None:
    rules = make_rules(ITEMS, {"gender": {"enumeration": ["男", "女"]}})
    row = {
        "name": "张三",
        "id_no": VALID_ID,
        "gender": "男",
        "birth": "1990/3/7",
        "phone": "0371-12345678",
        "division": "410102",
    }
    values, problems = validate_row(rules, row)
    assert problems == []
    assert values == {
        "name": "张三",
        "id_no": VALID_ID,
        "gender": "男",
        "birth": date(1990, 3, 7),
        "phone": "0371-12345678",
        "division": "410102",
    }


def test_validate_row_collects_problems_and_treats_missing_keys_as_empty() -> None:
    rules = make_rules(ITEMS, {"gender": {"enumeration": ["男", "女"]}})
    values, problems = validate_row(rules, {"name": "张三", "gender": "M", "birth": "1990-02-30"})
    assert values == {
        "name": "张三",
        "id_no": None,
        "gender": None,
        "birth": None,
        "phone": None,
        "division": None,
    }
    assert [(p.field, p.reason) for p in problems] == [
        ("id_no", "必填项为空"),
        ("gender", "「M」不在可选值（男、女）之中"),
        ("birth", "日期 1990-02-30 不存在"),
    ]


def test_make_rules_refuses_stray_settings() -> None:
    with pytest.raises(ValueError, match="unknown fields"):
        make_rules(ITEMS, {"nope": {"enumeration": ["a"]}})
    with pytest.raises(ValueError, match="unknown item settings"):
        make_rules(ITEMS, {"name": {"max": 3}})
    rules = make_rules(ITEMS)
    assert [r.field for r in rules] == [i["field"] for i in ITEMS]
    assert rules[0].required
    assert rules[0].length == 20
    assert rules[0].name == "姓名"
    assert not rules[2].required


def test_catalog_items_carry_enumeration_and_the_check_digit_setting() -> None:
    """The catalog's data item settings reach the validator: 取值范围 and 校验位仅提示."""
    from govshare.catalog.schemas import DataItem

    good = "91350100M000100Y43"
    wrong = good[:-1] + ("0" if good[-1] != "0" else "1")
    items = [
        DataItem(name="性别", field="gender", enumeration="男、女").model_dump(),
        DataItem(
            name="统一社会信用代码", field="uscc", data_type="credit_code", checkdigit_warn=True
        ).model_dump(),
        DataItem(name="机构代码", field="org", data_type="credit_code").model_dump(),
    ]
    assert items[0]["enumeration"] == ["男", "女"]
    rules = make_rules(items)
    values, problems = validate_row(rules, {"gender": "未知", "uscc": wrong, "org": wrong})
    by_field = {p.field: p for p in problems}
    assert by_field["gender"].severity == "error"
    assert by_field["uscc"].severity == "warning"
    assert values["uscc"] == wrong  # kept, with a warning
    assert by_field["org"].severity == "error"  # the default refuses it
    assert values["org"] is None
    with pytest.raises(ValueError, match="不是统一社会信用代码类型"):
        DataItem(name="性别", field="gender", checkdigit_warn=True)
