"""Applicants' status links: no new table, they are rows of ``tokens`` (purpose ``status``).

``tokens`` (0003_i17) already holds what a status link needs: the token's SHA-256
(unique), the application, its creation, expiry and revocation. This revision keeps the
session's fixed chain of revision ids (0009_i19 follows it) and changes no schema.

Revision ID: 0008_i18b
Revises: 0007_i18
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0008_i18b"
down_revision: str | None = "0007_i18"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing to change: status links are ``tokens`` rows."""


def downgrade() -> None:
    """Nothing to undo."""
