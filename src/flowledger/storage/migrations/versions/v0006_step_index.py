"""One index fewer on step_executions: the unique constraint serves its queries.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from flowledger.storage.migrations.parts import v0006_step_index

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    v0006_step_index.upgrade()


def downgrade() -> None:
    raise NotImplementedError("flowledger migrations only go forward")
