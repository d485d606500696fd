"""PostgreSQL's round writer: each kind of row of a whole group in one statement.

``BatchWriter`` sends a group's rows with ``executemany``: in psycopg's pipeline that is
one Bind/Execute per row, each with its own parameter adaptation and socket turn (about
three pipeline turns per row, most of the writer thread's CPU; bench/pg_workers.py). Here
each table's rows go as one statement over column arrays (``unnest``): one parameter
set per table per group. The fencing lock is fixed SQL too (``= ANY`` of one array), not
a SQLAlchemy ``IN`` compiled per group, so a group's whole transaction stays on the
driver connection (GroupCommitter ``driver_groups``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Dialect, Table

from flowledger.storage.base import Row
from flowledger.storage.fastpath import Processor, _processors
from flowledger.storage.writes import BatchWriter

# In id order, so two transactions that lock overlapping sets never wait on each other
# in a cycle.
LOCK_EPOCHS = "SELECT id, lease_epoch FROM executions WHERE id = ANY(%s) ORDER BY id FOR UPDATE"


class ArrayWrite:
    """An INSERT or an UPDATE … WHERE id of many rows, from one array per column."""

    def __init__(self, sql: str, columns: Sequence[str], processors: Sequence[Processor]) -> None:
        self.sql = sql
        self.columns = tuple(columns)
        self._processors = tuple(processors)

    def params(self, rows: Sequence[Row]) -> list[list[Any]]:
        arrays = []
        for name, proc in zip(self.columns, self._processors, strict=True):
            values = [row[name] for row in rows]
            if proc is not None:
                values = [None if v is None else proc(v) for v in values]
            arrays.append(values)
        return arrays


def _arrays(table: Table, columns: Sequence[str], dialect: Dialect) -> tuple[str, str]:
    """``unnest(%s::type[], …) AS v(columns…)`` and the quoted column list."""
    quote = dialect.identifier_preparer.quote
    casts = ", ".join(f"%s::{table.c[c].type.compile(dialect=dialect)}[]" for c in columns)
    names = ", ".join(quote(c) for c in columns)
    return f"unnest({casts}) AS v({names})", names


def array_insert(table: Table, columns: Sequence[str], dialect: Dialect) -> ArrayWrite:
    source, names = _arrays(table, columns, dialect)
    quote = dialect.identifier_preparer.quote
    sql = f"INSERT INTO {quote(table.name)} ({names}) SELECT {names} FROM {source}"  # noqa: S608 - identifiers from our schema, values bound
    return ArrayWrite(sql, columns, _processors(table, columns, dialect))


def array_update(table: Table, columns: Sequence[str], dialect: Dialect) -> ArrayWrite:
    """``UPDATE table SET columns… WHERE id``, the id array first."""
    names = ["id", *columns]
    source, _ = _arrays(table, names, dialect)
    quote = dialect.identifier_preparer.quote
    sets = ", ".join(f"{quote(c)} = v.{quote(c)}" for c in columns)
    table_name = quote(table.name)
    sql = f"UPDATE {table_name} SET {sets} FROM {source} WHERE {table_name}.id = v.id"  # noqa: S608 - identifiers from our schema
    return ArrayWrite(sql, names, _processors(table, names, dialect))


class PostgresBatchWriter(BatchWriter):
    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        self._arrays: dict[tuple[str, ...], ArrayWrite] = {}

    def _lock_epochs(self, conn: Connection, ids: list[str]) -> dict[str, int]:
        cursor = self._cursor(conn)
        cursor.execute(LOCK_EPOCHS, (ids,))
        return {row[0]: int(row[1]) for row in cursor.fetchall()}

    def _insert(
        self, conn: Connection, table: Table, rows: list[Row], skip: tuple[str, ...] = ()
    ) -> None:
        if len(rows) == 1:  # one row: the prepared single-row statement is as cheap
            super()._insert(conn, table, rows, skip)
            return
        key = ("insert", table.name)
        write = self._arrays.get(key)
        if write is None:
            columns = [c.name for c in table.columns if c.name not in skip]
            write = self._arrays[key] = array_insert(table, columns, self._dialect)
        self._cursor(conn).execute(write.sql, write.params(rows))

    def _update(self, conn: Connection, table: Table, tag: str, rows: Iterable[Row]) -> None:
        groups: dict[tuple[str, ...], list[Row]] = defaultdict(list)
        for row in rows:
            groups[tuple(sorted(k for k in row if k != "id"))].append(row)
        for columns, group in groups.items():
            # A row updated twice in one statement would take either value: executemany
            # applies them in order. (Rounds of one execution never share a group.)
            if len(group) == 1 or len({row["id"] for row in group}) < len(group):
                super()._update(conn, table, tag, group)
                continue
            key = (tag, *columns)
            write = self._arrays.get(key)
            if write is None:
                write = self._arrays[key] = array_update(table, columns, self._dialect)
            self._cursor(conn).execute(write.sql, write.params(group))
