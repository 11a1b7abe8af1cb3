"""Web pages of the audit log: the log with filters and a chart, verify, purge, export."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from govshare.audit import repository as repo
from govshare.audit import schemas, service
from govshare.audit.models import AuditEntry
from govshare.db import LOCAL_TZ
from govshare.deps import DbSession, require
from govshare.errors import DomainError, ValidationFailed
from govshare.orgs import repository as orgs_repo
from govshare.permissions import ROLE_LABELS, Perm, Role
from govshare.principal import Principal
from govshare.web import FormDict, parse_form, redirect, render

router = APIRouter()

Reader = Annotated[Principal, Depends(require(Perm.AUDIT_READ))]
Verifier = Annotated[Principal, Depends(require(Perm.AUDIT_VERIFY))]
Purger = Annotated[Principal, Depends(require(Perm.AUDIT_PURGE))]

#: Chinese names of the action codes in use; other codes are shown as they are
ACTION_LABELS: dict[str, str] = {
    "orgs:session:login": "登录",
    "orgs:session:login_failed": "登录失败",
    "orgs:session:logout": "退出",
    "orgs:user:create": "创建用户",
    "orgs:user:update": "修改用户",
    "orgs:user:reset_password": "重置密码",
    "orgs:user:change_password": "修改密码",
    "orgs:jurisdiction:create": "新增行政区",
    "orgs:jurisdiction:update": "修改行政区",
    "orgs:department:create": "新增部门",
    "orgs:department:update": "修改部门",
    "orgs:contact:file": "备案联系人",
    "orgs:contact:end": "撤销备案",
    "orgs:credential:create": "签发凭证",
    "orgs:credential:revoke": "吊销凭证",
    "orgs:access:denied": "越权访问被拒绝",
    "rules:rulebook:assign": "指定规则",
    "rules:calendar:seed": "载入工作日历",
    "rules:calendar:import": "导入工作日历",
    "rules:calendar:edit": "修改工作日历",
    "catalog:entry:create": "编制目录资源",
    "catalog:entry:import": "批量导入目录",
    "catalog:entry:export": "导出目录",
    "catalog:entry:withdraw": "撤销目录资源",
    "catalog:version:update": "修改目录版本",
    "catalog:version:new": "新建目录版本",
    "catalog:version:submit": "提交目录审核",
    "catalog:version:approve": "审核通过目录",
    "catalog:version:return": "退回目录",
    "catalog:version:discard": "放弃目录版本",
    "catalog:change:record": "登记目录变更事项",
    "catalog:change:resolve": "办结目录变更事项",
    "catalog:demand:file": "提出数据需求",
    "catalog:demand:update": "修改数据需求",
    "catalog:demand:close": "关闭数据需求",
    "catalog:demand:match": "对接数据需求",
    "catalog:list:export": "导出责任清单",
    "catalog:report:acknowledge": "确认下级目录报备",
    "ingestion:batch:load": "数据汇聚入库",
    "dataservices:service:publish": "发布共享服务",
    "dataservices:service:update": "修改共享服务",
    "dataservices:service:withdraw": "停用共享服务",
    "dataservices:grant:limit": "设置调用限额",
    "dataservices:call:query": "数据查询调用",
    "dataservices:call:verification": "数据核验调用",
    "dataservices:call:batch": "批量交换调用",
    "dataservices:export:download": "下载批量交换文件",
    "dataservices:ledger:trace": "按主体追溯使用台账",
    "dataservices:ledger:export": "导出使用台账",
    "signing:key:generate": "生成平台签名密钥",
    "audit:log:verify": "校验日志链",
    "audit:log:purge": "清理日志",
    "audit:log:export": "导出日志",
}

#: the first part of an action code: the platform's domains
DOMAIN_LABELS: dict[str, str] = {
    "orgs": "组织与账号",
    "rules": "规则与日历",
    "audit": "审计日志",
    "catalog": "目录",
    "ingestion": "数据汇聚",
    "sharing": "共享",
    "dataservices": "共享服务",
    "signing": "电子签名",
    "corrections": "校核纠错",
    "opendata": "开放",
    "supervision": "监督考核",
}

FILTER_LABELS: dict[str, str] = {
    "actor": "操作人",
    "action": "操作",
    "department_id": "部门",
    "target_type": "对象类型",
    "target_id": "对象标识",
    "since": "起始日期",
    "until": "截止日期",
    "page": "页码",
    "per_page": "每页条数",
    "before": "清理截止日期",
}

CSV_HEADER = (
    *("序号", "时间（北京时间）", "操作人", "角色", "部门", "操作代码", "操作"),
    *("对象类型", "对象标识", "IP", "详情", "前序哈希", "哈希"),
)
#: the most rows one CSV export holds
EXPORT_LIMIT = 10_000
RETENTION_CITATION = "《南阳市政务数据共享管理暂行办法》第三十三条：日志记录保存时间不得少于6个月"


def action_label(code: str) -> str:
    return ACTION_LABELS.get(code, code)


def role_label(code: str) -> str:
    try:
        return ROLE_LABELS[Role(code)]
    except ValueError:
        return code or "—"


@dataclass
class Row:
    entry: AuditEntry
    action_label: str
    department: str
    details: str


def _rows(entries: list[AuditEntry], departments: dict[int, str]) -> list[Row]:
    out = []
    for e in entries:
        try:
            details = json.dumps(json.loads(e.details), ensure_ascii=False, indent=2)
        except ValueError:
            details = e.details
        dept = departments.get(e.department_id, str(e.department_id)) if e.department_id else ""
        out.append(Row(e, action_label(e.action), dept, "" if details == "{}" else details))
    return out


def _parse_filters(params: dict[str, str]) -> schemas.EntryFilter:
    """The filters from the query string; errors in Chinese, naming the field."""
    cleaned = {k: v for k, v in params.items() if v.strip() != ""}
    try:
        return schemas.EntryFilter.model_validate(cleaned)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else ""
        label = FILTER_LABELS.get(name, name)
        kind = err["type"]
        if kind.startswith("date"):
            msg = "应为 YYYY-MM-DD 格式的日期"
        elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
            msg = "超出允许范围"
        elif kind.startswith("int"):
            msg = "应为正整数"
        elif kind == "string_too_long":
            msg = "太长"
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
        raise ValidationFailed(f"{label}：{msg}" if label else msg, field=name or None) from None


def _filter_query(filters: schemas.EntryFilter) -> str:
    args = {k: v for k, v in filters.query_args().items() if v not in (None, "")}
    if filters.per_page != 50:
        args["per_page"] = filters.per_page
    return urlencode(args)


def _chart(db: DbSession) -> dict[str, Any]:
    days = repo.action_counts_by_day(db, 30)
    domains = sorted({d for day in days for d in day.by_domain})
    return {
        "days": [f"{d.day.month}-{d.day.day:02d}" for d in days],
        "series": [
            {
                "name": DOMAIN_LABELS.get(dom, dom),
                "data": [d.by_domain.get(dom, 0) for d in days],
            }
            for dom in domains
        ],
        "total": sum(d.total for d in days),
    }


def _departments(db: DbSession, principal: Principal) -> dict[int, str]:
    return {d.id: d.name for d in orgs_repo.list_departments(db, principal, include_inactive=True)}


def _table_ctx(db: DbSession, principal: Principal, filters: schemas.EntryFilter) -> dict[str, Any]:
    departments = _departments(db, principal)
    entries, has_next = repo.list_entries(
        db, principal, **filters.query_args(), page=filters.page, per_page=filters.per_page
    )
    return {
        "rows": _rows(entries, departments),
        "has_next": has_next,
        "filters": filters,
        "base_url": "/audit?" + _filter_query(filters),
        "departments": departments,
    }


def _page(
    request: Request,
    db: DbSession,
    principal: Principal,
    filters: schemas.EntryFilter | None,
    extra: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    ctx: dict[str, Any] = {}
    if filters is not None:
        ctx.update(_table_ctx(db, principal, filters))
    else:  # the filters did not parse: show the form with the error, no rows
        ctx.update(
            {
                "rows": [],
                "has_next": False,
                "filters": schemas.EntryFilter(),
                "base_url": "/audit?",
                "departments": _departments(db, principal),
            }
        )
    ctx["department_options"] = sorted(ctx["departments"].items(), key=lambda kv: kv[1])
    ctx["chart"] = _chart(db)
    ctx["action_options"] = _action_options()
    ctx["checkpoints"] = repo.list_checkpoints(db, principal)
    ctx["policy"] = service.purge_policy(db) if principal.can(Perm.AUDIT_PURGE) else None
    ctx["retention_citation"] = RETENTION_CITATION
    ctx["export_url"] = "/audit/export.csv?" + (_filter_query(filters) if filters else "")
    ctx.update(extra or {})
    return render(request, "audit/list.html", ctx, status_code=status, section="audit")


def _action_options() -> list[tuple[str, str]]:
    """Prefixes for the action filter: each domain, then each known action."""
    domains = sorted({code.split(":", 1)[0] for code in ACTION_LABELS})
    out = [(f"{d}:", f"{DOMAIN_LABELS.get(d, d)}（全部）") for d in domains]
    out += [(code, f"{label}（{code}）") for code, label in ACTION_LABELS.items()]
    return out


def _wants_table(request: Request) -> bool:
    return request.headers.get("hx-target") == "audit-table" and not request.headers.get(
        "hx-history-restore-request"
    )


@router.get("/audit", response_class=HTMLResponse)
def audit_log(request: Request, db: DbSession, principal: Reader) -> Response:
    try:
        filters = _parse_filters(dict(request.query_params))
    except DomainError as exc:
        if _wants_table(request):
            raise
        return _page(request, db, principal, None, {"error": exc.message}, exc.status_code)
    if _wants_table(request):
        return render(
            request,
            "audit/_table.html",
            _table_ctx(db, principal, filters),
            section="audit",
        )
    return _page(request, db, principal, filters)


def _verify_response(
    request: Request, result: service.VerifyResult | None, status: int = 200
) -> Response:
    if request.headers.get("hx-request") and result is not None:
        return render(request, "audit/_verify_result.html", {"result": result}, section="audit")
    return render(
        request, "audit/verify.html", {"result": result}, status_code=status, section="audit"
    )


@router.get("/audit/verify", response_class=HTMLResponse)
def verify_page(request: Request, _p: Verifier) -> Response:
    return _verify_response(request, None)


@router.post("/audit/verify", response_class=HTMLResponse)
def verify(request: Request, db: DbSession, principal: Verifier) -> Response:
    return _verify_response(request, service.verify_and_record(db, principal))


@router.post("/audit/purge", response_class=HTMLResponse)
def purge(request: Request, db: DbSession, principal: Purger, form: FormDict) -> Response:
    try:
        data = parse_form(schemas.PurgeIn, form)
        cp = service.purge_before_date(db, principal, data.before)
    except DomainError as exc:
        db.rollback()
        message = exc.message.replace("before：", "清理截止日期：")
        return _page(
            request,
            db,
            principal,
            schemas.EntryFilter(),
            {"error": message, "error_field": exc.field, "purge_before": form.get("before", "")},
            exc.status_code,
        )
    if cp is None:
        return redirect("/audit", f"{data.before} 之前没有可以清理的日志")
    return redirect(
        "/audit",
        f"已清理 {data.before} 之前的 {cp.entries_purged} 条日志（至第 {cp.last_seq} 条），"
        "并留下清理检查点",
    )


def _csv_cell(value: object) -> str:
    """Text for a spreadsheet cell: formulas are neutralised (CSV injection)."""
    s = "" if value is None else str(value)
    return "'" + s if s[:1] in ("=", "+", "-", "@", "\t", "\r") else s


@router.get("/audit/export.csv")
def export_csv(request: Request, db: DbSession, principal: Reader) -> Response:
    filters = _parse_filters(dict(request.query_params))
    departments = _departments(db, principal)
    entries, truncated = repo.export_entries(
        db, principal, limit=EXPORT_LIMIT, **filters.query_args()
    )
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_HEADER)
    for e in entries:
        writer.writerow(
            _csv_cell(v)
            for v in (
                e.seq,
                e.occurred_at.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M:%S"),
                e.actor_name,
                role_label(e.role),
                departments.get(e.department_id, "") if e.department_id else "",
                e.action,
                action_label(e.action),
                e.target_type,
                e.target_id,
                e.ip,
                e.details,
                e.prev_hash,
                e.hash,
            )
        )
    service.record_export(
        db, principal, filters.model_dump(mode="json", exclude={"page", "per_page"}), len(entries)
    )
    name = f"audit-{date.today():%Y%m%d}.csv"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if truncated:
        headers["X-Govshare-Truncated"] = str(EXPORT_LIMIT)
    return Response(
        ("\ufeff" + buf.getvalue()).encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers=headers,
    )
