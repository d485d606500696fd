"""Revision 0002, entities tables (frozen copy; never import schema.py here)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

_when = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "entity_types",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("json_schema", sa.Text, nullable=False),
        sa.Column("created_at", _when, nullable=False),
        sa.Column("updated_at", _when, nullable=False),
    )
    op.create_table(
        "entities",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("entity_type", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", _when, nullable=False),
        sa.Column("updated_at", _when, nullable=False),
    )
    op.create_index("ix_entities_type", "entities", ["entity_type", "created_at"])
    op.create_table(
        "entity_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("entity_id", sa.String(36), nullable=False),
        sa.Column("entity_type", sa.String(128), nullable=False),
        sa.Column("event_type", sa.String(16), nullable=False),
        sa.Column("entity", sa.Text, nullable=False),
        sa.Column("previous", sa.Text),
        sa.Column("depth", sa.Integer, nullable=False),
        sa.Column("execution_id", sa.String(36)),
        sa.Column("idempotency_key", sa.String(200)),
        sa.Column("created_at", _when, nullable=False),
        sa.Column("dispatched_at", _when),
    )
    op.create_index(
        "uq_entity_events_idempotency", "entity_events", ["idempotency_key"], unique=True
    )
    op.create_index(
        "ix_entity_events_pending",
        "entity_events",
        ["id"],
        sqlite_where=sa.text("dispatched_at IS NULL"),
        postgresql_where=sa.text("dispatched_at IS NULL"),
    )
