"""Demo rows: persons and market entities aggregated into the demo catalog's tables.

Generated deterministically (the same rows on every run): names from common surnames and
given names, resident ID numbers with valid GB 11643 check digits and real division codes,
unified social credit codes with valid GB 32100 check digits. Loaded through the same
loader as any upload, so they are validated, batched and audited like real data.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from sqlalchemy.orm import Session

from govshare.catalog import demo as catalog_demo
from govshare.ingestion import records, service
from govshare.ingestion.models import BatchSource
from govshare.ingestion.validators import id_check_digit
from govshare.orgs import service as orgs_service
from govshare.orgs.codes import credit_code
from govshare.orgs.models import Department
from govshare.permissions import Role

PERSONS = 20_000
ENTITIES = 5_000
DIVISIONS = ["411302", "411303", "411321", "411322", "411323", "411325", "411326", "411381"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"  # noqa: E501
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志红玉兰文博子涵浩然雨轩欣怡梓萱佳怡一诺"  # noqa: E501
STREETS = [
    "人民路",
    "解放路",
    "建设路",
    "中州路",
    "新华路",
    "七一路",
    "工业路",
    "独山大道",
    "仲景路",
]
ETHNIC = ["汉族"] * 19 + ["回族"]
TRADES = ["商贸", "科技", "建材", "农业", "物流", "餐饮", "医药", "文化传媒", "机械", "服装"]
SUFFIX = ["有限公司", "有限责任公司", "股份有限公司", "农民专业合作社"]


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


def persons(rng: random.Random, n: int) -> Iterator[tuple[int, dict[str, Any]]]:
    used: set[str] = set()
    row = 1
    while len(used) < n:
        division = rng.choice(DIVISIONS)
        born = date(1940, 1, 1) + timedelta(days=rng.randrange(0, 365 * 80))
        seq = rng.randrange(0, 1000)
        body = f"{division}{born:%Y%m%d}{seq:03d}"
        id_number = body + id_check_digit(body)
        if id_number in used:
            continue
        used.add(id_number)
        row += 1
        yield (
            row,
            {
                "id_number": id_number,
                "name": _name(rng),
                "gender": "男" if seq % 2 else "女",
                "birth_date": born.isoformat(),
                "ethnicity": rng.choice(ETHNIC),
                "address": (
                    f"{rng.choice(STREETS)}{rng.randrange(1, 400)}号{rng.randrange(1, 30)}栋"
                ),
                "division_code": division,
            },
        )


def entities(rng: random.Random, n: int) -> Iterator[tuple[int, dict[str, Any]]]:
    for i in range(n):
        division = rng.choice(DIVISIONS)
        founded = date(1995, 1, 1) + timedelta(days=rng.randrange(0, 365 * 30))
        yield (
            i + 2,
            {
                "credit_code": credit_code(division, 1_000_000 + i, authority="9", kind="1"),
                "org_name": f"青川{rng.choice(TRADES)}{_name(rng)}{rng.choice(SUFFIX)}",
                "legal_rep": _name(rng),
                "capital": str(rng.randrange(10, 5000)),
                "founded_on": founded.isoformat(),
                "status": "存续" if rng.random() > 0.08 else "注销",
                "division_code": division,
            },
        )


_entry = catalog_demo.entry_named


#: persons on minimum living allowance (a sample of the registered population)
ALLOWANCE = 1_500
#: of which the civil affairs bureau recorded the name differently from the police
MISRECORDED = 12
#: rows of the allowance file with a wrong ID check digit, and persons listed twice
MISTYPED = 6
REPEATED = 3
VARIANTS = {"伟": "玮", "芳": "方", "娜": "那", "敏": "民", "静": "净", "丽": "莉", "强": "蔷"}


def allowance(rng: random.Random, people: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """低保 rows of the civil affairs bureau: persons of the police register, a few of whose
    names were keyed in differently (so the one-source check finds conflicts), plus a few
    mistyped ID numbers and repeated persons that the loader rejects (quality measures)."""
    rows = []
    misrecorded = 0
    for i, person in enumerate(rng.sample(people, ALLOWANCE), start=2):
        name = person["name"]
        if misrecorded < MISRECORDED and name[-1] in VARIANTS:
            name = name[:-1] + VARIANTS[name[-1]]
            misrecorded += 1
        category = rng.choice(["城市低保", "农村低保"])
        amount = "780.00" if category == "城市低保" else rng.choice(["520.00", "560.00", "600.00"])
        rows.append(
            (
                i,
                {
                    "id_number": person["id_number"],
                    "name": name,
                    "category": category,
                    "amount": amount,
                },
            )
        )
    # what a real monthly file also holds: ID numbers keyed wrongly, and persons listed twice
    for _, row in rows[:MISTYPED]:
        digits = row["id_number"]
        wrong = digits[:-1] + ("0" if digits[-1] != "0" else "1")
        rows.append((len(rows) + 2, {**row, "id_number": wrong}))
    for _, row in rows[MISTYPED : MISTYPED + REPEATED]:
        rows.append((len(rows) + 2, dict(row)))
    return rows


def load(session: Session, departments: dict[str, Department]) -> int:
    """Aggregate the demo rows (the loader finds the one-source conflicts they contain) and
    file a deletion request for the authority; returns how many rows landed."""
    rng = random.Random(2026)  # noqa: S311 - demo data, not security
    people = [row for _, row in persons(rng, PERSONS)]
    loaded = 0
    for dept_key, entry_name, rows in (
        ("city_police", "户籍人口基本信息", list(enumerate(people, start=2))),
        ("city_market", "市场主体登记信息", entities(rng, ENTITIES)),
        ("city_civil", "最低生活保障对象信息", allowance(rng, people)),
    ):
        dept = departments[dept_key]
        actor = orgs_service.department_principal(
            dept, Role.SYSTEM, f"govshare demo（{dept.short_name}）"
        )
        entry = service.target_entry(session, actor, _entry(session, entry_name).id)
        outcome = service.load_rows(
            session, actor, entry, rows, source=BatchSource.PUSH, client_batch_id=f"demo-{dept_key}"
        )
        loaded += outcome.inserted
    police = departments["city_police"]
    officer = orgs_service.department_principal(police, Role.DEPT_OFFICER, "陈海燕")
    entry = records.readable_entry(session, officer, _entry(session, "户籍人口基本信息").id)
    records.request_deletion(
        session,
        officer,
        entry,
        [people[-1]["id_number"]],
        "经核查为系统测试时录入的记录，并非真实户籍人口，申请删除",
    )
    return loaded
