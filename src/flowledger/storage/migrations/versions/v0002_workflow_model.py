"""The rest of the workflow model: signals, execution lineage, entities, schedules, jobs, artifacts.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flowledger.storage.migrations.parts import (
    v0002_artifacts,
    v0002_entities,
    v0002_jobs,
    v0002_schedules,
)

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_when = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.add_column(
            sa.Column("depth", sa.Integer, nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(sa.Column("rerun_of", sa.String(36)))
        batch.add_column(sa.Column("job_run_id", sa.String(36)))
        batch.add_column(sa.Column("trigger_key", sa.String(300)))
        for counter in ("signals_sent", "signals_taken"):
            batch.add_column(
                sa.Column(counter, sa.Integer, nullable=False, server_default=sa.text("0"))
            )
    op.create_index("ix_executions_parent", "executions", ["parent_id"])
    op.create_index("ix_executions_job_run", "executions", ["job_run_id"])
    op.create_index("uq_executions_trigger_key", "executions", ["trigger_key"], unique=True)
    op.create_table(
        "workflows",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("version_id", sa.String(36), nullable=False),
        sa.Column("pushed_at", _when, nullable=False),
        sa.Column("first_pushed_at", _when, nullable=False),
    )
    op.create_table(
        "execution_signals",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("execution_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("step_id", sa.String(128)),
        sa.Column("payload", sa.Text),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", _when, nullable=False),
        sa.Column("consumed_at", _when),
    )
    op.create_index(
        "ix_execution_signals_pending", "execution_signals", ["execution_id", "consumed_at"]
    )
    v0002_entities.upgrade()
    v0002_schedules.upgrade()
    v0002_jobs.upgrade()
    v0002_artifacts.upgrade()


def downgrade() -> None:
    raise NotImplementedError("flowledger schema changes are forward-only")
