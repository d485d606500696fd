"""Partial indexes on executions: parent, job run and trigger key only where set.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from flowledger.storage.migrations.parts import v0007_partial_indexes

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    v0007_partial_indexes.upgrade()


def downgrade() -> None:
    raise NotImplementedError("flowledger migrations only go forward")
