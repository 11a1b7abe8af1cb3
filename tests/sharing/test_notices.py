"""Who hears of each step of an application, and the reminders of running clocks."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.notifications.models import Notification
from govshare.sharing import notices
from govshare.sharing import service as sharing
from tests.catalog.conftest import CatalogWorld, publish
from tests.conftest import run_cli
from tests.sharing.test_applications import FILED, application, use_rulebook


def inbox(db: Session, user_id: int | None) -> list[str]:
    return list(
        db.scalars(
            select(Notification.title)
            .where(Notification.recipient_id == user_id)
            .order_by(Notification.id)
        )
    )


def test_each_step_reaches_the_other_side(db: Session, world: CatalogWorld) -> None:
    use_rulebook(db, world, "pingshan-2026")  # the provider reviews
    app = sharing.file_application(
        db, world.other_officer, application(publish(db, world).entry_id), today=FILED
    )
    title = "新的共享申请待审核：户籍人口基本信息"
    assert inbox(db, world.reviewer.id) == [title]
    assert inbox(db, world.head.id) == [title]
    assert inbox(db, world.officer.id) == []  # the provider's officer does not review
    assert inbox(db, world.authority.id) == []
    sharing.ask_supplement(db, world.reviewer, app, "请补充低保审批表", today=FILED)
    assert inbox(db, world.other_officer.id) == ["请补正共享申请材料：户籍人口基本信息"]
    sharing.resubmit(db, world.other_officer, app, "已补充审批表", today=FILED)
    assert inbox(db, world.reviewer.id)[-1] == "共享申请已补正材料，待审核：户籍人口基本信息"
    sharing.approve(db, world.reviewer, app, ["id_number"], today=FILED)
    last = db.scalars(
        select(Notification)
        .where(Notification.recipient_id == world.other_officer.id)
        .order_by(Notification.id.desc())
    ).first()
    assert last is not None
    assert last.title == "共享申请已同意：户籍人口基本信息"
    assert "未同意的信息项：name、address" in last.body
    assert last.link == f"/sharing/applications/{app.id}"


def test_where_the_authority_decides_the_authorities_hear(db: Session, world: CatalogWorld) -> None:
    use_rulebook(db, world, "neixiang-2017")  # under nanyang-2021: the authority decides
    sharing.file_application(
        db, world.other_officer, application(publish(db, world).entry_id), today=FILED
    )
    assert inbox(db, world.authority.id) == ["新的共享申请待审核：户籍人口基本信息"]
    assert inbox(db, world.city_authority.id) == ["新的共享申请待审核：户籍人口基本信息"]
    assert inbox(db, world.reviewer.id) == []


def test_reminders_two_working_days_before_and_after_the_due_date(
    db: Session, world: CatalogWorld
) -> None:
    use_rulebook(db, world, "pingshan-2026")
    app = sharing.file_application(
        db, world.other_officer, application(publish(db, world).entry_id), today=FILED
    )
    assert app.due == date(2026, 10, 20)
    assert notices.remind(db, date(2026, 10, 15)) == 0  # 3 working days left
    # Oct 16: 2 working days left (19, 20); the reviewer and the head hear, once
    assert notices.remind(db, date(2026, 10, 16)) == 2
    assert notices.remind(db, date(2026, 10, 16)) == 0
    assert inbox(db, world.reviewer.id)[-1] == "共享申请将于 2 个工作日后到期：户籍人口基本信息"
    assert notices.remind(db, date(2026, 10, 20)) == 0  # due today: not yet overdue
    # the day after: both sides hear that it is overdue, once
    assert notices.remind(db, date(2026, 10, 21)) == 3
    assert notices.remind(db, date(2026, 10, 22)) == 0
    assert inbox(db, world.other_officer.id)[-1] == "共享申请已逾期：户籍人口基本信息"


def test_the_daily_command(tmp_path: Path) -> None:
    """``govshare sharing remind`` on a demo database: the overdue demo application is
    reported once, whatever how often the job runs."""
    url = f"sqlite:///{tmp_path / 'g.db'}"
    env = {"GOVSHARE_VAR_DIR": str(tmp_path / "var")}
    assert run_cli("demo", "--no-serve", url=url, env=env).returncode == 0
    first = run_cli("sharing", "remind", url=url, env=env)
    assert first.returncode == 0, first.stderr
    sent = int(first.stdout.split("发出提醒 ")[1].split(" 条")[0])
    assert sent > 0
    again = run_cli("sharing", "remind", url=url, env=env)
    assert "发出提醒 0 条" in again.stdout
    bad = run_cli("sharing", "remind", "--date", "2026-13-01", url=url, env=env)
    assert bad.returncode != 0


def test_disputes_reach_the_authorities_and_both_departments(
    db: Session, world: CatalogWorld
) -> None:
    from govshare.sharing import disputes

    use_rulebook(db, world, "pingshan-2026")
    app = sharing.file_application(
        db, world.other_officer, application(publish(db, world).entry_id), today=FILED
    )
    sharing.reject(db, world.reviewer, app, "申请用途与共享条件不符")
    dispute = disputes.raise_dispute(
        db, world.other_officer, app, "低保审核确需核验户籍信息，请求协调", today=FILED
    )
    assert inbox(db, world.authority.id) == ["新的共享争议：户籍人口基本信息"]
    assert inbox(db, world.reviewer.id)[-1] == "新的共享争议：户籍人口基本信息"
    disputes.start_coordination(db, world.authority, dispute, "已组织双方会商")
    disputes.uphold(db, world.authority, dispute, "经协调，申请部门同意通过核验接口另行申请")
    assert inbox(db, world.other_officer.id)[-1] == (
        "共享争议协调解决：维持不共享：户籍人口基本信息"
    )
