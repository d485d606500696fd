"""Revision 0004, operations: step logs and disabled workflows (frozen copy; never import
schema*.py here)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

_when = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "step_logs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("execution_id", sa.String(36), nullable=False),
        sa.Column("step_execution_id", sa.String(36), nullable=False),
        sa.Column("step_id", sa.String(128), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("at", _when, nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
    )
    op.create_index("ix_step_logs_execution", "step_logs", ["execution_id", "id"])
    with op.batch_alter_table("workflows") as batch:
        batch.add_column(sa.Column("disabled_at", _when))
