import typer

calendar_app = typer.Typer(help="工作日历", no_args_is_help=True)
rulebook_app = typer.Typer(help="共享规则", no_args_is_help=True)
