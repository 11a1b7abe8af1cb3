"""The navigation shows each role only what it may use, grouped into menus."""

from __future__ import annotations

from govshare.permissions import Role, permissions_for
from govshare.principal import Principal
from govshare.web import nav_for, nav_groups


def principal(role: Role) -> Principal:
    return Principal(kind="user", id=1, name="x", role=role, permissions=permissions_for(role))


def labels(role: Role) -> list[str]:
    return [item.label for item in nav_for(principal(role))]


LISTS = ["目录变更", "需求清单", "供需对接清单", "责任清单"]
ORGS = ["行政区划", "部门与联系人"]
INGEST = ["上传数据", "汇聚记录", "数据查询", "删除申请", "数据质量", "一数一源"]
QUALITY = ["数据质量", "一数一源"]
SHARING = ["共享申请", "共享审核", "共享授权", "共享争议", "共享协议"]
RULES = ["共享规则", "工作日历"]
SERVICES = ["服务目录", "批量交换", "使用台账", "调用统计", "签名验证"]


def test_navigation_per_role() -> None:
    assert labels(Role.AUTHORITY) == [
        "工作台",
        "目录检索",
        "本部门目录",
        "目录审核",
        *LISTS,
        *INGEST,
        *SHARING,
        *SERVICES,
        *ORGS,
        "用户与角色",
        "应用凭证",
        *RULES,
        "审计日志",
    ]
    assert labels(Role.OPERATOR) == [
        "工作台",
        "目录检索",
        *LISTS,
        *QUALITY,
        "服务目录",
        "调用统计",
        "签名验证",
        *ORGS,
        "用户与角色",
        "应用凭证",
        *RULES,
        "日志校验",
    ]
    assert labels(Role.DEPT_OFFICER) == [
        "工作台",
        "目录检索",
        "本部门目录",
        *LISTS,
        *INGEST,
        "共享申请",
        "共享授权",
        "共享争议",
        "共享协议",
        *SERVICES,
        *ORGS,
        *RULES,
    ]
    assert labels(Role.DEPT_REVIEWER) == [
        "工作台",
        "目录检索",
        *LISTS,
        *QUALITY,
        *SHARING,
        "服务目录",
        "使用台账",
        "调用统计",
        "签名验证",
        *ORGS,
        *RULES,
    ]
    assert labels(Role.DEPT_HEAD) == [
        "工作台",
        "目录检索",
        "本部门目录",
        *LISTS,
        *INGEST,
        *SHARING,
        *SERVICES,
        *ORGS,
        "应用凭证",
        *RULES,
    ]
    assert labels(Role.PUBLIC) == ["工作台", "签名验证"]


def test_items_are_grouped_into_menus() -> None:
    groups = nav_groups(principal(Role.DEPT_OFFICER))
    assert [(g.label, [i.label for i in g.items]) for g in groups] == [
        ("", ["工作台"]),
        ("数据目录", ["目录检索", "本部门目录", *LISTS]),
        ("数据汇聚", INGEST),
        ("数据共享", ["共享申请", "共享授权", "共享争议", "共享协议"]),
        ("共享服务", SERVICES),
        ("组织机构", ORGS),
        ("规则与日历", RULES),
    ]
