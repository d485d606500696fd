"""Revision 0012: ``ix_executions_unfinished_schedule``, the unfinished executions that
schedule ticks started, by workflow: a schedule with ``overlap: skip`` or
``cancel_previous`` looks there on every tick for one of its own still running (frozen
copy; never import schema*.py here)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

UNFINISHED_SCHEDULE_SQL = (
    "runtime_status IN ('NotStarted', 'InProgress', 'AwaitingUserInput') "
    "AND substr(trigger_key, 1, 9) = 'schedule:'"
)


def upgrade() -> None:
    where = sa.text(UNFINISHED_SCHEDULE_SQL)
    op.create_index(
        "ix_executions_unfinished_schedule",
        "executions",
        ["workflow_name"],
        sqlite_where=where,
        postgresql_where=where,
    )
