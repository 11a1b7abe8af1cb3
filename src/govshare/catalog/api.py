"""JSON API of the catalog's entries, versions and review (under /api/v1)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from govshare.catalog import schemas, service
from govshare.catalog.models import CatalogEntry, CatalogVersion
from govshare.deps import DbSession, require
from govshare.errors import NotFound
from govshare.permissions import Perm
from govshare.principal import Principal

router = APIRouter(tags=["catalog"])

Reader = Annotated[Principal, Depends(require(Perm.CATALOG_READ))]
Editor = Annotated[Principal, Depends(require(Perm.CATALOG_EDIT))]
Reviewer = Annotated[Principal, Depends(require(Perm.CATALOG_REVIEW))]
Withdrawer = Annotated[Principal, Depends(require(Perm.CATALOG_READ))]


def detail(db: Session, principal: Principal, entry: CatalogEntry) -> schemas.EntryDetail:
    book = service.rulebook_of(db, entry)
    current = entry.current_version
    pending = service.pending_version(db, entry)
    if pending is not None and not service.may_see_unpublished(db, principal, entry):
        pending = None
    shown = current or pending
    return schemas.EntryDetail(
        entry=schemas.EntryOut.model_validate(entry),
        current=schemas.VersionOut.model_validate(current) if current else None,
        pending=schemas.VersionOut.model_validate(pending) if pending else None,
        share_type_name=service.share_type_name(book, shown.share_type) if shown else "",
        open_type_name=service.open_type_name(book, shown.open_type) if shown else "",
    )


@router.get("/catalog/entries", response_model=list[schemas.EntryOut])
def list_entries(
    db: DbSession,
    principal: Reader,
    department_id: int | None = None,
    status: Annotated[str | None, Query(pattern="^(draft|published|withdrawn)$")] = None,
    code: Annotated[str | None, Query(max_length=32, description="资源代码")] = None,
) -> list[CatalogEntry]:
    """目录资源列表：已发布的对所有部门可见；未发布的仅本部门和数据主管部门可见。"""
    if code:
        return [service.get_entry_by_code(db, principal, code)]
    return service.entries_for(
        db, principal, department_id=department_id, states=(status,) if status else None
    )


@router.post("/catalog/entries", response_model=schemas.VersionOut, status_code=201)
def create_entry(db: DbSession, principal: Editor, data: schemas.EntryCreate) -> CatalogVersion:
    """编制新的目录资源（草稿，版本 1）。"""
    return service.create_entry(db, principal, data)


@router.get("/catalog/entries/{entry_id}", response_model=schemas.EntryDetail)
def get_entry(db: DbSession, principal: Reader, entry_id: int) -> schemas.EntryDetail:
    return detail(db, principal, service.get_entry(db, principal, entry_id))


@router.get("/catalog/entries/{entry_id}/versions", response_model=list[schemas.VersionOut])
def list_versions(db: DbSession, principal: Reader, entry_id: int) -> list[CatalogVersion]:
    entry = service.get_entry(db, principal, entry_id)
    return service.versions_of(db, principal, entry)


@router.post(
    "/catalog/entries/{entry_id}/versions", response_model=schemas.VersionOut, status_code=201
)
def new_version(
    db: DbSession, principal: Editor, entry_id: int, data: schemas.NewVersionIn
) -> CatalogVersion:
    """变更已发布的资源：以现行版本为底稿新建一个版本；审核通过前现行版本继续有效。"""
    return service.new_version(db, principal, service.get_entry(db, principal, entry_id), data)


@router.post("/catalog/entries/{entry_id}/withdraw", response_model=schemas.EntryOut)
def withdraw(
    db: DbSession, principal: Withdrawer, entry_id: int, data: schemas.WithdrawIn
) -> CatalogEntry:
    """撤销资源（不删除，全部版本保留）。本部门负责人或数据主管部门。"""
    return service.withdraw(db, principal, service.get_entry(db, principal, entry_id), data)


@router.get("/catalog/versions/{version_id}", response_model=schemas.VersionOut)
def get_version(db: DbSession, principal: Reader, version_id: int) -> CatalogVersion:
    return service.get_version(db, principal, version_id)


@router.put("/catalog/versions/{version_id}", response_model=schemas.VersionOut)
def update_version(
    db: DbSession, principal: Editor, version_id: int, data: schemas.VersionIn
) -> CatalogVersion:
    return service.update_version(
        db, principal, service.get_version(db, principal, version_id), data
    )


@router.post("/catalog/versions/{version_id}/submit", response_model=schemas.VersionOut)
def submit(
    db: DbSession, principal: Editor, version_id: int, data: schemas.SubmitIn | None = None
) -> CatalogVersion:
    """提交审核；审核期限按本级规则的工作日计算。"""
    return service.submit(db, principal, service.get_version(db, principal, version_id), data)


@router.post("/catalog/versions/{version_id}/discard", response_model=schemas.VersionOut)
def discard(db: DbSession, principal: Editor, version_id: int) -> CatalogVersion:
    return service.discard(db, principal, service.get_version(db, principal, version_id))


@router.post("/catalog/versions/{version_id}/review", response_model=schemas.VersionOut)
def review(
    db: DbSession, principal: Reviewer, version_id: int, data: schemas.ReviewIn
) -> CatalogVersion:
    """审核：通过（发布）或退回（须写明理由）。"""
    return service.review(db, principal, service.get_version(db, principal, version_id), data)


@router.get("/catalog/versions/{version_id}/diff/{other_id}", response_model=schemas.VersionDiff)
def diff(db: DbSession, principal: Reader, version_id: int, other_id: int) -> schemas.VersionDiff:
    """两个版本之间逐字段的差异。"""
    a = service.get_version(db, principal, version_id)
    b = service.get_version(db, principal, other_id)
    if a.entry_id != b.entry_id:
        raise NotFound("两个版本不属于同一资源")
    return schemas.VersionDiff(
        from_version=a.number, to_version=b.number, changes=service.diff(a, b)
    )


@router.get("/catalog/review-queue", response_model=list[schemas.VersionOut])
def review_queue(db: DbSession, principal: Reviewer) -> list[CatalogVersion]:
    """待本机关审核的目录版本，按审核期限排序。"""
    return service.review_queue(db, principal)
