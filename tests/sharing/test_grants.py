"""Grants after issue: the authority suspends, resumes or terminates (seed 003 art. 41),
the provider may not (seed 000 art. 30(7)); check_grant stops a delivery at once."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.audit.models import AuditEntry
from govshare.errors import Conflict, PermissionDenied, ValidationFailed
from govshare.sharing import grants
from govshare.sharing import service as sharing
from govshare.sharing.models import Grant, GrantStatus
from tests.catalog.conftest import CatalogWorld, publish
from tests.sharing.test_applications import FILED, file, use_rulebook


def granted(db: Session, world: CatalogWorld) -> Grant:
    entry_id = publish(db, world).entry_id
    use_rulebook(db, world, "pingshan-2026")
    app = file(db, world, entry_id)
    grant = sharing.approve(db, world.reviewer, app, ["id_number", "name"], today=FILED)
    db.commit()
    return grant


def test_check_grant_in_force_and_what_it_does_not_cover(db: Session, world: CatalogWorld) -> None:
    grant = granted(db, world)
    consumer, entry = world.civil.id, grant.entry_id
    assert grants.check_grant(db, consumer, entry, "name", "verification", FILED) == grant
    with pytest.raises(PermissionDenied, match="信息项 address"):
        grants.check_grant(db, consumer, entry, "address", "verification", FILED)
    with pytest.raises(PermissionDenied, match="数据查询接口"):
        grants.check_grant(db, consumer, entry, "name", "query", FILED)
    with pytest.raises(PermissionDenied, match="没有该资源的共享授权"):
        grants.check_grant(db, world.police.id, entry, "name", "verification", FILED)
    with pytest.raises(PermissionDenied, match="2027-09-30 到期"):
        grants.check_grant(db, consumer, entry, "name", "verification", date(2027, 10, 1))


def test_suspend_stops_at_once_resume_restores_terminate_is_final(
    db: Session, world: CatalogWorld
) -> None:
    grant = granted(db, world)
    consumer, entry = world.civil.id, grant.entry_id
    with pytest.raises(ValidationFailed):
        grants.suspend(db, world.authority, grant, "")
    grants.suspend(db, world.authority, grant, "发现超范围使用，暂停核查")
    db.commit()
    assert (grant.status, grant.status_reason, grant.status_changed_by) == (
        GrantStatus.SUSPENDED,
        "发现超范围使用，暂停核查",
        world.authority.name,
    )
    assert grant.status_changed_at is not None
    with pytest.raises(PermissionDenied, match="已被暂停：发现超范围使用"):
        grants.check_grant(db, consumer, entry, "name", "verification", FILED)
    with pytest.raises(Conflict):
        grants.suspend(db, world.authority, grant, "再次暂停一次")
    grants.resume(db, world.authority, grant, "已完成整改")
    assert grants.check_grant(db, consumer, entry, "name", "verification", FILED) == grant
    grants.terminate(db, world.authority, grant, "违法违规使用，终止服务")
    db.commit()
    with pytest.raises(PermissionDenied, match="已被终止"):
        grants.check_grant(db, consumer, entry, "name", "verification", FILED)
    with pytest.raises(Conflict):
        grants.resume(db, world.authority, grant, "想要恢复")
    actions = db.scalars(
        select(AuditEntry.action).where(
            AuditEntry.target_type == "share_grant", AuditEntry.target_id == str(grant.id)
        )
    ).all()
    assert [a for a in actions if a != "sharing:grant:issue"] == [
        "sharing:grant:suspend",
        "sharing:grant:resume",
        "sharing:grant:terminate",
    ]


def test_the_provider_cannot_end_a_grant_on_its_own(db: Session, world: CatalogWorld) -> None:
    grant = granted(db, world)
    for provider in (world.reviewer, world.head, world.officer):
        with pytest.raises(PermissionDenied, match="第三十条第（七）项"):
            grants.terminate(db, provider, grant, "不想再提供了")
        with pytest.raises(PermissionDenied, match="第三十条第（七）项"):
            grants.suspend(db, provider, grant, "不想再提供了")
    with pytest.raises(PermissionDenied, match="只有数据主管部门"):
        grants.suspend(db, world.other_officer, grant, "消费方自己暂停")
    # the city authority covers the county below it
    grants.suspend(db, world.city_authority, grant, "市级检查发现安全风险")
    assert grant.status == GrantStatus.SUSPENDED


def test_who_sees_which_grants(db: Session, world: CatalogWorld) -> None:
    grant = granted(db, world)
    assert grants.grants_for(db, world.other_officer) == [grant]
    assert grants.grants_for(db, world.other_officer, as_="provider") == []
    assert grants.grants_for(db, world.reviewer) == [grant]
    assert grants.grants_for(db, world.authority, as_="authority") == [grant]
    assert grants.grants_for(db, world.authority, status=GrantStatus.SUSPENDED) == []
    assert grants.get_grant(db, world.reviewer, grant.id) == grant
