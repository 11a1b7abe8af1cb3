"""Browser test: Playwright for Python driving Debian's Chromium against a real server
(`govshare demo` data on SQLite, `govshare serve` in a subprocess)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from govshare.demo import DEMO_PASSWORD

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("live")
    env = os.environ | {
        "GOVSHARE_DATABASE_URL": f"sqlite:///{work / 'govshare.db'}",
        "GOVSHARE_VAR_DIR": str(work / "var"),
        "GOVSHARE_SECRET_KEY": "browser-test-secret",
    }
    cli = [sys.executable, "-m", "govshare.cli"]
    subprocess.run([*cli, "demo", "--no-serve"], env=env, check=True, capture_output=True)
    port = _free_port()
    log = (work / "server.log").open("w")
    proc = subprocess.Popen(
        [*cli, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1) as r:  # noqa: S310
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.2)
    else:
        proc.terminate()
        pytest.fail("server did not start: " + (work / "server.log").read_text())
    yield base
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: `make test` installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        b.close()


def _login(page, base: str, username: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=main-nav]")


def _nav(page) -> list[str]:  # type: ignore[no-untyped-def]
    # menu items are in closed dropdowns: read their text whether shown or not
    return [t.strip() for t in page.locator("[data-testid=main-nav] a").all_text_contents()]


def test_two_roles_see_different_navigation(live_server: str, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    outside: list[str] = []
    page.on(
        "request",
        lambda r: (
            outside.append(r.url)
            if not r.url.startswith(live_server) and not r.url.startswith("data:")
            else None
        ),
    )

    _login(page, live_server, "authority")
    authority_nav = _nav(page)
    assert page.locator("[data-testid=role]").inner_text() == "数据主管部门"
    assert page.locator("[data-testid=department]").inner_text() == "青川市数据和政务服务局"
    for label in (
        "工作台",
        "行政区划",
        "部门与联系人",
        "用户与角色",
        "应用凭证",
        "共享规则",
        "工作日历",
        "审计日志",
    ):
        assert label in authority_nav
    page.screenshot(path=str(tmp_path / "authority.png"), full_page=True)
    page.click("[data-testid=main-nav] >> text=组织机构")
    page.click("[data-testid=main-nav] >> text=用户与角色")
    page.wait_for_selector("[data-testid=users]")
    assert "citizen" in page.locator("[data-testid=users]").inner_text()
    page.click("button:has-text('退出')")
    page.wait_for_selector("[data-testid=login-form]")

    _login(page, live_server, "officer")
    officer_nav = _nav(page)
    assert page.locator("[data-testid=role]").inner_text() == "部门数据专员"
    assert page.locator("[data-testid=department]").inner_text() == "青川市公安局"
    assert "部门与联系人" in officer_nav
    for label in ("用户与角色", "应用凭证", "审计日志"):
        assert label not in officer_nav
    assert officer_nav != authority_nav
    # the officer cannot reach the authority's pages by URL either
    response = page.goto(f"{live_server}/orgs/users")
    assert response is not None
    assert response.status == 403
    assert "没有权限" in page.content()
    page.screenshot(path=str(tmp_path / "officer.png"), full_page=True)

    # nothing was loaded from outside the server (no CDN)
    assert outside == []
    context.close()


def test_officer_files_a_contact_in_the_browser(live_server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(locale="zh-CN")
    _login(page, live_server, "officer")
    page.click("text=查看部门详情与备案记录")
    page.wait_for_selector("[data-testid=contact-form]")
    page.select_option("#f-duty", "liaison")
    page.fill("#f-name", "郑小红")
    page.fill("#f-title", "科员")
    page.fill("#f-mobile", "13912345678")
    page.fill("#f-note", "新增联系人")
    page.click("[data-testid=contact-form] button[type=submit]")
    page.wait_for_selector("[data-testid=flash]")
    assert "已备案：联系人 郑小红" in page.locator("[data-testid=flash]").inner_text()
    assert "郑小红" in page.locator("[data-testid=current-contacts]").inner_text()
    assert "郑小红" in page.locator("[data-testid=contact-history]").inner_text()
    page.close()
