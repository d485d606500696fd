"""The unfinished executions of schedule ticks, by workflow (a schedule's overlap policy).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from flowledger.storage.migrations.parts import v0012_schedule_overlap

revision = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    v0012_schedule_overlap.upgrade()


def downgrade() -> None:
    raise NotImplementedError("flowledger migrations only go forward")
