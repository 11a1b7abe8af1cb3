"""Demo data: a fictional city (青川市) with two counties, their departments, contact persons
on file, and one user per role. Names, codes and phone numbers are invented; the credit
codes are syntactically valid (GB 32100) but belong to no real organ."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from govshare.catalog import demo as catalog_demo
from govshare.dataservices import demo as dataservices_demo
from govshare.ingestion import demo as ingestion_demo
from govshare.orgs import repository as orgs_repo
from govshare.orgs import schemas
from govshare.orgs import service as orgs_service
from govshare.orgs.codes import credit_code
from govshare.orgs.models import Duty, Level
from govshare.permissions import Role
from govshare.principal import Principal
from govshare.sharing import demo as sharing_demo

DEMO_PASSWORD = "Demo-2026!gov"  # noqa: S105 - printed by `govshare demo`, demo data only

JURISDICTIONS = [
    # code, name, level, parent, rulebook
    ("970000", "东华省", Level.PROVINCE, None, None),
    ("970100", "青川市", Level.CITY, "970000", "nanyang-2021"),
    ("970121", "临河县", Level.COUNTY, "970100", "neixiang-2017"),
    ("970122", "安平县", Level.COUNTY, "970100", "pingshan-2026"),
]

DEPARTMENTS = [
    # key, jurisdiction, name, short name, data authority, duties
    (
        "city_data",
        "970100",
        "青川市数据和政务服务局",
        "市数据局",
        True,
        "统筹全市政务数据共享、开放、目录管理与监督考核",
    ),
    (
        "city_police",
        "970100",
        "青川市公安局",
        "市公安局",
        False,
        "户籍管理、居民身份证、出入境、交通管理",
    ),
    (
        "city_market",
        "970100",
        "青川市市场监督管理局",
        "市市场监管局",
        False,
        "市场主体登记注册、食品药品安全监管、信用监管",
    ),
    (
        "city_civil",
        "970100",
        "青川市民政局",
        "市民政局",
        False,
        "婚姻登记、社会救助、社会组织登记、殡葬管理",
    ),
    (
        "city_hrss",
        "970100",
        "青川市人力资源和社会保障局",
        "市人社局",
        False,
        "就业、社会保险、职业资格、劳动关系",
    ),
    (
        "city_land",
        "970100",
        "青川市自然资源和规划局",
        "市自然资源局",
        False,
        "不动产登记、国土空间规划、自然资源确权",
    ),
    (
        "city_health",
        "970100",
        "青川市卫生健康委员会",
        "市卫健委",
        False,
        "医疗机构与医师管理、出生医学证明、疾病预防控制",
    ),
    ("city_edu", "970100", "青川市教育局", "市教育局", False, "学籍管理、学历认证、教育资助"),
    (
        "linhe_data",
        "970121",
        "临河县数据和政务服务局",
        "临河县数据局",
        True,
        "统筹全县政务数据共享工作",
    ),
    ("linhe_police", "970121", "临河县公安局", "临河县公安局", False, "户籍管理、治安管理"),
    (
        "linhe_market",
        "970121",
        "临河县市场监督管理局",
        "临河县市场监管局",
        False,
        "市场主体登记、食品安全",
    ),
    (
        "anping_data",
        "970122",
        "安平县数据和政务服务局",
        "安平县数据局",
        True,
        "统筹全县政务数据共享工作",
    ),
    ("anping_civil", "970122", "安平县民政局", "安平县民政局", False, "社会救助、婚姻登记"),
]

SURNAMES = "王李张刘陈杨赵黄周吴徐孙马朱胡郭何林高罗"
GIVEN = [
    "建国",
    "海燕",
    "志强",
    "丽娟",
    "文博",
    "晓东",
    "秀英",
    "国华",
    "春梅",
    "明辉",
    "玉兰",
    "振宇",
    "凤霞",
    "立新",
    "俊杰",
    "雪梅",
    "德胜",
    "慧敏",
    "永刚",
    "佳怡",
]

USERS = [
    # username, name, role, department key
    ("authority", "周晓东", Role.AUTHORITY, "city_data"),
    ("officer", "陈海燕", Role.DEPT_OFFICER, "city_police"),
    ("reviewer", "刘志强", Role.DEPT_REVIEWER, "city_market"),
    ("head", "王建国", Role.DEPT_HEAD, "city_civil"),
    ("operator", "孙文博", Role.OPERATOR, None),
    ("citizen", "林佳怡", Role.PUBLIC, None),
    ("linhe_authority", "赵丽娟", Role.AUTHORITY, "linhe_data"),
    ("linhe_officer", "黄明辉", Role.DEPT_OFFICER, "linhe_police"),
]

DEMO_LOGINS = [
    (u, role.label, next((str(d[2]) for d in DEPARTMENTS if d[0] == key), "—"))
    for u, _n, role, key in USERS
]


@dataclass
class DemoResult:
    created: bool
    credential_token: str | None = None
    catalog_published: int = 0
    rows_loaded: int = 0


def _person(i: int) -> str:
    return SURNAMES[i % len(SURNAMES)] + GIVEN[(i * 7) % len(GIVEN)]


def load(session: Session) -> DemoResult:
    """Load the demo jurisdiction unless it is there already (idempotent)."""
    if orgs_repo.jurisdiction_by_code(session, "970100") is not None:
        return DemoResult(created=False)
    actor = Principal.platform("govshare demo")
    for code, name, level, parent, rulebook in JURISDICTIONS:
        orgs_service.create_jurisdiction(
            session,
            actor,
            schemas.JurisdictionIn(
                code=code, name=name, level=level, parent_code=parent, rulebook=rulebook
            ),
        )
    departments = {}
    for n, (key, juris, name, short, is_auth, duties) in enumerate(DEPARTMENTS, start=1):
        departments[key] = orgs_service.create_department(
            session,
            actor,
            schemas.DepartmentIn(
                name=name,
                short_name=short,
                credit_code=credit_code(juris, 2026_0000 + n),
                jurisdiction_code=juris,
                is_data_authority=is_auth,
                duties=duties,
            ),
        )
    for n, (key, _j, _name, _s, _a, _d) in enumerate(DEPARTMENTS):
        dept = departments[key]
        area = "0399" if dept.jurisdiction.code == "970100" else "0398"
        for duty, title, offset in (
            (Duty.HEAD, "局长" if "委员会" not in dept.name else "主任", 0),
            (Duty.LEADER, "副局长" if "委员会" not in dept.name else "副主任", 1),
            (Duty.OFFICER, "数据专员", 2),
        ):
            orgs_service.file_contact(
                session,
                actor,
                dept,
                schemas.ContactIn(
                    duty=duty,
                    name=_person(n * 3 + offset),
                    title=title,
                    phone=f"{area}-{6100000 + n * 10 + offset}",
                    mobile=f"139{(n * 3 + offset):08d}",
                    note="首次备案",
                ),
            )
    for username, name, role, dept_key in USERS:
        user = orgs_service.create_user(
            session,
            actor,
            schemas.UserIn(
                username=username,
                display_name=name,
                password=DEMO_PASSWORD,
                role=role,
                department_id=departments[dept_key].id if dept_key else None,
            ),
        )
        user.must_change_password = False  # demo accounts log straight in
    published = catalog_demo.load(session, departments)
    rows = ingestion_demo.load(session, departments)
    sharing_demo.load(session, departments)
    dataservices_demo.load(session, departments)
    issued = orgs_service.create_credential(
        session,
        actor,
        schemas.CredentialIn(
            department_id=departments["city_civil"].id,
            system_name="社会救助信息系统",
            description="演示：调用公安户籍核验接口",
            valid_days=365,
        ),
    )
    session.flush()
    return DemoResult(
        created=True, credential_token=issued.token, catalog_published=published, rows_loaded=rows
    )
