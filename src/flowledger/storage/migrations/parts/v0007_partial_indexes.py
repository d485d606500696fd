"""Revision 0007: the indexes of ``executions`` on ``parent_id``, ``job_run_id`` and
``trigger_key`` hold only the rows that have one. Most executions have none of the three
(a root execution started by a call, a webhook without a key), yet each start inserted
its NULLs into all three B-trees. A lookup by value (``parent_id = ?``) implies IS NOT
NULL, so SQLite and PostgreSQL still use them; a start's SQL on SQLite costs ~10% less
(frozen copy; never import schema*.py here)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

#: (index, column, unique)
PARTIAL = (
    ("ix_executions_parent", "parent_id", False),
    ("ix_executions_job_run", "job_run_id", False),
    ("uq_executions_trigger_key", "trigger_key", True),
)


def upgrade() -> None:
    for name, column, unique in PARTIAL:
        where = sa.text(f"{column} IS NOT NULL")
        op.drop_index(name, "executions")
        op.create_index(
            name,
            "executions",
            [column],
            unique=unique,
            sqlite_where=where,
            postgresql_where=where,
        )
