"""``govshare calendar ...`` and ``govshare rulebook ...``."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, NoReturn
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from govshare.errors import DomainError
from govshare.principal import Principal
from govshare.rules.rulebook import Rulebook

calendar_app = typer.Typer(help="工作日历", no_args_is_help=True)
rulebook_app = typer.Typer(help="共享规则", no_args_is_help=True)

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _fail(message: str) -> NoReturn:
    err.print(f"[red]错误：[/red]{message}", highlight=False, markup=True)
    raise typer.Exit(1)


def _date(text: str, what: str) -> date:
    from govshare.rules import service as rules_service

    day = rules_service.parse_day(text)
    if day is None:
        _fail(f"{what}“{text}”不是 YYYY-MM-DD 格式的日期")
    return day


def _actor(command: str) -> Principal:
    return Principal.platform(f"govshare calendar {command}")


# ---------------------------------------------------------------- calendar


@calendar_app.command("due")
def calendar_due(
    received: Annotated[str, typer.Option("--from", help="收到日期 YYYY-MM-DD（当日不计）")],
    days: Annotated[int, typer.Option("--days", help="工作日数")],
    jurisdiction: Annotated[
        str | None, typer.Option("--jurisdiction", help="行政区划代码（含本地调整）")
    ] = None,
) -> None:
    """计算期限。第一行为期限日期（ISO 格式），临时计算时其后跟 " provisional"。"""
    from govshare.db import unit_of_work
    from govshare.rules import service as rules_service

    day = _date(received, "收到日期")
    try:
        with unit_of_work() as session:
            due = rules_service.due_date(session, day, days, jurisdiction or None)
    except DomainError as exc:
        _fail(exc.message)
    typer.echo(due.as_line())
    if due.provisional:
        years = "、".join(str(y) for y in due.uncovered_years)
        typer.echo(f"注意：{years} 年的工作日历尚未导入，涉及的日子按周一至周五临时计算。")


@calendar_app.command("years")
def calendar_years() -> None:
    """列出已导入全国工作日历的年度。"""
    from govshare.db import unit_of_work
    from govshare.rules import service as rules_service

    with unit_of_work() as session:
        years = rules_service.known_years(session)
        warnings = rules_service.coverage_warnings(session, date.today())
        table = Table(title="已导入的工作日历")
        for col in ("年度", "来源", "导入时间", "操作人"):
            table.add_column(col, no_wrap=True)
        for y in years:
            table.add_row(
                str(y.year),
                y.source,
                y.loaded_at.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M"),
                y.loaded_by,
            )
    if years:
        console.print(table)
    else:
        console.print("尚未导入任何年度的工作日历（运行 govshare calendar seed）")
    for w in warnings:
        err.print(f"[yellow]{w}[/yellow]", highlight=False)


@calendar_app.command("seed")
def calendar_seed() -> None:
    """从 chinese-calendar 软件包载入其收录的全部年度（已有的年度不覆盖）。"""
    from govshare.db import unit_of_work
    from govshare.rules import service as rules_service

    try:
        with unit_of_work() as session:
            added = rules_service.seed_from_package(session, _actor("seed"))
    except DomainError as exc:
        _fail(exc.message)
    if added:
        console.print(f"已载入工作日历：{added[0]}–{added[-1]} 年（共 {len(added)} 年）")
    else:
        console.print("chinese-calendar 收录的年度均已载入，没有变化")


@calendar_app.command("import")
def calendar_import(
    file: Annotated[Path, typer.Argument(help="CSV 文件：日期,类型,名称", show_default=False)],
    scope: Annotated[
        str, typer.Option("--scope", help="行政区划代码（本地调整）；不填为全国日历")
    ] = "",
) -> None:
    """导入一个年度的工作日历 CSV（UTF-8 或 GB18030，不超过 1 MB）。"""
    from govshare.db import unit_of_work
    from govshare.rules import service as rules_service

    try:
        with file.open("rb") as fh:
            content = fh.read(rules_service.MAX_CSV_BYTES + 1)
    except OSError as exc:
        _fail(f"无法读取文件 {file}：{exc.strerror or exc}")
    try:
        with unit_of_work() as session:
            result = rules_service.import_year_csv(session, _actor("import"), content, scope=scope)
    except DomainError as exc:
        _fail(exc.message)
    where = f"（行政区 {result.scope} 的本地调整）" if result.scope else ""
    console.print(
        f"已导入 {result.year} 年工作日历{where}：列出 {result.days_listed} 天，"
        f"其中节假日 {result.holidays} 天、调休上班 {result.adjusted_workdays} 天",
        highlight=False,
    )


@calendar_app.command("set")
def calendar_set(
    day: Annotated[str, typer.Argument(help="日期 YYYY-MM-DD", show_default=False)],
    kind: Annotated[
        str,
        typer.Argument(
            help="类型：工作日/休息日/节假日/调休上班（或 workday/weekend/holiday/"
            "adjusted_workday）",
            show_default=False,
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="名称，如 国庆节")] = "",
    scope: Annotated[
        str, typer.Option("--scope", help="行政区划代码（本地调整）；不填为全国日历")
    ] = "",
) -> None:
    """设置某一天的类型。"""
    from govshare.db import unit_of_work
    from govshare.rules import service as rules_service

    d = _date(day, "日期")
    try:
        kind_enum = rules_service.require_kind(kind)
        with unit_of_work() as session:
            row = rules_service.set_day(session, _actor("set"), d, kind_enum, name, scope=scope)
            label = kind_enum.label + (f"（{row.name}）" if row.name else "")
    except DomainError as exc:
        _fail(exc.message)
    where = f"（行政区 {scope}）" if scope else ""
    console.print(f"已将 {d.isoformat()}{where} 设为{label}", highlight=False)


# ---------------------------------------------------------------- rulebooks


@rulebook_app.command("list")
def rulebook_list() -> None:
    """列出内置的全部规则。"""
    from govshare.rules.loader import registry

    table = Table(title="共享规则")
    table.add_column("名称", no_wrap=True)
    table.add_column("制度", overflow="fold")
    table.add_column("发布机关", overflow="fold")
    table.add_column("发布日期", no_wrap=True)
    table.add_column("有条件共享答复（工作日）", justify="right")
    for name in registry().names():
        book = registry().get(name)
        table.add_row(
            book.name,
            book.title,
            book.issuer,
            book.issued.isoformat() if book.issued else "—",
            str(book.sharing.conditional_reply.working_days),
        )
    console.print(table)


@rulebook_app.command("show")
def rulebook_show(
    name: Annotated[
        str | None, typer.Argument(help="规则名称（见 govshare rulebook list）", show_default=False)
    ] = None,
    jurisdiction: Annotated[
        str | None,
        typer.Option(
            "--jurisdiction",
            help="行政区划代码：显示该行政区实际适用的合并规则及规则链；"
            "同时给出规则名称时，显示为该行政区指定此规则后的效果（预览）",
        ),
    ] = None,
) -> None:
    """逐条显示规则的取值及其依据。"""
    from govshare.rules import service as rules_service

    if name is None and jurisdiction is None:
        _fail("请给出规则名称，或用 --jurisdiction 指定行政区")
    try:
        if jurisdiction is None:
            assert name is not None
            book = rules_service.get_rulebook(name)
            header = [f"{book.title}（{book.name}）", f"{book.issuer} · {book.issued or '—'}"]
        else:
            header, book = _effective_header(jurisdiction, name)
    except DomainError as exc:
        _fail(exc.message)
    for line in header:
        console.print(line, highlight=False, markup=False)
    if book.summary:
        console.print(book.summary, highlight=False, markup=False)
    for section in rules_service.describe_rulebook(book):
        console.print(f"\n[bold]【{section.title}】[/bold]", highlight=False)
        for rule in section.lines:
            console.print(f"  {rule.label}：{rule.value}", highlight=False, markup=False)
            cite = f"    依据：{rule.citation}" + (f"（{rule.note}）" if rule.note else "")
            console.print(cite, style="dim", highlight=False, markup=False)


def _effective_header(code: str, name: str | None) -> tuple[list[str], Rulebook]:
    from govshare.db import unit_of_work
    from govshare.rules import service as rules_service

    with unit_of_work() as session:
        jurisdiction = rules_service.jurisdiction_by_code(session, code)
        if name is None:
            effective = rules_service.rulebook_chain(session, jurisdiction)
            title = f"{jurisdiction.name}（{jurisdiction.code}）实际适用的规则"
        else:
            effective = rules_service.preview_rulebook(session, jurisdiction, name)
            title = f"预览：为{jurisdiction.name}（{jurisdiction.code}）指定 {name} 后的规则"
        set_by = (
            f"由{effective.set_by.name}（{effective.set_by.code}）指定"
            if effective.set_by
            else "各级均未指定，使用国家默认规则"
        )
        lineage = " → ".join(f"{j.name}[{j.rulebook or '继承'}]" for j in effective.lineage)
        header = [
            title,
            f"规则链：{' → '.join(effective.chain)}（{set_by}）",
            f"行政区：{lineage}",
            f"生效规则：{effective.book.title}",
        ]
        return header, effective.book
