"""JSON API of the platform signature (under /api/v1), open to anyone: verifiers outside
the platform fetch the public key and check what they received. Verification is read-only
and not audited."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from govshare.config import get_settings
from govshare.errors import NotFound, ValidationFailed
from govshare.signing import service

router = APIRouter(prefix="/signatures", tags=["signatures"])


class KeyOut(BaseModel):
    key_id: str
    public_key: str = Field(description="SM2 公钥，未压缩格式（04 || x || y）的十六进制")


class PublicKeyOut(BaseModel):
    algorithm: str = Field(description="SM2-SM3：SM2 签名，SM3 摘要")
    signer: str
    signer_id: str = Field(description="SM2 签名者标识（默认值 1234567812345678）")
    key_id: str = Field(description="公钥 SM3 摘要的前 16 位十六进制")
    public_key: str
    public_key_pem: str = Field(description="公钥的 PEM（SubjectPublicKeyInfo）")
    earlier_keys: list[KeyOut] = Field(description="更换前的公钥：用它们签发的数据仍可验证")


class VerifyOut(BaseModel):
    valid: bool
    message: str
    key_id: str
    signed_at: str
    signer: str
    file_name: str | None = Field(None, description="签名清单记载的数据文件名")
    size: int | None = Field(None, description="签名清单记载的文件大小（字节）")
    rows: int | None = Field(None, description="签名清单记载的行数")


def _check_length(request: Request, limit: int, field: str) -> None:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise service.PayloadTooLarge(service.too_large_message(limit), field=field)


async def _read_body(request: Request, limit: int) -> bytes:
    _check_length(request, limit, "body")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise service.PayloadTooLarge(service.too_large_message(limit), field="body")
    return bytes(body)


@router.get("/public-key", response_model=PublicKeyOut)
def public_key() -> PublicKeyOut:
    """平台签名公钥（无需登录）：外部验证方用它验证平台签发的数据；更换前的公钥一并列出。

    平台尚未生成签名密钥时答复 404。"""
    signer = service.current_signer()
    if signer is None:
        raise NotFound(service.NOT_CONFIGURED)
    return PublicKeyOut(
        algorithm=service.ALGORITHM,
        signer=service.SIGNER,
        signer_id=service.SIGNER_ID.decode("ascii"),
        key_id=signer.key_id,
        public_key=signer.public_key_hex,
        public_key_pem=signer.public_key_pem,
        earlier_keys=[
            KeyOut(key_id=k.key_id, public_key=k.public_key)
            for k in service.published_keys()
            if not k.current
        ],
    )


_ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["document", "signature"],
    "properties": {
        "document": {"type": "object", "description": "签名的数据"},
        "signature": {
            "type": "object",
            "required": list(service.ENVELOPE_FIELDS),
            "properties": {k: {"type": "string"} for k in service.ENVELOPE_FIELDS},
        },
    },
}


@router.post(
    "/verify",
    response_model=VerifyOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ENVELOPE_SCHEMA}},
        }
    },
)
async def verify(request: Request) -> VerifyOut:
    """验证平台签发的数据（请求体为带签名的 JSON，即查询结果原样）；任何人都可调用。

    核对签名密钥是本平台的密钥、数据的 SM3 摘要一致、SM2 签名有效。"""
    body = await _read_body(request, get_settings().max_upload_bytes)
    envelope = service.parse_json_bytes(body)
    if envelope is None:
        raise ValidationFailed("请求体不是有效的 JSON", field="body")
    outcome = await run_in_threadpool(service.verify_envelope, envelope)
    return VerifyOut(**outcome.as_dict())


@router.post(
    "/verify-file",
    response_model=VerifyOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {
                                "type": "string",
                                "format": "binary",
                                "description": "数据文件（CSV/XLSX），或签名的 JSON 文件",
                            },
                            "manifest": {
                                "type": "string",
                                "format": "binary",
                                "description": "数据文件的签名清单（.manifest.json）",
                            },
                        },
                    }
                }
            },
        }
    },
)
async def verify_file(request: Request) -> VerifyOut:
    """验证上传的文件（任何人都可调用）：数据文件连同签名清单（multipart 字段 file 和
    manifest），或单独上传签名的 JSON 文件。文件不得超过平台的上传大小上限。"""
    limit = get_settings().max_upload_bytes
    _check_length(request, limit, "file")
    async with request.form(max_files=2, max_fields=2) as form:
        upload, manifest_upload = form.get("file"), form.get("manifest")
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise ValidationFailed("请上传要验证的文件（字段 file）", field="file")
        manifest: bytes | None = None
        if isinstance(manifest_upload, UploadFile) and manifest_upload.filename:
            manifest = await manifest_upload.read(limit + 1)
        outcome = await run_in_threadpool(
            service.verify_upload,
            upload.file,
            file_name=upload.filename,
            manifest=manifest,
            limit=limit,
        )
    return VerifyOut(**outcome.as_dict())
