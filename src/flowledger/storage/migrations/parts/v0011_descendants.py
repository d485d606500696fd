"""Revision 0011: ``executions.descendants``, the sub-workflow executions planned below a
root so far, which a root's budget (``FLOWLEDGER_MAX_DESCENDANTS``) is checked against
(frozen copy; never import schema*.py here)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.add_column(
            sa.Column("descendants", sa.Integer, nullable=False, server_default=sa.text("0"))
        )
