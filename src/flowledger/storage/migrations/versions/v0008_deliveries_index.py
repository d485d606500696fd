"""Deliveries by execution, for pruning.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from flowledger.storage.migrations.parts import v0008_deliveries_index

revision = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    v0008_deliveries_index.upgrade()


def downgrade() -> None:
    raise NotImplementedError("flowledger migrations only go forward")
