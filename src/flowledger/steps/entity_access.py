"""What a step may do with the entity store (``StepContext.entities``).

Entity documents are plain JSON: ``{id, entityType, version, payload, createdAt,
updatedAt}`` with ISO-8601 UTC millisecond timestamps.

Errors: a payload that breaks its type's schema, a bad filter or an unknown type name
raise :class:`flowledger.errors.InputError`; an unknown entity id raises
:class:`flowledger.errors.NotFoundError`; a database failure raises
:class:`flowledger.errors.StorageError`, and an update or delete that other writers kept
beating for seconds :class:`flowledger.errors.ConflictError` (both worth another attempt).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

EntityEventType = Literal["created", "updated", "deleted"]


@dataclass(frozen=True)
class EntityChange:
    """What one write did: what entity triggers see as ``{eventType, entity, previousEntity}``."""

    event_type: EntityEventType
    #: The entity after the write; for a delete, the entity as it was when deleted.
    entity: dict[str, Any]
    #: The entity before an update; None for created and deleted.
    previous: dict[str, Any] | None = None


@dataclass(frozen=True)
class EntityPage:
    entities: list[dict[str, Any]]
    total_count: int
    has_more: bool
    #: Each entity's keyset position (created_at, id), for cursor pages.
    positions: list[tuple[datetime, str]] = field(default_factory=list)


class EntityAccess(Protocol):
    """The entity store as one execution's steps see it: writes fire entity triggers.

    Writes take an ``idempotency_key``: when a write with that key was committed before
    (the step's process died before its completion was recorded, and the step runs
    again), nothing is written and the recorded change is returned. Built-in steps pass
    ``ctx.idempotency_key``; a custom step that writes several times must give each write
    its own key (e.g. ``f"{ctx.idempotency_key}:2"``).
    """

    async def create(
        self,
        entity_type: str,
        payload: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
    ) -> EntityChange:
        """Create an entity of ``entity_type``, validated against its schema."""
        ...

    async def update(
        self,
        entity_id: str,
        payload: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
    ) -> EntityChange:
        """Merge ``payload`` into the entity's (top-level keys replace), then validate."""
        ...

    async def delete(
        self, entity_id: str, *, idempotency_key: str | None = None
    ) -> EntityChange: ...

    async def get(self, entity_id: str) -> dict[str, Any]: ...

    async def query(
        self,
        entity_type: str,
        filter: Mapping[str, Any] | None = None,
        order_by: str | Sequence[str] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> EntityPage:
        """Entities of a type whose payload matches ``filter`` (see runtime.entities)."""
        ...
