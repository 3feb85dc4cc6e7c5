"""Audit: the chain head records the audit key's id and an HMAC over its count.

Existing heads get NULL in both: ``Store.upgrade`` (``consentflow db upgrade``) then
carries their plain SHA-256 chain over into the keyed one with a recorded re-key event,
in the migration's transaction (the migration itself does not hold the key).

Revision ID: 0006_i15b
Revises: 0005_i15
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_i15b"
down_revision: str | None = "0005_i15"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``chain_head.key_id`` and ``chain_head.mac``."""
    with op.batch_alter_table("chain_head", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("mac", sa.String(), nullable=True))


def downgrade() -> None:
    """Drop them again (the events stay keyed; an older consentflow cannot verify them)."""
    with op.batch_alter_table("chain_head", schema=None) as batch_op:
        batch_op.drop_column("mac")
        batch_op.drop_column("key_id")
