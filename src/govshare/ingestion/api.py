"""JSON API of aggregation (under /api/v1): push rows, read batches and their errors."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from sqlalchemy.orm import Session

from govshare.deps import DbSession, require
from govshare.ingestion import schemas, service
from govshare.ingestion.models import BatchSource, IngestBatch
from govshare.permissions import Perm
from govshare.principal import Principal

router = APIRouter(tags=["ingestion"])

Pusher = Annotated[Principal, Depends(require(Perm.INGEST_PUSH))]
Reader = Annotated[Principal, Depends(require(Perm.INGEST_READ))]


def _push_out(db: Session, batch: IngestBatch, duplicate: bool) -> schemas.PushOut:
    return schemas.PushOut(
        batch=schemas.BatchOut.model_validate(batch),
        duplicate=duplicate,
        errors=[schemas.ErrorOut.model_validate(e) for e in service.errors_of(db, batch.id)],
    )


@router.post("/ingestion/entries/{entry_id}/push", response_model=schemas.PushOut)
def push(
    db: DbSession, principal: Pusher, entry_id: int, data: schemas.PushIn, response: Response
) -> schemas.PushOut:
    """业务系统实时推送数据（应用凭证）。同一批次号重复推送只入库一次；响应在数据提交后才返回。"""
    entry = service.target_entry(db, principal, entry_id)
    earlier = service.find_batch(db, entry, entry.department_id, data.client_batch_id)
    if earlier is not None:
        response.status_code = 200
        return _push_out(db, earlier, duplicate=True)
    outcome = service.load_rows(
        db,
        principal,
        entry,
        [(i, row) for i, row in enumerate(data.rows, start=1)],
        source=BatchSource.PUSH,
        mode=data.mode,
        client_batch_id=data.client_batch_id,
    )
    if outcome.duplicate:
        # the same batch pushed twice at once: the other request loaded it first
        response.status_code = 200
        return _push_out(db, outcome.batch, duplicate=True)
    response.status_code = 201
    return _push_out(db, outcome.batch, duplicate=False)


@router.get("/ingestion/batches", response_model=list[schemas.BatchOut])
def list_batches(
    db: DbSession, principal: Reader, entry_id: int | None = None
) -> list[IngestBatch]:
    return service.batches_for(db, principal, entry_id=entry_id)


@router.get("/ingestion/batches/{batch_id}/errors", response_model=list[schemas.ErrorOut])
def batch_errors(db: DbSession, principal: Reader, batch_id: int) -> list[object]:
    batch = service.get_batch(db, principal, batch_id)
    return list(service.errors_of(db, batch.id, limit=10_000))
