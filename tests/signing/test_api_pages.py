"""The signature API (open to anyone) and the verification page (for logged-in users)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from govshare.permissions import Role
from govshare.signing import service
from govshare.signing.service import NOT_CONFIGURED
from tests.conftest import Factory, login

CSV = "统一社会信用代码,名称,许可证号\n91410100MA0000000X,测试药房,豫AA0000001\n"
DOC = {"证照类型": "药品经营许可证", "持证单位": "测试药房", "有效期至": "2028-12-31"}


def signed_files(copies: int = 1) -> tuple[bytes, bytes]:
    """A data file (the header and ``copies`` rows) and its signed manifest."""
    header, row = CSV.splitlines(keepends=True)
    data = (header + row * copies).encode("utf-8")
    manifest = service.build_manifest(
        "licences.csv", size=len(data), rows=copies, sm3=service.Sm3Stream(data).hexdigest()
    )
    return data, json.dumps(service.sign_manifest(manifest), ensure_ascii=False).encode()


# ---------------------------------------------------------------- JSON API


def test_public_key_needs_no_login(
    client: TestClient, key_path: Path, set_env: Callable[[str, object], None]
) -> None:
    r = client.get("/api/v1/signatures/public-key")
    assert r.status_code == 404
    assert r.json()["error"] == {"code": "not_found", "message": NOT_CONFIGURED, "field": None}
    old = service.generate_key()
    signer = service.generate_key(overwrite=True)
    set_env("GOVSHARE_SIGNING_TRUSTED_KEYS", [old.public_key_hex])
    r = client.get("/api/v1/signatures/public-key")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["algorithm"] == "SM2-SM3"
    assert out["signer_id"] == "1234567812345678"
    assert out["signer"] == "govshare 政务数据共享交换平台"
    assert (out["key_id"], out["public_key"]) == (signer.key_id, signer.public_key_hex)
    assert out["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----\n")
    assert out["earlier_keys"] == [{"key_id": old.key_id, "public_key": old.public_key_hex}]


def test_verify_an_envelope(client: TestClient, key_path: Path) -> None:
    service.generate_key()
    envelope = service.sign_document(DOC)
    r = client.post("/api/v1/signatures/verify", json=envelope)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out == {
        "valid": True,
        "message": "签名有效：数据由本平台签发，签发后未被修改",
        "key_id": envelope["signature"]["key_id"],
        "signed_at": envelope["signature"]["signed_at"],
        "signer": "govshare 政务数据共享交换平台",
        "file_name": None,
        "size": None,
        "rows": None,
    }
    envelope["document"]["有效期至"] = "2038-12-31"
    out = client.post("/api/v1/signatures/verify", json=envelope).json()
    assert out["valid"] is False
    assert out["message"] == "数据内容与签名不符：数据在签发后被修改"
    forged = service.sign_document(DOC, signer=service.new_signer())
    out = client.post("/api/v1/signatures/verify", json=forged).json()
    assert (out["valid"], out["message"]) == (False, "签名密钥不是本平台的密钥")
    # not JSON at all; JSON that is no envelope
    r = client.post(
        "/api/v1/signatures/verify", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert r.json()["error"]["message"] == "请求体不是有效的 JSON"
    out = client.post("/api/v1/signatures/verify", json=[1, 2]).json()
    assert out["valid"] is False
    assert out["message"].startswith("不是签名文件")


def test_verify_refuses_a_body_over_the_upload_limit(
    client: TestClient, key_path: Path, set_env: Callable[[str, object], None]
) -> None:
    service.generate_key()
    set_env("GOVSHARE_MAX_UPLOAD_BYTES", "2048")
    envelope = service.sign_document({"rows": ["x" * 100] * 40})
    r = client.post("/api/v1/signatures/verify", json=envelope)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"
    assert r.json()["error"]["message"].startswith("文件超过 2 KB，无法在线验证")
    small = service.sign_document({"rows": ["x"]})
    assert client.post("/api/v1/signatures/verify", json=small).json()["valid"] is True


def test_verify_a_file_with_its_manifest(client: TestClient, key_path: Path) -> None:
    service.generate_key()
    data, manifest = signed_files()
    files: dict[str, Any] = {
        "file": ("licences.csv", data, "text/csv"),
        "manifest": ("licences.csv.manifest.json", manifest, "application/json"),
    }
    r = client.post("/api/v1/signatures/verify-file", files=files)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["valid"] is True, out
    assert (out["file_name"], out["rows"], out["size"]) == ("licences.csv", 1, len(data))
    assert out["message"].startswith("签名有效：文件与本平台签发的签名清单一致（1 行，")
    # the same bytes under another name still verify, with a note
    files["file"] = ("下载.csv", data, "text/csv")
    out = client.post("/api/v1/signatures/verify-file", files=files).json()
    assert out["valid"] is True
    assert "文件名与清单记载的“licences.csv”不同" in out["message"]
    # one character changed
    files["file"] = ("licences.csv", data.replace("测试".encode(), "假冒".encode()), "text/csv")
    out = client.post("/api/v1/signatures/verify-file", files=files).json()
    assert out["valid"] is False
    assert out["message"].startswith("文件内容与签名清单不符")
    # without the manifest a data file cannot be checked
    only = {"file": ("licences.csv", data, "text/csv")}
    out = client.post("/api/v1/signatures/verify-file", files=only).json()
    assert out["valid"] is False
    assert out["message"].startswith("未提供签名清单")
    # a signed JSON file on its own
    signed = json.dumps(service.sign_document(DOC), ensure_ascii=False).encode()
    alone = {"file": ("result.json", signed, "application/json")}
    out = client.post("/api/v1/signatures/verify-file", files=alone).json()
    assert out["valid"] is True
    r = client.post("/api/v1/signatures/verify-file", data={"x": "1"}, files={"y": ("a", b"")})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "file"


def test_verify_file_refuses_a_file_over_the_upload_limit(
    client: TestClient, key_path: Path, set_env: Callable[[str, object], None]
) -> None:
    service.generate_key()
    data, manifest = signed_files(copies=100)
    assert len(manifest) < len(data) - 1  # the data file is what is too large
    set_env("GOVSHARE_MAX_UPLOAD_BYTES", str(len(data) - 1))
    files = {
        "file": ("licences.csv", data, "text/csv"),
        "manifest": ("m.json", manifest, "application/json"),
    }
    r = client.post("/api/v1/signatures/verify-file", files=files)
    assert r.status_code == 413
    assert "无法在线验证" in r.json()["error"]["message"]
    set_env("GOVSHARE_MAX_UPLOAD_BYTES", str(1024 * 1024))
    assert client.post("/api/v1/signatures/verify-file", files=files).json()["valid"] is True


# ---------------------------------------------------------------- page


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token on the page"
    return m.group(1)


def test_the_page_needs_login(client: TestClient, key_path: Path) -> None:
    r = client.get("/signatures/verify", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=/signatures/verify"


def test_the_page_verifies_a_pasted_envelope_and_files(
    client: TestClient, key_path: Path, factory: Factory
) -> None:
    signer = service.generate_key()
    user = factory.user(Role.DEPT_OFFICER)
    login(client, user.username)
    client.headers.pop("X-CSRF-Token")  # the forms carry the token themselves
    page = client.get("/signatures/verify")
    assert page.status_code == 200
    assert 'data-testid="envelope-form"' in page.text
    assert 'enctype="multipart/form-data"' in page.text
    assert signer.public_key_hex in page.text  # the platform's key is shown
    token = _csrf(page.text)

    envelope = json.dumps(service.sign_document(DOC), ensure_ascii=False)
    r = client.post(
        "/signatures/verify", data={"csrf_token": token, "mode": "envelope", "envelope": envelope}
    )
    assert r.status_code == 200
    assert 'data-testid="signature-valid"' in r.text
    assert "数据由本平台签发，签发后未被修改" in r.text
    assert f'<code data-testid="key-id">{signer.key_id}</code>' in r.text
    assert "（北京时间）" in r.text

    tampered = envelope.replace("测试药房", "别家药房")
    r = client.post(
        "/signatures/verify", data={"csrf_token": token, "mode": "envelope", "envelope": tampered}
    )
    assert 'data-testid="signature-invalid"' in r.text
    assert "数据内容与签名不符" in r.text
    assert "别家药房" in r.text  # the pasted text is kept in the form

    r = client.post(
        "/signatures/verify", data={"csrf_token": token, "mode": "envelope", "envelope": "{x"}
    )
    assert r.status_code == 422
    assert "粘贴的内容不是有效的 JSON" in r.text

    data, manifest = signed_files()
    files = {
        "file": ("licences.csv", data, "text/csv"),
        "manifest": ("licences.csv.manifest.json", manifest, "application/json"),
    }
    r = client.post("/signatures/verify", data={"csrf_token": token, "mode": "file"}, files=files)
    assert r.status_code == 200
    assert 'data-testid="signature-valid"' in r.text
    assert "licences.csv（1 行" in r.text
    files["file"] = ("licences.csv", data + b"\n", "text/csv")
    r = client.post("/signatures/verify", data={"csrf_token": token, "mode": "file"}, files=files)
    assert 'data-testid="signature-invalid"' in r.text
    assert "文件大小与签名清单不符" in r.text

    # no CSRF token: refused
    r = client.post("/signatures/verify", data={"mode": "envelope", "envelope": envelope})
    assert r.status_code == 403


def test_the_page_says_when_no_key_is_configured(
    client: TestClient, key_path: Path, factory: Factory
) -> None:
    login(client, factory.user(Role.DEPT_OFFICER).username)
    page = client.get("/signatures/verify")
    assert page.status_code == 200
    assert 'data-testid="key-error"' in page.text
    assert NOT_CONFIGURED in page.text


def test_who_may_call_what(client: TestClient, key_path: Path, factory: Factory) -> None:
    """The API is open to anyone (verifiers outside the platform), the page needs a log-in;
    empty calls are answered, never with a server error."""
    assert client.get("/api/v1/signatures/public-key").status_code == 404  # no key yet
    out = client.post("/api/v1/signatures/verify", json={}).json()
    assert (out["valid"], out["message"]) == (
        False,
        "不是签名文件：应为含 document 和 signature 的 JSON 对象",
    )
    assert client.post("/api/v1/signatures/verify-file", json={}).status_code == 422
    assert client.post("/signatures/verify", data={"envelope": "{}"}).status_code == 401
    token = login(client, factory.user(Role.PUBLIC).username)
    r = client.post("/signatures/verify", data={"csrf_token": token})
    assert r.status_code == 422
    assert "请粘贴带签名的 JSON" in r.text
    r = client.post("/signatures/verify", data={"csrf_token": token, "mode": "file"})
    assert r.status_code == 422
    assert "请选择要验证的文件" in r.text
    service.generate_key()
    assert client.get("/api/v1/signatures/public-key").status_code == 200
    # the OpenAPI document describes the bodies read by hand
    paths = client.get("/openapi.json").json()["paths"]
    body = paths["/api/v1/signatures/verify-file"]["post"]["requestBody"]
    assert body["content"]["multipart/form-data"]["schema"]["required"] == ["file"]
    assert (
        "application/json" in paths["/api/v1/signatures/verify"]["post"]["requestBody"]["content"]
    )
