"""Domain errors: each carries its HTTP status; one handler in main.py renders them."""

from __future__ import annotations


class DomainError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationFailed(DomainError):
    status_code = 422
    code = "validation_failed"


class NotAuthenticated(DomainError):
    status_code = 401
    code = "not_authenticated"

    def __init__(self, message: str = "请先登录", *, field: str | None = None) -> None:
        super().__init__(message, field=field)


class PermissionDenied(DomainError):
    status_code = 403
    code = "permission_denied"

    def __init__(
        self, message: str = "您没有执行此操作的权限", *, field: str | None = None
    ) -> None:
        super().__init__(message, field=field)


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class CsrfFailed(DomainError):
    status_code = 403
    code = "csrf_failed"

    def __init__(self, message: str = "表单已过期或来源不明，请刷新页面后重试") -> None:
        super().__init__(message)
