"""Aggregation in Chromium: an officer uploads a GBK CSV with some bad rows, previews the
column mapping, confirms, reads the batch's errors, downloads the error report and finds a
loaded record on the records page."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from govshare.ingestion.validators import id_check_digit
from tests.web.test_browser import _login, browser, live_server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


def _person(n: int) -> str:
    body = f"410102{19850301 + n:08d}{500 + n:03d}"
    return body + id_check_digit(body)


def _gbk_csv(path: Path) -> tuple[list[str], str]:
    good = [_person(n) for n in range(1, 6)]
    bad_check = good[0][:-1] + ("1" if good[0][-1] != "1" else "2")
    lines = [["公民身份号码", "姓名", "性别", "出生日期", "民族", "户籍地址", "行政区划代码"]]
    for i, id_number in enumerate(good):
        born = f"{id_number[6:10]}-{id_number[10:12]}-{id_number[12:14]}"
        lines.append([id_number, f"测试人{i}", "男", born, "汉族", f"河滨路{i + 1}号", "410102"])
    lines.append([bad_check, "校验错", "女", "1985-03-02", "汉族", "河滨路9号", "410102"])
    lines.append([_person(9), "", "女", "1985-03-10", "回族", "河滨路10号", "410102"])
    buf = io.StringIO()
    csv.writer(buf).writerows(lines)
    path.write_bytes(buf.getvalue().encode("gbk"))
    return good, bad_check


def test_gbk_upload_with_bad_rows_and_the_error_report(
    live_server: str,  # noqa: F811
    browser,  # type: ignore[no-untyped-def]  # noqa: F811
    tmp_path: Path,
) -> None:
    good, bad_check = _gbk_csv(tmp_path / "户籍人口-GBK.csv")
    page = browser.new_page(locale="zh-CN", accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _login(page, live_server, "officer")
    page.click("[data-testid=main-nav] >> text=数据汇聚")
    page.click("[data-testid=main-nav] >> text=上传数据")
    page.wait_for_selector("[data-testid=upload-form]")
    entry = page.locator("#f-entry option", has_text="户籍人口基本信息").get_attribute("value")
    assert entry
    page.select_option("#f-entry", entry)
    page.set_input_files("#f-file", str(tmp_path / "户籍人口-GBK.csv"))
    page.click("[data-testid=upload-form] button[type=submit]")
    page.wait_for_selector("[data-testid=mapping]")
    # the GBK file was recognised: Chinese headers mapped, Chinese values readable
    assert "GB18030" in page.content() or "GBK" in page.content()
    mapping = page.locator("[data-testid=mapping]").inner_text()
    assert "公民身份号码" in mapping
    assert "id_number" in mapping
    assert "测试人0" in page.locator("[data-testid=preview-rows]").inner_text()
    page.click("button:has-text('确认导入')")
    page.wait_for_selector("[data-testid=batch-status]")
    assert page.locator("[data-testid=batch-status]").inner_text() == "已入库"
    message = page.locator("[data-testid=batch-message]").inner_text()
    assert "新增 5 行" in message
    assert "拒绝 2 行" in message
    shown = page.locator("[data-testid=errors]").inner_text()
    assert bad_check in shown
    assert "校验位错误" in shown
    with page.expect_download() as download_info:
        page.click("[data-testid=errors-csv]")
    download = download_info.value
    assert download.suggested_filename.endswith("-errors.csv")
    report = list(csv.reader(io.StringIO(Path(download.path()).read_bytes().decode("utf-8-sig"))))
    assert report[0] == ["行号", "列", "值", "原因", "级别"]
    by_row = {r[0]: r for r in report[1:]}
    assert by_row["7"][1] == "公民身份号码"
    assert by_row["7"][2] == bad_check
    assert by_row["8"][1] == "姓名"
    assert "必填" in by_row["8"][3]
    # the loaded rows are there to be looked up
    page.goto(f"{live_server}/ingestion/records/{entry}?key={good[2]}")
    assert "测试人2" in page.locator("[data-testid=records]").inner_text()
    assert errors == []
