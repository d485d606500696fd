"""Revision 0003, webhooks tables (frozen copy; never import schema*.py here)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

_when = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("events", sa.String(400), nullable=False),
        sa.Column("workflow_name", sa.String(128)),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", _when, nullable=False),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.String(120), primary_key=True),
        sa.Column("subscription_id", sa.String(40), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("execution_id", sa.String(36), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", _when, nullable=False),
        sa.Column("claimed_by", sa.String(200)),
        sa.Column("last_attempt_at", _when),
        sa.Column("last_status_code", sa.Integer),
        sa.Column("last_error", sa.String(500)),
        sa.Column("created_at", _when, nullable=False),
        sa.Column("delivered_at", _when),
    )
    op.create_index("ix_deliveries_due", "deliveries", ["status", "next_attempt_at"])
    op.create_index(
        "ix_deliveries_subscription", "deliveries", ["subscription_id", "created_at", "id"]
    )
