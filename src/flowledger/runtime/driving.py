"""Driving an execution here: take its lease, run it with a runner, give it back.

The engine's ``drive``, ``run``, ``settle`` and a worker's ``run_owned`` all come here:
one run of an execution per engine (runtime.running), its lease kept by one heartbeat
for all drives (runtime.drive_leases), its children run beside it
(runtime.child_runs).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from flowledger.definition.compiled import CompiledWorkflow
from flowledger.errors import (
    HeldElsewhereError,
    LeaseLostError,
)
from flowledger.runtime.catalog import Catalog
from flowledger.runtime.child_runs import ChildRuns
from flowledger.runtime.drive_leases import DriveLeases
from flowledger.runtime.ids import known_execution_id
from flowledger.runtime.missing import execution_row
from flowledger.runtime.observer import ExecutionInfo, Observers
from flowledger.runtime.orphans import abandoned, holder_words, owner_is_dead
from flowledger.runtime.recovery import restore
from flowledger.runtime.runner import ExecutionRunner
from flowledger.runtime.running import Run, RunsHere, closed_error
from flowledger.runtime.services import Services
from flowledger.runtime.status import ExecutionStatus
from flowledger.runtime.tracing import execution_info
from flowledger.storage import Row, Store
from flowledger.timeutil import Clock
from flowledger.traceparent import TRACEPARENT, own_traceparent
from flowledger.types import ExecutionDocument

#: How long a finished parent waits for children it ran here to wind down.
CHILD_GRACE = 10.0


def unacted(row: Row) -> bool:
    """Signals (input, a cancel) were sent to the execution that it has not taken yet."""
    return int(row.get("signals_sent") or 0) > int(row.get("signals_taken") or 0)


class Driving:
    """The drives of one engine: ``store`` and ``services`` are the engine's (while it is
    open), ``get_execution`` its Engine.get_execution, ``check_loop`` its
    Engine._check_loop."""

    def __init__(
        self,
        runs: RunsHere,
        catalog: Catalog,
        *,
        store: Callable[[], Store],
        services: Callable[[], Services | None],
        get_execution: Callable[[str], Awaitable[ExecutionDocument]],
        check_loop: Callable[[], None],
        owner: str,
        lease: timedelta,
        clock: Clock,
        observers: Observers,
        otel: bool,
    ) -> None:
        self._runs = runs
        self._catalog = catalog
        self._store = store
        self._services = services
        self._get_execution = get_execution
        self._check_loop = check_loop
        self._owner = owner
        self._lease = lease
        self._clock = clock
        self._observers = observers
        self._otel = otel
        self.leases = DriveLeases(store, owner, lease, clock)
        self._children = ChildRuns(runs, self.drive, store, lease)
        #: Executions this engine drives right now (``drive``/``run``): with more than one,
        #: their rounds share transactions (group commit), as a worker's do.
        self.driving = 0

    async def drive(
        self,
        execution_id: str,
        document: bool,
        held: Row | None = None,
        workflow: CompiledWorkflow | None = None,
        steal_from: str | None = None,
    ) -> Mapping[str, Any]:
        """Engine.drive; ``held``: the row Engine.start just wrote, leased to this engine;
        ``steal_from``: a holder known to be dead, whose lease is taken at once.

        A drive of an execution this engine runs already (another ``drive``, ``settle``
        or ``run``, a worker's run on this engine) joins it: it waits for that run to
        stop, then answers the execution as it left it, or carries it on from there when
        that run stopped short of an end or a wait for people (cancelled, closed, parked
        on a timer by a worker). Before 2026-12 it took the lease from the first (the
        same owner may always take its own): the step running was run twice and its
        first attempt recorded as cut by a process that stopped, which was untrue.
        """
        self._check_loop()
        known_execution_id(execution_id)
        joined = False
        while (ahead := self._runs.by_id.get(execution_id)) is not None:
            await ahead.done.wait()
            joined = True
        if self._runs.closing:
            raise closed_error(execution_id)
        entry = self._runs.enter(execution_id, asyncio.current_task())
        try:
            return await self._drive_here(
                execution_id, document, held, workflow, steal_from, entry, joined
            )
        finally:
            self._runs.leave(execution_id, entry)

    async def _holder(self, execution_id: str) -> str:
        """Who holds the execution now, in words (for an error message)."""
        row = await self._store().get_execution(execution_id)
        return holder_words(row["lease_owner"] if row else None, self._owner)

    async def _row(self, execution_id: str) -> Row:
        return await execution_row(self._store(), execution_id)

    async def _drive_here(
        self,
        execution_id: str,
        document: bool,
        held: Row | None,
        workflow: CompiledWorkflow | None,
        steal_from: str | None,
        entry: Run,
        joined: bool,
    ) -> Mapping[str, Any]:
        """``drive`` once nothing else here runs the execution.

        Store round trips per run (each a thread hop, see storage.lanes): the lease is
        taken and the row read back in one write (``acquire_lease_row``), or not at all
        for a ``held`` row (created leased: epoch 1 is ours, and execution_rows writes
        every column, so that row is what the database holds; tests/runtime check it);
        an execution that ends gives its lease up in its last round (Journal.release_lease),
        and one left waiting (for people, or parked) in a release that hands back the final
        row (``release_lease_row``), so nothing is read again but the document (one
        ``read_execution``). The take and the release join those of the other executions
        driven meanwhile (storage.leasegroup).
        """
        row = held if held is not None else await self._row(execution_id)
        final_status = str(row["runtime_status"])
        waits = final_status == ExecutionStatus.AWAITING_USER_INPUT and not unacted(row)
        if not ExecutionStatus(final_status).terminal and not (joined and waits):
            owned = held
            if owned is None:
                owned = await self._store().acquire_lease_row(
                    execution_id, self._owner, self._lease, steal_from=steal_from
                )
            if owned is None:
                holder = holder_words(row["lease_owner"], self._owner)
                raise HeldElsewhereError(
                    f"execution {execution_id} is being run by {holder} right now"
                )
            if ExecutionStatus(owned["runtime_status"]).terminal:
                # Another process ended it between our read and our take: nothing to run.
                await self._store().release_lease_row(execution_id, int(owned["lease_epoch"]), None)
                if not document:
                    return {"id": execution_id, "runtimeStatus": owned["runtime_status"]}
                return await self._get_execution(execution_id)
            epoch = int(owned["lease_epoch"])
            self._observers.claimed(execution_id, epoch, from_owner=row["lease_owner"])
            current = asyncio.current_task()
            lost_lease = False

            def lost() -> None:
                # Another process owns it now; our writes would be refused anyway.
                nonlocal lost_lease
                lost_lease = True
                if current is not None:
                    current.cancel()

            keeper = self.leases.hold(execution_id, epoch, lost)
            parked_until = None
            released: Row | None = None
            ended = False
            self.driving += 1
            try:
                status, parked_until = await self.run_owned(
                    execution_id,
                    row=owned,
                    on_release=lambda: keeper.drop(execution_id, epoch),
                    workflow=workflow,
                )
                # Ended: its last round released the lease (Journal.release_lease).
                final_status, ended = str(status), status.terminal
            except asyncio.CancelledError:
                # Stopped midway (Ctrl-C): claimable at once, an AwaitingUserInput row too
                # (claimed only once its wake_at has come: see ExecutionRunner._take_up_waiting).
                parked_until = self._clock.lease_now()
                if entry.closed and current is not None:  # close() stopped it, not our caller
                    current.uncancel()
                    raise closed_error(execution_id) from None
                if not lost_lease:
                    raise
                raise LeaseLostError(
                    f"execution {execution_id} was taken over by "
                    f"{await self._holder(execution_id)} after this Engine failed to renew "
                    "its lease in time; it goes on there"
                ) from None
            except LeaseLostError:
                parked_until = self._clock.lease_now()  # as below (the release is refused anyway)
                raise LeaseLostError(
                    f"execution {execution_id} was taken over by "
                    f"{await self._holder(execution_id)} while this Engine ran it (its lease "
                    "lapsed); this Engine's last changes were not written, and it goes on "
                    "there"
                ) from None
            except Exception:
                parked_until = self._clock.lease_now()  # as above
                raise
            finally:
                self.driving -= 1
                await self.leases.let_go(keeper, execution_id, epoch, lost)
                if not ended:
                    # Waiting for people: claimable when a timer is due or input arrives.
                    released = await self._store().release_lease_row(
                        execution_id, epoch, parked_until
                    )
            if not ended and self._runs.closing:  # drained by close(): given back, not done
                raise closed_error(execution_id)
            if not ended:  # the row as the release left it (input may have come meanwhile)
                final = released if released is not None else await self._row(execution_id)
                final_status = str(final["runtime_status"])
        if not document:
            return {"id": execution_id, "runtimeStatus": final_status}
        # The row and its steps in one read: on SQLite a point read on the loop (no thread
        # hop; storage.lanes), which many executions driven together each pay at their end.
        return await self._get_execution(execution_id)

    def _crowded(self) -> bool:
        return self.driving > 1

    async def run_owned(
        self,
        execution_id: str,
        *,
        park_after: float | None = None,
        drain: asyncio.Event | None = None,
        group_commits: bool = False,
        row: Row | None = None,
        on_release: Callable[[], None] | None = None,
        workflow: CompiledWorkflow | None = None,
    ) -> tuple[ExecutionStatus, datetime | None]:
        """Engine.run_owned."""
        # A worker's run (registered by take_up), or a drive's: a drive of it here joins.
        entry = self._runs.by_id.get(execution_id)
        mine = None
        if entry is None:
            mine = entry = self._runs.enter(execution_id, asyncio.current_task())
        try:
            return await self._run_owned(
                execution_id, entry, park_after, drain, group_commits, row, on_release, workflow
            )
        finally:
            if mine is not None:
                self._runs.leave(execution_id, mine)

    async def _run_owned(
        self,
        execution_id: str,
        entry: Run,
        park_after: float | None,
        drain: asyncio.Event | None,
        group_commits: bool,
        row: Row | None,
        on_release: Callable[[], None] | None,
        workflow: CompiledWorkflow | None,
    ) -> tuple[ExecutionStatus, datetime | None]:
        if row is None:
            row = await self._row(execution_id)
        services = self._services()
        assert services is not None
        if workflow is None:
            workflow = await self._catalog.workflow_for_version(row["workflow_version_id"])
        # The lease bumped the epoch; the row we read carries the new one. An execution
        # that ran before counts its events from them: its row's counter may lag.
        fresh = row["runtime_status"] == str(ExecutionStatus.NOT_STARTED)
        last_seq = None if fresh else await self._store().last_event_seq(execution_id)
        runner = ExecutionRunner(
            services, workflow, row, int(row["lease_epoch"]), last_seq=last_seq
        )
        if not fresh:
            restore(runner, await self._store().get_step_executions(execution_id))
        info = execution_info(workflow, row)
        runner.journal.sinks.append(lambda events: self._notify(execution_id, events, info))
        runner.journal.group_commits = group_commits
        runner.journal.on_release = on_release
        runner.journal.crowded = self._crowded
        entry.runner = runner  # close() drains it
        self._runs.watch_signals()
        if self._runs.closing:
            runner.drain()
        inline: set[asyncio.Task[None]] = set()
        over = asyncio.Event()  # this run of it ended: its children's watches end too
        children = self._children
        if park_after is None:  # run children here too, as `flowledger run` users expect
            runner.on_children = lambda ids: children.run(ids, runner, inline, over)
            waiting = [c for run in runner.children.runs.values() for c in run.children or []]
            if waiting:
                runner.on_children(waiting)
        runner.on_cancels = lambda ids: children.tell_cancelled(
            ids, inline if park_after is None else None
        )
        watcher = None
        if drain is not None:

            async def watch(event: asyncio.Event = drain) -> None:
                await event.wait()
                runner.drain()

            watcher = asyncio.create_task(watch())
        # Tracing on: its children and outgoing requests join the execution's span.
        joined = own_traceparent(execution_id, info.traceparent) if self._otel else None
        token = TRACEPARENT.set(joined) if joined is not None else None
        returned = False
        try:
            status = await runner.run(park_after)
            returned = True
        finally:
            if token is not None:
                TRACEPARENT.reset(token)
            if watcher is not None:
                watcher.cancel()
            over.set()  # what watches a child held elsewhere stops now, not after the grace
            entry.finishing = True  # waits for no timer of its own (testing.VirtualClock)
            # Left waiting for people, a `run` lets the children it runs reach theirs too (a
            # delay beside a child's question ran out CHILD_GRACE, then was cut).
            waits = returned and park_after is None and not runner.draining
            if inline and waits and status == ExecutionStatus.AWAITING_USER_INPUT:
                await asyncio.wait(inline)
            if inline:  # children told to cancel end within a poll; others already ended
                _, late = await asyncio.wait(inline, timeout=CHILD_GRACE)
                for task in late:  # still waiting on another process: workers finish those
                    task.cancel()
            runner.on_children = runner.on_cancels = None  # they hold the runner: a cycle
            entry.runner = None
        return status, runner.parked_until

    def _notify(
        self, execution_id: str, rows: Callable[[], list[Row]], info: ExecutionInfo
    ) -> None:
        if self._observers:  # the round's event rows are made for observers only
            self._observers.committed(execution_id, rows(), info)

    async def carry_on(
        self, execution_id: str, wait: float, workflow: CompiledWorkflow | None = None
    ) -> Mapping[str, Any]:
        """Drive the execution; while another process holds it, watch it: until it has
        ended or waits for people with nothing left to act on (an input or a cancel just
        sent is not yet taken while it still shows AwaitingUserInput), or ``wait``
        seconds have passed; or, once its holder is gone (a dead pid on this host, a
        lapsed or released lease), take it over and drive it here. Before 2026-12 a dead
        holder was watched for the whole wait: a cancel from the command line waited 30 s,
        then failed, the execution left InProgress until a worker came."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        steal_from = None
        took_over = False
        while True:
            try:
                return await self.drive(
                    execution_id, True, workflow=workflow, steal_from=steal_from
                )
            except (HeldElsewhereError, LeaseLostError):  # another process runs it: watch
                pass
            if took_over:  # another process was quicker (a worker): not in a tight loop
                await asyncio.sleep(0.1)
            while True:
                row = await self._row(execution_id)
                status = ExecutionStatus(row["runtime_status"])
                if status.terminal or (
                    status == ExecutionStatus.AWAITING_USER_INPUT and not unacted(row)
                ):
                    return await self._get_execution(execution_id)
                late = loop.time() >= deadline
                # Nobody runs it: take it over (once more after the time is up, at most).
                if abandoned(row, self._clock.lease_now()) and not (late and took_over):
                    holder = row["lease_owner"]
                    steal_from = holder if owner_is_dead(holder) else None
                    took_over = True
                    break
                if late:
                    return await self._get_execution(execution_id)
                await asyncio.sleep(0.1)
