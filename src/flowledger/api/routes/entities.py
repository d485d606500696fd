"""The entity store: types (admin creates them) and entities (operators write them;
writes fire entity triggers)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response

from flowledger.api.bodies import EntityTypeBody
from flowledger.api.deps import API_PREFIX, Admin, AppDep, Operator, Paging, Viewer
from flowledger.api.errors import ERROR_RESPONSES
from flowledger.api.render import page, render
from flowledger.app import (
    CreatedEntityType,
    CreateEntity,
    CreateEntityType,
    EntityDocument,
    EntityPageResult,
    EntityRef,
    EntityTypeDocument,
    ListEntities,
    ListEntityTypes,
    Page,
    UpdateEntity,
)

router = APIRouter(prefix=API_PREFIX, tags=["entities"], responses=ERROR_RESPONSES)
Payload = Annotated[dict[str, Any], Body(description="The entity's fields (a JSON object)")]


@router.get(
    "/entity-types",
    response_model=Page[EntityTypeDocument],
    summary="Entity types with their schemas, newest first (viewer)",
)
async def list_entity_types(app: AppDep, caller: Viewer, paging: Paging) -> Response:
    found = await app.entities.page_types(ListEntityTypes(**paging))
    return page(list(found.items), found.next_cursor)


@router.post(
    "/entity-types",
    status_code=201,
    response_model=CreatedEntityType,
    summary="Create an entity type (created false: it exists with this schema) (admin)",
)
async def create_entity_type(body: EntityTypeBody, app: AppDep, caller: Admin) -> Response:
    request = CreateEntityType(name=body.name, schema_=body.schema_)
    return render(await app.entities.create_type(request), 201)


@router.get(
    "/entities/{type}",
    response_model=EntityPageResult,
    summary="Entities of a type, newest first: ?filter=JSON&orderBy=field,-field&limit=&cursor= "
    "(viewer)",
)
async def list_entities(
    type: str,
    app: AppDep,
    caller: Viewer,
    filter: Annotated[
        str | None, Query(description='A JSON object, e.g. {"Status": "New"}')
    ] = None,
    order_by: Annotated[
        str | None, Query(alias="orderBy", description="Fields, -field descending: Score,-Age")
    ] = None,
    *,
    paging: Paging,
) -> Response:
    request = ListEntities(
        entity_type=type,
        filter=filter,  # JSON text: the request parses it, naming the field
        order_by=[f for f in (order_by or "").split(",") if f],
        **paging,
    )
    return render(await app.entities.list(request))


@router.post(
    "/entities/{type}",
    status_code=201,
    response_model=EntityDocument,
    summary="Create an entity, checked against its type's schema (operator)",
)
async def create_entity(type: str, payload: Payload, app: AppDep, caller: Operator) -> Response:
    doc = await app.entities.create(CreateEntity(entity_type=type, payload=payload))
    return render(doc, 201)


@router.get("/entities/{type}/{id}", response_model=EntityDocument, summary="One entity (viewer)")
async def get_entity(type: str, id: str, app: AppDep, caller: Viewer) -> Response:
    return render(await app.entities.get(EntityRef(id=id, entity_type=type)))


@router.patch(
    "/entities/{type}/{id}",
    response_model=EntityDocument,
    summary="Merge fields into an entity (validated again) (operator)",
)
async def update_entity(
    type: str, id: str, payload: Payload, app: AppDep, caller: Operator
) -> Response:
    request = UpdateEntity(entity_type=type, id=id, payload=payload)
    return render(await app.entities.update(request))


@router.delete(
    "/entities/{type}/{id}",
    response_model=EntityDocument,
    summary="Delete an entity; answers it as it was (operator)",
)
async def delete_entity(type: str, id: str, app: AppDep, caller: Operator) -> Response:
    return render(await app.entities.delete(EntityRef(id=id, entity_type=type)))
