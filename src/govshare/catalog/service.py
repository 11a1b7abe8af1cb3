"""The catalog's business logic: rules of an entry, the review workflow, versions.

Every state change of a version goes through :func:`transition`, which checks who may make
it, timestamps it, guards against a concurrent decision, and audits it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from govshare.audit import service as audit
from govshare.catalog import schemas
from govshare.catalog.models import (
    CatalogEntry,
    CatalogKind,
    CatalogReport,
    CatalogSearch,
    CatalogVersion,
    DataType,
    EntryStatus,
    OpenType,
    ShareMethod,
    ShareType,
    SubjectKeyKind,
    VersionState,
)
from govshare.db import china_today, utcnow
from govshare.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from govshare.orgs import repository as orgs_repo
from govshare.orgs.models import Department, Jurisdiction
from govshare.permissions import Perm
from govshare.principal import Principal
from govshare.rules import service as rules_service
from govshare.rules.rulebook import Rulebook

OPEN_STATES = (VersionState.DRAFT, VersionState.SUBMITTED, VersionState.RETURNED)
PUBLIC_STATES = (VersionState.APPROVED, VersionState.SUPERSEDED)
_SHARE_RANK = {ShareType.UNCONDITIONAL: 0, ShareType.CONDITIONAL: 1, ShareType.NOT_SHARED: 2}
#: a legal basis names a law, an administrative regulation or a State Council decision
_BASIS = re.compile(r"《[^》]{2,}(法|条例|决定|规定|办法|意见|通知)[^》]*》")

VERSION_FIELDS: dict[str, str] = {
    "catalog_kind": "目录类别",
    "item_code": "分类（项）",
    "category_code": "分类（目）",
    "base_database": "所属基础库",
    "name": "资源名称",
    "summary": "资源摘要",
    "resource_format": "资源格式",
    "subject_key_kind": "主体标识",
    "subject_key_item": "主键信息项",
    "share_type": "共享类型",
    "share_scope": "共享范围",
    "share_purpose": "使用用途",
    "share_basis": "共享依据",
    "share_methods": "共享方式",
    "open_type": "开放类型",
    "open_conditions": "开放条件",
    "open_basis": "开放依据",
    "update_frequency": "更新周期",
    "related_codes": "关联资源代码",
    "data_grade": "数据分级",
    "is_returned_data": "回流数据",
    "returned_from": "回流来源",
    "data_items": "信息项",
}


# ---------------------------------------------------------------- names from the rulebook


def rulebook_of(session: Session, entry_or_dept: CatalogEntry | Department) -> Rulebook:
    return rules_service.rulebook_for(session, entry_or_dept.jurisdiction)


def share_type_name(book: Rulebook, share_type: str) -> str:
    return str(getattr(book.share_types, share_type).name)


def open_type_name(book: Rulebook, open_type: str) -> str:
    return str(getattr(book.open_types, open_type).name)


# ---------------------------------------------------------------- who may do what


def covers(session: Session, principal: Principal, jurisdiction_id: int) -> bool:
    """An authority covers its own jurisdiction and those below it."""
    if principal.jurisdiction_id is None:
        return principal.kind == "system" and principal.can(Perm.CATALOG_REVIEW)
    return jurisdiction_id in orgs_repo.jurisdiction_subtree_ids(session, principal.jurisdiction_id)


def may_edit(principal: Principal, entry: CatalogEntry) -> bool:
    return principal.can(Perm.CATALOG_EDIT) and principal.department_id == entry.department_id


def may_review(session: Session, principal: Principal, entry: CatalogEntry) -> bool:
    return principal.can(Perm.CATALOG_REVIEW) and covers(session, principal, entry.jurisdiction_id)


def may_see_unpublished(session: Session, principal: Principal, entry: CatalogEntry) -> bool:
    return principal.department_id == entry.department_id or may_review(session, principal, entry)


def get_entry(session: Session, principal: Principal, entry_id: int) -> CatalogEntry:
    if not principal.can(Perm.CATALOG_READ):
        raise PermissionDenied()
    entry = session.get(CatalogEntry, entry_id)
    if entry is None or (
        entry.status == EntryStatus.DRAFT and not may_see_unpublished(session, principal, entry)
    ):
        raise NotFound("目录资源不存在")
    return entry


def get_entry_by_code(session: Session, principal: Principal, code: str) -> CatalogEntry:
    entry = session.scalar(select(CatalogEntry).where(CatalogEntry.code == code))
    if entry is None:
        raise NotFound(f"资源代码 {code} 不存在")
    return get_entry(session, principal, entry.id)


def get_version(session: Session, principal: Principal, version_id: int) -> CatalogVersion:
    version = session.get(CatalogVersion, version_id)
    if version is None:
        raise NotFound("目录版本不存在")
    entry = get_entry(session, principal, version.entry_id)
    if version.state not in PUBLIC_STATES and not may_see_unpublished(session, principal, entry):
        raise NotFound("目录版本不存在")
    return version


def versions_of(
    session: Session, principal: Principal, entry: CatalogEntry
) -> list[CatalogVersion]:
    rows = session.scalars(
        select(CatalogVersion)
        .where(CatalogVersion.entry_id == entry.id)
        .order_by(CatalogVersion.number.desc())
    )
    see_all = may_see_unpublished(session, principal, entry)
    return [v for v in rows if see_all or v.state in PUBLIC_STATES]


def pending_version(session: Session, entry: CatalogEntry) -> CatalogVersion | None:
    return session.scalar(
        select(CatalogVersion)
        .where(CatalogVersion.entry_id == entry.id)
        .where(CatalogVersion.state.in_([s.value for s in OPEN_STATES]))
        .order_by(CatalogVersion.number.desc())
    )


# ---------------------------------------------------------------- the rules of an entry


def validate(
    session: Session,
    data: schemas.VersionIn,
    department: Department,
    *,
    entry_id: int | None = None,
) -> None:
    """Every rule an entry must meet, with a Chinese message naming the field."""
    book = rulebook_of(session, department)
    names = {t: share_type_name(book, t) for t in ("unconditional", "conditional", "not_shared")}
    if data.is_classified:
        raise ValidationFailed(
            "涉及国家秘密的数据不得在平台上登记、发布和交换（《2024年政务数据资源管理办法》第二十条）",
            field="is_classified",
        )
    # data items
    seen_names: set[str] = set()
    seen_fields: set[str] = set()
    for i, item in enumerate(data.data_items, start=1):
        if item.name in seen_names:
            raise ValidationFailed(f"第 {i} 个信息项名称“{item.name}”重复", field="data_items")
        if item.field in seen_fields:
            raise ValidationFailed(f"第 {i} 个信息项的字段名 {item.field} 重复", field="data_items")
        seen_names.add(item.name)
        seen_fields.add(item.field)
        if item.sensitive and not item.personal:
            raise ValidationFailed(
                f"信息项“{item.name}”标为敏感个人信息，也必须标为个人信息", field="data_items"
            )
        item_type = item.share_type or data.share_type
        if data.share_type == ShareType.UNCONDITIONAL and item_type != ShareType.UNCONDITIONAL:
            raise ValidationFailed(
                f"资源为{names['unconditional']}，信息项“{item.name}”不能为"
                f"{names[item_type.value]}；部分信息项不能共享的资源应为{names['conditional']}",
                field="data_items",
            )
        if data.share_type == ShareType.NOT_SHARED and item_type != ShareType.NOT_SHARED:
            raise ValidationFailed(
                f"资源为{names['not_shared']}，信息项“{item.name}”也只能为{names['not_shared']}",
                field="data_items",
            )
    # subject key
    key = next((it for it in data.data_items if it.field == data.subject_key_item), None)
    if key is None:
        raise ValidationFailed(
            f"主键信息项 {data.subject_key_item} 不在信息项中", field="subject_key_item"
        )
    expected = {
        SubjectKeyKind.PERSON: DataType.ID_NUMBER,
        SubjectKeyKind.ORGANIZATION: DataType.CREDIT_CODE,
    }.get(data.subject_key_kind)
    if expected is not None and key.data_type != expected:
        raise ValidationFailed(
            f"{data.subject_key_kind.label}的主键信息项“{key.name}”的类型应为{expected.label}"
            "（《南阳市政务数据共享管理暂行办法》第二十四条：自然人以身份证件号码、法人以统一社会信用代码为标识）",
            field="subject_key_item",
        )
    if not key.required:
        raise ValidationFailed(f"主键信息项“{key.name}”必须为必填项", field="subject_key_item")
    # classification: base databases are shared unconditionally
    if data.catalog_kind == CatalogKind.BASE:
        if data.base_database is None:
            raise ValidationFailed("基础信息资源须注明所属基础库", field="base_database")
        if data.share_type != ShareType.UNCONDITIONAL:
            raise ValidationFailed(
                f"{data.base_database.label}的基础信息项是各部门履职的共同需要，应当"
                f"{names['unconditional']}（《南阳市政务数据共享管理暂行办法》第三十七条第（二）项）",
                field="share_type",
            )
    elif data.base_database is not None:
        raise ValidationFailed("只有基础信息资源才属于基础库", field="base_database")
    # share type rules
    if data.share_type == ShareType.CONDITIONAL:
        if not data.share_scope:
            raise ValidationFailed(
                f"{names['conditional']}的资源须列明共享范围（《平山县政务数据共享工作制度》第十三条）",
                field="share_scope",
            )
        if not data.share_purpose:
            raise ValidationFailed(
                f"{names['conditional']}的资源须列明使用用途（《平山县政务数据共享工作制度》第十三条）",
                field="share_purpose",
            )
    share_kind = getattr(book.share_types, data.share_type.value)
    if share_kind.basis_required:
        if not data.share_basis:
            raise ValidationFailed(
                f"{share_kind.name}的资源须写明依据（{share_kind.cite.text}）", field="share_basis"
            )
        if data.share_type == ShareType.NOT_SHARED and not _BASIS.search(data.share_basis):
            raise ValidationFailed(
                f"{share_kind.name}须引用法律、行政法规或国务院决定，请写明文件名称（如《中华人民共和国"
                "个人信息保护法》）及条款（《平山县政务数据共享工作制度》第十三条）",
                field="share_basis",
            )
    if data.share_type == ShareType.NOT_SHARED:
        if data.share_methods:
            raise ValidationFailed(
                f"{names['not_shared']}的资源没有共享方式", field="share_methods"
            )
    elif not data.share_methods:
        raise ValidationFailed("请至少选择一种共享方式", field="share_methods")
    # open type rules
    open_kind = getattr(book.open_types, data.open_type.value)
    if (
        data.open_type != OpenType.UNCONDITIONAL
        and open_kind.basis_required
        and not data.open_basis
    ):
        raise ValidationFailed(f"{open_kind.name}的资源须写明依据", field="open_basis")
    if data.open_type == OpenType.CONDITIONAL and not data.open_conditions:
        raise ValidationFailed(f"{open_kind.name}的资源须写明开放条件", field="open_conditions")
    if data.open_type == OpenType.UNCONDITIONAL and any(it.sensitive for it in data.data_items):
        raise ValidationFailed(
            "含敏感个人信息的资源不能无条件开放（须脱敏后有条件开放，《南阳市政务数据共享管理暂行办法》第四十四条）",
            field="open_type",
        )
    if data.is_returned_data and not data.returned_from:
        raise ValidationFailed("回流数据须写明来源（上级部门或系统）", field="returned_from")
    # related resources exist
    for code in data.related_codes:
        other = session.scalar(select(CatalogEntry.id).where(CatalogEntry.code == code))
        if other is None:
            raise ValidationFailed(f"关联资源代码 {code} 不存在", field="related_codes")
        if other == entry_id:
            raise ValidationFailed("资源不能关联自己", field="related_codes")


def _version_values(data: schemas.VersionIn) -> dict[str, Any]:
    values = data.model_dump(mode="json", exclude={"is_classified", "department_id"})
    values["data_items"] = [
        {k: v for k, v in item.items() if v or k not in schemas.ITEM_OPTIONAL}
        for item in values["data_items"]
    ]
    return values


# ---------------------------------------------------------------- creating and editing


def next_code(session: Session, kind: CatalogKind, item_code: str, category_code: str) -> str:
    """资源代码: 前段码 (class digit + 项 + 目) / 后段码 (5-digit sequence within the class)."""
    prefix = f"{kind.class_digit}{item_code}{category_code}/"
    last = session.scalar(
        select(func.max(CatalogEntry.code)).where(CatalogEntry.code.startswith(prefix))
    )
    seq = int(last.split("/")[1]) + 1 if last else 1
    return f"{prefix}{seq:05d}"


def create_entry(session: Session, actor: Principal, data: schemas.EntryCreate) -> CatalogVersion:
    if not actor.can(Perm.CATALOG_EDIT):
        raise PermissionDenied("只有部门数据专员或负责人可以编制目录")
    dept_id = data.department_id or actor.department_id
    if dept_id is None or dept_id != actor.department_id:
        raise PermissionDenied("只能为本部门编制目录")
    department = session.get(Department, dept_id)
    if department is None or not department.is_active:
        raise NotFound("部门不存在或已停用")
    validate(session, data, department)
    entry = CatalogEntry(
        code=next_code(session, data.catalog_kind, data.item_code, data.category_code),
        department_id=department.id,
        jurisdiction_id=department.jurisdiction_id,
        status=EntryStatus.DRAFT.value,
        created_by=actor.name,
    )
    session.add(entry)
    session.flush()
    version = CatalogVersion(
        entry_id=entry.id,
        number=1,
        state=VersionState.DRAFT.value,
        created_by=actor.name,
        **_version_values(data),
    )
    session.add(version)
    session.flush()
    audit.record(
        session,
        actor,
        "catalog:entry:create",
        "catalog_entry",
        entry.id,
        {"code": entry.code, "name": version.name},
    )
    return version


def update_version(
    session: Session, actor: Principal, version: CatalogVersion, data: schemas.VersionIn
) -> CatalogVersion:
    entry = version.entry
    if not may_edit(actor, entry):
        raise PermissionDenied("只能修改本部门的目录")
    if version.state not in (VersionState.DRAFT, VersionState.RETURNED):
        raise Conflict(f"{VersionState(version.state).label}的版本不能修改")
    validate(session, data, entry.department, entry_id=entry.id)
    before = {k: getattr(version, k) for k in VERSION_FIELDS}
    for k, v in _version_values(data).items():
        setattr(version, k, v)
    session.flush()
    changed = [VERSION_FIELDS[k] for k in VERSION_FIELDS if before[k] != getattr(version, k)]
    audit.record(
        session,
        actor,
        "catalog:version:update",
        "catalog_version",
        version.id,
        {"code": entry.code, "number": version.number, "changed": changed},
    )
    return version


def new_version(
    session: Session, actor: Principal, entry: CatalogEntry, data: schemas.NewVersionIn
) -> CatalogVersion:
    """Start changing a published entry: a copy of the version in force, as a draft."""
    if not may_edit(actor, entry):
        raise PermissionDenied("只能变更本部门的目录")
    if entry.status != EntryStatus.PUBLISHED or entry.current_version is None:
        raise Conflict("只有已发布的资源才能变更")
    if pending_version(session, entry) is not None:
        raise Conflict("该资源已有一个正在编辑或审核的新版本")
    current = entry.current_version
    number = (
        session.scalar(
            select(func.max(CatalogVersion.number)).where(CatalogVersion.entry_id == entry.id)
        )
        or 0
    ) + 1
    copy = {k: getattr(current, k) for k in VERSION_FIELDS}
    version = CatalogVersion(
        entry_id=entry.id,
        number=number,
        state=VersionState.DRAFT.value,
        created_by=actor.name,
        change_note=data.change_note,
        **copy,
    )
    session.add(version)
    session.flush()
    audit.record(
        session,
        actor,
        "catalog:version:new",
        "catalog_version",
        version.id,
        {"code": entry.code, "number": number, "change_note": data.change_note},
    )
    return version


# ---------------------------------------------------------------- the workflow


@dataclass(frozen=True)
class Move:
    source: tuple[VersionState, ...]
    target: VersionState
    who: str  # "editor" | "reviewer"
    action: str


MOVES = {
    "submit": Move(
        (VersionState.DRAFT, VersionState.RETURNED),
        VersionState.SUBMITTED,
        "editor",
        "catalog:version:submit",
    ),
    "discard": Move(
        (VersionState.DRAFT, VersionState.RETURNED),
        VersionState.DISCARDED,
        "editor",
        "catalog:version:discard",
    ),
    "approve": Move(
        (VersionState.SUBMITTED,), VersionState.APPROVED, "reviewer", "catalog:version:approve"
    ),
    "return": Move(
        (VersionState.SUBMITTED,), VersionState.RETURNED, "reviewer", "catalog:version:return"
    ),
}


def transition(
    session: Session,
    actor: Principal,
    version: CatalogVersion,
    move_name: str,
    *,
    comment: str = "",
    values: dict[str, Any] | None = None,
) -> CatalogVersion:
    """Change a version's state: check who may, stamp, guard against a concurrent change
    (the UPDATE only matches while the version is still in a source state), audit."""
    move = MOVES[move_name]
    entry = version.entry
    if move.who == "editor" and not may_edit(actor, entry):
        raise PermissionDenied("只有本部门可以提交或放弃本部门的目录")
    if move.who == "reviewer" and not may_review(session, actor, entry):
        raise PermissionDenied("只有本级或上级数据主管部门可以审核目录")
    if VersionState(version.state) not in move.source:
        raise Conflict(f"该版本当前为“{VersionState(version.state).label}”，不能执行此操作")
    stamp = dict(values or {})
    source_state = version.state
    result = session.execute(
        update(CatalogVersion)
        .where(CatalogVersion.id == version.id)
        .where(CatalogVersion.state.in_([s.value for s in move.source]))
        .values(state=move.target.value, updated_at=utcnow(), **stamp)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("该版本刚刚已被他人处理，请刷新后查看")
    session.refresh(version)
    audit.record(
        session,
        actor,
        move.action,
        "catalog_version",
        version.id,
        {
            "code": entry.code,
            "number": version.number,
            "name": version.name,
            "from": source_state,
            "to": move.target.value,
            "comment": comment,
        },
    )
    return version


def submit(
    session: Session,
    actor: Principal,
    version: CatalogVersion,
    data: schemas.SubmitIn | None = None,
) -> CatalogVersion:
    entry = version.entry
    # the rules may have changed (a rulebook, a related entry) since the draft was saved
    validate(
        session,
        schemas.VersionIn.model_validate(
            {k: getattr(version, k) for k in VERSION_FIELDS} | {"change_note": version.change_note}
        ),
        entry.department,
        entry_id=entry.id,
    )
    book = rulebook_of(session, entry)
    due = rules_service.calendar_for(session, entry.jurisdiction).due(
        china_today(), book.catalog.authority_review.working_days
    )
    return transition(
        session,
        actor,
        version,
        "submit",
        comment=(data.note if data else ""),
        values={
            "submitted_at": utcnow(),
            "submitted_by": actor.name,
            "review_due": due.due,
            "review_due_provisional": due.provisional,
            "reviewed_at": None,
            "reviewed_by": None,
        },
    )


def review(
    session: Session, actor: Principal, version: CatalogVersion, data: schemas.ReviewIn
) -> CatalogVersion:
    entry = version.entry
    if data.decision == "return":
        if len(data.comment) < 4:
            raise ValidationFailed("退回时须写明理由（至少 4 个字）", field="comment")
        return transition(
            session,
            actor,
            version,
            "return",
            comment=data.comment,
            values={
                "reviewed_at": utcnow(),
                "reviewed_by": actor.name,
                "review_comment": data.comment,
            },
        )
    now = utcnow()
    previous = entry.current_version
    transition(
        session,
        actor,
        version,
        "approve",
        comment=data.comment,
        values={
            "reviewed_at": now,
            "reviewed_by": actor.name,
            "review_comment": data.comment,
            "publish_date": china_today(),
        },
    )
    if previous is not None and previous.id != version.id:
        previous.state = VersionState.SUPERSEDED.value
    entry.current_version_id = version.id
    entry.status = EntryStatus.PUBLISHED.value
    entry.published_at = entry.published_at or now
    session.flush()
    session.refresh(entry)
    index_entry(session, entry)
    # the data plane follows the catalog: create or alter the entry's typed data table
    from govshare.ingestion import tables as data_tables

    data_tables.ensure_table(session, entry)
    _report_to_parent(session, entry, version)
    return version


def _report_to_parent(session: Session, entry: CatalogEntry, version: CatalogVersion) -> None:
    """A county's approved catalog change is reported to the city (seed 003 art. 23)."""
    juris = entry.jurisdiction
    if juris.parent_id is None or juris.level not in ("county", "township"):
        return
    rule = rulebook_of(session, entry).catalog.report_to_city
    if rule is None:
        return
    due = rules_service.calendar_for(session, juris).due(china_today(), rule.working_days)
    session.add(
        CatalogReport(
            version_id=version.id,
            from_jurisdiction_id=juris.id,
            to_jurisdiction_id=juris.parent_id,
            due=due.due,
            reported_at=utcnow(),
        )
    )
    session.flush()


def discard(session: Session, actor: Principal, version: CatalogVersion) -> CatalogVersion:
    return transition(session, actor, version, "discard")


def withdraw(
    session: Session, actor: Principal, entry: CatalogEntry, data: schemas.WithdrawIn
) -> CatalogEntry:
    """Withdraw an entry from the catalog (never deleted; its versions stay)."""
    own = actor.can(Perm.CATALOG_WITHDRAW) and actor.department_id == entry.department_id
    if not (own or may_review(session, actor, entry)):
        raise PermissionDenied("只有本部门负责人或数据主管部门可以撤销目录")
    if entry.status == EntryStatus.WITHDRAWN:
        raise Conflict("该资源已撤销")
    pending = pending_version(session, entry)
    if pending is not None and pending.state != VersionState.SUBMITTED:
        pending.state = VersionState.DISCARDED.value
    elif pending is not None:
        raise Conflict("该资源有待审核的新版本，请先完成审核")
    entry.status = EntryStatus.WITHDRAWN.value
    entry.withdrawn_at = utcnow()
    entry.withdrawn_by = actor.name
    entry.withdrawn_reason = data.reason
    session.flush()
    search_row = session.get(CatalogSearch, entry.id)
    if search_row is not None:
        session.delete(search_row)
        session.flush()
    audit.record(
        session,
        actor,
        "catalog:entry:withdraw",
        "catalog_entry",
        entry.id,
        {"code": entry.code, "reason": data.reason},
    )
    return entry


# ---------------------------------------------------------------- search row


def search_text(entry: CatalogEntry, version: CatalogVersion) -> str:
    items = " ".join(f"{it['name']} {it['field']}" for it in version.data_items)
    return " ".join(
        [version.name, version.summary, items, entry.code, entry.department.name]
    ).lower()


def index_entry(session: Session, entry: CatalogEntry) -> None:
    """Keep the entry's search row in step with its version in force."""
    version = entry.current_version
    row = session.get(CatalogSearch, entry.id)
    if version is None or entry.status != EntryStatus.PUBLISHED:
        if row is not None:
            session.delete(row)
            session.flush()
        return
    values = {
        "version_id": version.id,
        "code": entry.code,
        "name": version.name,
        "text": search_text(entry, version),
        "department_id": entry.department_id,
        "jurisdiction_id": entry.jurisdiction_id,
        "catalog_kind": version.catalog_kind,
        "share_type": version.share_type,
        "open_type": version.open_type,
        "resource_format": version.resource_format,
        "update_frequency": version.update_frequency,
        "data_grade": version.data_grade,
        "published_at": entry.published_at or utcnow(),
    }
    if row is None:
        session.add(CatalogSearch(entry_id=entry.id, **values))
    else:
        for k, v in values.items():
            setattr(row, k, v)
    session.flush()


# ---------------------------------------------------------------- differences


def diff(a: CatalogVersion, b: CatalogVersion) -> list[schemas.FieldChange]:
    """Field by field differences from version ``a`` to version ``b``; data items by field."""
    out: list[schemas.FieldChange] = []
    for key, label in VERSION_FIELDS.items():
        if key == "data_items":
            continue
        before, after = getattr(a, key), getattr(b, key)
        if before != after:
            out.append(schemas.FieldChange(field=key, label=label, before=before, after=after))
    items_a = {it["field"]: it for it in a.data_items}
    items_b = {it["field"]: it for it in b.data_items}
    for field in items_a.keys() | items_b.keys():
        ia, ib = items_a.get(field), items_b.get(field)
        if ia == ib:
            continue
        name = (ib or ia or {}).get("name", field)
        if ia is None:
            label = f"信息项“{name}”（新增）"
        elif ib is None:
            label = f"信息项“{name}”（删除）"
        else:
            label = f"信息项“{name}”"
        out.append(
            schemas.FieldChange(field=f"data_items.{field}", label=label, before=ia, after=ib)
        )
    return out


def share_methods_label(methods: list[str]) -> str:
    return "、".join(ShareMethod(m).label for m in methods) or "—"


def entries_for(
    session: Session,
    principal: Principal,
    *,
    department_id: int | None = None,
    states: tuple[str, ...] | None = None,
) -> list[CatalogEntry]:
    """Entries a principal may see (published for all staff; unpublished for the owner and
    the covering authority), optionally one department's."""
    q = select(CatalogEntry).order_by(CatalogEntry.code)
    if department_id is not None:
        q = q.where(CatalogEntry.department_id == department_id)
    if states:
        q = q.where(CatalogEntry.status.in_(states))
    return [
        e
        for e in session.scalars(q)
        if e.status != EntryStatus.DRAFT or may_see_unpublished(session, principal, e)
    ]


def review_queue(session: Session, principal: Principal) -> list[CatalogVersion]:
    """Submitted versions this authority may decide, oldest deadline first."""
    if not principal.can(Perm.CATALOG_REVIEW) or principal.jurisdiction_id is None:
        return []
    ids = orgs_repo.jurisdiction_subtree_ids(session, principal.jurisdiction_id)
    return list(
        session.scalars(
            select(CatalogVersion)
            .join(CatalogEntry, CatalogEntry.id == CatalogVersion.entry_id)
            .where(CatalogVersion.state == VersionState.SUBMITTED.value)
            .where(CatalogEntry.jurisdiction_id.in_(ids))
            .order_by(CatalogVersion.review_due, CatalogVersion.id)
        )
    )


def jurisdiction_of(session: Session, entry: CatalogEntry) -> Jurisdiction:
    return entry.jurisdiction


# ---------------------------------------------------------------- county reports to the city


def reports_to(session: Session, principal: Principal, limit: int = 100) -> list[CatalogReport]:
    """Approved catalog changes reported by the counties below this authority's jurisdiction
    (seed 003 art. 18-20, 23), newest first."""
    if not principal.can(Perm.CATALOG_REVIEW) or principal.jurisdiction_id is None:
        return []
    return list(
        session.scalars(
            select(CatalogReport)
            .where(CatalogReport.to_jurisdiction_id == principal.jurisdiction_id)
            .order_by(CatalogReport.reported_at.desc(), CatalogReport.id.desc())
            .limit(limit)
        )
    )


def acknowledge_report(session: Session, actor: Principal, report_id: int) -> CatalogReport:
    report = session.get(CatalogReport, report_id)
    if (
        report is None
        or not actor.can(Perm.CATALOG_REVIEW)
        or (report.to_jurisdiction_id != actor.jurisdiction_id)
    ):
        raise NotFound("报备记录不存在")
    if report.acknowledged_at is not None:
        raise Conflict("该报备已确认")
    report.acknowledged_at = utcnow()
    report.acknowledged_by = actor.name
    session.flush()
    audit.record(
        session,
        actor,
        "catalog:report:acknowledge",
        "catalog_report",
        report.id,
        {"version_id": report.version_id},
    )
    return report
