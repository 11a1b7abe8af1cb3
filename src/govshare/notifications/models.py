"""Tables of the notifications inbox."""

from __future__ import annotations
