"""The source text of workflow versions.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from flowledger.storage.migrations.parts import v0010_workflow_source

revision = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    v0010_workflow_source.upgrade()


def downgrade() -> None:
    raise NotImplementedError("flowledger migrations only go forward")
