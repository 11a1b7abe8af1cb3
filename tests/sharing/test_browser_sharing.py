"""The sharing workflow in Chromium: the police officer applies for the market regulator's
conditional data from its catalog page; the city's data authority (the reviewer under the
demo city's nanyang-2021 rulebook, seed 003 art. 12) asks once for the missing material;
the officer resubmits; the authority approves fewer items with conditions; both sides see
the grant."""

from __future__ import annotations

import re

import pytest

from tests.web.test_browser import _login, browser, live_server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

ENTRY = "特种设备使用登记信息"  # 青川市市场监督管理局, conditional, offered by query


def test_apply_supplement_resubmit_and_approve_fewer_items(
    live_server: str,  # noqa: F811
    browser,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    errors: list[str] = []
    officer_ctx = browser.new_context(locale="zh-CN")
    authority_ctx = browser.new_context(locale="zh-CN")
    officer = officer_ctx.new_page()
    authority = authority_ctx.new_page()
    for page in (officer, authority):
        page.on("pageerror", lambda exc: errors.append(str(exc)))

    # the officer (青川市公安局) finds the entry in the catalog and applies
    _login(officer, live_server, "officer")
    officer.goto(f"{live_server}/catalog?q={ENTRY}")
    officer.click(f"a:has-text('{ENTRY}')")
    officer.click("[data-testid=apply-share]")
    officer.wait_for_selector("[data-testid=apply-form]")
    assert "有条件共享" in officer.locator("[data-testid=share-kind]").inner_text()
    assert "数据主管部门" in officer.locator("[data-testid=share-kind]").inner_text()
    items = officer.locator("[data-testid=apply-form] input[name=items]")
    assert items.count() >= 3
    # every item asked for; method: query (the entry offers it)
    officer.check("#method-query")
    officer.fill("#f-purpose", "核查涉事单位特种设备的使用登记情况")
    officer.fill("#f-scenario", "特种设备安全事故的调查取证")
    # no basis first: the error is shown on the form, in Chinese, the rest kept
    officer.click("[data-testid=apply-form] button[type=submit]")
    officer.wait_for_selector("[data-testid=error]")
    assert "请填写申请依据" in officer.locator("[data-testid=error]").inner_text()
    assert officer.input_value("#f-scenario") == "特种设备安全事故的调查取证"
    officer.fill("#f-basis", "《中华人民共和国刑事诉讼法》第五十四条")
    officer.fill("#f-consumer_system", "警务综合平台")
    officer.click("[data-testid=apply-form] button[type=submit]")
    officer.wait_for_selector("[data-testid=app-status]")
    assert officer.locator("[data-testid=app-status]").inner_text() == "待审核"
    assert "剩余 10 个工作日" in officer.locator("[data-testid=app-clock]").inner_text()
    match = re.search(r"/sharing/applications/(\d+)$", officer.url)
    assert match
    app_url = f"{live_server}/sharing/applications/{match.group(1)}"
    officer.goto(f"{live_server}/sharing/applications")
    assert ENTRY in officer.locator("[data-testid=applications]").inner_text()

    # the authority finds it in its queue and asks once for the missing material
    _login(authority, live_server, "authority")
    authority.goto(f"{live_server}/sharing/review")
    queue = authority.locator("[data-testid=review-queue]")
    assert ENTRY in queue.inner_text()
    authority.click(f"[data-testid=review-queue] a[href='/sharing/applications/{match.group(1)}']")
    authority.wait_for_selector("[data-testid=supplement-form]")
    authority.fill(
        "[data-testid=supplement-form] textarea[name=missing]",
        "请补充：1. 立案决定书；2. 调取数据的审批表。",
    )
    authority.click("[data-testid=supplement-form] button[type=submit]")
    authority.wait_for_selector("text=已一次性告知需要补正的材料")
    assert authority.locator("[data-testid=app-status]").inner_text() == "待补正材料"
    assert authority.locator("[data-testid=supplement-form]").count() == 0

    # the officer sees what is missing and resubmits
    officer.goto(app_url)
    assert "立案决定书" in officer.locator("[data-testid=supplement-request]").inner_text()
    assert "期限暂停" in officer.locator("[data-testid=app-clock]").inner_text()
    officer.fill("[data-testid=resubmit-form] textarea[name=reply]", "已补充立案决定书和审批表")
    officer.click("[data-testid=resubmit-form] button[type=submit]")
    officer.wait_for_selector("text=已补正并重新提交")
    assert officer.locator("[data-testid=app-status]").inner_text() == "待审核"

    # the authority approves fewer items than asked for, with conditions
    authority.goto(app_url)
    authority.wait_for_selector("[data-testid=approve-form]")
    # asked once already: no second request for material
    assert authority.locator("[data-testid=supplement-form]").count() == 0
    authority.uncheck("#approve-category")
    authority.fill(
        "[data-testid=approve-form] textarea[name=conditions]", "仅用于本案调查，不得提供给第三方"
    )
    authority.click("[data-testid=approve-form] button[type=submit]")
    authority.wait_for_selector("[data-testid=grant]")
    assert authority.locator("[data-testid=app-status]").inner_text() == "已同意"
    granted = authority.locator("[data-testid=grant-items]").inner_text()
    assert "设备代码" in granted
    assert "设备类别" not in granted
    assert "设备类别" in authority.locator("[data-testid=asked-items]").inner_text()

    # the officer sees the grant with its conditions, and it is listed among the grants
    officer.goto(app_url)
    grant = officer.locator("[data-testid=grant]").inner_text()
    assert "仅用于本案调查，不得提供给第三方" in grant
    assert "警务综合平台" in grant
    assert "周晓东" in grant
    events = officer.locator("[data-testid=events]").inner_text()
    for step in ("提交", "一次性告知补正材料", "补正后重新提交", "同意共享"):
        assert step in events
    officer.goto(f"{live_server}/sharing/grants")
    row = officer.locator("[data-testid=grants] tr", has_text=ENTRY)
    assert row.count() == 1
    assert "设备类别" not in row.inner_text()
    assert errors == []
    officer_ctx.close()
    authority_ctx.close()
