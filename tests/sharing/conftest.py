"""Sharing tests build on the catalog's test world (a city and a county with officers)."""

from tests.catalog.conftest import world  # noqa: F401 (a fixture)
