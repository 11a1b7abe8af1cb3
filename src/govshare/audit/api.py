"""Audit log JSON API: list entries, verify the chain, purge old entries, checkpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from govshare.audit import repository as repo
from govshare.audit import schemas, service
from govshare.deps import DbSession, require
from govshare.permissions import Perm
from govshare.principal import Principal

router = APIRouter(tags=["audit"])

Reader = Annotated[Principal, Depends(require(Perm.AUDIT_READ))]
Verifier = Annotated[Principal, Depends(require(Perm.AUDIT_VERIFY))]
Purger = Annotated[Principal, Depends(require(Perm.AUDIT_PURGE))]


@router.get("/audit/entries", response_model=schemas.EntryPage, summary="查询审计日志")
def list_entries(
    db: DbSession, principal: Reader, filters: Annotated[schemas.EntryFilter, Query()]
) -> schemas.EntryPage:
    """按操作人、操作代码前缀、部门、对象、日期范围筛选，最新的在前。"""
    entries, has_next = repo.list_entries(
        db, principal, **filters.query_args(), page=filters.page, per_page=filters.per_page
    )
    return schemas.EntryPage(
        items=[schemas.EntryOut.of(e) for e in entries],
        page=filters.page,
        per_page=filters.per_page,
        has_next=has_next,
    )


@router.post("/audit/verify", response_model=schemas.VerifyOut, summary="校验日志链")
def verify(db: DbSession, principal: Verifier) -> schemas.VerifyOut:
    """重新计算每条日志的 SM3 哈希并检查链接，报告第一条被修改或删除的日志。校验本身记入日志。"""
    return schemas.VerifyOut.of(service.verify_and_record(db, principal))


@router.get("/audit/purge-policy", response_model=schemas.PurgePolicyOut, summary="日志保留期限")
def purge_policy(db: DbSession, principal: Purger) -> schemas.PurgePolicyOut:
    policy = service.purge_policy(db)
    return schemas.PurgePolicyOut(
        retention_months=policy.retention_months, latest_before=policy.latest_before
    )


@router.post("/audit/purge", response_model=schemas.PurgeOut, summary="清理过期日志")
def purge(db: DbSession, principal: Purger, data: schemas.PurgeIn) -> schemas.PurgeOut:
    """删除指定日期之前、已超过保留期限的日志，并留下带哈希的清理检查点（其本身记入日志链）。"""
    cp = service.purge_before_date(db, principal, data.before)
    if cp is None:
        return schemas.PurgeOut(purged=0, checkpoint=None, message="没有需要清理的日志")
    return schemas.PurgeOut(
        purged=cp.entries_purged,
        checkpoint=schemas.CheckpointOut.of(cp),
        message=f"已清理 {cp.entries_purged} 条日志（至第 {cp.last_seq} 条）",
    )


@router.get("/audit/checkpoints", response_model=list[schemas.CheckpointOut], summary="清理检查点")
def checkpoints(db: DbSession, principal: Reader) -> list[schemas.CheckpointOut]:
    return [schemas.CheckpointOut.of(cp) for cp in repo.list_checkpoints(db, principal)]
