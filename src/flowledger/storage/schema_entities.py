"""Tables of the entity store (on the shared metadata of schema.py).

JSON travels as text (payloads, schemas, entity snapshots); queries read it with the
database's JSON functions (SQLite ``json_extract``, PostgreSQL ``jsonb`` on a cast).
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table, Text

from flowledger.storage.schema import UTCDateTime, metadata, partial_index

#: Entity types: the name is the id (``entityTypeId`` in step outputs is this name).
entity_types = Table(
    "entity_types",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("json_schema", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

#: The live entities; a delete removes the row (its last state stays in its event).
entities = Table(
    "entities",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("entity_type", String(128), nullable=False),
    #: 1 at creation, +1 per update: writes compare-and-set on it.
    Column("version", Integer, nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_entities_type", "entity_type", "created_at"),
)

#: The outbox: one row per write, inserted in the write's own transaction, so a trigger
#: is never lost or doubled. The row is also the write's recorded result (idempotency).
entity_events = Table(
    "entity_events",
    metadata,
    #: Ascending: dispatch takes events oldest first.
    Column("id", Integer, primary_key=True),
    Column("entity_id", String(36), nullable=False),
    Column("entity_type", String(128), nullable=False),
    #: created | updated | deleted
    Column("event_type", String(16), nullable=False),
    #: The entity document after the write (for a delete: as it was when deleted).
    Column("entity", Text, nullable=False),
    #: The entity document before an update; null for created and deleted.
    Column("previous", Text),
    #: The writing execution's depth (0 for writes from the CLI, API or Python).
    Column("depth", Integer, nullable=False),
    Column("execution_id", String(36)),
    #: A step's idempotency key: a re-run of the step finds this row instead of writing again.
    Column("idempotency_key", String(200)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("dispatched_at", UTCDateTime),
    Index("uq_entity_events_idempotency", "idempotency_key", unique=True),
    partial_index(
        "ix_entity_events_pending",
        "id",
        where="dispatched_at IS NULL",
    ),
)
