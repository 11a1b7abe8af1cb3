"""Notifications inbox JSON API (mounted under ``/api/v1``).

Every logged-in user has an inbox (``orgs:self:read``). An app credential has none: it
gets an empty list and an unread count of 0; marking any id read answers 404.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from govshare.deps import DbSession, require
from govshare.notifications import service
from govshare.notifications.schemas import InboxOut, MarkReadIn, MarkReadOut, UnreadCountOut
from govshare.permissions import Perm
from govshare.principal import Principal

router = APIRouter(tags=["notifications"])

Reader = Annotated[Principal, Depends(require(Perm.SELF_READ))]


@router.get("/notifications", response_model=InboxOut)
def api_inbox(
    db: DbSession,
    principal: Reader,
    unread: bool = False,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> InboxOut:
    """本人的站内通知，最新的在前，每页 20 条；``unread=true`` 只看未读。"""
    return InboxOut.of(service.inbox(db, principal, unread_only=unread, page=page))


@router.get("/notifications/unread-count", response_model=UnreadCountOut)
def api_unread_count(db: DbSession, principal: Reader) -> UnreadCountOut:
    """本人的未读通知数。"""
    return UnreadCountOut(unread_count=service.unread_count(db, service.owner(principal)))


@router.post("/notifications/read", response_model=MarkReadOut)
def api_mark_read(db: DbSession, principal: Reader, data: MarkReadIn) -> MarkReadOut:
    """标为已读：``{"ids": [...]}``（须都是本人的通知，否则 404）或 ``{"all": true}``。"""
    ids: list[int] | Literal["all"] = "all" if data.all else (data.ids or [])
    marked = service.mark_read(db, principal, ids)
    return MarkReadOut(
        marked=marked, unread_count=service.unread_count(db, service.owner(principal))
    )
