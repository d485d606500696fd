"""Revision 0009: the claims' two partial indexes. ``ix_executions_in_progress`` holds
the running executions with no timer by age; ``ix_executions_waking`` the unfinished
ones waiting for a time, by that time. A claim walks each in order (and the queued ones
in the status index) and steps over only what is running: by status alone it also
stepped over every parked execution and every one waiting for a person (50,000 parked:
49 ms a claim of 50 on SQLite, against 1.6 ms with none) (frozen copy; never import
schema*.py here)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

IN_PROGRESS_SQL = "runtime_status = 'InProgress' AND wake_at IS NULL"
WAKING_SQL = (
    "runtime_status IN ('NotStarted', 'InProgress', 'AwaitingUserInput') AND wake_at IS NOT NULL"
)


def upgrade() -> None:
    running, waking = sa.text(IN_PROGRESS_SQL), sa.text(WAKING_SQL)
    op.create_index(
        "ix_executions_in_progress",
        "executions",
        ["created_at", "id", "wake_at"],
        sqlite_where=running,
        postgresql_where=running,
    )
    op.create_index(
        "ix_executions_waking",
        "executions",
        ["wake_at"],
        sqlite_where=waking,
        postgresql_where=waking,
    )
