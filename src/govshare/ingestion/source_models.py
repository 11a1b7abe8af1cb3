"""Tables of one data item, one source (一数一源)."""

from __future__ import annotations
