"""The audit page in Chromium: the chart draws, HTMX filters push the URL, verify answers."""

from __future__ import annotations

import pytest

from tests.web.test_browser import _login, browser, live_server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


def test_audit_page_chart_filter_and_verify(live_server: str, browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    page = browser.new_page(locale="zh-CN")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _login(page, live_server, "authority")
    page.click("[data-testid=main-nav] >> text=审计日志")
    page.wait_for_selector("[data-testid=audit-entries]")
    page.wait_for_selector("#audit-chart canvas")  # ECharts drew the bar chart
    assert page.locator("[data-testid=audit-entries] tbody tr").count() > 1

    page.fill("#f-action", "rules:")
    page.click("[data-testid=audit-filter] button[type=submit]")
    page.wait_for_url("**/audit?*action=rules%3A*")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#audit-table tbody tr[data-seq]')]"
        ".every(tr => tr.textContent.includes('rules:'))"
    )
    assert page.locator("#audit-table tbody tr[data-seq]").count() >= 1
    assert "<html" not in page.locator("#audit-table").inner_html()

    page.click("[data-testid=verify-button]")
    page.wait_for_selector("[data-testid=verify-ok]")
    assert "日志链完整，共校验" in page.locator("#verify-result").inner_text()
    assert errors == []
    page.close()
