"""Revision 0002, artifacts tables (frozen copy; never import schema.py here)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

_when = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "artifacts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("execution_id", sa.String(36), nullable=False),
        sa.Column("step_execution_id", sa.String(36)),
        sa.Column("step_id", sa.String(128)),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", _when, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
    )
    op.create_index("ix_artifacts_execution", "artifacts", ["execution_id", "created_at"])
