"""The sub-workflow executions planned below a root.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from flowledger.storage.migrations.parts import v0011_descendants

revision = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    v0011_descendants.upgrade()


def downgrade() -> None:
    raise NotImplementedError("flowledger migrations only go forward")
