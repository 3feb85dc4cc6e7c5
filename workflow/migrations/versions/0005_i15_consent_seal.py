"""Documents: the seal certificate each consent was issued with (SPEC 7.5).

Revision ID: 0005_i15
Revises: 0004_i13
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_i15"
down_revision: str | None = "0004_i13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``documents.seal_sha256`` (NULL: not a consent, unsealed, or issued before)."""
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seal_sha256", sa.String(), nullable=True))


def downgrade() -> None:
    """Drop it again."""
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_column("seal_sha256")
