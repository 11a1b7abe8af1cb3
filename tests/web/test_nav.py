"""The navigation shows each role only what it may use."""

from __future__ import annotations

from govshare.permissions import Role, permissions_for
from govshare.principal import Principal
from govshare.web import nav_for


def labels(role: Role) -> list[str]:
    p = Principal(kind="user", id=1, name="x", role=role, permissions=permissions_for(role))
    return [item.label for item in nav_for(p)]


def test_navigation_per_role() -> None:
    assert labels(Role.AUTHORITY) == [
        "工作台",
        "行政区划",
        "部门与联系人",
        "用户与角色",
        "应用凭证",
        "共享规则",
        "工作日历",
        "审计日志",
    ]
    assert labels(Role.OPERATOR) == [
        "工作台",
        "行政区划",
        "部门与联系人",
        "用户与角色",
        "应用凭证",
        "共享规则",
        "工作日历",
        "日志校验",
    ]
    assert labels(Role.DEPT_OFFICER) == [
        "工作台",
        "行政区划",
        "部门与联系人",
        "共享规则",
        "工作日历",
    ]
    assert labels(Role.DEPT_HEAD) == [
        "工作台",
        "行政区划",
        "部门与联系人",
        "应用凭证",
        "共享规则",
        "工作日历",
    ]
    assert labels(Role.PUBLIC) == ["工作台"]
