"""catalog

Catalog entries and their versions, the search table, change events (law or duty
changes), demand lists and county-to-city reports.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 11:47:24.161379
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "catalog_change_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("occurred_on", sa.Date(), nullable=False),
        sa.Column("due", sa.Date(), nullable=False),
        sa.Column("due_provisional", sa.Boolean(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=128), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=128), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=False),
        sa.Column("version_ids", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["departments.id"],
            name=op.f("fk_catalog_change_events_department_id_departments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_change_events")),
    )
    with op.batch_alter_table("catalog_change_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_catalog_change_events_department_id"), ["department_id"], unique=False
        )

    op.create_table(
        "catalog_demands",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("data_items", sa.JSON(), nullable=False),
        sa.Column("scenario", sa.Text(), nullable=False),
        sa.Column("basis", sa.Text(), nullable=False),
        sa.Column("expected_provider_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("matched_entry_ids", sa.JSON(), nullable=False),
        sa.Column("match_note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["departments.id"],
            name=op.f("fk_catalog_demands_department_id_departments"),
        ),
        sa.ForeignKeyConstraint(
            ["expected_provider_id"],
            ["departments.id"],
            name=op.f("fk_catalog_demands_expected_provider_id_departments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_demands")),
    )
    with op.batch_alter_table("catalog_demands", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_catalog_demands_department_id"), ["department_id"], unique=False
        )

    op.create_table(
        "catalog_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("jurisdiction_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("current_version_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_by", sa.String(length=128), nullable=True),
        sa.Column("withdrawn_reason", sa.String(length=512), nullable=True),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["departments.id"],
            name=op.f("fk_catalog_entries_department_id_departments"),
        ),
        sa.ForeignKeyConstraint(
            ["jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_catalog_entries_jurisdiction_id_jurisdictions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_entries")),
        sa.UniqueConstraint("code", name=op.f("uq_catalog_entries_code")),
    )
    with op.batch_alter_table("catalog_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_catalog_entries_department_id"), ["department_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_catalog_entries_jurisdiction_id"), ["jurisdiction_id"], unique=False
        )

    op.create_table(
        "catalog_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("change_note", sa.String(length=512), nullable=False),
        sa.Column("catalog_kind", sa.String(length=16), nullable=False),
        sa.Column("item_code", sa.String(length=2), nullable=False),
        sa.Column("category_code", sa.String(length=3), nullable=False),
        sa.Column("base_database", sa.String(length=24), nullable=True),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("resource_format", sa.String(length=24), nullable=False),
        sa.Column("data_items", sa.JSON(), nullable=False),
        sa.Column("subject_key_kind", sa.String(length=16), nullable=False),
        sa.Column("subject_key_item", sa.String(length=64), nullable=False),
        sa.Column("share_type", sa.String(length=16), nullable=False),
        sa.Column("share_scope", sa.Text(), nullable=False),
        sa.Column("share_purpose", sa.Text(), nullable=False),
        sa.Column("share_basis", sa.Text(), nullable=False),
        sa.Column("share_methods", sa.JSON(), nullable=False),
        sa.Column("open_type", sa.String(length=16), nullable=False),
        sa.Column("open_conditions", sa.Text(), nullable=False),
        sa.Column("open_basis", sa.Text(), nullable=False),
        sa.Column("update_frequency", sa.String(length=16), nullable=False),
        sa.Column("related_codes", sa.JSON(), nullable=False),
        sa.Column("data_grade", sa.String(length=16), nullable=False),
        sa.Column("is_returned_data", sa.Boolean(), nullable=False),
        sa.Column("returned_from", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("submitted_by", sa.String(length=128), nullable=True),
        sa.Column("review_due", sa.Date(), nullable=True),
        sa.Column("review_due_provisional", sa.Boolean(), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reviewed_by", sa.String(length=128), nullable=True),
        sa.Column("review_comment", sa.Text(), nullable=False),
        sa.Column("publish_date", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["catalog_entries.id"],
            name=op.f("fk_catalog_versions_entry_id_catalog_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_versions")),
    )
    # entries and versions refer to each other: the entry's pointer to its version in force
    # is added once both tables exist
    with op.batch_alter_table("catalog_entries", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_catalog_entries_current_version_id_catalog_versions"),
            "catalog_versions",
            ["current_version_id"],
            ["id"],
        )
    with op.batch_alter_table("catalog_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_catalog_versions_entry_id"), ["entry_id"], unique=False
        )
        batch_op.create_index("ix_catalog_versions_state", ["state"], unique=False)
        batch_op.create_index(
            "uq_catalog_versions_entry_number", ["entry_id", "number"], unique=True
        )

    op.create_table(
        "catalog_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("from_jurisdiction_id", sa.Integer(), nullable=False),
        sa.Column("to_jurisdiction_id", sa.Integer(), nullable=False),
        sa.Column("due", sa.Date(), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["from_jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_catalog_reports_from_jurisdiction_id_jurisdictions"),
        ),
        sa.ForeignKeyConstraint(
            ["to_jurisdiction_id"],
            ["jurisdictions.id"],
            name=op.f("fk_catalog_reports_to_jurisdiction_id_jurisdictions"),
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["catalog_versions.id"],
            name=op.f("fk_catalog_reports_version_id_catalog_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_reports")),
    )
    with op.batch_alter_table("catalog_reports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_catalog_reports_to_jurisdiction_id"),
            ["to_jurisdiction_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_catalog_reports_version_id"), ["version_id"], unique=False
        )

    op.create_table(
        "catalog_search",
        sa.Column("entry_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("jurisdiction_id", sa.Integer(), nullable=False),
        sa.Column("catalog_kind", sa.String(length=16), nullable=False),
        sa.Column("share_type", sa.String(length=16), nullable=False),
        sa.Column("open_type", sa.String(length=16), nullable=False),
        sa.Column("resource_format", sa.String(length=24), nullable=False),
        sa.Column("update_frequency", sa.String(length=16), nullable=False),
        sa.Column("data_grade", sa.String(length=16), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["catalog_entries.id"],
            name=op.f("fk_catalog_search_entry_id_catalog_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["catalog_versions.id"],
            name=op.f("fk_catalog_search_version_id_catalog_versions"),
        ),
        sa.PrimaryKeyConstraint("entry_id", name=op.f("pk_catalog_search")),
    )
    with op.batch_alter_table("catalog_search", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_catalog_search_department_id"), ["department_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_catalog_search_jurisdiction_id"), ["jurisdiction_id"], unique=False
        )
        batch_op.create_index("ix_catalog_search_published_at", ["published_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("catalog_entries", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_catalog_entries_current_version_id_catalog_versions"),
            type_="foreignkey",
        )
    with op.batch_alter_table("catalog_search", schema=None) as batch_op:
        batch_op.drop_index("ix_catalog_search_published_at")
        batch_op.drop_index(batch_op.f("ix_catalog_search_jurisdiction_id"))
        batch_op.drop_index(batch_op.f("ix_catalog_search_department_id"))

    op.drop_table("catalog_search")
    with op.batch_alter_table("catalog_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_reports_version_id"))
        batch_op.drop_index(batch_op.f("ix_catalog_reports_to_jurisdiction_id"))

    op.drop_table("catalog_reports")
    with op.batch_alter_table("catalog_versions", schema=None) as batch_op:
        batch_op.drop_index("uq_catalog_versions_entry_number")
        batch_op.drop_index("ix_catalog_versions_state")
        batch_op.drop_index(batch_op.f("ix_catalog_versions_entry_id"))

    op.drop_table("catalog_versions")
    with op.batch_alter_table("catalog_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_entries_jurisdiction_id"))
        batch_op.drop_index(batch_op.f("ix_catalog_entries_department_id"))

    op.drop_table("catalog_entries")
    with op.batch_alter_table("catalog_demands", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_demands_department_id"))

    op.drop_table("catalog_demands")
    with op.batch_alter_table("catalog_change_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_change_events_department_id"))

    op.drop_table("catalog_change_events")
