"""``govshare sharing remind``: the daily reminders of the sharing workflow's clocks."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer
from rich.console import Console

sharing_app = typer.Typer(help="数据共享", no_args_is_help=True)
console = Console()


@sharing_app.command("remind")
def remind(
    on: Annotated[str, typer.Option("--date", help="按哪一天计算（YYYY-MM-DD，默认今天）")] = "",
) -> None:
    """每日任务：提醒即将到期（提前 2 个工作日）和已逾期的共享申请，并按期限更新共享协议的状态。

    每天运行一次（如 cron），重复运行不会重复提醒。
    """
    from govshare.db import china_today, unit_of_work
    from govshare.principal import Principal
    from govshare.sharing import agreements, notices

    try:
        today = date.fromisoformat(on) if on else china_today()
    except ValueError:
        raise typer.BadParameter("日期格式应为 YYYY-MM-DD", param_hint="--date") from None
    with unit_of_work() as session:
        sent = notices.remind(session, today)
        changed = agreements.refresh_all(
            session, Principal.platform("govshare sharing remind"), today=today
        )
    console.print(f"{today.isoformat()}：发出提醒 {sent} 条，更新共享协议状态 {changed} 件")
