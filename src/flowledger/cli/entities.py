"""`flowledger entities …` and `flowledger entities types …`: the built-in entity store.

Writes made here fire entity triggers: a running ``flowledger worker`` dispatches them.
A payload that breaks its type's schema exits 2 with the field named; an unknown type
or entity exits 1.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from flowledger.app import (
    App,
    CreateEntity,
    CreateEntityType,
    EntityPageResult,
    EntityRef,
    ListEntities,
    ListEntityTypes,
    UpdateEntity,
    parse_json_object,
    read_schema_file,
)
from flowledger.app.models import MAX_PAGE
from flowledger.cli.common import (
    DbOption,
    JsonOption,
    build,
    entities_app,
    entity_types_app,
    existing,
    out,
    print_json,
    with_app,
)
from flowledger.cli.render import table as new_table
from flowledger.cli.render import when

#: As many entities as a page of ``entities list`` shows unless told.
DEFAULT_LIMIT = 100

DataOption = Annotated[
    str, typer.Option("--data", help='The payload as a JSON object, e.g. \'{"Status": "New"}\'.')
]
IdArgument = Annotated[str, typer.Argument(metavar="ID", help="The entity's id.")]


# -- entity types -----------------------------------------------------------------------------


@entity_types_app.command("create")
def types_create(
    name: Annotated[str, typer.Argument(help="The type's name, e.g. Lead.")],
    schema: Annotated[
        str | None,
        typer.Option("--schema", help="JSON Schema file (JSON or YAML); default: any object."),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an entity type whose payloads must match a JSON Schema."""

    document = build(lambda: read_schema_file(schema)) if schema is not None else None
    request = build(lambda: CreateEntityType(name=name, schema_=document))
    result = with_app(db, lambda application: application.entities.create_type(request))
    doc, created = result["type"], result["created"]
    if as_json:
        print_json(doc)
    elif created:
        out.print(f"created entity type {name}")
    else:
        out.print(f"entity type {name} already exists with this schema")


@entity_types_app.command("list")
def types_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List the entity types."""

    async def go(application: App) -> list[dict[str, Any]]:
        return [dict(d) for d in await application.entities.list_types(ListEntityTypes())]

    docs = existing(db, go)
    if as_json:
        print_json(docs)
        return
    if not docs:
        out.print("no entity types yet (flowledger entities types create NAME)")
        return
    table = new_table("name", "fields", "required", "created")
    for doc in docs:
        schema = doc["schema"]
        properties = schema.get("properties") if isinstance(schema, dict) else None
        required = schema.get("required") if isinstance(schema, dict) else None
        table.add_row(
            doc["name"],
            ", ".join(properties) if isinstance(properties, dict) else "any",
            ", ".join(map(str, required)) if isinstance(required, list) else "",
            when(doc["createdAt"]),
        )
    out.print(table)


# -- entities ---------------------------------------------------------------------------------


@entities_app.command("create")
def entities_create(
    entity_type: Annotated[str, typer.Argument(metavar="TYPE", help="The entity type.")],
    data: DataOption,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an entity and print its id."""

    payload = build(lambda: _parse_data(data))
    request = build(lambda: CreateEntity(entity_type=entity_type, payload=payload))
    doc = with_app(db, lambda application: application.entities.create(request))
    if as_json:
        print_json(doc)
    else:
        out.print(doc["id"], highlight=False)


@entities_app.command("list")
def entities_list(
    entity_type: Annotated[str, typer.Argument(metavar="TYPE", help="The entity type.")],
    filter: Annotated[
        str | None,
        typer.Option(
            "--filter", help='Payload fields to match as JSON, e.g. \'{"Score": {"gte": 10}}\'.'
        ),
    ] = None,
    order_by: Annotated[
        list[str] | None,
        typer.Option("--order-by", help="Sort by a field, -FIELD descending (repeatable)."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", help=f"Entities per page (1 to {MAX_PAGE}).")
    ] = DEFAULT_LIMIT,
    offset: Annotated[
        int, typer.Option("--offset", help="Skip this many matching entities first.")
    ] = 0,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the entities of a type (--json prints the list of entity documents)."""

    conditions = (
        build(lambda: parse_json_object(filter, "--filter", '{"Score": {"gte": 10}}'))
        if filter is not None
        else {}
    )
    request = build(
        lambda: ListEntities(
            entity_type=entity_type,
            filter=conditions,
            order_by=order_by or [],
            limit=limit,
            offset=offset,
        )
    )
    page: EntityPageResult = existing(db, lambda application: application.entities.list(request))
    if as_json:
        print_json(page["items"])
        return
    if not page["items"]:
        out.print(f"no {entity_type} entities match")
        return
    table = new_table("id", "version", "updated", "payload")
    for doc in page["items"]:
        table.add_row(
            doc["id"], str(doc["version"]), when(doc["updatedAt"]), _short(doc["payload"])
        )
    out.print(table)
    if page["hasMore"] or offset:
        first, last = offset + 1, offset + len(page["items"])
        out.print(
            f"{first}-{last} of {page['totalCount']} (use --offset for more)",
            markup=False,
        )


@entities_app.command("show")
def entities_show(entity_id: IdArgument, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Show one entity."""

    doc = existing(db, lambda application: application.entities.get(EntityRef(id=entity_id)))
    if as_json:
        print_json(doc)
        return
    out.print(f"{doc['entityType']} {doc['id']}  version {doc['version']}")
    out.print(f"created {doc['createdAt']}  updated {doc['updatedAt']}")
    out.print(json.dumps(doc["payload"], indent=2, ensure_ascii=False))


@entities_app.command("update")
def entities_update(
    entity_id: IdArgument, data: DataOption, db: DbOption = None, as_json: JsonOption = False
) -> None:
    """Merge fields into an entity's payload (the given top-level keys replace)."""

    payload = build(lambda: _parse_data(data))
    request = build(lambda: UpdateEntity(id=entity_id, payload=payload))
    doc = existing(db, lambda application: application.entities.update(request))
    if as_json:
        print_json(doc)
    else:
        out.print(f"updated {doc['entityType']} {doc['id']} (version {doc['version']})")


@entities_app.command("delete")
def entities_delete(entity_id: IdArgument, db: DbOption = None) -> None:
    """Delete an entity."""

    doc = existing(db, lambda application: application.entities.delete(EntityRef(id=entity_id)))
    out.print(f"deleted {doc['entityType']} {doc['id']}")


# -- helpers ----------------------------------------------------------------------------------


def _parse_data(text: str) -> dict[str, Any]:
    return parse_json_object(text, "--data", '\'{"Status": "New"}\'')


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"
