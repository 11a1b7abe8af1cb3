"""The compare-and-set every sharing workflow's ``transition()`` applies a state change with.

The status is changed by one ``UPDATE ... WHERE id = :id AND status = :current``: if someone
else changed it meanwhile (two reviewers deciding at once, on two connections), no row
matches, the object is reloaded and the caller is told who was first, in Chinese. The
row's lock is held to the end of the transaction, so the second writer waits for the first
and then finds the status changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from govshare.db import utcnow
from govshare.errors import Conflict


def compare_and_set(
    session: Session,
    obj: Any,
    current: str,
    values: dict[str, Any],
    *,
    taken: Callable[[str], str],
) -> None:
    """Set ``values`` (including the new ``status``) on ``obj`` if its status is still
    ``current``; else raise Conflict(``taken(status now)``). Stamps ``updated_at``."""
    model = type(obj)
    values = {"updated_at": utcnow()} | values
    done = session.execute(
        update(model)
        .where(model.id == obj.id, model.status == current)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(obj)
        raise Conflict(taken(obj.status))
    for name, value in values.items():
        setattr(obj, name, value)
