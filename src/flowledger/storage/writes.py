"""Writing rounds: many executions' batches applied with one statement per kind of row.

The fencing check locks the executions' rows (``FOR UPDATE`` where the database
has it; SQLite's ``BEGIN IMMEDIATE`` already holds the whole database) and
compares epochs in Python, so the remaining writes need no per-row condition and
go out as a few ``executemany`` calls — which psycopg pipelines into one round trip.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Dialect, Table, func, insert, select, update

from flowledger.errors import LeaseLostError
from flowledger.storage.base import Batch, ChildGuard, Row, RowParams
from flowledger.storage.fastpath import (
    PreparedWrite,
    driver_pipeline,
    prepare_insert,
    prepare_update,
)
from flowledger.storage.outbox import outbox_params, prepare_outbox
from flowledger.storage.rowparams import EVENT, STEP_INSERT, STEP_INSERTS, STEP_UPDATES
from flowledger.storage.schema import events, executions, signals, step_executions
from flowledger.storage.schema_ops import step_logs
from flowledger.timeutil import utcnow
from flowledger.types import ExecutionStatus


class BatchWriter:
    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._prepared: dict[tuple[str, ...], PreparedWrite] = {}
        #: PostgreSQL: the driver-cursor writes go out in one pipeline (driver_pipeline).
        self._pipelines = dialect.name == "postgresql"
        # One driver cursor, reused: only the store's writer thread writes rounds.
        self._driver: Any = None
        self._driver_cursor: Any = None

    def apply(self, conn: Connection, batches: Sequence[Batch]) -> list[BaseException | None]:
        """Write every batch whose epoch still holds; the result says which were refused."""
        if len(batches) == 1:
            return [self._apply_one(conn, batches[0])]
        held = self._lock_epochs(conn, [b.execution_id for b in batches])
        outcomes: list[BaseException | None] = []
        accepted: list[Batch] = []
        for batch in batches:
            if held.get(batch.execution_id) == batch.epoch:
                outcomes.append(None)
                accepted.append(batch)
            else:
                outcomes.append(_lost(batch))
        if accepted:
            self._write(conn, accepted)
        return outcomes

    def _apply_one(self, conn: Connection, batch: Batch) -> BaseException | None:
        """One round alone: a single conditional UPDATE is both the fence and the write;
        a round that leaves the execution's row alone (runtime.journal) reads its epoch."""
        values = batch.execution
        if not values:
            if self._lock_epochs(conn, [batch.execution_id]).get(batch.execution_id) != batch.epoch:
                return _lost(batch)
            self._write(conn, [batch], execution_written=True)
            return None
        key = ("fence", *values)  # a round lists its columns alike each time: no sort
        fence = self._prepared.get(key)
        if fence is None:
            fence = prepare_update(executions, tuple(values), ("id", "lease_epoch"),
                                   self._dialect)  # fmt: skip
            self._prepared[key] = fence
        cursor = self._cursor(conn)
        # In the fence's column order: the values' own, then the WHERE's id and epoch.
        cursor.execute(
            fence.sql, fence.convert((*values.values(), batch.execution_id, batch.epoch))
        )
        if cursor.rowcount != 1:
            return _lost(batch)
        self._write(conn, [batch], execution_written=True, cursor=cursor)
        return None

    def _lock_epochs(self, conn: Connection, ids: list[str]) -> dict[str, int]:
        """The epochs the executions ``ids`` hold, for the rest of this transaction: on
        SQLite its BEGIN IMMEDIATE already holds the whole database, so a plain read
        (PostgresBatchWriter locks the rows). Fixed SQL on the driver's cursor: a lone
        round (a chain's every one) comes here when it writes no column of its row."""
        cursor = self._cursor(conn)
        if len(ids) == 1:  # a lone round: no comprehension (a frame) for its one row
            row = cursor.execute(_EPOCH_OF_ONE, ids).fetchone()
            return {} if row is None else {row[0]: int(row[1])}
        cursor.execute(_EPOCHS_OF_MANY, (json.dumps(ids),))
        return {row[0]: int(row[1]) for row in cursor.fetchall()}

    def _write(
        self,
        conn: Connection,
        batches: Sequence[Batch],
        *,
        execution_written: bool = False,
        cursor: Any = None,
    ) -> None:
        # One driver cursor for the round (finding it through SQLAlchemy costs per call).
        cursor = cursor if cursor is not None else self._cursor(conn)
        # PostgreSQL: the driver-cursor writes in one pipeline. Elsewhere no context at
        # all: even a nullcontext is two Python calls, and a chain's every round is here.
        if self._pipelines:
            with driver_pipeline(conn):
                self._write_rows(cursor, batches, executions_too=not execution_written)
        else:
            self._write_rows(cursor, batches, executions_too=not execution_written)
        # A lone round (a chain's every one) asked without a generator each.
        if len(batches) == 1:
            [batch] = batches
            links, notifying = batch.links(), bool(batch.notifications)
        else:
            links = any(b.links() for b in batches)
            notifying = any(b.notifications for b in batches)
        if links:
            self._write_links(conn, batches)
        if notifying:
            notifications = [outbox_params(row) for b in batches for row in b.notifications]
            outbox = self._prepared.get(("outbox",))
            if outbox is None:
                outbox = self._prepared[("outbox",)] = prepare_outbox(self._dialect)
            cursor.executemany(outbox.sql, [outbox.params(n) for n in notifications])

    def _write_links(self, conn: Connection, batches: Sequence[Batch]) -> None:
        """The rarer writes that reach other executions: children and signals."""
        for batch in batches:
            if batch.create_executions:
                refused = _refused_children(conn, batch.child_guards)
                children = [r for r in batch.create_executions if r["id"] not in refused]
                created = [r for r in batch.create_events if r["execution_id"] not in refused]
                if children:
                    conn.execute(insert(executions), children)
                if created:
                    conn.execute(insert(events), created)
                for guard in batch.child_guards:
                    if guard.refused:  # the step's row (written above) lists them
                        conn.execute(
                            update(step_executions)
                            .where(step_executions.c.id == guard.step_execution_id)
                            .values(children=guard.children_if_refused)
                        )
            if batch.signals:
                conn.execute(insert(signals), batch.signals)
                sent = Counter(s["execution_id"] for s in batch.signals)
                for target, count in sent.items():
                    conn.execute(
                        update(executions)
                        .where(executions.c.id == target)
                        .values(
                            wake_at=batch.signals[0]["created_at"],
                            signals_sent=executions.c.signals_sent + count,
                        )
                    )
                self.signalled(conn, list(sent))
            if batch.consumed_signals:
                conn.execute(
                    update(signals)
                    .where(signals.c.id.in_(batch.consumed_signals))
                    .values(consumed_at=utcnow())
                )

    def signalled(self, conn: Connection, execution_ids: Sequence[str]) -> None:
        """Inside the transaction that sends signals to ``execution_ids``: tell the other
        processes when it commits (PostgresBatchWriter: NOTIFY; SQLite has no channel
        between processes, and this process is told by the store: Store.hear_signals)."""

    def _write_rows(
        self, cursor: Any, batches: Sequence[Batch], *, executions_too: bool = True
    ) -> None:
        """The group's executions, steps, events and step logs, one statement per table
        (each ``executemany``), in this order; inside the caller's transaction (and its
        pipeline, on PostgreSQL)."""
        if executions_too:
            changed = ({**b.execution, "id": b.execution_id} for b in batches if b.execution)
            self._update(cursor, executions, "executions", changed)
        if len(batches) == 1:  # a lone round (a chain's every one): its own lists
            [batch] = batches
            inserts, updates = batch.insert_steps, batch.update_steps
            event_rows, log_rows = batch.events, batch.step_logs
        else:
            inserts = [row for b in batches for row in b.insert_steps]
            updates = [row for b in batches for row in b.update_steps]
            event_rows = [row for b in batches for row in b.events]
            log_rows = [row for b in batches for row in b.step_logs]
        if inserts:
            self._insert_steps(cursor, inserts)
        if updates:
            self._update_steps(cursor, updates)
        if event_rows:
            self._insert(cursor, events, EVENT, event_rows)
        if log_rows:
            self._insert(cursor, step_logs, _LOG_COLUMNS, log_rows)

    def _insert(
        self, cursor: Any, table: Table, columns: tuple[str, ...], rows: Sequence[RowParams]
    ) -> None:
        """Rows as parameter tuples in ``columns``' order (the journal's), or as dicts."""
        key = ("insert", table.name, *columns)  # a table may be written in several layouts
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = prepare_insert(table, columns, self._dialect)
            self._prepared[key] = prepared
        _send(cursor, prepared, rows)

    def _insert_steps(self, cursor: Any, rows: list[RowParams]) -> None:
        """New step rows: tuples in an insert layout of storage.rowparams (told apart by
        their length), or dicts of every column."""
        if len(rows) == 1:  # a chain's round: the one step that started, no grouping
            self._insert(cursor, step_executions, _insert_columns(rows[0]), rows)
            return
        groups: dict[tuple[str, ...], list[RowParams]] = defaultdict(list)
        for row in rows:
            groups[_insert_columns(row)].append(row)
        for columns, group in groups.items():
            self._insert(cursor, step_executions, columns, group)

    def _update_steps(self, cursor: Any, rows: list[RowParams]) -> None:
        """Step rows' updates: tuples in an update layout of storage.rowparams (told apart
        by their length), or dicts of the columns they change."""
        if len(rows) == 1:  # a chain's round: the one step that finished, no grouping
            keys, nulls = _update_columns(rows[0])
            prepared = self._prepared_update(step_executions, "steps", keys, nulls)
            _send(cursor, prepared, rows)
            return
        groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[RowParams]]
        groups = defaultdict(list)
        for row in rows:
            groups[_update_columns(row)].append(row)
        for (keys, nulls), group in groups.items():
            _send(cursor, self._prepared_update(step_executions, "steps", keys, nulls), group)

    def _update(self, cursor: Any, table: Table, tag: str, rows: Iterable[Row]) -> None:
        """UPDATE … WHERE id = ?, one executemany per set of changed columns."""
        # By the row's keys as they come (rows built alike list them alike): no sort per row.
        groups: dict[tuple[str, ...], list[Row]] = defaultdict(list)
        for row in rows:
            groups[tuple(row)].append(row)
        for keys, group in groups.items():
            prepared = self._prepared_update(table, tag, keys)
            params = prepared.params
            cursor.executemany(prepared.sql, [params(r) for r in group])

    def _prepared_update(
        self, table: Table, tag: str, keys: tuple[str, ...], nulls: tuple[str, ...] = ()
    ) -> PreparedWrite:
        """``UPDATE table SET keys…, nulls… = NULL WHERE id = ?`` (``id`` wherever it is
        among the keys)."""
        key = (tag, *keys, "=NULL", *nulls) if nulls else (tag, *keys)
        prepared = self._prepared.get(key)
        if prepared is None:
            columns = tuple(k for k in keys if k != "id")
            prepared = prepare_update(table, columns, ("id",), self._dialect, nulls)
            self._prepared[key] = prepared
        return prepared

    def release(self) -> None:
        """Close the kept cursor (the store is closing). sqlite3 closes a connection only
        once its statements are gone: a kept cursor held the database file open until the
        garbage collector found the store."""
        cursor, self._driver, self._driver_cursor = self._driver_cursor, None, None
        if cursor is not None:
            cursor.close()

    def _cursor(self, conn: Connection) -> Any:
        """The driver's own cursor, inside the transaction SQLAlchemy (or the driver) began.

        SQLAlchemy's per-statement execution context costs more than these prepared
        statements themselves; sqlite3 and psycopg both run executemany natively
        (psycopg pipelines it into one round trip). Kept per driver connection (a new
        one after a reconnect).
        """
        driver = conn.connection.dbapi_connection
        if driver is not self._driver:
            self._driver, self._driver_cursor = driver, driver.cursor()  # type: ignore[union-attr]
        return self._driver_cursor


def _send(cursor: Any, prepared: PreparedWrite, rows: Sequence[RowParams]) -> None:
    """Rows through one prepared statement: tuples as they are, dicts picked into its
    columns' order. One row (a chain's every statement) goes without a list."""
    if len(rows) == 1:
        [row] = rows
        cursor.execute(prepared.sql, row if isinstance(row, tuple) else prepared.params(row))
        return
    params = prepared.params
    cursor.executemany(
        prepared.sql, [row if isinstance(row, tuple) else params(row) for row in rows]
    )


def _refused_children(conn: Connection, guards: Sequence[ChildGuard]) -> set[str]:
    """The children left out: those of steps with more failed children than they
    tolerate (ChildGuard; the caller's transaction holds the parents' rows)."""
    refused: set[str] = set()
    for guard in guards:
        failed = guard.known_failed
        if guard.running and failed <= guard.tolerated:
            failed += conn.execute(
                select(func.count())
                .select_from(executions)
                .where(
                    executions.c.id.in_(guard.running),
                    executions.c.runtime_status.in_(_ENDED_BADLY),
                )
            ).scalar_one()
        if failed > guard.tolerated:
            guard.refused = True
            refused.update(guard.child_ids)
    return refused


#: A child that ended so counts against its step's ``tolerated_failures``.
_ENDED_BADLY = (str(ExecutionStatus.FAILED), str(ExecutionStatus.CANCELLED))


def _insert_columns(row: RowParams) -> tuple[str, ...]:
    """The columns a new step row names: a tuple's layout (storage.rowparams, told apart
    by length); a dict is picked into every column's."""
    return STEP_INSERTS[len(row)] if isinstance(row, tuple) else STEP_INSERT


def _update_columns(row: RowParams) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The columns a step row's update names, and those it sets to NULL: a tuple's layout
    (storage.rowparams, told apart by length), a dict's own keys."""
    return STEP_UPDATES[len(row)] if isinstance(row, tuple) else (tuple(row), ())


#: SQLite's reads of held epochs (BatchWriter._lock_epochs).
_EPOCH_OF_ONE = "SELECT id, lease_epoch FROM executions WHERE id = ?"
_EPOCHS_OF_MANY = (
    "SELECT id, lease_epoch FROM executions WHERE id IN (SELECT value FROM json_each(?))"
)

#: A step log row's columns (its id is the database's).
_LOG_COLUMNS = tuple(c.name for c in step_logs.columns if c.name != "id")


def _lost(batch: Batch) -> LeaseLostError:
    return LeaseLostError(
        f"execution {batch.execution_id} is no longer owned by this process "
        f"(epoch {batch.epoch}); its changes were not written"
    )
