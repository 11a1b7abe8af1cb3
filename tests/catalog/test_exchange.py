"""Catalog import and export: the Excel template, bulk import with per-row errors, export
of a search to XLSX, and the DCAT-AP 3 JSON-LD checked against the DCAT-AP SHACL shapes."""

from __future__ import annotations

import html
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.routing import NoMatchFound

from govshare.audit.models import AuditEntry
from govshare.catalog import exchange
from govshare.catalog import schemas as catalog_schemas
from govshare.catalog import search as catalog_search
from govshare.catalog import service as catalog
from govshare.catalog.exchange_routes import api_router, page_router
from govshare.catalog.models import CatalogEntry, CatalogVersion, EntryStatus, VersionState
from govshare.orgs.models import User
from govshare.principal import Principal
from tests.catalog.conftest import CatalogWorld, person_entry, publish
from tests.conftest import login

SHAPES = Path(__file__).parent / "data" / "dcat-ap-3.0.0-shacl.ttl"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ENTRY_HEADERS = [c.header for c in exchange.ENTRY_COLUMNS]
ITEM_HEADERS = [c.header for c in exchange.ITEM_COLUMNS]


@pytest.fixture
def app(app: FastAPI) -> FastAPI:
    """The conftest app, with the exchange routes and templates if main.py does not (yet)
    register them."""
    from govshare.web import PACKAGE, templates

    def registered(name: str) -> bool:
        try:
            app.url_path_for(name)
        except NoMatchFound:
            return False
        return True

    if not registered("import_api"):
        app.include_router(api_router, prefix="/api/v1")
    if not registered("template_download"):
        app.include_router(page_router, include_in_schema=False)
    folder = str(PACKAGE / "catalog" / "templates")
    loader: Any = templates.env.loader
    if folder not in loader.searchpath:
        loader.searchpath.append(folder)
    return app


def username(db: Session, principal: Principal) -> str:
    user = db.get(User, principal.id)
    assert user is not None
    return user.username


def as_user(client: TestClient, db: Session, principal: Principal) -> str:
    return login(client, username(db, principal))


# ---------------------------------------------------------------- building workbooks


def entry_row(**overrides: Any) -> dict[str, Any]:
    """A valid 条件共享 row of the county police (rulebook neixiang-2017)."""
    row: dict[str, Any] = {
        "资源名称": "户籍人口基本信息",
        "资源摘要": "本县户籍人口的姓名、性别、出生日期、住址等基本信息。",
        "目录类别": "部门信息资源",
        "分类项": "01",
        "分类目": "001",
        "资源格式": "数据库",
        "主体标识": "自然人（身份证号码）",
        "主键字段": "id_number",
        "共享类型": "条件共享",
        "共享范围": "本县政务部门办理行政审批、公共服务事项",
        "使用用途": "核验申请人户籍信息",
        "共享依据": "《中华人民共和国居民身份证法》第十三条",
        "共享方式": "数据核验、数据查询接口",
        "开放类型": "不予开放",
        "开放依据": "《中华人民共和国个人信息保护法》第二十八条",
        "更新周期": "每日",
        "数据分级": "重要数据",
        "回流数据（是/否）": "否",
    }
    row.update(overrides)
    return row


def person_items(entry: str, **first: Any) -> list[dict[str, Any]]:
    key = {
        "资源名称": entry,
        "信息项名称": "公民身份号码",
        "字段名": "id_number",
        "数据类型": "身份证号码",
        "长度": 18,
        "必填（是/否）": "是",
        "个人信息（是/否）": "是",
        "敏感个人信息（是/否）": "是",
    }
    key.update(first)
    return [
        key,
        {
            "资源名称": entry,
            "信息项名称": "姓名",
            "字段名": "name",
            "数据类型": "字符型",
            "长度": 50,
            "必填（是/否）": "是",
            "个人信息（是/否）": "是",
        },
        {
            "资源名称": entry,
            "信息项名称": "住址",
            "字段名": "address",
            "数据类型": "字符型",
            "长度": 200,
            "个人信息（是/否）": "是",
        },
    ]


def workbook(entries: list[dict[str, Any]], items: list[dict[str, Any]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = "目录"
    ws.append(ENTRY_HEADERS)
    for e in entries:
        ws.append([e.get(h) for h in ENTRY_HEADERS])
    wi = wb.create_sheet("信息项")
    wi.append(ITEM_HEADERS)
    for it in items:
        wi.append([it.get(h) for h in ITEM_HEADERS])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def good_and_bad() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Two good rows (目录 rows 2 and 3) and two bad ones (rows 4 and 5)."""
    entries = [
        entry_row(),
        entry_row(
            资源名称="户籍迁移信息",
            共享类型="无条件共享",  # the generic name is accepted too
            共享范围="",
            使用用途="",
            更新周期="每月",
        ),
        entry_row(资源名称="暂住人口信息", 共享范围=""),  # 条件共享 without 共享范围
        entry_row(
            资源名称="在逃人员信息",
            共享类型="不予共享",
            共享依据="本局内部管理规定",  # not a law
            共享方式="",
            共享范围="",
            使用用途="",
        ),
    ]
    items = (
        person_items("户籍人口基本信息")
        + person_items("户籍迁移信息", **{"敏感个人信息（是/否）": "否"})
        + person_items("暂住人口信息")
        + person_items("在逃人员信息")
    )
    items[2 * 3 + 2]["数据类型"] = "图片型"  # 住址 of 暂住人口信息: 信息项 row 2 + 8 = 10
    return entries, items


def upload(client: TestClient, content: bytes, name: str = "目录.xlsx") -> Any:
    return client.post("/api/v1/catalog/import", files={"file": (name, content, XLSX)})


def entry_count(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(CatalogEntry)) or 0


def actions(db: Session) -> list[str]:
    return list(db.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))


# ---------------------------------------------------------------- template


def test_template_downloads_and_reimports_its_example(
    client: TestClient, db: Session, world: CatalogWorld
) -> None:
    as_user(client, db, world.officer)
    r = client.get("/catalog/template.xlsx")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == XLSX
    assert "filename*=UTF-8''" in r.headers["content-disposition"]
    wb = load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == ["目录", "信息项", "填写说明"]
    ws = wb["目录"]
    assert [c.value for c in ws[1]] == ENTRY_HEADERS
    # share and open types by the county's rulebook (neixiang-2017: 强制/条件/不予共享)
    share_col = ENTRY_HEADERS.index("共享类型") + 1
    assert ws.cell(row=2, column=share_col).value == "条件共享"
    lists = {dv.formula1 for dv in ws.data_validations.dataValidation}
    assert '"强制共享,条件共享,不予共享"' in lists
    assert '"基础信息资源,主题信息资源,部门信息资源"' in lists
    items_lists = {dv.formula1 for dv in wb["信息项"].data_validations.dataValidation}
    assert any("身份证号码" in f for f in items_lists)
    help_text = " ".join(str(c.value) for row in wb["填写说明"].iter_rows() for c in row if c.value)
    assert "强制共享" in help_text
    assert "无条件共享" in help_text  # the generic names are accepted as well
    assert "数据核验" in help_text

    r = upload(client, r.content, "模板.xlsx")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["created"] == 1
    assert body["entries"][0]["name"] == "户籍人口基本信息（示例）"
    assert body["entries"][0]["code"] == "301001/00001"
    version = db.get(CatalogVersion, body["entries"][0]["version_id"])
    assert version is not None
    assert version.entry.department_id == world.police.id
    assert version.share_type == "conditional"
    assert version.share_methods == ["query", "verification"]
    assert [it["field"] for it in version.data_items] == ["id_number", "name", "address"]
    assert version.data_items[0]["sensitive"] is True


def test_template_for_reviewer_is_refused(
    client: TestClient, db: Session, world: CatalogWorld
) -> None:
    as_user(client, db, world.reviewer)
    assert client.get("/catalog/template.xlsx").status_code == 403


# ---------------------------------------------------------------- import


def test_bad_rows_create_nothing_and_are_reported_by_sheet_row_and_column(
    client: TestClient, db: Session, world: CatalogWorld
) -> None:
    as_user(client, db, world.officer)
    entries, items = good_and_bad()
    r = upload(client, workbook(entries, items))
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert "未创建任何目录资源" in error["message"]
    rows = {(e["sheet"], e["row"], e["column"]): e for e in error["rows"]}
    assert set(rows) == {
        ("目录", 4, "共享范围"),
        ("目录", 5, "共享依据"),
        ("信息项", 10, "数据类型"),
    }
    assert "条件共享的资源须列明共享范围" in rows[("目录", 4, "共享范围")]["reason"]
    not_shared = rows[("目录", 5, "共享依据")]
    assert not_shared["value"] == "本局内部管理规定"
    assert "须引用法律、行政法规或国务院决定" in not_shared["reason"]
    data_type = rows[("信息项", 10, "数据类型")]
    assert data_type["value"] == "图片型"
    assert "不是允许的数据类型" in data_type["reason"]
    assert "字符型" in data_type["reason"]
    assert entry_count(db) == 0
    assert "catalog:entry:import" not in actions(db)


def test_fixed_file_creates_drafts_for_the_officers_department(
    client: TestClient, db: Session, world: CatalogWorld
) -> None:
    as_user(client, db, world.officer)
    entries, items = good_and_bad()
    fixed = workbook(
        entries[:2], [it for it in items if it["资源名称"] in ("户籍人口基本信息", "户籍迁移信息")]
    )
    r = upload(client, fixed)
    assert r.status_code == 201, r.text
    created = r.json()["entries"]
    assert [e["code"] for e in created] == ["301001/00001", "301001/00002"]
    assert [e["name"] for e in created] == ["户籍人口基本信息", "户籍迁移信息"]
    drafts = list(db.scalars(select(CatalogEntry).order_by(CatalogEntry.code)))
    assert [e.department_id for e in drafts] == [world.police.id, world.police.id]
    assert all(e.status == EntryStatus.DRAFT for e in drafts)
    second = db.get(CatalogVersion, created[1]["version_id"])
    assert second is not None
    assert second.state == VersionState.DRAFT
    assert second.share_type == "unconditional"
    assert second.update_frequency == "monthly"
    assert second.data_items[0]["sensitive"] is False
    log = actions(db)
    assert log.count("catalog:entry:create") == 2
    assert log.count("catalog:entry:import") == 1
    summary = db.scalar(select(AuditEntry).where(AuditEntry.action == "catalog:entry:import"))
    assert summary is not None
    assert json.loads(summary.details)["codes"] == ["301001/00001", "301001/00002"]


def test_items_and_entries_must_belong_together(
    client: TestClient, db: Session, world: CatalogWorld
) -> None:
    as_user(client, db, world.officer)
    entries = [entry_row(), entry_row(资源名称="无信息项资源"), entry_row()]
    items = [*person_items("户籍人口基本信息"), *person_items("不存在的资源")[:1]]
    items[1]["字段名"] = "Name"  # not a field name
    r = upload(client, workbook(entries, items))
    assert r.status_code == 422
    rows = [(e["sheet"], e["row"], e["column"], e["reason"]) for e in r.json()["error"]["rows"]]
    assert ("目录", 3, "资源名称") in [x[:3] for x in rows]
    assert any(x[:3] == ("目录", 4, "资源名称") and "重复" in x[3] for x in rows)
    assert any(x[:3] == ("信息项", 3, "字段名") and "小写英文字母" in x[3] for x in rows)
    assert any(x[:3] == ("信息项", 5, "资源名称") and "没有这个资源名称" in x[3] for x in rows)
    assert entry_count(db) == 0


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"this is not a workbook at all", "不是有效的 Excel 工作簿"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, "不支持 .xls"),  # an old .xls
        (b"", "空的"),
    ],
)
def test_garbage_is_refused_with_a_clear_message(
    client: TestClient, db: Session, world: CatalogWorld, content: bytes, fragment: str
) -> None:
    as_user(client, db, world.officer)
    r = upload(client, content)
    assert r.status_code == 422, r.text
    assert fragment in r.json()["error"]["message"]
    assert entry_count(db) == 0


def test_broken_workbooks_are_refused(
    client: TestClient, db: Session, world: CatalogWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_user(client, db, world.officer)
    good = workbook([entry_row()], person_items("户籍人口基本信息"))
    # truncated
    r = upload(client, good[: len(good) // 2])
    assert r.status_code == 422
    assert "不是有效的 Excel 工作簿" in r.json()["error"]["message"]
    # a zip that is not a workbook
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("hello.txt", "你好")
    r = upload(client, buf.getvalue())
    assert r.status_code == 422
    assert "不是有效的 Excel 工作簿" in r.json()["error"]["message"]
    # a workbook whose sheet XML is garbage
    broken = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as src, zipfile.ZipFile(broken, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = b"<worksheet><sheetData><row r='1'><c r='A1' t='s'><v>x"
            dst.writestr(info, data)
    r = upload(client, broken.getvalue())
    assert r.status_code == 422
    assert "不是有效的 Excel 工作簿" in r.json()["error"]["message"]
    # a zip bomb: refused from the sizes in the zip directory, before unpacking
    monkeypatch.setattr(exchange, "MAX_UNPACKED_BYTES", 1024 * 1024)
    bomb = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(good)) as src,
        zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
        dst.writestr("xl/media/padding.bin", b"\0" * (2 * 1024 * 1024))
    assert len(bomb.getvalue()) < 100_000
    r = upload(client, bomb.getvalue())
    assert r.status_code == 422
    assert "压缩炸弹" in r.json()["error"]["message"]
    assert entry_count(db) == 0


def test_import_limits(
    client: TestClient, db: Session, world: CatalogWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_user(client, db, world.officer)
    huge = "很" * 4001
    r = upload(client, workbook([entry_row(使用用途=huge)], person_items("户籍人口基本信息")))
    assert r.status_code == 422
    (row,) = r.json()["error"]["rows"]
    assert (row["sheet"], row["row"], row["column"]) == ("目录", 2, "使用用途")
    assert "4000" in row["reason"]
    assert len(row["value"]) < 300

    monkeypatch.setattr(exchange, "MAX_ENTRIES", 2)
    names = ["资源一", "资源二", "资源三"]
    many = workbook(
        [entry_row(资源名称=n) for n in names], [it for n in names for it in person_items(n)]
    )
    r = upload(client, many)
    assert r.status_code == 422
    assert "一次最多导入 2 条资源" in r.json()["error"]["message"]

    monkeypatch.setattr(exchange, "MAX_FILE_BYTES", 1000)
    r = upload(client, many)
    assert r.status_code == 422
    assert "分批导入" in r.json()["error"]["message"]
    assert entry_count(db) == 0


def test_officer_may_import_but_reviewer_may_not(
    client: TestClient, db: Session, world: CatalogWorld
) -> None:
    content = workbook([entry_row()], person_items("户籍人口基本信息"))
    as_user(client, db, world.reviewer)
    assert upload(client, content).status_code == 403
    assert client.get("/catalog/import").status_code == 403
    assert entry_count(db) == 0
    client.cookies.clear()
    as_user(client, db, world.officer)
    assert upload(client, content).status_code == 201
    assert entry_count(db) == 1


def test_import_page_shows_errors_and_offers_the_report(
    client: TestClient, db: Session, world: CatalogWorld
) -> None:
    token = as_user(client, db, world.officer)
    page = client.get("/catalog/import")
    assert page.status_code == 200
    assert 'href="/catalog/template.xlsx"' in page.text
    assert re.search(r'name="csrf_token" value="[^"]+"', page.text)

    entries, items = good_and_bad()
    r = client.post(
        "/catalog/import",
        data={"csrf_token": token},
        files={"file": ("目录.xlsx", workbook(entries, items), XLSX)},
    )
    assert r.status_code == 422
    assert "未创建任何目录资源" in r.text
    assert 'data-testid="import-errors"' in r.text
    assert "图片型" in r.text
    report = re.search(r'name="report" value="([^"]+)"', r.text)
    assert report is not None
    r = client.post(
        "/catalog/import/errors.xlsx",
        data={"csrf_token": token, "report": html.unescape(report.group(1))},
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == XLSX
    sheet = load_workbook(io.BytesIO(r.content)).active
    rows = [[c.value for c in row] for row in sheet.iter_rows()]
    assert rows[0] == ["工作表", "行号", "列名", "填写的值", "原因"]
    assert rows[-1][:4] == ["信息项", 10, "数据类型", "图片型"]
    assert entry_count(db) == 0

    # a broken file: the page says so
    r = client.post(
        "/catalog/import",
        data={"csrf_token": token},
        files={"file": ("目录.xlsx", b"garbage", XLSX)},
    )
    assert r.status_code == 422
    assert "不是有效的 Excel 工作簿" in r.text

    # the fixed file: drafts created, back to the page with a message
    good = workbook(entries[:1], items[:3])
    r = client.post(
        "/catalog/import",
        data={"csrf_token": token},
        files={"file": ("目录.xlsx", good, XLSX)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = client.get(r.headers["location"])
    assert "已导入 1 条目录资源草稿（资源代码 301001/00001）" in page.text
    assert entry_count(db) == 1


# ---------------------------------------------------------------- export


def published_codes(rows: list[list[Any]]) -> list[str]:
    return [str(r[0]) for r in rows[1:]]


def test_formula_text_comes_back_as_text_not_a_formula(
    client: TestClient, db: Session, world: CatalogWorld
) -> None:
    as_user(client, db, world.officer)
    wb = Workbook()
    ws = wb.active
    ws.title = "目录"
    ws.append(ENTRY_HEADERS)
    ws.append([entry_row().get(h) for h in ENTRY_HEADERS])
    scope = ws.cell(row=2, column=ENTRY_HEADERS.index("共享范围") + 1, value="=1+1")
    scope.data_type = "s"  # typed as text in Excel (a leading apostrophe)
    purpose = ws.cell(row=2, column=ENTRY_HEADERS.index("使用用途") + 1, value="@SUM(A1)")
    purpose.data_type = "s"
    wi = wb.create_sheet("信息项")
    wi.append(ITEM_HEADERS)
    for it in person_items("户籍人口基本信息"):
        wi.append([it.get(h) for h in ITEM_HEADERS])
    buf = io.BytesIO()
    wb.save(buf)
    r = upload(client, buf.getvalue())
    assert r.status_code == 201, r.text
    version = db.get(CatalogVersion, r.json()["entries"][0]["version_id"])
    assert version is not None
    assert version.share_scope == "=1+1"
    catalog.submit(db, world.officer, version)
    catalog.review(db, world.authority, version, catalog_schemas.ReviewIn(decision="approve"))
    db.commit()

    r = client.get("/catalog/export.xlsx")
    assert r.status_code == 200, r.text
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        xml = b"".join(zf.read(n) for n in zf.namelist() if n.startswith("xl/worksheets/"))
    assert b"<f>" not in xml
    assert b"<f " not in xml
    out = load_workbook(io.BytesIO(r.content))["目录"]
    headers = [c.value for c in out[1]]
    scope_cell = out.cell(row=2, column=headers.index("共享范围") + 1)
    assert scope_cell.value == "=1+1"
    assert scope_cell.data_type == "s"
    assert scope_cell.quotePrefix is True
    purpose_cell = out.cell(row=2, column=headers.index("使用用途") + 1)
    assert purpose_cell.value == "@SUM(A1)"
    assert purpose_cell.data_type == "s"


def test_export_of_a_filtered_search_has_exactly_the_matching_published_entries(
    client: TestClient, db: Session, world: CatalogWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_search, "MAX_PER_PAGE", 1)  # the export reads every page
    a = publish(db, world)  # conditional, daily
    b = publish(db, world, name="户籍迁移信息", update_frequency="monthly")  # conditional
    publish(
        db,
        world,
        name="户籍人口统计",
        share_type="unconditional",
        share_scope="",
        share_purpose="",
        data_items=[
            {
                "name": "公民身份号码",
                "field": "id_number",
                "data_type": "id_number",
                "required": True,
                "personal": True,
            }
        ],
    )
    catalog.create_entry(
        db, world.officer, catalog_schemas.EntryCreate(**person_entry(name="户籍草稿"))
    )
    civil = catalog.create_entry(
        db, world.other_officer, catalog_schemas.EntryCreate(**person_entry(name="户籍婚姻信息"))
    )
    catalog.submit(db, world.other_officer, civil)
    catalog.review(db, world.authority, civil, catalog_schemas.ReviewIn(decision="approve"))
    db.commit()

    as_user(client, db, world.reviewer)  # dept_reviewer has catalog:entry:export
    r = client.get(
        "/catalog/export.xlsx",
        params={"q": "户籍", "share_type": "conditional", "department_id": str(world.police.id)},
    )
    assert r.status_code == 200, r.text
    wb = load_workbook(io.BytesIO(r.content))
    entries = [[c.value for c in row] for row in wb["目录"].iter_rows()]
    headers = entries[0]
    assert headers[0] == "资源代码"
    assert headers[-3:] == ["提供部门", "发布日期", "版本"]
    assert set(ENTRY_HEADERS) <= set(headers)
    # in the search's order (relevance, then the latest published first)
    assert sorted(published_codes(entries)) == [a.entry.code, b.entry.code]
    row = next(dict(zip(headers, r, strict=True)) for r in entries[1:] if r[0] == a.entry.code)
    assert row["共享类型"] == "条件共享"
    assert row["提供部门"] == "目录县公安局"
    assert row["更新周期"] == "每日"
    assert row["版本"] == 1
    items = [[c.value for c in row] for row in wb["信息项"].iter_rows()]
    assert items[0][:3] == ["资源代码", "资源名称", "信息项名称"]
    assert sorted(r[0] for r in items[1:]) == [a.entry.code] * 3 + [b.entry.code] * 3

    # blank filters (as the search form sends them) mean any
    r = client.get("/catalog/export.xlsx", params={"q": "", "share_type": "", "data_grade": ""})
    assert r.status_code == 200
    assert (
        len(
            published_codes(
                [
                    [c.value for c in row]
                    for row in load_workbook(io.BytesIO(r.content))["目录"].iter_rows()
                ]
            )
        )
        == 4
    )
    r = client.get("/catalog/export.xlsx", params={"share_type": "sometimes"})
    assert r.status_code == 422
    assert "共享类型的取值无效" in r.text
    monkeypatch.setattr(exchange, "MAX_EXPORT_ROWS", 3)
    r = client.get("/catalog/export.xlsx")
    assert r.status_code == 422
    assert "请缩小筛选范围" in r.text

    logged = list(
        db.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "catalog:entry:export")
            .order_by(AuditEntry.seq)
        )
    )
    assert len(logged) == 2
    first = json.loads(logged[0].details)
    assert first["rows"] == 2
    assert first["filters"] == {
        "q": "户籍",
        "share_type": "conditional",
        "department_id": world.police.id,
    }


def test_exported_workbook_imports_again(
    client: TestClient, db: Session, world: CatalogWorld
) -> None:
    publish(db, world)
    as_user(client, db, world.officer)
    exported = client.get("/catalog/export.xlsx").content
    r = upload(client, exported)
    assert r.status_code == 201, r.text
    assert r.json()["entries"][0]["name"] == "户籍人口基本信息"


# ---------------------------------------------------------------- DCAT-AP


@pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")
def test_dcat_jsonld_parses_and_conforms_to_dcat_ap_3_shapes(
    client: TestClient, db: Session, world: CatalogWorld
) -> None:
    from pyshacl import validate
    from rdflib import Graph, Literal, Namespace, URIRef
    from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF

    a = publish(db, world)  # verification + query: a data service
    b = publish(
        db,
        world,
        name="户籍人口统计表",
        resource_format="spreadsheet",
        share_type="unconditional",
        share_scope="",
        share_purpose="",
        share_methods=["batch"],
        update_frequency="realtime",
        related_codes=[a.entry.code],
        data_items=[
            {
                "name": "公民身份号码",
                "field": "id_number",
                "data_type": "id_number",
                "required": True,
                "personal": True,
            }
        ],
    )
    catalog.create_entry(
        db, world.officer, catalog_schemas.EntryCreate(**person_entry(name="未发布资源"))
    )
    db.commit()

    as_user(client, db, world.reviewer)
    r = client.get("/api/v1/catalog/dcat.jsonld")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/ld+json")

    data = Graph().parse(data=r.text, format="json-ld")
    shapes = Graph().parse(SHAPES, format="turtle")
    conforms, _graph, report = validate(data, shacl_graph=shapes, inference="none")
    print(report)
    assert conforms is True, report

    base = "http://testserver/"
    FREQ = Namespace("http://publications.europa.eu/resource/authority/frequency/")
    catalog_iri = URIRef(f"{base}catalog")
    assert (catalog_iri, RDF.type, DCAT.Catalog) in data
    datasets = set(data.objects(catalog_iri, DCAT.dataset))
    page_a = URIRef(f"{base}catalog/entries/{a.entry_id}")
    page_b = URIRef(f"{base}catalog/entries/{b.entry_id}")
    ds_a = URIRef(f"{page_a}#dataset")
    ds_b = URIRef(f"{page_b}#dataset")
    assert datasets == {ds_a, ds_b}
    assert (ds_a, DCTERMS.identifier, Literal(a.entry.code)) in data
    assert (ds_a, DCTERMS.title, Literal("户籍人口基本信息", lang="zh")) in data
    assert (ds_a, DCTERMS.accrualPeriodicity, FREQ.DAILY) in data
    assert (ds_b, DCTERMS.accrualPeriodicity, FREQ.CONT) in data
    assert (ds_b, DCTERMS.relation, ds_a) in data
    # the catalog is published by the data authority of the top jurisdiction
    publisher = data.value(catalog_iri, DCTERMS.publisher)
    assert data.value(publisher, FOAF.name) == Literal("目录市数据局", lang="zh")
    # a dataset is published by its department, identified by its credit code
    provider = data.value(ds_a, DCTERMS.publisher)
    assert data.value(provider, DCTERMS.identifier) == Literal(world.police.credit_code)
    theme = data.value(ds_a, DCAT.theme)
    assert str(theme).endswith("/catalog/classification/301001")
    # distributions point at the entry page; the spreadsheet one says it is XLSX
    dist_b = data.value(ds_b, DCAT.distribution)
    assert data.value(dist_b, DCAT.accessURL) == page_b
    assert data.value(ds_b, DCAT.landingPage) == page_b
    assert str(data.value(dist_b, DCTERMS.format)).endswith("/file-type/XLSX")
    # query/verification entries have a data service; batch-only ones do not
    services = set(data.subjects(RDF.type, DCAT.DataService))
    assert len(services) == 1
    (service,) = services
    assert data.value(service, DCAT.servesDataset) == ds_a
    assert data.value(service, DCAT.endpointURL) is not None
    assert (catalog_iri, DCAT.service, service) in data
