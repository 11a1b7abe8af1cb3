"""The sharing workflow's core: filing, clocks in working days, supplement, decisions,
grants, and one transition() per change (seed 000 art. 16, seed 002 §3, seed 003 art. 12,
seed 004 art. 16)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from govshare.audit.models import AuditEntry
from govshare.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from govshare.orgs.models import Jurisdiction
from govshare.permissions import Role
from govshare.principal import Principal
from govshare.sharing import service as sharing
from govshare.sharing.models import (
    ApplicationEvent,
    ApplicationStatus,
    Grant,
    ShareApplication,
)
from tests.catalog.conftest import CatalogWorld, publish

FILED = date(2026, 9, 30)  # the Wednesday before the National Day week


def use_rulebook(db: Session, world: CatalogWorld, name: str | None) -> None:
    county = db.get(Jurisdiction, world.county.id)
    assert county is not None
    county.rulebook = name
    db.commit()


def application(entry_id: int, **overrides: Any) -> sharing.ApplicationIn:
    data: dict[str, Any] = {
        "entry_id": entry_id,
        "items": ["id_number", "name", "address"],
        "scope": "per_subject",
        "methods": ["verification"],
        "purpose": "核验低保申请人的户籍信息",
        "scenario": "最低生活保障申请审核",
        "basis": "《社会救助暂行办法》第十一条",
        "period_start": FILED,
        "period_end": date(2027, 9, 30),
    }
    return sharing.ApplicationIn(**(data | overrides))


def file(db: Session, world: CatalogWorld, entry_id: int, **kw: Any) -> ShareApplication:
    app = sharing.file_application(
        db, world.other_officer, application(entry_id, **kw), today=FILED
    )
    db.commit()
    return app


def test_the_clock_counts_working_days_across_the_national_day_week(
    db: Session, world: CatalogWorld
) -> None:
    entry_id = publish(db, world).entry_id
    # seed 000: 10 working days, reviewed by the provider
    use_rulebook(db, world, "pingshan-2026")
    app = file(db, world, entry_id)
    assert (app.status, app.reviewer, app.due) == (
        ApplicationStatus.PENDING_REVIEW,
        "provider",
        date(2026, 10, 20),  # Oct 8, 9, 10 (a Saturday worked), 12-16, 19, 20
    )
    assert not app.due_provisional
    # seed 002: 5 working days
    use_rulebook(db, world, "xiayi-2021")
    assert file(db, world, entry_id).due == date(2026, 10, 13)
    # seed 004 under seed 003: 7 working days, and the data authority decides (art. 12)
    use_rulebook(db, world, "neixiang-2017")
    by_authority = file(db, world, entry_id)
    assert (by_authority.due, by_authority.reviewer) == (date(2026, 10, 15), "authority")
    with pytest.raises(PermissionDenied):
        sharing.approve(db, world.reviewer, by_authority, today=FILED)
    grant = sharing.approve(db, world.authority, by_authority, today=FILED)
    assert grant.items == ["id_number", "name", "address"]
    # flagged the day after the due date, not on it
    assert not sharing.is_overdue(app, date(2026, 10, 20))
    assert sharing.is_overdue(app, date(2026, 10, 21))


def test_unconditional_data_is_granted_at_once(db: Session, world: CatalogWorld) -> None:
    use_rulebook(db, world, "pingshan-2026")
    entry_id = publish(
        db,
        world,
        name="户籍人口统计信息",
        share_type="unconditional",
        share_scope="",
        share_purpose="",
        data_grade="general",
    ).entry_id
    app = file(db, world, entry_id, basis="")
    assert app.status == ApplicationStatus.APPROVED
    assert app.kind == "request"
    grant = db.scalars(select(Grant).where(Grant.application_id == app.id)).one()
    assert (grant.items, grant.methods, grant.purpose) == (
        ["id_number", "name", "address"],
        ["verification"],
        "核验低保申请人的户籍信息",
    )
    assert grant.in_force(FILED)
    assert not grant.in_force(date(2027, 10, 1))


def test_material_is_asked_for_once_and_the_clock_restarts(
    db: Session, world: CatalogWorld
) -> None:
    use_rulebook(db, world, "pingshan-2026")
    app = file(db, world, publish(db, world).entry_id)
    with pytest.raises(PermissionDenied):  # only the reviewer asks
        sharing.ask_supplement(db, world.other_officer, app, "缺少审批文件", today=FILED)
    sharing.ask_supplement(
        db, world.reviewer, app, "请补充低保审批表和申请人授权书", today=date(2026, 10, 12)
    )
    assert (app.status, app.due, app.days_left_at_supplement) == (
        ApplicationStatus.SUPPLEMENT_REQUESTED,
        None,
        6,  # Oct 13-16, 19, 20
    )
    with pytest.raises(PermissionDenied):  # only the consumer resubmits
        sharing.resubmit(db, world.reviewer, app, "已补充", today=date(2026, 10, 14))
    sharing.resubmit(
        db, world.other_officer, app, "已上传低保审批表和授权书", today=date(2026, 10, 14)
    )
    # seed 000: a full new period from the resubmission
    assert (app.status, app.due) == (ApplicationStatus.PENDING_REVIEW, date(2026, 10, 28))
    with pytest.raises(Conflict, match="一次性告知"):
        sharing.ask_supplement(db, world.reviewer, app, "还缺一份材料", today=date(2026, 10, 15))
    db.commit()
    events = db.scalars(
        select(ApplicationEvent.action)
        .where(ApplicationEvent.application_id == app.id)
        .order_by(ApplicationEvent.id)
    ).all()
    assert events == ["file", "ask_supplement", "resubmit"]


def test_a_clock_that_resumes_keeps_what_was_left(
    db: Session, world: CatalogWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_rulebook(db, world, "pingshan-2026")
    real = sharing.context_for

    def resuming(session: Session, provider: Any) -> sharing.Context:
        ctx = real(session, provider)
        supplement = ctx.rules.supplement.model_copy(update={"clock": "resume"})
        rules = ctx.rules.model_copy(update={"supplement": supplement})
        return sharing.Context(provider=ctx.provider, rules=rules, calendar=ctx.calendar)

    monkeypatch.setattr(sharing, "context_for", resuming)
    app = file(db, world, publish(db, world).entry_id)
    sharing.ask_supplement(db, world.reviewer, app, "请补充审批表", today=date(2026, 10, 12))
    sharing.resubmit(db, world.other_officer, app, "已补充审批表", today=date(2026, 10, 14))
    assert app.due == date(2026, 10, 22)  # the 6 working days left, from Oct 14


def test_approve_fewer_items_never_more(db: Session, world: CatalogWorld) -> None:
    use_rulebook(db, world, "pingshan-2026")
    app = file(db, world, publish(db, world).entry_id, items=["id_number", "name"])
    with pytest.raises(ValidationFailed, match="不在申请范围内"):
        sharing.approve(db, world.reviewer, app, ["id_number", "address"], today=FILED)
    with pytest.raises(ValidationFailed):
        sharing.approve(db, world.reviewer, app, [], today=FILED)
    grant = sharing.approve(
        db, world.reviewer, app, ["id_number"], "仅用于低保审核，不得转交第三方", today=FILED
    )
    db.commit()
    assert grant.items == ["id_number"]
    assert grant.conditions == "仅用于低保审核，不得转交第三方"
    assert (grant.starts_on, grant.ends_on) == (FILED, date(2027, 9, 30))
    event = db.scalars(
        select(ApplicationEvent).where(
            ApplicationEvent.application_id == app.id, ApplicationEvent.action == "approve"
        )
    ).one()
    assert event.details["narrowed"] == ["name"]
    actions = set(db.scalars(select(AuditEntry.action)))
    assert {"sharing:application:file", "sharing:application:approve"} <= actions
    assert "sharing:grant:issue" in actions
    # a decided application cannot be decided again
    with pytest.raises(Conflict):
        sharing.reject(db, world.reviewer, app, "重复处理")


def test_reject_needs_a_reason_and_withdraw_is_the_consumers(
    db: Session, world: CatalogWorld
) -> None:
    use_rulebook(db, world, "pingshan-2026")
    entry_id = publish(db, world).entry_id
    app = file(db, world, entry_id)
    with pytest.raises(ValidationFailed, match="理由"):
        sharing.reject(db, world.reviewer, app, "不")
    sharing.reject(db, world.reviewer, app, "申请用途与共享条件不符")
    assert (app.status, app.reason) == (ApplicationStatus.REJECTED, "申请用途与共享条件不符")
    other = file(db, world, entry_id)
    with pytest.raises(PermissionDenied):
        sharing.withdraw(db, world.officer, other)  # the provider's officer
    sharing.withdraw(db, world.other_officer, other)
    assert other.status == ApplicationStatus.WITHDRAWN
    # visibility: consumer and provider see it, a third department does not
    assert sharing.get_application(db, world.officer, other.id) is other
    assert sharing.get_application(db, world.authority, other.id) is other


def test_what_cannot_be_applied_for(db: Session, world: CatalogWorld) -> None:
    use_rulebook(db, world, "pingshan-2026")
    entry_id = publish(db, world).entry_id
    with pytest.raises(ValidationFailed, match="本部门的数据无需申请"):
        sharing.file_application(db, world.officer, application(entry_id), today=FILED)
    with pytest.raises(ValidationFailed, match="不在该资源中"):
        sharing.file_application(
            db, world.other_officer, application(entry_id, items=["salary"]), today=FILED
        )
    with pytest.raises(ValidationFailed, match="不提供所选的共享方式"):
        sharing.file_application(
            db,
            world.other_officer,
            application(entry_id, scope="dataset", methods=["batch"]),
            today=FILED,
        )
    with pytest.raises(ValidationFailed, match="申请依据"):
        sharing.file_application(
            db, world.other_officer, application(entry_id, basis=""), today=FILED
        )
    with pytest.raises(ValidationFailed, match="早于今天"):
        sharing.file_application(
            db,
            world.other_officer,
            application(entry_id, period_start=date(2026, 9, 1)),
            today=FILED,
        )
    with pytest.raises(PermissionDenied):
        sharing.file_application(db, world.reviewer, application(entry_id), today=FILED)
    hidden = publish(
        db,
        world,
        name="涉密户籍核查信息",
        share_type="not_shared",
        share_scope="",
        share_purpose="",
        share_methods=[],
        share_basis="《中华人民共和国保守国家秘密法》第二十八条",
        data_items=[
            {
                "name": "公民身份号码",
                "field": "id_number",
                "data_type": "id_number",
                "required": True,
                "personal": True,
                "share_type": "not_shared",
            }
        ],
    ).entry_id
    with pytest.raises(ValidationFailed, match="不予共享，依据：《中华人民共和国保守国家秘密法》"):
        sharing.file_application(
            db, world.other_officer, application(hidden, items=["id_number"]), today=FILED
        )
    with pytest.raises(NotFound):
        sharing.get_application(db, world.other_officer, 10**6)


def test_two_decisions_at_once_make_exactly_one(db: Session, world: CatalogWorld) -> None:
    """The status is compared and set in one statement: a reviewer acting on a stale copy
    (another decided meanwhile) gets a conflict, never a second decision."""
    use_rulebook(db, world, "pingshan-2026")
    app = file(db, world, publish(db, world).entry_id)
    # another reviewer's decision lands first (as from another session)
    db.execute(
        update(ShareApplication)
        .where(ShareApplication.id == app.id)
        .values(status=ApplicationStatus.REJECTED.value)
        .execution_options(synchronize_session=False)
    )
    assert app.status == ApplicationStatus.PENDING_REVIEW  # this copy is stale
    with pytest.raises(Conflict, match="已由他人处理"):
        sharing.approve(db, world.reviewer, app, today=FILED)
    assert db.scalars(select(Grant).where(Grant.application_id == app.id)).first() is None


def test_the_role_decides_nothing_by_itself(db: Session, world: CatalogWorld) -> None:
    """A reviewer of another department cannot decide the police's applications."""
    use_rulebook(db, world, "pingshan-2026")
    app = file(db, world, publish(db, world).entry_id)
    civil_reviewer = Principal(
        kind="user",
        id=None,
        name="民政审核人",
        role=Role.DEPT_REVIEWER,
        department_id=world.civil.id,
        jurisdiction_id=world.county.id,
        permissions=world.reviewer.permissions,
    )
    with pytest.raises(PermissionDenied):
        sharing.approve(db, civil_reviewer, app, today=FILED)


def test_an_extension_where_the_rulebook_allows_one(
    db: Session, world: CatalogWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No shipped rulebook extends the reply period; one that did (10 more working days with
    the provider head's approval) is honoured once, and refused where it is absent."""
    use_rulebook(db, world, "pingshan-2026")
    app = file(db, world, publish(db, world).entry_id)
    with pytest.raises(ValidationFailed, match="未规定可以延长"):
        sharing.extend(db, world.head, app, "需要核对的数据量较大")
    real = sharing.context_for

    def extendable(session: Session, provider: Any) -> sharing.Context:
        ctx = real(session, provider)
        reply = ctx.rules.conditional_reply.model_copy(
            update={"extension_working_days": 10, "extension_approver": "dept_head"}
        )
        rules = ctx.rules.model_copy(update={"conditional_reply": reply})
        return sharing.Context(provider=ctx.provider, rules=rules, calendar=ctx.calendar)

    monkeypatch.setattr(sharing, "context_for", extendable)
    with pytest.raises(PermissionDenied, match="主要负责人"):
        sharing.extend(db, world.reviewer, app, "需要核对的数据量较大")
    sharing.extend(db, world.head, app, "需要核对的数据量较大")
    assert app.due == date(2026, 11, 3)  # 10 working days after Oct 20
    assert app.status == ApplicationStatus.PENDING_REVIEW
    with pytest.raises(Conflict, match="只能延长一次"):
        sharing.extend(db, world.head, app, "还需要时间")


def _with_rules(monkeypatch: pytest.MonkeyPatch, **changes: Any) -> None:
    """The provider's sharing rules with ``changes`` (no shipped rulebook sets them)."""
    from govshare.rules.rulebook import Choice, Citation, Deadline

    real = sharing.context_for
    cite = Citation(origin="platform", note="测试用规则")
    values: dict[str, Any] = {}
    if "compliance_days" in changes:
        values["compliance_check"] = Deadline(working_days=changes["compliance_days"], cite=cite)
    if "reviewer" in changes:
        values["reviewer"] = Choice(value=changes["reviewer"], cite=cite)

    def patched(session: Session, provider: Any) -> sharing.Context:
        ctx = real(session, provider)
        rules = ctx.rules.model_copy(update=values)
        return sharing.Context(provider=ctx.provider, rules=rules, calendar=ctx.calendar)

    monkeypatch.setattr(sharing, "context_for", patched)


def test_a_compliance_check_of_unconditional_requests(
    db: Session, world: CatalogWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where a rulebook asks the authority to check unconditional requests (some counties
    give it 2 working days), the grant waits for the check."""
    use_rulebook(db, world, "pingshan-2026")
    _with_rules(monkeypatch, compliance_days=2)
    entry_id = publish(
        db,
        world,
        name="户籍人口统计信息",
        share_type="unconditional",
        share_scope="",
        share_purpose="",
        data_grade="general",
    ).entry_id
    app = file(db, world, entry_id, basis="")
    assert (app.status, app.due) == (ApplicationStatus.COMPLIANCE_CHECK, date(2026, 10, 9))
    assert db.scalars(select(Grant).where(Grant.application_id == app.id)).first() is None
    with pytest.raises(PermissionDenied):
        sharing.pass_check(db, world.reviewer, app, today=FILED)
    sharing.pass_check(db, world.authority, app, "用途与场景相符", today=FILED)
    assert app.status == ApplicationStatus.APPROVED
    assert db.scalars(select(Grant).where(Grant.application_id == app.id)).one()
    refused = file(db, world, entry_id, basis="")
    with pytest.raises(ValidationFailed, match="理由"):
        sharing.fail_check(db, world.authority, refused, "否")
    sharing.fail_check(db, world.authority, refused, "使用场景与申请部门职责无关")
    assert (refused.status, refused.due) == (ApplicationStatus.REJECTED, None)


def test_an_authority_check_then_the_providers_review(
    db: Session, world: CatalogWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_rulebook(db, world, "pingshan-2026")
    _with_rules(monkeypatch, compliance_days=2, reviewer="authority_then_provider")
    app = file(db, world, publish(db, world).entry_id)
    assert (app.status, app.reviewer, app.due) == (
        ApplicationStatus.COMPLIANCE_CHECK,
        "authority_then_provider",
        date(2026, 10, 9),
    )
    with pytest.raises(Conflict, match="合规审查中"):  # the provider waits for the check
        sharing.approve(db, world.reviewer, app, today=FILED)
    sharing.pass_check(db, world.authority, app, today=date(2026, 10, 9))
    # the provider's own 10 working days from the day the check passed (Oct 10 is worked)
    assert (app.status, app.due) == (ApplicationStatus.PENDING_REVIEW, date(2026, 10, 22))
    with pytest.raises(PermissionDenied):  # the authority checked; the provider decides
        sharing.approve(db, world.authority, app, today=FILED)
    sharing.approve(db, world.reviewer, app, today=date(2026, 10, 12))
    assert app.status == ApplicationStatus.APPROVED
