"""Intake ledger: record where each file came from (a watched folder today, a mailbox later).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``intake_items.source``; rows from before were all from watched folders."""
    with op.batch_alter_table("intake_items", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("source", sa.String(), nullable=False, server_default="folder")
        )
        batch_op.create_index("ix_intake_items_status_lease", ["status", "lease_until"])


def downgrade() -> None:
    """Drop ``intake_items.source``."""
    with op.batch_alter_table("intake_items", schema=None) as batch_op:
        batch_op.drop_index("ix_intake_items_status_lease")
        batch_op.drop_column("source")
