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

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        self.var_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.var_dir / 'govshare.db').resolve()}"

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
