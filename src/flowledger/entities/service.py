"""The entity store service: types, entities, and the outbox of entity events.

After ``await engine.open()``, ``engine.entities`` is an :class:`EntityService`::

    await engine.entities.create_type("Lead", {"type": "object", "required": ["Email"]})
    lead = await engine.entities.create("Lead", {"Email": "ada@example.com", "Score": 3})
    page = await engine.entities.list("Lead", {"Score": {"gte": 2}}, order_by="-Score")

Rules:
- A type's schema is a JSON Schema (Draft 2020-12, formats checked); payloads are JSON
  objects validated on every write. A violation is an InputError naming the field
  (``payload.Email: 123 is not of type 'string'``).
- An update merges: the given top-level keys replace the stored ones, the others stay
  (a shallow merge; give a whole nested object to change part of it). The merged
  payload is validated again. Concurrent updates of one entity all apply, one after the
  other (each merged into what the one before wrote; see ``_Race``); one that other
  writers keep beating for ``WRITE_DEADLINE`` seconds is a ConflictError (try again).
  Every write that changes the payload adds 1 to the version
  and records an event; an update that changes nothing (``{}``, or the values stored)
  writes nothing and returns the entity as it is.
- Every write records an entity event in the same transaction (the outbox that entity
  triggers are dispatched from, see entity_dispatch.py). Writes from the CLI, the API or
  Python have depth 0; writes from a step carry its execution's depth.
- Filters (``list`` here, ``sys.query_entity`` in workflows) match payload fields:
  ``{Status: New}`` is equality, ``{Score: {gte: 10, lt: 20}}`` applies operators (all
  must hold), with eq, ne, gt, gte, lt, lte and in (a list). A dotted name
  (``Address.City``) reads a nested field. Values are strings, numbers, booleans or null;
  numbers compare only with numbers and strings only with strings (by code point), so
  ``{Score: {gt: 5}}`` never matches ``Score: "7"``. ``null`` matches a null or missing
  field; ``ne`` also matches entities without the field.
- ``order_by`` is a field name or a list of them, ``-Field`` for descending;
  ``createdAt``, ``updatedAt``, ``version`` and ``id`` sort by the entity's own fields.
  Within a field, numbers sort before strings, then booleans, then null and missing.
  Ties (and no order_by) sort by creation time: ``list`` newest first, as the CLI and
  the API list (the application layer's order), ``sys.query_entity`` oldest first, so a
  loop paging by offset keeps its place while entities arrive. ``limit`` is 0..1000
  (default 100).
- A filter holds up to 100 conditions, an ``in`` up to 1,000 values; an order up to 32
  fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import re
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flowledger.errors import (
    ConflictError,
    InputError,
    InvalidInputError,
    NotFoundError,
    StorageError,
    format_path,
)
from flowledger.jsonvalues import check_json_value, encodable_text, quoted, spelled
from flowledger.schema_check import (
    MAX_PROBLEMS,
    check_against_schema,
    new_schema_problems,
    schema_problems_of,
    validator_for,
)
from flowledger.steps.entity_access import EntityAccess, EntityChange, EntityPage
from flowledger.storage import Row, Store
from flowledger.storage.entities import (
    SORT_COLUMNS,
    EntityQuery,
    EntityWrite,
    FieldCondition,
    Operator,
    Scalar,
    SortKey,
    WriteOutcome,
)
from flowledger.timeutil import Clock, iso

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_IN_VALUES = 1000
#: Conditions in one filter, and fields in one order: each becomes SQL of its own (some
#: 2 ms to compile; past about 500 conditions SQLite refuses the statement as too deep).
MAX_CONDITIONS = 100
MAX_ORDER_FIELDS = 32
#: How long an update or delete goes on re-reading an entity that keeps changing under
#: it (other writers won the race) before it gives up with a ConflictError.
WRITE_DEADLINE = 5.0
#: The first wait between two tries, and the longest: doubled each time, with full
#: jitter, so writers that collided spread out instead of colliding again.
FIRST_BACKOFF = 0.002
MAX_BACKOFF = 0.1
OPERATORS: tuple[Operator, ...] = ("eq", "ne", "gt", "gte", "lt", "lte", "in")
_TYPE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,127}$")
_MAX_SEGMENTS = 8


@dataclass(frozen=True)
class Origin:
    """Who writes: an execution (its id and depth), or the outside world (None, 0)."""

    execution_id: str | None = None
    depth: int = 0


EXTERNAL = Origin()


class EntityService:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        # Type name → (schema text, its validator): schemas rarely change, compiling is slow.
        self._validators: dict[str, tuple[str, Validator]] = {}
        # Entity id → the lock its writers in this engine queue on (see _turn).
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def bind(self, execution_id: str, depth: int) -> EntityAccess:
        """The entity store as the steps of one execution see it."""
        return BoundEntities(self, Origin(execution_id, depth))

    # -- types --------------------------------------------------------------------------------

    async def create_type(
        self, name: str, schema: Mapping[str, Any] | None = None
    ) -> tuple[dict[str, Any], bool]:
        """Create a type; returns its document and whether it is new.

        Creating it again with the same schema changes nothing; with another schema it is
        a ConflictError (types are not changed in place).
        """
        check_type_name(name)
        schema = dict(schema) if schema is not None else {"type": "object"}
        check_json_value(schema, "schema")
        # jsonschema and RE2 are imported when used
        found = [
            (("schema", *path), message)
            for path, message in [*schema_problems_of(schema), *new_schema_problems(schema)]
        ][:MAX_PROBLEMS]
        if found:
            lines = "; ".join(f"{format_path(path)}: {message}" for path, message in found)
            raise InvalidInputError(
                f"the schema of entity type {name!r} is not a valid JSON Schema: {lines}",
                problems=found,
            )
        text = _dumps(schema, "schema")
        now = self.clock.now()
        row = {"name": name, "json_schema": text, "created_at": now, "updated_at": now}
        if await self.store.create_entity_type(row):
            return type_document(row), True
        existing = await self._type_row(name)
        if json.loads(existing["json_schema"]) != schema:
            raise ConflictError(f"entity type {name!r} already exists with a different schema")
        return type_document(existing), False

    async def get_type(self, name: str) -> dict[str, Any]:
        return type_document(await self._type_row(name))

    async def list_types(self) -> list[dict[str, Any]]:
        return [type_document(r) for r in await self.store.list_entity_types()]

    # -- reads --------------------------------------------------------------------------------

    async def get(self, entity_id: str) -> dict[str, Any]:
        return entity_document(await self._entity_row(entity_id))

    async def list(
        self,
        entity_type: str,
        filter: Mapping[str, Any] | None = None,
        order_by: str | Sequence[str] | None = None,
        limit: int = DEFAULT_LIMIT,
        offset: int = 0,
        *,
        newest_first: bool = True,
        before: tuple[datetime, str] | None = None,
    ) -> EntityPage:
        """One page of the entities of a type that match ``filter`` (see the module doc),
        after ``order_by`` by creation: newest first, as the CLI and the API list them
        (this list was oldest first, unlike them), oldest first with
        ``newest_first=False`` (``sys.query_entity``). ``before`` (a keyset position,
        created_at and id) starts after that entity. ``has_more`` says whether entities
        follow this page (newest first: not counting from 0)."""
        limit = _bounded("limit", limit, 0, MAX_LIMIT)
        query = EntityQuery(
            entity_type=entity_type,
            conditions=parse_filter(filter or {}),
            order=parse_order(order_by),
            limit=limit + 1 if newest_first else limit,  # one more: does another follow
            offset=_bounded("offset", offset, 0, MAX_INTEGER),
            newest_first=newest_first,
            before=before,
        )
        type_row = await self._type_row(entity_type)
        _check_filter_kinds(entity_type, query.conditions, json.loads(type_row["json_schema"]))
        rows, total = await self.store.query_entities(query)
        more = query.offset + len(rows) < total
        if newest_first:
            rows, more = rows[:limit], len(rows) > limit
        docs = [entity_document(r) for r in rows]
        positions = [(r["created_at"], str(r["id"])) for r in rows]
        return EntityPage(docs, total, more, positions)

    # -- writes, as documents (the Python API, the CLI) ---------------------------------------

    async def create(self, entity_type: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        return (await self.create_entity(entity_type, payload)).entity

    async def update(self, entity_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        return (await self.update_entity(entity_id, payload)).entity

    async def delete(self, entity_id: str) -> dict[str, Any]:
        """Delete an entity; returns it as it was."""
        return (await self.delete_entity(entity_id)).entity

    # -- writes, as changes (steps) -----------------------------------------------------------

    async def create_entity(
        self,
        entity_type: str,
        payload: Mapping[str, Any],
        *,
        origin: Origin = EXTERNAL,
        idempotency_key: str | None = None,
    ) -> EntityChange:
        replayed = await self._replay(idempotency_key)
        if replayed is not None:
            return replayed
        data = _object(payload)
        await self._validate(entity_type, data)
        now = self.clock.now()
        row: Row = {
            "id": str(uuid.uuid4()),
            "entity_type": entity_type,
            "version": 1,
            "payload": _dumps(data, "payload"),
            "created_at": now,
            "updated_at": now,
        }
        change = EntityChange("created", entity_document(row))
        return await self._write(change, row, None, origin, idempotency_key)

    async def update_entity(
        self,
        entity_id: str,
        payload: Mapping[str, Any],
        *,
        origin: Origin = EXTERNAL,
        idempotency_key: str | None = None,
    ) -> EntityChange:
        replayed = await self._replay(idempotency_key)
        if replayed is not None:
            return replayed
        patch = _object(payload)
        async with self._turn(entity_id) as race:
            while True:
                row = await self._entity_row(entity_id)
                before = entity_document(row)
                merged = {**before["payload"], **patch}
                if _same_json(merged, before["payload"]):
                    # Nothing changes: no new version, no entity event (triggers fire on
                    # changes; a workflow writing back what it read does not start itself).
                    return EntityChange("updated", before, before)
                await self._validate(row["entity_type"], merged)
                new = {
                    **row,
                    "version": row["version"] + 1,
                    "payload": _dumps(merged, "payload"),
                    "updated_at": self.clock.now(),
                }
                change = EntityChange("updated", entity_document(new), before)
                done = await self._attempt(change, new, row["version"], origin, idempotency_key)
                if done is not None:
                    return done
                await race.lost()

    async def delete_entity(
        self,
        entity_id: str,
        *,
        origin: Origin = EXTERNAL,
        idempotency_key: str | None = None,
    ) -> EntityChange:
        replayed = await self._replay(idempotency_key)
        if replayed is not None:
            return replayed
        async with self._turn(entity_id) as race:
            while True:
                row = await self._entity_row(entity_id)
                change = EntityChange("deleted", entity_document(row))
                done = await self._attempt(change, row, row["version"], origin, idempotency_key)
                if done is not None:
                    return done
                await race.lost()

    # -- internals ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _turn(self, entity_id: str) -> AsyncIterator[_Race]:
        """The tries of an update or delete of one entity. Writers in this engine take
        their turn on the entity's lock (they would only collide); writers elsewhere
        (other processes) are raced, see :class:`_Race`."""
        lock = self._locks.get(entity_id)
        if lock is None:
            lock = self._locks[entity_id] = asyncio.Lock()
        async with lock:  # the dictionary holds it weakly: gone once nobody waits
            yield _Race(entity_id)

    async def _write(
        self, change: EntityChange, row: Row, expected: int | None, origin: Origin, key: str | None
    ) -> EntityChange:
        done = await self._attempt(change, row, expected, origin, key)
        if done is None:  # pragma: no cover - a fresh uuid cannot conflict
            raise StorageError(f"entity {row['id']} could not be written; try again")
        return done

    async def _attempt(
        self, change: EntityChange, row: Row, expected: int | None, origin: Origin, key: str | None
    ) -> EntityChange | None:
        """Write once: the change, the recorded one (idempotent replay), or None on a conflict."""
        write = EntityWrite(
            event_type=change.event_type,
            entity=row,
            expected_version=expected,
            snapshot=_dumps(change.entity, "entity"),
            previous=_dumps(change.previous, "entity") if change.previous is not None else None,
            depth=origin.depth,
            execution_id=origin.execution_id,
            idempotency_key=key,
            at=self.clock.now(),
        )
        outcome = await self.store.write_entity(write)
        if outcome is WriteOutcome.WRITTEN:
            return change
        if outcome is WriteOutcome.DUPLICATE:
            return await self._replay(key)
        return None

    async def _replay(self, key: str | None) -> EntityChange | None:
        if key is None:
            return None
        event = await self.store.entity_event_by_key(key)
        return change_of(event) if event is not None else None

    async def _type_row(self, name: str) -> Row:
        # A name UTF-8 cannot hold (a lone surrogate) names no type, and the driver
        # refused it with a raw UnicodeEncodeError.
        row = await self.store.get_entity_type(name) if encodable_text(name) else None
        if row is None:
            raise NotFoundError(
                f"entity type {quoted(name)} does not exist; create it first "
                f"(flowledger entities types create {spelled(name)})"
            )
        return row

    async def _entity_row(self, entity_id: str) -> Row:
        row = await self.store.get_entity(entity_id) if encodable_text(entity_id) else None
        if row is None:
            raise NotFoundError(f"entity {spelled(entity_id)} does not exist")
        return row

    async def _validate(self, entity_type: str, payload: dict[str, Any]) -> None:
        row = await self._type_row(entity_type)
        cached = self._validators.get(entity_type)
        if cached is None or cached[0] != row["json_schema"]:
            validator = validator_for(json.loads(row["json_schema"]), formats=True)
            cached = (row["json_schema"], validator)
            self._validators[entity_type] = cached
        check_against_schema(
            cached[1],
            payload,
            "payload",
            f"the payload does not match the schema of entity type {entity_type!r}",
        )


class _Race:
    """The tries of one compare-and-set write that writers elsewhere may win: after a
    lost race the next try waits a random time under a bound that doubles (full jitter,
    so writers that collided spread out instead of colliding again). Past WRITE_DEADLINE
    it is a ConflictError (409, try again), not a StorageError: the database is fine.

    Decision: no row lock (``SELECT … FOR UPDATE``): it would hold a transaction open
    while the merged payload is validated, and SQLite has no such lock; 20 immediate
    tries without a wait left 6-8 of 40 concurrent PATCHes refused."""

    def __init__(self, entity_id: str) -> None:
        self.entity_id = entity_id
        self.deadline = time.monotonic() + WRITE_DEADLINE
        self.backoff = FIRST_BACKOFF
        self.tries = 1

    async def lost(self) -> None:
        """Wait before the next try, or ConflictError when it is too late for one."""
        if time.monotonic() >= self.deadline:
            raise ConflictError(
                f"entity {self.entity_id} kept changing while this write read it "
                f"({self.tries} {'try' if self.tries == 1 else 'tries'} in {WRITE_DEADLINE:g} s); "
                "try again"
            )
        await asyncio.sleep(random.uniform(0, self.backoff))  # noqa: S311 - spreading
        self.backoff = min(self.backoff * 2, MAX_BACKOFF)
        self.tries += 1


class BoundEntities:
    """:class:`EntityAccess` for one execution: its writes carry its id and depth."""

    def __init__(self, service: EntityService, origin: Origin) -> None:
        self.service = service
        self.origin = origin

    async def create(
        self, entity_type: str, payload: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> EntityChange:
        return await self.service.create_entity(
            entity_type, payload, origin=self.origin, idempotency_key=idempotency_key
        )

    async def update(
        self, entity_id: str, payload: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> EntityChange:
        return await self.service.update_entity(
            entity_id, payload, origin=self.origin, idempotency_key=idempotency_key
        )

    async def delete(self, entity_id: str, *, idempotency_key: str | None = None) -> EntityChange:
        return await self.service.delete_entity(
            entity_id, origin=self.origin, idempotency_key=idempotency_key
        )

    async def get(self, entity_id: str) -> dict[str, Any]:
        return await self.service.get(entity_id)

    async def query(
        self,
        entity_type: str,
        filter: Mapping[str, Any] | None = None,
        order_by: str | Sequence[str] | None = None,
        limit: int = DEFAULT_LIMIT,
        offset: int = 0,
    ) -> EntityPage:
        # Oldest first: a workflow's loop paging by offset keeps its place (README).
        return await self.service.list(
            entity_type, filter, order_by, limit, offset, newest_first=False
        )


# -- documents --------------------------------------------------------------------------------


def entity_document(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "entityType": row["entity_type"],
        "version": row["version"],
        "payload": json.loads(row["payload"]),
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
    }


def type_document(row: Row) -> dict[str, Any]:
    return {
        "name": row["name"],
        "schema": json.loads(row["json_schema"]),
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
    }


def change_of(event: Row) -> EntityChange:
    previous = event["previous"]
    return EntityChange(
        event["event_type"],
        json.loads(event["entity"]),
        json.loads(previous) if previous is not None else None,
    )


# -- checking what people give ----------------------------------------------------------------


def check_type_name(name: str) -> None:
    if not _TYPE_NAME.match(name):
        raise InvalidInputError(
            f"entity type name {name!r} is not valid: use up to 128 letters, digits, '_', "
            "'-' or '.', starting with a letter",
            ("name",),
        )


# Refusals below are InvalidInputErrors whose field path names the filter's (or the
# order's) own field, ``filter.Score.gt``: the API's ``details.field_path`` says it.


def parse_filter(filter: Mapping[str, Any]) -> tuple[FieldCondition, ...]:
    """``{Status: New, Score: {gte: 10}}`` → conditions that must all hold."""
    if not isinstance(filter, Mapping):
        raise InvalidInputError("must be an object of field names and values", ("filter",))
    conditions: list[FieldCondition] = []
    for name, spec in filter.items():
        path = _field_path(name, "filter")
        where: tuple[str, ...] = ("filter", name)
        if not isinstance(spec, Mapping):
            conditions.append(FieldCondition(path, "eq", _scalar(spec, where, "eq")))
            continue
        if not spec:
            raise InvalidInputError("give a value, or operators like {gte: 10}", where)
        for op, value in spec.items():
            if op not in OPERATORS:
                raise InvalidInputError(
                    f"unknown operator {op!r}; use one of {', '.join(OPERATORS)}", where
                )
            conditions.append(FieldCondition(path, op, _operand(op, value, (*where, op))))
    if len(conditions) > MAX_CONDITIONS:
        raise InvalidInputError(
            f"a filter holds up to {MAX_CONDITIONS} conditions (a field's value, or each of "
            f"its operators), not {len(conditions)}",
            ("filter",),
        )
    return tuple(conditions)


def _check_filter_kinds(
    entity_type: str, conditions: Sequence[FieldCondition], schema: Mapping[str, Any]
) -> None:
    """Refuse a condition whose value is text where the type's schema makes the field a
    number, or a number where it makes it text: stored payloads all follow the schema, so
    such a filter matches nothing, and ``{"Score": "4"}`` (a number come through a form as
    text) found no entity without a word."""
    for condition in conditions:
        kinds = _schema_kinds(schema, condition.path)
        if kinds and kinds <= {"number", "integer"}:
            wanted = "a number"
        elif kinds == {"string"}:
            wanted = "text"
        else:
            continue  # the schema says nothing certain: any value may match
        values = condition.value if isinstance(condition.value, tuple) else (condition.value,)
        for value in values:
            given = "text" if isinstance(value, str) else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                given = "a number"
            if given is None or given == wanted:
                continue
            field = ".".join(condition.path)
            raise InvalidInputError(
                f"{entity_type}'s schema makes {field} {wanted}: compare it with {wanted}, "
                f"not {value!r}",
                ("filter", *condition.path),
            )


def _schema_kinds(schema: Mapping[str, Any], path: Sequence[str]) -> set[str]:
    """The JSON types the schema gives the payload field at ``path`` (plain ``properties``
    and ``type`` only; empty when it says nothing certain, as with ``anyOf`` or ``$ref``)."""
    node: Any = schema
    for name in path:
        properties = node.get("properties") if isinstance(node, Mapping) else None
        if not isinstance(properties, Mapping) or not isinstance(properties.get(name), Mapping):
            return set()
        node = properties[name]
    kind = node.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list) and all(isinstance(k, str) for k in kind):
        return set(kind) - {"null"} if "null" in kind else set(kind)
    return set()


def parse_order(order_by: str | Sequence[str] | None) -> tuple[SortKey, ...]:
    if order_by is None:
        return ()
    names = [order_by] if isinstance(order_by, str) else list(order_by)
    if len(names) > MAX_ORDER_FIELDS:
        raise InvalidInputError(
            f"order by up to {MAX_ORDER_FIELDS} fields, not {len(names)}", ("order_by",)
        )
    keys = []
    for name in names:
        if not isinstance(name, str):
            raise InvalidInputError(f"{name!r} is not a field name", ("order_by",))
        descending = name.startswith("-")
        field = name[1:] if descending else name
        if field in SORT_COLUMNS:
            keys.append(SortKey((field,), descending, column=True))
        else:
            keys.append(SortKey(_field_path(field, "order_by"), descending))
    return tuple(keys)


def _field_path(name: object, where: str) -> tuple[str, ...]:
    segments = name.split(".") if isinstance(name, str) else []
    if not segments or len(segments) > _MAX_SEGMENTS or not all(map(_SEGMENT.match, segments)):
        raise InvalidInputError(
            f"{name!r} is not a payload field name (letters, digits, '_' and '-', "
            "with '.' between nested names)",
            (where,),
        )
    return tuple(segments)


def _operand(op: str, value: Any, where: tuple[str, ...]) -> Scalar | tuple[Scalar, ...]:
    if op == "in":
        if not isinstance(value, list | tuple) or len(value) > MAX_IN_VALUES:
            raise InvalidInputError(f"'in' needs a list of up to {MAX_IN_VALUES} values", where)
        return tuple(_scalar(v, where, op) for v in value)
    scalar = _scalar(value, where, op)
    if op in ("gt", "gte", "lt", "lte") and (scalar is None or isinstance(scalar, bool)):
        raise InvalidInputError(f"{op!r} compares numbers or strings, not {_kind(scalar)}", where)
    return scalar


#: The largest integer the databases compare (a signed 64-bit integer).
MAX_INTEGER = 2**63 - 1


def _scalar(value: Any, where: tuple[str, ...], op: str) -> Scalar:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INTEGER:
        raise InvalidInputError(f"integers here are at most {MAX_INTEGER:,} (64 bits)", where)
    if isinstance(value, float) and not math.isfinite(value):  # JSON has no such number
        raise InvalidInputError(f"numbers here are finite, not {value!r}", where)
    if isinstance(value, str) and not encodable_text(value):  # no stored text holds one
        raise InvalidInputError(
            f"{quoted(value)} holds a lone surrogate; send valid Unicode", where
        )
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise InvalidInputError(
        f"{op!r} needs a string, number, boolean or null, not {_kind(value)}", where
    )


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def _bounded(name: str, value: Any, low: int, high: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidInputError(f"must be a whole number of at least {low}, not {value!r}", (name,))
    if high is not None and value > high:
        raise InvalidInputError(f"must be at most {high}, not {value}", (name,))
    return value


def _object(payload: Any) -> dict[str, Any]:
    """A payload as written: a JSON object that UTF-8 and JSON can hold, else
    InvalidInputError naming the field (``payload.name``). A lone surrogate reached the
    database driver and came out as a raw UnicodeEncodeError (tour 23)."""
    if not isinstance(payload, Mapping):
        raise InputError(f"payload must be a JSON object, not {_kind(payload)}")
    data = dict(payload)
    check_json_value(data, "payload")
    return data


def _dumps(value: Any, what: str) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} is not plain JSON: {exc}") from None


def _same_json(a: Any, b: Any) -> bool:
    """Equal as JSON: ``1``, ``1.0`` and ``true`` differ there, not in Python's ``==``."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
