"""The page ``/signatures/verify``: paste a signed JSON (a query result) or upload a data
file with its signed manifest, and see whether the platform's signature holds. Open to
every logged-in user; verification is read-only and not audited."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData, UploadFile

from govshare.config import get_settings
from govshare.deps import require
from govshare.errors import DomainError, ValidationFailed
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.signing import service
from govshare.web import render

page_router = APIRouter()

#: every logged-in user (every role has orgs:self:read)
User = Annotated[Principal, Depends(require(Perm.SELF_READ))]

#: Starlette's limit on one form field: a larger signed JSON is uploaded as a file
MAX_PASTE_BYTES = 1024 * 1024


def _page(
    request: Request,
    *,
    outcome: service.VerifyOutcome | None = None,
    error: DomainError | None = None,
    mode: str = "envelope",
    envelope_text: str = "",
) -> Response:
    limit = get_settings().max_upload_bytes
    context: dict[str, Any] = {
        "outcome": outcome,
        "mode": mode,
        "envelope_text": envelope_text,
        "max_size": service.human_size(limit),
        "max_paste": service.human_size(min(limit, MAX_PASTE_BYTES)),
        "keys": [],
        "key_error": "",
    }
    try:
        context["keys"] = service.published_keys()
    except DomainError as exc:
        context["key_error"] = exc.message
    if error is not None:
        context["error"] = error.message
    status = error.status_code if error is not None else 200
    return render(request, "signing/verify.html", context, status_code=status, section="signatures")


@page_router.get("/signatures/verify", response_class=HTMLResponse)
def verify_page(request: Request, _principal: User) -> Response:
    return _page(request)


async def _form(request: Request) -> FormData:
    """The submitted form (already read, and its CSRF token checked, by ``User``)."""
    return await request.form()


VerifyForm = Annotated[FormData, Depends(_form)]


@page_router.post("/signatures/verify", response_class=HTMLResponse)
def verify_submit(request: Request, _principal: User, form: VerifyForm) -> Response:
    """Form ``mode=envelope`` (field ``envelope``: the signed JSON) or ``mode=file``
    (fields ``file`` and optional ``manifest``)."""
    limit = get_settings().max_upload_bytes
    mode = "file" if form.get("mode") == "file" else "envelope"
    text = form.get("envelope")
    envelope_text = text if isinstance(text, str) else ""
    try:
        if mode == "file":
            upload, manifest_upload = form.get("file"), form.get("manifest")
            if not isinstance(upload, UploadFile) or not upload.filename:
                raise ValidationFailed("请选择要验证的文件", field="file")
            manifest: bytes | None = None
            if isinstance(manifest_upload, UploadFile) and manifest_upload.filename:
                manifest = manifest_upload.file.read(limit + 1)
            outcome = service.verify_upload(
                upload.file, file_name=upload.filename, manifest=manifest, limit=limit
            )
        else:
            if not envelope_text.strip():
                raise ValidationFailed("请粘贴带签名的 JSON", field="envelope")
            envelope = service.parse_json_bytes(envelope_text.encode("utf-8"))
            if envelope is None:
                raise ValidationFailed("粘贴的内容不是有效的 JSON", field="envelope")
            outcome = service.verify_envelope(envelope)
    except DomainError as exc:
        return _page(request, error=exc, mode=mode, envelope_text=envelope_text)
    return _page(request, outcome=outcome, mode=mode, envelope_text=envelope_text)
