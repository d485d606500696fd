"""Storage of the jobs part of the model: abstract verbs, and their SQL.

A job run is advanced by one process at a time, the holder of its lease (a
foreground ``flowledger jobs run``, or a worker for one short step). The lease
only keeps processes from tripping over each other: starting an item exactly once
is guaranteed by the executions' trigger keys, whoever holds the lease.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from flowledger.storage.schema import UNFINISHED, executions
from flowledger.storage.schema_jobs import job_runs
from flowledger.storage.sqlpart import SQLPart, older_than, reads, writes

Row = dict[str, Any]

#: What a job run needs to know of its executions (not their data, which may be large).
_EXECUTION_COLUMNS = (
    executions.c.id,
    executions.c.trigger_key,
    executions.c.runtime_status,
    executions.c.workflow_name,
    executions.c.workflow_version,
    executions.c.created_at,
    executions.c.started_at,
    executions.c.completed_at,
    executions.c.failed_at,
    executions.c.last_activity_at,
    #: Why a workflow failed, shown beside its run (a short message, never its data).
    executions.c.error,
)


class JobStore(ABC):
    """What the runtime and the faces need from a database for jobs."""

    @abstractmethod
    async def create_job_run(self, row: Row) -> str:
        """Insert a job run (``lease_owner`` set when its creator advances it itself);
        return its id. When its ``idempotency_key`` is taken (by an earlier create, or
        one racing this one), nothing is written and the id of that job run returns."""

    @abstractmethod
    async def get_job_run(self, job_run_id: str) -> Row | None: ...

    @abstractmethod
    async def find_job_runs(self, prefix: str, limit: int = 2) -> list[str]:
        """Ids of job runs starting with ``prefix``."""

    @abstractmethod
    async def list_job_runs(
        self, limit: int = 50, before: tuple[datetime, str] | None = None
    ) -> list[Row]:
        """Job runs, newest first; ``before``: only those after that (created_at, id)."""

    @abstractmethod
    async def job_run_executions(self, job_run_id: str) -> list[Row]:
        """The executions linked to a job run (status and times only), oldest first."""

    @abstractmethod
    async def acquire_job_run(
        self, job_run_id: str, owner: str, lease: timedelta, *, steal_from: str | None = None
    ) -> bool:
        """Take or renew the lease of an unfinished job run: free, expired, ours, or held by
        ``steal_from`` (a process known to be dead). False when another process holds it."""

    @abstractmethod
    async def release_job_run(self, job_run_id: str, owner: str) -> None: ...

    @abstractmethod
    async def reopen_job_run(
        self,
        job_run_id: str,
        owner: str | None = None,
        lease: timedelta | None = None,
        *,
        steal_from: str | None = None,
    ) -> bool:
        """Open a job run recorded ``Failed`` again (``InProgress``, not completed); with
        ``owner`` and ``lease`` also leased to ``owner`` as :meth:`acquire_job_run` takes a
        lease. False when it is not ``Failed``, or (with ``owner``) another process holds
        it."""

    @abstractmethod
    async def record_job_run_status(
        self,
        job_run_id: str,
        owner: str,
        status: str,
        *,
        started: bool,
        completed: bool,
        failed: Collection[str] = (),
    ) -> bool:
        """Set the status of an unfinished job run whose lease ``owner`` holds; ``started``
        stamps started_at once, ``completed`` stamps completed_at. An end (``completed``)
        is recorded only while it still holds: none of the job run's executions is
        unfinished, and the ones the caller saw fail (``failed``) are still ``Failed``,
        for a retry may have opened one since it looked. False when not recorded."""

    @abstractmethod
    async def cancel_job_run_between(self, job_run_id: str, started: int) -> bool:
        """Record an unfinished job run ``Cancelled`` while it is between two workflows:
        exactly ``started`` of its executions exist, none unfinished. Its next workflow
        then never starts (the start checks in its own write: storage.leasesql), and one
        whose start is being written is waited for and seen. False, nothing written, when
        it is not so (a workflow started or ended meanwhile): look again."""

    @abstractmethod
    async def job_runs_to_advance(self, limit: int) -> list[str]:
        """Ids of unfinished job runs none of whose executions is unfinished: their next
        workflow is due, or recording how they ended is."""


class SQLJobStore(SQLPart, JobStore):
    """Shared SQL for SQLite and PostgreSQL; SQLStore provides the connection and clock."""

    @writes
    def create_job_run(self, row: Row) -> str:
        try:
            with self.conn.begin():
                self.conn.execute(insert(job_runs), [row])
        except IntegrityError:
            # Only the insert tells two creates of one key apart (a look first cannot).
            key = row.get("idempotency_key")
            existing = self._job_run_by_key(key) if key is not None else None
            if existing is None:
                raise
            return existing
        return str(row["id"])

    def _job_run_by_key(self, key: str) -> str | None:
        t = job_runs
        with self.reading():
            return self.conn.execute(select(t.c.id).where(t.c.idempotency_key == key)).scalar()

    @reads
    def get_job_run(self, job_run_id: str) -> Row | None:
        with self.reading():
            row = self.conn.execute(select(job_runs).where(job_runs.c.id == job_run_id)).first()
        return dict(row._mapping) if row else None

    @reads
    def find_job_runs(self, prefix: str, limit: int = 2) -> list[str]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        t = job_runs
        stmt = select(t.c.id).where(t.c.id.like(escaped + "%", escape="\\")).limit(limit)
        with self.reading():
            return [r[0] for r in self.conn.execute(stmt)]

    @reads
    def list_job_runs(
        self, limit: int = 50, before: tuple[datetime, str] | None = None
    ) -> list[Row]:
        t = job_runs
        stmt = select(t).order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit)
        if before is not None:
            stmt = stmt.where(older_than(t.c.created_at, t.c.id, before))
        with self.reading():
            return [dict(r._mapping) for r in self.conn.execute(stmt)]

    @reads
    def job_run_executions(self, job_run_id: str) -> list[Row]:
        e = executions
        stmt = (
            select(*_EXECUTION_COLUMNS)
            .where(e.c.job_run_id == job_run_id)
            .order_by(e.c.created_at, e.c.id)
        )
        with self.reading():
            return [dict(r._mapping) for r in self.conn.execute(stmt)]

    @writes
    def acquire_job_run(
        self, job_run_id: str, owner: str, lease: timedelta, *, steal_from: str | None = None
    ) -> bool:
        t = job_runs
        stmt = (
            update(t)
            .where(
                and_(
                    t.c.id == job_run_id,
                    t.c.status.in_(UNFINISHED),
                    self._takeable(t, owner, steal_from),
                )
            )
            .values(lease_owner=owner, lease_expires_at=self._sql_now(lease))
        )
        with self.conn.begin():
            return self.conn.execute(stmt).rowcount == 1

    @writes
    def release_job_run(self, job_run_id: str, owner: str) -> None:
        t = job_runs
        stmt = (
            update(t)
            .where(and_(t.c.id == job_run_id, t.c.lease_owner == owner))
            .values(lease_owner=None, lease_expires_at=None)
        )
        with self.conn.begin():
            self.conn.execute(stmt)

    @writes
    def reopen_job_run(
        self,
        job_run_id: str,
        owner: str | None = None,
        lease: timedelta | None = None,
        *,
        steal_from: str | None = None,
    ) -> bool:
        t = job_runs
        where = and_(t.c.id == job_run_id, t.c.status == "Failed")
        values: dict[str, Any] = {"status": "InProgress", "completed_at": None}
        if owner is not None and lease is not None:
            where = and_(where, self._takeable(t, owner, steal_from))
            values.update(lease_owner=owner, lease_expires_at=self._sql_now(lease))
        with self.conn.begin():
            return self.conn.execute(update(t).where(where).values(**values)).rowcount == 1

    @writes
    def record_job_run_status(
        self,
        job_run_id: str,
        owner: str,
        status: str,
        *,
        started: bool,
        completed: bool,
        failed: Collection[str] = (),
    ) -> bool:
        t, e = job_runs, executions
        values: dict[str, Any] = {"status": status}
        where = and_(t.c.id == job_run_id, t.c.lease_owner == owner, t.c.status.in_(UNFINISHED))
        if started:
            values["started_at"] = func.coalesce(t.c.started_at, self._sql_now())
        if completed:
            values["completed_at"] = self._sql_now()
            # In the same statement as the write: a retry that committed after the caller
            # read its executions makes this end untrue, and it is not recorded.
            changed: ColumnElement[bool] = e.c.runtime_status.in_(UNFINISHED)
            if failed:
                changed = or_(
                    changed, and_(e.c.id.in_(list(failed)), e.c.runtime_status != "Failed")
                )
            where = and_(where, ~exists().where(and_(e.c.job_run_id == t.c.id, changed)))
        stmt = update(t).where(where).values(**values)
        with self.conn.begin():
            return self.conn.execute(stmt).rowcount == 1

    @writes
    def cancel_job_run_between(self, job_run_id: str, started: int) -> bool:
        t, e = job_runs, executions
        mine = e.c.job_run_id == t.c.id
        moved = or_(
            exists().where(and_(mine, e.c.runtime_status.in_(UNFINISHED))),
            select(func.count()).where(mine).scalar_subquery() != started,
        )
        where = and_(t.c.id == job_run_id, t.c.status.in_(UNFINISHED), ~moved)
        stmt = update(t).where(where).values(status="Cancelled", completed_at=self._sql_now())
        with self.conn.begin():
            # PostgreSQL: a start of its next workflow holds this row (FOR SHARE) until it
            # commits, and the UPDATE's snapshot, taken after, then sees that workflow.
            self.conn.execute(select(t.c.id).where(t.c.id == job_run_id).with_for_update())
            return self.conn.execute(stmt).rowcount == 1

    @reads
    def job_runs_to_advance(self, limit: int) -> list[str]:
        t, e = job_runs, executions
        busy = exists().where(and_(e.c.job_run_id == t.c.id, e.c.runtime_status.in_(UNFINISHED)))
        stmt = (
            select(t.c.id)
            .where(and_(t.c.status.in_(UNFINISHED), ~busy))
            .order_by(t.c.created_at)
            .limit(limit)
        )
        with self.reading():
            return [r[0] for r in self.conn.execute(stmt)]
