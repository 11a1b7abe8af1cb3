"""item sources

One data item, one source (一数一源): the authority's source designations and identifying
items, exemptions by law, and conflicts between sources (seed 003 art. 24; seed 004
art. 7 and 15).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ingest_item_sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_kind", sa.String(length=16), nullable=False),
        sa.Column("item_name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("source_entry_id", sa.Integer(), nullable=True),
        sa.Column("basis", sa.Text(), nullable=False),
        sa.Column("designated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("designated_by", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_entry_id"],
            ["catalog_entries.id"],
            name=op.f("fk_ingest_item_sources_source_entry_id_catalog_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_item_sources")),
    )
    with op.batch_alter_table("ingest_item_sources", schema=None) as batch_op:
        batch_op.create_index(
            "uq_ingest_item_sources_item", ["subject_kind", "item_name"], unique=True
        )
    op.create_table(
        "ingest_item_exemptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_kind", sa.String(length=16), nullable=False),
        sa.Column("item_name", sa.String(length=64), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("basis", sa.Text(), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("granted_by", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["catalog_entries.id"],
            name=op.f("fk_ingest_item_exemptions_entry_id_catalog_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_item_exemptions")),
    )
    with op.batch_alter_table("ingest_item_exemptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ingest_item_exemptions_entry_id"), ["entry_id"], unique=False
        )
        batch_op.create_index(
            "uq_ingest_item_exemptions_item",
            ["subject_kind", "item_name", "entry_id"],
            unique=True,
        )
    op.create_table(
        "ingest_source_conflicts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_kind", sa.String(length=16), nullable=False),
        sa.Column("item_name", sa.String(length=64), nullable=False),
        sa.Column("key_value", sa.String(length=128), nullable=False),
        sa.Column("source_entry_id", sa.Integer(), nullable=False),
        sa.Column("source_field", sa.String(length=64), nullable=False),
        sa.Column("source_value", sa.String(length=512), nullable=False),
        sa.Column("other_entry_id", sa.Integer(), nullable=False),
        sa.Column("other_field", sa.String(length=64), nullable=False),
        sa.Column("other_value", sa.String(length=512), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("first_detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=128), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["other_entry_id"],
            ["catalog_entries.id"],
            name=op.f("fk_ingest_source_conflicts_other_entry_id_catalog_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["source_entry_id"],
            ["catalog_entries.id"],
            name=op.f("fk_ingest_source_conflicts_source_entry_id_catalog_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_source_conflicts")),
    )
    with op.batch_alter_table("ingest_source_conflicts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ingest_source_conflicts_other_entry_id"),
            ["other_entry_id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_ingest_source_conflicts_status", ["status", "item_name"], unique=False
        )
        batch_op.create_index(
            "uq_ingest_source_conflicts_subject",
            ["source_entry_id", "other_entry_id", "subject_kind", "item_name", "key_value"],
            unique=True,
        )


def downgrade() -> None:
    with op.batch_alter_table("ingest_source_conflicts", schema=None) as batch_op:
        batch_op.drop_index("uq_ingest_source_conflicts_subject")
        batch_op.drop_index("ix_ingest_source_conflicts_status")
        batch_op.drop_index(batch_op.f("ix_ingest_source_conflicts_other_entry_id"))
    op.drop_table("ingest_source_conflicts")
    with op.batch_alter_table("ingest_item_exemptions", schema=None) as batch_op:
        batch_op.drop_index("uq_ingest_item_exemptions_item")
        batch_op.drop_index(batch_op.f("ix_ingest_item_exemptions_entry_id"))
    op.drop_table("ingest_item_exemptions")
    with op.batch_alter_table("ingest_item_sources", schema=None) as batch_op:
        batch_op.drop_index("uq_ingest_item_sources_item")
    op.drop_table("ingest_item_sources")
