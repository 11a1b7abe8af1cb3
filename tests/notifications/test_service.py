"""The inbox service: notify (with dedupe), recipients, scoping, marking read."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.audit.models import AuditEntry
from govshare.errors import NotFound, ValidationFailed
from govshare.notifications import service
from govshare.notifications.models import Notification
from govshare.orgs.models import User
from govshare.permissions import Role
from govshare.principal import Principal
from tests.conftest import Factory, platform

KIND = "sharing:application:new"


def _notify(db: Session, *users: User, key: str | None = None, link: str = "/catalog") -> int:
    return service.notify(
        db, [u.id for u in users], KIND, "新的共享申请待审核", "民政局申请共享户籍数据", link, key
    )


def test_notify_creates_one_per_recipient_and_dedupes_by_key(db: Session, factory: Factory) -> None:
    a, b = factory.user(Role.DEPT_REVIEWER), factory.user(Role.DEPT_OFFICER)
    assert _notify(db, a, b, a) == 2  # a repeated recipient counts once
    assert service.unread_count(db, a.id) == 1
    # a job that runs twice with the same key notifies each person once
    assert _notify(db, a, key="deadline:app-7:2d") == 1
    assert _notify(db, a, b, key="deadline:app-7:2d") == 1  # only b is new
    assert _notify(db, a, b, key="deadline:app-7:2d") == 0
    assert service.unread_count(db, a.id) == 2
    assert service.unread_count(db, b.id) == 2
    row = db.scalars(select(Notification).where(Notification.recipient_id == b.id)).first()
    assert row is not None
    assert (row.kind, row.title, row.link, row.read_at) == (
        KIND,
        "新的共享申请待审核",
        "/catalog",
        None,
    )
    assert service.notify(db, [], KIND, "标题", "", "/") == 0
    # creating notifications is not audited (the action that caused them is)
    assert db.scalar(select(AuditEntry).where(AuditEntry.action.like("notifications%"))) is None


@pytest.mark.parametrize(
    "link",
    ["//evil.example", "https://evil.example/x", "catalog", "", "/\\evil.example", "/a b"],
)
def test_notify_refuses_links_outside_the_platform(
    db: Session, factory: Factory, link: str
) -> None:
    a = factory.user()
    with pytest.raises(ValidationFailed) as exc:
        _notify(db, a, link=link)
    assert exc.value.field == "link"
    assert service.unread_count(db, a.id) == 0


def test_notify_validates_title_body_kind_and_recipients(db: Session, factory: Factory) -> None:
    a = factory.user()
    with pytest.raises(ValidationFailed):
        service.notify(db, [a.id], KIND, "题" * 201, "", "/")
    with pytest.raises(ValidationFailed):
        service.notify(db, [a.id], KIND, "  ", "", "/")
    with pytest.raises(ValidationFailed):
        service.notify(db, [a.id], KIND, "标题", "文" * 2001, "/")
    with pytest.raises(ValidationFailed):
        service.notify(db, [a.id], "Sharing New!", "标题", "", "/")
    with pytest.raises(ValidationFailed):
        service.notify(db, [a.id, 99_999_999], KIND, "标题", "", "/")
    assert service.notify(db, [a.id], KIND, "题" * 200, "文" * 2000, "/x?y=1#z") == 1


def test_recipient_helpers_return_active_users_with_the_roles(
    db: Session, factory: Factory
) -> None:
    city = factory.jurisdiction()
    dept = factory.department(city)
    other_dept = factory.department(city)
    reviewer = factory.user(Role.DEPT_REVIEWER, dept)
    head = factory.user(Role.DEPT_HEAD, dept)
    officer = factory.user(Role.DEPT_OFFICER, dept)
    gone = factory.user(Role.DEPT_REVIEWER, dept)
    gone.is_active = False
    other_reviewer = factory.user(Role.DEPT_REVIEWER, other_dept)
    factory.user(Role.DEPT_REVIEWER)  # another jurisdiction
    db.commit()
    assert service.users_of_department(db, dept.id, {Role.DEPT_REVIEWER, Role.DEPT_HEAD}) == [
        reviewer.id,
        head.id,
    ]
    assert service.users_of_department(db, dept.id) == [reviewer.id, head.id, officer.id]
    assert service.users_with_role_in_jurisdiction(db, city.id, {Role.DEPT_REVIEWER}) == [
        reviewer.id,
        other_reviewer.id,
    ]
    assert service.users_with_role_in_jurisdiction(db, city.id, set()) == []


def test_inbox_is_scoped_newest_first_paged_and_marked_read(db: Session, factory: Factory) -> None:
    a, b = factory.user(), factory.user()
    pa, pb = factory.principal(a), factory.principal(b)
    for n in range(service.PAGE_SIZE + 3):
        service.notify(db, [a.id], KIND, f"通知{n}", "", f"/catalog/{n}")
    _notify(db, b)
    first = service.inbox(db, pa)
    assert len(first.items) == service.PAGE_SIZE
    assert first.has_next
    assert first.items[0].title == f"通知{service.PAGE_SIZE + 2}"
    second = service.inbox(db, pa, page=2)
    assert [n.title for n in second.items] == ["通知2", "通知1", "通知0"]
    assert not second.has_next
    assert first.unread == service.PAGE_SIZE + 3
    b_id = service.inbox(db, pb).items[0].id
    # another user's notification: not found, for reading, opening and marking
    with pytest.raises(NotFound):
        service.get(db, pa, b_id)
    with pytest.raises(NotFound):
        service.open_notification(db, pa, b_id)
    own = first.items[0].id
    with pytest.raises(NotFound):
        service.mark_read(db, pa, [own, b_id])
    assert service.unread_count(db, a.id) == service.PAGE_SIZE + 3  # nothing marked
    assert service.mark_read(db, pa, [own]) == 1
    assert service.mark_read(db, pa, [own]) == 0
    assert service.open_notification(db, pa, second.items[0].id) == "/catalog/2"
    unread = service.inbox(db, pa, unread_only=True)
    assert own not in {n.id for n in unread.items}
    assert unread.unread == service.PAGE_SIZE + 1
    assert service.mark_read(db, pa, "all") == service.PAGE_SIZE + 1
    assert service.inbox(db, pa, unread_only=True).items == []
    assert service.unread_count(db, b.id) == 1  # b's inbox untouched


def test_only_users_have_an_inbox(db: Session, factory: Factory) -> None:
    a = factory.user()
    _notify(db, a)
    a_id = service.inbox(db, factory.principal(a)).items[0].id
    credential = Principal(kind="credential", id=a.id, name="户籍系统", role=Role.SYSTEM)
    for who in (credential, platform()):
        box = service.inbox(db, who)
        assert (box.items, box.unread, box.has_next) == ([], 0, False)
        assert service.mark_read(db, who, "all") == 0
        with pytest.raises(NotFound):
            service.mark_read(db, who, [a_id])
        with pytest.raises(NotFound):
            service.open_notification(db, who, a_id)
    assert service.unread_count(db, a.id) == 1
