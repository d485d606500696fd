"""Entity step types: sys.create_entity, sys.update_entity, sys.delete_entity, sys.query_entity.

Outputs follow SPEC §2; ``entityTypeId`` is the type's name. Writes pass the step's
idempotency key, so a step re-run after a crash returns the recorded write instead of
writing (and firing triggers) again. Bad input, a schema violation or an unknown
entity fail the step at once; a database error, or an entity that kept changing under
the write for seconds, is worth another attempt.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from flowledger.errors import ConflictError, InputError, NotFoundError, StepError, StorageError
from flowledger.numbers import NumbersNotBooleans
from flowledger.steps.base import StepContext, StepType, step_type
from flowledger.steps.entity_access import EntityAccess, EntityChange

T = TypeVar("T")


class _Input(NumbersNotBooleans):
    model_config = ConfigDict(extra="forbid")


class EntityDocument(BaseModel):
    """An entity as queries return it and entity triggers see it."""

    id: str = Field(description="The entity's id.")
    entityType: str = Field(description="Its type's name.")
    version: int = Field(description="Its version: 1 when created, one more each update.")
    payload: dict[str, Any] = Field(description="Its fields.")
    createdAt: str = Field(description="When it was created (ISO-8601, UTC).")
    updatedAt: str = Field(description="When it last changed (ISO-8601, UTC).")


def _access(ctx: StepContext) -> EntityAccess:
    if ctx.entities is None:  # pragma: no cover - the engine always provides it
        raise StepError("the entity store is not available here", retryable=False)
    return ctx.entities


async def _call(action: Callable[[], Awaitable[T]]) -> T:
    """Store errors as step errors: bad data fails at once, a database error may pass."""
    try:
        return await action()
    except (InputError, NotFoundError) as exc:
        raise StepError(str(exc), retryable=False) from None
    except (StorageError, ConflictError) as exc:  # a database error, or a write raced
        raise StepError(str(exc), retryable=True) from None


def _ids(change: EntityChange) -> tuple[str, str]:
    return change.entity["id"], change.entity["entityType"]


# --- sys.create_entity ---------------------------------------------------------------------


#: Descriptions that several entity steps share.
_ENTITY_ID = "The entity's id."
_TYPE_ID = "Its type's name."


class CreateEntityInput(_Input):
    entity_type: str = Field(
        description="The entity type's name (made with `entities types create`)."
    )
    payload: dict[str, Any] = Field(
        default_factory=dict, description="The entity's fields, checked against its type's schema."
    )


class CreateEntityOutput(BaseModel):
    entityId: str = Field(description="The new entity's id.")
    entityTypeId: str = Field(description=_TYPE_ID)
    payload: dict[str, Any] = Field(description="Its fields as stored.")


@step_type("sys.create_entity")
async def create_entity(data: CreateEntityInput, ctx: StepContext) -> CreateEntityOutput:
    """Create an entity; its type's entity triggers fire."""
    access = _access(ctx)
    change = await _call(
        lambda: access.create(data.entity_type, data.payload, idempotency_key=ctx.idempotency_key)
    )
    entity_id, type_id = _ids(change)
    return CreateEntityOutput(
        entityId=entity_id, entityTypeId=type_id, payload=change.entity["payload"]
    )


# --- sys.update_entity ---------------------------------------------------------------------


class UpdateEntityInput(_Input):
    entity_id: str = Field(description=_ENTITY_ID)
    payload: dict[str, Any] = Field(
        default_factory=dict,
        description="Merged into the stored fields: these top-level keys replace, the others stay.",
    )


class UpdateEntityOutput(BaseModel):
    entityId: str = Field(description=_ENTITY_ID)
    entityTypeId: str = Field(description=_TYPE_ID)
    payload: dict[str, Any] = Field(description="Its fields after the update.")
    previousPayload: dict[str, Any] = Field(description="Its fields before the update.")


@step_type("sys.update_entity")
async def update_entity(data: UpdateEntityInput, ctx: StepContext) -> UpdateEntityOutput:
    """Merge fields into an entity's payload; its type's entity triggers fire."""
    access = _access(ctx)
    change = await _call(
        lambda: access.update(data.entity_id, data.payload, idempotency_key=ctx.idempotency_key)
    )
    entity_id, type_id = _ids(change)
    previous = change.previous or {}
    return UpdateEntityOutput(
        entityId=entity_id,
        entityTypeId=type_id,
        payload=change.entity["payload"],
        previousPayload=previous.get("payload", {}),
    )


# --- sys.delete_entity ---------------------------------------------------------------------


class DeleteEntityInput(_Input):
    entity_id: str = Field(description=_ENTITY_ID)


class DeleteEntityOutput(BaseModel):
    entityId: str = Field(description=_ENTITY_ID)
    entityTypeId: str = Field(description=_TYPE_ID)


@step_type("sys.delete_entity")
async def delete_entity(data: DeleteEntityInput, ctx: StepContext) -> DeleteEntityOutput:
    """Delete an entity; its type's entity triggers fire."""
    access = _access(ctx)
    change = await _call(lambda: access.delete(data.entity_id, idempotency_key=ctx.idempotency_key))
    entity_id, type_id = _ids(change)
    return DeleteEntityOutput(entityId=entity_id, entityTypeId=type_id)


# --- sys.query_entity ----------------------------------------------------------------------


class QueryEntityInput(_Input):
    entity_type: str = Field(description="The entity type's name.")
    # Operators: see flowledger.entities.service.
    filter: dict[str, Any] = Field(
        default_factory=dict,
        description="Payload fields to match: `{Status: New}` is equality, "
        "`{Score: {gte: 10}}` an operator (eq, ne, gt, gte, lt, lte, in); a dotted name "
        "reads a nested field.",
    )
    order_by: str | list[str] | None = Field(
        None,
        description="A payload field or a list of them, `-Field` for descending; ties "
        "(and none) sort oldest first.",
    )
    limit: int = Field(100, ge=0, le=1000, description="The most entities returned.")
    offset: int = Field(0, ge=0, description="How many matching entities to skip first.")


class QueryEntityOutput(BaseModel):
    entities: list[EntityDocument] = Field(description="The matching entities of this page.")
    totalCount: int = Field(description="How many match in all.")
    hasMore: bool = Field(description="More match after this page.")


@step_type("sys.query_entity")
async def query_entity(data: QueryEntityInput, ctx: StepContext) -> QueryEntityOutput:
    """Find entities of a type by payload fields, sorted and paged."""
    access = _access(ctx)
    page = await _call(
        lambda: access.query(data.entity_type, data.filter, data.order_by, data.limit, data.offset)
    )
    return QueryEntityOutput(
        entities=[EntityDocument.model_validate(e) for e in page.entities],
        totalCount=page.total_count,
        hasMore=page.has_more,
    )


#: What the registry takes from this module the first time a definition names one of
#: them (steps.registry.LAZY_BUILTINS).
STEP_TYPES: tuple[StepType, ...] = (
    create_entity,
    update_entity,
    delete_entity,
    query_entity,
)
