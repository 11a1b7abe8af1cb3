"""Agreement sharing (协议共享, seed 004 art. 16(3)): signed by both departments, filed
with the data authority, a grant for the agreement's term; refused where the rulebook
has no such rule."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy.orm import Session

from govshare.errors import Conflict, PermissionDenied, ValidationFailed
from govshare.principal import Principal
from govshare.sharing import agreements, grants
from govshare.sharing.models import AgreementStatus, GrantStatus, ShareAgreement
from tests.catalog.conftest import CatalogWorld, publish
from tests.sharing.test_applications import FILED, use_rulebook


def agreement_in(entry_id: int, **overrides: Any) -> agreements.AgreementIn:
    data: dict[str, Any] = {
        "entry_id": entry_id,
        "items": ["id_number", "name"],
        "methods": ["verification"],
        "purpose": "长期核验低保对象户籍信息",
        "scenario": "最低生活保障动态管理",
        "text": "双方约定由公安局通过平台长期提供户籍核验服务，民政局仅用于低保审核。",
        "starts_on": date(2026, 10, 8),
        "ends_on": date(2028, 10, 7),
    }
    return agreements.AgreementIn(**(data | overrides))


def signed(db: Session, world: CatalogWorld, **kw: Any) -> ShareAgreement:
    entry_id = publish(db, world).entry_id
    use_rulebook(db, world, "neixiang-2017")  # seed 004 has agreement sharing
    agreement = agreements.draft(db, world.other_officer, agreement_in(entry_id, **kw), today=FILED)
    agreements.sign(db, world.other_officer, agreement)
    agreements.sign(db, world.head, agreement)
    db.commit()
    return agreement


def test_signed_filed_and_granted_for_the_term(db: Session, world: CatalogWorld) -> None:
    agreement = signed(db, world)
    assert agreement.number == f"XY-2026-{agreement.id:05d}"
    assert agreement.provider_signed_by == world.head.name
    with pytest.raises(PermissionDenied):
        agreements.file(db, world.head, agreement, today=FILED)
    grant = agreements.file(db, world.authority, agreement, "已备案", today=FILED)
    db.commit()
    assert agreement.status == AgreementStatus.FILED  # term begins Oct 8
    assert (grant.agreement_id, grant.starts_on, grant.ends_on, grant.items) == (
        agreement.id,
        date(2026, 10, 8),
        date(2028, 10, 7),
        ["id_number", "name"],
    )
    consumer, entry = world.civil.id, agreement.entry_id
    with pytest.raises(PermissionDenied, match="2026-10-08 起生效"):
        grants.check_grant(db, consumer, entry, "name", "verification", FILED)
    agreements.refresh(db, world.authority, agreement, today=date(2026, 10, 8))
    assert agreement.status == AgreementStatus.ACTIVE
    assert grants.check_grant(db, consumer, entry, "name", "verification", date(2026, 10, 8))
    assert agreements.refresh_all(db, world.authority, today=date(2028, 10, 8)) == 1
    assert agreement.status == AgreementStatus.ENDED
    with pytest.raises(PermissionDenied, match="到期"):
        grants.check_grant(db, consumer, entry, "name", "verification", date(2028, 10, 8))
    assert [h["action"] for h in agreement.history] == [
        "draft",
        "sign",
        "sign",
        "file",
        "start",
        "end",
    ]


def test_filing_needs_both_signatures_and_the_rule(db: Session, world: CatalogWorld) -> None:
    entry_id = publish(db, world).entry_id
    use_rulebook(db, world, "pingshan-2026")  # seed 000 has no agreement sharing
    with pytest.raises(ValidationFailed, match="未规定协议共享"):
        agreements.draft(db, world.other_officer, agreement_in(entry_id), today=FILED)
    use_rulebook(db, world, "neixiang-2017")
    agreement = agreements.draft(
        db, world.other_officer, agreement_in(entry_id, number="内乡协议001"), today=FILED
    )
    with pytest.raises(Conflict, match="已被使用"):
        agreements.draft(
            db, world.other_officer, agreement_in(entry_id, number="内乡协议001"), today=FILED
        )
    with pytest.raises(ValidationFailed, match="本部门"):
        agreements.draft(db, world.officer, agreement_in(entry_id), today=FILED)  # own data
    with pytest.raises(PermissionDenied):
        agreements.sign(db, world.officer, agreement)  # provider officer: no review right
    agreements.sign(db, world.other_officer, agreement)
    with pytest.raises(Conflict):
        agreements.sign(db, world.other_officer, agreement)
    with pytest.raises(ValidationFailed, match="双方部门签署"):
        agreements.file(db, world.authority, agreement, today=FILED)
    agreements.sign(db, world.reviewer, agreement)
    use_rulebook(db, world, "pingshan-2026")
    with pytest.raises(ValidationFailed, match="未规定协议共享"):
        agreements.file(db, world.authority, agreement, today=FILED)
    use_rulebook(db, world, "neixiang-2017")
    agreements.file(db, world.authority, agreement, today=date(2026, 10, 9))
    assert agreement.status == AgreementStatus.ACTIVE
    with pytest.raises(Conflict):
        agreements.file(db, world.authority, agreement, today=date(2026, 10, 9))


def test_only_the_authority_terminates(db: Session, world: CatalogWorld) -> None:
    agreement = signed(db, world)
    grant = agreements.file(db, world.authority, agreement, today=date(2026, 10, 8))
    provider: Principal
    for provider in (world.head, world.reviewer):
        with pytest.raises(PermissionDenied, match="第三十条第（七）项"):
            agreements.terminate(db, provider, agreement, "不再提供")
    with pytest.raises(PermissionDenied):
        agreements.terminate(db, world.other_officer, agreement, "不再需要")
    agreements.terminate(db, world.authority, agreement, "发现超范围使用")
    db.commit()
    assert (agreement.status, agreement.status_reason) == (
        AgreementStatus.TERMINATED,
        "发现超范围使用",
    )
    assert grant.status == GrantStatus.TERMINATED
    with pytest.raises(PermissionDenied, match="已被终止"):
        grants.check_grant(
            db, world.civil.id, agreement.entry_id, "name", "verification", date(2026, 10, 9)
        )
    assert agreements.get_agreement(db, world.other_officer, agreement.id) == agreement
    assert agreements.agreements_for(db, world.authority) == [agreement]
