"""The audit pages: the log with filters and chart, verify, purge, CSV export."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.audit import repository as repo
from govshare.audit import service
from govshare.audit.models import AuditEntry
from govshare.db import utcnow
from govshare.permissions import Role
from govshare.principal import Principal
from tests.audit.conftest import add_entries, clock, tamper
from tests.conftest import Factory, login, platform


@pytest.fixture
def authority(client: TestClient, chain: Session, factory: Factory) -> TestClient:
    login(client, factory.user(Role.AUTHORITY).username)
    return client


def shown_seqs(html: str) -> list[int]:
    return [int(s) for s in re.findall(r'data-seq="(\d+)"', html)]


def test_log_page_shows_table_chart_and_verify_button(
    authority: TestClient, chain: Session, factory: Factory
) -> None:
    officer = factory.principal(factory.user(Role.DEPT_OFFICER))
    add_entries(chain, 2, actor=officer, action="orgs:contact:file", details={"name": "王芳"})
    add_entries(chain, 1, action="some:new:thing")
    r = authority.get("/audit")
    assert r.status_code == 200, r.text
    html = r.text
    assert "审计日志" in html
    assert 'data-testid="verify-button"' in html
    assert "校验日志链" in html
    assert shown_seqs(html) == [4, 3, 2, 1]
    assert "备案联系人" in html  # the action's Chinese label
    assert "some:new:thing" in html  # an unknown code is shown as it is
    assert "部门数据专员" in html  # role label
    assert "王芳" in html  # details, collapsed
    assert "<details>" in html
    assert '<script src="/static/vendor/echarts.min.js" defer></script>' in html
    assert "cdn" not in html.lower()
    chart = json.loads(
        re.search(r'id="audit-chart-data">(.*?)</script>', html, re.S).group(1)  # type: ignore[union-attr]
    )
    assert len(chart["days"]) == 30
    assert chart["total"] == 4
    today = {s["name"]: s["data"][-1] for s in chart["series"]}
    assert today == {"组织与账号": 3, "some": 1}  # the log-in, two filings; the new code
    assert 'data-testid="purge"' in html  # the authority may purge
    assert "至少保留" in html


def test_times_are_shown_in_beijing_time(
    authority: TestClient, chain: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    with clock(monkeypatch, datetime(2026, 3, 1, 16, 30, 5, tzinfo=UTC)):
        add_entries(chain, 1)
    html = authority.get("/audit", params={"since": "2026-03-02", "until": "2026-03-02"}).text
    assert "2026-03-02 00:30:05" in html
    assert len(shown_seqs(html)) == 1


def test_filters_by_plain_get_and_by_htmx(authority: TestClient, chain: Session) -> None:
    add_entries(chain, 2, action="rules:calendar:edit")
    add_entries(chain, 1, action="orgs:user:create")
    page = authority.get("/audit", params={"action": "rules:", "department_id": ""})
    assert page.status_code == 200
    assert shown_seqs(page.text) == [3, 2]
    assert "<html" in page.text
    frag = authority.get(
        "/audit",
        params={"action": "orgs:user:"},
        headers={"HX-Request": "true", "HX-Target": "audit-table"},
    )
    assert frag.status_code == 200
    assert "<html" not in frag.text
    assert frag.text.lstrip().startswith('<div id="audit-table"')
    assert shown_seqs(frag.text) == [4]


def test_pager_keeps_the_filters(authority: TestClient, chain: Session) -> None:
    add_entries(chain, 5, action="rules:calendar:edit")
    html = authority.get("/audit", params={"action": "rules:", "per_page": 2}).text
    assert shown_seqs(html) == [6, 5]
    assert "/audit?action=rules%3A&amp;per_page=2&page=2" in html
    page2 = authority.get("/audit", params={"action": "rules:", "per_page": 2, "page": 2})
    assert shown_seqs(page2.text) == [4, 3]


def test_bad_filter_shows_the_form_with_an_error(authority: TestClient) -> None:
    r = authority.get("/audit", params={"since": "2026-13-01"})
    assert r.status_code == 422
    assert "起始日期：应为 YYYY-MM-DD 格式的日期" in r.text
    assert 'data-testid="audit-filter"' in r.text
    r = authority.get("/audit", params={"since": "2026-03-02", "until": "2026-03-01"})
    assert "起始日期不能晚于截止日期" in r.text


def test_verify_button_shows_the_result(authority: TestClient, chain: Session) -> None:
    add_entries(chain, 3)
    r = authority.post("/audit/verify")
    assert r.status_code == 200
    assert "日志链完整，共校验 4 条" in r.text  # the log-in and three entries
    assert "<html" in r.text
    frag = authority.post("/audit/verify", headers={"HX-Request": "true"})
    assert "<html" not in frag.text
    assert "日志链完整，共校验 5 条" in frag.text  # now the first verify is in the log too
    assert list(chain.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))[-2:] == [
        "audit:log:verify",
        "audit:log:verify",
    ]


def test_verify_shows_a_broken_chain_in_red(authority: TestClient, chain: Session) -> None:
    add_entries(chain, 3)
    tamper(chain, "DELETE FROM audit_entries WHERE seq = 2")
    r = authority.post("/audit/verify", headers={"HX-Request": "true"})
    assert 'class="alert alert-danger"' in r.text
    assert 'data-testid="first-bad-seq">2<' in r.text
    assert "第 2 条日志缺失" in r.text


def test_verify_form_posts_need_the_csrf_token(authority: TestClient) -> None:
    del authority.headers["X-CSRF-Token"]
    assert authority.post("/audit/verify").status_code == 403


def test_operator_verifies_on_its_own_page_but_cannot_read_the_log(
    client: TestClient, chain: Session, factory: Factory
) -> None:
    login(client, factory.user(Role.OPERATOR).username)
    assert client.get("/audit").status_code == 403
    page = client.get("/audit/verify")
    assert page.status_code == 200
    assert 'action="/audit/verify"' in page.text
    r = client.post("/audit/verify")
    assert r.status_code == 200
    assert "日志链完整" in r.text
    assert 'href="/audit"' not in r.text.split("<main", 1)[1]


def test_dept_officer_gets_403_page(client: TestClient, chain: Session, factory: Factory) -> None:
    login(client, factory.user(Role.DEPT_OFFICER).username)
    r = client.get("/audit")
    assert r.status_code == 403
    assert "没有权限" in r.text
    assert client.get("/audit/export.csv").status_code == 403


def test_purge_form_refuses_inside_retention(authority: TestClient, chain: Session) -> None:
    policy = service.purge_policy(chain)
    html = authority.get("/audit").text
    assert f'data-testid="latest-before">{policy.latest_before}<' in html
    assert f'max="{policy.latest_before}"' in html
    too_late = str(policy.latest_before + timedelta(days=1))
    r = authority.post("/audit/purge", data={"before": too_late})
    assert r.status_code == 422
    assert "至少保留 6 个月" in r.text
    assert f'value="{too_late}"' in r.text
    r = authority.post("/audit/purge", data={"before": ""})
    assert r.status_code == 422
    assert "清理截止日期：必填" in r.text


def test_purge_form_purges_and_redirects(
    client: TestClient, chain: Session, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    with clock(monkeypatch, utcnow() - timedelta(days=400)):
        add_entries(chain, 4)
    login(client, factory.user(Role.AUTHORITY).username)
    before = str(service.purge_policy(chain).latest_before)
    r = client.post("/audit/purge", data={"before": before}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/audit"
    page = client.get("/audit")
    assert "已清理" in page.text
    assert "4 条日志" in page.text
    assert 'data-testid="checkpoints"' in page.text
    assert service.verify(chain).ok


def test_csv_export_is_filtered_safe_and_audited(authority: TestClient, chain: Session) -> None:
    add_entries(chain, 2, action="rules:calendar:edit", details={"note": "=cmd|calc"})
    tricky = Principal(kind="user", id=None, name="=HYPERLINK(1)", role=Role.AUTHORITY)
    add_entries(chain, 1, actor=tricky)
    r = authority.get("/audit/export.csv", params={"action": "rules:"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    text = r.content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:5] == ["序号", "时间（北京时间）", "操作人", "角色", "部门"]
    assert [row[0] for row in rows[1:]] == ["3", "2"]
    assert rows[1][6] == "修改工作日历"
    all_rows = list(
        csv.reader(io.StringIO(authority.get("/audit/export.csv").content.decode("utf-8-sig")))
    )
    assert "'=HYPERLINK(1)" in [row[2] for row in all_rows]
    last = repo.latest_entries(chain, platform(), 1)[0]
    assert last.action == "audit:log:export"
    assert '"rows":' in last.details


def test_out_of_range_filter_has_a_chinese_message(authority: TestClient) -> None:
    r = authority.get("/audit", params={"since": "1900-01-01"})
    assert r.status_code == 422
    assert "起始日期：超出允许范围" in r.text
