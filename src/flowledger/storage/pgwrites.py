"""PostgreSQL's round writer: a group's whole transaction in one pipeline, one round trip.

``BatchWriter`` (storage.writes) locks a group's executions, compares epochs in Python,
then sends the writes: BEGIN, the lock, the pipelined writes and COMMIT are four round
trips per group, each a wait for a backend that shares the cores with the workers
(bench/pg_workers.py: the workers' threads are mostly idle, waiting on these). Here a
group that reaches no other execution goes out as one pipeline:

    BEGIN; the fence; the writes (one executemany per table or set of columns);
    the outbox; COMMIT

The fence locks the executions' rows in id order (two transactions that lock
overlapping sets never wait on each other in a cycle) and fails, by a division by
zero, unless every round's epoch still holds. A failed statement aborts the
transaction, so the writes and the COMMIT queued after it change nothing; the group is
then rolled back and handed to ``BatchWriter``, which tells the refused rounds from the
others. Lease semantics are the same either way: nothing is written under an epoch
that no longer holds, and a refused round gets its LeaseLostError.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from sqlalchemy import Connection, Dialect

from flowledger.storage.base import Batch
from flowledger.storage.fastpath import PreparedWrite
from flowledger.storage.outbox import outbox_params, prepare_outbox
from flowledger.storage.writes import BatchWriter

# In id order, so two transactions that lock overlapping sets never wait on each other
# in a cycle.
LOCK_EPOCHS = "SELECT id, lease_epoch FROM executions WHERE id = ANY(%s) ORDER BY id FOR UPDATE"

#: Locks the rows like LOCK_EPOCHS and divides by zero unless all ``n`` epochs hold
#: (count(*) is not a constant, so the planner cannot fold the division away).
FENCE = (
    "SELECT 1 / (count(*) = %s)::int FROM (SELECT id, lease_epoch FROM executions "
    "WHERE id = ANY(%s) ORDER BY id FOR UPDATE) AS held "
    "JOIN unnest(%s::text[], %s::int[]) AS f(id, epoch) "
    "ON held.id = f.id AND held.lease_epoch = f.epoch"
)


#: The channel a signal's write NOTIFYs (Store.watch_signals): "<execution id> <origin>",
#: the origin being the sending store's, whose own process was told already.
SIGNAL_CHANNEL = "flowledger_signals"


def signal_heard(payload: str, origin: str) -> str | None:
    """The execution a signal NOTIFY is for; None when ``origin`` (this store) sent it."""
    execution_id, _, sender = payload.partition(" ")
    return None if sender == origin else execution_id


class PostgresBatchWriter(BatchWriter):
    def __init__(self, dialect: Dialect, origin: str) -> None:
        super().__init__(dialect)
        self._outbox: PreparedWrite | None = None
        #: This store's mark on the signals it NOTIFYs (signal_heard).
        self._origin = origin

    def signalled(self, conn: Connection, execution_ids: Sequence[str]) -> None:
        payloads = [f"{execution_id} {self._origin}" for execution_id in execution_ids]
        for payload in payloads:
            conn.exec_driver_sql("SELECT pg_notify(%s, %s)", (SIGNAL_CHANNEL, payload))

    def apply(self, conn: Connection, batches: Sequence[Batch]) -> list[BaseException | None]:
        """Rounds without links: written and committed here, in one pipeline (the caller's
        commit then finds no transaction open). Others, and a group whose fence failed:
        ``BatchWriter``, in the caller's transaction."""
        if any(b.links() for b in batches):
            return super().apply(conn, batches)
        driver = conn.connection.dbapi_connection
        assert isinstance(driver, psycopg.Connection)
        cursor = self._cursor(conn)
        try:
            with driver.pipeline():
                self.write_fenced(cursor, batches)
                driver.commit()
        except psycopg.errors.DivisionByZero:  # the fence: some round's lease was lost
            driver.rollback()
            return super().apply(conn, batches)
        return [None] * len(batches)

    def _lock_epochs(self, conn: Connection, ids: list[str]) -> dict[str, int]:
        cursor = self._cursor(conn)
        cursor.execute(LOCK_EPOCHS, (ids,))
        return {row[0]: int(row[1]) for row in cursor.fetchall()}

    def write_fenced(self, cursor: Any, batches: Sequence[Batch]) -> None:
        """A group without links, on ``cursor`` (the open pipeline, or storage.pgrounds'
        recorder): the fence, then every row in BatchWriter's order, then the outbox."""
        ids = [b.execution_id for b in batches]
        cursor.execute(FENCE, (len(ids), ids, ids, [b.epoch for b in batches]))
        self._write_rows(cursor, batches)
        notifications = [outbox_params(row) for b in batches for row in b.notifications]
        if notifications:
            if self._outbox is None:
                self._outbox = prepare_outbox(self._dialect)
            cursor.executemany(self._outbox.sql, [self._outbox.params(n) for n in notifications])
