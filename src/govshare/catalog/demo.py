"""The demo city's catalog: 33 resources of its departments, most published, some in review,
one changed, one withdrawn. Called by govshare.demo after the organisations exist."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from govshare.catalog import lists, schemas, service
from govshare.catalog.models import CatalogEntry, CatalogVersion, ChangeTrigger, EntryStatus
from govshare.db import china_today
from govshare.orgs import service as orgs_service
from govshare.orgs.models import Department
from govshare.permissions import Role
from govshare.principal import Principal

ID = ("公民身份号码", "id_number", "id_number", True, True, True)
NAME = ("姓名", "name", "string", True, True, False)
USCC = ("统一社会信用代码", "credit_code", "credit_code", True, False, False)
ORG = ("单位名称", "org_name", "string", True, False, False)
DIV = ("行政区划代码", "division_code", "division_code", False, False, False)

B_IDCARD = "《中华人民共和国居民身份证法》第十三条"
B_PIPL = "《中华人民共和国个人信息保护法》第三十四条"

# dept key, name, summary, kind, item, base db, format, key kind, key field, items,
# share type, methods, frequency, grade, open type, extra
SPECS: list[tuple[Any, ...]] = [
    (
        "city_police",
        "户籍人口基本信息",
        "全市户籍人口的身份号码、姓名、性别、出生日期、民族、户籍地址等基础信息。",
        "base",
        "01",
        "population",
        "database",
        "person",
        "id_number",
        [
            ID,
            NAME,
            ("性别", "gender", "string", True, True, False),
            ("出生日期", "birth_date", "date", True, True, False),
            ("民族", "ethnicity", "string", False, True, True),
            ("户籍地址", "address", "string", True, True, False),
            DIV,
        ],
        "unconditional",
        ["verification", "query"],
        "realtime",
        "important",
        "not_open",
        {},
    ),
    (
        "city_police",
        "居民身份证办理信息",
        "居民身份证申领、换领、补领的受理和制证信息。",
        "department",
        "01",
        None,
        "database",
        "person",
        "id_number",
        [
            ID,
            NAME,
            ("受理日期", "accepted_on", "date", True, False, False),
            ("办理类型", "kind", "string", True, False, False),
            ("制证状态", "status", "string", False, False, False),
        ],
        "conditional",
        ["verification"],
        "daily",
        "important",
        "not_open",
        {
            "share_scope": "政务服务事项办理中需核验身份证件有效性的部门",
            "share_purpose": "核验申请人所持身份证件是否有效",
            "share_basis": B_IDCARD,
        },
    ),
    (
        "city_police",
        "机动车登记信息",
        "机动车注册、转移、变更、抵押和注销登记信息。",
        "department",
        "01",
        None,
        "database",
        "other",
        "plate_no",
        [
            ("号牌号码", "plate_no", "string", True, False, False),
            ("车辆类型", "vehicle_type", "string", True, False, False),
            ("所有人", "owner", "string", True, True, False),
            ("登记日期", "registered_on", "date", True, False, False),
        ],
        "conditional",
        ["query", "verification"],
        "daily",
        "general",
        "not_open",
        {
            "share_scope": "税务、保险监管、交通运输等部门",
            "share_purpose": "车船税征管、营运车辆管理",
            "share_basis": "《中华人民共和国道路交通安全法》第八条",
        },
    ),
    (
        "city_police",
        "机动车驾驶证信息",
        "机动车驾驶证核发、换证、记分和状态信息。",
        "department",
        "01",
        None,
        "database",
        "person",
        "id_number",
        [
            ID,
            NAME,
            ("准驾车型", "vehicle_class", "string", True, False, False),
            ("驾驶证状态", "status", "string", True, False, False),
        ],
        "conditional",
        ["verification"],
        "daily",
        "general",
        "not_open",
        {
            "share_scope": "交通运输、人社等部门",
            "share_purpose": "从业人员资格审核",
            "share_basis": "《中华人民共和国道路交通安全法》第十九条",
        },
    ),
    (
        "city_police",
        "出入境证件信息",
        "普通护照、往来港澳台通行证的申请和签发信息。",
        "department",
        "01",
        None,
        "database",
        "person",
        "id_number",
        [ID, NAME, ("证件号码", "document_no", "string", True, True, True)],
        "not_shared",
        [],
        "daily",
        "core",
        "not_open",
        {
            "share_basis": (
                "《中华人民共和国出境入境管理法》第八十五条；《中华人民共和国护照法》第二十条"
            )
        },
    ),
    (
        "city_police",
        "流动人口居住登记信息",
        "流动人口居住登记和居住证办理信息。",
        "department",
        "01",
        None,
        "database",
        "person",
        "id_number",
        [
            ID,
            NAME,
            ("居住地址", "address", "string", True, True, False),
            ("登记日期", "registered_on", "date", True, False, False),
        ],
        "conditional",
        ["verification", "query"],
        "daily",
        "important",
        "not_open",
        {
            "share_scope": "教育、卫健、人社等部门",
            "share_purpose": "随迁子女入学、基本公共服务资格审核",
            "share_basis": "《居住证暂行条例》第十二条",
        },
    ),
    (
        "city_market",
        "市场主体登记信息",
        "企业、个体工商户、农民专业合作社的设立、变更、注销登记信息。",
        "base",
        "02",
        "legal_person",
        "database",
        "organization",
        "credit_code",
        [
            USCC,
            ORG,
            ("法定代表人", "legal_rep", "string", True, True, False),
            ("注册资本（万元）", "capital", "decimal", False, False, False),
            ("成立日期", "founded_on", "date", True, False, False),
            ("登记状态", "status", "string", True, False, False),
            DIV,
        ],
        "unconditional",
        ["query", "verification", "batch"],
        "realtime",
        "general",
        "unconditional",
        {},
    ),
    (
        "city_market",
        "食品经营许可信息",
        "食品经营许可证的核发、延续、变更和注销信息。",
        "department",
        "02",
        None,
        "database",
        "organization",
        "credit_code",
        [
            USCC,
            ORG,
            ("许可证编号", "licence_no", "string", True, False, False),
            ("有效期至", "valid_until", "date", True, False, False),
        ],
        "unconditional",
        ["query"],
        "daily",
        "general",
        "unconditional",
        {},
    ),
    (
        "city_market",
        "市场监管行政处罚信息",
        "市场监管领域行政处罚决定信息。",
        "department",
        "02",
        None,
        "database",
        "organization",
        "credit_code",
        [
            USCC,
            ORG,
            ("处罚决定书文号", "decision_no", "string", True, False, False),
            ("处罚内容", "penalty", "string", True, False, False),
            ("处罚日期", "decided_on", "date", True, False, False),
        ],
        "unconditional",
        ["query"],
        "weekly",
        "general",
        "conditional",
        {"open_conditions": "按公示期限向社会公示", "open_basis": "《企业信息公示暂行条例》第七条"},
    ),
    (
        "city_market",
        "企业年度报告信息",
        "企业年度报告公示信息。",
        "department",
        "02",
        None,
        "database",
        "organization",
        "credit_code",
        [
            USCC,
            ORG,
            ("报告年度", "year", "integer", True, False, False),
            ("从业人数", "employees", "integer", False, False, False),
        ],
        "unconditional",
        ["query"],
        "yearly",
        "general",
        "unconditional",
        {},
    ),
    (
        "city_market",
        "特种设备使用登记信息",
        "锅炉、压力容器、电梯等特种设备使用登记信息。",
        "department",
        "02",
        None,
        "database",
        "other",
        "equipment_code",
        [
            ("设备代码", "equipment_code", "string", True, False, False),
            ORG,
            ("设备类别", "category", "string", True, False, False),
        ],
        "conditional",
        ["query"],
        "monthly",
        "general",
        "not_open",
        {
            "share_scope": "应急管理、住建部门",
            "share_purpose": "安全生产监管",
            "share_basis": "《中华人民共和国特种设备安全法》第三十三条",
        },
    ),
    (
        "city_civil",
        "婚姻登记信息",
        "结婚、离婚、补领婚姻登记证的登记信息。",
        "department",
        "03",
        None,
        "database",
        "person",
        "id_number",
        [
            ID,
            NAME,
            ("婚姻状况", "marital_status", "string", True, True, True),
            ("登记日期", "registered_on", "date", True, False, False),
            ("登记机关", "office", "string", True, False, False),
        ],
        "conditional",
        ["verification"],
        "daily",
        "important",
        "not_open",
        {
            "share_scope": "不动产登记、公积金、卫健等部门",
            "share_purpose": "办理业务时核验婚姻状况",
            "share_basis": "《婚姻登记条例》第二条；" + B_PIPL,
        },
    ),
    (
        "city_civil",
        "最低生活保障对象信息",
        "城乡最低生活保障对象认定、保障金额和动态管理信息。",
        "department",
        "03",
        None,
        "database",
        "person",
        "id_number",
        [
            ID,
            NAME,
            ("保障类别", "category", "string", True, True, True),
            ("保障金额（元/月）", "amount", "decimal", True, True, True),
        ],
        "conditional",
        ["verification", "query"],
        "monthly",
        "important",
        "not_open",
        {
            "share_scope": "教育、卫健、医保、住建等部门",
            "share_purpose": "教育资助、医疗救助、住房保障资格认定",
            "share_basis": "《社会救助暂行办法》第十一条",
        },
    ),
    (
        "city_civil",
        "社会组织登记信息",
        "社会团体、民办非企业单位、基金会的登记信息。",
        "base",
        "03",
        "legal_person",
        "database",
        "organization",
        "credit_code",
        [
            USCC,
            ORG,
            ("组织类型", "org_type", "string", True, False, False),
            ("登记状态", "status", "string", True, False, False),
        ],
        "unconditional",
        ["query"],
        "daily",
        "general",
        "unconditional",
        {},
    ),
    (
        "city_civil",
        "殡葬服务信息",
        "遗体火化和殡葬服务信息。",
        "department",
        "03",
        None,
        "database",
        "person",
        "id_number",
        [ID, NAME, ("火化日期", "cremated_on", "date", True, True, False)],
        "conditional",
        ["verification"],
        "daily",
        "important",
        "not_open",
        {
            "share_scope": "公安、人社、医保部门",
            "share_purpose": "户籍注销、停发养老金、医保待遇",
            "share_basis": "《殡葬管理条例》第三条",
        },
    ),
    (
        "city_civil",
        "特困人员供养信息",
        "特困人员认定和供养信息。",
        "department",
        "03",
        None,
        "database",
        "person",
        "id_number",
        [ID, NAME, ("供养方式", "support_type", "string", True, True, True)],
        "conditional",
        ["verification"],
        "monthly",
        "important",
        "not_open",
        {
            "share_scope": "卫健、医保、住建部门",
            "share_purpose": "医疗救助和住房保障资格认定",
            "share_basis": "《社会救助暂行办法》第十四条",
        },
    ),
    (
        "city_hrss",
        "社会保险参保信息",
        "职工和城乡居民养老保险、失业保险、工伤保险参保缴费信息。",
        "department",
        "04",
        None,
        "database",
        "person",
        "id_number",
        [
            ID,
            NAME,
            ("险种", "insurance", "string", True, False, False),
            ("参保状态", "status", "string", True, True, False),
            ("缴费月数", "months", "integer", False, True, False),
        ],
        "conditional",
        ["verification", "query"],
        "monthly",
        "important",
        "not_open",
        {
            "share_scope": "民政、住建、公积金、税务部门",
            "share_purpose": "社会救助审核、住房保障资格审核",
            "share_basis": "《中华人民共和国社会保险法》第七十四条",
        },
    ),
    (
        "city_hrss",
        "就业失业登记信息",
        "就业登记、失业登记和就业困难人员认定信息。",
        "department",
        "04",
        None,
        "database",
        "person",
        "id_number",
        [ID, NAME, ("登记类型", "kind", "string", True, True, False)],
        "conditional",
        ["verification"],
        "daily",
        "general",
        "not_open",
        {
            "share_scope": "民政、市场监管部门",
            "share_purpose": "社会救助、创业扶持资格审核",
            "share_basis": "《就业服务与就业管理规定》第六十一条",
        },
    ),
    (
        "city_hrss",
        "职业资格证书信息",
        "技能人员职业资格和职业技能等级证书信息。",
        "base",
        "04",
        "electronic_licence",
        "database",
        "person",
        "id_number",
        [
            ID,
            NAME,
            ("证书编号", "certificate_no", "string", True, False, False),
            ("职业名称", "occupation", "string", True, False, False),
        ],
        "unconditional",
        ["verification", "query"],
        "weekly",
        "general",
        "not_open",
        {"open_basis": B_PIPL},
    ),
    (
        "city_hrss",
        "劳动保障监察行政处罚信息",
        "劳动保障监察行政处罚决定信息。",
        "department",
        "04",
        None,
        "database",
        "organization",
        "credit_code",
        [USCC, ORG, ("处罚内容", "penalty", "string", True, False, False)],
        "unconditional",
        ["query"],
        "weekly",
        "general",
        "unconditional",
        {},
    ),
    (
        "city_land",
        "不动产登记信息",
        "土地、房屋等不动产首次、转移、变更、抵押登记信息。",
        "department",
        "05",
        None,
        "database",
        "other",
        "unit_no",
        [
            ("不动产单元号", "unit_no", "string", True, False, False),
            ("权利人", "owner", "string", True, True, False),
            ("权利人证件号码", "owner_id", "id_number", True, True, True),
            ("坐落", "location", "string", True, False, False),
            ("面积（平方米）", "area", "decimal", True, False, False),
        ],
        "conditional",
        ["query", "verification"],
        "daily",
        "important",
        "not_open",
        {
            "share_scope": "住建、税务、民政、法院等部门",
            "share_purpose": "住房保障、税收征管、社会救助家庭财产核对",
            "share_basis": "《不动产登记暂行条例》第二十四条",
        },
    ),
    (
        "city_land",
        "国土空间规划数据",
        "国土空间总体规划和详细规划的规划分区、用途管制数据。",
        "base",
        "05",
        "natural_resources",
        "spreadsheet",
        "other",
        "zone_code",
        [
            ("规划分区代码", "zone_code", "string", True, False, False),
            ("用地性质", "land_use", "string", True, False, False),
            DIV,
        ],
        "unconditional",
        ["batch"],
        "yearly",
        "important",
        "not_open",
        {"open_basis": "《中华人民共和国测绘法》第三十四条"},
    ),
    (
        "city_land",
        "国有建设用地使用权出让信息",
        "国有建设用地使用权出让公告和成交信息。",
        "department",
        "05",
        None,
        "spreadsheet",
        "other",
        "parcel_no",
        [
            ("宗地编号", "parcel_no", "string", True, False, False),
            ("成交价（万元）", "price", "decimal", True, False, False),
            DIV,
        ],
        "unconditional",
        ["query", "batch"],
        "monthly",
        "general",
        "unconditional",
        {},
    ),
    (
        "city_health",
        "出生医学证明信息",
        "出生医学证明签发信息。",
        "department",
        "06",
        None,
        "database",
        "other",
        "certificate_no",
        [
            ("出生医学证明编号", "certificate_no", "string", True, False, False),
            ("新生儿姓名", "baby_name", "string", True, True, False),
            ("母亲身份号码", "mother_id", "id_number", True, True, True),
            ("出生日期", "born_on", "date", True, True, False),
        ],
        "conditional",
        ["verification"],
        "daily",
        "important",
        "not_open",
        {
            "share_scope": "公安、医保部门",
            "share_purpose": "新生儿户籍登记、医保参保",
            "share_basis": "《中华人民共和国母婴保健法》第二十三条",
        },
    ),
    (
        "city_health",
        "医疗机构执业登记信息",
        "医疗机构执业许可和校验信息。",
        "department",
        "06",
        None,
        "database",
        "organization",
        "credit_code",
        [USCC, ORG, ("诊疗科目", "departments", "string", False, False, False)],
        "unconditional",
        ["query"],
        "weekly",
        "general",
        "unconditional",
        {},
    ),
    (
        "city_health",
        "医师执业注册信息",
        "医师执业注册、变更和注销信息。",
        "department",
        "06",
        None,
        "database",
        "person",
        "id_number",
        [
            ID,
            NAME,
            ("执业类别", "category", "string", True, False, False),
            ("执业机构", "org_name", "string", True, False, False),
        ],
        "unconditional",
        ["verification", "query"],
        "weekly",
        "general",
        "not_open",
        {"open_basis": B_PIPL},
    ),
    (
        "city_health",
        "传染病疫情个案信息",
        "法定传染病病例个案报告信息。",
        "department",
        "06",
        None,
        "database",
        "person",
        "id_number",
        [ID, NAME, ("病种", "disease", "string", True, True, True)],
        "not_shared",
        [],
        "realtime",
        "core",
        "not_open",
        {
            "share_basis": (
                "《中华人民共和国传染病防治法》第十二条；《中华人民共和国个人信息保护法》第二十八条"
            )
        },
    ),
    (
        "city_edu",
        "学生学籍信息",
        "中小学生学籍注册、转学、升学信息。",
        "department",
        "07",
        None,
        "database",
        "person",
        "id_number",
        [
            ID,
            NAME,
            ("学校", "school", "string", True, False, False),
            ("年级", "grade_level", "string", True, True, False),
        ],
        "conditional",
        ["verification"],
        "monthly",
        "important",
        "not_open",
        {
            "share_scope": "民政、人社、卫健部门",
            "share_purpose": "教育资助、困难家庭认定",
            "share_basis": "《中华人民共和国未成年人保护法》第七十二条",
        },
    ),
    (
        "city_edu",
        "教师资格信息",
        "教师资格认定和证书信息。",
        "department",
        "07",
        None,
        "database",
        "person",
        "id_number",
        [ID, NAME, ("资格种类", "category", "string", True, False, False)],
        "unconditional",
        ["verification"],
        "monthly",
        "general",
        "not_open",
        {"open_basis": B_PIPL},
    ),
    (
        "city_edu",
        "民办学校办学许可信息",
        "民办学校办学许可证核发和年检信息。",
        "department",
        "07",
        None,
        "database",
        "organization",
        "credit_code",
        [USCC, ORG, ("办学层次", "level", "string", True, False, False)],
        "unconditional",
        ["query"],
        "monthly",
        "general",
        "unconditional",
        {},
    ),
    (
        "linhe_police",
        "临河县户籍迁移信息",
        "临河县户籍迁入、迁出登记信息。",
        "department",
        "01",
        None,
        "database",
        "person",
        "id_number",
        [
            ID,
            NAME,
            ("迁移类型", "kind", "string", True, True, False),
            ("迁移日期", "moved_on", "date", True, True, False),
        ],
        "conditional",
        ["verification"],
        "daily",
        "important",
        "not_open",
        {
            "share_scope": "县教育、民政、人社部门",
            "share_purpose": "入学、救助、社保关系转移",
            "share_basis": "《中华人民共和国户口登记条例》第十条",
        },
    ),
    (
        "linhe_market",
        "临河县个体工商户登记信息",
        "临河县个体工商户登记信息。",
        "department",
        "02",
        None,
        "database",
        "organization",
        "credit_code",
        [USCC, ORG, ("经营者", "operator", "string", True, True, False)],
        "unconditional",
        ["query"],
        "daily",
        "general",
        "not_open",
        {"open_basis": B_PIPL},
    ),
    (
        "anping_civil",
        "安平县社会救助申请信息",
        "安平县低保、特困、临时救助的申请和审核信息。",
        "department",
        "03",
        None,
        "database",
        "person",
        "id_number",
        [ID, NAME, ("救助类型", "kind", "string", True, True, True)],
        "conditional",
        ["verification"],
        "daily",
        "important",
        "not_open",
        {
            "share_scope": "县教育、卫健部门",
            "share_purpose": "教育和医疗救助衔接",
            "share_basis": "《社会救助暂行办法》第五十六条",
        },
    ),
]

#: indexes of SPECS left unpublished: a draft, and one waiting for review
DRAFT = {5}
IN_REVIEW = {32}


def entry_named(session: Session, name: str) -> CatalogEntry:
    """The demo entry whose version in force has this name."""
    entry = session.scalar(
        select(CatalogEntry)
        .join(CatalogVersion, CatalogVersion.id == CatalogEntry.current_version_id)
        .where(CatalogVersion.name == name)
    )
    assert entry is not None, name
    return entry


def _principal(dept: Department, role: Role) -> Principal:
    return orgs_service.department_principal(dept, role, f"govshare demo（{dept.short_name}）")


def _data(spec: tuple[Any, ...]) -> schemas.EntryCreate:
    (
        _,
        name,
        summary,
        kind,
        item,
        base,
        fmt,
        key_kind,
        key_field,
        items,
        share,
        methods,
        freq,
        grade,
        open_type,
        extra,
    ) = spec
    personal = any(p for _n, _f, _t, _r, p, _s in items)
    if open_type == "not_open" and "open_basis" not in extra:
        basis = B_PIPL if personal else "《中华人民共和国数据安全法》第三十八条"
        extra = {**extra, "open_basis": basis}
    return schemas.EntryCreate.model_validate(
        {
            "catalog_kind": kind,
            "item_code": item,
            "category_code": "001",
            "base_database": base,
            "name": name,
            "summary": summary,
            "resource_format": fmt,
            "subject_key_kind": key_kind,
            "subject_key_item": key_field,
            "data_items": [
                {
                    "name": n,
                    "field": f,
                    "data_type": t,
                    "required": r,
                    "personal": p,
                    "sensitive": s,
                }
                for n, f, t, r, p, s in items
            ],
            "share_type": share,
            "share_methods": methods,
            "update_frequency": freq,
            "data_grade": grade,
            "open_type": open_type,
            **extra,
        }
    )


def _lists(
    session: Session, departments: dict[str, Department], authorities: dict[int, Department]
) -> None:
    """Demands (one matched, one a gap) and change events (one open, one resolved)."""
    edu = _principal(departments["city_edu"], Role.DEPT_OFFICER)
    matched = lists.file_demand(
        session,
        edu,
        "困难家庭学生资助资格核验",
        "学生资助申请时核验家庭是否为低保或特困家庭",
        ["公民身份号码", "保障类别"],
        "义务教育阶段家庭经济困难学生生活补助审核",
        "《学生资助资金管理办法》",
        departments["city_civil"].id,
    )
    city_authority = _principal(
        authorities[departments["city_data"].jurisdiction_id], Role.AUTHORITY
    )
    dibao = next(
        e
        for e in service.entries_for(session, city_authority)
        if e.current_version and e.current_version.name == "最低生活保障对象信息"
    )
    lists.match_demand(
        session,
        city_authority,
        matched.id,
        [dibao.id],
        "由市民政局最低生活保障对象信息以数据核验方式提供",
    )
    health = _principal(departments["city_health"], Role.DEPT_OFFICER)
    lists.file_demand(
        session,
        health,
        "新生儿预防接种建档信息",
        "新生儿出生后建立预防接种档案所需的户籍登记结果",
        ["新生儿户籍登记日期", "监护人联系电话"],
        "预防接种证办理",
        "《中华人民共和国疫苗管理法》第四十七条",
    )
    market = _principal(departments["city_market"], Role.DEPT_OFFICER)
    lists.record_change(
        session,
        market,
        None,
        ChangeTrigger.LAW,
        "《食品经营许可和备案管理办法》修订，食品经营许可信息需增加经营项目",
        china_today(),
    )
    hrss = _principal(departments["city_hrss"], Role.DEPT_OFFICER)
    event = lists.record_change(
        session,
        hrss,
        None,
        ChangeTrigger.DUTY,
        "职业技能等级认定职能调整，由人社局统一发放证书",
        china_today() - timedelta(days=14),
    )
    lists.resolve_change(
        session, city_authority, event.id, "经核对，职业资格证书信息目录内容无需变更，予以办结", []
    )


def load(session: Session, departments: dict[str, Department]) -> int:
    """Compile, submit and review the demo catalog; returns how many entries are published."""
    authorities = {d.jurisdiction_id: d for d in departments.values() if d.is_data_authority}
    published = 0
    for n, spec in enumerate(SPECS):
        dept = departments[spec[0]]
        officer = _principal(dept, Role.DEPT_OFFICER)
        version = service.create_entry(session, officer, _data(spec))
        if n in DRAFT:
            continue
        service.submit(session, officer, version)
        if n in IN_REVIEW:
            continue
        authority = _principal(authorities[dept.jurisdiction_id], Role.AUTHORITY)
        service.review(
            session,
            authority,
            version,
            schemas.ReviewIn(decision="approve", comment="符合编制规范"),
        )
        published += 1
    # a change under review: the food licence gets a new item; version 1 stays in force
    market = departments["city_market"]
    entry = next(
        e
        for e in service.entries_for(
            session, _principal(market, Role.DEPT_OFFICER), department_id=market.id
        )
        if e.current_version and e.current_version.name == "食品经营许可信息"
    )
    officer = _principal(market, Role.DEPT_OFFICER)
    v2 = service.new_version(
        session, officer, entry, schemas.NewVersionIn(change_note="新增经营项目信息项")
    )
    data = _data(next(spec for spec in SPECS if spec[1] == "食品经营许可信息"))
    data.data_items.append(schemas.DataItem(name="经营项目", field="business_scope"))
    service.update_version(session, officer, v2, data)
    service.submit(session, officer, v2)
    # a withdrawn resource: funeral services moved to another department
    civil = departments["city_civil"]
    funeral = next(
        e
        for e in service.entries_for(
            session, _principal(civil, Role.DEPT_OFFICER), department_id=civil.id
        )
        if e.current_version and e.current_version.name == "殡葬服务信息"
    )
    service.withdraw(
        session,
        _principal(civil, Role.DEPT_HEAD),
        funeral,
        schemas.WithdrawIn(reason="殡葬服务信息改由市殡葬管理所提供，本条目撤销"),
    )
    _lists(session, departments, authorities)
    session.flush()
    return int(
        session.scalar(
            select(func.count(CatalogEntry.id)).where(
                CatalogEntry.status == EntryStatus.PUBLISHED.value
            )
        )
        or 0
    )
