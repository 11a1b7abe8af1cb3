"""``govshare signing generate-key`` / ``public-key`` and ``govshare verify-signature FILE``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from govshare.signing.service import Signer, VerifyOutcome

signing_app = typer.Typer(help="平台电子签名（SM2 签名密钥）", no_args_is_help=True)

console = Console(emoji=False, highlight=False, soft_wrap=True)
err = Console(stderr=True, emoji=False, highlight=False, soft_wrap=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]错误：[/red]{escape(message)}")
    return typer.Exit(code)


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """GmSSL writes a trace line to file descriptor 2 for every signature that does not
    verify; the person at the terminal should see only the verdict."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _print_key(signer: Signer) -> None:
    console.print(f"密钥标识：{signer.key_id}", markup=False)
    console.print(f"公钥（SM2，十六进制）：{signer.public_key_hex}", markup=False)


@signing_app.command("generate-key")
def generate_key(
    path: Annotated[
        Path | None,
        typer.Option(
            "--path",
            help="密钥文件（默认为 GOVSHARE_SIGNING_KEY_FILE 或 var/signing/sm2_private.pem）",
            show_default=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="覆盖已有的密钥文件（更换密钥）")] = False,
) -> None:
    """生成平台的 SM2 签名密钥（PKCS#8 PEM，文件权限 0600），打印密钥标识和公钥。

    生成和更换密钥都记入审计日志。更换密钥后，请把旧公钥加入 GOVSHARE_SIGNING_TRUSTED_KEYS，
    用旧密钥签发的数据才能继续通过验证。
    """
    from sqlalchemy.exc import SQLAlchemyError

    from govshare.audit import service as audit
    from govshare.config import get_settings
    from govshare.db import unit_of_work
    from govshare.errors import DomainError
    from govshare.principal import Principal
    from govshare.signing import service

    target = path or service.key_file()
    replaced: list[Signer] = []

    def record(signer: Signer, previous: Signer | None) -> None:
        with unit_of_work() as session:
            audit.record(
                session,
                Principal.platform("govshare signing generate-key"),
                "signing:key:generate",
                "signing_key",
                signer.key_id,
                {
                    "path": str(target),
                    "public_key": signer.public_key_hex,
                    "replaced_key_id": previous.key_id if previous else None,
                    "replaced_public_key": previous.public_key_hex if previous else None,
                },
            )
        if previous is not None:
            replaced.append(previous)

    try:
        signer = service.generate_key(target, overwrite=force, before_install=record)
    except DomainError as exc:
        raise _fail(exc.message) from None
    except SQLAlchemyError as exc:
        raise _fail(
            f"无法写入审计日志（{type(exc).__name__}），密钥未生成；"
            "请先运行 govshare db upgrade 并检查数据库连接"
        ) from None
    console.print(f"已生成平台签名密钥：{target}（文件权限 0600）", markup=False)
    _print_key(signer)
    if target.absolute() != service.key_file().absolute():
        console.print(
            f"平台当前使用的密钥文件是 {service.key_file()}；"
            f"要使用新密钥，请设置 GOVSHARE_SIGNING_KEY_FILE={target}",
            markup=False,
        )
    if replaced:
        old = replaced[0]
        trusted = [
            k
            for k in get_settings().signing_trusted_keys
            if k.strip().lower() != old.public_key_hex
        ]
        console.print(
            f"原密钥（{old.key_id}）已被替换。用原密钥签发的数据要继续通过验证，"
            "请在平台的环境中设置（然后重启平台）：",
            markup=False,
        )
        console.print(
            f"GOVSHARE_SIGNING_TRUSTED_KEYS='{json.dumps([*trusted, old.public_key_hex])}'",
            markup=False,
        )


@signing_app.command("public-key")
def public_key() -> None:
    """打印平台签名公钥（十六进制和 PEM）及仍可验证的更换前公钥，供外部验证方使用。"""
    from govshare.errors import DomainError
    from govshare.signing import service

    try:
        signer = service.load_signer()
        keys = service.published_keys()
    except DomainError as exc:
        raise _fail(exc.message) from None
    console.print(f"算法：{service.ALGORITHM}（签名者标识 1234567812345678）", markup=False)
    _print_key(signer)
    console.print(signer.public_key_pem, end="", markup=False)
    earlier = [k for k in keys if not k.current]
    if earlier:
        console.print("仍可验证的更换前公钥：", markup=False)
        for key in earlier:
            console.print(f"  {key.key_id}  {key.public_key}", markup=False)


def _local_time(signed_at: str) -> str:
    from govshare.db import LOCAL_TZ

    try:
        ts = datetime.fromisoformat(signed_at.replace("Z", "+00:00"))
    except ValueError:
        return signed_at
    return f"{ts.astimezone(LOCAL_TZ):%Y-%m-%d %H:%M:%S}（北京时间）"


def _print_outcome(outcome: VerifyOutcome) -> None:
    if outcome.valid:
        console.print(f"[green]✓ {escape(outcome.message)}[/green]")
    else:
        console.print(f"[red]✗ 签名无效：{escape(outcome.message)}[/red]")
    facts = [
        ("签发方", outcome.signer),
        ("签名时间", _local_time(outcome.signed_at) if outcome.signed_at else ""),
        ("密钥标识", outcome.key_id),
        ("清单记载的文件", outcome.file_name or ""),
        ("行数", f"{outcome.rows:,}" if outcome.rows is not None else ""),
        ("文件大小", f"{outcome.size:,} 字节" if outcome.size is not None else ""),
    ]
    for label, value in facts:
        if value:
            console.print(f"  {label}：{value}", markup=False)


def verify_signature(
    file: Annotated[
        Path,
        typer.Argument(
            help="要验证的文件：签名的 JSON 文件（查询结果），或批量交换的数据文件（CSV/XLSX）",
            show_default=False,
        ),
    ],
    manifest: Annotated[
        Path | None,
        typer.Option(
            "--manifest",
            "-m",
            help="数据文件的签名清单（默认为同目录下的 <文件名>.manifest.json）",
            show_default=False,
        ),
    ] = None,
) -> None:
    """验证平台电子签名：签名的查询结果（JSON），或数据文件及其签名清单。

    核对签名密钥是本平台的密钥、数据或文件（SM3 摘要和大小）在签发后未被修改、
    SM2 签名有效。签名有效时退出码为 0，无效时为 1。
    """
    from govshare.errors import DomainError
    from govshare.signing import service

    try:
        with _native_stderr_silenced():
            outcome = service.verify_file(file, manifest)
    except DomainError as exc:
        raise _fail(exc.message) from None
    _print_outcome(outcome)
    if not outcome.valid:
        raise typer.Exit(1)
