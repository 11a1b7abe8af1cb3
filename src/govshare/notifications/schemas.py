"""JSON shapes of the notifications API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, model_validator

from govshare.notifications.models import Notification
from govshare.notifications.service import InboxPage


class NotificationOut(BaseModel):
    id: int
    kind: str
    title: str
    body: str
    link: str
    created_at: datetime
    read_at: datetime | None
    is_read: bool

    @classmethod
    def of(cls, row: Notification) -> NotificationOut:
        return cls(
            id=row.id,
            kind=row.kind,
            title=row.title,
            body=row.body,
            link=row.link,
            created_at=row.created_at,
            read_at=row.read_at,
            is_read=row.is_read,
        )


class InboxOut(BaseModel):
    items: list[NotificationOut]
    page: int
    has_next: bool
    unread_count: int

    @classmethod
    def of(cls, page: InboxPage) -> InboxOut:
        return cls(
            items=[NotificationOut.of(r) for r in page.items],
            page=page.page,
            has_next=page.has_next,
            unread_count=page.unread,
        )


class UnreadCountOut(BaseModel):
    unread_count: int


class MarkReadIn(BaseModel):
    """Either ``{"ids": [...]}`` or ``{"all": true}``."""

    ids: list[int] | None = Field(default=None, max_length=1000)
    all: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> MarkReadIn:
        if self.all == (self.ids is not None):
            raise ValueError("请给出 ids 或 all（二选一）")
        return self


class MarkReadOut(BaseModel):
    marked: int
    unread_count: int
