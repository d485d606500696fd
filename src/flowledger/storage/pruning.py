"""Storage of pruning: finding finished executions old enough, and deleting them with
everything they hold, a few at a time (each batch its own short transaction)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    delete,
    exists,
    not_,
    or_,
    select,
    union_all,
)

from flowledger.storage.schema import FINISHED, events, executions, signals, step_executions
from flowledger.storage.schema_artifacts import artifacts
from flowledger.storage.schema_jobs import job_runs
from flowledger.storage.schema_ops import step_logs
from flowledger.storage.schema_webhooks import deliveries
from flowledger.storage.sqlpart import SQLPart, reads, writes

#: ``SQLPruneStore._search`` by number of statuses (the same for every store: no values).
_SEARCHES: dict[int, Select[str]] = {}


class PruneStore(ABC):
    @abstractmethod
    async def prunable_executions(
        self, before: datetime, statuses: Sequence[str], limit: int
    ) -> list[str]:
        """Up to ``limit`` ids of executions that ended (in ``statuses``) before ``before``
        and have no child executions left, the first created first."""

    @abstractmethod
    async def count_prunable(self, before: datetime, statuses: Sequence[str]) -> int:
        """How many executions pruning would delete: those that match and whose every
        descendant matches too (a parent goes only after its children)."""

    @abstractmethod
    async def delete_executions(
        self, ids: Sequence[str], before: datetime, statuses: Sequence[str]
    ) -> list[str]:
        """Delete those of ``ids`` that still match (status, age, no children), with their
        steps, events, signals, step logs, artifact rows and sent webhook deliveries, in
        one transaction; the ids deleted."""


class SQLPruneStore(SQLPart, PruneStore):
    """An execution can be pruned in a FINISHED status (a retry may still move a Failed one
    back to InProgress: the delete checks again under its lock), idle since ``before``,
    with no unfinished job run reading it and no child left."""

    def _matching(self, before: datetime, statuses: Sequence[str]) -> ColumnElement[bool]:
        return and_(
            executions.c.runtime_status.in_([s for s in statuses if s in FINISHED]),
            self._idle_since(before),
        )

    def _idle_since(self, before: datetime | BindParameter[Any]) -> ColumnElement[bool]:
        t = executions
        # An unfinished job run still reads its items' executions, and a finished one goes
        # whole, with the last of them (delete_executions): judged by its own end, which
        # comes after theirs, its executions all go in the same prune. Pruned one by one,
        # a job run said "Completed" about workflows it then reported as never started.
        old_job = exists().where(job_runs.c.id == t.c.job_run_id, job_runs.c.completed_at < before)
        return and_(t.c.last_activity_at < before, or_(t.c.job_run_id.is_(None), old_job))

    def _childless(self) -> ColumnElement[bool]:
        child = executions.alias("child")  # Core, not the ORM: importing that costs
        return not_(exists().where(child.c.parent_id == executions.c.id))

    def _root_goes_too(
        self, before: datetime | BindParameter[Any], statuses: Sequence[Any]
    ) -> ColumnElement[bool]:
        """A child goes only with its tree: its root is gone already or is pruned too.
        A finished child of a parent that still runs or waits is part of its parent's
        work (its output, the retry that reuses it), whatever its own age."""
        t, root = executions, executions.alias("root")
        staying_root = exists().where(
            root.c.id == t.c.root_id,
            not_(
                and_(
                    root.c.runtime_status.in_(statuses),
                    root.c.last_activity_at < before,
                    or_(
                        root.c.job_run_id.is_(None),
                        not_(
                            exists().where(
                                job_runs.c.id == root.c.job_run_id,
                                job_runs.c.completed_at.is_(None),
                            )
                        ),
                    ),
                )
            ),
        )
        return or_(t.c.root_id.is_(None), not_(staying_root))

    @reads
    def prunable_executions(
        self, before: datetime, statuses: Sequence[str], limit: int
    ) -> list[str]:
        chosen = [s for s in statuses if s in FINISHED]
        if not chosen:
            return []
        # One search per status, each walking ``ix_executions_status`` (status, then
        # ``created_at``) from its oldest row and stopping at ``limit``; the batch is the
        # oldest of them all. One condition over all the statuses instead left both
        # databases sorting every finished execution on every batch
        # (bench/history_bench.py). An execution is created before it was last active, so
        # ``created_at`` bounds the walk (else a prune's last search would walk every
        # execution that ended since ``before``) as ``last_activity_at`` filters it. Both
        # come from the clocks of the processes that share the database: a skew between
        # them only leaves the few at the edge to the next prune.
        values: dict[str, object] = {"before": before, "limit": limit}
        values.update((f"status{i}", status) for i, status in enumerate(chosen))
        with self.reading() as conn:
            # Else PostgreSQL sorts every finished execution of a status whenever its
            # statistics say there are few (a history it has not analyzed yet).
            self._in_index_order(conn)
            return [r[0] for r in conn.execute(self._search(len(chosen)), values)]

    def _search(self, statuses: int) -> Select[str]:
        """The search of ``prunable_executions`` over that many statuses, built once: it
        is made of the very conditions the delete checks, and building it each time cost
        more than running it (6 against 1 ms a batch)."""
        found = _SEARCHES.get(statuses)
        if found is not None:
            return found
        t = executions
        before = bindparam("before", type_=t.c.created_at.type)
        limit = bindparam("limit", type_=Integer)
        every_status: list[BindParameter[Any]] = [bindparam(f"status{i}") for i in range(statuses)]
        searches = [
            select(t.c.id, t.c.created_at)
            .where(
                t.c.runtime_status == bindparam(f"status{i}"),
                t.c.created_at < before,
                self._idle_since(before),
                self._childless(),
                self._root_goes_too(before, every_status),
            )
            .order_by(t.c.created_at, t.c.id)
            .limit(limit)
            .subquery()
            for i in range(statuses)
        ]
        union = union_all(*(select(s.c.id, s.c.created_at) for s in searches)).subquery()
        query = select(union.c.id).order_by(union.c.created_at, union.c.id).limit(limit)
        _SEARCHES[statuses] = query
        return query

    @reads
    def count_prunable(self, before: datetime, statuses: Sequence[str]) -> int:
        t = executions
        chosen = [s for s in statuses if s in FINISHED]
        with self.reading():
            parent_of = {
                r[0]: r[1]
                for r in self.conn.execute(
                    select(t.c.id, t.c.parent_id).where(self._matching(before, statuses))
                )
            }
            # Children whose root stays (it runs, waits, or is kept) stay with it.
            rooted = {
                r[0]
                for r in self.conn.execute(
                    select(t.c.id).where(
                        self._matching(before, statuses),
                        not_(self._root_goes_too(before, chosen)),
                    )
                )
            }
            # Executions that stay have their ancestors stay too.
            staying_children_of = {
                r[0]
                for r in self.conn.execute(
                    select(t.c.parent_id)
                    .distinct()
                    .where(t.c.parent_id.is_not(None), not_(self._matching(before, statuses)))
                )
            }
        kept: set[str] = set(rooted)
        for parent in staying_children_of:
            while parent in parent_of and parent not in kept:
                kept.add(parent)
                parent = parent_of[parent]
        return len(parent_of) - len(kept)

    @writes
    def delete_executions(
        self, ids: Sequence[str], before: datetime, statuses: Sequence[str]
    ) -> list[str]:
        t = executions
        with self.conn.begin():
            # Locked (PostgreSQL): a retry or a new child waits for this short transaction,
            # and the conditions are checked again on the rows as they are now.
            chosen = [s for s in statuses if s in FINISHED]
            locked = select(t.c.id).where(
                t.c.id.in_(list(ids)),
                self._matching(before, statuses),
                self._childless(),
                self._root_goes_too(before, chosen),
            )
            gone = [r[0] for r in self.conn.execute(locked.with_for_update(of=t))]
            if not gone:
                return []
            for table in (step_logs, events, signals, step_executions, artifacts):
                self.conn.execute(delete(table).where(table.c.execution_id.in_(gone)))
            self.conn.execute(
                delete(deliveries).where(
                    deliveries.c.execution_id.in_(gone), deliveries.c.status != "pending"
                )
            )
            runs = select(t.c.job_run_id).where(t.c.id.in_(gone), t.c.job_run_id.is_not(None))
            job_run_ids = [r[0] for r in self.conn.execute(runs.distinct())]
            self.conn.execute(delete(t).where(t.c.id.in_(gone)))
            if job_run_ids:  # a job run goes with the last of its executions
                left = exists().where(executions.c.job_run_id == job_runs.c.id)
                self.conn.execute(
                    delete(job_runs).where(job_runs.c.id.in_(job_run_ids), not_(left))
                )
        return gone
