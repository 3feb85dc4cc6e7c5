"""Supporters' profiles, their published copy and their feedback schedule (SPEC §12).

Revision ID: 0009_i19
Revises: 0008_i18b
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_i19"
down_revision: str | None = "0008_i18b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``supporter_profiles`` (empty: no application of wave 1 is past ``signed``)."""
    op.create_table(
        "supporter_profiles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("draft", sa.JSON(), nullable=False),
        sa.Column("published", sa.JSON(), nullable=True),
        sa.Column("comment", sa.String(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("feedback_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("feedback_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("feedback_reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("feedback_reminders", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["application_id"], ["applications.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("supporter_profiles", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_supporter_profiles_application_id"), ["application_id"], unique=True
        )
        batch_op.create_index(
            batch_op.f("ix_supporter_profiles_feedback_due_at"), ["feedback_due_at"], unique=False
        )


def downgrade() -> None:
    """Drop ``supporter_profiles``."""
    op.drop_table("supporter_profiles")
