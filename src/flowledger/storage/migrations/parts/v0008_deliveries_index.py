"""Revision 0008: ``ix_deliveries_execution``, an execution's webhook deliveries. Pruning
deletes the sent ones with their execution, a batch at a time; without it every batch
scanned every delivery ever made (frozen copy; never import schema*.py here)."""

from __future__ import annotations

from alembic import op


def upgrade() -> None:
    op.create_index("ix_deliveries_execution", "deliveries", ["execution_id"])
