"""``govshare import RESOURCE_CODE FILE``: stream a large file into an entry's data table."""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

console = Console()
err = Console(stderr=True)

#: the SQLite page cache of an import's connection, in KiB
SQLITE_CACHE_KB = 128 * 1024
MAX_CLI_BYTES = 20 * 1024 * 1024 * 1024  # the CLI streams: only a sanity limit
#: without a terminal (a log file, a pipe) progress is printed as a line this often
LOG_EVERY_SECONDS = 1.0


def import_file(
    resource_code: Annotated[str, typer.Argument(help="目录资源代码，如 301001/00001")],
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV（UTF-8 或 GBK）或 XLSX 文件", exists=True, dir_okay=False, readable=True
        ),
    ],
    department: Annotated[str, typer.Option(help="提供部门的统一社会信用代码（须与资源一致）")],
    mode: Annotated[str, typer.Option(help="valid_rows（有效行入库）或 all_or_nothing")] = (
        "valid_rows"
    ),
) -> None:
    """把文件中的数据汇聚到目录资源的数据表：逐行校验，整批一个事务，显示进度。"""
    from sqlalchemy import text

    from govshare.db import unit_of_work
    from govshare.errors import DomainError
    from govshare.ingestion import prefetch, readers, service
    from govshare.ingestion.models import BatchSource
    from govshare.orgs import repository as orgs_repo
    from govshare.orgs import service as orgs_service
    from govshare.permissions import Role

    try:
        batch_mode = service.check_mode(mode)
        with unit_of_work() as session:
            if session.get_bind().dialect.name == "sqlite":
                # a bulk load touches index pages all over: give this connection a page
                # cache of its own size (the default is 2 MB), bounded
                session.execute(text(f"PRAGMA cache_size = -{SQLITE_CACHE_KB}"))
            dept = orgs_repo.department_by_credit_code(session, department.upper())
            if dept is None:
                raise typer.BadParameter(f"统一社会信用代码为 {department} 的部门不存在")
            actor = orgs_service.department_principal(
                dept, Role.DEPT_OFFICER, f"govshare import（{dept.name}）"
            )
            from govshare.catalog import service as catalog_service

            entry = catalog_service.get_entry_by_code(session, actor, resource_code)
            entry = service.target_entry(session, actor, entry.id)
            assert entry.current_version is not None
            items = entry.current_version.data_items
            started = time.monotonic()
            with (
                readers.open_table(file, items, max_bytes=MAX_CLI_BYTES) as table,
                Progress(
                    TextColumn("[bold]{task.description}"),
                    BarColumn(),
                    TextColumn("{task.fields[stats]}"),
                    TimeElapsedColumn(),
                    console=err,
                    transient=False,
                ) as progress,
            ):
                if table.header.missing_required:
                    raise typer.BadParameter(
                        "文件缺少必填信息项：" + "、".join(table.header.missing_required)
                    )
                task = progress.add_task(entry.code, total=None, stats="")

                logged = 0.0

                def tick(outcome: Any) -> None:
                    nonlocal logged
                    now = time.monotonic()
                    rate = outcome.rows_total / max(now - started, 1e-6)
                    stats = (
                        f"{outcome.rows_total:,} 行 · {rate:,.0f} 行/秒"
                        f" · 错误 {outcome.rejected_rows:,} 行"
                    )
                    progress.update(task, stats=stats)
                    if not err.is_terminal and now - logged >= LOG_EVERY_SECONDS:
                        # no live bar in a log file or a pipe: one plain line now and then
                        logged = now
                        err.print(f"{entry.code}：已处理 {stats}", highlight=False)

                names = {f: table.header.columns[i] for i, f in table.header.mapping.items()}
                # the objects alive now (modules, the app) live as long as this command:
                # keeping them out of the collector's scans saves ~10% of a large import
                gc.freeze()
                # rows hold no reference cycles: collect rarely while millions pass through
                gc.set_threshold(100_000, 50, 50)
                # a second process reads and validates the file while this one writes
                with prefetch.checked_rows(file, items, max_bytes=MAX_CLI_BYTES) as checked:
                    outcome = service.load_rows(
                        session,
                        actor,
                        entry,
                        (),
                        source=BatchSource.CLI,
                        mode=batch_mode,
                        file_name=file.name,
                        encoding=table.encoding or "",
                        column_names=names,
                        progress=tick,
                        checked=checked,
                    )
                tick(outcome)
            batch = outcome.batch
            console.print(f"批次 {batch.id}：{batch.message}")
            for e in service.errors_of(session, batch.id, limit=20):
                console.print(f"  第 {e.row_number} 行 {e.column}（{e.value}）：{e.reason}")
            if batch.rows_rejected > 20:
                console.print(f"  …… 其余错误见批次 {batch.id} 的错误报告")
            rejected = batch.status == "rejected"
    except DomainError as exc:
        err.print(f"[red]错误：[/red]{exc.message}")
        raise typer.Exit(1) from None
    if rejected:
        raise typer.Exit(1)
