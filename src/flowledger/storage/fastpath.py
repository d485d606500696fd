"""The commit hot path: SQL text prepared once per dialect, executed as executemany.

Building SQLAlchemy Core statements per round costs more than the SQLite commit
itself (cache keys, compilation); a round's writes have a fixed shape, so their
SQL is rendered once from the table definitions, and values pass through the
columns' own SQLAlchemy type processors so the stored form is identical.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import Connection, Dialect, Table
from sqlalchemy.types import TypeEngine

from flowledger.storage.schema import UTCDateTime

Processor = Callable[[Any], Any] | None


class PreparedWrite:
    """One INSERT or UPDATE of fixed columns, ready for ``exec_driver_sql``."""

    def __init__(self, sql: str, columns: Sequence[str], processors: Sequence[Processor]) -> None:
        self.sql = sql
        self.columns = tuple(columns)
        # Only some columns (timestamps) need converting; skip the rest cheaply.
        self._converted = tuple((i, p) for i, p in enumerate(processors) if p is not None)
        # The row's values in column order, picked in C (a tuple even for one column).
        self._pick: Callable[[dict[str, Any]], tuple[Any, ...]] = (
            itemgetter(*self.columns) if len(self.columns) > 1 else _one(self.columns[0])
        )

    def params(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return self.convert(self._pick(row))

    def convert(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        """The row's values in column order, as the driver takes them."""
        converted = self._converted
        if not converted:
            return values  # the driver API wants tuples
        listed = list(values)
        for i, proc in converted:
            if listed[i] is not None:
                listed[i] = proc(listed[i])
        return tuple(listed)


def _one(name: str) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    return lambda row: (row[name],)


def placeholder(dialect: Dialect) -> str:
    return "?" if dialect.paramstyle == "qmark" else "%s"


def _processors(table: Table, columns: Sequence[str], dialect: Dialect) -> list[Processor]:
    # table.c[name] raises for an unknown column: only schema names ever reach the SQL text.
    return [_processor(table.c[name].type, dialect) for name in columns]


def _processor(column_type: TypeEngine[Any], dialect: Dialect) -> Processor:
    if isinstance(column_type, UTCDateTime) and dialect.name == "sqlite":
        return sqlite_utc_text
    return column_type.bind_processor(dialect)


def timestamp_processor(dialect: Dialect) -> Callable[[datetime], Any]:
    """What a timestamp column's value is turned into for the driver (the stored form)."""
    proc = _processor(UTCDateTime(), dialect)
    return proc if proc is not None else (lambda value: value)


def sqlite_utc_text(value: datetime) -> str:
    """The text a timestamp column stores on SQLite, made in one step: what UTCDateTime's
    processor hands the sqlite3 driver (naive UTC) and the driver's datetime adapter
    writes (``isoformat(" ")``: no fraction when the microseconds are 0). A round writes
    about six timestamps per step; the two layers cost several calls each.
    tests/storage pin that both store the same text.
    """
    global _second
    # The clock's own timestamps (UTC), most of them converted before.
    seen = _recent.get(id(value))
    if seen is not None and seen[0] is value:
        return seen[1]
    if value.tzinfo is not UTC:
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
    # isoformat formats each field with C's sprintf (~6k instructions); within one second
    # only the microseconds differ, so the rest of the text is kept for the second.
    start, end, prefix = _second
    if not start <= value < end:
        start = value.replace(microsecond=0)
        prefix = start.isoformat(" ")[:-6]
        _second = (start, start + _ONE_SECOND, prefix)
    micro = value.microsecond
    # Three digits at a time from a table: a format spec (``:06d``) costs ~1.3k more.
    text = f"{prefix}.{_DIGITS[micro // 1000]}{_DIGITS[micro % 1000]}" if micro else prefix
    if len(_recent) >= _RECENT:
        _recent.clear()
    _recent[id(value)] = (value, text)
    return text


#: UTC timestamps converted lately: a round writes the same few instants several times (a
#: step's start in its row and its event; the previous start again in its update), and
#: always as the same object. Keyed by identity (hashing an aware datetime costs more than
#: a third of formatting it); each entry keeps its object alive, so an id is never reused
#: while it is a key. The dict's own operations are atomic, so the writer thread and the
#: loop may share it.
_recent: dict[int, tuple[datetime, str]] = {}
_RECENT = 64
_ONE_SECOND = timedelta(seconds=1)
#: The second the last new instant fell in, [start, end), and its text without the fraction
#: (replaced whole, so a reader on another thread sees one consistent triple).
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_second: tuple[datetime, datetime, str] = (_EPOCH, _EPOCH, "")
#: "000" to "999": a fraction's digits, three at a time.
_DIGITS = tuple(f"{n:03d}" for n in range(1000))


def prepare_insert(table: Table, columns: Sequence[str], dialect: Dialect) -> PreparedWrite:
    quote = dialect.identifier_preparer.quote
    mark = placeholder(dialect)
    processors = _processors(table, columns, dialect)  # also proves every column exists
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "  # noqa: S608 - identifiers from our schema, values bound
        f"VALUES ({', '.join(mark for _ in columns)})"
    )
    return PreparedWrite(sql, columns, processors)


def prepare_update(
    table: Table,
    columns: Sequence[str],
    where: Sequence[str],
    dialect: Dialect,
    nulls: Sequence[str] = (),
) -> PreparedWrite:
    """``UPDATE table SET columns…, nulls… = NULL WHERE where…`` with the WHERE values
    last (``nulls`` are written without a parameter)."""
    quote = dialect.identifier_preparer.quote
    mark = placeholder(dialect)
    _processors(table, nulls, dialect)  # proves every column exists
    sets = ", ".join(
        [f"{quote(c)} = {mark}" for c in columns] + [f"{quote(c)} = NULL" for c in nulls]
    )
    conds = " AND ".join(f"{quote(c)} = {mark}" for c in where)
    names = [*columns, *where]
    processors = _processors(table, names, dialect)  # also proves every column exists
    sql = f"UPDATE {quote(table.name)} SET {sets} WHERE {conds}"  # noqa: S608 - identifiers from our schema
    return PreparedWrite(sql, names, processors)


def driver_pipeline(conn: Connection) -> contextlib.AbstractContextManager[object]:
    """PostgreSQL: the driver-cursor statements sent inside it go out in one pipeline, one
    round trip together instead of one each (psycopg's executemany rides a pipeline
    already open; a fetch inside it sends what is queued). Errors, a constraint's
    included, are raised at the latest when it ends, still inside the transaction.
    SQLAlchemy statements stay outside it: they read results as they go. Elsewhere
    (sqlite3 has no pipeline) it does nothing."""
    if conn.dialect.name != "postgresql":
        return contextlib.nullcontext()
    driver = conn.connection.dbapi_connection
    assert driver is not None
    return cast("contextlib.AbstractContextManager[object]", driver.pipeline())


class PreparedRead:
    """``SELECT`` every column of a table by primary key (or by ``where``, ordered by
    ``order_by``), run on the driver's cursor, rows made into dicts through the columns'
    own result processors (what SQLAlchemy returns). With ``many``, its one parameter is
    ``keys(ids)`` (PostgreSQL: an array, ``= ANY``; SQLite: a JSON array, ``json_each``:
    one statement text for any number of keys), and rows come grouped by key."""

    def __init__(
        self,
        table: Table,
        dialect: Dialect,
        *,
        where: str | None = None,
        order_by: str | None = None,
        many: bool = False,
    ) -> None:
        quote = dialect.identifier_preparer.quote
        self.columns = tuple(c.name for c in table.columns)
        if where is None:
            [where] = [c.name for c in table.primary_key.columns]
        self.key = self.columns.index(where)
        mark = placeholder(dialect)
        self._json_keys = many and dialect.name == "sqlite"
        if many:
            if self._json_keys:
                condition = f"{quote(where)} IN (SELECT value FROM json_each({mark}))"  # noqa: S608 - identifiers from our schema
            else:
                condition = f"{quote(where)} = ANY({mark})"
            ordering = [where] + ([order_by] if order_by is not None else [])
        else:
            condition = f"{quote(where)} = {mark}"
            ordering = [order_by] if order_by is not None else []
        order = f" ORDER BY {', '.join(quote(c) for c in ordering)}" if ordering else ""
        self.sql = (
            f"SELECT {', '.join(quote(c) for c in self.columns)} FROM {quote(table.name)} "  # noqa: S608 - identifiers from our schema
            f"WHERE {condition}{order}"
        )
        processors = [c.type.dialect_impl(dialect).result_processor(dialect, None)
                      for c in table.columns]  # fmt: skip
        self._converted = tuple((i, p) for i, p in enumerate(processors) if p is not None)

    def keys(self, ids: Sequence[str]) -> object:
        """The parameter of a read of many keys (``many``)."""
        return json.dumps(list(ids)) if self._json_keys else list(ids)

    def row(self, values: Sequence[Any]) -> dict[str, Any]:
        converted = list(values)
        for i, proc in self._converted:
            converted[i] = proc(converted[i])
        return dict(zip(self.columns, converted, strict=True))
