"""`flowledger entities …` and `flowledger entities types …`: the built-in entity store.

Writes made here fire entity triggers: a running ``flowledger worker`` dispatches them.
A payload that breaks its type's schema exits 2 with the field named; an unknown type
or entity exits 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from flowledger.cli.common import (
    DbOption,
    JsonOption,
    call,
    entities_app,
    entity_types_app,
    make_engine,
    out,
    print_json,
)
from flowledger.entities.service import DEFAULT_LIMIT, MAX_LIMIT
from flowledger.errors import InputError
from flowledger.steps.entity_access import EntityPage

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

    async def go() -> tuple[dict[str, Any], bool]:
        document = _read_schema(schema) if schema is not None else None
        async with make_engine(db) as engine:
            return await engine.entities.create_type(name, document)

    doc, created = call(go)
    if as_json:
        print_json(doc)
    elif created:
        out.print(f"created entity type {name}", markup=False)
    else:
        out.print(f"entity type {name} already exists with this schema", markup=False)


@entity_types_app.command("list")
def types_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List the entity types."""

    async def go() -> list[dict[str, Any]]:
        async with make_engine(db) as engine:
            return await engine.entities.list_types()

    docs = call(go)
    if as_json:
        print_json(docs)
        return
    if not docs:
        out.print("no entity types yet (flowledger entities types create NAME)", markup=False)
        return
    table = Table("Name", "Fields", "Required", "Created")
    for doc in docs:
        schema = doc["schema"]
        properties = schema.get("properties") if isinstance(schema, dict) else None
        required = schema.get("required") if isinstance(schema, dict) else None
        table.add_row(
            doc["name"],
            ", ".join(properties) if isinstance(properties, dict) else "any",
            ", ".join(map(str, required)) if isinstance(required, list) else "",
            doc["createdAt"],
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

    async def go() -> dict[str, Any]:
        payload = _parse_data(data)
        async with make_engine(db) as engine:
            return await engine.entities.create(entity_type, payload)

    doc = call(go)
    if as_json:
        print_json(doc)
    else:
        out.print(doc["id"], markup=False, highlight=False)


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
    limit: Annotated[int, typer.Option("--limit", min=0, max=MAX_LIMIT)] = DEFAULT_LIMIT,
    offset: Annotated[int, typer.Option("--offset", min=0)] = 0,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the entities of a type (--json prints the list of entity documents)."""

    async def go() -> EntityPage:
        conditions = _parse_json(filter, "--filter") if filter is not None else {}
        if not isinstance(conditions, dict):
            raise InputError("--filter must be a JSON object of field names and values")
        async with make_engine(db) as engine:
            return await engine.entities.list(entity_type, conditions, order_by, limit, offset)

    page = call(go)
    if as_json:
        print_json(page.entities)
        return
    if not page.entities:
        out.print(f"no {entity_type} entities match", markup=False)
        return
    table = Table("ID", "Version", "Updated", "Payload")
    for doc in page.entities:
        table.add_row(doc["id"], str(doc["version"]), doc["updatedAt"], _short(doc["payload"]))
    out.print(table)
    if page.has_more or offset:
        first = offset + 1
        out.print(
            f"{first}-{offset + len(page.entities)} of {page.total_count} (use --offset for more)",
            markup=False,
        )


@entities_app.command("show")
def entities_show(entity_id: IdArgument, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Show one entity."""

    async def go() -> dict[str, Any]:
        async with make_engine(db) as engine:
            return await engine.entities.get(entity_id)

    doc = call(go)
    if as_json:
        print_json(doc)
        return
    out.print(f"{doc['entityType']} {doc['id']}  version {doc['version']}", markup=False)
    out.print(f"created {doc['createdAt']}  updated {doc['updatedAt']}", markup=False)
    out.print(json.dumps(doc["payload"], indent=2, ensure_ascii=False), markup=False)


@entities_app.command("update")
def entities_update(
    entity_id: IdArgument, data: DataOption, db: DbOption = None, as_json: JsonOption = False
) -> None:
    """Merge fields into an entity's payload (the given top-level keys replace)."""

    async def go() -> dict[str, Any]:
        payload = _parse_data(data)
        async with make_engine(db) as engine:
            return await engine.entities.update(entity_id, payload)

    doc = call(go)
    if as_json:
        print_json(doc)
    else:
        out.print(
            f"updated {doc['entityType']} {doc['id']} (version {doc['version']})", markup=False
        )


@entities_app.command("delete")
def entities_delete(entity_id: IdArgument, db: DbOption = None) -> None:
    """Delete an entity."""

    async def go() -> dict[str, Any]:
        async with make_engine(db) as engine:
            return await engine.entities.delete(entity_id)

    doc = call(go)
    out.print(f"deleted {doc['entityType']} {doc['id']}", markup=False)


# -- helpers ----------------------------------------------------------------------------------


def _parse_json(text: str, option: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{option} is not valid JSON (column {exc.colno}): {exc.msg}") from None


def _parse_data(text: str) -> dict[str, Any]:
    payload = _parse_json(text, "--data")
    if not isinstance(payload, dict):
        raise InputError('--data must be a JSON object, e.g. \'{"Status": "New"}\'')
    return payload


def _read_schema(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read schema file {path}: {exc.strerror}") from None
    try:
        schema = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else path
        raise InputError(f"{where}: the schema is not valid JSON or YAML") from None
    if not isinstance(schema, dict):
        raise InputError(f"{path}: a JSON Schema must be an object, e.g. {{type: object}}")
    return schema


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"
