"""The SQL of a lease group (storage.leasegroup): new executions, takes, releases and claims
made together, written in one transaction on the driver's cursor.

The statements are fixed text (a take and a release are a compare-and-set UPDATE …
RETURNING of one row each), so a group costs its rows, not a SQLAlchemy statement
build per request. PostgresStore sends the leases through its own connection
(storage.pgleases) and keeps only the new executions here.
"""

from __future__ import annotations

import asyncio
import functools
from abc import abstractmethod
from collections.abc import Callable, Sequence
from contextlib import closing
from typing import Any

from sqlalchemy import Engine, Table

from flowledger.errors import JobRunCancelledError
from flowledger.storage.base import Row, claimable_when_created
from flowledger.storage.fastpath import PreparedRead, PreparedWrite, placeholder
from flowledger.storage.lanes import NOT_HERE
from flowledger.storage.leasegroup import (
    LeaseAnswer,
    LeaseWork,
    oldest_runnable_sql,
    skip_params,
    skip_slots,
)
from flowledger.storage.schema import events, executions
from flowledger.storage.sqlpart import DriverErrors, SQLPart
from flowledger.timeutil import utcnow


class SQLLeaseGroupStore(SQLPart):
    _engine: Engine
    _driver_error: type[Exception]
    #: The release's and the take's SQL, built on first use.
    _lease_sql: tuple[str, str, str] | None = None
    #: What a read that must hold its row until the transaction ends adds (PostgreSQL).
    _lock_for_share = ""

    @abstractmethod
    def _reads(self) -> tuple[PreparedRead, PreparedRead]:
        """The execution by id (and its steps): its columns and row conversion serve here."""

    @abstractmethod
    def _row_insert(self, table: Table, row: Row, suffix: str = "") -> PreparedWrite:
        """The INSERT of the columns ``row`` has, then ``suffix``, prepared once."""

    @abstractmethod
    def _wake_with_this_commit(self) -> None:
        """Inside a write transaction that makes work claimable: wake the idle workers of
        every process when it commits (PostgreSQL: NOTIFY; SQLite has no such channel)."""

    @abstractmethod
    def _lease_only_commit(self) -> None:
        """Inside a transaction that changes lease columns only: commit without waiting for
        the disk where the database allows."""

    def _insert_new(self, cursor: Any, execution: Row, events_: Sequence[Row]) -> str:
        """Inside the caller's transaction, on the driver's cursor: a new execution and its
        events. When its trigger key is taken (or its id: the same start asked again after
        its group failed), nothing is written and the id that holds it returns. A job
        run's workflow is not started once the job run was cancelled: JobRunCancelledError."""
        job_run_id = execution.get("job_run_id")
        if job_run_id is not None:
            self._check_job_run_open(cursor, job_run_id)
        prepared = self._row_insert(executions, execution, " ON CONFLICT DO NOTHING")
        cursor.execute(prepared.sql, prepared.params(execution))
        if cursor.rowcount == 0:
            trigger_key = execution.get("trigger_key")
            if trigger_key is None:
                return str(execution["id"])
            mark = placeholder(self._engine.dialect)
            cursor.execute(f"SELECT id FROM executions WHERE trigger_key = {mark}", (trigger_key,))  # noqa: S608 - fixed text
            return str(cursor.fetchone()[0])
        for row in events_:
            insert_event = self._row_insert(events, row)
            cursor.execute(insert_event.sql, insert_event.params(row))
        if claimable_when_created(execution):
            self._wake_with_this_commit()
        return str(execution["id"])

    def _check_job_run_open(self, cursor: Any, job_run_id: str) -> None:
        """In the start's transaction: a cancel between two workflows (SQLJobStore.
        cancel_job_run_between) either committed before it, and is seen here, or waits
        for it to commit (PostgreSQL: this row lock; SQLite: one writer at a time), and
        then sees the workflow started and cancels it."""
        mark = placeholder(self._engine.dialect)
        read = f"SELECT status FROM job_runs WHERE id = {mark}{self._lock_for_share}"  # noqa: S608 - fixed text
        cursor.execute(read, (job_run_id,))
        found = cursor.fetchone()
        if found is not None and found[0] == "Cancelled":
            raise JobRunCancelledError(
                f"job run {job_run_id} was cancelled before its next workflow started"
            )

    def _create_many(self, works: Sequence[LeaseWork]) -> list[str]:
        """The new executions of a lease group in one transaction of their own (PostgreSQL:
        the leases' connection does not wait for the disk; a start must)."""
        with self.conn.begin():
            driver = self.conn.connection.dbapi_connection
            assert driver is not None
            with DriverErrors(self._driver_error), closing(driver.cursor()) as cursor:
                return [self._insert_new(cursor, *w.create) for w in works if w.create]

    def _submit_leases(
        self, job: Callable[[], list[LeaseAnswer]]
    ) -> asyncio.Future[list[LeaseAnswer]]:
        """A lease group's call: right here when it cannot wait (SQLite's inline small
        write, see storage.lanes), else on the leases lane. Raises what the inline call
        raised (LeaseGroup answers it to the group)."""
        done = self._inline_write(job)
        if done is NOT_HERE:
            return self._leases.run(job)
        future: asyncio.Future[list[LeaseAnswer]] = asyncio.get_running_loop().create_future()
        future.set_result(done)  # type: ignore[arg-type]
        return future

    def _apply_leases(self, works: list[LeaseWork]) -> list[LeaseAnswer]:
        """A lease group in one transaction: each request's new execution, its releases,
        then its take (one compare-and-set UPDATE … RETURNING on the driver's cursor each:
        their SQL is fixed), then its claim. On the calling lane's connection."""
        read = self._reads()[0]
        release_sql, take_sql, claim_sql = self._lease_statements(read)
        stamp = self.timestamp_param
        now = utcnow()
        conn = self.conn
        answers: list[LeaseAnswer] = []
        with conn.begin():
            self._lease_only_commit()
            driver = conn.connection.dbapi_connection
            assert driver is not None
            with DriverErrors(self._driver_error), closing(driver.cursor()) as cursor:
                for work in works:
                    answer = LeaseAnswer()
                    if work.create is not None:
                        answer.created = self._insert_new(cursor, *work.create)
                    for execution_id, epoch in work.releases:
                        cursor.execute(release_sql, (execution_id, epoch))
                        found = cursor.fetchone()
                        if found is not None:
                            answer.released[execution_id] = read.row(found)
                    if work.take is not None:
                        expires = stamp(now + work.lease)
                        owner = work.owner
                        cursor.execute(take_sql, (owner, expires, work.take, stamp(now), owner))
                        found = cursor.fetchone()
                        answer.taken = read.row(found) if found is not None else None
                    if work.claim > 0:
                        at, expires = stamp(now), stamp(now + work.lease)
                        params = {"owner": work.owner, "expires": expires, "now": at,
                                  "limit": work.claim}  # fmt: skip
                        if work.skip:  # rare: the versions this process cannot run
                            params.update(skip_params(work.skip))
                            claim = self._skipping_claim(read, skip_slots(len(work.skip)))
                            cursor.execute(claim, params)
                        else:
                            cursor.execute(claim_sql, params)
                        rows = [read.row(found) for found in cursor.fetchall()]
                        answer.claimed = sorted(rows, key=lambda r: (r["created_at"], r["id"]))
                    answers.append(answer)
        return answers

    def _lease_statements(self, read: PreparedRead) -> tuple[str, str, str]:
        """A plain release, a take by id and a claim, each answering with the whole rows."""
        if self._lease_sql is None:
            dialect = self._engine.dialect
            quote = dialect.identifier_preparer.quote
            mark = placeholder(dialect)
            returning = ", ".join(quote(c) for c in read.columns)
            release = (
                "UPDATE executions SET lease_owner = NULL, lease_expires_at = NULL, "  # noqa: S608 - fixed text, values bound
                f"wake_at = NULL WHERE id = {mark} AND lease_epoch = {mark} RETURNING {returning}"
            )
            # Takeable (SQLPart._takeable): free, lapsed, or already this owner's.
            take = (
                f"UPDATE executions SET lease_epoch = lease_epoch + 1, lease_owner = {mark}, "  # noqa: S608 - fixed text, values bound
                f"lease_expires_at = {mark}, wake_at = NULL WHERE id = {mark} AND "
                f"(lease_owner IS NULL OR lease_expires_at < {mark} OR lease_owner = {mark}) "
                f"RETURNING {returning}"
            )
            self._lease_sql = (release, take, _claim_sql(returning, 0))
        return self._lease_sql

    def _skipping_claim(self, read: PreparedRead, slots: int) -> str:
        """The claim of ``_lease_statements`` that leaves out ``slots`` workflow versions
        (built once per count: leasegroup.skip_slots makes them a handful)."""
        quote = self._engine.dialect.identifier_preparer.quote
        return _claim_sql(", ".join(quote(c) for c in read.columns), slots)


@functools.cache
def _claim_sql(returning: str, slots: int) -> str:
    """SQLite's claim (PostgreSQL claims through storage.pgleases), on this process's clock
    (SQLite has no other), leaving out the workflow versions of ``slots`` placeholders
    (``:skip0``…; none: the claim of every turn). One statement under the write lock: the
    rows cannot change between its read and its update, so they are updated by id."""
    skip = [f":skip{i}" for i in range(slots)]
    branches = " UNION ALL ".join(
        f"SELECT * FROM ({branch})"  # noqa: S608 - fixed text
        for branch in oldest_runnable_sql(":now", ":limit", hint=True, skip=skip)
    )
    return (
        "UPDATE executions SET lease_epoch = lease_epoch + 1, lease_owner = :owner, "  # noqa: S608 - fixed text, values bound
        f"lease_expires_at = :expires, wake_at = NULL WHERE id IN (SELECT id FROM "
        f"({branches}) ORDER BY created_at, id LIMIT :limit) RETURNING {returning}"
    )
