"""Sharing disputes: raised on a refusal or an overdue reply, coordinated by the data
authority within working days on the provider's calendar, escalated to the government
with a record (seed 000 art. 20, seed 003 art. 40, seed 004 art. 16)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.audit.models import AuditEntry
from govshare.errors import Conflict, PermissionDenied, ValidationFailed
from govshare.sharing import disputes, grants
from govshare.sharing import service as sharing
from govshare.sharing.models import (
    ApplicationStatus,
    DisputeStatus,
    Grant,
    ShareApplication,
    ShareDispute,
)
from tests.catalog.conftest import CatalogWorld, publish
from tests.sharing.test_applications import FILED, file, use_rulebook


def rejected(db: Session, world: CatalogWorld) -> ShareApplication:
    entry_id = publish(db, world).entry_id
    use_rulebook(db, world, "pingshan-2026")
    app = file(db, world, entry_id)
    sharing.reject(db, world.reviewer, app, "该数据涉及个人隐私，不予提供")
    db.commit()
    return app


def test_a_dispute_on_a_refusal_runs_on_working_days(db: Session, world: CatalogWorld) -> None:
    app = rejected(db, world)
    dispute = disputes.raise_dispute(
        db, world.other_officer, app, "低保审核依法需要核验户籍信息", today=FILED
    )
    db.commit()
    # raised on Wed 2026-09-30: 10 working days skip Oct 1-7 and count Sat Oct 10
    assert (dispute.status, dispute.grounds, dispute.due, dispute.due_provisional) == (
        DisputeStatus.OPEN,
        "rejected",
        date(2026, 10, 20),
        False,
    )
    calendar = disputes.calendar_for(db, dispute)
    assert disputes.days_left(dispute, calendar, FILED) == 10
    assert disputes.days_left(dispute, calendar, date(2026, 10, 9)) == 8
    assert not disputes.is_overdue(dispute, date(2026, 10, 20))
    assert disputes.is_overdue(dispute, date(2026, 10, 21))
    assert disputes.days_left(dispute, calendar, date(2026, 10, 21)) == -1


def test_raise_only_on_refusal_or_overdue_and_once(db: Session, world: CatalogWorld) -> None:
    entry_id = publish(db, world).entry_id
    use_rulebook(db, world, "pingshan-2026")
    app = file(db, world, entry_id)  # due 2026-10-20
    with pytest.raises(ValidationFailed, match="答复期限内"):
        disputes.raise_dispute(
            db, world.other_officer, app, "迟迟没有答复", today=date(2026, 10, 20)
        )
    with pytest.raises(PermissionDenied):
        disputes.raise_dispute(db, world.reviewer, app, "提供方不能提", today=date(2026, 10, 21))
    dispute = disputes.raise_dispute(
        db, world.other_officer, app, "逾期未答复", today=date(2026, 10, 21)
    )
    assert dispute.grounds == "overdue"
    with pytest.raises(Conflict, match="尚未了结的争议"):
        disputes.raise_dispute(db, world.other_officer, app, "再提一次", today=date(2026, 10, 22))
    db.commit()
    # the database itself holds one unsettled dispute per application
    assert db.scalars(select(ShareDispute.open_application_id)).all() == [app.id]
    approved = file(db, world, entry_id)
    sharing.approve(db, world.reviewer, approved, today=FILED)
    with pytest.raises(ValidationFailed, match="已同意"):
        disputes.raise_dispute(db, world.other_officer, approved, "已同意的", today=FILED)


def test_coordination_orders_fewer_items_with_conditions(db: Session, world: CatalogWorld) -> None:
    app = rejected(db, world)
    dispute = disputes.raise_dispute(db, world.other_officer, app, "依法需要核验户籍", today=FILED)
    disputes.provider_statement(db, world.reviewer, dispute, "住址属于敏感信息")
    with pytest.raises(PermissionDenied):
        disputes.start_coordination(db, world.reviewer, dispute)
    with pytest.raises(Conflict):  # coordinate first
        disputes.order_grant(db, world.authority, dispute, "协调记录内容", today=FILED)
    disputes.start_coordination(db, world.authority, dispute, "已召集双方")
    with pytest.raises(ValidationFailed):
        disputes.order_grant(db, world.authority, dispute, "记录", ["salary"], today=FILED)
    grant = disputes.order_grant(
        db,
        world.authority,
        dispute,
        "经协调，提供公民身份号码和姓名核验",
        ["id_number", "name"],
        "仅用于低保审核",
        today=date(2026, 10, 9),
    )
    db.commit()
    assert (dispute.status, dispute.outcome, dispute.open_application_id) == (
        DisputeStatus.RESOLVED_GRANTED,
        "granted",
        None,
    )
    assert (grant.items, grant.conditions, grant.dispute_id, grant.application_id) == (
        ["id_number", "name"],
        "仅用于低保审核",
        dispute.id,
        app.id,
    )
    assert grant.starts_on == date(2026, 10, 9)
    assert grants.check_grant(
        db, world.civil.id, app.entry_id, "name", "verification", date(2026, 10, 9)
    )
    assert disputes.days_left(dispute, disputes.calendar_for(db, dispute), FILED) is None
    assert [h["action"] for h in dispute.history] == [
        "raise",
        "provider_statement",
        "coordinate",
        "order_grant",
    ]
    # a settled dispute frees the application for a new one
    again = disputes.raise_dispute(db, world.other_officer, app, "对授权范围仍有异议", today=FILED)
    assert again.status == DisputeStatus.OPEN


def test_an_overdue_application_is_decided_by_the_coordination(
    db: Session, world: CatalogWorld
) -> None:
    entry_id = publish(db, world).entry_id
    use_rulebook(db, world, "pingshan-2026")
    app = file(db, world, entry_id)
    dispute = disputes.raise_dispute(
        db, world.other_officer, app, "逾期未答复", today=date(2026, 10, 21)
    )
    disputes.start_coordination(db, world.authority, dispute)
    grant = disputes.order_grant(
        db, world.authority, dispute, "提供部门同意按申请提供", today=date(2026, 10, 22)
    )
    db.commit()
    assert app.status == ApplicationStatus.APPROVED
    assert app.due is None
    assert grant.items == ["id_number", "name", "address"]
    # the provider can no longer decide it
    with pytest.raises(Conflict):
        sharing.reject(db, world.reviewer, app, "迟到的不同意理由")


def test_uphold_and_escalation_with_the_governments_decision(
    db: Session, world: CatalogWorld
) -> None:
    app = rejected(db, world)
    first = disputes.raise_dispute(db, world.other_officer, app, "依法需要核验户籍", today=FILED)
    disputes.start_coordination(db, world.authority, first)
    disputes.uphold(db, world.authority, first, "需求部门接受不予共享的理由")
    assert (first.status, first.closed_by) == (DisputeStatus.RESOLVED_UPHELD, world.authority.name)

    second = disputes.raise_dispute(db, world.other_officer, app, "情况有变化再提出", today=FILED)
    disputes.start_coordination(db, world.authority, second)
    with pytest.raises(ValidationFailed):
        disputes.escalate(db, world.authority, second, "太短")
    disputes.escalate(db, world.authority, second, "经两次协调双方仍未达成一致，报县人民政府决定")
    assert second.status == DisputeStatus.ESCALATED
    assert second.escalation_record.startswith("经两次协调")
    assert disputes.days_left(second, disputes.calendar_for(db, second), FILED) is None
    # still unsettled: no new dispute meanwhile
    with pytest.raises(Conflict):
        disputes.raise_dispute(db, world.other_officer, app, "又提一次", today=FILED)
    with pytest.raises(PermissionDenied):
        disputes.record_government_decision(
            db, world.other_officer, second, "县政府决定共享", "granted", today=FILED
        )
    grant = disputes.record_government_decision(
        db,
        world.authority,
        second,
        "县政府〔2026〕12号：同意提供姓名核验",
        "granted",
        ["name"],
        today=date(2026, 10, 12),
    )
    db.commit()
    assert isinstance(grant, Grant)
    assert grant.items == ["name"]
    assert (second.status, second.government_outcome) == (
        DisputeStatus.DECIDED_BY_GOVERNMENT,
        "granted",
    )
    actions = set(db.scalars(select(AuditEntry.action)))
    assert {
        "sharing:dispute:raise",
        "sharing:dispute:uphold",
        "sharing:dispute:escalate",
        "sharing:dispute:government_decision",
        "sharing:grant:issue",
    } <= actions
    assert disputes.get_dispute(db, world.reviewer, second.id) == second
    assert [d.id for d in disputes.disputes_of(db, app)] == [first.id, second.id]
