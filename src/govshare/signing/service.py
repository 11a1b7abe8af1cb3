"""The platform's electronic signature (电子签名) on data delivered through sharing.

Documents, licences and contracts obtained through the sharing platform have the same
effect as their paper originals (seed 000 art. 18, seed 003 art. 39). So every query
response and every batch export can carry the platform's signature, which anyone can
check: ``POST /api/v1/signatures/verify``, the page ``/signatures/verify`` or the command
``govshare verify-signature FILE``.

Signature: SM2 (GB/T 32918) with SM3, signer id ``1234567812345678`` (GM/T 0009's
default), signature value DER-encoded (r, s), in hex. A signed document is returned as an
envelope::

    {"document": {...},
     "signature": {"algorithm": "SM2-SM3", "signer": "govshare 政务数据共享交换平台",
                   "key_id": "<16 hex>", "public_key": "04<128 hex>",
                   "signed_at": "2026-11-21T08:00:00.000000Z",
                   "digest": "<SM3 of canonical_json(document)>", "value": "<hex>"}}

``canonical_json`` is JSON with sorted keys, no whitespace and non-ASCII characters kept,
encoded in UTF-8. The signed message is ``canonical_json`` of the five fields
``algorithm, digest, key_id, signed_at, signer``: changing the document (hence its digest),
the time, the key id or the signer breaks the signature. ``key_id`` is the first 16 hex
digits of SM3 over the uncompressed public key (``04 || x || y``). An outside verifier
with OpenSSL 3 writes that message to a file and runs::

    openssl pkeyutl -verify -pubin -inkey platform.pub.pem -rawin -digest sm3 \\
        -pkeyopt distid:1234567812345678 -in message.json -sigfile signature.der

A data file (CSV, XLSX, any bytes) is signed through its manifest: an envelope whose
document is ``{"kind": "govshare.file-manifest", "file_name", "size", "rows", "sm3", ...}``,
kept next to the file as ``<file>.manifest.json``.

The key file is an unencrypted PKCS#8 PEM of the SM2 key with mode 0600 (``openssl pkey``
reads it; a SEC1 ``EC PRIVATE KEY`` PEM, e.g. from ``openssl ecparam -name SM2 -genkey``,
is read too). After a key rotation the earlier public keys listed in
``GOVSHARE_SIGNING_TRUSTED_KEYS`` still verify what they signed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, BinaryIO
from uuid import UUID

import gmssl_pyx  # type: ignore[import-untyped]  # ships a .pyi but no py.typed
from cryptography.hazmat.primitives import hashes

from govshare.audit.service import canonical_json, format_ts, sm3_hex
from govshare.config import get_settings
from govshare.errors import Conflict, DomainError, ValidationFailed

log = logging.getLogger(__name__)

ALGORITHM = "SM2-SM3"
SIGNER = "govshare 政务数据共享交换平台"
SIGNER_ID: bytes = gmssl_pyx.SM2_DEFAULT_SIGNER_ID
MANIFEST_KIND = "govshare.file-manifest"
MANIFEST_SUFFIX = ".manifest.json"
NOT_CONFIGURED = "平台未配置签名密钥，请运维人员运行 govshare signing generate-key"
#: read size when hashing a file
CHUNK = 1024 * 1024
#: a signed JSON file (or manifest) larger than this is not read into memory
MAX_JSON_BYTES = 512 * 1024 * 1024
#: how many ``*.manifest.json`` files of a folder are opened to find a file's manifest
MAX_MANIFEST_SCAN = 200
SIGNED_FIELDS = ("algorithm", "digest", "key_id", "signed_at", "signer")
ENVELOPE_FIELDS = (*SIGNED_FIELDS, "public_key", "value")
MANIFEST_FIELDS = ("file_name", "size", "rows", "sm3")

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_SIGNED_AT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


class SigningNotConfigured(DomainError):
    """The platform has no usable signing key (missing, unreadable or broken key file)."""

    status_code = 503
    code = "signing_not_configured"

    def __init__(self, message: str = NOT_CONFIGURED, *, field: str | None = None) -> None:
        super().__init__(message, field=field)


class PayloadTooLarge(DomainError):
    status_code = 413
    code = "payload_too_large"


# ---------------------------------------------------------------- SM3


def _hashlib_sm3() -> bool:
    try:
        return hashlib.new("sm3", b"abc").hexdigest() == sm3_hex(b"abc")
    except ValueError:
        return False


_HASHLIB_SM3 = _hashlib_sm3()


class Sm3Stream:
    """Incremental SM3: ``update(bytes)`` any number of times, then ``hexdigest()`` (which
    may be called again; more updates after it continue the same stream). ``size`` counts
    the bytes hashed. Uses OpenSSL through hashlib when it has SM3, else cryptography."""

    def __init__(self, data: bytes = b"") -> None:
        self._hashlib = hashlib.new("sm3") if _HASHLIB_SM3 else None
        self._crypto = None if _HASHLIB_SM3 else hashes.Hash(hashes.SM3())
        self.size = 0
        if data:
            self.update(data)

    def update(self, data: bytes) -> None:
        if self._hashlib is not None:
            self._hashlib.update(data)
        else:
            assert self._crypto is not None
            self._crypto.update(data)
        self.size += len(data)

    def hexdigest(self) -> str:
        if self._hashlib is not None:
            return self._hashlib.hexdigest()
        assert self._crypto is not None
        return self._crypto.copy().finalize().hex()


def hash_stream(data: BinaryIO, limit: int | None = None) -> tuple[str, int]:
    """SM3 hex and size of a binary stream, read in chunks. With ``limit``, refuse a stream
    longer than that many bytes (:class:`PayloadTooLarge`)."""
    h = Sm3Stream()
    while chunk := data.read(CHUNK):
        h.update(chunk)
        if limit is not None and h.size > limit:
            raise PayloadTooLarge(too_large_message(limit), field="file")
    return h.hexdigest(), h.size


def hash_file(path: Path) -> tuple[str, int]:
    """SM3 hex and size of a file, read in chunks (export files can be gigabytes)."""
    with path.open("rb") as f:
        return hash_stream(f)


def human_size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / 1024 / 1024:g} MB"
    if n >= 1024:
        return f"{n / 1024:g} KB"
    return f"{n} 字节"


def too_large_message(limit: int) -> str:
    return (
        f"文件超过 {human_size(limit)}，无法在线验证：请用 govshare verify-signature 命令验证，"
        "或自行计算文件的 SM3 摘要与签名清单核对"
    )


# ---------------------------------------------------------------- key file (DER / PEM)

_OID_EC_PUBLIC_KEY = bytes.fromhex("2a8648ce3d0201")  # 1.2.840.10045.2.1
_OID_SM2 = bytes.fromhex("2a811ccf5501822d")  # 1.2.156.10197.1.301
_SEQUENCE, _INTEGER, _BIT_STRING, _OCTET_STRING, _OID = 0x30, 0x02, 0x03, 0x04, 0x06
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)


class _KeyFormatError(Exception):
    pass


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def _der_items(data: bytes) -> list[tuple[int, bytes]]:
    """The TLVs that make up ``data`` (one level)."""
    items: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise _KeyFormatError("DER 数据被截断")
        tag, first = data[pos], data[pos + 1]
        pos += 2
        if first < 0x80:
            n = first
        else:
            k = first & 0x7F
            if not 0 < k <= 4 or pos + k > len(data):
                raise _KeyFormatError("DER 长度无效")
            n = int.from_bytes(data[pos : pos + k], "big")
            pos += k
        if pos + n > len(data):
            raise _KeyFormatError("DER 数据被截断")
        items.append((tag, data[pos : pos + n]))
        pos += n
    return items


def _der_one(data: bytes, tag: int) -> bytes:
    items = _der_items(data)
    if len(items) != 1 or items[0][0] != tag:
        raise _KeyFormatError("DER 结构不符")
    return items[0][1]


def _algorithm_identifier() -> bytes:
    return _der(_SEQUENCE, _der(_OID, _OID_EC_PUBLIC_KEY) + _der(_OID, _OID_SM2))


def _sec1(private_key: bytes, public_key: bytes) -> bytes:
    return _der(
        _SEQUENCE,
        _der(_INTEGER, b"\x01")
        + _der(_OCTET_STRING, private_key)
        + _der(0xA1, _der(_BIT_STRING, b"\x00\x04" + public_key)),
    )


def _pem(label: str, der: bytes) -> str:
    b64 = base64.b64encode(der).decode("ascii")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def public_key_pem(public_key: bytes) -> str:
    """The SubjectPublicKeyInfo PEM of a 64-byte public key (``openssl pkey -pubin`` reads
    it)."""
    spki = _der(_SEQUENCE, _algorithm_identifier() + _der(_BIT_STRING, b"\x00\x04" + public_key))
    return _pem("PUBLIC KEY", spki)


def _parse_sec1(der: bytes) -> tuple[bytes, bytes | None]:
    items = _der_items(_der_one(der, _SEQUENCE))
    if len(items) < 2 or items[0] != (_INTEGER, b"\x01") or items[1][0] != _OCTET_STRING:
        raise _KeyFormatError("不是 EC 私钥")
    private = items[1][1].lstrip(b"\x00")
    if not private or len(private) > 32:
        raise _KeyFormatError("私钥长度无效")
    public: bytes | None = None
    for tag, value in items[2:]:
        if tag == 0xA0 and _der_one(value, _OID) != _OID_SM2:
            raise _KeyFormatError("密钥不是 SM2 曲线上的密钥")
        if tag == 0xA1:
            bits = _der_one(value, _BIT_STRING)
            if not bits or bits[0] != 0:
                raise _KeyFormatError("公钥编码无效")
            public = bits[1:]
    return private.rjust(32, b"\x00"), public


def _parse_pkcs8(der: bytes) -> tuple[bytes, bytes | None]:
    items = _der_items(_der_one(der, _SEQUENCE))
    if len(items) < 3 or items[0][0] != _INTEGER or items[1][0] != _SEQUENCE:
        raise _KeyFormatError("不是 PKCS#8 私钥")
    algorithm = _der_items(items[1][1])
    if not algorithm or algorithm[0] != (_OID, _OID_EC_PUBLIC_KEY):
        raise _KeyFormatError("密钥不是 EC 密钥")
    if len(algorithm) > 1 and algorithm[1] != (_OID, _OID_SM2):
        raise _KeyFormatError("密钥不是 SM2 曲线上的密钥")
    if items[2][0] != _OCTET_STRING:
        raise _KeyFormatError("不是 PKCS#8 私钥")
    return _parse_sec1(items[2][1])


def parse_private_key_pem(text: str) -> tuple[bytes, bytes]:
    """(private key 32 bytes, public key 64 bytes) from a PKCS#8 or SEC1 PEM."""
    for label, body in _PEM_BLOCK.findall(text):
        if label == "ENCRYPTED PRIVATE KEY" or "ENCRYPTED" in body:
            raise _KeyFormatError("不支持加密的密钥文件，请使用未加密的 PEM（文件权限 0600）")
        if label not in ("PRIVATE KEY", "EC PRIVATE KEY"):
            continue  # e.g. the "EC PARAMETERS" block written by openssl ecparam -genkey
        try:
            der = base64.b64decode("".join(body.split()), validate=True)
        except binascii.Error:
            raise _KeyFormatError("PEM 内容不是有效的 Base64") from None
        private, public = _parse_pkcs8(der) if label == "PRIVATE KEY" else _parse_sec1(der)
        if public is None:
            raise _KeyFormatError("密钥文件中没有公钥")
        try:
            return private, normalize_public_key(public)
        except ValueError:
            raise _KeyFormatError("公钥不是 SM2 曲线上的点") from None
    raise _KeyFormatError("文件中没有 PEM 格式的私钥")


# ---------------------------------------------------------------- the signer


def key_id_of(public_key: bytes) -> str:
    """First 16 hex digits of SM3 over the uncompressed public key (04 || x || y)."""
    return sm3_hex(b"\x04" + public_key)[:16]


def public_key_hex(public_key: bytes) -> str:
    return "04" + public_key.hex()


def normalize_public_key(public_key: str | bytes) -> bytes:
    """64 bytes (x || y) from hex or bytes (uncompressed with or without 04, or compressed);
    raises ``ValueError`` when it is not a point on the SM2 curve."""
    try:
        return bytes(gmssl_pyx.normalize_sm2_public_key(public_key))
    except gmssl_pyx.InvalidValueError:
        raise ValueError("not an SM2 public key") from None


def _sm2_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        return bool(gmssl_pyx.sm2_verify(public_key, message, signature, SIGNER_ID))
    except gmssl_pyx.GmsslInnerError:
        return False


@dataclass(frozen=True)
class Signer:
    """The platform's key pair: ``private_key`` 32 bytes, ``public_key`` 64 bytes (x || y)."""

    private_key: bytes = field(repr=False)
    public_key: bytes
    path: Path | None = None

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_key)

    @property
    def public_key_hex(self) -> str:
        return public_key_hex(self.public_key)

    @property
    def public_key_pem(self) -> str:
        return public_key_pem(self.public_key)

    def sign(self, message: bytes) -> bytes:
        """SM2 signature (DER) of ``message`` with the default signer id."""
        return bytes(gmssl_pyx.sm2_sign(self.private_key, self.public_key, message, SIGNER_ID))

    def check(self) -> None:
        """Sign and verify a test message: the private and public keys belong together."""
        probe = b"govshare signing key check"
        try:
            ok = _sm2_verify(self.public_key, probe, self.sign(probe))
        except gmssl_pyx.GmsslInnerError:
            ok = False
        if not ok:
            raise _KeyFormatError("私钥与公钥不匹配")

    def to_pem(self, created_at: datetime | None = None) -> str:
        pkcs8 = _der(
            _SEQUENCE,
            _der(_INTEGER, b"\x00")
            + _algorithm_identifier()
            + _der(_OCTET_STRING, _sec1(self.private_key, self.public_key)),
        )
        created = format_ts(created_at or datetime.now(UTC))
        header = (
            "govshare platform signing key (SM2, PKCS#8). Keep it secret: whoever holds it\n"
            "can sign data in the platform's name.\n"
            f"key id: {self.key_id}\n"
            f"public key: {self.public_key_hex}\n"
            f"created: {created}\n"
        )
        return header + _pem("PRIVATE KEY", pkcs8)


def new_signer(path: Path | None = None) -> Signer:
    public, private = gmssl_pyx.sm2_key_generate()
    return Signer(private_key=bytes(private), public_key=bytes(public), path=path)


def read_key(path: Path) -> Signer:
    """Read and check a key file; any problem is a :class:`SigningNotConfigured` naming it."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise SigningNotConfigured() from None
    except OSError as exc:
        raise SigningNotConfigured(f"无法读取签名密钥文件 {path}：{exc.strerror}") from None
    try:
        private, public = parse_private_key_pem(text)
        signer = Signer(private_key=private, public_key=public, path=path)
        signer.check()
    except _KeyFormatError as exc:
        raise SigningNotConfigured(
            f"签名密钥文件 {path} 无效：{exc}；请运维人员检查或重新运行 "
            "govshare signing generate-key --force"
        ) from None
    return signer


_lock = threading.Lock()
_cache: dict[str, tuple[tuple[int, int, int], Signer]] = {}


def key_file() -> Path:
    return get_settings().resolved_signing_key_file()


def load_signer() -> Signer:
    """The platform's signing key, read once per process and again when the file changes
    (a rotation takes effect without a restart)."""
    path = key_file()
    try:
        st = path.stat()
    except FileNotFoundError:
        raise SigningNotConfigured() from None
    except OSError as exc:
        raise SigningNotConfigured(f"无法读取签名密钥文件 {path}：{exc.strerror}") from None
    stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    cache_key = os.path.abspath(path)
    with _lock:
        cached = _cache.get(cache_key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        signer = read_key(path)
        if st.st_mode & 0o077:
            log.warning("signing key file %s is readable by others (mode %o)", path, st.st_mode)
        _cache[cache_key] = (stamp, signer)
        return signer


def current_signer() -> Signer | None:
    """The platform's key, or None when no key file exists (a broken one still raises)."""
    if not key_file().exists():
        return None
    return load_signer()


def generate_key(
    path: Path | None = None,
    overwrite: bool = False,
    before_install: Callable[[Signer, Signer | None], None] | None = None,
) -> Signer:
    """Generate a new SM2 key into ``path`` (default: the configured key file), mode 0600.

    Refuses to replace an existing file unless ``overwrite``. The key is written to a
    temporary file next to ``path`` first; ``before_install(new, previous)`` (e.g. writing
    the audit entry) runs then, and only if it succeeds the file is moved into place.
    """
    path = path or key_file()
    previous: Signer | None = None
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise Conflict(
                f"签名密钥文件已存在：{path}。更换密钥请加 --force，并把旧公钥加入 "
                "GOVSHARE_SIGNING_TRUSTED_KEYS，已签发的数据才能继续通过验证"
            )
        try:
            previous = read_key(path)
        except SigningNotConfigured:
            previous = None
    signer = new_signer(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(signer.to_pem())
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        if before_install is not None:
            before_install(signer, previous)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    with _lock:
        _cache.pop(os.path.abspath(path), None)
    return signer


def ensure_key() -> tuple[Signer, bool]:
    """The platform's key, generated first if there is none (demo set-up). Returns the key
    and whether it was generated now."""
    if key_file().exists():
        return load_signer(), False
    return generate_key(), True


def trusted_keys() -> dict[bytes, str]:
    """Public keys (64 bytes) whose signatures verify, with their key ids: the current key
    and the earlier keys of ``signing_trusted_keys``. None at all is a configuration error."""
    keys: dict[bytes, str] = {}
    current = current_signer()
    if current is not None:
        keys[current.public_key] = current.key_id
    for text in get_settings().signing_trusted_keys:
        try:
            public = normalize_public_key(text.strip().lower())
        except ValueError:
            log.warning("GOVSHARE_SIGNING_TRUSTED_KEYS: not an SM2 public key: %.20s…", text)
            continue
        keys[public] = key_id_of(public)
    if not keys:
        raise SigningNotConfigured()
    return keys


# ---------------------------------------------------------------- signing


def _json_default(value: object) -> object:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal | UUID | Path):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        return model_dump(mode="json")
    raise TypeError(f"cannot sign a value of type {type(value).__name__}")


def to_json_value(document: dict[str, Any]) -> dict[str, Any]:
    """The document as plain JSON values (dates as ISO text, decimals as text, keys as
    text): what is signed is exactly what a client reads back from the response."""
    try:
        text = json.dumps(document, ensure_ascii=False, allow_nan=False, default=_json_default)
    except ValueError:
        raise ValidationFailed("待签名的数据含有非法数值（NaN 或无穷大）") from None
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValidationFailed("待签名的数据应为 JSON 对象")
    return value


def document_digest(document: dict[str, Any]) -> str:
    return sm3_hex(canonical_json(document).encode("utf-8"))


def signed_message(fields: dict[str, Any]) -> bytes:
    """The bytes the SM2 signature covers."""
    return canonical_json({k: fields[k] for k in SIGNED_FIELDS}).encode("utf-8")


def sign_document(document: dict[str, Any], signer: Signer | None = None) -> dict[str, Any]:
    """The signed envelope of ``document`` (see the module docstring). Return the envelope
    as the response body as it is: its document is already plain JSON."""
    signer = signer or load_signer()
    doc = to_json_value(document)
    signature: dict[str, Any] = {
        "algorithm": ALGORITHM,
        "signer": SIGNER,
        "key_id": signer.key_id,
        "public_key": signer.public_key_hex,
        "signed_at": format_ts(datetime.now(UTC)),
        "digest": document_digest(doc),
    }
    signature["value"] = signer.sign(signed_message(signature)).hex()
    return {"document": doc, "signature": signature}


def _manifest_problem(manifest: dict[str, Any]) -> str | None:
    name, size, rows, digest = (manifest.get(k) for k in MANIFEST_FIELDS)
    if not isinstance(name, str) or not name or Path(name).name != name:
        return "file_name 应为数据文件的文件名（不含目录）"
    for key, value in (("size", size), ("rows", rows)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return f"{key} 应为非负整数"
    if not isinstance(digest, str) or not _HEX64.match(digest):
        return "sm3 应为 64 位小写十六进制的 SM3 摘要"
    return None


def build_manifest(
    file_name: str, *, size: int, rows: int, sm3: str, **extra: Any
) -> dict[str, Any]:
    """A manifest document: the file's name, size, row count and SM3, and any further
    facts (export id, dataset, grant, ...) in ``extra``."""
    clash = set(extra) & {*MANIFEST_FIELDS, "kind"}
    if clash:
        raise ValueError(f"manifest extras may not override {sorted(clash)}")
    core = {"kind": MANIFEST_KIND, "file_name": file_name, "size": size, "rows": rows, "sm3": sm3}
    return {**core, **extra}


def manifest_for_file(path: Path, *, rows: int, **extra: Any) -> dict[str, Any]:
    """The manifest of a file on disk (hashed in chunks)."""
    digest, size = hash_file(path)
    return build_manifest(path.name, size=size, rows=rows, sm3=digest, **extra)


def sign_manifest(manifest: dict[str, Any], signer: Signer | None = None) -> dict[str, Any]:
    """The signed envelope of a data file's manifest (``file_name``, ``size``, ``rows``,
    ``sm3`` and any further facts); ``kind`` is set to the manifest kind."""
    problem = _manifest_problem(manifest)
    if problem:
        raise ValidationFailed(f"签名清单无效：{problem}")
    return sign_document({**manifest, "kind": MANIFEST_KIND}, signer)


def manifest_path_for(data_path: Path) -> Path:
    return data_path.with_name(data_path.name + MANIFEST_SUFFIX)


def write_manifest(data_path: Path, envelope: dict[str, Any]) -> Path:
    """Write the signed manifest next to the data file as ``<file>.manifest.json``."""
    target = manifest_path_for(data_path)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    try:
        tmp.write_text(json.dumps(envelope, ensure_ascii=False, indent=2) + "\n", "utf-8")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


# ---------------------------------------------------------------- verification


@dataclass(frozen=True)
class VerifyOutcome:
    valid: bool
    message: str
    key_id: str = ""
    signed_at: str = ""
    signer: str = ""
    #: for a data file's manifest: what the manifest records
    file_name: str | None = None
    size: int | None = None
    rows: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def failed(self, message: str) -> VerifyOutcome:
        return replace(self, valid=False, message=message)


_NOT_AN_ENVELOPE = "不是签名文件：应为含 document 和 signature 的 JSON 对象"
#: an export delivered while the platform had no usable key carries ``"signature": null``
_UNSIGNED = "数据未签名：签发时平台没有可用的签名密钥，无法证明数据来源和完整性"


def _text(value: object, size: int) -> str:
    return value[:size] if isinstance(value, str) else ""


def _check_envelope(envelope: object) -> tuple[VerifyOutcome, dict[str, Any]]:
    """Verify the signature of an envelope; returns the outcome (its message, when valid,
    is the note on an earlier key) and the document."""
    if not isinstance(envelope, dict):
        return VerifyOutcome(False, _NOT_AN_ENVELOPE), {}
    document, sig = envelope.get("document"), envelope.get("signature")
    if isinstance(document, dict) and "signature" in envelope and sig is None:
        return VerifyOutcome(False, _UNSIGNED), document
    if not isinstance(document, dict) or not isinstance(sig, dict):
        return VerifyOutcome(False, _NOT_AN_ENVELOPE), {}
    base = VerifyOutcome(
        False,
        "",
        key_id=_text(sig.get("key_id"), 64),
        signed_at=_text(sig.get("signed_at"), 64),
        signer=_text(sig.get("signer"), 128),
    )
    if document.get("kind") == MANIFEST_KIND and _manifest_problem(document) is None:
        base = replace(
            base, file_name=document["file_name"], size=document["size"], rows=document["rows"]
        )
    missing = [k for k in ENVELOPE_FIELDS if not isinstance(sig.get(k), str) or not sig.get(k)]
    if missing:
        return base.failed(f"签名信息不完整，缺少：{'、'.join(missing)}"), document
    if sig["algorithm"] != ALGORITHM:
        algorithm = sig["algorithm"][:32]
        return base.failed(f"不支持的签名算法：{algorithm}（本平台使用 {ALGORITHM}）"), document
    if not _SIGNED_AT.match(sig["signed_at"]):
        return base.failed("签名时间格式不正确"), document
    try:
        public = normalize_public_key(sig["public_key"])
    except ValueError:
        return base.failed("签名公钥格式不正确"), document
    if key_id_of(public) != sig["key_id"]:
        return base.failed("密钥标识与签名公钥不符：签名信息被修改"), document
    if public not in trusted_keys():
        return base.failed("签名密钥不是本平台的密钥"), document
    if document_digest(document) != sig["digest"]:
        return base.failed("数据内容与签名不符：数据在签发后被修改"), document
    try:
        value = bytes.fromhex(sig["value"])
    except ValueError:
        return base.failed("签名值格式不正确"), document
    if not _sm2_verify(public, signed_message(sig), value):
        message = "签名验证失败：签名时间、签发方或签名值被修改，或签名已损坏"
        return base.failed(message), document
    current = current_signer()
    earlier = current is None or current.public_key != public
    return replace(base, valid=True, message="（由本平台更换前的密钥签发）" if earlier else ""), (
        document
    )


def verify_envelope(envelope: object) -> VerifyOutcome:
    """Valid only if the envelope's key is the platform's (current or listed in
    ``signing_trusted_keys``), the digest matches the document and the SM2 signature
    verifies. A data file's manifest verified alone says so: the file was not checked."""
    outcome, document = _check_envelope(envelope)
    if not outcome.valid:
        return outcome
    if document.get("kind") == MANIFEST_KIND:
        message = (
            f"签名清单有效{outcome.message}：由本平台签发，签发后未被修改。"
            "尚未核对数据文件本身，请同时提供数据文件"
        )
    else:
        message = f"签名有效{outcome.message}：数据由本平台签发，签发后未被修改"
    return replace(outcome, message=message)


def verify_data(
    manifest_envelope: object, *, sm3: str, size: int, file_name: str | None = None
) -> VerifyOutcome:
    """Verify a data file, given its SM3 and size, against its signed manifest."""
    outcome, document = _check_envelope(manifest_envelope)
    if not outcome.valid:
        return outcome
    if document.get("kind") != MANIFEST_KIND or outcome.size is None:
        return outcome.failed("所给的签名文件不是数据文件的签名清单")
    if size != outcome.size:
        return outcome.failed(
            f"文件大小与签名清单不符（清单 {outcome.size:,} 字节，实际 {size:,} 字节）："
            "文件在签发后被修改或不完整"
        )
    if sm3 != document["sm3"]:
        return outcome.failed("文件内容与签名清单不符（SM3 摘要不同）：文件在签发后被修改")
    message = (
        f"签名有效{outcome.message}：文件与本平台签发的签名清单一致"
        f"（{outcome.rows:,} 行，{outcome.size:,} 字节），签发后未被修改"
    )
    if file_name and file_name != outcome.file_name:
        message += f"。注意：文件名与清单记载的“{outcome.file_name}”不同，内容一致"
    return replace(outcome, message=message)


def parse_json_bytes(content: bytes) -> object | None:
    """JSON from bytes (UTF-8, with or without BOM); None when it is not JSON."""
    try:
        value: object = json.loads(content.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value


def _starts_like_json_object(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(64)
    except OSError:
        return False
    return head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"{")


def _read_json_file(path: Path) -> object | None:
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            return None
        return parse_json_bytes(path.read_bytes())
    except OSError:
        return None


def _names_file(envelope: object, file_name: str) -> bool:
    if not isinstance(envelope, dict):
        return False
    document = envelope.get("document")
    return (
        isinstance(document, dict)
        and document.get("kind") == MANIFEST_KIND
        and document.get("file_name") == file_name
    )


def find_manifest(data_path: Path) -> Path | None:
    """The signed manifest of a data file: ``<file>.manifest.json``, ``<stem>.manifest.json``
    or another ``*.manifest.json`` in the same folder whose document names the file."""
    candidates = [
        manifest_path_for(data_path),
        data_path.with_name(data_path.stem + MANIFEST_SUFFIX),
    ]
    for candidate in candidates:
        if candidate != data_path and candidate.is_file():
            return candidate
    try:
        others = sorted(data_path.parent.glob("*" + MANIFEST_SUFFIX))[:MAX_MANIFEST_SCAN]
    except OSError:
        return None
    for other in others:
        try:
            small = other.is_file() and other.stat().st_size <= CHUNK
        except OSError:
            small = False
        if other != data_path and small and _names_file(_read_json_file(other), data_path.name):
            return other
    return None


def verify_file(path: Path, manifest_path: Path | None = None) -> VerifyOutcome:
    """Verify a file: a data file (any bytes) against its signed manifest (given, or found
    by :func:`find_manifest`), else the file itself as a signed JSON envelope. A manifest
    given as the file is checked together with the data file it names, when that file is
    next to it."""
    if not path.is_file():
        return VerifyOutcome(False, f"找不到文件：{path}")
    if manifest_path is None:
        manifest_path = find_manifest(path)
    if manifest_path is None:
        envelope = _read_json_file(path) if _starts_like_json_object(path) else None
        if not isinstance(envelope, dict) or "signature" not in envelope:
            return VerifyOutcome(
                False,
                f"未找到签名清单（应为同目录下的 {manifest_path_for(path).name}），"
                "请用 --manifest 指定；如果这是签名的 JSON 文件，它的格式不正确",
            )
        outcome = verify_envelope(envelope)
        named = path.parent / outcome.file_name if outcome.valid and outcome.file_name else None
        if named is not None and named != path and named.is_file():
            return verify_file(named, path)
        return outcome
    if not manifest_path.is_file():
        return VerifyOutcome(False, f"找不到签名清单：{manifest_path}")
    manifest = _read_json_file(manifest_path)
    if manifest is None:
        return VerifyOutcome(False, f"签名清单 {manifest_path.name} 不是有效的 JSON 文件")
    digest, size = hash_file(path)
    return verify_data(manifest, sm3=digest, size=size, file_name=path.name)


def verify_upload(
    data: BinaryIO, *, file_name: str, manifest: bytes | None, limit: int
) -> VerifyOutcome:
    """Verify an uploaded file of at most ``limit`` bytes: against the uploaded manifest,
    or, without one, as a signed JSON envelope."""
    if manifest is None:
        content = data.read(limit + 1)
        if len(content) > limit:
            raise PayloadTooLarge(too_large_message(limit), field="file")
        envelope = parse_json_bytes(content)
        if not isinstance(envelope, dict) or "signature" not in envelope:
            return VerifyOutcome(
                False, "未提供签名清单：验证数据文件时请同时上传它的签名清单（.manifest.json）"
            )
        return verify_envelope(envelope)
    if len(manifest) > limit:
        raise PayloadTooLarge(too_large_message(limit), field="manifest")
    parsed = parse_json_bytes(manifest)
    if parsed is None:
        return VerifyOutcome(False, "签名清单不是有效的 JSON 文件")
    digest, size = hash_stream(data, limit)
    return verify_data(parsed, sm3=digest, size=size, file_name=file_name)


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    public_key: str
    current: bool


def published_keys() -> list[KeyInfo]:
    """The keys whose signatures verify, the current one first."""
    current = current_signer()
    keys = trusted_keys()
    out = [KeyInfo(current.key_id, current.public_key_hex, True)] if current else []
    out += [
        KeyInfo(kid, public_key_hex(pub), False)
        for pub, kid in keys.items()
        if current is None or pub != current.public_key
    ]
    return out
