"""Entities: types with JSON Schemas, and the entities of a type. Writes made here fire
entity triggers (a running worker dispatches them)."""

from __future__ import annotations

import builtins
from typing import Any, cast

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
from flowledger.app.paging import Listing, keyset_page
from flowledger.app.results import (
    CreatedEntityType,
    EntityDocument,
    EntityPageResult,
    EntityTypeDocument,
    Page,
)
from flowledger.entities.service import type_document
from flowledger.errors import InvalidInputError, NotFoundError


class Entities(Listing):
    """The entity operations of one application (see :class:`flowledger.app.App`).
    Filters and orders are checked by the entity service (``parse_filter``), which
    ``sys.query_entity`` steps share: one rule for both."""

    async def create_type(self, request: CreateEntityType) -> CreatedEntityType:
        """Create a type (``created`` false when it exists with this very schema)."""
        doc, created = await self._engine.entities.create_type(request.name, request.schema_)
        return {"type": cast(EntityTypeDocument, doc), "created": created}

    async def list_types(self, request: ListEntityTypes) -> builtins.list[EntityTypeDocument]:
        """Every entity type by name."""
        return cast(builtins.list[EntityTypeDocument], await self._engine.entities.list_types())

    async def page_types(self, request: ListEntityTypes) -> Page[EntityTypeDocument]:
        """One page of entity types, newest first (keyset: stable while others insert)."""
        rows, cursor = await keyset_page(
            await self._codec(),
            "entity-types",
            {},
            request.cursor,
            page_size(request, self._limits.max_page),
            self._engine.store.list_entity_types,
            lambda row: (row["created_at"], str(row["name"])),
        )
        items = [cast(EntityTypeDocument, type_document(row)) for row in rows]
        return Page[EntityTypeDocument](items=items, next_cursor=cursor)

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
        """One page of matching entities, newest first (with ``order_by``: in that order,
        newest first among equals). The order is decided here, not by a face, so the
        CLI, the HTTP API and the web pages list alike. A page starts at ``cursor`` (a
        page's ``nextCursor``) or after ``offset`` matches.

        Without ``order_by`` a cursor is a keyset position (stable while others insert);
        with it, a signed count, so there an entity inserted meanwhile before the cursor
        shifts the rest by one. Decision: keyset over arbitrary JSON fields of mixed
        types is not worth its SQL."""
        limit = page_size(request, self._limits.max_page)
        codec = await self._codec()
        filters: dict[str, Any] = {
            "type": request.entity_type,
            "filter": request.filter,
            "orderBy": request.order_by,
        }
        kind = "entities-ordered" if request.order_by else "entities"
        offset, before = request.offset, None
        if request.cursor is not None:
            if request.offset:
                raise InvalidInputError("give a cursor or an offset, not both", ("offset",))
            if request.order_by:
                offset = codec.decode_offset(kind, filters, request.cursor)
            else:
                before = codec.decode(kind, filters, request.cursor)
        page = await self._engine.entities.list(
            request.entity_type,
            request.filter,
            request.order_by or None,
            limit,
            offset,
            newest_first=True,
            before=before,
        )
        cursor = None
        if page.has_more:
            if request.order_by:
                cursor = codec.encode_offset(kind, filters, offset + limit)
            else:
                at, key = page.positions[limit - 1]
                cursor = codec.encode(kind, filters, at, key)
        return {
            "items": cast(builtins.list[EntityDocument], page.entities),
            "totalCount": page.total_count,
            "hasMore": page.has_more,
            "nextCursor": cursor,
        }
