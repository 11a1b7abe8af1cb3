"""The rules JSON API: rulebooks, their assignment to jurisdictions, and the calendar."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.audit.models import AuditEntry
from govshare.permissions import Role
from govshare.rules import service as rules_service
from govshare.rules.models import CalendarYear
from tests.conftest import Factory, login

CSV_2027 = "日期,类型,名称\n2027-01-01,节假日,元旦\n2027-02-06,调休上班,春节调休上班\n".encode()


# ---------------------------------------------------------------- rulebooks


def test_list_rulebooks(client, factory: Factory) -> None:
    factory.jurisdiction("平山县", level="county", code="130131", rulebook="pingshan-2026")
    login(client, factory.user(Role.DEPT_OFFICER).username)
    r = client.get("/api/v1/rulebooks")
    assert r.status_code == 200
    books = {b["name"]: b for b in r.json()}
    assert next(iter(books)) == "national"
    assert set(books) == {
        "national",
        "county-2024",
        "nanyang-2021",
        "neixiang-2017",
        "pingshan-2026",
        "xiayi-2021",
    }
    assert books["xiayi-2021"]["conditional_reply_days"] == 5
    assert books["neixiang-2017"]["conditional_reply_days"] == 7
    assert books["pingshan-2026"]["jurisdictions"] == ["130131"]
    assert books["nanyang-2021"]["issued"] == "2021-12-29"
    assert books["nanyang-2021"]["share_type_names"] == ["无条件共享", "有条件共享", "不予共享"]


def test_get_rulebook(client, factory: Factory) -> None:
    login(client, factory.user(Role.OPERATOR).username)
    r = client.get("/api/v1/rulebooks/nanyang-2021")
    assert r.status_code == 200
    book = r.json()
    assert book["name"] == "nanyang-2021"
    assert book["catalog"]["authority_review"]["working_days"] == 5
    assert book["catalog"]["authority_review"]["cite"]["article"] == "第二十二条"
    # inherited from the national default: nanyang sets no supplement rule
    assert book["sharing"]["supplement"]["cite"]["origin"] == "platform"
    r = client.get("/api/v1/rulebooks/nope")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "没有名为 nope 的规则"


def test_rulebooks_need_login_and_permission(client, factory: Factory) -> None:
    assert client.get("/api/v1/rulebooks").status_code == 401
    login(client, factory.user(Role.PUBLIC).username)
    assert client.get("/api/v1/rulebooks").status_code == 403
    assert client.get("/api/v1/calendar/years").status_code == 403


def test_jurisdiction_rulebook_chain_and_assignment(client, db: Session, factory: Factory) -> None:
    city = factory.jurisdiction("南阳市", code="411300", rulebook="nanyang-2021")
    county = factory.jurisdiction("内乡县", level="county", parent=city, code="411325")
    login(client, factory.user(Role.AUTHORITY).username)

    r = client.get(f"/api/v1/jurisdictions/{county.code}/rulebook")
    assert r.status_code == 200
    body = r.json()
    assert body["chain"] == ["national", "nanyang-2021"]
    assert body["set_by"] == "411300"
    assert [j["code"] for j in body["lineage"]] == ["411300", "411325"]
    assert body["jurisdiction"] == {"code": "411325", "name": "内乡县", "rulebook": None}
    assert body["rulebook"]["name"] == "nanyang-2021"

    r = client.put(
        f"/api/v1/jurisdictions/{county.code}/rulebook", json={"rulebook": "neixiang-2017"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["chain"] == ["national", "nanyang-2021", "neixiang-2017"]
    assert body["set_by"] == "411325"
    assert body["rulebook"]["sharing"]["conditional_reply"]["working_days"] == 7
    db.refresh(county)
    assert county.rulebook == "neixiang-2017"

    r = client.put(f"/api/v1/jurisdictions/{county.code}/rulebook", json={"rulebook": None})
    assert r.status_code == 200
    assert r.json()["chain"] == ["national", "nanyang-2021"]
    db.refresh(county)
    assert county.rulebook is None

    entries = db.scalars(
        select(AuditEntry).where(AuditEntry.action == "rules:rulebook:assign")
    ).all()
    assert [e.details for e in entries][-2:] == [
        '{"after":"neixiang-2017","before":null,"code":"411325"}',
        '{"after":null,"before":"neixiang-2017","code":"411325"}',
    ]


def test_assignment_errors(client, factory: Factory) -> None:
    j = factory.jurisdiction("某市", code="419900")
    officer = factory.user(Role.DEPT_OFFICER)
    login(client, officer.username)
    r = client.put(f"/api/v1/jurisdictions/{j.code}/rulebook", json={"rulebook": "xiayi-2021"})
    assert r.status_code == 403
    assert client.get(f"/api/v1/jurisdictions/{j.code}/rulebook").status_code == 200

    login(client, factory.user(Role.AUTHORITY).username)
    r = client.put(f"/api/v1/jurisdictions/{j.code}/rulebook", json={"rulebook": "nope"})
    assert r.status_code == 422
    assert r.json()["error"] == {
        "code": "validation_failed",
        "message": "没有名为 nope 的规则",
        "field": "rulebook",
    }
    r = client.put("/api/v1/jurisdictions/999999/rulebook", json={"rulebook": "xiayi-2021"})
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "行政区划代码 999999 不存在"
    assert client.get("/api/v1/jurisdictions/999999/rulebook").status_code == 404


# ---------------------------------------------------------------- calendar


def test_calendar_years_and_days(client, cal2026: Session, factory: Factory) -> None:
    login(client, factory.user(Role.DEPT_REVIEWER).username)
    years = client.get("/api/v1/calendar/years").json()
    assert [(y["year"], y["source"]) for y in years] == [(2026, "chinese-calendar")]

    body = client.get("/api/v1/calendar/days", params={"year": 2026}).json()
    assert body["known"] is True
    assert len(body["days"]) == 365
    by_day = {d["day"]: d for d in body["days"]}
    assert by_day["2026-10-01"] == {
        "day": "2026-10-01",
        "weekday": 4,
        "kind": "holiday",
        "kind_label": "节假日",
        "is_workday": False,
        "name": "国庆节",
        "known": True,
        "scope": "",
    }
    assert by_day["2026-10-10"]["kind"] == "adjusted_workday"
    assert by_day["2026-10-10"]["is_workday"] is True

    body = client.get("/api/v1/calendar/days", params={"year": 2027}).json()
    assert body["known"] is False
    jan1 = body["days"][0]
    assert (jan1["day"], jan1["kind"], jan1["known"]) == ("2027-01-01", "workday", False)

    assert client.get("/api/v1/calendar/days", params={"year": 99}).status_code == 422
    r = client.get("/api/v1/calendar/days", params={"year": 2026, "scope": "999999"})
    assert r.status_code == 404


def test_put_day_permissions(client, cal2026: Session, factory: Factory) -> None:
    body = {"kind": "holiday", "name": "临时放假"}
    assert client.put("/api/v1/calendar/days/2026-10-09", json=body).status_code == 401

    login(client, factory.user(Role.DEPT_OFFICER).username)
    r = client.put("/api/v1/calendar/days/2026-10-09", json=body)
    assert r.status_code == 403

    login(client, factory.user(Role.AUTHORITY).username)
    r = client.put("/api/v1/calendar/days/2026-10-09", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["kind"] == "holiday"
    assert r.json()["name"] == "临时放假"
    due = client.get("/api/v1/calendar/due", params={"from": "2026-09-30", "days": 10}).json()
    assert due["due"] == "2026-10-21"


def test_put_day_accepts_chinese_kinds_and_scopes(
    client, cal2026: Session, factory: Factory
) -> None:
    city = factory.jurisdiction("某市", code="419900")
    login(client, factory.user(Role.AUTHORITY).username)
    r = client.put(
        "/api/v1/calendar/days/2026-10-09",
        json={"kind": "节假日", "name": "本市假日", "scope": city.code},
    )
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == city.code
    local = client.get(
        "/api/v1/calendar/due", params={"from": "2026-09-30", "days": 10, "jurisdiction": city.code}
    ).json()
    national = client.get("/api/v1/calendar/due", params={"from": "2026-09-30", "days": 10}).json()
    assert (local["due"], national["due"]) == ("2026-10-21", "2026-10-20")


def test_put_day_validation(client, cal2026: Session, factory: Factory) -> None:
    login(client, factory.user(Role.AUTHORITY).username)
    r = client.put("/api/v1/calendar/days/2026-10-17", json={"kind": "workday"})
    assert r.status_code == 422
    assert r.json()["error"]["message"] == "周末上班的日子请选择“调休上班”"
    assert r.json()["error"]["field"] == "kind"
    r = client.put("/api/v1/calendar/days/2026-10-16", json={"kind": "放个假"})
    assert r.status_code == 422
    r = client.put("/api/v1/calendar/days/not-a-date", json={"kind": "holiday"})
    assert r.status_code == 422
    r = client.put("/api/v1/calendar/days/0001-01-01", json={"kind": "holiday"})
    assert r.status_code == 422
    assert r.json()["error"]["message"] == "日期应在 1900 年到 2999 年之间"


def test_due_endpoint(client, cal2026: Session, factory: Factory) -> None:
    login(client, factory.user(Role.DEPT_OFFICER).username)
    r = client.get("/api/v1/calendar/due", params={"from": "2026-12-25", "days": 10})
    assert r.status_code == 200
    assert r.json() == {
        "received": "2026-12-25",
        "days": 10,
        "due": "2027-01-08",
        "provisional": True,
        "uncovered_years": [2027],
    }
    r = client.get("/api/v1/calendar/due", params={"from": "2026-09-30", "days": 10})
    assert r.json()["due"] == "2026-10-20"
    assert r.json()["provisional"] is False
    assert client.get("/api/v1/calendar/due", params={"from": "2026-09-30"}).status_code == 422
    # the far end of the date range is refused, not an overflow
    r = client.get("/api/v1/calendar/due", params={"from": "9999-12-31", "days": 5})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "received"
    r = client.get(
        "/api/v1/calendar/due", params={"from": "2026-09-30", "days": 1, "jurisdiction": "999999"}
    )
    assert r.status_code == 404


def test_import_endpoint(client, cal2026: Session, factory: Factory) -> None:
    files = {"file": ("2027.csv", CSV_2027, "text/csv")}
    login(client, factory.user(Role.DEPT_OFFICER).username)
    assert client.post("/api/v1/calendar/import", files=files).status_code == 403

    login(client, factory.user(Role.AUTHORITY).username)
    r = client.post("/api/v1/calendar/import", files=files)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "year": 2027,
        "scope": "",
        "days_listed": 2,
        "holidays": 1,
        "adjusted_workdays": 1,
    }
    assert cal2026.get(CalendarYear, 2027) is not None
    r = client.get("/api/v1/calendar/due", params={"from": "2026-12-25", "days": 10})
    assert (r.json()["due"], r.json()["provisional"]) == ("2027-01-11", False)

    r = client.post(
        "/api/v1/calendar/import",
        files={"file": ("bad.csv", "日期,类型\n2028-01-01,放个假\n".encode(), "text/csv")},
    )
    assert r.status_code == 422
    assert "类型“放个假”无效" in r.json()["error"]["message"]
    assert r.json()["error"]["field"] == "file"
    assert cal2026.get(CalendarYear, 2028) is None


def test_import_rejects_a_big_file(client, cal2026: Session, factory: Factory) -> None:
    login(client, factory.user(Role.AUTHORITY).username)
    big = b"x" * (rules_service.MAX_CSV_BYTES + 10)
    r = client.post("/api/v1/calendar/import", files={"file": ("big.csv", big, "text/csv")})
    assert r.status_code == 422
    assert "文件过大" in r.json()["error"]["message"]


def test_due_in_unknown_year_without_any_calendar(client, factory: Factory) -> None:
    # an unseeded database: everything is provisional, never an error
    login(client, factory.user(Role.DEPT_OFFICER).username)
    r = client.get("/api/v1/calendar/due", params={"from": "2026-03-06", "days": 1})
    assert r.json()["due"] == date(2026, 3, 9).isoformat()
    assert r.json()["provisional"] is True
