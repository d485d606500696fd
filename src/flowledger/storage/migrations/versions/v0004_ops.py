"""Operations: step logs, and workflows whose triggers are disabled.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from flowledger.storage.migrations.parts import v0004_ops

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    v0004_ops.upgrade()


def downgrade() -> None:
    raise NotImplementedError("flowledger migrations only go forward")
