"""Initial schema: applications, documents, intake ledger, signature reports, event chain.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 23:15:35.943977
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""

    op.create_table(
        "applications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(), nullable=True),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("org_name", sa.String(), nullable=False),
        sa.Column("org_key", sa.String(), nullable=False),
        sa.Column("country", sa.String(), nullable=False),
        sa.Column("lang", sa.String(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("eoi_sha256", sa.String(), nullable=False),
        sa.Column("issued_sha256", sa.String(), nullable=True),
        sa.Column("issued_length", sa.Integer(), nullable=True),
        sa.Column("signed_sha256", sa.String(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_applications_eoi_sha256"), ["eoi_sha256"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_applications_issued_sha256"), ["issued_sha256"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_applications_org_key"), ["org_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_applications_reference"), ["reference"], unique=True)
        batch_op.create_index(batch_op.f("ix_applications_state"), ["state"], unique=False)

    op.create_table(
        "chain_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    # The chain head exists from the start so that concurrent workers lock it, never race
    # to create it.
    op.execute("INSERT INTO chain_head (id, last_hash, count) VALUES (1, '" + "0" * 64 + "', 0)")
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reference", sa.String(), nullable=True),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("from_state", sa.String(), nullable=True),
        sa.Column("to_state", sa.String(), nullable=True),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(), nullable=False),
        sa.Column("hash", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("hash"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_reference"), ["reference"], unique=False)

    op.create_table(
        "intake_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("folder", sa.String(), nullable=False),
        sa.Column("original_name", sa.String(), nullable=False),
        sa.Column("claimed_name", sa.String(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("owner", sa.String(), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("claimed_name"),
    )
    with op.batch_alter_table("intake_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_intake_items_folder"), ["folder"], unique=False)
        batch_op.create_index(batch_op.f("ix_intake_items_sha256"), ["sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_intake_items_status"), ["status"], unique=False)

    op.create_table(
        "documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("original_name", sa.String(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_documents_application_id"), ["application_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_documents_sha256"), ["sha256"], unique=True)

    op.create_table(
        "signature_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("etsi_report_xml", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("signature_reports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_signature_reports_application_id"), ["application_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_signature_reports_sha256"), ["sha256"], unique=False)


def downgrade() -> None:
    """Revert this revision."""

    with op.batch_alter_table("signature_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signature_reports_sha256"))
        batch_op.drop_index(batch_op.f("ix_signature_reports_application_id"))

    op.drop_table("signature_reports")
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_documents_sha256"))
        batch_op.drop_index(batch_op.f("ix_documents_application_id"))

    op.drop_table("documents")
    with op.batch_alter_table("intake_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_intake_items_status"))
        batch_op.drop_index(batch_op.f("ix_intake_items_sha256"))
        batch_op.drop_index(batch_op.f("ix_intake_items_folder"))

    op.drop_table("intake_items")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_reference"))
        batch_op.drop_index(batch_op.f("ix_events_at"))

    op.drop_table("events")
    op.drop_table("chain_head")
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_applications_state"))
        batch_op.drop_index(batch_op.f("ix_applications_reference"))
        batch_op.drop_index(batch_op.f("ix_applications_org_key"))
        batch_op.drop_index(batch_op.f("ix_applications_issued_sha256"))
        batch_op.drop_index(batch_op.f("ix_applications_eoi_sha256"))

    op.drop_table("applications")
