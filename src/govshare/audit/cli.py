import typer

audit_app = typer.Typer(help="审计日志", no_args_is_help=True)
