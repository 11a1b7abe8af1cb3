"""Benchmark: catalog search over 100,000 published entries (DESIGN.md: p95 under 50 ms).

Builds a catalog of N published entries with realistic Chinese names, summaries and data
items (30 departments of one city, each with its own subjects and items, random facets),
inserted in bulk into ``catalog_entries``, ``catalog_versions`` and ``catalog_search``.
Then runs a fixed mix of 212 queries (two rounds): 2- and 4-character words, alone, with one
facet filter, with one filter sorted by date; frequent words (登记, 许可, 执业); two words;
filters without a keyword. Timed in the same run, query by query:

  search  the platform's search (``govshare.catalog.search.search``, what ``GET /catalog``
          and ``GET /api/v1/catalog/search`` run): keyword match, every facet's counts, the
          total, one page of 20 results with labels and snippets;
  peer    a naive search of the same query: one bare ``SELECT count(*) FROM catalog_search
          WHERE text LIKE '%kw%' [AND filter]`` through the same driver (no facets, no page,
          no labels): the floor a search without an index pays for the total alone.

Prints p50/p95/max per query kind for both, the ratio search p95 / peer p95, and PASS/FAIL
of the search p95 against 50 ms. The first search of a process, which loads the in-memory
replica, is reported apart.

    python benchmarks/catalog_search.py                  # 100,000 entries, temp SQLite file
    psql -h 127.0.0.1 -U postgres -c 'create database govshare_bench_search'
    python benchmarks/catalog_search.py \\
        --database-url postgresql://postgres@127.0.0.1:5432/govshare_bench_search
    python benchmarks/catalog_search.py --reuse --in-database \\
        --database-url postgresql://postgres@127.0.0.1:5432/govshare_bench_search
    psql -h 127.0.0.1 -U postgres -c 'drop database govshare_bench_search'

``--in-database`` measures PostgreSQL's search in the database (GIN index), what catalogs
larger than ``REPLICA_MAX_ROWS`` use. The database must be empty (it is migrated to head
first) unless ``--reuse`` is given for one this script filled.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, insert, select, text, update
from sqlalchemy.orm import Session

from govshare import migrate
from govshare.catalog.models import (
    CatalogEntry,
    CatalogKind,
    CatalogSearch,
    CatalogVersion,
    DataGrade,
    EntryStatus,
    OpenType,
    ResourceFormat,
    ShareType,
    UpdateFrequency,
    VersionState,
)
from govshare.db import make_engine
from govshare.orgs.codes import credit_code
from govshare.orgs.models import Department, Jurisdiction
from govshare.permissions import Role, permissions_for
from govshare.principal import Principal

TARGET_P95_MS = 50.0
CITY = "宛州市"

#: department -> its subjects, each with its own data items (name, field)
DEPARTMENTS: dict[str, list[tuple[str, list[tuple[str, str]]]]] = {
    "公安局": [
        ("户籍人口", [("户籍地址", "hj_addr"), ("户号", "hh"), ("与户主关系", "yhzgx")]),
        ("居民身份证", [("证件有效期", "yxq"), ("签发机关", "qfjg")]),
        ("流动人口", [("居住地址", "jzdz"), ("居住证编号", "jzzbh")]),
        ("机动车登记", [("号牌号码", "hphm"), ("车辆类型", "cllx"), ("车辆识别代号", "vin")]),
        ("驾驶人", [("准驾车型", "zjcx"), ("驾驶证号", "jszh")]),
        ("出入境证件", [("证件类型", "zjlx"), ("证件号码", "zjhm")]),
    ],
    "民政局": [
        ("婚姻登记", [("登记类型", "djlx"), ("配偶姓名", "poxm"), ("结婚证字号", "jhzzh")]),
        ("社会救助", [("救助类型", "jzlx"), ("救助金额", "jzje"), ("救助日期", "jzrq")]),
        ("最低生活保障", [("保障人数", "bzrs"), ("保障金额", "bzje")]),
        ("特困人员供养", [("供养方式", "gyfs"), ("供养标准", "gybz")]),
        ("殡葬服务", [("死亡日期", "swrq"), ("火化日期", "hhrq")]),
        ("社会组织登记", [("社会组织名称", "shzzmc"), ("业务主管单位", "ywzgdw")]),
        ("养老机构", [("机构名称", "jgmc"), ("床位数", "cws")]),
    ],
    "人力资源和社会保障局": [
        ("社保缴费", [("缴费基数", "jfjs"), ("缴费月份", "jfyf"), ("险种", "xz")]),
        ("养老保险待遇", [("待遇类型", "dylx"), ("发放金额", "ffje")]),
        ("就业登记", [("就业单位", "jydw"), ("就业日期", "jyrq")]),
        ("失业保险", [("失业日期", "syrq"), ("领取期限", "lqqx")]),
        ("职业资格证书", [("证书编号", "zsbh"), ("职业名称", "zymc")]),
        ("劳动合同备案", [("用人单位", "yrdw"), ("合同期限", "htqx")]),
    ],
    "自然资源和规划局": [
        ("不动产登记", [("不动产单元号", "bdcdyh"), ("权利人", "qlr"), ("坐落", "zl")]),
        ("土地出让", [("宗地编号", "zdbh"), ("出让面积", "crmj"), ("出让价款", "crjk")]),
        ("国土空间规划", [("规划分区", "ghfq"), ("用地性质", "ydxz")]),
        ("采矿许可", [("矿种", "kz"), ("开采规模", "kcgm")]),
    ],
    "市场监督管理局": [
        ("企业注册", [("企业名称", "qymc"), ("法定代表人", "fddbr"), ("注册资本", "zczb")]),
        ("个体工商户", [("经营者姓名", "jyzxm"), ("经营场所", "jycs")]),
        ("食品经营许可", [("许可证编号", "xkzbh"), ("经营项目", "jyxm")]),
        ("行政处罚", [("处罚决定书文号", "cfjdswh"), ("处罚内容", "cfnr")]),
        ("特种设备", [("设备类别", "sblb"), ("使用单位", "sydw")]),
    ],
    "卫生健康委员会": [
        ("医师执业", [("执业类别", "zylb"), ("执业范围", "zyfw"), ("执业机构", "zyjg")]),
        ("护士执业", [("护士执业证书编号", "hszsbh"), ("执业地点", "zydd")]),
        ("出生医学证明", [("新生儿姓名", "xsexm"), ("出生地点", "csdd")]),
        ("医疗机构执业许可", [("机构名称", "jgmc"), ("诊疗科目", "zlkm")]),
        ("预防接种", [("疫苗名称", "ymmc"), ("接种日期", "jzrq")]),
    ],
    "教育局": [
        ("学籍", [("学籍号", "xjh"), ("学校名称", "xxmc"), ("年级", "nj")]),
        ("学生资助", [("资助项目", "zzxm"), ("资助金额", "zzje")]),
        ("教师资格", [("资格种类", "zgzl"), ("任教学科", "rjxk")]),
        ("民办学校办学许可", [("办学许可证号", "bxxkzh"), ("办学层次", "bxcc")]),
    ],
    "税务局": [
        ("纳税信用", [("信用等级", "xydj"), ("评价年度", "pjnd")]),
        ("税务登记", [("纳税人识别号", "nsrsbh"), ("登记注册类型", "djzclx")]),
        ("发票开具", [("发票代码", "fpdm"), ("开票金额", "kpje")]),
    ],
    "住房和城乡建设局": [
        ("住房公积金", [("缴存基数", "jcjs"), ("账户状态", "zhzt")]),
        ("商品房预售许可", [("项目名称", "xmmc"), ("预售面积", "ysmj")]),
        ("建筑企业资质", [("资质类别", "zzlb"), ("资质等级", "zzdj")]),
        ("房屋网签备案", [("合同编号", "htbh"), ("成交价格", "cjjg")]),
    ],
    "交通运输局": [
        ("道路运输经营许可", [("经营范围", "jyfw"), ("许可证号", "xkzh")]),
        ("营运车辆", [("道路运输证号", "dlyszh"), ("车辆号牌", "clhp")]),
        ("出租汽车驾驶员从业资格", [("从业资格证号", "cyzgzh"), ("服务单位", "fwdw")]),
    ],
    "农业农村局": [
        ("土地承包经营权", [("承包地块", "cbdk"), ("承包面积", "cbmj")]),
        ("农机购置补贴", [("补贴金额", "btje"), ("机具品目", "jjpm")]),
        ("动物防疫", [("畜禽种类", "xqzl"), ("免疫数量", "mysl")]),
    ],
    "医疗保障局": [
        ("医保参保", [("参保状态", "cbzt"), ("参保险种", "cbxz")]),
        ("医保结算", [("结算金额", "jsje"), ("就诊医院", "jzyy")]),
        ("医保定点机构", [("定点类型", "ddlx"), ("协议编号", "xybh")]),
    ],
    "退役军人事务局": [
        ("退役军人", [("入伍时间", "rwsj"), ("退役时间", "tysj")]),
        ("优抚对象", [("优抚类别", "yflb"), ("抚恤金额", "fxje")]),
    ],
    "残疾人联合会": [("残疾人证", [("残疾类别", "cjlb"), ("残疾等级", "cjdj")])],
    "司法局": [
        ("律师执业", [("执业证号", "zyzh"), ("律师事务所", "lsswsm")]),
        ("公证", [("公证书编号", "gzsbh"), ("公证事项", "gzsx")]),
        ("法律援助", [("援助事项", "yzsx"), ("受援人", "syr")]),
    ],
    "生态环境局": [
        ("排污许可", [("排污许可证编号", "pwxkzbh"), ("排放口", "pfk")]),
        ("环境影响评价", [("建设项目名称", "jsxmmc"), ("审批文号", "spwh")]),
    ],
    "水利局": [
        ("取水许可", [("取水量", "qsl"), ("取水地点", "qsdd")]),
        ("河道采砂", [("采砂区域", "csqy"), ("采砂量", "csl")]),
    ],
    "文化广电和旅游局": [
        ("旅行社经营许可", [("旅行社名称", "lxsmc"), ("经营范围", "jyfw")]),
        ("演出经营许可", [("演出场所", "yccs"), ("许可证号", "xkzh")]),
    ],
    "应急管理局": [
        ("安全生产许可", [("许可范围", "xkfw"), ("有效期", "yxq")]),
        ("危险化学品经营许可", [("经营品种", "jypz"), ("储存设施", "ccss")]),
    ],
    "统计局": [("统计调查单位名录", [("单位名称", "dwmc"), ("行业代码", "hydm")])],
    "公共资源交易中心": [("招标投标项目", [("招标人", "zbr"), ("中标金额", "zbje")])],
    "城市管理局": [("户外广告设置许可", [("设置地点", "szdd"), ("广告规格", "gggg")])],
    "商务局": [("对外贸易经营者备案", [("经营者名称", "jyzmc"), ("备案登记号", "badjh")])],
    "发展和改革委员会": [("投资项目审批", [("项目代码", "xmdm"), ("总投资", "ztz")])],
    "财政局": [
        ("财政补贴发放", [("补贴项目", "btxm"), ("发放金额", "ffje")]),
        ("政府采购", [("采购项目", "cgxm"), ("成交供应商", "cjgys")]),
    ],
    "林业局": [
        ("林木采伐许可", [("采伐面积", "cfmj"), ("采伐树种", "cfsz")]),
        ("林权登记", [("林地面积", "ldmj"), ("林权证号", "lqzh")]),
    ],
    "气象局": [("气象观测", [("观测站", "gcz"), ("气温", "qw"), ("降水量", "jsl")])],
    "档案馆": [("档案目录", [("档号", "dh"), ("案卷题名", "ajtm")])],
    "信访局": [("信访事项", [("信访人", "xfr"), ("事项类别", "sxlb")])],
    "烟草专卖局": [("烟草专卖零售许可", [("许可证号", "xkzh"), ("经营地址", "jydz")])],
    "消防救援大队": [("消防安全检查", [("检查日期", "jcrq"), ("检查结果", "jcjg")])],
}
PERSON_ITEMS = [
    ("公民身份号码", "sfzh"),
    ("姓名", "xm"),
    ("性别", "xb"),
    ("出生日期", "csrq"),
    ("民族", "mz"),
    ("联系电话", "lxdh"),
    ("住址", "zz"),
]
ORG_ITEMS = [
    ("统一社会信用代码", "tyshxydm"),
    ("单位名称", "dwmc"),
    ("法定代表人", "fddbr"),
    ("注册地址", "zcdz"),
    ("联系电话", "lxdh"),
]
COMMON_ITEMS = [
    ("办理日期", "blrq"),
    ("办理机构", "bljg"),
    ("行政区划代码", "xzqhdm"),
    ("数据来源", "sjly"),
    ("更新时间", "gxsj"),
    ("备注", "bz"),
    ("状态", "zt"),
]
SUFFIXES = [
    "基本信息",
    "登记信息",
    "信息",
    "明细",
    "变更记录",
    "统计数据",
    "办理结果",
    "台账",
    "年度汇总",
    "档案",
    "许可信息",
    "核验信息",
]
AREAS = ["", "", "", "宛城区", "卧龙区", "镇平县", "内乡县", "淅川县", "新野县", "唐河县"]
PURPOSES = [
    "用于政务服务事项办理中的信息核验",
    "支撑跨部门业务协同和联合审批",
    "为社会治理和公共服务提供数据支撑",
    "用于统计分析和辅助决策",
    "供相关部门依法履职时查询使用",
]
VERBS = ["在履职过程中产生的", "依法采集的", "业务系统汇聚的", "日常管理中形成的"]


@dataclass(frozen=True)
class Query:
    kind: str
    q: str
    filters: dict[str, Any]
    sort: str = "relevance"


def _weighted(rnd: random.Random, values: list[str], weights: list[int]) -> str:
    return rnd.choices(values, weights)[0]


def generate(engine: Engine, n: int, *, seed: int = 20261121, batch: int = 5_000) -> list[int]:
    """Insert a city with its departments and ``n`` published entries; return the
    department ids."""
    rnd = random.Random(seed)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        city_id = conn.execute(
            insert(Jurisdiction).returning(Jurisdiction.id),
            {
                "code": "411300",
                "name": CITY,
                "level": "city",
                "parent_id": None,
                "rulebook": "nanyang-2021",
                "created_at": now,
                "updated_at": now,
            },
        ).scalar_one()
        dept_rows = [
            {
                "name": f"{CITY}{name}",
                "short_name": name,
                "credit_code": credit_code("411300", 100 + i),
                "jurisdiction_id": city_id,
                "is_data_authority": False,
                "duties": "",
                "is_active": True,
                "created_at": now,
                "updated_at": now,
            }
            for i, name in enumerate(DEPARTMENTS)
        ]
        dept_ids = list(
            conn.execute(insert(Department).returning(Department.id), dept_rows).scalars()
        )
    depts = list(zip(dept_ids, DEPARTMENTS.items(), strict=True))
    kinds = [k.value for k in CatalogKind]
    formats = [f.value for f in ResourceFormat]
    freqs = [f.value for f in UpdateFrequency]
    shares = [s.value for s in ShareType]
    opens = [o.value for o in OpenType]
    grades = [g.value for g in DataGrade]
    seqs: dict[str, int] = {}
    entries: list[dict[str, Any]] = []
    versions: list[dict[str, Any]] = []
    search_rows: list[dict[str, Any]] = []
    start = now - timedelta(days=3 * 365)

    def flush(conn: Any) -> None:
        conn.execute(insert(CatalogEntry), entries)
        conn.execute(insert(CatalogVersion), versions)
        conn.execute(insert(CatalogSearch), search_rows)
        entries.clear()
        versions.clear()
        search_rows.clear()

    with engine.begin() as conn:
        for i in range(1, n + 1):
            dept_id, (dept_short, subjects) = rnd.choice(depts)
            dept_name = f"{CITY}{dept_short}"
            subject, own_items = rnd.choice(subjects)
            area = rnd.choice(AREAS)
            suffix = rnd.choice(SUFFIXES)
            name = f"{area}{subject}{suffix}"
            kind = _weighted(rnd, kinds, [2, 3, 10])
            person = rnd.random() < 0.6
            base = PERSON_ITEMS if person else ORG_ITEMS
            items = (
                base[: rnd.randint(2, len(base))]
                + own_items
                + rnd.sample(COMMON_ITEMS, rnd.randint(1, 4))
            )
            data_items = [
                {
                    "name": item_name,
                    "field": field,
                    "data_type": "string",
                    "required": j == 0,
                    "personal": person,
                    "sensitive": False,
                }
                for j, (item_name, field) in enumerate(items)
            ]
            listed = "、".join(item_name for item_name, _ in items[:4])
            summary = (
                f"{dept_name}{rnd.choice(VERBS)}{name}，包括{listed}等{len(items)}个信息项，"
                f"{rnd.choice(PURPOSES)}。"
            )
            item_code = f"{(i % 20) + 1:02d}"
            category_code = f"{(i % 7) + 1:03d}"
            prefix = f"{CatalogKind(kind).class_digit}{item_code}{category_code}/"
            seqs[prefix] = seqs.get(prefix, 0) + 1
            code = f"{prefix}{seqs[prefix]:05d}"
            share = _weighted(rnd, shares, [5, 4, 1])
            published = start + timedelta(seconds=rnd.randint(0, 3 * 365 * 86400))
            version = {
                "id": i,
                "entry_id": i,
                "number": 1,
                "state": VersionState.APPROVED.value,
                "change_note": "",
                "catalog_kind": kind,
                "item_code": item_code,
                "category_code": category_code,
                "base_database": None,
                "name": name,
                "summary": summary,
                "resource_format": _weighted(rnd, formats, [2, 4, 8, 1, 1, 1, 3]),
                "data_items": data_items,
                "subject_key_kind": "person" if person else "organization",
                "subject_key_item": items[0][1],
                "share_type": share,
                "share_scope": "",
                "share_purpose": "",
                "share_basis": "",
                "share_methods": [] if share == "not_shared" else ["query"],
                "open_type": _weighted(rnd, opens, [2, 2, 6]),
                "open_conditions": "",
                "open_basis": "",
                "update_frequency": _weighted(rnd, freqs, [1, 4, 2, 4, 2, 2, 3]),
                "related_codes": [],
                "data_grade": _weighted(rnd, grades, [7, 3, 1]),
                "is_returned_data": False,
                "returned_from": "",
                "created_at": published,
                "created_by": "bench",
                "updated_at": published,
                "reviewed_at": published,
                "reviewed_by": "bench",
                "review_comment": "",
                "review_due_provisional": False,
                "publish_date": published.date(),
            }
            entries.append(
                {
                    "id": i,
                    "code": code,
                    "department_id": dept_id,
                    "jurisdiction_id": city_id,
                    "status": EntryStatus.PUBLISHED.value,
                    "current_version_id": None,
                    "created_at": published,
                    "created_by": "bench",
                    "published_at": published,
                }
            )
            versions.append(version)
            item_text = " ".join(f"{it['name']} {it['field']}" for it in data_items)
            search_rows.append(
                {
                    "entry_id": i,
                    "version_id": i,
                    "code": code,
                    "name": name,
                    "text": " ".join([name, summary, item_text, code, dept_name]).lower(),
                    "department_id": dept_id,
                    "jurisdiction_id": city_id,
                    "catalog_kind": kind,
                    "share_type": share,
                    "open_type": version["open_type"],
                    "resource_format": version["resource_format"],
                    "update_frequency": version["update_frequency"],
                    "data_grade": version["data_grade"],
                    "published_at": published,
                }
            )
            if len(entries) >= batch:
                flush(conn)
        if entries:
            flush(conn)
        conn.execute(update(CatalogEntry).values(current_version_id=CatalogEntry.id))
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            # what autovacuum would have done by then: statistics and the visibility map
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                text("VACUUM ANALYZE catalog_search")
            )
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return dept_ids


def query_mix(dept_ids: list[int], *, seed: int = 7) -> list[Query]:
    """A fixed mix of what people type: 2- and 4-character words, two words, with and
    without one facet filter, by relevance and by date."""
    rnd = random.Random(seed)
    two = ["户籍", "婚姻", "救助", "企业", "学籍", "社保", "医师", "低保", "公证", "采矿"]
    two += ["护士", "发票", "林权", "残疾", "律师", "接种", "取水", "排污", "信访", "补贴"]
    two += ["驾驶", "殡葬", "养老", "失业", "宗地", "食品", "疫苗", "纳税", "公积", "农机"]
    four = ["户籍人口", "婚姻登记", "社会救助", "企业注册", "医师执业", "不动产登", "住房公积"]
    four += ["养老保险", "出生医学", "纳税信用", "食品经营", "道路运输", "危险化学", "特困人员"]
    four += ["学生资助", "建筑企业", "农机购置", "环境影响", "消防安全", "土地出让", "机动车登"]
    four += ["流动人口", "居民身份", "社会组织", "职业资格", "劳动合同", "国土空间", "行政处罚"]
    four += ["预防接种", "教师资格"]
    broad = ["登记", "许可", "执业"]
    pairs = ["户籍 住址", "婚姻 配偶", "企业 法定代表人", "社会救助 金额", "学籍 学校名称"]
    pairs += ["不动产 坐落", "医师 执业机构", "补贴 发放金额"]
    facet_values: dict[str, list[Any]] = {
        "department_id": dept_ids,
        "share_type": [s.value for s in ShareType],
        "open_type": [o.value for o in OpenType],
        "resource_format": [f.value for f in ResourceFormat],
        "update_frequency": [f.value for f in UpdateFrequency],
        "data_grade": [g.value for g in DataGrade],
        "catalog_kind": [k.value for k in CatalogKind],
    }

    def one_filter() -> dict[str, Any]:
        facet = rnd.choice(list(facet_values))
        return {facet: rnd.choice(facet_values[facet])}

    mix: list[Query] = []
    for word in two:
        mix.append(Query("2字", word, {}))
        mix.append(Query("2字+筛选", word, one_filter()))
        mix.append(Query("2字+筛选,按日期", word, one_filter(), "date"))
    for word in four:
        mix.append(Query("4字", word, {}))
        mix.append(Query("4字+筛选", word, one_filter()))
        mix.append(Query("4字+筛选,按日期", word, one_filter(), "date"))
    for word in broad:
        mix.append(Query("宽泛2字", word, {}))
        mix.append(Query("宽泛2字+筛选", word, one_filter()))
    for pair in pairs:
        mix.append(Query("两词", pair, {}))
        mix.append(Query("两词+筛选", pair, one_filter()))
    for _ in range(10):
        mix.append(Query("仅筛选", "", one_filter()))
    return mix


def peer_count(session: Session, query: Query) -> int:
    """The naive search: one bare count of the LIKE scan (no facets, no page, no labels)."""
    stmt = select(func.count()).select_from(CatalogSearch)
    for term in query.q.lower().split():
        stmt = stmt.where(CatalogSearch.text.contains(term, autoescape=True))
    for key, value in query.filters.items():
        stmt = stmt.where(getattr(CatalogSearch, key) == value)
    return int(session.scalar(stmt) or 0)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t) * 1000, out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--rounds", type=int, default=2, help="times the query mix is run")
    parser.add_argument(
        "--reuse", action="store_true", help="search a database this script filled before"
    )
    parser.add_argument(
        "--in-database",
        action="store_true",
        help="PostgreSQL: search in the database (GIN index) as catalogs larger than "
        "REPLICA_MAX_ROWS do, instead of the in-memory replica",
    )
    args = parser.parse_args()

    from govshare.catalog import search as catalog_search
    from govshare.catalog.search import search

    tmpdir = None
    url = args.database_url
    if not url:
        tmpdir = tempfile.TemporaryDirectory(prefix="govshare-bench-")
        url = f"sqlite:///{Path(tmpdir.name) / 'catalog.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        existing = conn.scalar(select(func.count()).select_from(CatalogEntry)) or 0
        dept_ids = list(
            conn.scalars(
                select(Department.id)
                .where(Department.name.in_([f"{CITY}{d}" for d in DEPARTMENTS]))
                .order_by(Department.id)
            )
        )
    if existing and not (args.reuse and len(dept_ids) == len(DEPARTMENTS)):
        print(f"database {url} already holds {existing} catalog entries; use an empty one")
        return 2
    n = existing or args.entries
    if args.in_database:
        if engine.dialect.name != "postgresql":
            print("--in-database is for PostgreSQL (SQLite always searches the replica)")
            return 2
        catalog_search.use_replica = lambda session: False  # type: ignore[assignment]
    how = "in the database (GIN index)" if args.in_database else "in-memory replica"
    print(
        f"govshare catalog search benchmark: {n:,} published entries on "
        f"{engine.dialect.name}, search path: {how}"
    )
    print(
        f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs "
        f"(load average {os.getloadavg()[0]:.1f})"
    )
    if existing:
        print(f"reusing the entries of {url}")
    else:
        t0 = time.perf_counter()
        dept_ids = generate(engine, n)
        print(f"generated and inserted in {time.perf_counter() - t0:.1f} s")
    mix = query_mix(dept_ids)
    officer = Principal(
        kind="user",
        id=1,
        name="bench",
        role=Role.DEPT_OFFICER,
        department_id=dept_ids[0],
        jurisdiction_id=None,
        permissions=permissions_for(Role.DEPT_OFFICER),
    )
    with Session(engine) as session:
        first_ms, _ = timed(lambda: search(session, officer, q=mix[0].q))
        session.rollback()
    print(
        f"first search: {first_ms:.0f} ms"
        + ("" if args.in_database else " (loads the in-memory replica)")
    )
    with Session(engine) as session:  # warm caches, plans and the rulebook once
        for query in mix[:5]:
            search(session, officer, q=query.q, **query.filters)
            peer_count(session, query)
        session.rollback()

    times: dict[str, dict[str, list[float]]] = {}
    totals_differ: list[str] = []
    for _ in range(args.rounds):
        for query in mix:
            with Session(engine) as session:
                ms, result = timed(
                    lambda q=query, s=session: search(s, officer, q=q.q, sort=q.sort, **q.filters)
                )
                session.rollback()
            with Session(engine) as session:
                peer_ms, count = timed(lambda q=query, s=session: peer_count(s, q))
                session.rollback()
            if result.total != count:
                totals_differ.append(f"{query}: search {result.total} != peer {count}")
            kind = times.setdefault(query.kind, {"search": [], "peer": [], "hits": []})
            kind["search"].append(ms)
            kind["peer"].append(peer_ms)
            kind["hits"].append(float(result.total))
    engine.dispose()
    if tmpdir is not None:
        tmpdir.cleanup()
    if totals_differ:
        print("ERROR: search and peer disagree:\n" + "\n".join(totals_differ[:10]))
        return 1

    print(f"\n{len(mix)} queries x {args.rounds} rounds; latency in ms (hits: median total)")
    head = f"{'kind':<14}{'n':>4}{'hits':>7}  {'search p50':>10}{'p95':>8}{'max':>8}"
    print(head + f"  {'peer p50':>9}{'p95':>8}{'max':>8}")
    all_search: list[float] = []
    all_peer: list[float] = []
    for kind, t in times.items():
        s, p = t["search"], t["peer"]
        all_search += s
        all_peer += p
        print(
            f"{kind:<14}{len(s):>4}{statistics.median(t['hits']):>7.0f}  "
            f"{percentile(s, 50):>10.1f}{percentile(s, 95):>8.1f}{max(s):>8.1f}  "
            f"{percentile(p, 50):>9.1f}{percentile(p, 95):>8.1f}{max(p):>8.1f}"
        )
    s95, p95 = percentile(all_search, 95), percentile(all_peer, 95)
    print(
        f"{'all':<14}{len(all_search):>4}{'':>7}  {percentile(all_search, 50):>10.1f}"
        f"{s95:>8.1f}{max(all_search):>8.1f}  {percentile(all_peer, 50):>9.1f}"
        f"{p95:>8.1f}{max(all_peer):>8.1f}"
    )
    print(f"\nratio search p95 / peer p95: {s95 / p95:.2f}x")
    verdict = "PASS" if s95 < TARGET_P95_MS else "FAIL"
    print(f"search p95 {s95:.1f} ms at {n:,} entries; bar {TARGET_P95_MS:.0f} ms: {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
