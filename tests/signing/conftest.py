"""Signing tests: a key file of their own under tmp_path (GOVSHARE_SIGNING_KEY_FILE), and the
platform app with the signing routers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from govshare.config import get_settings


@pytest.fixture
def key_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Where the platform's key lives in this test (no key is generated yet)."""
    path = tmp_path / "signing" / "platform.pem"
    monkeypatch.setenv("GOVSHARE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("GOVSHARE_SIGNING_KEY_FILE", str(path))
    monkeypatch.delenv("GOVSHARE_SIGNING_TRUSTED_KEYS", raising=False)
    get_settings.cache_clear()
    yield path
    get_settings.cache_clear()


@pytest.fixture
def set_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, object], None]:
    """Change a setting for the rest of the test (lists as JSON, as in the environment)."""

    def setter(name: str, value: object) -> None:
        text = value if isinstance(value, str) else json.dumps(value)
        monkeypatch.setenv(name, text)
        get_settings.cache_clear()

    return setter


@pytest.fixture
def app(app: FastAPI, key_path: Path) -> FastAPI:
    """The platform app (conftest's), with a signing key configured."""
    return app
