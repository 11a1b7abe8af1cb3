"""JSON API of the data services (under /api/v1).

- Calls (app credential, ``Authorization: Bearer gsk_...`` and ``X-Govshare-User``):
  ``POST /dataservices/{id}/query`` and ``POST /dataservices/{id}/verify``; ``?signed=1``
  returns the answer inside an SM2 signature envelope.
- Services: search, read, publish, change, withdraw; the services of a catalog entry (the
  DCAT export's data-service IRI); a grant's quota and rate limit.

Each published service also appears in the OpenAPI document under its own path, with the
entry's items (see :func:`openapi_paths`).
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.catalog.models import CatalogEntry, DataType, SubjectKeyKind
from govshare.dataservices import gateway as gw
from govshare.dataservices import service
from govshare.dataservices.models import CallMethod, DataService, GrantLimit, ServiceStatus
from govshare.db import get_engine, session_factory
from govshare.deps import DbSession, require
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.sharing import grants as grants_service
from govshare.sharing.models import Grant

router = APIRouter(tags=["dataservices"])

Reader = Annotated[Principal, Depends(require(Perm.SERVICE_READ))]
Publisher = Annotated[Principal, Depends(require(Perm.SERVICE_PUBLISH))]
LimitSetter = Annotated[Principal, Depends(require(Perm.SERVICE_LIMIT))]

_CALL_HEADERS = [
    {
        "name": "X-Govshare-User",
        "in": "header",
        "required": True,
        "description": "经办人（调用系统中发起本次调用的人员），UTF-8 百分号编码",
        "schema": {"type": "string"},
    },
    {
        "name": "signed",
        "in": "query",
        "required": False,
        "description": "为 1 时返回平台 SM2 签名的文件信封（与纸质原件具有同等效力）",
        "schema": {"type": "integer", "enum": [0, 1]},
    },
]

_QUERY_BODY = {
    "type": "object",
    "description": "key（一个主体）、keys（最多 100 个主体）或 filters（已授权信息项的等值条件，"
    "最多返回 100 条）三者之一；items 可限定返回的信息项（默认全部已授权信息项）",
    "properties": {
        "key": {"type": "string", "description": "身份证号码或统一社会信用代码"},
        "keys": {"type": "array", "items": {"type": "string"}, "maxItems": 100},
        "filters": {"type": "object", "additionalProperties": True},
        "items": {"type": "array", "items": {"type": "string"}},
    },
}
_VERIFY_BODY = {
    "type": "object",
    "required": ["key", "claims"],
    "properties": {
        "key": {"type": "string", "description": "身份证号码或统一社会信用代码"},
        "claims": {
            "type": "object",
            "description": "{信息项字段名: 申报值}；只回答一致、不一致或无记录，不返回存储值",
            "additionalProperties": True,
        },
    },
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "应用凭证无效、已过期或已吊销"},
    403: {"description": "无共享授权、授权未生效或已暂停/终止/到期、信息项或方式不在授权内"},
    404: {"description": "共享服务不存在"},
    410: {"description": "共享服务已停用"},
    422: {"description": "请求格式有误"},
    429: {"description": "超出调用频率或日限额（Retry-After 头给出可重试的秒数）"},
    503: {"description": "使用台账暂时无法写入：未返回数据"},
}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "parameters": _CALL_HEADERS,
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
    }


@router.post(
    "/dataservices/{service_id}/query",
    summary="数据查询：按主体标识查询已授权信息项",
    responses=_ERRORS,
    openapi_extra=_body(_QUERY_BODY),
)
async def query(service_id: int, request: Request) -> Response:
    """按身份证号码或统一社会信用代码（或一小组等值条件）查询，响应只含已授权的信息项，
    meta 中给出授权编号、用途和审批人。每次调用写入使用台账和审计日志后才返回。"""
    return await gw.gateway(get_engine()).handle(request, service_id, CallMethod.QUERY)


@router.post(
    "/dataservices/{service_id}/verify",
    summary="数据核验：比对申报值，只回答一致 / 不一致 / 无记录",
    responses=_ERRORS,
    openapi_extra=_body(_VERIFY_BODY),
)
async def verify(service_id: int, request: Request) -> Response:
    """提交主体标识和申报值，逐项回答 match（一致）、no_match（不一致）或 no_record（无记录），
    从不返回存储的值。核验是核对申报信息的默认方式。"""
    return await gw.gateway(get_engine()).handle(request, service_id, CallMethod.VERIFICATION)


# ---------------------------------------------------------------- services


class ServiceIn(BaseModel):
    entry_id: int
    name: str = Field(max_length=128)
    methods: list[Literal["query", "verification", "batch"]]
    description: str = ""
    scenario: str = ""
    guide: str = ""
    rate_per_minute: int | None = None
    daily_quota: int | None = None


class ServiceChange(BaseModel):
    name: str = Field(max_length=128)
    methods: list[Literal["query", "verification", "batch"]]
    description: str = ""
    scenario: str = ""
    guide: str = ""
    rate_per_minute: int | None = None
    daily_quota: int | None = None


class WithdrawIn(BaseModel):
    reason: str


class LimitsIn(BaseModel):
    rate_per_minute: int | None = None
    daily_quota: int | None = None


class ItemOut(BaseModel):
    field: str
    name: str
    data_type: str
    share_type: str | None = None


class ServiceOut(BaseModel):
    id: int
    name: str
    status: str
    status_label: str
    entry_id: int
    entry_code: str
    entry_name: str
    provider_department_id: int
    provider: str
    subject_category: str
    subject_category_label: str
    key_field: str
    methods: list[str]
    description: str
    scenario: str
    guide: str
    rate_per_minute: int | None
    daily_quota: int | None
    calls_30d: int | None = None
    items: list[ItemOut]
    endpoints: dict[str, str]
    published_at: str
    published_by: str
    withdrawn_reason: str | None


def service_out(db: Session, svc: DataService, calls_30d: int | None = None) -> ServiceOut:
    entry, version = service.entry_and_version(db, svc)
    endpoints = {}
    base = f"/api/v1/dataservices/{svc.id}"
    if "query" in svc.methods:
        endpoints["query"] = base + "/query"
    if "verification" in svc.methods:
        endpoints["verification"] = base + "/verify"
    if "batch" in svc.methods:
        endpoints["batch"] = base + "/exports"
    return ServiceOut(
        id=svc.id,
        name=svc.name,
        status=svc.status,
        status_label=ServiceStatus(svc.status).label,
        entry_id=entry.id,
        entry_code=entry.code,
        entry_name=version.name,
        provider_department_id=svc.provider_department_id,
        provider=entry.department.name,
        subject_category=svc.subject_category,
        subject_category_label=SubjectKeyKind(svc.subject_category).label,
        key_field=version.subject_key_item,
        methods=list(svc.methods),
        description=svc.description,
        scenario=svc.scenario,
        guide=svc.guide,
        rate_per_minute=svc.rate_per_minute,
        daily_quota=svc.daily_quota,
        calls_30d=calls_30d,
        items=[
            ItemOut(
                field=it["field"],
                name=it["name"],
                data_type=it["data_type"],
                share_type=it.get("share_type"),
            )
            for it in version.data_items
        ],
        endpoints=endpoints,
        published_at=svc.published_at.isoformat(),
        published_by=svc.published_by,
        withdrawn_reason=svc.withdrawn_reason,
    )


@router.get("/dataservices", response_model=list[ServiceOut])
def list_services(
    db: DbSession,
    principal: Reader,
    q: str = "",
    scenario: str = "",
    subject_category: Literal["", "person", "organization", "other"] = "",
    method: Literal["", "query", "verification", "batch"] = "",
    order: Literal["calls", "new"] = "calls",
    include_withdrawn: bool = False,
) -> list[ServiceOut]:
    """检索共享服务：关键词、应用场景、对象分类、服务方式；按近 30 日调用频次或发布时间排序。"""
    rows = service.search(
        db,
        principal,
        q=q,
        scenario=scenario,
        subject_category=subject_category,
        method=method,
        include_withdrawn=include_withdrawn,
        order=order,
    )
    return [service_out(db, r.service, r.calls_30d) for r in rows]


@router.post("/dataservices", response_model=ServiceOut, status_code=201)
def publish_service(db: DbSession, principal: Publisher, data: ServiceIn) -> ServiceOut:
    """发布共享服务（技术服务单位）：为已发布、已汇聚数据的目录资源提供接口。"""
    svc = service.publish(db, principal, **data.model_dump())
    gw.forget_all()
    return service_out(db, svc)


@router.get("/dataservices/entries/{entry_id}", response_model=list[ServiceOut])
def services_of_entry(db: DbSession, principal: Reader, entry_id: int) -> list[ServiceOut]:
    """一个目录资源的共享服务（DCAT 导出中 dcat:DataService 的地址）。"""
    entry = db.get(CatalogEntry, entry_id) if 0 < entry_id < 2**31 else None
    if entry is None:
        from govshare.errors import NotFound

        raise NotFound("目录资源不存在")
    return [service_out(db, s) for s in service.services_of_entry(db, entry.id)]


@router.get("/dataservices/{service_id}", response_model=ServiceOut)
def get_service(db: DbSession, principal: Reader, service_id: int) -> ServiceOut:
    return service_out(db, service.get_service(db, principal, service_id))


@router.put("/dataservices/{service_id}", response_model=ServiceOut)
def change_service(
    db: DbSession, principal: Publisher, service_id: int, data: ServiceChange
) -> ServiceOut:
    svc = service.get_service(db, principal, service_id)
    service.update(db, principal, svc, **data.model_dump())
    gw.forget_all()
    return service_out(db, svc)


@router.post("/dataservices/{service_id}/withdraw", response_model=ServiceOut)
def withdraw_service(
    db: DbSession, principal: Publisher, service_id: int, data: WithdrawIn
) -> ServiceOut:
    """停用共享服务（须说明原因，调用方将看到该原因）。"""
    svc = service.get_service(db, principal, service_id)
    service.withdraw(db, principal, svc, data.reason)
    gw.forget_all()
    return service_out(db, svc)


class LimitsOut(BaseModel):
    grant_id: int
    rate_per_minute: int
    daily_quota: int
    source: str
    own_rate_per_minute: int | None
    own_daily_quota: int | None
    calls_today: int


def limits_out(db: Session, grant_id: int) -> LimitsOut:
    from govshare.config import get_settings

    settings = get_settings()
    row = db.get(GrantLimit, grant_id)
    grant = db.get(Grant, grant_id)
    assert grant is not None
    svc = db.scalar(
        select(DataService)
        .where(
            DataService.entry_id == grant.entry_id,
            DataService.status == ServiceStatus.PUBLISHED.value,
        )
        .order_by(DataService.id)
        .limit(1)
    )
    lim = service.effective_limits(
        row, svc, (settings.dataservice_rate_per_minute, settings.dataservice_daily_quota)
    )
    return LimitsOut(
        grant_id=grant_id,
        rate_per_minute=lim.rate_per_minute,
        daily_quota=lim.daily_quota,
        source=lim.source,
        own_rate_per_minute=row.rate_per_minute if row else None,
        own_daily_quota=row.daily_quota if row else None,
        calls_today=service.calls_today(db, grant_id),
    )


@router.get("/sharing/grants/{grant_id}/limits", response_model=LimitsOut)
def get_limits(db: DbSession, principal: Reader, grant_id: int) -> LimitsOut:
    """共享授权的调用限额（每分钟次数、每日次数）及今日已调用次数。"""
    grants_service.get_grant(db, principal, grant_id)
    return limits_out(db, grant_id)


@router.put("/sharing/grants/{grant_id}/limits", response_model=LimitsOut)
def set_limits(db: DbSession, principal: LimitSetter, grant_id: int, data: LimitsIn) -> LimitsOut:
    """设置共享授权自己的调用限额（留空则用服务或平台的默认值）。"""
    grant = db.get(Grant, grant_id) if 0 < grant_id < 2**31 else None
    if grant is None:
        from govshare.errors import NotFound

        raise NotFound("共享授权不存在")
    service.set_grant_limits(
        db, principal, grant, rate_per_minute=data.rate_per_minute, daily_quota=data.daily_quota
    )
    gw.forget_all()
    return limits_out(db, grant_id)


# ---------------------------------------------------------------- OpenAPI per service

_EXAMPLES = {
    DataType.ID_NUMBER.value: "11010519491231002X",
    DataType.CREDIT_CODE.value: "91350100M000100Y43",
}
_JSON_TYPES = {
    DataType.INTEGER.value: {"type": "integer"},
    DataType.DECIMAL.value: {"type": "string", "format": "decimal"},
    DataType.DATE.value: {"type": "string", "format": "date"},
    DataType.DATETIME.value: {"type": "string", "format": "date-time"},
    DataType.BOOLEAN.value: {"type": "boolean"},
}


def openapi_paths(db: Session) -> dict[str, Any]:
    """One path per method of every published service, with the entry's items."""
    paths: dict[str, Any] = {}
    services = db.scalars(
        select(DataService)
        .where(DataService.status == ServiceStatus.PUBLISHED.value)
        .order_by(DataService.id)
    )
    for svc in services:
        entry, version = service.entry_and_version(db, svc)
        props = {
            it["field"]: {
                **_JSON_TYPES.get(it["data_type"], {"type": "string"}),
                "title": it["name"],
            }
            for it in version.data_items
        }
        key_item = next(
            (it for it in version.data_items if it["field"] == version.subject_key_item), None
        )
        example_key = _EXAMPLES.get(key_item["data_type"] if key_item else "", "...")
        tag = f"服务 {svc.id}：{svc.name}"
        info = f"{entry.department.name} 提供，目录资源 {entry.code}《{version.name}》。{svc.guide}"
        if "query" in svc.methods:
            paths[f"/api/v1/dataservices/{svc.id}/query"] = {
                "post": {
                    "tags": ["dataservices"],
                    "summary": f"{tag}（数据查询）",
                    "description": info,
                    "operationId": f"service_{svc.id}_query",
                    **copy.deepcopy(_body(_QUERY_BODY)),
                    "responses": {
                        "200": {
                            "description": "已授权信息项",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "records": {
                                                "type": "array",
                                                "items": {"type": "object", "properties": props},
                                            },
                                            "count": {"type": "integer"},
                                            "meta": {"type": "object"},
                                        },
                                    },
                                    "example": {"key": example_key},
                                }
                            },
                        },
                        **{str(k): v for k, v in _ERRORS.items()},
                    },
                }
            }
            body = paths[f"/api/v1/dataservices/{svc.id}/query"]["post"]["requestBody"]
            body["content"]["application/json"]["example"] = {"key": example_key}
        if "verification" in svc.methods:
            claim_example = {
                it["field"]: "..."
                for it in version.data_items[:3]
                if it["field"] != version.subject_key_item
            }
            op = {
                "tags": ["dataservices"],
                "summary": f"{tag}（数据核验）",
                "description": info,
                "operationId": f"service_{svc.id}_verify",
                **copy.deepcopy(_body(_VERIFY_BODY)),
                "responses": {
                    "200": {"description": "逐项核验结果：match / no_match / no_record"},
                    **{str(k): v for k, v in _ERRORS.items()},
                },
            }
            op["requestBody"]["content"]["application/json"]["example"] = {
                "key": example_key,
                "claims": claim_example,
            }
            op["requestBody"]["content"]["application/json"]["schema"]["properties"]["claims"][
                "properties"
            ] = props
            paths[f"/api/v1/dataservices/{svc.id}/verify"] = {"post": op}
    return paths


def install_openapi(app: FastAPI) -> None:
    """Add every published service's own paths to the OpenAPI document (read when asked:
    a service published a moment ago is in the next document)."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        try:
            with session_factory()() as db:
                schema["paths"].update(openapi_paths(db))
        except Exception:  # noqa: S110 - a database not yet migrated: the static document
            pass
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
