"""Entities: types with JSON Schemas, and the entities of a type. Writes made here fire
entity triggers (a running worker dispatches them)."""

from __future__ import annotations

import builtins
from typing import cast

from flowledger.app.inputs import check_json_size
from flowledger.app.limits import page_size
from flowledger.app.models import (
    CreateEntity,
    CreateEntityType,
    EntityRef,
    ListEntities,
    ListEntityTypes,
    UpdateEntity,
)
from flowledger.app.results import (
    CreatedEntityType,
    EntityDocument,
    EntityPageResult,
    EntityTypeDocument,
)
from flowledger.config import Limits
from flowledger.errors import NotFoundError
from flowledger.runtime.engine import Engine


class Entities:
    """The entity operations of one application (see :class:`flowledger.app.App`).
    Filters and orders are checked by the entity service (``parse_filter``), which
    ``sys.query_entity`` steps share: one rule for both."""

    def __init__(self, engine: Engine, limits: Limits | None = None) -> None:
        self._engine = engine
        self._limits = limits or Limits()

    async def create_type(self, request: CreateEntityType) -> CreatedEntityType:
        """Create a type (``created`` false when it exists with this very schema)."""
        doc, created = await self._engine.entities.create_type(request.name, request.schema_)
        return {"type": cast(EntityTypeDocument, doc), "created": created}

    async def list_types(self, request: ListEntityTypes) -> builtins.list[EntityTypeDocument]:
        return cast(builtins.list[EntityTypeDocument], await self._engine.entities.list_types())

    async def create(self, request: CreateEntity) -> EntityDocument:
        check_json_size(request.payload, self._limits.max_input, "payload")
        doc = await self._engine.entities.create(request.entity_type, request.payload)
        return cast(EntityDocument, doc)

    async def get(self, request: EntityRef) -> EntityDocument:
        doc = cast(EntityDocument, await self._engine.entities.get(request.id))
        if request.entity_type is not None and doc["entityType"] != request.entity_type:
            raise NotFoundError(f"there is no {request.entity_type} entity {request.id}")
        return doc

    async def update(self, request: UpdateEntity) -> EntityDocument:
        """Merge the given top-level keys into the payload (validated again)."""
        check_json_size(request.payload, self._limits.max_input, "payload")
        if request.entity_type:
            await self.get(EntityRef(id=request.id, entity_type=request.entity_type))
        return cast(EntityDocument, await self._engine.entities.update(request.id, request.payload))

    async def delete(self, request: EntityRef) -> EntityDocument:
        """Delete an entity; returns it as it was."""
        await self.get(request)
        return cast(EntityDocument, await self._engine.entities.delete(request.id))

    async def list(self, request: ListEntities) -> EntityPageResult:
        """One page (offset paging, as ``sys.query_entity`` pages) of matching entities."""
        page = await self._engine.entities.list(
            request.entity_type,
            request.filter,
            request.order_by or None,
            page_size(request, self._limits.max_page),
            request.offset,
        )
        return {
            "items": cast(builtins.list[EntityDocument], page.entities),
            "totalCount": page.total_count,
            "hasMore": page.has_more,
        }
