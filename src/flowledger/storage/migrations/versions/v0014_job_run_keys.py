"""A job run's idempotency key, unique.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from flowledger.storage.migrations.parts import v0014_job_run_keys

revision = "0014"
down_revision: str | None = "0013"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    v0014_job_run_keys.upgrade()


def downgrade() -> None:
    raise NotImplementedError("flowledger migrations only go forward")
