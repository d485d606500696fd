"""Schedule progress and tick keys by the schedule's content, not its place in triggers.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from flowledger.storage.migrations.parts import v0016_schedule_ids

revision = "0016"
down_revision: str | None = "0015"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    v0016_schedule_ids.upgrade()


def downgrade() -> None:
    raise NotImplementedError("flowledger migrations only go forward")
