"""Executions: start, run and control them (SPEC §4, §5, §6); reading them is
:mod:`flowledger.app.execution_reads`.

Every face calls these operations and nothing below them: the rules (what a start
checks, what "carry on here" means after a cancel) live here once.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from flowledger.app.changes import ChangeHub
from flowledger.app.cursors import CursorCodec
from flowledger.app.execution_reads import ExecutionReads
from flowledger.app.inputs import check_json_size
from flowledger.app.models import (
    CancelExecution,
    RerunExecution,
    RetryExecution,
    RunExecution,
    StartExecution,
    SubmitInput,
)
from flowledger.app.slots import Slots
from flowledger.codec import loads
from flowledger.config import Limits
from flowledger.definition.compiled import CompiledWorkflow
from flowledger.errors import ConflictError, DefinitionError
from flowledger.logs import log_extra
from flowledger.runtime.control import holder_wait
from flowledger.runtime.engine import Engine
from flowledger.runtime.job_runs import JobRuns
from flowledger.runtime.observer import EventCallback
from flowledger.runtime.orphans import (
    abandoned,
    adopt_abandoned,
    left_by_same_run,
)
from flowledger.runtime.status import ExecutionStatus
from flowledger.storage.base import Row
from flowledger.types import ExecutionDocument

log = logging.getLogger(__name__)

# How long a control verb carried on here (``settle``) watches an execution that a live
# process elsewhere holds, for that process to act on what was sent (the HTTP API's
# answer waits as long): runtime.control.holder_wait, a few of the holder's looks for
# signals. A holder known to be gone (its pid ended on this host, its lease lapsed) is
# not waited for: the execution is taken over and carried on here at once.
#: How often that watch looks again (a holder found gone is taken over then).
WATCH_INTERVAL = 0.1


@dataclass(frozen=True)
class Adopted:
    """An execution that a stopped ``run`` left unfinished, finished by this one:
    reported once before it runs (``status`` None) and once after."""

    execution_id: str
    workflow: str
    status: str | None
    #: Left by a run of the same version, input and correlation id: carried on as this
    #: run's own execution (reported once, before it runs), not finished apart.
    resumed: bool = False


@dataclass(frozen=True)
class Retried:
    """What a retry did: the failed steps started again, and the execution after."""

    steps: builtins.list[str]
    execution: ExecutionDocument


class FindWorkflow(Protocol):
    """``Workflows.find``: what a start names, compiled."""

    def __call__(
        self,
        workflow: str | CompiledWorkflow,
        version: int | None = None,
        allow_file: bool = False,
        runs_here: bool = True,
    ) -> Awaitable[CompiledWorkflow]: ...


class Executions(ExecutionReads):
    """The execution operations of one application (see :class:`flowledger.app.App`):
    starting and control here, reading in :class:`ExecutionReads`."""

    def __init__(
        self,
        engine: Engine,
        codec: Callable[[], Awaitable[CursorCodec]],
        wake: Callable[[], Awaitable[None]],
        find: FindWorkflow,
        limits: Limits | None = None,
        *,
        hub: ChangeHub | None = None,
        slots: Slots | None = None,
        check_children: Callable[[CompiledWorkflow], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(engine, codec, limits, hub=hub, slots=slots)
        self._check_children = check_children
        self._wake = wake
        self._find = find

    # -- starting -----------------------------------------------------------------------------

    async def start(self, request: StartExecution) -> ExecutionDocument:
        """Create the execution (``NotStarted``) and wake the workers to run it; with
        ``hold`` it is leased to this process instead, which must drive it."""
        check_json_size(request.input, self._limits.max_input, "input")
        workflow = await self._find(
            request.workflow, request.version, request.allow_file, runs_here=request.hold
        )
        if request.idempotency_key is not None:  # never with hold (StartExecution)
            document = await self._engine.start_once(
                workflow,
                request.input,
                request.idempotency_key,
                correlation_id=request.correlation_id,
                created_by=request.created_by,
            )
        else:
            document = await self._engine.start_document(
                workflow,
                request.input,
                correlation_id=request.correlation_id,
                created_by=request.created_by,
                hold=request.hold,
            )
        self._hub.touched(str(document["id"]), 1, 1)  # its execution.created event
        if not request.hold:
            await self._wake()
        return document

    async def run(
        self,
        request: RunExecution,
        *,
        on_events: EventCallback | None = None,
        on_adopted: Callable[[Adopted], None] | None = None,
        on_started: Callable[[str], None] | None = None,
    ) -> ExecutionDocument:
        """Start the workflow and run it to its end here; return the final document.
        ``on_started(execution_id)`` hears the id once it is stored (before the first
        step runs); ``on_events(execution_id, events)`` sees every commit (live progress)."""
        check_json_size(request.input, self._limits.max_input, "input")
        engine = self._engine
        workflow = await self._find(request.workflow, None, request.allow_file)
        if self._check_children is not None:
            # Decision: run refuses, before it stores anything, a child workflow that is
            # not pushed, as it runs the steps now; start does not (the workers run it
            # later, and the child may be pushed by then): its step fails if it is not.
            await self._check_children(workflow)
        resumed = None
        if request.finish_abandoned:
            left = await adopt_abandoned(
                engine.store, engine.owner, engine.lease, workflow.name, request.created_by
            )
            if request.resume_same and left:
                version = await engine.register(workflow)
                resumed = await left_by_same_run(
                    engine.store,
                    left,
                    workflow,
                    version_id=version.id,
                    given=request.input,
                    correlation_id=request.correlation_id,
                )
            for execution_id in left:
                if execution_id == resumed:
                    continue
                if on_adopted is not None:
                    on_adopted(Adopted(execution_id, workflow.name, None))
                done = await engine.drive(execution_id, document=False)
                if on_adopted is not None:
                    on_adopted(Adopted(execution_id, workflow.name, done["runtimeStatus"]))
        if resumed is not None:
            if on_adopted is not None:
                on_adopted(Adopted(resumed, workflow.name, None, resumed=True))
            execution_id = resumed
        else:
            execution_id = await engine.start(
                workflow,
                request.input,
                correlation_id=request.correlation_id,
                created_by=request.created_by,
                hold=True,
            )
        if on_started is not None:
            on_started(execution_id)
        if on_events is not None:
            engine.on_events(on_events)
        return await engine.drive(execution_id)

    # -- control ------------------------------------------------------------------------------

    async def cancel(self, request: CancelExecution) -> ExecutionDocument:
        """Record a cancel (children too); ConflictError when it already ended. With
        ``settle``, it is carried on here: taken over when its holder is gone, watched
        for a moment while a live process elsewhere holds it (``pendingSignals`` when that
        process has not acted on it yet); and the descendants it cancelled that nobody runs
        (parked, waiting for input, held by a process that died) are cancelled here too,
        rather than by the next worker. Those still running elsewhere after that moment are
        listed as ``pendingChildren`` (their holders cancel them).

        The moment (runtime.control.holder_wait) is one for the whole tree, the execution and then
        its descendants: before, the parent's run here waited 10 s for children another
        process held, then the descendants were watched 5 s more (tour 19: 11 s for a
        parent whose children a killed worker held, 16 s with a frozen one)."""
        await self._engine.cancel(request.id, by=request.by, reason=request.reason)
        if not request.settle:
            return _cancel_taken(await self._carry_on(request.id, False, wait=request.wait))
        until = _deadline(holder_wait())
        document = _cancel_taken(await self._carry_on(request.id, True, until=until))
        if ExecutionStatus(document["runtimeStatus"]).terminal:
            pending = await self._settle_descendants(request.id, until, watch=True)
            if pending:
                document = await self._document(request.id)
                document["pendingChildren"] = pending
        # Not ended: a live holder has not taken the cancel yet, nor told its children.
        return document

    async def _settle_descendants(
        self, execution_id: str, until: float, *, watch: bool
    ) -> builtins.list[str]:
        """Carry on here the unfinished descendants of the ended ``execution_id`` that
        nobody runs (parked, waiting for input, their holder gone: taken over), which
        its end told to cancel; with ``watch``, watch the others until ``until`` (the
        loop's time), taking over any whose holder is found gone meanwhile (a killed
        worker's pid lingers until it is reaped; a lease lapses). Returns those still
        unfinished after: live holders elsewhere cancel them.

        One that ends is looked into (its end told its own children to cancel); one still
        running elsewhere is not: its children are told when its holder takes the cancel,
        and one taken over here before that would be run, not cancelled."""
        loop = asyncio.get_running_loop()
        watched = await self._unfinished_children(execution_id)
        while True:
            left: builtins.list[str] = []
            while watched:
                child_id = watched.pop(0)
                row = await self._engine.store.get_execution(child_id)
                if row is None:
                    continue
                status = str(row["runtime_status"])
                if not ExecutionStatus(status).terminal and abandoned(
                    row, self._engine.clock.lease_now()
                ):
                    settled = await self._settle_here(child_id, max(0.0, until - loop.time()))
                    if settled is not None:
                        status = settled["runtimeStatus"]
                if ExecutionStatus(status).terminal:
                    watched += await self._unfinished_children(child_id)
                else:
                    left.append(child_id)
            if not left or not watch or loop.time() >= until:
                return left
            await asyncio.sleep(WATCH_INTERVAL)
            watched = left

    async def _unfinished_children(self, execution_id: str) -> builtins.list[str]:
        """The child executions of ``execution_id``'s steps that have not ended."""
        store = self._engine.store
        found = []
        for step in await store.get_step_executions(execution_id):
            for child_id in loads(step["children"]) or []:
                child = await store.get_execution(child_id)
                if child is not None and not ExecutionStatus(child["runtime_status"]).terminal:
                    found.append(child_id)
        return found

    async def _settle_cancelled_tree(self, document: Mapping[str, Any], until: float) -> None:
        """What ran here ended its tree (a child's answer failed it, which failed its
        parent): the siblings that parent told to cancel and nobody runs (parked, waiting
        for input) are cancelled here too, as ``cancel`` does, not left listed as
        AwaitingUserInput until a worker runs."""
        root_id = document.get("rootWorkflowExecutionId") or document["id"]
        status = document["runtimeStatus"]
        if root_id != document["id"]:
            root = await self._engine.store.get_execution(root_id)
            status = root["runtime_status"] if root is not None else None
        if status is not None and ExecutionStatus(status).terminal:
            await self._settle_descendants(root_id, until, watch=False)

    async def retry(
        self,
        request: RetryExecution,
        *,
        on_events: EventCallback | None = None,
        on_retried: Callable[[builtins.list[str]], None] | None = None,
    ) -> Retried:
        """Re-run the failed steps of a failed execution in place (attempt + 1).
        ``on_events``: as :meth:`run`'s, for what runs here when it ``settle``s;
        ``on_retried(steps)`` hears which steps run again once that is recorded, before
        they run (a face says so before their lines)."""
        steps = await JobRuns(self._engine).retry_execution(request.id, by=request.by)
        if on_retried is not None:
            on_retried(steps)
        document = await self._carry_on(request.id, request.settle, on_events, request.wait)
        return Retried(steps, document)

    async def rerun(
        self, request: RerunExecution, *, on_events: EventCallback | None = None
    ) -> ExecutionDocument:
        """A new execution reusing the outputs of the steps before ``from_step``; returns
        the new execution (its ``rerunOf`` is the original). ``on_events``: as retry's.
        ConflictError while the original has not ended (runtime.control)."""
        new_id = await self._engine.rerun(
            request.id, request.from_step, version=request.version, by=request.by
        )
        return await self._carry_on(new_id, request.settle, on_events)

    async def submit_input(
        self, request: SubmitInput, *, on_events: EventCallback | None = None
    ) -> ExecutionDocument:
        """Hand a waiting step its data (InputError when its schema refuses it).
        ``on_events``: as retry's."""
        check_json_size(request.data, self._limits.max_input, "data")
        await self._engine.submit_input(
            request.id, request.step, request.data, submitted_by=request.by
        )
        return await self._carry_on(request.id, request.settle, on_events, request.wait)

    async def _carry_on(
        self,
        execution_id: str,
        settle: bool,
        on_events: EventCallback | None = None,
        wait: float = 0.0,
        until: float | None = None,
    ) -> ExecutionDocument:
        """With ``settle``, carry the execution on here, a live holder elsewhere watched
        until ``until`` (the loop's time; ``holder_wait()`` from now when not given);
        without, wake the workers and answer once it acted, or after ``wait`` seconds."""
        if settle:
            if on_events is not None:
                self._engine.on_events(on_events)
            if until is None:
                until = _deadline(holder_wait())
            loop = asyncio.get_running_loop()
            settled = await self._settle_here(execution_id, max(0.0, until - loop.time()))
            if settled is not None:
                await self._settle_cancelled_tree(settled, until)
                document = await self._job_run_moves_on(settled)
                if not ExecutionStatus(document["runtimeStatus"]).terminal:
                    # Waiting for people, or held by a live process elsewhere: read again,
                    # with what it has not acted on yet (pendingSignals).
                    document = await self._document(execution_id)
                return document
        await self._wake()  # workers here too, not only other processes
        return await self._acted_on(execution_id, wait)

    async def _acted_on(self, execution_id: str, wait: float) -> ExecutionDocument:
        """The execution once it has acted on every signal sent to it so far (a cancel,
        an input: its runner takes them all at once), or ended; after ``wait`` seconds,
        as it is then, with ``pendingSignals`` (as every read of it has). Decision (the
        tour's cancel answered with ``AwaitingUserInput``): a control verb answers the
        state after the change, or says that the change is accepted and pending, never a
        stale state as if it were the answer. Waiting is not running: the workers act
        (the ones here are woken)."""
        with self._hub.subscribe(execution_id) as sub:
            row = await self._row(execution_id)
            sent = int(row.get("signals_sent") or 0)
            if wait > 0:
                await self._wait_for(sub, row, lambda now: not _unacted(now, sent), wait)
        return await self._document(execution_id)

    async def _settle_here(self, execution_id: str, wait: float) -> ExecutionDocument | None:
        """Carry the execution on in this process (a live holder elsewhere watched for up
        to ``wait`` seconds); None when it cannot be, its workflow needing step types this
        process lacks (a plugin). A cancel needs no handler and is applied all the same;
        anything else sent stays recorded for a process that has them."""
        try:
            return await self._engine.settle(execution_id, wait=wait)
        except DefinitionError as exc:
            document = await self._engine.apply_cancel(execution_id, wait=wait)
            if ExecutionStatus(document["runtimeStatus"]).terminal:
                return document
            log.info(
                "execution %s cannot be run here (%s); recorded for a worker",
                execution_id,
                exc.problems[0].message if exc.problems else exc,
                extra=log_extra("settle", execution_id),
            )
            return None

    async def _job_run_moves_on(self, document: ExecutionDocument) -> ExecutionDocument:
        """An execution of a job run that ended here moves its job run on here (its
        record, and its next workflow queued), not only when a worker next looks."""
        job_run_id = document.get("jobRunId")
        if job_run_id and ExecutionStatus(document["runtimeStatus"]).terminal:
            await JobRuns(self._engine).advance(job_run_id)
        return document


def _cancel_taken(document: ExecutionDocument) -> ExecutionDocument:
    """The cancel's answer: the execution once it took the cancel, or still going
    (pending). One that ended otherwise (Completed, Failed) ended before its runner
    looked for signals: the cancel changed nothing, which a 200 with that status hid
    (tour 22C: 20 of 30 cancels sent in a run's last half second), so it is the conflict
    a cancel of an ended execution is. Its cancel signal stays unconsumed, unread: nothing
    reads the signals of an ended execution."""
    status = ExecutionStatus(document["runtimeStatus"])
    if status.terminal and status != ExecutionStatus.CANCELLED:
        raise ConflictError(f"execution {document['id']} ended {status} before it took the cancel")
    return document


def _deadline(seconds: float) -> float:
    """The running loop's time ``seconds`` from now."""
    return asyncio.get_running_loop().time() + seconds


def _unacted(row: Row, sent: int) -> bool:
    """Signals up to the ``sent``-th are not all taken yet, and the execution goes on."""
    if ExecutionStatus(row["runtime_status"]).terminal:
        return False
    return int(row.get("signals_taken") or 0) < sent
