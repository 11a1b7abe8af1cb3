"""``govshare signing generate-key / public-key`` and ``govshare verify-signature``."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import typer
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from govshare import db as govshare_db
from govshare import migrate
from govshare.audit import service as audit_service
from govshare.audit.models import AuditEntry
from govshare.db import make_engine, set_engine
from govshare.signing import service
from govshare.signing.cli import signing_app, verify_signature
from govshare.signing.service import NOT_CONFIGURED

runner = CliRunner()

verify_app = typer.Typer()
verify_app.command("verify-signature")(verify_signature)
# a second command, so that the test invokes "verify-signature" by name as govshare does
verify_app.command("noop")(lambda: None)

CSV = "统一社会信用代码,名称\n11410100MB0000000X,测试单位\n"


@pytest.fixture
def cli_db(fresh_db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """A migrated database of its own, used by the commands' unit_of_work (they commit)."""
    engine = make_engine(fresh_db_url)
    migrate.upgrade(engine)
    monkeypatch.setattr(govshare_db, "_engine", govshare_db._engine)
    monkeypatch.setattr(govshare_db, "_factory", govshare_db._factory)
    set_engine(engine)
    yield engine
    engine.dispose()


def _key_entries(engine: Engine) -> list[AuditEntry]:
    with Session(engine) as s:
        return list(
            s.scalars(
                select(AuditEntry)
                .where(AuditEntry.action == "signing:key:generate")
                .order_by(AuditEntry.seq)
            )
        )


def test_generate_key_prints_the_key_audits_and_refuses_to_overwrite(
    key_path: Path, cli_db: Engine, set_env: Callable[[str, object], None]
) -> None:
    r = runner.invoke(signing_app, ["generate-key"])
    assert r.exit_code == 0, r.output
    signer = service.load_signer()
    assert f"已生成平台签名密钥：{key_path}（文件权限 0600）" in r.output
    assert f"密钥标识：{signer.key_id}" in r.output
    assert f"公钥（SM2，十六进制）：{signer.public_key_hex}" in r.output  # on one line
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    # refused without --force; the key stays
    r = runner.invoke(signing_app, ["generate-key"])
    assert r.exit_code == 1
    assert "签名密钥文件已存在" in r.output
    assert service.load_signer().key_id == signer.key_id
    # --force rotates, and tells how to keep the old signatures valid
    set_env("GOVSHARE_SIGNING_TRUSTED_KEYS", ["04" + "ab" * 64])
    r = runner.invoke(signing_app, ["generate-key", "--force"])
    assert r.exit_code == 0, r.output
    new = service.load_signer()
    assert new.key_id != signer.key_id
    assert f"原密钥（{signer.key_id}）已被替换" in r.output
    expected = json.dumps(["04" + "ab" * 64, signer.public_key_hex])
    assert f"GOVSHARE_SIGNING_TRUSTED_KEYS='{expected}'" in r.output
    entries = _key_entries(cli_db)
    assert [e.target_id for e in entries] == [signer.key_id, new.key_id]
    assert entries[0].actor_name == "govshare signing generate-key"
    first, second = (json.loads(e.details) for e in entries)
    assert first["public_key"] == signer.public_key_hex
    assert first["replaced_key_id"] is None
    assert (second["replaced_key_id"], second["replaced_public_key"]) == (
        signer.key_id,
        signer.public_key_hex,
    )
    with Session(cli_db) as s:
        assert audit_service.verify(s).ok


def test_generate_key_elsewhere_says_how_to_use_it(
    key_path: Path, cli_db: Engine, tmp_path: Path
) -> None:
    other = tmp_path / "hsm-export" / "new.pem"
    r = runner.invoke(signing_app, ["generate-key", "--path", str(other)])
    assert r.exit_code == 0, r.output
    assert other.is_file()
    assert not key_path.exists()
    assert f"请设置 GOVSHARE_SIGNING_KEY_FILE={other}" in r.output


def test_generate_key_without_a_database_changes_nothing(
    key_path: Path, fresh_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty (unmigrated) database: the audit entry cannot be written, so no key."""
    monkeypatch.setattr(govshare_db, "_engine", govshare_db._engine)
    monkeypatch.setattr(govshare_db, "_factory", govshare_db._factory)
    engine = make_engine(fresh_db_url)
    set_engine(engine)
    try:
        r = runner.invoke(signing_app, ["generate-key"])
    finally:
        engine.dispose()
    assert r.exit_code == 1
    assert "无法写入审计日志" in r.output
    assert "密钥未生成" in r.output
    assert not key_path.exists()
    assert list(key_path.parent.iterdir()) == []  # no temporary file left behind


def test_public_key(key_path: Path, set_env: Callable[[str, object], None]) -> None:
    r = runner.invoke(signing_app, ["public-key"])
    assert r.exit_code == 1
    assert NOT_CONFIGURED in r.output
    old = service.generate_key()
    signer = service.generate_key(overwrite=True)
    set_env("GOVSHARE_SIGNING_TRUSTED_KEYS", [old.public_key_hex])
    r = runner.invoke(signing_app, ["public-key"])
    assert r.exit_code == 0, r.output
    assert f"密钥标识：{signer.key_id}" in r.output
    assert signer.public_key_hex in r.output
    assert "-----BEGIN PUBLIC KEY-----" in r.output
    assert f"{old.key_id}  {old.public_key_hex}" in r.output


def test_verify_signature_exit_codes(key_path: Path, tmp_path: Path) -> None:
    service.generate_key()
    result = tmp_path / "query.json"
    envelope = service.sign_document({"证照": "营业执照", "编号": "91410100MA0000000X"})
    result.write_text(json.dumps(envelope, ensure_ascii=False), encoding="utf-8")
    r = runner.invoke(verify_app, ["verify-signature", str(result)])
    assert r.exit_code == 0, r.output
    assert "✓ 签名有效：数据由本平台签发，签发后未被修改" in r.output
    assert "签发方：govshare 政务数据共享交换平台" in r.output
    assert f"密钥标识：{envelope['signature']['key_id']}" in r.output
    assert "（北京时间）" in r.output

    envelope["document"]["编号"] = "91410100MA0000001X"
    result.write_text(json.dumps(envelope, ensure_ascii=False), encoding="utf-8")
    r = runner.invoke(verify_app, ["verify-signature", str(result)])
    assert r.exit_code == 1
    assert "✗ 签名无效：数据内容与签名不符" in r.output

    # a data file and its manifest (found next to it, or given with --manifest)
    data = tmp_path / "export.csv"
    data.write_text(CSV, encoding="utf-8")
    manifest = service.sign_manifest(service.manifest_for_file(data, rows=1))
    elsewhere = tmp_path / "manifests" / "m.json"
    elsewhere.parent.mkdir()
    elsewhere.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    r = runner.invoke(verify_app, ["verify-signature", str(data)])
    assert r.exit_code == 1
    assert "未找到签名清单" in r.output
    r = runner.invoke(verify_app, ["verify-signature", str(data), "--manifest", str(elsewhere)])
    assert r.exit_code == 0, r.output
    assert "文件与本平台签发的签名清单一致（1 行" in r.output
    assert "行数：1" in r.output
    service.write_manifest(data, manifest)
    assert runner.invoke(verify_app, ["verify-signature", str(data)]).exit_code == 0
    data.write_text(CSV.replace("测试", "伪造"), encoding="utf-8")
    r = runner.invoke(verify_app, ["verify-signature", str(data)])
    assert r.exit_code == 1
    assert "文件内容与签名清单不符" in r.output
    r = runner.invoke(verify_app, ["verify-signature", str(tmp_path / "none.csv")])
    assert r.exit_code == 1
    assert "找不到文件" in r.output


def test_verify_signature_without_any_key(key_path: Path, tmp_path: Path) -> None:
    signed = service.sign_document({"a": 1}, signer=service.new_signer())
    path = tmp_path / "x.json"
    path.write_text(json.dumps(signed), encoding="utf-8")
    r = runner.invoke(verify_app, ["verify-signature", str(path)])
    assert r.exit_code == 1
    assert NOT_CONFIGURED in r.output
