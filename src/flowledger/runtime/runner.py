"""The scheduler of one execution: rounds of (activate ready steps → commit → run handlers).

What differs between step kinds is asked of the kind's driver (``runtime/drivers.py``);
the status moves of the execution as a whole are made by its ExecutionLifecycle.

One coroutine owns an execution while it holds the lease. Each round applies
every finished handler, activates the steps that became ready (pure steps run
inline, inside the round), commits all of it in one transaction, and only then
launches the handlers of steps with side effects — so a crash at any point
either loses nothing or re-runs a step that had not been recorded as done.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import weakref
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from typing import Any

from flowledger.codec import Codec, loads
from flowledger.definition.compiled import CompiledStep, CompiledWorkflow
from flowledger.logs import log_extra
from flowledger.runtime.activation import Activation
from flowledger.runtime.children import ChildWaits
from flowledger.runtime.contexts import StepContexts
from flowledger.runtime.deadline import execution_deadline, timed_out
from flowledger.runtime.drivers import build_drivers, driver_of
from flowledger.runtime.eager import start_task
from flowledger.runtime.ending import ExecutionEnd
from flowledger.runtime.failure_handlers import FailureHandler
from flowledger.runtime.inbox import Inbox
from flowledger.runtime.journal import Journal
from flowledger.runtime.lifecycle import ExecutionLifecycle
from flowledger.runtime.loops import LoopDriver
from flowledger.runtime.outcomes import Outcomes
from flowledger.runtime.ports import Driver
from flowledger.runtime.services import Services
from flowledger.runtime.state import Scope, StepExecution
from flowledger.runtime.status import ExecutionStatus, StepStatus
from flowledger.runtime.variables import Variables
from flowledger.runtime.waits import InputWaits
from flowledger.runtime.wakes import Wakes, acts
from flowledger.steps.base import StepKind
from flowledger.storage.base import NEVER
from flowledger.timeutil import iso

log = logging.getLogger(__name__)

#: Activations per round before committing, so one round's batch stays bounded.
MAX_ROUND = 2000

#: Seconds a scheduler may go on without letting the event loop turn: steps that end in
#: their launch (runtime.eager) need no wait, so a chain of them would otherwise keep
#: every other task of the loop waiting until it ends.
YIELD_AFTER = 0.005


class ExecutionRunner:
    """Drives one execution it holds the lease of; see the module docstring. Its parts:
    runtime.activation (steps and attempts set going), runtime.outcomes (what became of
    them), runtime.ending (the execution's end), runtime.wakes (timers and the wait)."""

    def __init__(
        self,
        services: Services,
        workflow: CompiledWorkflow,
        execution: Mapping[str, Any],
        epoch: int,
        codec: Codec | None = None,
        *,
        last_seq: int | None = None,
    ) -> None:
        """``last_seq``: the execution's last event number, when its row's may lag (an
        execution that ran before; see runtime.journal). A new one's row is exact."""
        self.services = services
        self.workflow = workflow
        self.id: str = execution["id"]
        # From the definition's names, not from what this process rendered: a resumed
        # or taken-over execution redacts a value echoed back before it reads it again.
        self.codec = codec or Codec.for_names(workflow.secret_names)
        self.clock = services.clock
        if last_seq is None:
            last_seq = int(execution["event_seq"])
        self.journal = Journal(services.store, self.codec, self.id, epoch, last_seq, self.clock)
        self.parent_id: str | None = execution.get("parent_id")
        self.info = {
            "id": self.id,
            "correlationId": execution["correlation_id"],
            "workflowName": execution["workflow_name"],
            "workflowVersion": execution["workflow_version"],
            "startedAt": iso(execution["started_at"]) if execution["started_at"] else None,
        }
        self.lifecycle = ExecutionLifecycle(
            self.id,
            ExecutionStatus(execution["runtime_status"]),
            self.parent_id,
            self.journal,
            self.clock,
            self.codec,
            self.info,
        )
        self.variables = Variables(loads(execution["variables"]) or {}, self.journal)
        #: The trigger as this runner reads it, its stored text, and the codec's count of
        #: secrets that text is redacted by (see ``_redact_trigger``).
        self.trigger: dict[str, Any] = loads(execution["trigger"]) or {}
        self._trigger_text: str | None = execution["trigger"]
        self._trigger_redacted = 0
        #: The workflow's on_failure, started in the commit that records a failure.
        self.on_failure = FailureHandler(workflow, self.trigger)
        self.started_at: datetime | None = execution["started_at"]
        #: When the workflow's ``timeout`` ends the execution (runtime.deadline).
        self.deadline = execution_deadline(workflow, self.started_at)
        self.depth: int = int(execution.get("depth") or 0)
        self.root_id: str | None = execution.get("root_id")
        self.contexts = StepContexts(
            services,
            workflow,
            self.codec,
            trigger=self.trigger,
            context=loads(execution["context"]) or {},
            info=self.info,
            variables=self.variables,
            depth=self.depth,
        )
        #: Signals acted on so far; any sent beyond this are waiting in the signal table.
        self.signals_taken: int = int(execution.get("signals_taken") or 0)
        self.signals_waiting = int(execution.get("signals_sent") or 0) > self.signals_taken
        self.root = Scope(key="", graph=workflow.graph, parent=None, loops={})
        self.ready: deque[tuple[Scope, CompiledStep]] = deque()
        #: Emptied in place, never replaced: the scheduler's parts hold it.
        self.to_launch: list[StepExecution] = []
        #: Running steps: a handler's task (done already when it ended in its launch:
        #: runtime.eager).
        self.tasks: dict[asyncio.Future[Any], StepExecution] = {}
        # Finished handler tasks, in completion order; _wait drains them (O(1) per completion).
        self._finished: deque[asyncio.Future[Any]] = deque()
        #: When the scheduler last let the event loop turn (see _wait).
        self._turned_at = time.monotonic()
        #: Children run in this process (``drive``) rather than by whichever worker claims them.
        self.inline_children = False
        #: Told the ids of children each commit created (the engine may run them here).
        self.on_children: Callable[[list[str]], None] | None = None
        #: Told the ids of children each commit sent a cancel; returns those it could not
        #: reach in this process (workers are woken for them).
        self.on_cancels: Callable[[list[str]], list[str]] | None = None
        self.draining = False
        #: Set when run() returned early because only a distant timer was left.
        self.parked_until: datetime | None = None
        self.logger = logging.LoggerAdapter(log, log_extra("run_execution", self.id))
        # The parts that call back hold the runner weakly: with strong references both
        # ways, an ended execution's whole graph (~60 objects, its outputs among them)
        # waited for the cyclic collector, whose full passes stalled a worker's loop.
        myself = weakref.proxy(self)
        #: One driver per step kind; the scheduler asks them where kinds differ.
        self.drivers: dict[StepKind, Driver] = build_drivers(myself)
        # The drivers the scheduler also asks by name: loops own iteration scopes; people
        # and children are the outside waits an idle execution parks on.
        self.loops = driver_of(self.drivers, LoopDriver)
        self.inputs = driver_of(self.drivers, InputWaits)
        self.children = driver_of(self.drivers, ChildWaits)
        self.inbox = Inbox(myself, self.inputs, self.children)
        # The scheduler's parts, one job each; none holds the runner but weakly.
        self.wakes = wakes = Wakes()
        self.timers = wakes.timers  # emptied in place, never replaced
        self.ending = ending = ExecutionEnd(
            workflow,
            self.root,
            self.lifecycle,
            self.journal,
            self.clock,
            self.contexts,
            self.on_failure,
            self.drivers,
            tasks=self.tasks,
            wakes=wakes,
            to_launch=self.to_launch,
            ready=self.ready,
        )
        outcomes = Outcomes(
            services,
            self.codec,
            self.journal,
            self.contexts,
            self.drivers,
            retries=myself,
            wakes=wakes,
            ending=ending,
            ready=self.ready,
        )
        self.outcomes = outcomes
        self.activation = activation = Activation(
            workflow,
            self.clock,
            self.journal,
            self.lifecycle,
            self.contexts,
            self.drivers,
            outcomes=outcomes,
            ending=ending,
            wakes=wakes,
            to_launch=self.to_launch,
        )
        # What drivers, recovery and the inbox ask of the runner (ports.Scheduler and
        # Recoverable, inbox.Addressee) and its round's own calls, bound to the part
        # that does it: no frame of the runner's around each (W1's hot path).
        self.new_run = activation.new_run
        self.start_attempt = activation.start_attempt
        self.run_inline = activation.run_inline
        self.step_context = activation.step_context
        self.template = activation.template
        self._activate = activation.activate
        self._fire_due_timers = activation.fire_due_timers
        self.step_succeeded = outcomes.step_succeeded
        self.step_failed = outcomes.step_failed
        self.suspend = outcomes.suspend
        self.wait_outside = outcomes.wait_outside
        self.scope_done = outcomes.scope_done
        self.fail_scope = outcomes.fail_scope
        self._collect = outcomes.collect
        self.resume_status = ending.resume_status
        self.another_wait = ending.another_wait
        self.cancel_execution = ending.cancel_execution
        self.cancel_run = ending.cancel_run
        self._fail_execution = ending.fail_execution
        self.add_timer = wakes.add_timer
        self.next_timer = wakes.next_timer
        self._wake = wakes.wake

    @property
    def status(self) -> ExecutionStatus:
        return self.lifecycle.status

    def driver(self, kind: StepKind) -> Driver:
        return self.drivers[kind]

    @property
    def step_seq(self) -> itertools.count[int]:
        """The next step execution's number (recovery sets it past the stored ones)."""
        return self.activation.step_seq

    @step_seq.setter
    def step_seq(self, seq: itertools.count[int]) -> None:
        self.activation.step_seq = seq

    # -- the main loop ------------------------------------------------------------------------

    def poke(self) -> None:
        """Look for signals now (this process knows it just sent one)."""
        self.inbox.poke()
        self._wake()

    def drain(self) -> None:
        """Stop starting work: finish and record what is running, then return (SIGTERM)."""
        self.draining = True
        self._wake()

    async def run(self, park_after: float | None = None) -> ExecutionStatus:
        """Drive the execution until it is terminal, drained, or parked.

        With ``park_after``, an execution whose only pending work is a timer further
        away than that many seconds returns early with ``parked_until`` set, so the
        caller can release it and let any worker pick it up when the timer is due.
        Before it returns, the execution's row is brought up to date (runtime.journal):
        whoever reads it while nobody runs it reads exact progress.
        """
        status = await self._run(park_after)
        await self.journal.settle()
        return status

    def _redact_trigger(self) -> None:
        """Store the trigger redacted by every secret the codec knows, in this round: a
        held start (execution_rows) or a start whose process could not read the secrets
        stored it as sent, and a secret may change value meanwhile. Once per growth of
        the codec's secrets, as for the variables; the steps here read it as sent."""
        self._trigger_redacted = self.codec.secrets_added
        text = self.codec.dumps(self.trigger)
        if text != self._trigger_text:
            self._trigger_text = text
            self.journal.set_execution(trigger=text)

    async def _run(self, park_after: float | None) -> ExecutionStatus:
        self.inline_children = park_after is None
        try:
            if self.on_failure.name is not None and not self.status.terminal:
                await self.on_failure.prepare(self.services.resolve_workflow)
            if self.signals_waiting:
                await self.inbox.take()  # a cancel may have come before the start
            else:
                self.inbox.checked()
            if self.status == ExecutionStatus.NOT_STARTED:
                self._begin()
            elif self.status == ExecutionStatus.AWAITING_USER_INPUT:
                await self._take_up_waiting()
            while True:
                if self.inbox.due() and not self.status.terminal:
                    self.journal.forget_completion()  # time passes in the read
                    await self.inbox.take()
                if not self.draining:
                    self._advance()
                if self.codec.secrets_added != self._trigger_redacted:
                    self._redact_trigger()
                await self.journal.commit()
                if self.children.started or self.children.cancelled:  # rarely: no coroutine
                    await self._report_children()
                if self.status.terminal:
                    if self.on_failure.started is not None:  # committed: workers take it
                        await self.services.store.notify_work()
                    return self.status
                if self.ready and not self.draining:
                    continue
                self._launch()  # what was recorded as started must run, drain or not
                if self.draining and not self.tasks:
                    if self.status == ExecutionStatus.AWAITING_USER_INPUT:
                        self.parked_until = self.clock.now()  # see _take_up_waiting
                    return self.status
                if self._only_outside_waits():
                    if self.inputs.waiting or self.children.blocked_on_people:
                        self.lifecycle.await_people()
                        await self.journal.commit()
                        # Run here (`flowledger run`, drive), the other branches go on
                        # first: a delay's branch was left unrun behind a person's wait.
                        if park_after is not None or not self._moves_on_here():
                            self.parked_until = self._next_wake() or NEVER
                            return self.status
                    elif park_after is not None and not self._timer_within(park_after):
                        self.parked_until = self._next_wake() or NEVER
                        return self.status
                if park_after is not None and self._should_park(park_after):
                    self.parked_until = self._next_wake()
                    return self.status
                await self._wait()
        finally:
            self.wakes.disarm()
            for task in self.tasks:
                task.cancel()
            if self.tasks:
                await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _take_up_waiting(self) -> None:
        """An execution awaiting input is run here (a timer of another branch came, or a
        signal): it stays AwaitingUserInput while its branches move on (lifecycle), so
        its row must stay claimable should this process stop. A claim clears ``wake_at``,
        and an AwaitingUserInput row is claimed only once ``wake_at`` has come: put back
        one that has, with the first round (a drained run parks it at now likewise). And
        whether children block it on people is known from their rows, not from the status
        it was left in: read them, as a child's signal makes it do."""
        self.journal.set_execution(wake_at=self.clock.now())
        if self.children.waiting:
            await self.children.refresh()

    def _only_outside_waits(self) -> bool:
        """Nothing runs here: every unfinished step waits for a person, for an input from
        outside (Suspend(until=None)) or for children."""
        busy = self.tasks or self.ready or self.to_launch or self._finished
        inputs = self.inputs
        return not busy and bool(inputs.waiting or inputs.outside or self.children.waiting)

    def quiet(self) -> bool:
        """Waiting with nothing to run until a timer, an input or a signal comes (what a
        test's clock waits for before it skips ahead: flowledger.testing.VirtualClock)."""
        busy = self.tasks or self.ready or self.to_launch or self._finished
        return self.wakes.waiter is not None and not busy

    def _moves_on_here(self) -> bool:
        """Besides the waits for people, something still moves without them: a retry's
        back-off or a timed Suspend (sys.delay) to come, or a child that is not waiting
        for a person. A due time does not: it ends a wait, it is no work of its own."""
        children = self.children
        if children.waiting and not children.blocked_on_people:
            return True
        return any(kind != "due" and acts(kind, run) for _, _, kind, run in self.timers)

    def _timer_within(self, seconds: float) -> bool:
        wake = self._next_wake()
        if wake is None:
            return False
        return (wake - self.clock.now()).total_seconds() <= seconds

    def _next_wake(self) -> datetime | None:
        """The soonest timer, or the workflow's deadline when it comes first: a waiting
        or parked execution wakes at it even if nothing else happens."""
        first = self.timers[0][0] if self.timers else None
        deadline = self.deadline
        if deadline is None or (first is not None and first <= deadline):
            return first
        return deadline

    async def _report_children(self) -> None:
        started, cancelled = self.children.started, self.children.cancelled
        self.children.started, self.children.cancelled = [], []
        wake = False
        if started and self.on_children is not None and self.inline_children:
            self.on_children(started)
        elif started:
            wake = True
        # A child's own poll saw the cancel up to a second later, one parked (waiting for a
        # person, a timer) only when it next ran: siblings of a failed child went on.
        if cancelled and self.on_cancels is not None:
            cancelled = self.on_cancels(cancelled)
        if wake or cancelled:
            await self.services.store.notify_work()

    def _should_park(self, park_after: float) -> bool:
        wake = self._next_wake()
        if self.tasks or self.ready or not self.timers or wake is None:
            return False
        return (wake - self.clock.now()).total_seconds() > park_after

    def _begin(self) -> None:
        now = self.clock.now()
        self.started_at = now
        self.deadline = execution_deadline(self.workflow, now)
        self.info["startedAt"] = iso(now)
        self.lifecycle.begin(now)
        self.open_scope(self.root)

    def open_scope(self, scope: Scope) -> None:
        for step in scope.graph.roots():
            self.ready.append((scope, step))

    def queue(self, scope: Scope, step_id: str) -> None:
        self.ready.append((scope, scope.graph.steps[step_id]))

    def _advance(self) -> None:
        if self._timed_out():
            return
        budget = MAX_ROUND
        while self.ready and budget > 0 and not self.status.terminal:
            scope, step = self.ready.popleft()
            if not scope.closed:
                self._activate(scope, step)
            budget -= 1
        self._fire_due_timers()

    def _launch(self) -> None:
        if not self.to_launch:
            return
        loop = self.wakes.running_loop()
        for run in self.to_launch:
            if run.status == StepStatus.IN_PROGRESS:
                work = self.drivers[run.step.step_type.kind].invoke(run)
                # The name is what the loop watchdog reports (worker.watchdog.STEP_TASK).
                name = f"step {run.step.path} of execution {self.id}"
                # Held once started: a handler that ended in its launch is in _finished
                # already, and the next _wait finds its run here.
                task = start_task(loop, self._tracked(work), name)
                self.tasks[task] = run
        self.to_launch.clear()

    async def _tracked(self, work: Coroutine[Any, Any, Any]) -> Any:
        """Run a step's work and hand its task to the wait in the loop turn it ends in
        (or in the launch itself: runtime.eager). A done callback would run one turn
        later, and wake the wait one turn after that."""
        try:
            return await work
        finally:
            task = asyncio.current_task()
            assert task is not None
            self._finished.append(task)
            self._wake()

    async def _wait(self) -> None:
        if self._finished:  # steps that ended meanwhile (in their launch) need no wait
            # But the loop turns when anything else is ready to run (executions driven
            # together join group commits so), and at least every YIELD_AFTER seconds (for
            # timers and I/O: lease renewals, heartbeats, a server's requests).
            others = self.wakes.others
            if others is None or others or time.monotonic() - self._turned_at >= YIELD_AFTER:
                await asyncio.sleep(0)
                self._turned_at = time.monotonic()
        else:
            poll = self.inbox.seconds_to_next()
            timeout: float | None = poll
            wake = self._next_wake()
            if wake is not None:
                next_timer = (wake - self.clock.now()).total_seconds()
                timeout = max(0.0, min(poll, next_timer))
            if self.draining:
                timeout = None  # timers belong to whoever owns the execution next
            idle = not self.tasks and not self.timers and not self.draining
            inputs = self.inputs
            if idle and not self.children.waiting and not inputs.waiting and not inputs.outside:
                self._fail_execution(
                    {"message": "the execution has nothing left to run but is not finished"}
                )
                return
            # A plain future, not an Event: Event.wait makes one per wait anyway, with a
            # waiter list and its bookkeeping around it. drain() and poke() cut it short.
            wakes = self.wakes
            wakes.waiter = waiter = wakes.running_loop().create_future()
            if timeout is not None:
                wakes.arm(timeout)
            await waiter
            wakes.waiter = None
            self._turned_at = time.monotonic()
        while self._finished:
            task = self._finished.popleft()
            run = self.tasks.pop(task, None)
            if run is not None:  # None: cancelled and forgotten (ExecutionEnd.cancel_task_of)
                self._collect(task, run)

    def _timed_out(self) -> bool:
        """The workflow's timeout passed: what runs is cancelled, the execution fails."""
        deadline = self.deadline
        if deadline is None or self.status.terminal or self.clock.now() < deadline:
            return False
        error = timed_out(self.workflow, self.started_at)
        self._fail_execution(error, cancelled_because=error["message"])
        return True
