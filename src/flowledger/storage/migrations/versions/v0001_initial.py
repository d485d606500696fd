"""The initial schema: workflow versions, executions, step executions and their events.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# Frozen copies of the types, never imports from schema.py: a revision must build
# the same tables forever, whatever schema.py says later.
_when = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "flowledger_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "workflow_versions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("format_version", sa.Integer, nullable=False),
        sa.Column("created_at", _when, nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_workflow_versions_name_version"),
        sa.UniqueConstraint("name", "checksum", name="uq_workflow_versions_name_checksum"),
    )
    op.create_table(
        "executions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("correlation_id", sa.String(200), nullable=False),
        sa.Column("parent_id", sa.String(36)),
        sa.Column("root_id", sa.String(36)),
        sa.Column("workflow_version_id", sa.String(36), nullable=False),
        sa.Column("workflow_name", sa.String(128), nullable=False),
        sa.Column("workflow_version", sa.Integer, nullable=False),
        sa.Column("runtime_status", sa.String(32), nullable=False),
        sa.Column("current_state_name", sa.String(128)),
        sa.Column("created_at", _when, nullable=False),
        sa.Column("started_at", _when),
        sa.Column("completed_at", _when),
        sa.Column("failed_at", _when),
        sa.Column("last_activity_at", _when, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("context", sa.Text, nullable=False),
        sa.Column("trigger", sa.Text, nullable=False),
        sa.Column("variables", sa.Text, nullable=False),
        sa.Column("output", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("event_seq", sa.Integer, nullable=False),
        sa.Column("lease_epoch", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_expires_at", _when),
        sa.Column("wake_at", _when),
        sa.Column("format_version", sa.Integer, nullable=False),
    )
    op.create_index("ix_executions_status", "executions", ["runtime_status"])
    op.create_index("ix_executions_workflow", "executions", ["workflow_name"])
    op.create_index("ix_executions_created", "executions", ["created_at"])
    op.create_index("ix_executions_correlation", "executions", ["correlation_id"])
    op.create_table(
        "step_executions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("execution_id", sa.String(36), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("step_id", sa.String(128), nullable=False),
        sa.Column("step_path", sa.String(1024), nullable=False),
        sa.Column("loop_key", sa.String(1024), nullable=False),
        sa.Column("type", sa.String(200), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("started_at", _when),
        sa.Column("completed_at", _when),
        sa.Column("failed_at", _when),
        sa.Column("due_at", _when),
        sa.Column("wake_at", _when),
        sa.Column("suspended", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("input", sa.Text),
        sa.Column("output", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("state", sa.Text),
        sa.Column("idempotency_key", sa.String(64), nullable=False),
        sa.Column("children", sa.Text),
        sa.UniqueConstraint(
            "execution_id", "step_path", "loop_key", "attempt", name="uq_step_executions_attempt"
        ),
    )
    op.create_index("ix_step_executions_execution", "step_executions", ["execution_id", "seq"])
    # The database, not only the claim query, refuses a second recorded completion.
    op.create_index(
        "uq_step_executions_completed",
        "step_executions",
        ["execution_id", "step_path", "loop_key"],
        unique=True,
        sqlite_where=sa.text("status = 'Completed'"),
        postgresql_where=sa.text("status = 'Completed'"),
    )
    op.create_table(
        "execution_events",
        sa.Column("execution_id", sa.String(36), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("at", _when, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("step_execution_id", sa.String(36)),
        sa.Column("step_id", sa.String(128)),
        sa.Column("attempt", sa.Integer),
        sa.Column("status", sa.String(32)),
        sa.Column("detail", sa.Text),
    )


def downgrade() -> None:
    for table in (
        "execution_events",
        "step_executions",
        "executions",
        "workflow_versions",
        "flowledger_meta",
    ):
        op.drop_table(table)
