"""Loading and resolving rulebooks shipped in ``rules/books``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from govshare.rules.rulebook import OWN_KEYS, Rulebook, deep_merge

#: keys that describe one rulebook file and never pass to another
NOT_INHERITED = (*OWN_KEYS, "issued", "summary")

BOOKS_DIR = Path(__file__).resolve().parent / "books"
NATIONAL = "national"


class RulebookError(Exception):
    """A shipped rulebook is invalid; the platform refuses to start."""


class Registry:
    def __init__(self, raw: dict[str, dict[str, Any]]) -> None:
        if NATIONAL not in raw:
            raise RulebookError("the national default rulebook (national.yaml) is missing")
        self.raw = raw
        self._cache: dict[tuple[str, ...], Rulebook] = {}

    def names(self) -> list[str]:
        return [NATIONAL, *sorted(n for n in self.raw if n != NATIONAL)]

    def __contains__(self, name: object) -> bool:
        return name in self.raw

    def resolve(self, chain: tuple[str, ...] | list[str]) -> Rulebook:
        """Merge rulebooks from the top of the chain down; the national default is the base.

        ``chain`` lists rulebook names from the outermost jurisdiction to the innermost.
        """
        key = tuple(n for n in chain if n != NATIONAL)
        if key in self._cache:
            return self._cache[key]
        merged = dict(self.raw[NATIONAL])
        for name in key:
            if name not in self.raw:
                raise RulebookError(f"unknown rulebook {name!r}")
            merged = deep_merge(merged, self.raw[name])
        if key:  # a rulebook's own identity is never inherited
            own = self.raw[key[-1]]
            for k in NOT_INHERITED:
                merged[k] = own.get(k)
            merged["summary"] = merged["summary"] or ""
        try:
            book = Rulebook.model_validate(merged)
        except ValidationError as exc:
            raise RulebookError(f"rulebook chain {list(key) or [NATIONAL]}: {exc}") from exc
        self._cache[key] = book
        return book

    def get(self, name: str) -> Rulebook:
        return self.resolve((name,))


def load_dir(directory: Path = BOOKS_DIR) -> Registry:
    raw: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise RulebookError(f"{path.name}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise RulebookError(f"{path.name}: a rulebook is a mapping")
        missing = [k for k in OWN_KEYS if k not in data]
        if missing:
            raise RulebookError(f"{path.name}: must set {', '.join(missing)} itself")
        if data["name"] != path.stem:
            raise RulebookError(f"{path.name}: name {data['name']!r} must match the file name")
        raw[data["name"]] = data
    registry = Registry(raw)
    for name in registry.names():  # validate every file at start-up
        registry.get(name)
    return registry


@lru_cache
def registry() -> Registry:
    return load_dir()
