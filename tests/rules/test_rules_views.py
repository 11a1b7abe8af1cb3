"""The rules pages: rulebooks, assigning a rulebook, and the working-day calendar."""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from govshare.permissions import Role
from govshare.rules import service as rules_service
from govshare.rules.models import CalendarYear
from tests.conftest import Factory, login

UNKNOWN_YEAR = "该年工作日历尚未导入，期限按周一至周五临时计算"


# ---------------------------------------------------------------- rulebooks


def test_rulebooks_page_lists_the_six_books(client, factory: Factory) -> None:
    factory.jurisdiction("夏邑县", level="county", code="411426", rulebook="xiayi-2021")
    login(client, factory.user(Role.DEPT_OFFICER).username)
    r = client.get("/rules/rulebooks")
    assert r.status_code == 200
    html = r.text
    for name in ("national", "county-2024", "nanyang-2021", "neixiang-2017", "pingshan-2026"):
        assert f'data-rulebook="{name}"' in html
    assert 'data-rulebook="xiayi-2021"' in html
    assert "南阳市人民政府" in html
    assert "强制共享 / 条件共享 / 不予共享" in html  # neixiang-2017's names
    assert "无条件共享 / 有条件共享 / 暂不共享" in html  # county-2024's names
    assert '<td class="text-nowrap">7 个工作日</td>' in html
    assert '<td class="text-nowrap">5 个工作日</td>' in html
    assert "夏邑县" in html  # the jurisdiction using xiayi-2021
    # an officer cannot assign: no links to the assignment form
    assert "/rules/jurisdictions/411426/rulebook" not in html


def test_rulebook_page_shows_every_section_with_citations(client, factory: Factory) -> None:
    login(client, factory.user(Role.DEPT_OFFICER).username)
    r = client.get("/rules/rulebooks/nanyang-2021")
    assert r.status_code == 200
    html = r.text
    for title in (
        "共享类型",
        "开放类型",
        "共享申请",
        "目录",
        "校核",
        "开放",
        "日志",
        "年报",
        "违规情形",
    ):
        assert f'<div class="card-header fw-bold">{title}</div>' in html
    assert "《南阳市政务数据共享管理暂行办法》第二十二条" in html
    assert "数据主管部门审核目录更新" in html
    # the supplement rule is inherited from the national book (a platform default) and the
    # business-continues rule from the regulation: both visibly marked as not from a seed
    assert '<span class="badge text-bg-secondary">平台默认</span>' in html
    assert '<span class="badge text-bg-warning">国家默认</span>' in html
    assert 'data-origin="platform"' in html
    assert client.get("/rules/rulebooks/nope").status_code == 404


def test_national_rulebook_is_marked_as_not_a_seed(client, factory: Factory) -> None:
    login(client, factory.user(Role.AUTHORITY).username)
    html = client.get("/rules/rulebooks/national").text
    assert "《政务数据共享条例》（国家默认）" in html
    assert '<span class="badge text-bg-warning">国家默认</span>' in html
    assert "种子" not in html  # users are shown the regulations' names


def test_assign_rulebook_page(client, db: Session, factory: Factory) -> None:
    city = factory.jurisdiction("南阳市", code="411300", rulebook="nanyang-2021")
    county = factory.jurisdiction("内乡县", level="county", parent=city, code="411325")
    token = login(client, factory.user(Role.AUTHORITY).username)
    r = client.get(f"/rules/jurisdictions/{county.code}/rulebook")
    assert r.status_code == 200
    assert 'national</span> → <span class="mono">nanyang-2021' in r.text
    assert "由南阳市指定" in r.text

    r = client.post(
        f"/rules/jurisdictions/{county.code}/rulebook",
        data={"csrf_token": token, "rulebook": "neixiang-2017"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"] == f"/rules/jurisdictions/{county.code}/rulebook"
    db.refresh(county)
    assert county.rulebook == "neixiang-2017"
    page = client.get(r.headers["location"]).text
    assert "内乡县已改为规则 neixiang-2017" in page

    r = client.post(
        f"/rules/jurisdictions/{county.code}/rulebook",
        data={"csrf_token": token, "rulebook": "nope"},
    )
    assert r.status_code == 422
    assert "没有名为 nope 的规则" in r.text
    r = client.post(
        f"/rules/jurisdictions/{county.code}/rulebook",
        data={"csrf_token": token, "rulebook": ""},
        follow_redirects=False,
    )
    assert r.status_code == 303
    db.refresh(county)
    assert county.rulebook is None


def test_assign_rulebook_needs_permission(client, factory: Factory) -> None:
    j = factory.jurisdiction("某市", code="419900")
    token = login(client, factory.user(Role.DEPT_OFFICER).username)
    assert client.get(f"/rules/jurisdictions/{j.code}/rulebook").status_code == 403
    r = client.post(
        f"/rules/jurisdictions/{j.code}/rulebook",
        data={"csrf_token": token, "rulebook": "xiayi-2021"},
    )
    assert r.status_code == 403


# ---------------------------------------------------------------- calendar


def test_calendar_page_for_the_authority(client, cal2026: Session, factory: Factory) -> None:
    login(client, factory.user(Role.AUTHORITY).username)
    r = client.get("/rules/calendar?year=2026")
    assert r.status_code == 200
    html = r.text
    assert 'action="/rules/calendar/import"' in html
    assert 'href="/rules/calendar/template.csv"' in html
    assert 'action="/rules/calendar/day"' in html
    assert "日期,类型,名称" in html
    assert UNKNOWN_YEAR not in html
    assert 'class="cal-holiday" data-date="2026-10-01" data-kind="holiday"' in html
    assert 'class="cal-adjusted" data-date="2026-10-10"' in html
    assert 'class="cal-weekend" data-date="2026-10-11"' in html
    assert 'class="" data-date="2026-10-12"' in html
    assert "国庆节调休上班" in html
    assert 'hx-get="/rules/calendar/due"' in html
    # the authority is told that next year is not on file
    assert "2027 年的工作日历尚未导入" in html


def test_calendar_page_for_an_officer(client, cal2026: Session, factory: Factory) -> None:
    login(client, factory.user(Role.DEPT_OFFICER).username)
    r = client.get("/rules/calendar?year=2026")
    assert r.status_code == 200
    assert 'action="/rules/calendar/import"' not in r.text
    assert 'action="/rules/calendar/day"' not in r.text
    assert 'hx-get="/rules/calendar/due"' in r.text


def test_calendar_page_warns_about_an_unknown_year(
    client, cal2026: Session, factory: Factory
) -> None:
    login(client, factory.user(Role.DEPT_OFFICER).username)
    html = client.get("/rules/calendar?year=2027").text
    assert UNKNOWN_YEAR in html
    assert 'class="" data-date="2027-01-01" data-kind="workday"' in html
    # nonsense years fall back to the current one instead of failing
    assert client.get("/rules/calendar?year=abc").status_code == 200
    assert client.get("/rules/calendar?year=123456").status_code == 200


def test_calendar_page_needs_login(client, factory: Factory) -> None:
    r = client.get("/rules/calendar", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login")
    login(client, factory.user(Role.PUBLIC).username)
    assert client.get("/rules/calendar").status_code == 403


def test_due_fragment(client, cal2026: Session, factory: Factory) -> None:
    login(client, factory.user(Role.DEPT_OFFICER).username)
    r = client.get("/rules/calendar/due", params={"received": "2026-12-25", "days": "10"})
    assert r.status_code == 200
    assert "2027年1月8日（五）" in r.text
    assert 'data-testid="provisional">临时</span>' in r.text
    assert "2027 年的工作日历尚未导入" in r.text
    r = client.get("/rules/calendar/due", params={"received": "2026-09-30", "days": "10"})
    assert "2026年10月20日（二）" in r.text
    assert "临时" not in r.text
    r = client.get(
        "/rules/calendar/due", params={"received": "2026-09-30", "days": "x", "jurisdiction": ""}
    )
    assert r.status_code == 422
    assert "工作日数：应为数字" in r.text
    r = client.get("/rules/calendar/due", params={"received": "2026-09-30", "days": "999"})
    assert r.status_code == 422
    assert "工作日数" in r.text


def test_template_csv(client, factory: Factory) -> None:
    login(client, factory.user(Role.AUTHORITY).username)
    r = client.get("/rules/calendar/template.csv")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    assert r.content.startswith("\ufeff日期,类型,名称\r\n".encode())
    assert "2026-10-01,节假日,国庆节" in r.content.decode("utf-8-sig")


def test_set_day_form(client, cal2026: Session, factory: Factory) -> None:
    token = login(client, factory.user(Role.AUTHORITY).username)
    r = client.post(
        "/rules/calendar/day",
        data={"csrf_token": token, "day": "2026-10-09", "kind": "holiday", "name": "临时放假"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/rules/calendar?year=2026"
    assert rules_service.due_date(cal2026, date(2026, 9, 30), 10).due == date(2026, 10, 21)
    page = client.get(r.headers["location"]).text
    assert "已将 2026-10-09 设为节假日（临时放假）" in page
    assert 'class="cal-holiday" data-date="2026-10-09"' in page


def test_set_day_form_errors_rerender(client, cal2026: Session, factory: Factory) -> None:
    token = login(client, factory.user(Role.AUTHORITY).username)
    r = client.post(
        "/rules/calendar/day",
        data={"csrf_token": token, "day": "2026-10-17", "kind": "workday", "name": "补班"},
    )
    assert r.status_code == 422
    assert "周末上班的日子请选择“调休上班”" in r.text
    assert 'value="2026-10-17"' in r.text  # the form keeps what was typed
    r = client.post("/rules/calendar/day", data={"csrf_token": token, "kind": "holiday"})
    assert r.status_code == 422
    assert "日期：必填" in r.text


def test_posts_without_csrf_are_refused(client, cal2026: Session, factory: Factory) -> None:
    login(client, factory.user(Role.AUTHORITY).username)
    del client.headers["X-CSRF-Token"]
    r = client.post("/rules/calendar/day", data={"day": "2026-10-09", "kind": "holiday"})
    assert r.status_code == 403
    r = client.post(
        "/rules/calendar/import",
        files={"file": ("2027.csv", "日期,类型\n2027-01-01,节假日\n".encode(), "text/csv")},
    )
    assert r.status_code == 403
    assert cal2026.get(CalendarYear, 2027) is None
    assert rules_service.due_date(cal2026, date(2026, 9, 30), 10).due == date(2026, 10, 20)


def test_officer_cannot_post_days(client, cal2026: Session, factory: Factory) -> None:
    token = login(client, factory.user(Role.DEPT_OFFICER).username)
    r = client.post(
        "/rules/calendar/day", data={"csrf_token": token, "day": "2026-10-09", "kind": "holiday"}
    )
    assert r.status_code == 403


def test_import_form(client, cal2026: Session, factory: Factory) -> None:
    token = login(client, factory.user(Role.AUTHORITY).username)
    del client.headers["X-CSRF-Token"]  # the form field alone must do
    content = "日期,类型,名称\r\n2027-01-01,节假日,元旦\r\n".encode("gbk")
    r = client.post(
        "/rules/calendar/import",
        data={"csrf_token": token, "scope": ""},
        files={"file": ("2027.csv", content, "text/csv")},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/rules/calendar?year=2027"
    page = client.get(r.headers["location"]).text
    assert "已导入 2027 年工作日历：列出 1 天，其中节假日 1 天、调休上班 0 天" in page
    assert UNKNOWN_YEAR not in page

    r = client.post(
        "/rules/calendar/import",
        data={"csrf_token": token},
        files={"file": ("bad.csv", b"", "text/csv")},
    )
    assert r.status_code == 422
    assert "文件是空的" in r.text
    assert 'action="/rules/calendar/import"' in r.text
