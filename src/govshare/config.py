"""One settings object for the whole platform (environment prefix ``GOVSHARE_``)."""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GOVSHARE_", extra="ignore")

    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; default: a SQLite file under ./var/",
    )
    var_dir: Path = Field(default=Path("var"), description="where local state lives")
    secret_key: str = Field(
        default="",
        description="HMAC key for CSRF tokens; default: generated once into var/secret_key",
    )
    session_hours: int = Field(default=8, ge=1, le=72)
    cookie_secure: bool = Field(default=False, description="set on HTTPS deployments")
    root_jurisdiction: str = Field(
        default="", description="division code of the deployment's top jurisdiction"
    )
    default_rulebook: str = "national"
    max_upload_bytes: int = 20 * 1024 * 1024
    trusted_proxies: list[str] = Field(default_factory=list)
    signing_key_file: Path | None = Field(
        default=None,
        description="the platform's SM2 signing key (PEM, written by `govshare signing "
        "generate-key`); default: var/signing/sm2_private.pem",
    )
    signing_trusted_keys: list[str] = Field(
        default_factory=list,
        description="earlier SM2 public keys (hex) whose signatures still verify after a "
        "key rotation",
    )
    ledger_process: bool = Field(
        default=True,
        description="a server worker commits its data-service calls' ledger rows and audit "
        "entries in a writer process of its own (off: in the worker itself)",
    )
    dataservice_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        le=60,
        description="how long a worker reuses a credential or a grant it has read; a "
        "suspension or revocation takes effect in every worker within this time",
    )
    dataservice_rate_per_minute: int = Field(
        default=6000, ge=1, description="default calls per minute per grant"
    )
    dataservice_daily_quota: int = Field(
        default=1_000_000, ge=1, description="default calls per day per grant"
    )
    export_dir: Path | None = Field(
        default=None, description="where batch exports are written; default: var/exports"
    )
    export_retention_days: int = Field(
        default=7,
        ge=0,
        description="days a finished batch export's file is kept for download; then it is "
        "deleted (its job, manifest and ledger rows stay). 0: kept until deleted by hand",
    )

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        self.var_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.var_dir / 'govshare.db').resolve()}"

    def resolved_signing_key_file(self) -> Path:
        return self.signing_key_file or self.var_dir / "signing" / "sm2_private.pem"

    def resolved_export_dir(self) -> Path:
        path = self.export_dir or self.var_dir / "exports"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def resolved_secret_key(self) -> str:
        if self.secret_key:
            return self.secret_key
        self.var_dir.mkdir(parents=True, exist_ok=True)
        path = self.var_dir / "secret_key"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    return Settings()
