"""The platform signature: key file, signing, verification of envelopes and data files."""

from __future__ import annotations

import copy
import json
import shutil
import stat
import subprocess
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from govshare.audit.service import canonical_json, sm3_hex
from govshare.errors import Conflict, ValidationFailed
from govshare.signing import service
from govshare.signing.service import (
    NOT_CONFIGURED,
    PayloadTooLarge,
    SigningNotConfigured,
    Sm3Stream,
)

DOC: dict[str, Any] = {
    "service": "居民户籍信息查询",
    "subject": "410102199001011234",
    "record": {"姓名": "张三", "出生日期": date(1990, 1, 1), "补贴": Decimal("1200.50")},
    "fields": ["姓名", "出生日期"],
    "queried_at": datetime(2026, 11, 20, 8, 30, tzinfo=UTC),
}

CSV = "身份证号,姓名,补贴\n410102199001011234,张三,1200.50\n410102199202022345,李四,980.00\n"


def roundtrip(envelope: dict[str, Any]) -> dict[str, Any]:
    """What a client holds after reading the response body."""
    result: dict[str, Any] = json.loads(json.dumps(envelope, ensure_ascii=False))
    return result


def signed_csv(folder: Path, name: str = "export_12.csv") -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / name
    data.write_text(CSV, encoding="utf-8")
    manifest = service.manifest_for_file(data, rows=2, export_id=12, dataset="户籍人口")
    return data, service.write_manifest(data, service.sign_manifest(manifest))


# ---------------------------------------------------------------- key file


def test_generate_key_writes_a_private_pkcs8_file_and_refuses_to_overwrite(
    key_path: Path,
) -> None:
    signer = service.generate_key()
    assert key_path.is_file()
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    text = key_path.read_text()
    assert "-----BEGIN PRIVATE KEY-----" in text
    assert f"key id: {signer.key_id}" in text
    assert signer.private_key.hex() not in text  # only inside the base64 DER
    assert len(signer.key_id) == 16
    assert signer.key_id == sm3_hex(bytes.fromhex(signer.public_key_hex))[:16]
    assert signer.public_key_hex.startswith("04")
    assert len(signer.public_key_hex) == 130
    assert "private_key" not in repr(signer)
    assert list(key_path.parent.iterdir()) == [key_path]  # no temporary file left
    # read back: the same key
    assert service.load_signer().public_key == signer.public_key
    with pytest.raises(Conflict, match="签名密钥文件已存在"):
        service.generate_key()
    assert service.load_signer().public_key == signer.public_key
    rotated = service.generate_key(overwrite=True)
    assert rotated.key_id != signer.key_id
    assert service.load_signer().key_id == rotated.key_id  # reloaded: the file changed


def test_generate_key_leaves_the_old_key_when_the_hook_fails(key_path: Path) -> None:
    old = service.generate_key()

    def refuse(new: service.Signer, previous: service.Signer | None) -> None:
        assert previous is not None
        assert previous.key_id == old.key_id
        raise RuntimeError("audit failed")

    with pytest.raises(RuntimeError):
        service.generate_key(overwrite=True, before_install=refuse)
    assert service.load_signer().key_id == old.key_id
    assert list(key_path.parent.iterdir()) == [key_path]


def test_no_key_is_a_clear_error(key_path: Path) -> None:
    with pytest.raises(SigningNotConfigured) as exc:
        service.load_signer()
    assert exc.value.message == NOT_CONFIGURED
    assert exc.value.status_code == 503
    with pytest.raises(SigningNotConfigured):
        service.sign_document({"a": 1})
    # nothing to verify against either
    foreign = service.sign_document(DOC, signer=service.new_signer())
    with pytest.raises(SigningNotConfigured):
        service.verify_envelope(foreign)
    assert service.ensure_key()[1] is True
    assert service.ensure_key()[1] is False


def test_a_broken_key_file_is_named(key_path: Path) -> None:
    key_path.parent.mkdir(parents=True)
    key_path.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(SigningNotConfigured, match="无效") as exc:
        service.load_signer()
    assert str(key_path) in exc.value.message
    # a key whose public half does not belong to its private half
    a, b = service.new_signer(), service.new_signer()
    mixed = service.Signer(private_key=a.private_key, public_key=b.public_key)
    key_path.write_text(mixed.to_pem())
    with pytest.raises(SigningNotConfigured, match="私钥与公钥不匹配"):
        service.load_signer()


# ---------------------------------------------------------------- envelopes


def test_sign_and_verify_round_trip(key_path: Path) -> None:
    signer = service.generate_key()
    envelope = service.sign_document(DOC)
    assert set(envelope) == {"document", "signature"}
    sig = envelope["signature"]
    assert set(sig) == {
        "algorithm",
        "signer",
        "key_id",
        "public_key",
        "signed_at",
        "digest",
        "value",
    }
    assert sig["algorithm"] == "SM2-SM3"
    assert sig["signer"] == "govshare 政务数据共享交换平台"
    assert sig["key_id"] == signer.key_id
    assert sig["public_key"] == signer.public_key_hex
    assert sig["signed_at"].endswith("Z")
    signed_at = datetime.fromisoformat(sig["signed_at"])
    assert abs((datetime.now(UTC) - signed_at).total_seconds()) < 60
    # the document is plain JSON: what the client reads back is what was signed
    doc = envelope["document"]
    assert doc["record"] == {"姓名": "张三", "出生日期": "1990-01-01", "补贴": "1200.50"}
    assert doc["queried_at"] == "2026-11-20T08:30:00+00:00"
    assert sig["digest"] == sm3_hex(canonical_json(doc).encode())
    outcome = service.verify_envelope(roundtrip(envelope))
    assert outcome.valid, outcome.message
    assert outcome.message == "签名有效：数据由本平台签发，签发后未被修改"
    assert (outcome.key_id, outcome.signed_at, outcome.signer) == (
        signer.key_id,
        sig["signed_at"],
        "govshare 政务数据共享交换平台",
    )
    # key order and whitespace of the JSON do not matter
    reordered = json.loads(json.dumps(envelope, indent=4))
    reordered["document"] = dict(reversed(list(reordered["document"].items())))
    assert service.verify_envelope(reordered).valid
    # two signatures of one document differ (SM2 is randomized) and both verify
    again = service.sign_document(DOC)
    assert again["signature"]["value"] != sig["value"]
    assert service.verify_envelope(again).valid


Tamper = Callable[[dict[str, Any]], None]


def _set(path: tuple[str, ...], value: object) -> Tamper:
    def tamper(envelope: dict[str, Any]) -> None:
        target = envelope
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return tamper


def _rehash(envelope: dict[str, Any]) -> None:
    """Change the data and recompute its digest: only the signature can tell."""
    envelope["document"]["record"]["补贴"] = "9999.00"
    envelope["signature"]["digest"] = sm3_hex(canonical_json(envelope["document"]).encode())


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (_set(("document", "record", "姓名"), "李四"), "数据内容与签名不符：数据在签发后被修改"),
        (_set(("document", "extra"), 1), "数据内容与签名不符"),
        (_rehash, "签名验证失败"),
        (_set(("signature", "signed_at"), "2020-01-01T00:00:00.000000Z"), "签名验证失败"),
        (_set(("signature", "signer"), "另一个平台"), "签名验证失败"),
        (_set(("signature", "key_id"), "0123456789abcdef"), "密钥标识与签名公钥不符"),
        (_set(("signature", "value"), "3044" + "00" * 68), "签名验证失败"),
        (_set(("signature", "value"), "not hex"), "签名值格式不正确"),
        (_set(("signature", "algorithm"), "RSA-SHA256"), "不支持的签名算法：RSA-SHA256"),
        (_set(("signature", "signed_at"), "yesterday"), "签名时间格式不正确"),
        (_set(("signature", "public_key"), "04" + "11" * 64), "签名公钥格式不正确"),
        (_set(("signature", "digest"), None), "签名信息不完整，缺少：digest"),
        (_set(("document",), [1, 2]), "不是签名文件"),
    ],
)
def test_any_change_breaks_the_signature(key_path: Path, tamper: Tamper, message: str) -> None:
    service.generate_key()
    envelope = roundtrip(service.sign_document(DOC))
    changed = copy.deepcopy(envelope)
    tamper(changed)
    outcome = service.verify_envelope(changed)
    assert not outcome.valid
    assert outcome.message.startswith(message), outcome.message
    assert service.verify_envelope(envelope).valid  # the original still verifies


def test_not_an_envelope(key_path: Path) -> None:
    service.generate_key()
    for value in (None, [], "text", {"document": {}}, {"signature": {}}):
        outcome = service.verify_envelope(value)
        assert not outcome.valid
        assert outcome.message.startswith("不是签名文件")
    # what the exporter delivers when the platform had no usable key
    unsigned = service.verify_envelope({"document": {"a": 1}, "signature": None})
    assert not unsigned.valid
    assert unsigned.message.startswith("数据未签名")


def test_a_foreign_key_is_refused(key_path: Path) -> None:
    service.generate_key()
    foreign = service.new_signer()
    forged = service.sign_document(DOC, signer=foreign)
    outcome = service.verify_envelope(forged)
    assert not outcome.valid
    assert outcome.message == "签名密钥不是本平台的密钥"
    assert outcome.key_id == foreign.key_id
    # claiming the platform's key does not help: the signature was made with another key
    platform = service.load_signer()
    forged["signature"]["public_key"] = platform.public_key_hex
    forged["signature"]["key_id"] = platform.key_id
    assert service.verify_envelope(forged).message.startswith("签名验证失败")


def test_a_rotated_key_verifies_only_when_trusted(
    key_path: Path, set_env: Callable[[str, object], None]
) -> None:
    old = service.generate_key()
    before = service.sign_document(DOC)
    new = service.generate_key(overwrite=True)
    after = service.sign_document(DOC)
    assert after["signature"]["key_id"] == new.key_id
    assert service.verify_envelope(after).valid
    refused = service.verify_envelope(before)
    assert not refused.valid
    assert refused.message == "签名密钥不是本平台的密钥"
    # the operator lists the old public key (any accepted spelling: here upper case, no 04)
    set_env("GOVSHARE_SIGNING_TRUSTED_KEYS", [old.public_key.hex().upper(), "not-a-key"])
    outcome = service.verify_envelope(before)
    assert outcome.valid, outcome.message
    assert (
        outcome.message == "签名有效（由本平台更换前的密钥签发）：数据由本平台签发，签发后未被修改"
    )
    assert outcome.key_id == old.key_id
    assert service.verify_envelope(after).message == "签名有效：数据由本平台签发，签发后未被修改"
    keys = service.published_keys()
    assert [(k.key_id, k.current) for k in keys] == [(new.key_id, True), (old.key_id, False)]
    # trusted keys alone verify even when the key file is gone (signing then fails)
    key_path.unlink()
    assert service.verify_envelope(before).valid
    assert not service.verify_envelope(after).valid
    with pytest.raises(SigningNotConfigured):
        service.sign_document(DOC)


def test_documents_that_cannot_be_signed(key_path: Path) -> None:
    service.generate_key()
    with pytest.raises(ValidationFailed, match="NaN"):
        service.sign_document({"x": float("nan")})
    with pytest.raises(TypeError):
        service.sign_document({"x": object()})


# ---------------------------------------------------------------- data files


def test_sm3_stream_matches_the_one_shot_hash(tmp_path: Path) -> None:
    assert Sm3Stream(b"abc").hexdigest() == (
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    )
    data = bytes(range(256)) * 9000  # a little over 2 chunks
    h = Sm3Stream()
    for i in range(0, len(data), 7777):
        h.update(data[i : i + 7777])
    assert h.hexdigest() == sm3_hex(data) == h.hexdigest()  # hexdigest can be read twice
    assert h.size == len(data)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert service.hash_file(path) == (sm3_hex(data), len(data))
    with path.open("rb") as f, pytest.raises(PayloadTooLarge):
        service.hash_stream(f, limit=len(data) - 1)


def test_manifest_contents(key_path: Path, tmp_path: Path) -> None:
    service.generate_key()
    _data, manifest_path = signed_csv(tmp_path / "out")
    assert manifest_path == tmp_path / "out" / "export_12.csv.manifest.json"
    envelope = json.loads(manifest_path.read_text(encoding="utf-8"))
    doc = envelope["document"]
    raw = CSV.encode("utf-8")
    assert doc == {
        "kind": "govshare.file-manifest",
        "file_name": "export_12.csv",
        "size": len(raw),
        "rows": 2,
        "sm3": sm3_hex(raw),
        "export_id": 12,
        "dataset": "户籍人口",
    }
    with pytest.raises(ValidationFailed, match="sm3"):
        service.sign_manifest({"file_name": "a.csv", "size": 1, "rows": 1, "sm3": "zz"})
    with pytest.raises(ValidationFailed, match="file_name"):
        service.sign_manifest({"file_name": "../a.csv", "size": 1, "rows": 1, "sm3": "0" * 64})
    with pytest.raises(ValidationFailed, match="rows"):
        service.sign_manifest({"file_name": "a.csv", "size": 1, "rows": True, "sm3": "0" * 64})


def test_verify_a_data_file_against_its_manifest(key_path: Path, tmp_path: Path) -> None:
    service.generate_key()
    data, manifest_path = signed_csv(tmp_path / "out")
    outcome = service.verify_file(data)  # finds <file>.manifest.json
    assert outcome.valid, outcome.message
    assert outcome.message.startswith("签名有效：文件与本平台签发的签名清单一致（2 行，")
    assert (outcome.file_name, outcome.rows, outcome.size) == (
        "export_12.csv",
        2,
        len(CSV.encode()),
    )
    assert service.verify_file(data, manifest_path).valid
    # given the manifest, the data file named in it is checked too
    via_manifest = service.verify_file(manifest_path)
    assert via_manifest.valid
    assert "文件与本平台签发的签名清单一致" in via_manifest.message
    # a file that was changed after signing: a byte more, or a byte different
    data.write_bytes(CSV.encode() + b"\n")
    outcome = service.verify_file(data)
    assert not outcome.valid
    assert outcome.message.startswith("文件大小与签名清单不符")
    data.write_bytes(CSV.replace("980.00", "989.00").encode())
    outcome = service.verify_file(data)
    assert not outcome.valid
    assert outcome.message == "文件内容与签名清单不符（SM3 摘要不同）：文件在签发后被修改"
    assert not service.verify_file(manifest_path).valid
    # a manifest whose signature was broken
    data.write_text(CSV, encoding="utf-8")
    envelope = json.loads(manifest_path.read_text(encoding="utf-8"))
    envelope["document"]["rows"] = 3
    manifest_path.write_text(json.dumps(envelope, ensure_ascii=False), encoding="utf-8")
    assert service.verify_file(data).message.startswith("数据内容与签名不符")


def test_finding_the_manifest(key_path: Path, tmp_path: Path) -> None:
    service.generate_key()
    data, manifest_path = signed_csv(tmp_path / "a")
    # <stem>.manifest.json
    manifest_path.rename(tmp_path / "a" / "export_12.manifest.json")
    assert service.verify_file(data).valid
    # any *.manifest.json whose document names the file
    (tmp_path / "a" / "export_12.manifest.json").rename(tmp_path / "a" / "清单.manifest.json")
    (tmp_path / "a" / "other.manifest.json").write_text("{not json", encoding="utf-8")
    assert service.verify_file(data).valid
    # a renamed data file verifies against an explicit manifest, with a note
    renamed = data.rename(tmp_path / "a" / "download (1).csv")
    outcome = service.verify_file(renamed, tmp_path / "a" / "清单.manifest.json")
    assert outcome.valid
    assert outcome.message.endswith("注意：文件名与清单记载的“export_12.csv”不同，内容一致")
    # no manifest at all
    lone = tmp_path / "b" / "x.csv"
    lone.parent.mkdir()
    lone.write_text(CSV, encoding="utf-8")
    outcome = service.verify_file(lone)
    assert not outcome.valid
    assert outcome.message.startswith("未找到签名清单（应为同目录下的 x.csv.manifest.json）")
    assert service.verify_file(tmp_path / "missing.csv").message.startswith("找不到文件")
    assert service.verify_file(lone, tmp_path / "none.json").message.startswith("找不到签名清单")


def test_a_signed_json_file_and_a_manifest_alone(key_path: Path, tmp_path: Path) -> None:
    service.generate_key()
    result = tmp_path / "query.json"
    result.write_text(json.dumps(service.sign_document(DOC), ensure_ascii=False), "utf-8")
    assert service.verify_file(result).valid
    # a manifest whose data file is not at hand: the signature holds, the file is unchecked
    data, manifest_path = signed_csv(tmp_path / "c")
    data.unlink()
    outcome = service.verify_file(manifest_path)
    assert outcome.valid
    assert "尚未核对数据文件本身" in outcome.message
    # a query result is not a manifest for a data file
    other = tmp_path / "d.csv"
    other.write_text(CSV, encoding="utf-8")
    outcome = service.verify_file(other, result)
    assert not outcome.valid
    assert outcome.message == "所给的签名文件不是数据文件的签名清单"


# ---------------------------------------------------------------- interoperability

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")


def _openssl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
    )


@needs_openssl
def test_openssl_reads_the_key_and_verifies_the_signature(key_path: Path, tmp_path: Path) -> None:
    signer = service.generate_key()
    text = _openssl("pkey", "-in", str(key_path), "-text", "-noout", cwd=tmp_path).stdout
    assert "SM2" in text
    (tmp_path / "pub.pem").write_text(signer.public_key_pem)
    envelope = service.sign_document(DOC)
    (tmp_path / "message.json").write_bytes(service.signed_message(envelope["signature"]))
    (tmp_path / "sig.der").write_bytes(bytes.fromhex(envelope["signature"]["value"]))
    args = ["pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-digest", "sm3"]
    args += ["-pkeyopt", "distid:1234567812345678", "-in", "message.json", "-sigfile", "sig.der"]
    proc = _openssl(*args, cwd=tmp_path)
    assert proc.returncode == 0
    assert "Signature Verified Successfully" in proc.stdout
    (tmp_path / "message.json").write_bytes(b"x" + service.signed_message(envelope["signature"]))
    assert _openssl(*args, cwd=tmp_path).returncode != 0


@needs_openssl
def test_keys_made_by_openssl_are_read(key_path: Path, tmp_path: Path) -> None:
    key_path.parent.mkdir(parents=True)
    genpkey = ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2"]
    made = _openssl(*genpkey, "-out", str(key_path), cwd=tmp_path)
    if made.returncode != 0:
        pytest.skip("this openssl has no SM2")
    envelope = service.sign_document(DOC)
    assert service.verify_envelope(envelope).valid
    sec1 = tmp_path / "sec1.pem"
    made = _openssl("ecparam", "-name", "SM2", "-genkey", "-out", str(sec1), cwd=tmp_path)
    assert made.returncode == 0
    assert len(service.read_key(sec1).key_id) == 16
