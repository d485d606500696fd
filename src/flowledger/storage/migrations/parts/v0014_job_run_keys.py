"""Revision 0014: ``job_runs.idempotency_key`` and its unique index: ``POST /job-runs``
with an ``Idempotency-Key`` creates one job run per key, where a client retrying after a
timeout created a second one (frozen copy; never import schema*.py here)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def upgrade() -> None:
    with op.batch_alter_table("job_runs") as batch:
        batch.add_column(sa.Column("idempotency_key", sa.String(200)))
    op.create_index("uq_job_runs_idempotency_key", "job_runs", ["idempotency_key"], unique=True)
