"""deletion requests

A department's request to delete aggregated records, approved by the authority; a batch's
count of rows rejected as duplicate keys (a quality measure).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ingest_batches", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("rows_duplicate", sa.Integer(), server_default="0", nullable=False)
        )
    op.create_table(
        "ingest_deletion_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("keys", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reviewed_by", sa.String(length=128), nullable=True),
        sa.Column("review_comment", sa.Text(), nullable=False),
        sa.Column("rows_deleted", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["departments.id"],
            name=op.f("fk_ingest_deletion_requests_department_id_departments"),
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["catalog_entries.id"],
            name=op.f("fk_ingest_deletion_requests_entry_id_catalog_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_deletion_requests")),
    )
    with op.batch_alter_table("ingest_deletion_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ingest_deletion_requests_department_id"), ["department_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ingest_deletion_requests_entry_id"), ["entry_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("ingest_deletion_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ingest_deletion_requests_entry_id"))
        batch_op.drop_index(batch_op.f("ix_ingest_deletion_requests_department_id"))
    op.drop_table("ingest_deletion_requests")
    with op.batch_alter_table("ingest_batches", schema=None) as batch_op:
        batch_op.drop_column("rows_duplicate")
