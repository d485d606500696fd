"""Revision 0006: one index fewer on ``step_executions``, the table every step of every
execution inserts into and updates. ``ix_step_executions_execution (execution_id, seq)``
served only "the steps of one execution, in order" and the pruner's delete; the unique
constraint on ``(execution_id, step_path, loop_key, attempt)`` leads with
``execution_id`` and serves both (the one execution's rows are then sorted by ``seq``).
Each step's insert updated four indexes, now three: ~4 us of a chain step's commit on
SQLite (frozen copy; never import schema*.py here)."""

from __future__ import annotations

from alembic import op


def upgrade() -> None:
    op.drop_index("ix_step_executions_execution", "step_executions")
