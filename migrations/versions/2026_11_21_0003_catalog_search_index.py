"""catalog search index

Catalog search matches any substring of an entry's search text, so that a two-character
Chinese word (户籍) finds 户籍人口基本信息 (see catalog/search.py).

- Both databases: an index on version_id, from which the in-memory search replica checks
  cheaply whether the search table changed.
- PostgreSQL, for catalogs searched in the database (larger than the replica's limit):
  ``govshare_grams(text)`` returns every character and every pair of adjacent characters of
  a text; a GIN index on it finds the rows holding all the pairs of a keyword (``strpos``
  then confirms longer terms; pg_trgm would not serve two-character words). An index over
  the facet columns lets a search without a keyword count facets from an index-only scan
  (created on SQLite too, where the models declare it).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 16:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FACET_COLUMNS = [
    "department_id",
    "catalog_kind",
    "share_type",
    "open_type",
    "resource_format",
    "update_frequency",
    "data_grade",
    "jurisdiction_id",
]
GRAMS_FUNCTION = """
CREATE OR REPLACE FUNCTION govshare_grams(t text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT ARRAY(
    SELECT substr(t, i, 1) FROM generate_series(1, length(t)) AS i
    UNION ALL
    SELECT substr(t, i, 2) FROM generate_series(1, length(t) - 1) AS i
  )
$$
"""


def upgrade() -> None:
    with op.batch_alter_table("catalog_search", schema=None) as batch_op:
        batch_op.create_index("ix_catalog_search_version_id", ["version_id"], unique=False)
        batch_op.create_index("ix_catalog_search_facets", FACET_COLUMNS, unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(GRAMS_FUNCTION)
        op.create_index(
            "ix_catalog_search_grams",
            "catalog_search",
            [sa.text("govshare_grams(text)")],
            postgresql_using="gin",
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_catalog_search_grams", table_name="catalog_search")
        op.execute("DROP FUNCTION IF EXISTS govshare_grams(text)")
    with op.batch_alter_table("catalog_search", schema=None) as batch_op:
        batch_op.drop_index("ix_catalog_search_facets")
        batch_op.drop_index("ix_catalog_search_version_id")
