"""FastAPI app factory: JSON API under /api/v1, web pages, /metrics, /healthz."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from sqlalchemy import text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from govshare import __version__
from govshare.config import get_settings
from govshare.db import get_engine
from govshare.deps import DbSession
from govshare.errors import DomainError, NotAuthenticated
from govshare.rules.loader import registry
from govshare.web import STATIC_DIR, pydantic_message, render, templates

REQUESTS = Counter("govshare_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("govshare_http_request_seconds", "HTTP request latency", ["route"])

OPENAPI_TAGS = [
    {"name": "auth", "description": "登录、退出、当前身份"},
    {"name": "orgs", "description": "行政区划、部门、联系人备案、用户、应用凭证"},
    {"name": "rules", "description": "共享规则与工作日历"},
    {"name": "audit", "description": "审计日志"},
    {
        "name": "catalog",
        "description": "政务数据目录：编制、审核、发布、版本、检索、清单、导入导出",
    },
    {
        "name": "dataservices",
        "description": "共享服务：数据查询、数据核验、批量交换；使用台账与调用统计",
    },
    {"name": "signatures", "description": "平台电子签名（SM2）：公钥、验证"},
]


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path in ("/healthz", "/metrics")


def _error_response(
    request: Request, status: int, code: str, message: str, field: str | None
) -> Response:
    if _wants_json(request):
        return JSONResponse(
            {"error": {"code": code, "message": message, "field": field}}, status_code=status
        )
    if status == 401 and request.method == "GET" and not request.headers.get("hx-request"):
        from govshare.web import redirect

        nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return redirect(f"/login?next={nxt}")
    if request.headers.get("hx-request"):
        return templates.TemplateResponse(
            request,
            "_error_fragment.html",
            {"message": message},
            status_code=status,
            headers={"HX-Retarget": "#errors", "HX-Reswap": "innerHTML"},
        )
    headings = {401: "请先登录", 403: "没有权限", 404: "找不到页面或对象", 409: "操作冲突"}
    return render(
        request,
        "error.html",
        {"heading": headings.get(status, "请求有误"), "message": message},
        status_code=status,
    )


async def domain_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return _error_response(request, exc.status_code, exc.code, exc.message, exc.field)


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    parts = []
    field = None
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "form")]
        field = field or (".".join(loc) if loc else None)
        parts.append(f"{'.'.join(loc) or '请求'}：{err.get('msg', '')}")
    return _error_response(
        request, 422, "validation_failed", "；".join(parts) or "请求格式有误", field
    )


async def not_found_handler(request: Request, exc: Exception) -> Response:
    return _error_response(request, 404, "not_found", "您访问的页面不存在", None)


_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


#: data-service calls are dispatched here, before FastAPI's routing walks the platform's
#: ~140 routes (the same handler as the documented routes of dataservices/api.py)
_CALL_PATH = re.compile(r"/api/v1/dataservices/([1-9][0-9]{0,8})/(query|verify)")
_CALL_ROUTES = {
    "query": "/api/v1/dataservices/{service_id}/query",
    "verify": "/api/v1/dataservices/{service_id}/verify",
}


class _CallMetrics:
    """The two metric children of one (route, status), bound once."""

    def __init__(self, route: str, status: int) -> None:
        self.latency = LATENCY.labels(route)
        self.count = REQUESTS.labels("POST", route, str(status))

    def observe_and_count(self, seconds: float) -> None:
        self.latency.observe(seconds)
        self.count.inc()


_CALL_METRICS: dict[tuple[str, int], _CallMetrics] = {}


def _call_metrics(kind: str, status: int) -> _CallMetrics:
    metrics = _CALL_METRICS.get((kind, status))
    if metrics is None:
        metrics = _CALL_METRICS[(kind, status)] = _CallMetrics(_CALL_ROUTES[kind], status)
    return metrics


async def _data_service_call(
    scope: Scope, receive: Receive, send: Send, match: re.Match[str]
) -> None:
    from govshare.dataservices import gateway
    from govshare.dataservices.models import CallMethod

    start = time.perf_counter()
    kind = match[2]
    method = CallMethod.QUERY if kind == "query" else CallMethod.VERIFICATION
    try:
        status, body, headers = await gateway.gateway(get_engine()).answer(
            scope, receive, int(match[1]), method
        )
    except Exception:  # what the platform's error middleware would answer
        logging.getLogger("govshare").exception("data service call failed")
        status, headers = 500, []
        body = gateway.dumps(gateway.error_body("server_error", "服务器内部错误"))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
                *_SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
    _call_metrics(kind, status).observe_and_count(time.perf_counter() - start)


class GovshareApp(FastAPI):
    """The platform's application: data-service calls go straight to the gateway, before
    FastAPI's middleware stack and routing (the documented routes in dataservices/api.py
    have the same handler and are what the OpenAPI document shows)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = _CALL_PATH.fullmatch(scope["path"])
            if match:
                await _data_service_call(scope, receive, send, match)
                return
        await super().__call__(scope, receive, send)


class MetricsMiddleware:
    """Request metrics and security headers, as a plain ASGI middleware (the data services'
    hot path must not pay for a BaseHTTPMiddleware's extra task and body streaming)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.setdefault("headers", [])
                present = {name.lower() for name, _ in headers}
                for name, value in _SECURITY_HEADERS:
                    if name not in present:
                        headers.append((name, value))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            LATENCY.labels(path).observe(time.perf_counter() - start)
            REQUESTS.labels(scope["method"], path, str(status)).inc()


def create_app() -> FastAPI:
    registry()  # validate every shipped rulebook now: a broken one stops the start-up

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        from govshare.dataservices import exports, ledger

        exports.start_runner(get_engine())  # queued jobs, and jobs a stopped process left
        if get_settings().ledger_process:  # data-service calls' rows: see ledger_process.py
            ledger.start_process(get_engine(), asyncio.get_running_loop())
        # what start-up built lives as long as the process: keep it out of the garbage
        # collector's full passes, which otherwise pause every request now and then
        gc.collect()
        gc.freeze()
        yield
        exports.stop_runner()  # an export in progress goes back to the queue
        await ledger.stop_process()
        ledger.stop_writer()  # commit what is queued before the process ends

    app = GovshareApp(
        title="govshare 政务数据共享交换平台",
        version=__version__,
        description="政务数据共享交换平台 JSON API。浏览器会话（Cookie + X-CSRF-Token）"
        "或业务系统应用凭证（Authorization: Bearer gsk_...）均可调用。",
        openapi_tags=OPENAPI_TAGS,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.add_exception_handler(DomainError, domain_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(404, not_found_handler)

    app.add_middleware(MetricsMiddleware)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    from govshare.audit import api as audit_api
    from govshare.audit import views as audit_views
    from govshare.catalog import api as catalog_api
    from govshare.catalog import exchange_routes as catalog_exchange
    from govshare.catalog import lists_routes as catalog_lists
    from govshare.catalog import search_routes as catalog_search
    from govshare.catalog import views as catalog_views
    from govshare.dataservices import api as dataservices_api
    from govshare.dataservices import export_routes as dataservices_exports
    from govshare.dataservices import usage_routes as dataservices_usage
    from govshare.dataservices import views as dataservices_views
    from govshare.ingestion import api as ingestion_api
    from govshare.ingestion import quality_routes as ingestion_quality
    from govshare.ingestion import records_routes as ingestion_records
    from govshare.ingestion import sources_routes as ingestion_sources
    from govshare.ingestion import views as ingestion_views
    from govshare.notifications import api as notifications_api
    from govshare.notifications import views as notifications_views
    from govshare.orgs import api as orgs_api
    from govshare.orgs import views as orgs_views
    from govshare.rules import api as rules_api
    from govshare.rules import views as rules_views
    from govshare.sharing import agreement_routes as sharing_agreements
    from govshare.sharing import api as sharing_api
    from govshare.sharing import dispute_routes as sharing_disputes
    from govshare.sharing import views as sharing_views
    from govshare.signing import api as signing_api
    from govshare.signing import views as signing_views
    from govshare.web import views as web_views

    for router in (
        orgs_api.router,
        rules_api.router,
        audit_api.router,
        catalog_api.router,
        catalog_lists.api_router,
        catalog_exchange.api_router,
        catalog_search.api_router,
        ingestion_api.router,
        ingestion_records.api_router,
        ingestion_quality.api_router,
        ingestion_sources.api_router,
        notifications_api.router,
        sharing_api.router,
        sharing_disputes.api_router,
        sharing_agreements.api_router,
        dataservices_exports.api_router,
        dataservices_usage.api_router,
        dataservices_api.router,
        signing_api.router,
    ):
        app.include_router(router, prefix="/api/v1")
    dataservices_api.install_openapi(app)
    for router in (
        web_views.router,
        orgs_views.router,
        rules_views.router,
        audit_views.router,
        catalog_views.router,
        catalog_lists.page_router,
        catalog_exchange.page_router,
        catalog_search.page_router,
        ingestion_views.router,
        ingestion_records.page_router,
        ingestion_quality.page_router,
        ingestion_sources.page_router,
        notifications_views.router,
        sharing_views.router,
        sharing_disputes.page_router,
        sharing_agreements.page_router,
        dataservices_exports.page_router,
        dataservices_usage.page_router,
        dataservices_views.page_router,
        signing_views.page_router,
    ):
        app.include_router(router, include_in_schema=False)

    @app.get("/docs", include_in_schema=False)
    def docs() -> Response:
        """Swagger UI served from the platform's own static files (no CDN)."""
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="govshare 接口文档",
            swagger_js_url="/static/vendor/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )

    @app.get("/healthz", include_in_schema=False)
    def healthz(db: DbSession) -> dict[str, str]:
        db.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__}

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


__all__ = ["NotAuthenticated", "create_app", "pydantic_message"]
