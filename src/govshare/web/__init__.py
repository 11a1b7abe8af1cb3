"""Server-rendered pages: templates, navigation, flash messages, form helpers."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote, unquote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ValidationError

from govshare.db import LOCAL_TZ
from govshare.errors import ValidationFailed
from govshare.permissions import ROLE_LABELS, Perm, Role
from govshare.principal import Principal
from govshare.security import csrf_token_for

PACKAGE = Path(__file__).resolve().parent.parent
TEMPLATE_DIRS = [
    PACKAGE / "web" / "templates",
    PACKAGE / "orgs" / "templates",
    PACKAGE / "rules" / "templates",
    PACKAGE / "audit" / "templates",
    PACKAGE / "catalog" / "templates",
    PACKAGE / "ingestion" / "templates",
    PACKAGE / "notifications" / "templates",
    PACKAGE / "sharing" / "templates",
    PACKAGE / "dataservices" / "templates",
]
STATIC_DIR = PACKAGE / "web" / "static"
FLASH_COOKIE = "govshare_flash"

templates = Jinja2Templates(directory=[str(d) for d in TEMPLATE_DIRS])

#: the CSRF token of the page being rendered; read by the ``csrf()`` macro, which (being
#: imported) does not see the template context
_CSRF_TOKEN: ContextVar[str] = ContextVar("govshare_csrf_token", default="")
templates.env.globals["current_csrf_token"] = _CSRF_TOKEN.get


def _local(ts: datetime | str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if ts is None or ts == "":
        return ""
    if isinstance(ts, str):  # an ISO time kept in JSON (a workflow's history)
        ts = datetime.fromisoformat(ts)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(LOCAL_TZ).strftime(fmt)


def _cn_date(d: date | None) -> str:
    if d is None:
        return ""
    return f"{d.year}年{d.month}月{d.day}日（{'一二三四五六日'[d.weekday()]}）"


templates.env.filters["local"] = _local
templates.env.filters["cn_date"] = _cn_date
templates.env.globals["ROLE_LABELS"] = {r.value: label for r, label in ROLE_LABELS.items()}


@dataclass(frozen=True)
class NavItem:
    label: str
    href: str
    perm: Perm
    section: str
    #: the menu it sits in ("" for a top-level link)
    group: str = ""
    #: not shown to a principal who has this permission (a fuller item covers it)
    hide_if: Perm | None = None


NAV: list[NavItem] = [
    NavItem("工作台", "/", Perm.SELF_READ, "home"),
    NavItem("目录检索", "/catalog", Perm.CATALOG_READ, "catalog", "数据目录"),
    NavItem("本部门目录", "/catalog/work", Perm.CATALOG_EDIT, "catalog_work", "数据目录"),
    NavItem("目录审核", "/catalog/review", Perm.CATALOG_REVIEW, "catalog_review", "数据目录"),
    NavItem("目录变更", "/catalog/changes", Perm.CATALOG_LISTS, "catalog_changes", "数据目录"),
    NavItem("需求清单", "/catalog/demands", Perm.CATALOG_LISTS, "catalog_demands", "数据目录"),
    NavItem(
        "供需对接清单",
        "/catalog/lists/supply-demand",
        Perm.CATALOG_LISTS,
        "catalog_supply",
        "数据目录",
    ),
    NavItem(
        "责任清单", "/catalog/lists/responsibility", Perm.CATALOG_LISTS, "catalog_resp", "数据目录"
    ),
    NavItem("上传数据", "/ingestion/upload", Perm.INGEST_UPLOAD, "ingestion", "数据汇聚"),
    NavItem("汇聚记录", "/ingestion/batches", Perm.INGEST_READ, "ingestion", "数据汇聚"),
    NavItem("数据查询", "/ingestion/records", Perm.RECORD_READ, "ingestion_records", "数据汇聚"),
    NavItem(
        "删除申请", "/ingestion/deletions", Perm.RECORD_READ, "ingestion_deletions", "数据汇聚"
    ),
    NavItem("数据质量", "/ingestion/quality", Perm.QUALITY_READ, "ingestion_quality", "数据汇聚"),
    NavItem("一数一源", "/ingestion/sources", Perm.SOURCE_READ, "ingestion_sources", "数据汇聚"),
    NavItem(
        "共享申请", "/sharing/applications", Perm.SHARE_READ, "sharing_applications", "数据共享"
    ),
    NavItem("共享审核", "/sharing/review", Perm.SHARE_REVIEW, "sharing_review", "数据共享"),
    NavItem("共享授权", "/sharing/grants", Perm.SHARE_READ, "sharing_grants", "数据共享"),
    NavItem("共享争议", "/sharing/disputes", Perm.SHARE_READ, "sharing_disputes", "数据共享"),
    NavItem("共享协议", "/sharing/agreements", Perm.SHARE_READ, "sharing_agreements", "数据共享"),
    NavItem("服务目录", "/dataservices", Perm.SERVICE_READ, "ds_services", "共享服务"),
    NavItem("批量交换", "/dataservices/exports", Perm.SERVICE_CALL, "ds_exports", "共享服务"),
    NavItem("使用台账", "/dataservices/ledger", Perm.LEDGER_READ, "ds_ledger", "共享服务"),
    NavItem("调用统计", "/dataservices/stats", Perm.STATS_READ, "ds_stats", "共享服务"),
    NavItem("签名验证", "/signatures/verify", Perm.SELF_READ, "signatures", "共享服务"),
    NavItem("行政区划", "/orgs/jurisdictions", Perm.JURISDICTION_READ, "jurisdictions", "组织机构"),
    NavItem("部门与联系人", "/orgs/departments", Perm.DEPARTMENT_READ, "departments", "组织机构"),
    NavItem("用户与角色", "/orgs/users", Perm.USER_READ, "users", "组织机构"),
    NavItem("应用凭证", "/orgs/credentials", Perm.CREDENTIAL_READ, "credentials", "组织机构"),
    NavItem("共享规则", "/rules/rulebooks", Perm.RULEBOOK_READ, "rulebooks", "规则与日历"),
    NavItem("工作日历", "/rules/calendar", Perm.CALENDAR_READ, "calendar", "规则与日历"),
    NavItem("审计日志", "/audit", Perm.AUDIT_READ, "audit"),
    NavItem("日志校验", "/audit/verify", Perm.AUDIT_VERIFY, "audit", hide_if=Perm.AUDIT_READ),
]


def nav_for(principal: Principal) -> list[NavItem]:
    return [
        item
        for item in NAV
        if principal.can(item.perm) and not (item.hide_if and principal.can(item.hide_if))
    ]


@dataclass(frozen=True)
class NavGroup:
    label: str
    items: list[NavItem]

    @property
    def sections(self) -> set[str]:
        return {i.section for i in self.items}


def nav_groups(principal: Principal) -> list[NavGroup]:
    """The visible items, grouped into menus in the order they first appear."""
    groups: list[NavGroup] = []
    for item in nav_for(principal):
        if item.group and groups and groups[-1].label == item.group:
            groups[-1].items.append(item)
        elif item.group:
            groups.append(NavGroup(item.group, [item]))
        else:
            groups.append(NavGroup("", [item]))
    return groups


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    section: str = "",
) -> HTMLResponse:
    principal: Principal = getattr(request.state, "principal", None) or Principal.anonymous()
    session_token = request.cookies.get("govshare_session")
    flash = request.cookies.get(FLASH_COOKIE)
    ctx: dict[str, Any] = {
        "principal": principal,
        "nav": nav_groups(principal) if principal.kind == "user" else [],
        "section": section,
        "csrf_token": csrf_token_for(session_token) if session_token else "",
        "flash": unquote(flash) if flash else "",
        "role_label": ROLE_LABELS.get(principal.role, "") if principal.role else "",
        "Perm": Perm,
        "Role": Role,
    }
    # the unread badge in the top bar: one COUNT query on the request's own session, when
    # the request left it on ``request.state`` and its transaction is still open
    db = getattr(request.state, "db", None)
    user_id = principal.id if principal.kind == "user" else None
    if user_id is not None and db is not None and db.in_transaction():
        from govshare.notifications.service import unread_count

        ctx["unread_notifications"] = unread_count(db, user_id)
    ctx.update(context or {})
    _CSRF_TOKEN.set(ctx["csrf_token"])
    response = templates.TemplateResponse(request, template, ctx, status_code=status_code)
    if flash:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def redirect(url: str, flash: str | None = None) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    if flash:
        response.set_cookie(FLASH_COOKIE, quote(flash), path="/", httponly=True, samesite="lax")
    return response


FIELD_LABELS: dict[str, str] = {
    "code": "代码",
    "name": "名称",
    "level": "层级",
    "parent_code": "上级行政区",
    "rulebook": "规则",
    "short_name": "简称",
    "credit_code": "统一社会信用代码",
    "jurisdiction_code": "所属行政区",
    "duties": "主要职责",
    "duty": "备案类别",
    "title": "职务",
    "phone": "办公电话",
    "mobile": "手机号码",
    "email": "电子邮箱",
    "note": "说明",
    "username": "用户名",
    "display_name": "姓名",
    "password": "密码",
    "new_password": "新密码",
    "old_password": "原密码",
    "role": "角色",
    "department_id": "所属部门",
    "system_name": "系统名称",
    "description": "说明",
    "valid_days": "有效期",
    "reason": "原因",
    "days": "工作日数",
    "day": "日期",
    "kind": "类型",
    "received": "收到日期",
    "scope": "范围",
    "jurisdiction": "行政区",
    "file": "文件",
    "year": "年度",
}

M = TypeVar("M", bound=BaseModel)


def pydantic_message(exc: ValidationError) -> tuple[str, str | None]:
    parts = []
    first_field = None
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) if err["loc"] else ""
        first_field = first_field or field
        label = FIELD_LABELS.get(field, field)
        kind = err["type"]
        if kind == "missing":
            msg = "必填"
        elif kind == "string_too_short":
            msg = f"至少 {err['ctx']['min_length']} 个字符"
        elif kind == "string_too_long":
            msg = f"不能超过 {err['ctx']['max_length']} 个字符"
        elif kind == "string_pattern_mismatch":
            msg = "格式不正确"
        elif kind in ("enum", "literal_error"):
            msg = "不是允许的取值"
        elif kind.startswith("int") or kind.startswith("float"):
            msg = "应为数字" if "parsing" in kind else "数值超出允许范围"
        elif kind == "value_error" and field == "email":
            msg = "不是有效的电子邮箱"
        elif kind.startswith("date"):
            msg = "应为 YYYY-MM-DD 格式的日期"
        else:
            msg = "取值无效"
        parts.append(f"{label}：{msg}")
    return "；".join(parts), first_field


def optional_int(value: str, field: str) -> int | None:
    """A form's optional number field: empty is None, anything else must be a number."""
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValidationFailed("应为数字", field=field) from None


def parse_form(model: type[M], data: dict[str, Any]) -> M:
    """Build an input model from form fields; blank optional fields count as absent."""
    cleaned = {k: v for k, v in data.items() if k != "csrf_token" and v != ""}
    try:
        return model.model_validate(cleaned)
    except ValidationError as exc:
        message, field = pydantic_message(exc)
        raise ValidationFailed(message, field=field) from None


def parse_labeled(model: type[M], data: dict[str, Any], labels: Mapping[str, str]) -> M:
    """Build an input model from form fields (blank fields and empty lists count as
    absent); the error message names the fields with ``labels`` (field -> Chinese name)."""
    cleaned = {k: v for k, v in data.items() if k != "csrf_token" and v not in ("", [])}
    try:
        return model.model_validate(cleaned)
    except ValidationError as exc:
        message, field = pydantic_message(exc)
        parts = message.split("；")
        for i, err in enumerate(exc.errors()):
            top = str(err["loc"][0]) if err["loc"] else ""
            if i < len(parts) and top in labels:
                _old, _sep, text = parts[i].partition("：")
                parts[i] = f"{labels[top]}：{text}"
        top_field = field.split(".")[0] if field else None
        raise ValidationFailed("；".join(parts), field=top_field) from None


async def _form_data(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


FormDict = Annotated[dict[str, str], Depends(_form_data)]


async def _form_multi(request: Request) -> dict[str, list[str]]:
    form = await request.form()
    out: dict[str, list[str]] = {}
    for k, v in form.multi_items():
        if isinstance(v, str):
            out.setdefault(k, []).append(v)
    return out


#: every value of every field (checkbox groups, repeated rows)
FormMulti = Annotated[dict[str, list[str]], Depends(_form_multi)]
