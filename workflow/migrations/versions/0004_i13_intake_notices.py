"""Intake: notices about files a worker waits for or cannot take; takeovers per ledger row.

Revision ID: 0004_i13
Revises: 0003_i17
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_i13"
down_revision: str | None = "0003_i17"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``intake_notices`` and ``intake_items.takeovers`` (0 for rows from before)."""
    op.create_table(
        "intake_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("folder", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("message", sa.String(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("folder", "name", "owner"),
    )
    with op.batch_alter_table("intake_items", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("takeovers", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    """Drop them again."""
    with op.batch_alter_table("intake_items", schema=None) as batch_op:
        batch_op.drop_column("takeovers")
    op.drop_table("intake_notices")
