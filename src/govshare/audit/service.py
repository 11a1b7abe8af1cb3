"""Audit log: record (same transaction as the change), verify, purge.

Entries are queued on the session by :func:`record` and appended to the chain just before
the session commits, so they land in the same transaction as the change they describe and
the chain tip is locked only for the last moment of the transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from sqlalchemy import delete, event, func, insert, select, update
from sqlalchemy.orm import Session

from govshare.audit.models import AuditCheckpoint, AuditEntry, AuditHead
from govshare.db import utcnow
from govshare.errors import ValidationFailed
from govshare.principal import Principal

GENESIS_HASH = "0" * 64
_PENDING = "audit_pending"


def sm3_hex(data: bytes) -> str:
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize().hex()


def format_ts(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def _field(value: object) -> str:
    s = "" if value is None else str(value)
    return f"{len(s)}:{s}"


def entry_hash(
    seq: int,
    occurred_at: datetime,
    actor_type: str,
    actor_id: int | None,
    actor_name: str,
    role: str,
    department_id: int | None,
    action: str,
    target_type: str,
    target_id: str,
    ip: str,
    details: str,
    prev_hash: str,
) -> str:
    """SM3 over a length-prefixed encoding of every field and the previous entry's hash."""
    payload = "|".join(
        _field(v)
        for v in (
            seq,
            format_ts(occurred_at),
            actor_type,
            actor_id,
            actor_name,
            role,
            department_id,
            action,
            target_type,
            target_id,
            ip,
            details,
            prev_hash,
        )
    )
    return sm3_hex(payload.encode("utf-8"))


def record(
    session: Session,
    actor: Principal,
    action: str,
    target_type: str,
    target_id: object,
    details: dict[str, Any] | None = None,
) -> None:
    """Queue an audit entry; it is written in the same transaction when the session commits."""
    if action.count(":") != 2:
        raise ValueError(f"audit action must be domain:resource:action, got {action!r}")
    session.info.setdefault(_PENDING, []).append(
        {
            "occurred_at": utcnow(),
            "actor_type": actor.kind,
            "actor_id": actor.id,
            "actor_name": actor.name,
            "role": actor.role_code,
            "department_id": actor.department_id,
            "action": action,
            "target_type": target_type,
            "target_id": "" if target_id is None else str(target_id),
            "ip": actor.ip,
            "details": canonical_json(details or {}),
        }
    )


def write_pending(session: Session) -> int:
    """Append queued entries to the chain (called before commit). Returns how many."""
    pending: list[dict[str, Any]] = session.info.pop(_PENDING, [])
    if not pending:
        return 0
    row = session.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(last_seq=AuditHead.last_seq + len(pending))
        .returning(AuditHead.last_seq, AuditHead.last_hash)
    ).one_or_none()
    if row is None:
        session.execute(
            insert(AuditHead).values(id=1, last_seq=len(pending), last_hash=GENESIS_HASH)
        )
        last_seq, prev = len(pending), GENESIS_HASH
    else:
        last_seq, prev = row
    seq = last_seq - len(pending)
    for entry in pending:
        seq += 1
        entry["seq"] = seq
        entry["prev_hash"] = prev
        entry["hash"] = prev = entry_hash(
            seq,
            entry["occurred_at"],
            entry["actor_type"],
            entry["actor_id"],
            entry["actor_name"],
            entry["role"],
            entry["department_id"],
            entry["action"],
            entry["target_type"],
            entry["target_id"],
            entry["ip"],
            entry["details"],
            entry["prev_hash"],
        )
    session.execute(insert(AuditEntry), pending)
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(last_hash=prev))
    return len(pending)


def discard_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    write_pending(session)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    discard_pending(session)


# ---------------------------------------------------------------- verify


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str = ""
    checkpoint_seq: int | None = None


def checkpoint_hash(cp: AuditCheckpoint) -> str:
    return sm3_hex(
        "|".join(
            _field(v)
            for v in (
                format_ts(cp.created_at),
                cp.created_by,
                format_ts(cp.purged_before),
                cp.last_seq,
                cp.last_hash,
                cp.entries_purged,
            )
        ).encode("utf-8")
    )


def verify(session: Session, *, batch: int = 20_000) -> VerifyResult:
    """Walk the chain from the latest checkpoint (or genesis) and recompute every hash."""
    cp = session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc())).first()
    expected_seq, prev = 1, GENESIS_HASH
    cp_seq = None
    if cp is not None:
        if checkpoint_hash(cp) != cp.hash:
            return VerifyResult(False, 0, cp.last_seq, "清理检查点被篡改", cp.last_seq)
        expected_seq, prev, cp_seq = cp.last_seq + 1, cp.last_hash, cp.last_seq
    cols = (
        AuditEntry.seq,
        AuditEntry.occurred_at,
        AuditEntry.actor_type,
        AuditEntry.actor_id,
        AuditEntry.actor_name,
        AuditEntry.role,
        AuditEntry.department_id,
        AuditEntry.action,
        AuditEntry.target_type,
        AuditEntry.target_id,
        AuditEntry.ip,
        AuditEntry.details,
        AuditEntry.prev_hash,
        AuditEntry.hash,
    )
    checked = 0
    cp_entry_seen = cp is None
    result = session.execute(
        select(*cols).where(AuditEntry.seq >= expected_seq).order_by(AuditEntry.seq),
        execution_options={"yield_per": batch},
    )
    for row in result:
        seq = row[0]
        if seq != expected_seq:
            return VerifyResult(
                False, checked, expected_seq, f"第 {expected_seq} 条日志缺失（已被删除）", cp_seq
            )
        if row[12] != prev:
            return VerifyResult(False, checked, seq, f"第 {seq} 条日志的前序哈希不符", cp_seq)
        if entry_hash(*row[:13]) != row[13]:
            return VerifyResult(False, checked, seq, f"第 {seq} 条日志内容被修改", cp_seq)
        if not cp_entry_seen and row[7] == "audit:log:purge" and cp is not None:
            cp_entry_seen = cp.hash in row[11]
        prev = row[13]
        expected_seq += 1
        checked += 1
    head = session.get(AuditHead, 1)
    last_seq = expected_seq - 1
    if head is not None and (head.last_seq != last_seq or head.last_hash != prev):
        if head.last_seq > last_seq:
            return VerifyResult(
                False, checked, last_seq + 1, f"第 {last_seq + 1} 条及之后的日志缺失", cp_seq
            )
        return VerifyResult(False, checked, last_seq, "链尾与记录的链头不一致", cp_seq)
    if not cp_entry_seen:
        return VerifyResult(False, checked, cp_seq, "清理检查点没有对应的审计记录", cp_seq)
    return VerifyResult(True, checked, None, "", cp_seq)


# ---------------------------------------------------------------- purge


def add_months(ts: datetime, months: int) -> datetime:
    month0 = ts.month - 1 + months
    year, month = ts.year + month0 // 12, month0 % 12 + 1
    for day in (ts.day, 30, 29, 28):
        try:
            return ts.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise ValueError(ts)


def purge(
    session: Session, actor: Principal, before: datetime, retention_months: int
) -> AuditCheckpoint | None:
    """Delete entries older than ``before``, keeping at least ``retention_months``.

    Leaves a checkpoint so that the remaining chain still verifies.
    """
    now = utcnow()
    earliest_allowed = add_months(now, -retention_months)
    if before > earliest_allowed:
        raise ValidationFailed(
            f"日志至少保留 {retention_months} 个月，只能清理 "
            f"{earliest_allowed.astimezone(UTC):%Y-%m-%d} 之前的日志",
            field="before",
        )
    write_pending(session)
    first_kept = session.scalar(
        select(func.min(AuditEntry.seq)).where(AuditEntry.occurred_at >= before)
    )
    if first_kept is None:
        first_kept = (session.scalar(select(func.max(AuditEntry.seq))) or 0) + 1
    last_purged = first_kept - 1
    last = session.get(AuditEntry, last_purged) if last_purged > 0 else None
    if last is None:
        return None
    count = session.execute(delete(AuditEntry).where(AuditEntry.seq <= last_purged)).rowcount  # type: ignore[attr-defined]
    cp = AuditCheckpoint(
        created_at=now,
        created_by=actor.name,
        purged_before=before,
        last_seq=last.seq,
        last_hash=last.hash,
        entries_purged=int(count),
        hash="",
    )
    cp.hash = checkpoint_hash(cp)
    session.add(cp)
    session.flush()
    record(
        session,
        actor,
        "audit:log:purge",
        "audit_checkpoint",
        cp.id,
        {
            "purged_before": format_ts(before),
            "last_seq": cp.last_seq,
            "entries_purged": cp.entries_purged,
            "checkpoint_hash": cp.hash,
        },
    )
    return cp
