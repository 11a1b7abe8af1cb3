"""Concurrent writers on a real database keep the audit chain linear and verifiable."""

from __future__ import annotations

import threading

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from govshare import migrate
from govshare.audit import service as audit
from govshare.audit.models import AuditEntry
from govshare.db import make_engine
from govshare.principal import Principal

WRITERS = 4
COMMITS = 25
PER_COMMIT = 3


def test_parallel_commits_keep_one_chain(fresh_db_url: str) -> None:
    engine = make_engine(fresh_db_url, pool_size=WRITERS + 1)
    migrate.upgrade(engine)
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS)

    def writer(n: int) -> None:
        actor = Principal(kind="system", id=n, name=f"writer-{n}", role=None, ip="127.0.0.1")
        try:
            start.wait()
            for i in range(COMMITS):
                with Session(engine) as s:
                    for k in range(PER_COMMIT):
                        audit.record(
                            s, actor, "test:chain:write", "writer", n, {"commit": i, "entry": k}
                        )
                    s.commit()
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Session(engine) as s:
        total = s.scalar(select(func.count(AuditEntry.seq)))
        assert total == WRITERS * COMMITS * PER_COMMIT
        assert s.scalar(select(func.max(AuditEntry.seq))) == total
        result = audit.verify(s)
        assert result.ok, result.reason
        assert result.checked == total
        # each commit's entries are contiguous: no interleaving inside a transaction
        rows = s.execute(select(AuditEntry.seq, AuditEntry.actor_id).order_by(AuditEntry.seq))
        actors = [a for _, a in rows]
        for i in range(0, total, PER_COMMIT):
            assert len(set(actors[i : i + PER_COMMIT])) == 1
    engine.dispose()
