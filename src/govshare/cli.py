"""The ``govshare`` command. Every command honours ``GOVSHARE_DATABASE_URL``."""

from __future__ import annotations

import getpass
import os
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from govshare.audit.cli import audit_app
from govshare.ingestion.cli import import_file
from govshare.rules.cli import calendar_app, rulebook_app
from govshare.sharing.cli import sharing_app
from govshare.signing.cli import signing_app, verify_signature

app = typer.Typer(
    help="govshare 政务数据共享交换平台", no_args_is_help=True, pretty_exceptions_enable=False
)
db_app = typer.Typer(help="数据库结构（Alembic 迁移）", no_args_is_help=True)
users_app = typer.Typer(help="用户账号", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(calendar_app, name="calendar")
app.add_typer(rulebook_app, name="rulebook")
app.add_typer(audit_app, name="audit")
app.add_typer(sharing_app, name="sharing")
app.add_typer(signing_app, name="signing")
app.command("verify-signature")(verify_signature)
app.command("import")(import_file)

console = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]错误：[/red]{message}")
    return typer.Exit(code)


def upgrade_database() -> list[int]:
    """Migrate to head and load the calendar years the chinese-calendar package knows."""
    from govshare import migrate
    from govshare.db import get_engine, unit_of_work
    from govshare.ingestion import tables as data_tables
    from govshare.principal import Principal
    from govshare.rules import service as rules_service

    migrate.upgrade(get_engine())
    with unit_of_work() as session:
        years = rules_service.seed_from_package(session, Principal.platform("govshare db upgrade"))
        data_tables.ensure_all(session)
        return years


@db_app.command("upgrade")
def db_upgrade() -> None:
    """把数据库升级到最新结构，并从 chinese-calendar 载入工作日历。"""
    from govshare.db import get_engine

    years = upgrade_database()
    url = get_engine().url.render_as_string(hide_password=True)
    console.print(f"数据库已是最新结构：{url}")
    if years:
        console.print(f"已载入工作日历：{years[0]}–{years[-1]} 年")


@db_app.command("current")
def db_current() -> None:
    """显示数据库当前的迁移版本。"""
    from govshare import migrate
    from govshare.db import get_engine

    console.print(migrate.current(get_engine()) or "（空数据库）")


def _check_migrated() -> None:
    from alembic.script import ScriptDirectory

    from govshare import migrate
    from govshare.db import get_engine

    head = ScriptDirectory.from_config(
        migrate.alembic_config(get_engine().url.render_as_string(hide_password=False))
    ).get_current_head()
    if migrate.current(get_engine()) != head:
        raise _fail("数据库结构不是最新的，请先运行 govshare db upgrade")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="监听地址")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="端口")] = 8000,
    workers: Annotated[int, typer.Option(help="进程数")] = 1,
) -> None:
    """启动平台（网页、JSON API /api/v1、接口文档 /docs）。"""
    import uvicorn

    _check_migrated()
    os.environ["GOVSHARE_WORKERS"] = str(workers)  # rate limits are shared out per worker
    console.print(f"政务数据共享交换平台：http://{host}:{port}/  （接口文档 /docs）")
    uvicorn.run(
        "govshare.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=False,
        log_level="info",
    )


@app.command()
def demo(
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="载入后启动平台")] = True,
    host: Annotated[str, typer.Option(help="监听地址")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="端口")] = 8000,
) -> None:
    """载入演示数据（一个虚构的市及其两个县），打印演示账号，然后启动平台。"""
    from govshare import demo as demo_data
    from govshare.db import unit_of_work

    upgrade_database()
    with unit_of_work() as session:
        result = demo_data.load(session)
    if result.created and result.credential_token:
        from govshare.dataservices import demo as dataservices_demo
        from govshare.signing import service as signing

        signer, made = signing.ensure_key()
        if made:
            console.print(f"已生成平台签名密钥（SM2，密钥标识 {signer.key_id}）。")
        calls = dataservices_demo.make_calls(result.credential_token)
        console.print(f"已用演示应用凭证调用共享服务 {calls} 次（见“共享服务 › 使用台账”）。")
    if result.created:
        console.print(
            f"演示数据已载入：数据目录已发布 {result.catalog_published} 个资源，"
            f"汇聚数据 {result.rows_loaded:,} 行。"
        )
    else:
        console.print("演示数据已存在，未重复载入。")
    table = Table(title="演示账号（密码均相同）")
    for col in ("用户名", "角色", "部门"):
        table.add_column(col)
    for username, role, dept in demo_data.DEMO_LOGINS:
        table.add_row(username, role, dept)
    console.print(table)
    console.print(f"演示密码：[bold]{demo_data.DEMO_PASSWORD}[/bold]（仅用于演示环境）")
    if result.credential_token:
        console.print(
            "演示应用凭证（青川市民政局·社会救助信息系统，只显示这一次）：\n"
            f"  {result.credential_token}"
        )
    if serve_after:
        serve(host=host, port=port, workers=1)


@app.command()
def setup(
    jurisdiction_code: Annotated[str, typer.Option(help="本级行政区划代码，如 411300")],
    jurisdiction_name: Annotated[str, typer.Option(help="本级行政区名称，如 南阳市")],
    level: Annotated[str, typer.Option(help="层级：province / city / county / township")],
    department_name: Annotated[str, typer.Option(help="本级数据主管部门全称")],
    credit_code: Annotated[str, typer.Option(help="数据主管部门的统一社会信用代码")],
    admin_username: Annotated[str, typer.Option(help="首个管理员的用户名")],
    admin_name: Annotated[str, typer.Option(help="首个管理员的姓名")],
    rulebook: Annotated[str | None, typer.Option(help="本级使用的共享规则")] = None,
    password: Annotated[
        str | None,
        typer.Option(help="管理员初始密码；不给则交互输入", envvar="GOVSHARE_NEW_PASSWORD"),
    ] = None,
) -> None:
    """新部署的首次设置：本级行政区、数据主管部门和首个管理员（仅在空库上可用）。"""
    from govshare.db import unit_of_work
    from govshare.errors import DomainError
    from govshare.orgs import repository as orgs_repo
    from govshare.orgs import schemas
    from govshare.orgs import service as orgs_service
    from govshare.orgs.models import Level
    from govshare.permissions import Role
    from govshare.principal import Principal

    upgrade_database()
    if password is None:
        password = getpass.getpass("管理员初始密码：")
    actor = Principal.platform("govshare setup")
    try:
        level_enum = Level(level)
    except ValueError:
        raise _fail(f"层级 {level} 无效，可选：{', '.join(lv.value for lv in Level)}") from None
    try:
        with unit_of_work() as session:
            if orgs_repo.list_jurisdictions(session):
                raise _fail("已经设置过：数据库中已有行政区。请登录网页或使用 users create")
            orgs_service.create_jurisdiction(
                session,
                actor,
                schemas.JurisdictionIn(
                    code=jurisdiction_code,
                    name=jurisdiction_name,
                    level=level_enum,
                    rulebook=rulebook,
                ),
            )
            dept = orgs_service.create_department(
                session,
                actor,
                schemas.DepartmentIn(
                    name=department_name,
                    credit_code=credit_code,
                    jurisdiction_code=jurisdiction_code,
                    is_data_authority=True,
                ),
            )
            orgs_service.create_user(
                session,
                actor,
                schemas.UserIn(
                    username=admin_username,
                    display_name=admin_name,
                    password=password,
                    role=Role.AUTHORITY,
                    department_id=dept.id,
                ),
            )
    except DomainError as exc:
        raise _fail(exc.message) from None
    console.print(
        f"已设置 {jurisdiction_name}（{jurisdiction_code}）、{department_name} 和管理员 "
        f"{admin_username}。运行 govshare serve 后登录，首次登录须修改密码。"
    )


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Option(help="用户名")],
    name: Annotated[str, typer.Option(help="姓名")],
    role: Annotated[str, typer.Option(help="角色代码：authority / dept_officer / ...")],
    department: Annotated[str | None, typer.Option(help="所属部门的统一社会信用代码")] = None,
    password: Annotated[
        str | None, typer.Option(help="初始密码；不给则交互输入", envvar="GOVSHARE_NEW_PASSWORD")
    ] = None,
) -> None:
    """创建用户（首次登录须修改密码）。"""
    from govshare.db import unit_of_work
    from govshare.errors import DomainError
    from govshare.orgs import repository as orgs_repo
    from govshare.orgs import schemas
    from govshare.orgs import service as orgs_service
    from govshare.permissions import Role
    from govshare.principal import Principal

    try:
        role_enum = Role(role)
    except ValueError:
        raise _fail(f"角色 {role} 无效，可选：{', '.join(r.value for r in Role)}") from None
    if password is None:
        password = getpass.getpass("初始密码：")
    try:
        with unit_of_work() as session:
            dept_id = None
            if department:
                dept = orgs_repo.department_by_credit_code(session, department.upper())
                if dept is None:
                    raise _fail(f"统一社会信用代码为 {department} 的部门不存在")
                dept_id = dept.id
            user = orgs_service.create_user(
                session,
                Principal.platform("govshare users create"),
                schemas.UserIn(
                    username=username,
                    display_name=name,
                    password=password,
                    role=role_enum,
                    department_id=dept_id,
                ),
            )
            console.print(f"已创建用户 {user.username}（{role_enum.label}），首次登录须修改密码")
    except DomainError as exc:
        raise _fail(exc.message) from None


@users_app.command("list")
def users_list() -> None:
    """列出所有用户。"""
    from govshare.db import unit_of_work
    from govshare.orgs import repository as orgs_repo
    from govshare.permissions import Role
    from govshare.principal import Principal

    with unit_of_work() as session:
        table = Table()
        for col in ("用户名", "姓名", "角色", "部门", "状态"):
            table.add_column(col)
        for u in orgs_repo.list_users(session, Principal.platform()):
            table.add_row(
                u.username,
                u.display_name,
                Role(u.role).label,
                u.department.name if u.department else "—",
                "启用" if u.is_active else "停用",
            )
        console.print(table)


if __name__ == "__main__":
    app()
