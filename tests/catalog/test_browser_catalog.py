"""The catalog in Chromium: an officer drafts and submits, the authority approves, and the
entry is found by a partial Chinese keyword."""

from __future__ import annotations

import pytest

from tests.web.test_browser import _login, browser, live_server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


def test_draft_submit_review_and_find(live_server: str, browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    page = browser.new_page(locale="zh-CN")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    _login(page, live_server, "officer")
    page.click("[data-testid=main-nav] >> text=数据目录")
    page.click("[data-testid=main-nav] >> text=本部门目录")
    page.click("text=编制新资源")
    page.wait_for_selector("[data-testid=entry-form]")
    page.fill("#f-name", "临时身份证明开具信息")
    page.fill("#f-item_code", "01")
    page.fill("#f-category_code", "009")
    page.fill("#f-summary", "户籍窗口为群众开具临时身份证明的记录。")
    page.select_option("#f-resource_format", "database")
    page.select_option("#f-update_frequency", "daily")
    rows = page.locator("[data-testid=items] tbody tr")
    rows.nth(0).locator("input[name$='-name']").fill("公民身份号码")
    rows.nth(0).locator("input[name$='-field']").fill("id_number")
    rows.nth(0).locator("select[name$='-data_type']").select_option("id_number")
    rows.nth(0).locator("input[name$='-required']").check()
    rows.nth(0).locator("input[name$='-personal']").check()
    rows.nth(1).locator("input[name$='-name']").fill("开具日期")
    rows.nth(1).locator("input[name$='-field']").fill("issued_on")
    rows.nth(1).locator("select[name$='-data_type']").select_option("date")
    page.click("text=添加信息项")  # HTMX appends a fourth row
    page.wait_for_function("document.querySelectorAll('[data-testid=items] tbody tr').length == 4")
    page.select_option("#f-subject_key_kind", "person")
    page.fill("#f-subject_key_item", "id_number")
    page.select_option("#f-share_type", "conditional")
    page.fill("#f-share_scope", "本市政务服务窗口")
    page.fill("#f-share_purpose", "核验临时身份证明")
    page.fill("#f-share_basis", "《中华人民共和国居民身份证法》第十三条")
    page.fill("#f-open_basis", "《中华人民共和国个人信息保护法》第三十四条")
    page.click("[data-testid=entry-form] button[type=submit]")
    page.wait_for_selector("[data-testid=flash]")
    assert "已保存草稿：临时身份证明开具信息" in page.locator("[data-testid=flash]").inner_text()
    page.click("button:has-text('提交审核')")
    page.wait_for_selector("[data-testid=flash]")
    assert "已提交审核" in page.locator("[data-testid=flash]").inner_text()
    entry_url = page.url
    page.click("button:has-text('退出')")

    _login(page, live_server, "authority")
    page.goto(f"{live_server}/catalog/review")
    row = page.locator("[data-testid=review-queue] tr", has_text="临时身份证明开具信息")
    row.locator("a").first.click()
    page.wait_for_selector("[data-testid=review-form]")
    assert page.url == entry_url
    page.fill("[data-testid=review-form] input[name=comment]", "同意发布")
    page.click("[data-testid=review-form] button[value=approve]")
    page.wait_for_selector("[data-testid=flash]")
    assert "审核通过，已发布" in page.locator("[data-testid=flash]").inner_text()
    assert page.locator("[data-testid=entry-status]").inner_text() == "已发布"

    # found by a partial Chinese word (身份证明) in the catalog search
    page.goto(f"{live_server}/catalog")
    page.fill("input[name=q]", "身份证明")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=临时身份证明开具信息")
    assert page.locator("mark").first.inner_text() == "身份证明"
    assert errors == []
    page.close()
