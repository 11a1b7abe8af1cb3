"""Data-service pages: the service catalog, each service's page with its interface
specification and calling examples, the operator's publish / edit / withdraw forms, and a
grant's quota and rate-limit form.

Services are found by call frequency, business scenario and subject category (seed 002
annex: 按照接口使用频次、接口使用业务场景或对象分类进行检索); the technical service unit
publishes a service with its interface specification and calling guide (seed 003 art. 13).
The rules (who may publish, which entries qualify, limits) are those of
:mod:`govshare.dataservices.service`; after every change this worker's gateway forgets what
it cached (:func:`govshare.dataservices.gateway.forget_all`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from govshare.catalog.models import (
    CatalogEntry,
    CatalogVersion,
    DataType,
    EntryStatus,
    ShareType,
    SubjectKeyKind,
)
from govshare.config import get_settings
from govshare.dataservices import gateway as gw
from govshare.dataservices import service
from govshare.dataservices.api import LimitsOut, ServiceOut, limits_out, service_out
from govshare.dataservices.models import (
    CallMethod,
    CallOutcome,
    DataService,
    ServiceStatus,
    UsageEntry,
)
from govshare.db import china_today
from govshare.deps import DbSession, require
from govshare.errors import DomainError, NotFound
from govshare.ingestion.models import DataTable
from govshare.orgs.models import Department
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.sharing import grants as grants_service
from govshare.sharing.models import Grant, GrantStatus
from govshare.web import FormDict, FormMulti, optional_int, redirect, render

page_router = APIRouter(prefix="/dataservices")

Reader = Annotated[Principal, Depends(require(Perm.SERVICE_READ))]
Publisher = Annotated[Principal, Depends(require(Perm.SERVICE_PUBLISH))]
LimitSetter = Annotated[Principal, Depends(require(Perm.SERVICE_LIMIT))]

#: verification and query before batch exchange (seed 003 art. 38)
METHOD_ORDER = (CallMethod.VERIFICATION, CallMethod.QUERY, CallMethod.BATCH)
METHOD_LABELS = {m.value: m.label for m in CallMethod}
SUBJECT_CATEGORIES = {
    "person": "自然人",
    "organization": "法人和其他组织",
    "other": "其他",
}
SHARE_TYPE_LABELS = {
    ShareType.UNCONDITIONAL.value: "无条件共享",
    ShareType.CONDITIONAL.value: "有条件共享",
    ShareType.NOT_SHARED.value: "不予共享",
}
ORDERS = {"calls": "调用频次", "new": "最新发布"}
LIMIT_SOURCES = {"grant": "授权", "service": "服务", "platform": "平台默认"}
FORM_FIELDS = ("name", "description", "scenario", "guide", "rate_per_minute", "daily_quota")

#: the person at the calling system in the examples (经办人), and how it is sent
EXAMPLE_USER = "张三"
EXAMPLE_KEYS = {
    DataType.ID_NUMBER.value: "11010519491231002X",
    DataType.CREDIT_CODE.value: "91350100M000100Y43",
}
#: every error a call may answer, with its code(s) and meaning (seed 003 art. 13: the
#: interface specification the consumer builds against)
CALL_ERRORS: list[tuple[int, str, str]] = [
    (401, "not_authenticated", "未带应用凭证，或凭证无效、已过期、已吊销"),
    (
        403,
        "permission_denied",
        "本部门没有该资源的共享授权；授权未生效、已到期、已暂停或已终止；"
        "所请求的信息项或共享方式不在授权范围内（应答给出具体原因）",
    ),
    (404, "not_found", "共享服务不存在"),
    (410, "service_withdrawn", "共享服务已停用（应答给出停用原因）"),
    (
        422,
        "validation_failed",
        "请求格式有误：请求体不是 JSON 对象、缺少 key/claims、信息项不存在，"
        "或未在 X-Govshare-User 中注明经办人",
    ),
    (
        429,
        "rate_limited / quota_exceeded",
        "超出共享授权的每分钟调用次数或每日调用限额；响应头 Retry-After 给出可重试的秒数",
    ),
    (
        503,
        "ledger_unavailable / signing_unavailable",
        "使用台账暂时无法写入（本次未返回数据，请稍后重试），或平台签名密钥未配置（?signed=1 时）",
    ),
]
NOTICE = "共享数据仅限用于授权的用途和场景，不得挪作他用或向第三方提供"


# ---------------------------------------------------------------- helpers


def _share_type(item: dict[str, Any], version: CatalogVersion) -> str:
    return str(item.get("share_type") or version.share_type)


def _sample(data_type: str, name: str, claim: bool = False) -> Any:
    """An example value of an item of ``data_type`` (a placeholder for free text)."""
    if data_type in EXAMPLE_KEYS:
        return EXAMPLE_KEYS[data_type]
    samples: dict[str, Any] = {
        DataType.INTEGER.value: 1,
        DataType.DECIMAL.value: "100.00",
        DataType.DATE.value: "1990-01-01",
        DataType.DATETIME.value: "2026-01-01T08:00:00+08:00",
        DataType.BOOLEAN.value: True,
        DataType.DIVISION_CODE.value: "411300",
        DataType.PHONE.value: "13800000000",
    }
    if data_type in samples:
        return samples[data_type]
    return f"<申报的{name}>" if claim else f"<{name}>"


def _sh(text: str) -> str:
    """``text`` in single quotes for a POSIX shell."""
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _curl(
    url: str,
    *,
    body: dict[str, Any] | None = None,
    post: bool = True,
    out: str = "",
    url_quote: str = "'",
) -> str:
    shown_url = _sh(url) if url_quote == "'" else f'"{url}"'
    lines = [f"curl -sS{' -X POST' if post else ''} {shown_url}"]
    lines.append('  -H "Authorization: Bearer $GOVSHARE_TOKEN"')
    lines.append(f"  -H 'X-Govshare-User: {quote(EXAMPLE_USER)}'")
    if body is not None:
        lines.append("  -H 'Content-Type: application/json'")
        lines.append("  -d " + _sh(json.dumps(body, ensure_ascii=False)))
    if out:
        lines.append(f"  -o {out}")
    return " \\\n".join(lines)


def _pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@dataclass(frozen=True)
class ItemRow:
    field: str
    name: str
    data_type: str
    type_label: str
    share_type: str
    share_label: str
    inherited: bool
    is_key: bool


def _items(version: CatalogVersion) -> list[ItemRow]:
    rows = []
    for it in version.data_items:
        share = _share_type(it, version)
        try:
            type_label = DataType(it["data_type"]).label
        except ValueError:
            type_label = it["data_type"]
        rows.append(
            ItemRow(
                field=it["field"],
                name=it["name"],
                data_type=it["data_type"],
                type_label=type_label,
                share_type=share,
                share_label=SHARE_TYPE_LABELS.get(share, share),
                inherited=not it.get("share_type"),
                is_key=it["field"] == version.subject_key_item,
            )
        )
    return rows


# ---------------------------------------------------------------- the interface spec


@dataclass(frozen=True)
class FieldDoc:
    name: str
    type: str
    required: str
    description: str


@dataclass
class MethodSpec:
    method: str
    label: str
    http: str
    path: str
    url: str
    summary: str
    request: list[FieldDoc]
    response: list[FieldDoc]
    curl: str
    request_example: str
    response_example: str
    signed_curl: str = ""
    docs_anchor: str = ""
    steps: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class ExampleGrant:
    """What the examples are built from: the viewer's grant in force, or the entry."""

    grant: Grant | None
    items: list[str]


def _example_grant(
    version: CatalogVersion, my_grants: list[Grant], method: str, today: date
) -> ExampleGrant:
    shareable = [
        it["field"] for it in version.data_items if _share_type(it, version) != "not_shared"
    ]
    for g in my_grants:
        if g.in_force(today) and method in g.methods:
            return ExampleGrant(g, [f for f in shareable if f in g.items])
    return ExampleGrant(None, shareable)


def _meta_example(out: ServiceOut, ex: ExampleGrant, names: dict[str, str]) -> dict[str, Any]:
    g = ex.grant
    return {
        "call_id": "<调用编号>",
        "service_id": out.id,
        "service": out.name,
        "entry_code": out.entry_code,
        "provider": out.provider,
        "grant_id": g.id if g else "<共享授权编号>",
        "purpose": g.purpose if g else "<授权的使用用途>",
        "scenario": g.scenario if g else "<授权的应用场景>",
        "conditions": g.conditions if g else "<授权附带的使用条件>",
        "approved_by": g.approved_by if g else "<审批人>",
        "items": ex.items,
        "item_names": {f: names.get(f, f) for f in ex.items},
        "delivered_at": "<交付时间，UTC>",
        "notice": NOTICE,
    }


_CALL_RESPONSE_META = FieldDoc(
    "meta",
    "object",
    "",
    "调用编号 call_id、服务与资源、提供部门、共享授权编号 grant_id、用途 purpose、"
    "应用场景 scenario、使用条件 conditions、审批人 approved_by、交付的信息项 items 及其名称 "
    "item_names、交付时间 delivered_at（UTC）和使用须知 notice",
)


def _specs(
    request: Request, out: ServiceOut, version: CatalogVersion, my_grants: list[Grant]
) -> list[MethodSpec]:
    base = _base_url(request)
    today = china_today()
    names = {it["field"]: it["name"] for it in version.data_items}
    types = {it["field"]: it["data_type"] for it in version.data_items}
    key_field = version.subject_key_item
    key_type = types.get(key_field, "")
    key_name = names.get(key_field, key_field)
    key = _sample(key_type, key_name)
    if not isinstance(key, str):
        key = str(key)
    key_doc = (
        "身份证号码（18 位）"
        if out.subject_category == SubjectKeyKind.PERSON.value
        else (
            "统一社会信用代码（18 位）"
            if out.subject_category == SubjectKeyKind.ORGANIZATION.value
            else f"主体标识：{key_name}（{key_field}）"
        )
    )
    specs: list[MethodSpec] = []
    for method in METHOD_ORDER:
        if method.value not in out.methods:
            continue
        ex = _example_grant(version, my_grants, method.value, today)
        if method is CallMethod.VERIFICATION:
            path = f"/api/v1/dataservices/{out.id}/verify"
            claimable = [f for f in ex.items if f != key_field][:2]
            body = {
                "key": key,
                "claims": {f: _sample(types[f], names[f], claim=True) for f in claimable},
            }
            results = dict(zip(claimable, ("match", "no_match"), strict=False))
            labels = {"match": "一致", "no_match": "不一致"}
            answer = {
                "subject_found": True,
                "results": results,
                "labels": {f: labels[r] for f, r in results.items()},
                "meta": _meta_example(out, ExampleGrant(ex.grant, claimable), names),
            }
            specs.append(
                MethodSpec(
                    method=method.value,
                    label=method.label,
                    http="POST",
                    path=path,
                    url=base + path,
                    summary="提交主体标识和申报值，逐项回答一致（match）、不一致（no_match）"
                    "或无记录（no_record），从不返回存储的值。核对申报信息请优先使用核验。",
                    request=[
                        FieldDoc("key", "string", "必填", key_doc),
                        FieldDoc(
                            "claims",
                            "object",
                            "必填",
                            "{信息项字段名: 申报值}，字段须在共享授权内；按信息项的类型比较"
                            "（日期、数值、证件号码大小写等）",
                        ),
                    ],
                    response=[
                        FieldDoc("subject_found", "boolean", "", "是否有该主体的记录"),
                        FieldDoc(
                            "results",
                            "object",
                            "",
                            "{字段名: match | no_match | no_record}",
                        ),
                        FieldDoc("labels", "object", "", "{字段名: 一致 | 不一致 | 无记录}"),
                        _CALL_RESPONSE_META,
                    ],
                    curl=_curl(base + path, body=body),
                    request_example=_pretty(body),
                    response_example=_pretty(answer),
                    signed_curl=_curl(base + path + "?signed=1", body=body, out="answer.json"),
                    docs_anchor=f"/docs#/dataservices/service_{out.id}_verify",
                )
            )
        elif method is CallMethod.QUERY:
            path = f"/api/v1/dataservices/{out.id}/query"
            body = {"key": key}
            record = {f: _sample(types[f], names[f]) for f in ex.items}
            if key_field in record:
                record[key_field] = key
            answer = {"records": [record], "count": 1, "meta": _meta_example(out, ex, names)}
            specs.append(
                MethodSpec(
                    method=method.value,
                    label=method.label,
                    http="POST",
                    path=path,
                    url=base + path,
                    summary="按主体标识查询（一个 key 或最多 100 个 keys），或按已授权信息项的"
                    "等值条件 filters 查询（最多返回 100 条）；应答只含共享授权内的信息项，"
                    "meta 给出授权编号、用途和审批人。",
                    request=[
                        FieldDoc("key", "string", "三选一", key_doc),
                        FieldDoc("keys", "string[]", "三选一", "多个主体标识，最多 100 个"),
                        FieldDoc(
                            "filters",
                            "object",
                            "三选一",
                            "{字段名: 值} 等值条件，字段须在共享授权内，最多返回 100 条",
                        ),
                        FieldDoc(
                            "items",
                            "string[]",
                            "可选",
                            "只返回这些信息项（字段名）；默认返回全部已授权信息项",
                        ),
                    ],
                    response=[
                        FieldDoc(
                            "records",
                            "object[]",
                            "",
                            "每个主体一条记录：{字段名: 值}，只含已授权信息项；查无记录时为空列表",
                        ),
                        FieldDoc("count", "integer", "", "记录条数"),
                        _CALL_RESPONSE_META,
                    ],
                    curl=_curl(base + path, body=body),
                    request_example=_pretty(body),
                    response_example=_pretty(answer),
                    signed_curl=_curl(base + path + "?signed=1", body=body, out="answer.json"),
                    docs_anchor=f"/docs#/dataservices/service_{out.id}_query",
                )
            )
        else:
            path = f"/api/v1/dataservices/{out.id}/exports"
            body = {"format": "csv"}
            job = base + "/api/v1/dataservices/exports/$JOB_ID"
            steps = [
                (
                    '1. 提交导出任务（全量；增量交换时加 "since": "YYYY-MM-DD"），'
                    "应答 202 及任务信息",
                    _curl(base + path, body=body),
                ),
                (
                    "2. 查询任务，直至 status 为 done（已完成）；"
                    "应答给出 rows、size、sm3 和 file_name",
                    "JOB_ID=<上一步应答中的 id>\n" + _curl(job, post=False, url_quote='"'),
                ),
                (
                    "3. 下载数据文件",
                    "FILE=<任务应答中的 file_name>\n"
                    + _curl(job + "/download", post=False, out='"$FILE"', url_quote='"'),
                ),
                (
                    "4. 下载签名清单（行数、大小、SM3 摘要和平台 SM2 签名），放在数据文件旁并验证",
                    _curl(
                        job + "/manifest",
                        post=False,
                        out='"$FILE.manifest.json"',
                        url_quote='"',
                    )
                    + '\ngovshare verify-signature "$FILE"',
                ),
            ]
            specs.append(
                MethodSpec(
                    method=method.value,
                    label=method.label,
                    http="POST",
                    path=path,
                    url=base + path,
                    summary="后台生成共享授权内信息项的数据文件（整个数据集，或某日以来变更的"
                    "记录，不含已删除的记录），完成后下载 CSV 或 XLSX 文件及其签名清单。"
                    "能以查询、核验满足需要的，不采用批量交换。",
                    request=[
                        FieldDoc("format", "string", "可选", "csv（默认，UTF-8 带 BOM）或 xlsx"),
                        FieldDoc(
                            "since",
                            "string (date)",
                            "可选",
                            "YYYY-MM-DD：只导出最后更新时间在该日（北京时间）或之后的记录"
                            "（增量交换）；不填为全量",
                        ),
                        FieldDoc(
                            "items",
                            "string[]",
                            "可选",
                            "导出的信息项（字段名），须在共享授权内；默认全部已授权信息项",
                        ),
                    ],
                    response=[
                        FieldDoc("id", "integer", "", "任务编号"),
                        FieldDoc(
                            "status",
                            "string",
                            "",
                            "queued 排队中 / running 生成中 / done 已完成 / failed 失败"
                            "（status_label 为中文）",
                        ),
                        FieldDoc(
                            "rows, size, sm3",
                            "integer, integer, string",
                            "",
                            "完成后：导出的记录数、文件字节数和文件的 SM3 摘要",
                        ),
                        FieldDoc("file_name", "string", "", "完成后：数据文件名"),
                        FieldDoc(
                            "grant_id, purpose, items",
                            "integer, string, object[]",
                            "",
                            "依据的共享授权、用途和导出的信息项",
                        ),
                        FieldDoc(
                            "links",
                            "object",
                            "",
                            "self（任务）；完成后 download（数据文件）和 manifest（签名清单："
                            "签名信封，document 含 file_name、size、rows、sm3）",
                        ),
                    ],
                    curl=steps[0][1],
                    request_example=_pretty(body),
                    response_example="",
                    steps=steps,
                )
            )
    return specs


# ---------------------------------------------------------------- usage and grants


@dataclass(frozen=True)
class Usage:
    """Calls of the last 30 days in the usage ledger."""

    since: date
    calls: int  # answered calls (data or 无记录), the figure the catalog sorts by
    by_method: dict[str, int]
    refused: int
    limited: int
    error: int
    consumers: int


def _usage(db: Session, service_id: int) -> Usage:
    since = china_today() - timedelta(days=30)
    rows = db.execute(
        select(UsageEntry.method, UsageEntry.outcome, func.count())
        .where(UsageEntry.service_id == service_id, UsageEntry.day > since)
        .group_by(UsageEntry.method, UsageEntry.outcome)
    ).all()
    answered = (CallOutcome.OK.value, CallOutcome.NOT_FOUND.value)
    by_method: dict[str, int] = {}
    for method, outcome, n in rows:
        if outcome in answered:
            by_method[method] = by_method.get(method, 0) + int(n)
    consumers = db.scalar(
        select(func.count(func.distinct(UsageEntry.consumer_department_id))).where(
            UsageEntry.service_id == service_id,
            UsageEntry.day > since,
            UsageEntry.outcome.in_(answered),
        )
    )
    return Usage(
        since=since + timedelta(days=1),
        calls=sum(by_method.values()),
        by_method=by_method,
        refused=sum(int(n) for _m, o, n in rows if o == CallOutcome.REFUSED.value),
        limited=sum(int(n) for _m, o, n in rows if o == CallOutcome.LIMITED.value),
        error=sum(int(n) for _m, o, n in rows if o == CallOutcome.ERROR.value),
        consumers=int(consumers or 0),
    )


@dataclass(frozen=True)
class GrantInfo:
    grant: Grant
    consumer: str
    state: str
    state_class: str
    in_force: bool
    limits: LimitsOut


def _grant_state(g: Grant, today: date) -> tuple[str, str]:
    if g.status == GrantStatus.ACTIVE.value:
        if today < g.starts_on:
            return "未生效", "text-bg-secondary"
        if today > g.ends_on:
            return "已到期", "text-bg-secondary"
        return "有效", "text-bg-success"
    if g.status == GrantStatus.SUSPENDED.value:
        return GrantStatus.SUSPENDED.label, "text-bg-warning"
    return GrantStatus(g.status).label, "text-bg-secondary"


def _grant_infos(db: Session, grants: list[Grant]) -> list[GrantInfo]:
    today = china_today()
    ids = {g.consumer_department_id for g in grants}
    names = (
        dict(db.execute(select(Department.id, Department.name).where(Department.id.in_(ids))).all())
        if ids
        else {}
    )
    out = []
    for g in grants:
        state, css = _grant_state(g, today)
        out.append(
            GrantInfo(
                grant=g,
                consumer=names.get(g.consumer_department_id, ""),
                state=state,
                state_class=css,
                in_force=g.in_force(today),
                limits=limits_out(db, g.id),
            )
        )
    return out


def _may_limit(db: Session, principal: Principal, grant: Grant) -> bool:
    """Who may see and set a grant's limits: the operator (技术服务单位), the platform, and
    the data authority over the provider (as :func:`service.set_grant_limits` checks)."""
    if not principal.can(Perm.SERVICE_LIMIT):
        return False
    return (
        principal.kind == "system"
        or principal.role_code == "operator"
        or grants_service.may_supervise(db, principal, grant)
    )


def _supervised_grants(db: Session, principal: Principal, entry_id: int) -> list[Grant]:
    if not principal.can(Perm.SERVICE_LIMIT):
        return []
    grants = db.scalars(
        select(Grant).where(Grant.entry_id == entry_id).order_by(Grant.id.desc()).limit(500)
    )
    return [g for g in grants if _may_limit(db, principal, g)]


# ---------------------------------------------------------------- the catalog


@page_router.get("", response_class=HTMLResponse)
def services_page(
    request: Request,
    db: DbSession,
    principal: Reader,
    q: str = "",
    scenario: str = "",
    subject_category: str = "",
    method: str = "",
    order: str = "calls",
    include_withdrawn: str = "",
) -> Response:
    subject_category = subject_category if subject_category in SUBJECT_CATEGORIES else ""
    method = method if method in METHOD_LABELS else ""
    order = order if order in ORDERS else "calls"
    withdrawn = include_withdrawn in ("1", "on", "true") and principal.can(Perm.SERVICE_PUBLISH)
    rows = service.search(
        db,
        principal,
        q=q[:100],
        scenario=scenario[:100],
        subject_category=subject_category,
        method=method,
        include_withdrawn=withdrawn,
        order=order,
    )
    scenarios = sorted(
        {
            part.strip()
            for s in db.scalars(
                select(DataService.scenario).where(
                    DataService.status == ServiceStatus.PUBLISHED.value
                )
            )
            for part in s.replace("；", ";").replace("、", ";").split(";")
            if part.strip()
        }
    )
    return render(
        request,
        "dataservices/services.html",
        {
            "rows": rows,
            "scenarios": scenarios[:200],
            "query": {
                "q": q,
                "scenario": scenario,
                "subject_category": subject_category,
                "method": method,
                "order": order,
                "include_withdrawn": withdrawn,
            },
            "subject_categories": SUBJECT_CATEGORIES,
            "method_labels": METHOD_LABELS,
            "method_order": [m.value for m in METHOD_ORDER],
            "orders": ORDERS,
            "status_labels": {s.value: s.label for s in ServiceStatus},
        },
        section="ds_services",
    )


# ---------------------------------------------------------------- publish


def _entry_problem(db: Session, entry: CatalogEntry) -> str:
    """Why a service cannot be published for the entry ('' when it can)."""
    version = entry.current_version
    if entry.status != EntryStatus.PUBLISHED.value or version is None:
        return "目录资源尚未发布或已撤销，不能发布共享服务"
    if version.share_type == ShareType.NOT_SHARED.value:
        return "该资源为不予共享类，不能发布共享服务"
    if db.get(DataTable, entry.id) is None:
        return "该资源尚无汇聚数据表，请先汇聚数据再发布服务"
    return ""


@dataclass(frozen=True)
class EntryChoice:
    entry: CatalogEntry
    version: CatalogVersion
    services: list[str]


def _publishable(db: Session) -> list[EntryChoice]:
    """Published entries that are shared (not 不予共享) and have a data table."""
    rows = db.execute(
        select(CatalogEntry, CatalogVersion)
        .join(CatalogVersion, CatalogVersion.id == CatalogEntry.current_version_id)
        .join(DataTable, DataTable.entry_id == CatalogEntry.id)
        .where(
            CatalogEntry.status == EntryStatus.PUBLISHED.value,
            CatalogVersion.share_type != ShareType.NOT_SHARED.value,
        )
        .order_by(CatalogEntry.code)
        .limit(5000)
    ).all()
    existing: dict[int, list[str]] = {}
    for entry_id, name in db.execute(
        select(DataService.entry_id, DataService.name).where(
            DataService.status == ServiceStatus.PUBLISHED.value
        )
    ):
        existing.setdefault(entry_id, []).append(name)
    return [EntryChoice(e, v, existing.get(e.id, [])) for e, v in rows]


def _offered(version: CatalogVersion | None) -> list[CallMethod]:
    methods = set(version.share_methods) if version else set()
    return [m for m in METHOD_ORDER if m.value in methods]


def _form_page(
    request: Request,
    db: Session,
    *,
    entry: CatalogEntry | None,
    svc: DataService | None = None,
    values: dict[str, Any] | None = None,
    error: DomainError | None = None,
    refusal: str = "",
) -> Response:
    version = entry.current_version if entry else None
    if values is None:
        if svc is not None:
            values = {
                "name": svc.name,
                "methods": list(svc.methods),
                "description": svc.description,
                "scenario": svc.scenario,
                "guide": svc.guide,
                "rate_per_minute": svc.rate_per_minute or "",
                "daily_quota": svc.daily_quota or "",
            }
        else:
            offered = _offered(version)
            values = {
                "name": version.name if version else "",
                "methods": [m.value for m in offered if m is not CallMethod.BATCH]
                or [m.value for m in offered],
            }
    problem = refusal or (_entry_problem(db, entry) if entry is not None and svc is None else "")
    settings = get_settings()
    return render(
        request,
        "dataservices/service_form.html",
        {
            "svc": svc,
            "entry": entry,
            "version": version,
            "choices": _publishable(db) if svc is None else [],
            "problem": problem,
            "methods": _offered(version),
            "values": values,
            "error": error.message if error else None,
            "error_field": error.field if error else None,
            "defaults": (settings.dataservice_rate_per_minute, settings.dataservice_daily_quota),
            "subject_categories": SUBJECT_CATEGORIES,
            "share_type_labels": SHARE_TYPE_LABELS,
        },
        status_code=error.status_code if error else 200,
        section="ds_services",
    )


def _entry_or_none(db: Session, entry_id: str) -> CatalogEntry | None:
    entry_id = entry_id.strip()
    if not entry_id.isdigit() or not 0 < int(entry_id) < 2**31:
        return None
    return db.get(CatalogEntry, int(entry_id))


def _form_values(form: dict[str, list[str]]) -> dict[str, Any]:
    values: dict[str, Any] = {k: (form.get(k) or [""])[-1].strip() for k in FORM_FIELDS}
    values["methods"] = [v for v in form.get("methods", []) if v]
    return values


def _limits(values: dict[str, Any]) -> tuple[int | None, int | None]:
    return (
        optional_int(values["rate_per_minute"], "rate_per_minute"),
        optional_int(values["daily_quota"], "daily_quota"),
    )


def _changed() -> None:
    """This worker's gateway re-reads services and grants (others within the cache TTL)."""
    gw.forget_all()


@page_router.get("/new", response_class=HTMLResponse)
def new_service(
    request: Request, db: DbSession, principal: Publisher, entry_id: str = ""
) -> Response:
    entry = _entry_or_none(db, entry_id)
    refusal = "目录资源不存在" if entry_id.strip() and entry is None else ""
    return _form_page(request, db, entry=entry, refusal=refusal)


@page_router.post("/new", response_class=HTMLResponse)
def publish_service(
    request: Request, db: DbSession, principal: Publisher, form: FormMulti
) -> Response:
    values = _form_values(form)
    entry_id = (form.get("entry_id") or [""])[-1]
    entry = _entry_or_none(db, entry_id)
    try:
        if entry is None:
            raise NotFound("请选择要发布服务的目录资源", field="entry_id")
        rate, quota = _limits(values)
        svc = service.publish(
            db,
            principal,
            entry_id=entry.id,
            name=values["name"],
            methods=values["methods"],
            description=values["description"],
            scenario=values["scenario"],
            guide=values["guide"],
            rate_per_minute=rate,
            daily_quota=quota,
        )
    except DomainError as exc:
        db.rollback()
        entry = _entry_or_none(db, entry_id)
        return _form_page(request, db, entry=entry, values=values, error=exc)
    service_id, name = svc.id, svc.name
    db.commit()
    _changed()
    return redirect(f"/dataservices/{service_id}", f"已发布共享服务“{name}”")


# ---------------------------------------------------------------- limits


def _limits_page(
    request: Request,
    db: Session,
    principal: Principal,
    grant: Grant,
    *,
    values: dict[str, Any] | None = None,
    error: DomainError | None = None,
) -> Response:
    entry = db.get(CatalogEntry, grant.entry_id)
    assert entry is not None
    version = entry.current_version
    info = _grant_infos(db, [grant])[0]
    settings = get_settings()
    services = service.services_of_entry(db, entry.id)
    svc = next((s for s in services if s.status == ServiceStatus.PUBLISHED.value), None)
    if values is None:
        values = {
            "rate_per_minute": info.limits.own_rate_per_minute or "",
            "daily_quota": info.limits.own_daily_quota or "",
        }
    return render(
        request,
        "dataservices/limits.html",
        {
            "info": info,
            "grant": grant,
            "entry": entry,
            "version": version,
            "item_names": {
                it["field"]: it["name"] for it in (version.data_items if version else [])
            },
            "services": services,
            "service": svc,
            "defaults": (settings.dataservice_rate_per_minute, settings.dataservice_daily_quota),
            "sources": LIMIT_SOURCES,
            "method_labels": METHOD_LABELS,
            "values": values,
            "error": error.message if error else None,
            "error_field": error.field if error else None,
        },
        status_code=error.status_code if error else 200,
        section="ds_services",
    )


def _limited_grant(db: Session, principal: Principal, grant_id: int) -> Grant:
    grant = db.get(Grant, grant_id) if 0 < grant_id < 2**31 else None
    if grant is None or not _may_limit(db, principal, grant):
        raise NotFound("共享授权不存在")
    return grant


@page_router.get("/grants/{grant_id}/limits", response_class=HTMLResponse)
def grant_limits(
    request: Request, db: DbSession, principal: LimitSetter, grant_id: int
) -> Response:
    grant = _limited_grant(db, principal, grant_id)
    return _limits_page(request, db, principal, grant)


@page_router.post("/grants/{grant_id}/limits", response_class=HTMLResponse)
def set_grant_limits(
    request: Request, db: DbSession, principal: LimitSetter, grant_id: int, form: FormDict
) -> Response:
    grant = _limited_grant(db, principal, grant_id)
    clear = form.get("action") == "clear"
    values: dict[str, Any] = {
        "rate_per_minute": "" if clear else form.get("rate_per_minute", "").strip(),
        "daily_quota": "" if clear else form.get("daily_quota", "").strip(),
    }
    try:
        rate, quota = _limits(values)
        service.set_grant_limits(db, principal, grant, rate_per_minute=rate, daily_quota=quota)
    except DomainError as exc:
        db.rollback()
        grant = _limited_grant(db, principal, grant_id)
        return _limits_page(request, db, principal, grant, values=values, error=exc)
    db.commit()
    _changed()
    if rate is None and quota is None:
        flash = "已清除本授权的调用限额，按服务或平台的默认值执行"
    else:
        flash = "已设置本授权的调用限额"
    return redirect(f"/dataservices/grants/{grant_id}/limits", flash)


# ---------------------------------------------------------------- one service


def _service_page(
    request: Request,
    db: Session,
    principal: Principal,
    svc: DataService,
    *,
    error: DomainError | None = None,
    reason: str = "",
) -> Response:
    entry, version = service.entry_and_version(db, svc)
    usage = _usage(db, svc.id)
    out = service_out(db, svc, usage.calls)
    dept = principal.department_id
    my_grants = grants_service.grants_of(db, dept, entry.id) if dept is not None else []
    today = china_today()
    is_provider = dept is not None and dept == entry.department_id
    shareable = (
        entry.status == EntryStatus.PUBLISHED.value
        and version.share_type != ShareType.NOT_SHARED.value
        and svc.status == ServiceStatus.PUBLISHED.value
    )
    may_apply = (
        principal.can(Perm.SHARE_APPLY)
        and not is_provider
        and shareable
        and not any(g.in_force(today) for g in my_grants)
    )
    return render(
        request,
        "dataservices/service.html",
        {
            "svc": svc,
            "out": out,
            "entry": entry,
            "version": version,
            "items": _items(version),
            "specs": _specs(request, out, version, my_grants),
            "errors": CALL_ERRORS,
            "usage": usage,
            "my_grants": _grant_infos(db, my_grants),
            "supervised": _grant_infos(db, _supervised_grants(db, principal, entry.id)),
            "is_provider": is_provider,
            "may_apply": may_apply,
            "reapply": bool(my_grants),
            "may_publish": principal.can(Perm.SERVICE_PUBLISH),
            "item_names": {it["field"]: it["name"] for it in version.data_items},
            "method_labels": METHOD_LABELS,
            "subject_categories": SUBJECT_CATEGORIES,
            "share_type_labels": SHARE_TYPE_LABELS,
            "sources": LIMIT_SOURCES,
            "example_user": EXAMPLE_USER,
            "example_user_encoded": quote(EXAMPLE_USER),
            "base_url": _base_url(request),
            "error": error.message if error else None,
            "error_field": error.field if error else None,
            "reason": reason,
        },
        status_code=error.status_code if error else 200,
        section="ds_services",
    )


@page_router.get("/{service_id}", response_class=HTMLResponse)
def service_page(request: Request, db: DbSession, principal: Reader, service_id: int) -> Response:
    return _service_page(request, db, principal, service.get_service(db, principal, service_id))


@page_router.get("/{service_id}/edit", response_class=HTMLResponse)
def edit_service(
    request: Request, db: DbSession, principal: Publisher, service_id: int
) -> Response:
    svc = service.get_service(db, principal, service_id)
    entry, _version = service.entry_and_version(db, svc)
    refusal = "服务已停用，不能修改" if svc.status != ServiceStatus.PUBLISHED.value else ""
    return _form_page(request, db, entry=entry, svc=svc, refusal=refusal)


@page_router.post("/{service_id}/edit", response_class=HTMLResponse)
def update_service(
    request: Request, db: DbSession, principal: Publisher, service_id: int, form: FormMulti
) -> Response:
    svc = service.get_service(db, principal, service_id)
    values = _form_values(form)
    try:
        rate, quota = _limits(values)
        service.update(
            db,
            principal,
            svc,
            name=values["name"],
            methods=values["methods"],
            description=values["description"],
            scenario=values["scenario"],
            guide=values["guide"],
            rate_per_minute=rate,
            daily_quota=quota,
        )
    except DomainError as exc:
        db.rollback()
        svc = service.get_service(db, principal, service_id)
        entry, _version = service.entry_and_version(db, svc)
        refusal = "服务已停用，不能修改" if svc.status != ServiceStatus.PUBLISHED.value else ""
        return _form_page(
            request, db, entry=entry, svc=svc, values=values, error=exc, refusal=refusal
        )
    db.commit()
    _changed()
    return redirect(f"/dataservices/{service_id}", "已保存共享服务的修改")


@page_router.post("/{service_id}/withdraw", response_class=HTMLResponse)
def withdraw_service(
    request: Request, db: DbSession, principal: Publisher, service_id: int, form: FormDict
) -> Response:
    svc = service.get_service(db, principal, service_id)
    reason = form.get("reason", "")
    try:
        service.withdraw(db, principal, svc, reason)
    except DomainError as exc:
        db.rollback()
        svc = service.get_service(db, principal, service_id)
        return _service_page(request, db, principal, svc, error=exc, reason=reason)
    db.commit()
    _changed()
    return redirect(f"/dataservices/{service_id}", "已停用共享服务，调用方将看到停用原因")
