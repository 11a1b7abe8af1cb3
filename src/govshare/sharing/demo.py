"""Demo sharing applications, one or more in every state the shipped rulebooks produce.

The demo city uses nanyang-2021: the data authority decides conditional applications
(seed 003 art. 12) within the national default of 10 working days. Everything goes
through the workflow's own service functions, so each step is recorded and audited.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.catalog import demo as catalog_demo
from govshare.catalog.models import CatalogEntry
from govshare.db import china_today
from govshare.orgs import service as orgs_service
from govshare.orgs.models import Department
from govshare.permissions import Role
from govshare.principal import Principal
from govshare.sharing import agreements, disputes, grants, service
from govshare.sharing.models import Grant, ShareApplication

_entry = catalog_demo.entry_named


def _fields(entry: CatalogEntry, *names: str) -> list[str]:
    assert entry.current_version is not None
    by_name = {it["name"]: it["field"] for it in entry.current_version.data_items}
    return [by_name[n] for n in names]


def load(session: Session, departments: dict[str, Department]) -> int:
    """File the demo applications and take them through their steps; returns how many."""
    today = china_today()
    authority = orgs_service.department_principal(
        departments["city_data"], Role.AUTHORITY, "周晓东"
    )

    def officer(key: str) -> Principal:
        return orgs_service.department_principal(departments[key], Role.DEPT_OFFICER, "数据专员")

    def apply(
        consumer: str, entry_name: str, items: tuple[str, ...], *, on: date = today, **kw: Any
    ) -> ShareApplication:
        entry = _entry(session, entry_name)
        data = service.ApplicationIn(
            entry_id=entry.id,
            items=_fields(entry, *items),
            scope=kw.pop("scope", "per_subject"),
            methods=kw.pop("methods", ["verification"]),
            purpose=kw.pop("purpose"),
            scenario=kw.pop("scenario"),
            basis=kw.pop("basis", ""),
            period_start=on,
            period_end=on + timedelta(days=365),
            consumer_system=kw.pop("system", ""),
        )
        return service.file_application(session, officer(consumer), data, today=on)

    # 1. unconditional data: granted at once, no review (seed 000 art. 16)
    apply(
        "city_civil",
        "户籍人口基本信息",
        ("公民身份号码", "姓名", "户籍地址"),
        methods=["verification", "query"],
        purpose="核验最低生活保障申请人的户籍信息",
        scenario="最低生活保障申请受理与审核",
        system="社会救助信息系统",
    )
    # 2. conditional, waiting for the authority's decision
    apply(
        "city_civil",
        "居民身份证办理信息",
        ("公民身份号码", "姓名", "制证状态"),
        purpose="核验救助申请人所持身份证件是否有效",
        scenario="临时救助申请受理",
        basis="《社会救助暂行办法》第五十三条",
    )
    # 3. material missing: asked for once (一次性告知)
    marriage = apply(
        "city_hrss",
        "婚姻登记信息",
        ("公民身份号码", "姓名", "婚姻状况"),
        purpose="核验遗属待遇申领人与参保人的婚姻关系",
        scenario="企业职工遗属待遇申领",
        basis="《中华人民共和国社会保险法》第十七条",
    )
    service.ask_supplement(
        session,
        authority,
        marriage,
        "请补充：1. 遗属待遇申领业务的办理依据文件；2. 本部门数据安全管理责任人及联系方式。",
        today=today,
    )
    # 4. approved with fewer items than asked for (least necessary, seed 003 art. 12)
    allowance = apply(
        "city_edu",
        "最低生活保障对象信息",
        ("公民身份号码", "姓名", "保障类别", "保障金额（元/月）"),
        methods=["verification"],
        purpose="认定家庭经济困难学生资助对象",
        scenario="学生资助资格认定",
        basis="《学生资助资金管理办法》第四条",
    )
    service.approve(
        session,
        authority,
        allowance,
        _fields(_entry(session, "最低生活保障对象信息"), "公民身份号码", "保障类别"),
        "只核验是否为低保对象及保障类别，不得获取保障金额；不得用于资助认定以外的用途",
        today=today,
    )
    # 5. rejected with a reason the consumer can dispute
    students = apply(
        "city_land",
        "学生学籍信息",
        ("公民身份号码", "姓名", "学校"),
        purpose="核实不动产登记申请人子女的就学情况",
        scenario="不动产登记业务辅助核查",
        basis="《不动产登记暂行条例》第二十四条",
    )
    service.reject(
        session,
        authority,
        students,
        "所述场景与学籍信息的共享范围（民政、人社、卫健部门的资助与困难认定）不符，"
        "且依据条款未规定可调取学籍信息",
    )
    # 6. withdrawn by the consumer
    insurance = apply(
        "city_health",
        "社会保险参保信息",
        ("公民身份号码", "姓名", "参保状态"),
        methods=["verification"],
        purpose="核验医疗救助对象的参保状态",
        scenario="医疗救助一站式结算",
        basis="《社会救助暂行办法》第二十九条",
    )
    service.withdraw(session, officer("city_health"), insurance)
    # 7. overdue: filed a month ago and still unanswered (flagged the day after its due date)
    overdue = apply(
        "city_market",
        "不动产登记信息",
        ("不动产单元号", "权利人", "坐落"),
        methods=["query"],
        purpose="核查经营场所的权属情况",
        scenario="市场主体住所（经营场所）登记核查",
        basis="《市场主体登记管理条例》第十九条",
        on=today - timedelta(days=30),
    )
    # disputes (seed 000 art. 20, seed 003 art. 40): the unanswered one waits for
    # coordination; the refused one was coordinated without agreement and escalated
    disputes.raise_dispute(
        session,
        officer("city_market"),
        overdue,
        "申请已超过答复期限仍未答复，影响市场主体住所登记核查，请求协调。",
        today=today,
    )
    dispute = disputes.raise_dispute(
        session,
        officer("city_land"),
        students,
        "不动产登记中涉及未成年人权利的，需核实其就学情况，请求协调共享学籍信息。",
        today=today,
    )
    disputes.start_coordination(session, authority, dispute, "已组织教育局、自然资源和规划局会商")
    disputes.escalate(
        session,
        authority,
        dispute,
        "经会商，教育局认为学籍信息的共享范围不含不动产登记业务，自然资源和规划局坚持需要，"
        "双方未达成一致，报请市人民政府决定。",
    )
    # misuse found: the authority suspends a grant (seed 003 art. 41)
    grant = session.scalar(select(Grant).where(Grant.application_id == allowance.id))
    assert grant is not None
    grants.suspend(
        session,
        authority,
        grant,
        "监督检查发现超出授权范围查询保障金额，暂停使用，待整改后恢复",
    )
    # agreement sharing in 临河县 (seed 004 art. 16(3)): signed by both sides, filed
    migration = _entry(session, "临河县户籍迁移信息")
    agreement = agreements.draft(
        session,
        officer("linhe_market"),
        agreements.AgreementIn(
            entry_id=migration.id,
            items=_fields(migration, "公民身份号码", "迁移类型", "迁移日期"),
            methods=["verification"],
            purpose="核验个体工商户经营者的户籍迁移情况",
            scenario="个体工商户登记与变更",
            text="双方约定：需求部门仅在个体工商户登记业务中核验经营者户籍迁移情况，"
            "不留存、不转交第三方；提供部门保障核验接口可用。",
            starts_on=today,
            ends_on=today + timedelta(days=730),
            number="临数协〔2026〕1号",
        ),
        today=today,
    )
    agreements.sign(session, officer("linhe_market"), agreement)
    agreements.sign(
        session,
        orgs_service.department_principal(
            departments["linhe_police"], Role.DEPT_HEAD, "临河县公安局局长"
        ),
        agreement,
    )
    agreements.file(
        session,
        orgs_service.department_principal(departments["linhe_data"], Role.AUTHORITY, "赵丽娟"),
        agreement,
        "已备案",
        today=today,
    )
    return 7
