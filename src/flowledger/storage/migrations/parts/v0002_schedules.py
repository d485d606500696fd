"""Revision 0002, schedules tables (frozen copy; never import schema.py here)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

_when = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "schedule_states",
        sa.Column("workflow_name", sa.String(128), primary_key=True),
        sa.Column("trigger_index", sa.Integer, primary_key=True),
        sa.Column("cron", sa.String(200), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("last_tick", _when, nullable=False),
        sa.Column("updated_at", _when, nullable=False),
    )
