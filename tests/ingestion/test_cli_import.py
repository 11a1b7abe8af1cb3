"""`govshare import` streams a GBK CSV into a demo entry's data table, in one batch."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from govshare.db import make_engine
from govshare.ingestion.models import DataTable, IngestBatch
from govshare.ingestion.validators import id_check_digit
from tests.conftest import run_cli


def write_people(path: Path, good: int, bad: int) -> None:
    lines = ["公民身份号码,姓名,性别,出生日期,民族,户籍地址,行政区划代码"]
    for n in range(good):
        body = f"410102{19800101 + n % 28:08d}{n % 1000:03d}"
        lines.append(
            f"{body + id_check_digit(body)},张{n},男,{19800101 + n % 28},汉族,路{n}号,410102"
        )
    lines += [f"12{n},坏行,男,19800101,汉族,某地,410102" for n in range(bad)]
    path.write_text("\n".join(lines) + "\n", encoding="gbk")


def test_import_gbk_csv_with_progress_and_modes(fresh_db_url: str, tmp_path: Path) -> None:
    env = {"GOVSHARE_VAR_DIR": str(tmp_path / "var")}
    assert run_cli("demo", "--no-serve", url=fresh_db_url, env=env).returncode == 0
    engine = make_engine(fresh_db_url)
    with Session(engine) as s:
        from govshare.catalog.models import CatalogEntry, CatalogVersion
        from govshare.orgs.models import Department

        code = s.scalar(
            select(CatalogEntry.code)
            .join(CatalogVersion, CatalogVersion.id == CatalogEntry.current_version_id)
            .where(CatalogVersion.name == "户籍人口基本信息")
        )
        police = s.scalar(select(Department.credit_code).where(Department.name == "青川市公安局"))
        civil = s.scalar(select(Department.credit_code).where(Department.name == "青川市民政局"))
    assert code
    assert police
    assert civil
    csv = tmp_path / "people.csv"
    write_people(csv, good=500, bad=3)
    strict = run_cli(
        "import",
        code,
        str(csv),
        "--department",
        police,
        "--mode",
        "all_or_nothing",
        url=fresh_db_url,
        env=env,
    )
    assert strict.returncode == 1
    assert "未导入任何数据" in strict.stdout
    ok = run_cli("import", code, str(csv), "--department", police, url=fresh_db_url, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "新增 500 行" in ok.stdout
    assert "拒绝 3 行" in ok.stdout
    assert "身份证号码应为 18 位" in ok.stdout
    assert "行/秒" in ok.stderr  # the progress line
    other = run_cli("import", code, str(csv), "--department", civil, url=fresh_db_url, env=env)
    assert other.returncode == 1
    assert "只能向本部门的目录资源汇聚数据" in other.stderr
    with Session(engine) as s:
        registry = s.scalar(select(DataTable).where(DataTable.table_name.like("data_%")))
        assert registry is not None
        batches = s.scalars(
            select(IngestBatch).where(IngestBatch.source == "cli").order_by(IngestBatch.id)
        ).all()
        assert [(b.status, b.rows_loaded, b.rows_rejected, b.encoding) for b in batches] == [
            ("rejected", 0, 3, "gb18030"),
            ("committed", 500, 3, "gb18030"),
        ]
        from govshare.ingestion import tables

        data, _ = tables.tables_for(s.get(DataTable, batches[1].entry_id))  # type: ignore[arg-type]
        assert s.scalar(select(func.count()).select_from(data)) == 20_000 + 500  # demo + file
    engine.dispose()
