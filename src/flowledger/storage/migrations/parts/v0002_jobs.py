"""Revision 0002, jobs tables (frozen copy; never import schema.py here)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

_when = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "job_runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("continue_on_failure", sa.Boolean, nullable=False),
        sa.Column("items", sa.Text, nullable=False),
        sa.Column("format_version", sa.Integer, nullable=False),
        sa.Column("created_at", _when, nullable=False),
        sa.Column("started_at", _when),
        sa.Column("completed_at", _when),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_expires_at", _when),
    )
    op.create_index("ix_job_runs_status", "job_runs", ["status"])
    op.create_index("ix_job_runs_created", "job_runs", ["created_at"])
