"""The ticks a schedule's overlap: skip left unstarted, counted with the last of them.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from flowledger.storage.migrations.parts import v0013_skipped_ticks

revision = "0013"
down_revision: str | None = "0012"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    v0013_skipped_ticks.upgrade()


def downgrade() -> None:
    raise NotImplementedError("flowledger migrations only go forward")
