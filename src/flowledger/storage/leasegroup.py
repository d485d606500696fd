"""Lease grouping: the starts, takes, releases and claims that reach the store together
share one call.

Rounds are grouped by storage.groupcommit; this does the same for what surrounds
them. Many executions started and driven on one engine (``asyncio.gather`` of
``start`` + ``drive``, or of ``run``) each insert a row, take a lease and give it
back; a worker claims more as its executions end. Each of those on its own is a
transaction (and on PostgreSQL a round trip), queued on the store's leases lane
behind whatever runs there. Here every request that arrives within one event-loop
tick, or while the previous group is being written, joins one store call
(``apply``): one transaction on SQLite; on PostgreSQL one pipelined transaction for
the leases, and one durable transaction for the new executions. The worker's
``claim_execution_rows`` and the engine's ``create_execution``, ``acquire_lease_row``
and ``release_lease_row`` all come through here, so they group with each other too.

Requests still stand alone:
- a take is a compare-and-set on its own row, so the group answers each take with
  its row or None (held by another owner), as a lone take would;
- a group whose call fails is asked again one request at a time, so a failure lands
  on the request that caused it and its neighbours get their answers;
- a second take of the same execution waits for the next group (one take per
  execution per group: both would otherwise see the row as theirs).
A caller owns its lease when its answer arrives: after the call's transaction ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from flowledger.errors import StorageError
from flowledger.storage.base import MOST_SKIPPED, Row
from flowledger.storage.schema import IN_PROGRESS_SQL, WAKING_SQL
from flowledger.storage.sqlpart import driver_message

#: When an execution may be claimed (Store.claim_executions), as SQL for both databases'
#: fixed claims (storage.leasesql, storage.pgleases): ``{t}`` the table's alias and a dot
#: (or nothing), ``{now}`` the clock (a bound parameter on SQLite, the database's own on
#: PostgreSQL). Its lease is free or lapsed, and it is due: queued or running with no
#: timer or one that has come, or waiting for input that arrived (or its due time came).
FREE_SQL = "({t}lease_owner IS NULL OR {t}lease_expires_at < {now})"
RUNNABLE_SQL = (
    FREE_SQL + " AND ("
    "({t}runtime_status IN ('NotStarted', 'InProgress') AND "
    "({t}wake_at IS NULL OR {t}wake_at <= {now})) OR "
    "({t}runtime_status = 'AwaitingUserInput' AND {t}wake_at <= {now}))"
)


def skip_slots(count: int) -> int:
    """The placeholders of a claim that leaves out ``count`` workflow versions (``skip``):
    the next power of two, the list padded with its last id (``skip_params``), so a few
    SQL texts serve every count, each prepared once by the driver. 0 for none: the claim
    without the condition, the one every claim used before (the hot path, unchanged)."""
    if count > MOST_SKIPPED:
        raise ValueError(f"a claim leaves out at most {MOST_SKIPPED} workflow versions")
    return 0 if count == 0 else 1 << (count - 1).bit_length()


def skip_params(skip: Sequence[str]) -> dict[str, str]:
    """``skip`` as the named parameters ``skip0``… of ``skip_slots(len(skip))`` slots."""
    last = len(skip) - 1
    return {f"skip{i}": skip[min(i, last)] for i in range(skip_slots(len(skip)))}


def oldest_runnable_sql(
    now: str, limit: str, lock: str = "", hint: bool = False, skip: Sequence[str] = ()
) -> list[str]:
    """The runnable executions a claim takes from, as three ``SELECT id, created_at`` of up
    to ``limit`` each: the queued ones and the running ones with no timer (free: left by a
    process that stopped), the oldest first, and those whose time has come, the soonest
    first; ``lock`` after each (PostgreSQL's ``FOR UPDATE SKIP LOCKED``). A claim takes the
    oldest of them all. Each walks an index in its order (``ix_executions_status``,
    ``ix_executions_in_progress``, ``ix_executions_waking``) and stops at ``limit``,
    stepping over only the executions running right now: what it costs does not grow with
    the history, the backlog, the executions parked or waiting for a person, or the
    statistics (bench/history_bench.py). ``hint``: name the partial indexes (SQLite, whose
    planner, with no statistics, would rather sort). ``skip``: placeholders of workflow
    version ids whose executions are left out (``LeaseWork.skip``): a condition on the row
    each list already reads for its lease, in each list, so the ``limit`` counts only
    what is taken and the index walked stays the same; what it costs is a step over each
    execution left out that is older than those taken (a backlog nobody here can run)."""
    free = FREE_SQL.format(t="", now=now)
    if skip:
        free += f" AND workflow_version_id NOT IN ({', '.join(skip)})"
    running = " INDEXED BY ix_executions_in_progress" if hint else ""
    waking = " INDEXED BY ix_executions_waking" if hint else ""
    return [
        "SELECT id, created_at FROM executions WHERE runtime_status = 'NotStarted' AND "  # noqa: S608 - fixed text
        f"wake_at IS NULL AND {free} ORDER BY created_at, id LIMIT {limit}{lock}",
        # wake_at is NULL in all of them: ordering by it too changes nothing but the plan
        # (schema: only ix_executions_in_progress gives this order).
        f"SELECT id, created_at FROM executions{running} WHERE {IN_PROGRESS_SQL} AND {free} "  # noqa: S608 - fixed text
        f"ORDER BY created_at, id, wake_at LIMIT {limit}{lock}",
        f"SELECT id, created_at FROM executions{waking} WHERE {WAKING_SQL} AND "  # noqa: S608 - fixed text
        f"wake_at <= {now} AND {free} ORDER BY wake_at LIMIT {limit}{lock}",
    ]


@dataclass
class LeaseWork:
    """One caller's request: create a new execution, or release these leases, then take
    one execution by id and/or claim up to ``claim`` runnable ones, for ``owner``."""

    #: Who takes or claims, and for how long (a release or a start needs neither).
    owner: str = ""
    lease: timedelta = timedelta(0)
    #: ``(id, epoch)``: plain releases (no timer to park on), answered with the released
    #: rows (``drive`` returns its execution's last state from them).
    releases: Sequence[tuple[str, int]] = ()
    take: str | None = None
    claim: int = 0
    #: Workflow version ids the claim leaves out (Store.claim_executions' ``skip``).
    skip: Sequence[str] = ()
    #: A new execution's row and its first events (``start``; created leased by ``run``).
    create: tuple[Row, Sequence[Row]] | None = None


@dataclass
class LeaseAnswer:
    #: The released executions' rows afterwards, by id (left out: the epoch had moved on).
    released: dict[str, Row] = field(default_factory=dict)
    #: The taken execution's row as the take left it (None: another owner holds it).
    taken: Row | None = None
    #: The claimed executions' rows, oldest first.
    claimed: list[Row] = field(default_factory=list)
    #: The created execution's id, or the id of the one that already had its trigger key.
    created: str | None = None


#: Applies many requests in one store call, answering each in order (on the store's thread).
ApplyLeases = Callable[[list[LeaseWork]], list[LeaseAnswer]]
#: Runs a store call: at once where it may (an inline write), else on the leases lane.
Submit = Callable[[Callable[[], list[LeaseAnswer]]], "asyncio.Future[list[LeaseAnswer]]"]
_Work = list[tuple[LeaseWork, "asyncio.Future[LeaseAnswer]"]]


class LeaseGroup:
    def __init__(
        self,
        apply: ApplyLeases,
        submit: Submit,
        noted: Callable[[BaseException], object] = lambda exc: None,
    ) -> None:
        self._apply = apply
        self._submit = submit
        #: The store's rule for the database's condition, which also notes it for
        #: readiness (SQLPart._trouble): a full disk first refuses starts, made here.
        self._noted = noted
        self._queue: _Work = []
        #: A flush is scheduled for this tick, or a group is being written right now.
        self._busy = False

    async def ask(self, work: LeaseWork) -> LeaseAnswer:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[LeaseAnswer] = loop.create_future()
        self._queue.append((work, future))
        if not self._busy:
            self._busy = True
            # call_soon: every request made in this tick joins the same call.
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        group: _Work = []
        later: _Work = []
        taking: set[str] = set()
        for item in self._queue:
            take = item[0].take
            if take is not None and take in taking:
                later.append(item)
                continue
            if take is not None:
                taking.add(take)
            group.append(item)
        self._queue = later
        works = [work for work, _ in group]
        written = self._call(lambda: self._apply(works))
        written.add_done_callback(lambda done: self._settle(group, done))

    def _call(self, job: Callable[[], list[LeaseAnswer]]) -> asyncio.Future[list[LeaseAnswer]]:
        """``submit``, its own failure (a closed store, say) answered like the call's."""
        try:
            return self._submit(job)
        except Exception as exc:
            failed: asyncio.Future[list[LeaseAnswer]] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            return failed

    def _settle(self, group: _Work, done: asyncio.Future[list[LeaseAnswer]]) -> None:
        exc = done.exception()
        if exc is not None and len(group) > 1:
            # Ask again one by one (queued on the lane before the next group).
            for work, future in group:
                self._alone(work, future)
        else:
            outcomes: Sequence[LeaseAnswer | BaseException] = (
                done.result() if exc is None else [exc]
            )
            if exc is not None:
                self._noted(exc)
            for (_, future), outcome in zip(group, outcomes, strict=True):
                _answer(future, outcome)
        if self._queue:  # requests that arrived while this group was written
            asyncio.get_running_loop().call_soon(self._flush)
        else:
            self._busy = False

    def _alone(self, work: LeaseWork, future: asyncio.Future[LeaseAnswer]) -> None:
        written = self._call(lambda: self._apply([work]))

        def settle(done: asyncio.Future[list[LeaseAnswer]]) -> None:
            exc = done.exception()
            if exc is not None:
                self._noted(exc)
            _answer(future, done.result()[0] if exc is None else exc)

        written.add_done_callback(settle)


def _answer(future: asyncio.Future[LeaseAnswer], outcome: LeaseAnswer | BaseException) -> None:
    if future.done():  # its waiter was cancelled meanwhile
        return
    if isinstance(outcome, LeaseAnswer):
        future.set_result(outcome)
    elif isinstance(outcome, StorageError) or not isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        detail = driver_message(outcome)  # not SQLAlchemy's text: the SQL, a link
        error = StorageError(f"the database refused a start or a lease change: {detail}")
        error.__cause__ = outcome
        future.set_exception(error)
