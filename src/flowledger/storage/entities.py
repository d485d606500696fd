"""Storage of the entity store: abstract verbs, and their SQL on SQLite and PostgreSQL.

The runtime (flowledger.entities.service) validates payloads and builds documents;
this module only stores them. Every entity write and its outbox event commit in one
transaction, and writes compare-and-set on the entity's version, so two concurrent
updates never lose one another.

Queries filter and sort on payload fields in SQL with typed comparisons: a number
only compares with numbers and a string only with strings (SQLite ``json_type``,
PostgreSQL ``jsonb_typeof``), strings sort by code point on both databases, and field
names reach the database only as bound parameters.
"""

from __future__ import annotations

import enum
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Numeric,
    String,
    Text,
    and_,
    bindparam,
    case,
    cast,
    delete,
    false,
    func,
    insert,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError

from flowledger.errors import InvalidInputError
from flowledger.storage.schema_entities import entities, entity_events, entity_types
from flowledger.storage.sqlpart import SQLPart, driver_message, older_than, reads, writes

Row = dict[str, Any]
Scalar = str | int | float | bool | None
Operator = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in"]
#: Entity columns a query may sort by, besides payload fields.
SORT_COLUMNS = {
    "createdAt": entities.c.created_at,
    "updatedAt": entities.c.updated_at,
    "version": entities.c.version,
    "id": entities.c.id,
}


def _as_jsonb(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """``value`` cast to PostgreSQL's JSONB. Imported here: on SQLite no process loads
    SQLAlchemy's PostgreSQL dialect (a twentieth of every command's start)."""
    from sqlalchemy.dialects.postgresql import JSONB

    return cast(value, JSONB)


@dataclass(frozen=True)
class FieldCondition:
    """``payload.<path> <op> value``; ``in`` takes a tuple of scalars."""

    path: tuple[str, ...]
    op: Operator
    value: Scalar | tuple[Scalar, ...]


@dataclass(frozen=True)
class SortKey:
    #: A payload field path, or one name of SORT_COLUMNS when ``column`` is set.
    path: tuple[str, ...]
    descending: bool = False
    column: bool = False


@dataclass(frozen=True)
class EntityQuery:
    entity_type: str
    conditions: tuple[FieldCondition, ...] = ()
    order: tuple[SortKey, ...] = ()
    limit: int = 100
    offset: int = 0
    #: Newest first (no ``order``): keyset pages, ``before`` a page's last (created_at, id).
    newest_first: bool = False
    before: tuple[datetime, str] | None = None


@dataclass(frozen=True)
class EntityWrite:
    """One create, update or delete, with the outbox event that records it."""

    event_type: Literal["created", "updated", "deleted"]
    #: The entities row after the write (for a delete: as it was).
    entity: Row
    #: Update and delete: only if the stored version is still this one.
    expected_version: int | None
    #: JSON text of the entity document after the write, and before an update.
    snapshot: str
    previous: str | None
    depth: int
    execution_id: str | None
    idempotency_key: str | None
    at: datetime


class WriteOutcome(enum.Enum):
    WRITTEN = "written"
    #: The entity changed (or went away) since it was read: read again and retry.
    CONFLICT = "conflict"
    #: A write with this idempotency key was committed before: nothing was written.
    DUPLICATE = "duplicate"


class EntityStore(ABC):
    """What the runtime and the faces need from a database for entities."""

    @abstractmethod
    async def create_entity_type(self, row: Row) -> bool:
        """Insert a type; False when the name is taken (nothing is written)."""

    @abstractmethod
    async def get_entity_type(self, name: str) -> Row | None: ...

    @abstractmethod
    async def list_entity_types(
        self, limit: int | None = None, before: tuple[datetime, str] | None = None
    ) -> list[Row]:
        """Every type by name; with ``limit``, one page newest first (``before``: only
        those after that (created_at, name))."""

    @abstractmethod
    async def get_entity(self, entity_id: str) -> Row | None: ...

    @abstractmethod
    async def write_entity(self, write: EntityWrite) -> WriteOutcome:
        """Apply the write and insert its event in one transaction."""

    @abstractmethod
    async def entity_event_by_key(self, idempotency_key: str) -> Row | None:
        """The event of the write committed under this idempotency key, if any."""

    @abstractmethod
    async def query_entities(self, query: EntityQuery) -> tuple[list[Row], int]:
        """One page of matching entities and the number of all matches."""

    @abstractmethod
    async def pending_entity_events(self, limit: int) -> list[Row]:
        """Events not yet dispatched to triggers, oldest first."""

    @abstractmethod
    async def mark_entity_event_dispatched(self, event_id: int) -> None: ...


class SQLEntityStore(SQLPart, EntityStore):
    """Shared SQL for SQLite and PostgreSQL; SQLStore provides the connection and clock."""

    @writes
    def create_entity_type(self, row: Row) -> bool:
        try:
            with self.conn.begin():
                self.conn.execute(insert(entity_types).values(**row))
        except IntegrityError:
            return False
        return True

    @reads
    def get_entity_type(self, name: str) -> Row | None:
        with self.reading():
            row = self.conn.execute(select(entity_types).where(entity_types.c.name == name)).first()
        return dict(row._mapping) if row else None

    @reads
    def list_entity_types(
        self, limit: int | None = None, before: tuple[datetime, str] | None = None
    ) -> list[Row]:
        t = entity_types
        stmt = select(t).order_by(t.c.name)
        if limit is not None:
            stmt = select(t).order_by(t.c.created_at.desc(), t.c.name.desc()).limit(limit)
            if before is not None:
                stmt = stmt.where(older_than(t.c.created_at, t.c.name, before))
        with self.reading():
            return [dict(r._mapping) for r in self.conn.execute(stmt)]

    @reads
    def get_entity(self, entity_id: str) -> Row | None:
        with self.reading():
            row = self.conn.execute(select(entities).where(entities.c.id == entity_id)).first()
        return dict(row._mapping) if row else None

    @writes
    def write_entity(self, write: EntityWrite) -> WriteOutcome:
        t = entities
        row = write.entity
        try:
            with self.conn.begin():
                if write.event_type == "created":
                    self.conn.execute(insert(t).values(**row))
                else:
                    same = and_(t.c.id == row["id"], t.c.version == write.expected_version)
                    if write.event_type == "updated":
                        changed = self.conn.execute(
                            update(t)
                            .where(same)
                            .values(
                                version=row["version"],
                                payload=row["payload"],
                                updated_at=row["updated_at"],
                            )
                        )
                    else:
                        changed = self.conn.execute(delete(t).where(same))
                    if changed.rowcount != 1:
                        return WriteOutcome.CONFLICT
                self.conn.execute(insert(entity_events).values(**_event_row(write)))
        except IntegrityError:
            # The idempotency key was used by a write that committed first (another run of
            # the same step): ours is rolled back whole, entity change included.
            key = write.idempotency_key
            if key is not None and self._event_by_key(key) is not None:
                return WriteOutcome.DUPLICATE
            raise
        return WriteOutcome.WRITTEN

    @reads
    def entity_event_by_key(self, idempotency_key: str) -> Row | None:
        return self._event_by_key(idempotency_key)

    def _event_by_key(self, idempotency_key: str) -> Row | None:
        e = entity_events
        with self.reading():
            row = self.conn.execute(select(e).where(e.c.idempotency_key == idempotency_key)).first()
        return dict(row._mapping) if row else None

    @reads
    def query_entities(self, query: EntityQuery) -> tuple[list[Row], int]:
        t = entities
        where = and_(t.c.entity_type == query.entity_type, *map(self._condition, query.conditions))
        order: list[ColumnElement[Any]] = []
        for key in query.order:
            order.extend(self._sort(key))
        if query.newest_first:
            order += [t.c.created_at.desc(), t.c.id.desc()]
        else:
            order += [t.c.created_at, t.c.id]
        page = select(t).where(where).order_by(*order).limit(query.limit).offset(query.offset)
        if query.before is not None:
            page = page.where(older_than(t.c.created_at, t.c.id, query.before))
        try:
            with self.reading():
                rows = [dict(r._mapping) for r in self.conn.execute(page)]
                count = select(func.count()).select_from(t).where(where)
                total = self.conn.execute(count).scalar()
        except DBAPIError as exc:
            if not _over_a_limit(exc):
                raise
            # The query's own size, not the database's condition: the caller can mend it.
            raise InvalidInputError(
                f"the database refused this query as too large ({driver_message(exc)}): "
                "use fewer filter conditions or order_by fields"
            ) from exc
        return rows, int(total or 0)

    @reads
    def pending_entity_events(self, limit: int) -> list[Row]:
        e = entity_events
        query = select(e).where(e.c.dispatched_at.is_(None)).order_by(e.c.id).limit(limit)
        with self.reading():
            return [dict(r._mapping) for r in self.conn.execute(query)]

    @writes
    def mark_entity_event_dispatched(self, event_id: int) -> None:
        e = entity_events
        with self.conn.begin():
            self.conn.execute(
                update(e)
                .where(and_(e.c.id == event_id, e.c.dispatched_at.is_(None)))
                .values(dispatched_at=self._sql_now())
            )

    # -- payload fields in SQL ----------------------------------------------------------------

    @property
    def _postgres(self) -> bool:
        return self.conn.dialect.name == "postgresql"

    def _field(self, path: Sequence[str]) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
        """(JSON type name, the value) of a payload field, as the dialect sees them."""
        if self._postgres:
            doc = _as_jsonb(entities.c.payload)
            segments = [bindparam(None, s, type_=Text) for s in path]
            return (
                func.jsonb_typeof(func.jsonb_extract_path(doc, *segments)),
                func.jsonb_extract_path(doc, *segments),
            )
        # Quoted labels: a segment may hold characters a bare JSON path label may not.
        json_path = bindparam(None, "$" + "".join(f'."{s}"' for s in path), type_=String)
        return (
            func.json_type(entities.c.payload, json_path),
            func.json_extract(entities.c.payload, json_path),
        )

    def _text(self, path: Sequence[str]) -> ColumnElement[Any]:
        """The field as text (PostgreSQL), compared by code point like SQLite does."""
        doc = _as_jsonb(entities.c.payload)
        segments = [bindparam(None, s, type_=Text) for s in path]
        return func.jsonb_extract_path_text(doc, *segments).collate("C")

    def _kinds(self, value: Scalar) -> tuple[str, ...]:
        """The dialect's JSON type names that ``value`` can equal or compare with."""
        if isinstance(value, bool):
            if self._postgres:
                return ("boolean",)
            return ("true",) if value else ("false",)
        if isinstance(value, int | float):
            return ("number",) if self._postgres else ("integer", "real")
        return ("string",) if self._postgres else ("text",)

    def _condition(self, cond: FieldCondition) -> ColumnElement[bool]:
        if cond.op == "in":
            assert isinstance(cond.value, tuple)
            return self._member(cond.path, cond.value)
        assert not isinstance(cond.value, tuple)
        if cond.op == "ne":
            # Not equal, missing included: the negation of a comparison that is never NULL.
            return not_(func.coalesce(self._compare(cond.path, "eq", cond.value), false()))
        return self._compare(cond.path, cond.op, cond.value)

    def _member(self, path: Sequence[str], values: tuple[Scalar, ...]) -> ColumnElement[bool]:
        """``in``: equal to one of ``values``, as ``eq`` compares, in SQL of one size
        whatever their number: the values go as one JSON array that the database walks
        (an OR of one ``eq`` each was a tree too deep for SQLite past about 990 values,
        and took seconds to compile and plan: 4.4 s for 900)."""
        if not values:
            return false()
        options: list[ColumnElement[bool]] = []
        if None in values:  # JSON null or no such field
            options.append(self._compare(path, "eq", None))
        kind, field = self._field(path)
        flags = sorted({v for v in values if isinstance(v, bool)})
        others = [v for v in values if v is not None and not isinstance(v, bool)]
        if self._postgres:
            # jsonb equality is as typed as ``eq``: numbers by value (5 = 5.0), strings
            # exactly, booleans; a number never equals a string or a boolean.
            listed = _json_array([*flags, *others])
            if listed is not None:
                array = _as_jsonb(bindparam(None, listed, type_=Text))
                options.append(field.in_(select(func.jsonb_array_elements(array))))
            return or_(*options)
        # SQLite reads true and false as 1 and 0: booleans are told by their type name.
        if flags:
            options.append(kind.in_([k for flag in flags for k in self._kinds(flag)]))
        listed = _json_array(others)
        if listed is not None:
            # json_each gives numbers as numbers and strings as text, compared without
            # conversion, so 7 never equals "7"; the kind guard keeps booleans out.
            kinds = sorted({k for value in others for k in self._kinds(value)})
            walked = func.json_each(bindparam(None, listed, type_=String)).table_valued("value")
            options.append(and_(kind.in_(kinds), field.in_(select(walked.c.value))))
        return or_(*options)

    def _compare(self, path: Sequence[str], op: str, value: Scalar) -> ColumnElement[bool]:
        kind, field = self._field(path)
        if value is None:  # JSON null or no such field
            return or_(field.is_(None), kind == "null") if self._postgres else field.is_(None)
        typed = kind.in_(self._kinds(value))
        if isinstance(value, bool):
            # The type name carries the value on SQLite ('true'/'false').
            if self._postgres:
                literal = _as_jsonb(bindparam(None, json.dumps(value), type_=Text))
                return and_(typed, field == literal)
            return typed
        operand: ColumnElement[Any]
        if isinstance(value, str):
            left = self._text(path) if self._postgres else field
            operand = bindparam(None, value, type_=String)
        else:
            left = field
            operand = (
                _as_jsonb(bindparam(None, json.dumps(value), type_=Text))
                if self._postgres
                else bindparam(None, value)
            )
        compared: ColumnElement[bool] = {
            "eq": left == operand,
            "gt": left > operand,
            "gte": left >= operand,
            "lt": left < operand,
            "lte": left <= operand,
        }[op]
        return and_(typed, compared)

    def _sort(self, key: SortKey) -> list[ColumnElement[Any]]:
        """Numbers, then strings, then booleans, then null and missing (in either direction);
        within a kind, by value in the direction asked for."""
        if key.column:
            column = SORT_COLUMNS[key.path[0]]
            return [column.desc() if key.descending else column.asc()]
        kind, field = self._field(key.path)
        number_kinds: tuple[str, ...]
        text_kinds: tuple[str, ...]
        if self._postgres:
            number_kinds, text_kinds = ("number",), ("string", "boolean")
            number: ColumnElement[Any] = cast(
                func.jsonb_extract_path_text(
                    _as_jsonb(entities.c.payload),
                    *[bindparam(None, s, type_=Text) for s in key.path],
                ),
                Numeric,
            )
            text: ColumnElement[Any] = self._text(key.path)
        else:
            number_kinds, text_kinds = ("integer", "real"), ("text", "true", "false")
            number = field
            text = case((kind == "text", field), else_=kind)
        rank = case(
            (kind.in_(number_kinds), 0),
            (kind.in_(("string", "text")), 1),
            (kind.in_(("boolean", "true", "false")), 2),
            else_=3,
        )
        by_number = case((kind.in_(number_kinds), number))
        by_text = case((kind.in_(text_kinds), text))
        if key.descending:
            return [rank, by_number.desc(), by_text.desc()]
        return [rank, by_number, by_text]


#: SQLite's words for a statement over one of its compiled-in limits (depth of an
#: expression, bound values, ORDER BY terms, function arguments, text length).
_SQLITE_LIMITS = (
    "Expression tree is too large",
    "too many SQL variables",
    "too many terms",
    "too many arguments",
    "too many columns",
    "parser stack overflow",
    "string or blob too big",
)


def _over_a_limit(exc: DBAPIError) -> bool:
    """Whether the database refused a statement for its size: SQLite's words, or
    PostgreSQL's SQLSTATE class 54 (program limit exceeded: statement too complex, too
    many arguments or columns)."""
    state = getattr(exc.orig, "sqlstate", None)
    if state is not None:
        return str(state).startswith("54")
    message = driver_message(exc)
    return any(words in message for words in _SQLITE_LIMITS)


def _json_array(values: Sequence[Scalar]) -> str | None:
    """``values`` as JSON text, None when there are none."""
    return json.dumps(list(values), allow_nan=False) if values else None


def _event_row(write: EntityWrite) -> Row:
    return {
        "entity_id": write.entity["id"],
        "entity_type": write.entity["entity_type"],
        "event_type": write.event_type,
        "entity": write.snapshot,
        "previous": write.previous,
        "depth": write.depth,
        "execution_id": write.execution_id,
        "idempotency_key": write.idempotency_key,
        "created_at": write.at,
        "dispatched_at": None,
    }
