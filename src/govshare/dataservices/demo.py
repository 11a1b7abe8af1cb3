"""Demo data services: three published services and the grants the demo app credential
(青川市民政局·社会救助信息系统) uses for each delivery method."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.catalog import demo as catalog_demo
from govshare.dataservices import service
from govshare.dataservices.models import DataService
from govshare.db import china_today
from govshare.orgs import service as orgs_service
from govshare.orgs.models import Department
from govshare.permissions import Role, permissions_for
from govshare.principal import Principal
from govshare.sharing import service as sharing_service

_entry = catalog_demo.entry_named


SERVICES = (
    (
        "户籍人口基本信息",
        "户籍人口身份核验与查询",
        ["verification", "query"],
        "身份核验；户籍核验；社会救助、社保、教育等业务的申请人信息核对",
        "按公民身份号码核验姓名、性别、出生日期、户籍地址等是否与户籍登记一致，"
        "或在授权范围内查询。",
        "1. 先在“共享申请”中取得授权（无条件共享，提交即获授权）；\n"
        "2. 由本部门负责人在“应用凭证”中为业务系统签发凭证；\n"
        "3. 调用时在请求头带 Authorization: Bearer <凭证> 和 X-Govshare-User: <经办人>；\n"
        "4. 核对申报信息请优先使用核验接口，它只回答一致或不一致，不返回存储值。",
    ),
    (
        "市场主体登记信息",
        "市场主体登记信息查询与批量交换",
        ["query", "verification", "batch"],
        "企业开办；招投标资格审查；信用监管",
        "按统一社会信用代码查询或核验市场主体登记信息，或申请全量、增量批量交换文件。",
        "批量交换：POST /api/v1/dataservices/{服务编号}/exports 提交导出任务，"
        "完成后下载 CSV 或 XLSX 文件及其清单（行数、SM3 摘要、平台签名）。",
    ),
    (
        "最低生活保障对象信息",
        "最低生活保障对象核验",
        ["verification"],
        "学生资助认定；医疗救助；社会救助对象认定",
        "核验某人是否为最低生活保障对象及其保障类别；不返回保障金额等存储值。",
        "仅提供核验方式。",
    ),
)


def load(session: Session, departments: dict[str, Department]) -> int:
    """Publish the demo services and give the civil-affairs system a batch grant; returns
    how many services were published."""
    operator = Principal(
        kind="user",
        id=None,
        name="市大数据中心运维组",
        role=Role.OPERATOR,
        permissions=permissions_for(Role.OPERATOR),
    )
    for entry_name, name, methods, scenario, description, guide in SERVICES:
        service.publish(
            session,
            operator,
            entry_id=_entry(session, entry_name).id,
            name=name,
            methods=methods,
            scenario=scenario,
            description=description,
            guide=guide,
        )
    # the civil-affairs system also receives market entities by query and batch exchange
    today = china_today()
    market = _entry(session, "市场主体登记信息")
    assert market.current_version is not None
    fields = [
        it["field"]
        for it in market.current_version.data_items
        if it["field"] in ("credit_code", "org_name", "legal_rep", "status", "founded_on")
    ]
    officer = orgs_service.department_principal(
        departments["city_civil"], Role.DEPT_OFFICER, "数据专员"
    )
    sharing_service.file_application(
        session,
        officer,
        sharing_service.ApplicationIn(
            entry_id=market.id,
            items=fields,
            scope="dataset",
            methods=["query", "batch"],
            purpose="核对社会组织与市场主体的登记状态，比对救助对象名下的经营主体",
            scenario="社会救助家庭经济状况核对",
            basis="",
            period_start=today,
            period_end=today + timedelta(days=365),
            consumer_system="社会救助信息系统",
        ),
        today=today,
    )
    return len(list(session.scalars(select(DataService.id))))


def make_calls(token: str) -> int:
    """Call the demo services through the real gateway (credential, grant check, ledger,
    audit) so that the usage ledger and the statistics have something to show; returns how
    many calls were made. Run after the demo data is committed."""
    import asyncio

    import orjson
    from starlette.requests import Request

    from govshare.dataservices.gateway import gateway
    from govshare.dataservices.models import CallMethod
    from govshare.db import get_engine, session_factory
    from govshare.ingestion.models import DataTable

    with session_factory()() as session:
        people_entry = _entry(session, "户籍人口基本信息")
        market_entry = _entry(session, "市场主体登记信息")
        services = {
            s.entry_id: s.id for s in session.scalars(select(DataService).order_by(DataService.id))
        }
        from sqlalchemy import text

        people_table = session.get(DataTable, people_entry.id)
        market_table = session.get(DataTable, market_entry.id)
        assert people_table is not None
        assert market_table is not None
        people = session.execute(
            text(f'SELECT id_number, name FROM "{people_table.table_name}" ORDER BY _id LIMIT 40')  # noqa: S608
        ).all()
        firms = session.execute(
            text(f'SELECT credit_code FROM "{market_table.table_name}" ORDER BY _id LIMIT 8')  # noqa: S608
        ).all()
    users = ["王秀英", "李建国", "张丽"]
    calls: list[tuple[int, CallMethod, dict[str, object], str]] = []
    for n, (key, name) in enumerate(people):
        claimed = name if n % 5 else name[:-1] + "某"  # one in five declared a wrong name
        calls.append(
            (
                services[people_entry.id],
                CallMethod.VERIFICATION,
                {"key": key, "claims": {"name": claimed}},
                users[n % 3],
            )
        )
    for key, _name in people[:10]:
        calls.append((services[people_entry.id], CallMethod.QUERY, {"key": key}, users[0]))
    # asked for an item outside the grant: refused and recorded
    calls.append(
        (
            services[people_entry.id],
            CallMethod.QUERY,
            {"key": people[0][0], "items": ["birth_date"]},
            users[1],
        )
    )
    for (code,) in firms:
        calls.append((services[market_entry.id], CallMethod.QUERY, {"key": code}, users[2]))
    gw = gateway(get_engine())

    async def one(service_id: int, method: CallMethod, body: dict[str, object], user: str) -> int:
        from urllib.parse import quote

        payload = orjson.dumps(body)
        scope = {
            "type": "http",
            "method": "POST",
            "path": f"/api/v1/dataservices/{service_id}",
            "headers": [
                (b"authorization", f"Bearer {token}".encode()),
                (b"x-govshare-user", quote(user).encode()),
                (b"content-type", b"application/json"),
            ],
            "query_string": b"",
            "client": ("127.0.0.1", 0),
        }
        sent = False

        async def receive() -> dict[str, object]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": payload, "more_body": False}

        response = await gw.handle(Request(scope, receive), service_id, method)
        return response.status_code

    async def run() -> int:
        done = 0
        for call in calls:
            await one(*call)
            done += 1
        gw.ledger.stop()
        return done

    return asyncio.run(run())
