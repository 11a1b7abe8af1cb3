"""`alembic upgrade head` builds exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from govshare import migrate
from govshare.db import make_engine
from govshare.models import Base


def test_upgrade_head_matches_models(fresh_db_url: str) -> None:
    engine = make_engine(fresh_db_url)
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, Base.metadata)
        assert diff == []
        head = ScriptDirectory.from_config(migrate.alembic_config(fresh_db_url)).get_current_head()
        assert migrate.current(engine) == head
    finally:
        engine.dispose()


def test_single_head_and_dated_file_names() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1
    for path in migrate.migrations_path().joinpath("versions").glob("*.py"):
        assert path.name[:11].replace("_", "").isdigit(), path.name
