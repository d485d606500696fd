"""List indexes: executions filtered by workflow or status, newest first.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from flowledger.storage.migrations.parts import v0005_list_indexes

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    v0005_list_indexes.upgrade()


def downgrade() -> None:
    raise NotImplementedError("flowledger migrations only go forward")
