"""PostgreSQL claims, takes and releases: fixed SQL on a connection of their own.

A worker claims a batch of executions, and releases each one it stops running before its
end (an ended one's last round releases it: runtime.journal). Through
SQLAlchemy each cost a statement build (cache key, compile), a BEGIN, a ``SET LOCAL
synchronous_commit``, the query and a COMMIT: four round trips and most of a worker's
per-execution CPU outside its rounds (bench/pg_workers.py). Here the SQL text is fixed,
the connection is in autocommit with ``synchronous_commit=off`` for its whole session
(its transactions commit without waiting for the WAL flush; see
PostgresStore._lease_only_commit for why a crash loses nothing), and a claim answers
with the claimed rows, so the worker does not read them again. A lease group
(storage.leasegroup: takes, releases and claims made together) goes out as one
transaction block in one pipeline.

Only the leases lane's thread uses this connection (storage.lanes).
"""

from __future__ import annotations

import contextlib
import functools
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import psycopg
from sqlalchemy import Dialect

from flowledger.storage.base import Row
from flowledger.storage.leasegroup import (
    RUNNABLE_SQL,
    LeaseAnswer,
    LeaseWork,
    oldest_runnable_sql,
    skip_params,
    skip_slots,
)
from flowledger.storage.schema import executions

#: Planner settings, off, that keep a search for the oldest rows of an index in that
#: index's order (a claim's lists, a prune's search; ``ORDER BY created_at, id``, which
#: only the index walked gives). Left on, PostgreSQL sorts every row of a status whenever
#: its statistics say there are few, which they say of any burst until autovacuum
#: analyzes it, or walks ``created_at``'s index through the whole history when they say
#: the status is common: a claim of 50 with 20,000 queued, or a prune's search among
#: 200,000 finished (bench/history_bench.py). Discouraged, not forbidden: a plan that
#: needs one still runs.
#: And JIT: a discouraged plan costs 10^10 in the planner's units, far over
#: ``jit_above_cost``, and compiling a claim took 650 ms where running it took 4.
INDEX_ORDER_OFF = ("enable_sort", "enable_incremental_sort", "enable_bitmapscan", "jit")

# Each list's candidates (storage.leasegroup.oldest_runnable_sql) are locked with SKIP
# LOCKED (claimers never queue behind each other), each in a CTE: it runs once (a
# subquery in FROM may be rescanned and lock more than ``limit`` rows). The oldest of them
# all are claimed; the rest are unlocked when the statement ends. The runnable condition
# is checked again on the locked row version by the UPDATE. The candidates' clock is the
# statement's start: a volatile clock_timestamp() could not bound an index scan (the
# due-time range was read as a filter over every parked execution).
# A claim that leaves workflow versions out (LeaseWork.skip) names them in each list, and
# only there: the UPDATE takes what the lists chose.


@functools.cache
def claim_sql(slots: int = 0) -> str:
    """The claim, leaving out the workflow versions of ``slots`` placeholders
    (``%(skip0)s``…, leasegroup.skip_slots; none: the claim of every turn)."""
    skip = [f"%(skip{i})s" for i in range(slots)]
    candidates = oldest_runnable_sql(
        "statement_timestamp()", "%(limit)s", " FOR UPDATE SKIP LOCKED", skip=skip
    )
    return (
        "WITH "  # noqa: S608 - fixed text, values bound
        + ", ".join(f"c{i} AS ({branch})" for i, branch in enumerate(candidates))
        + ", won AS (SELECT id FROM ("
        + " UNION ALL ".join(f"SELECT * FROM c{i}" for i in range(len(candidates)))  # noqa: S608
        + ") AS c ORDER BY created_at, id LIMIT %(limit)s) "
        "UPDATE executions AS e SET lease_epoch = e.lease_epoch + 1, lease_owner = %(owner)s, "
        "lease_expires_at = clock_timestamp() + %(lease)s, wake_at = NULL "
        "FROM won WHERE e.id = won.id AND "
        + RUNNABLE_SQL.format(t="e.", now="clock_timestamp()")
        + " RETURNING e.*"
    )


CLAIM = claim_sql()

RELEASE = (
    "UPDATE executions SET lease_owner = NULL, lease_expires_at = NULL, wake_at = NULL "
    "WHERE id = %s AND lease_epoch = %s"
)
#: Many releases at once (two arrays, zipped by ``unnest``), each released row coming back
#: (``drive`` returns its execution's last state from it).
RELEASE_ROWS = (
    "UPDATE executions AS e SET lease_owner = NULL, lease_expires_at = NULL, wake_at = NULL "
    "FROM unnest(%s::text[], %s::int[]) AS r(id, epoch) "
    "WHERE e.id = r.id AND e.lease_epoch = r.epoch RETURNING e.*"
)
#: Takes by id (free, lapsed, or already the owner's: SQLPart._takeable), the rows locked in
#: id order first, so two takers of overlapping sets never wait on each other in a cycle.
TAKE_MANY = (
    "WITH asked AS (SELECT id FROM executions WHERE id = ANY(%(ids)s) ORDER BY id FOR UPDATE) "
    "UPDATE executions AS e SET lease_epoch = e.lease_epoch + 1, lease_owner = %(owner)s, "
    "lease_expires_at = clock_timestamp() + %(lease)s, wake_at = NULL FROM asked "
    "WHERE e.id = asked.id AND (e.lease_owner IS NULL OR e.lease_expires_at < clock_timestamp() "
    "OR e.lease_owner = %(owner)s) RETURNING e.*"
)


class LeaseConnection:
    """The leases lane's own autocommit connection, opened on first use and again after
    it broke (a statement that failed on a broken connection raises; the next reconnects)."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], dialect: Dialect) -> None:
        self._connect = connect
        self._conn: psycopg.Connection[Any] | None = None
        # Columns whose stored form differs from the row's (timestamps: aware UTC).
        self._convert: dict[str, Callable[[Any], Any]] = {}
        for column in executions.columns:
            proc = column.type.result_processor(dialect, None)
            if proc is not None:
                self._convert[column.name] = proc

    def open(self) -> None:
        self._connection()

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self.close()
            self._conn = self._connect()
        return self._conn

    def apply(self, works: list[LeaseWork]) -> list[LeaseAnswer]:
        """A lease group (storage.leasegroup) in one pipeline (one round trip), in one
        transaction when it holds more than one request: the releases in one statement
        (answered with their rows), the takes in one per owner and lease, then each claim."""
        releases = [pair for work in works for pair in work.releases]
        if not releases and all(w.take is None and w.claim <= 0 for w in works):
            return [LeaseAnswer() for _ in works]  # only new executions (PostgresStore)
        conn = self._connection()
        takes: dict[tuple[str, timedelta], list[str]] = defaultdict(list)
        for work in works:
            if work.take is not None:
                takes[(work.owner, work.lease)].append(work.take)
        # Several requests: one transaction, so a failed group (asked again one request at a
        # time, storage.leasegroup) left nothing behind. A lone one (a worker's turn) needs
        # none: each statement commits by itself, as a lone call always did.
        together = conn.transaction() if len(works) > 1 else contextlib.nullcontext()
        with conn.pipeline(), together:
            released = conn.execute(RELEASE_ROWS, _columns(releases)) if releases else None
            taken = [
                conn.execute(TAKE_MANY, {"ids": sorted(ids), "owner": owner, "lease": lease})
                for (owner, lease), ids in takes.items()
            ]
            claims = [self._claim(conn, w) if w.claim > 0 else None for w in works]
            # Fetching ends the pipeline's batch: every answer is in.
            released_rows = self._rows(released) if released is not None else []
            taken_rows = [row for cursor in taken for row in self._rows(cursor)]
            claimed = [self._rows(cursor) if cursor is not None else [] for cursor in claims]
        by_release = {row["id"]: row for row in released_rows}
        by_take = {row["id"]: row for row in taken_rows}
        answers = []
        for work, rows in zip(works, claimed, strict=True):
            rows.sort(key=lambda row: (row["created_at"], row["id"]))  # oldest first, as asked
            answers.append(
                LeaseAnswer(
                    released={i: by_release[i] for i, _ in work.releases if i in by_release},
                    taken=by_take.get(work.take) if work.take is not None else None,
                    claimed=rows,
                )
            )
        return answers

    @staticmethod
    def _claim(conn: psycopg.Connection[Any], work: LeaseWork) -> psycopg.Cursor[Any]:
        params: dict[str, Any] = {"owner": work.owner, "lease": work.lease, "limit": work.claim}
        if not work.skip:
            return conn.execute(CLAIM, params)
        params.update(skip_params(work.skip))
        return conn.execute(claim_sql(skip_slots(len(work.skip))), params)

    def _rows(self, cursor: psycopg.Cursor[Any]) -> list[Row]:
        found = cursor.fetchall()
        names = [d.name for d in cursor.description or ()]
        return [self._row(dict(zip(names, values, strict=True))) for values in found]

    def release(self, execution_id: str, epoch: int) -> None:
        self._connection().execute(RELEASE, (execution_id, epoch))

    def _row(self, row: dict[str, Any]) -> Row:
        for name, proc in self._convert.items():
            value = row[name]
            if value is not None:
                row[name] = proc(value)
        return row

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _columns(releases: list[tuple[str, int]]) -> tuple[list[str], list[int]]:
    """``(id, epoch)`` pairs as the two arrays RELEASE_ROWS takes."""
    return [i for i, _ in releases], [e for _, e in releases]


#: The lease connection's session settings: its statements find rows by id, or (a claim)
#: the oldest free executions in three indexes' order, so none wants a sort or a bitmap
#: scan but the claim's last one, of at most three times its limit.
LEASE_SETTINGS = "-c synchronous_commit=off " + " ".join(f"-c {s}=off" for s in INDEX_ORDER_OFF)


def connect_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Connection parameters for the lease connection: the store's, plus its session
    settings (kept beside any ``options`` the URL already gives)."""
    options = " ".join(p for p in (params.get("options"), LEASE_SETTINGS) if p)
    return {**params, "options": options, "autocommit": True}
