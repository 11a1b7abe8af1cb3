"""``govshare audit``: verify the chain, purge old entries, show the latest entries."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

audit_app = typer.Typer(help="审计日志", no_args_is_help=True)

console = Console(emoji=False, highlight=False)
err = Console(stderr=True, emoji=False, highlight=False)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]错误：[/red]{message}")
    return typer.Exit(code)


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr (only on a terminal: stdout stays parseable)."""
    if not enabled or not err.is_terminal:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        SpinnerColumn(),
        TextColumn("校验日志链"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("verify", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


@audit_app.command("verify")
def verify(
    workers: Annotated[
        int | None, typer.Option(help="并行进程数（默认每个 CPU 一个，最多 8；日志不多时单进程）")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="以 JSON 输出结果")] = False,
    progress: Annotated[bool, typer.Option(help="在终端显示进度")] = True,
) -> None:
    """校验审计日志链：重新计算每条日志的 SM3 哈希，找出第一条被修改或删除的日志。

    日志链完整时退出码为 0，否则为 1。在只读快照中进行，不影响平台运行。
    """
    from govshare.audit import service
    from govshare.db import get_engine, unit_of_work
    from govshare.principal import Principal

    with _progress(progress and not as_json) as tick:
        result = service.verify_engine(get_engine(), workers=workers, progress=tick)
    with unit_of_work() as session:
        service.record_verify(session, Principal.platform("govshare audit verify"), result)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "ok": result.ok,
                    "checked": result.checked,
                    "first_bad_seq": result.first_bad_seq,
                    "reason": result.reason,
                    "checkpoint_seq": result.checkpoint_seq,
                },
                ensure_ascii=False,
            )
        )
    elif result.ok:
        since = (
            f"（从清理检查点之后的第 {result.checkpoint_seq + 1} 条起）"
            if result.checkpoint_seq
            else ""
        )
        typer.echo(f"日志链完整：已校验 {result.checked} 条{since}")
    else:
        where = f"第 {result.first_bad_seq} 条：" if result.first_bad_seq else ""
        typer.echo(f"日志链被破坏：{where}{result.reason}")
        typer.echo(f"在此之前已校验通过 {result.checked} 条")
    raise typer.Exit(0 if result.ok else 1)


@audit_app.command("purge")
def purge(
    before: Annotated[
        str, typer.Option("--before", help="清理此日期（北京时间）之前的日志，YYYY-MM-DD")
    ],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="不再确认")] = False,
) -> None:
    """清理超过保留期限的日志（至少保留 6 个月，以各规则中最长者为准），留下清理检查点。"""
    from govshare.audit import service
    from govshare.db import unit_of_work
    from govshare.errors import DomainError
    from govshare.principal import Principal

    try:
        day = date.fromisoformat(before)
    except ValueError:
        raise _fail(f"日期 {before} 无效，应为 YYYY-MM-DD") from None
    with unit_of_work() as session:
        policy = service.purge_policy(session)
    if day > policy.latest_before:
        raise _fail(
            f"日志至少保留 {policy.retention_months} 个月，清理截止日期不能晚于 "
            f"{policy.latest_before}"
        )
    if not yes:
        typer.confirm(f"将删除 {day}（北京时间）之前的审计日志，无法恢复。确定吗？", abort=True)
    try:
        with unit_of_work() as session:
            cp = service.purge_before_date(session, Principal.platform("govshare audit purge"), day)
    except DomainError as exc:
        raise _fail(exc.message) from None
    if cp is None:
        typer.echo(f"{day} 之前没有可以清理的日志")
    else:
        typer.echo(
            f"已清理 {cp.entries_purged} 条日志（至第 {cp.last_seq} 条），"
            f"清理检查点 #{cp.id}：{cp.hash}"
        )


@audit_app.command("tail")
def tail(
    lines: Annotated[int, typer.Option("-n", "--lines", min=1, max=1000, help="条数")] = 20,
) -> None:
    """显示最近的审计日志。"""
    from govshare.audit import repository as repo
    from govshare.audit.views import action_label, role_label
    from govshare.db import LOCAL_TZ, unit_of_work
    from govshare.principal import Principal

    with unit_of_work() as session:
        entries = repo.latest_entries(session, Principal.platform("govshare audit tail"), lines)
    header = ("序号", "时间", "操作人", "角色", "操作", "对象", "IP", "详情")
    rows = []
    for e in reversed(entries):
        label = action_label(e.action)
        rows.append(
            (
                str(e.seq),
                e.occurred_at.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M:%S"),
                e.actor_name,
                role_label(e.role),
                f"{label}（{e.action}）" if label != e.action else e.action,
                f"{e.target_type} {e.target_id}".strip(),
                e.ip,
                "" if e.details == "{}" else e.details,
            )
        )
    if not console.is_terminal:  # piped: one tab-separated line per entry
        for row in rows:
            typer.echo("\t".join(v.replace("\t", " ").replace("\n", " ") for v in row))
        return
    table = Table()
    for col in header:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*(Text(v) for v in row))
    console.print(table)
