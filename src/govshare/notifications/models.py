"""Tables of the notifications inbox.

``notifications``: one row per recipient and message. A notification is a short Chinese
title, an optional body and a link to the item it is about (a relative URL inside the
platform). ``dedupe_key`` (optional, unique per recipient) lets a job that runs again, for
instance "deadline in 2 working days", notify each person once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from govshare.db import Base, utcnow

TITLE_MAX = 200
BODY_MAX = 2000
LINK_MAX = 512
KIND_MAX = 64
DEDUPE_MAX = 128


class Notification(Base):
    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: a short code naming what happened, e.g. ``sharing:application:new``
    kind: Mapped[str] = mapped_column(String(KIND_MAX))
    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    body: Mapped[str] = mapped_column(Text, default="")
    #: a relative URL inside the platform ("/..." but never "//...")
    link: Mapped[str] = mapped_column(String(LINK_MAX))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]
    dedupe_key: Mapped[str | None] = mapped_column(String(DEDUPE_MAX))

    __table_args__ = (
        # the inbox and the unread badge: WHERE recipient_id = ? [AND read_at IS NULL]
        Index("ix_notifications_recipient_read", "recipient_id", "read_at"),
        # NULL keys are distinct on both databases: only keyed notifications are deduplicated
        Index("uq_notifications_recipient_dedupe", "recipient_id", "dedupe_key", unique=True),
    )

    @property
    def is_read(self) -> bool:
        return self.read_at is not None
