"""The claims' partial indexes: running executions with no timer, and waiting ones.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from flowledger.storage.migrations.parts import v0009_claim_indexes

revision = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    v0009_claim_indexes.upgrade()


def downgrade() -> None:
    raise NotImplementedError("flowledger migrations only go forward")
