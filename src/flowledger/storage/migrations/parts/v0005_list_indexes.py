"""Revision 0005: the executions list filtered by workflow or by status pages in index
order (``created_at DESC, id DESC`` within the filter) instead of sorting every matching
row: 0.75 s → milliseconds for a workflow's first page at 100,000 executions (frozen copy;
never import schema*.py here)."""

from __future__ import annotations

from alembic import op


def upgrade() -> None:
    op.drop_index("ix_executions_workflow", "executions")
    op.drop_index("ix_executions_status", "executions")
    op.create_index("ix_executions_workflow", "executions", ["workflow_name", "created_at", "id"])
    op.create_index("ix_executions_status", "executions", ["runtime_status", "created_at", "id"])
