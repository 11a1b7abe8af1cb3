"""Notifications inbox pages: ``/notifications`` (newest first, paged, unread only on
request), "全部标为已读", and ``/notifications/{id}/open`` (marks read, then 303 to the link).

Every logged-in user has an inbox (``orgs:self:read``); an app credential has an empty one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from govshare.deps import DbSession, require
from govshare.notifications import service
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.web import redirect, render

router = APIRouter()

Reader = Annotated[Principal, Depends(require(Perm.SELF_READ))]


def _page_db(request: Request, db: DbSession) -> Session:
    """The request's session, also left on ``request.state`` for the unread badge that
    ``render()`` puts in the top bar."""
    request.state.db = db
    return db


PageDb = Annotated[Session, Depends(_page_db)]


@router.get("/notifications")
def inbox_page(
    request: Request,
    db: PageDb,
    principal: Reader,
    unread: bool = False,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    box = service.inbox(db, principal, unread_only=unread, page=page)
    return render(
        request,
        "notifications/inbox.html",
        {"box": box, "base_url": "/notifications?unread=1" if unread else "/notifications?"},
        section="notifications",
    )


@router.post("/notifications/read-all")
def read_all(db: DbSession, principal: Reader) -> Response:
    marked = service.mark_read(db, principal, "all")
    return redirect("/notifications", f"已将 {marked} 条通知标为已读" if marked else "没有未读通知")


@router.get("/notifications/{notification_id}/open")
def open_notification(db: DbSession, principal: Reader, notification_id: int) -> Response:
    return redirect(service.open_notification(db, principal, notification_id))
