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
import heapq
import itertools
import logging
import weakref
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from pydantic import BaseModel, ValidationError

from flowledger.codec import Codec, UnstorableError, loads
from flowledger.definition.compiled import CompiledStep, CompiledWorkflow
from flowledger.durations import spoken
from flowledger.errors import StepError, TemplateError, error_code_problem
from flowledger.jsonvalues import NotJSONError, lone_surrogate, storable
from flowledger.logs import log_extra
from flowledger.runtime.attempts import applied_in, parked, pending_in
from flowledger.runtime.children import ChildWaits
from flowledger.runtime.contexts import StepContexts
from flowledger.runtime.datastore import stored_input
from flowledger.runtime.deadline import execution_deadline, timed_out
from flowledger.runtime.drivers import build_drivers, driver_of
from flowledger.runtime.failure_handlers import FailureHandler
from flowledger.runtime.handlers import (
    StepTimedOut,
    describe,
    duration_detail,
    normalize_output,
    retry_decision,
    shortened,
    storable_text,
    validation_message,
)
from flowledger.runtime.heartbeats import (
    HEARTBEAT_KEY,
    Heartbeat,
    carry_heartbeat,
    heartbeat_details,
)
from flowledger.runtime.ids import ordered_uuid
from flowledger.runtime.inbox import Inbox
from flowledger.runtime.journal import Journal
from flowledger.runtime.lifecycle import ExecutionLifecycle
from flowledger.runtime.loops import LoopDriver
from flowledger.runtime.ports import Driver, TimerKind
from flowledger.runtime.reserved import ENGINE_KEY, engine_part, with_engine_part
from flowledger.runtime.services import Services
from flowledger.runtime.state import Scope, StepExecution
from flowledger.runtime.status import ExecutionStatus, StepStatus
from flowledger.runtime.variables import Variables
from flowledger.runtime.waits import InputWaits, parked_wait
from flowledger.schema_check import problem_lines
from flowledger.steps.base import StepContext, StepKind, Suspend
from flowledger.storage.base import NEVER
from flowledger.templates.convert import truth
from flowledger.timeutil import iso

log = logging.getLogger(__name__)

#: Activations per round before committing, so one round's batch stays bounded.
MAX_ROUND = 2000
#: The template context of a constant input: nothing reads it (``start_attempt``).
_NO_CONTEXT: dict[str, Any] = {}


class ExecutionRunner:
    """Drives one execution it holds the lease of; see the module docstring."""

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
        self.to_launch: list[StepExecution] = []
        #: Running steps: a handler's task, or a done future when it ended in its first step.
        self.tasks: dict[asyncio.Future[Any], StepExecution] = {}
        # Finished handler tasks, in completion order; _wait drains them (O(1) per completion).
        self._finished: deque[asyncio.Future[Any]] = deque()
        #: What the scheduler's wait awaits (see ``_wait``); None while it does not wait.
        self._waiter: asyncio.Future[None] | None = None
        #: The running loop, from the start of ``run``.
        self._loop: asyncio.AbstractEventLoop | None = None
        #: The one wake-up timer, kept across waits (see ``_arm``).
        self._timer: asyncio.TimerHandle | None = None
        self.timers: list[tuple[datetime, int, TimerKind, StepExecution]] = []
        self._timer_seq = itertools.count()
        self.step_seq = itertools.count(1)
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

    @property
    def status(self) -> ExecutionStatus:
        return self.lifecycle.status

    def driver(self, kind: StepKind) -> Driver:
        return self.drivers[kind]

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
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
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
        return self._waiter is not None and not busy

    def next_timer(self) -> datetime | None:
        """When the earliest timer that still acts is due (stale ones, of steps that ended
        or woke otherwise, left out), or None."""
        live = [when for when, _, kind, run in self.timers if self._acts(kind, run)]
        return min(live, default=None)

    def _acts(self, kind: TimerKind, run: StepExecution) -> bool:
        """The timer would still move ``run`` on when it fires (see _fire_due_timers)."""
        if run.scope.closed:
            return False
        if kind == "retry":
            return run.status == StepStatus.NOT_STARTED
        if kind == "wake":
            return run.suspended and run.wake_at is not None and not run.terminal
        return not run.terminal

    def _moves_on_here(self) -> bool:
        """Besides the waits for people, something still moves without them: a retry's
        back-off or a timed Suspend (sys.delay) to come, or a child that is not waiting
        for a person. A due time does not: it ends a wait, it is no work of its own."""
        children = self.children
        if children.waiting and not children.blocked_on_people:
            return True
        return any(kind != "due" and self._acts(kind, run) for _, _, kind, run in self.timers)

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
        loop = self._running_loop()
        for run in self.to_launch:
            if run.status == StepStatus.IN_PROGRESS:
                work = self.drivers[run.step.step_type.kind].invoke(run)
                # The loop's own create_task (asyncio.create_task is a frame around it).
                # The name is what the loop watchdog reports (worker.watchdog.STEP_TASK).
                name = f"step {run.step.path} of execution {self.id}"
                task = loop.create_task(self._tracked(work), name=name)
                self.tasks[task] = run
        self.to_launch = []

    async def _tracked(self, work: Coroutine[Any, Any, Any]) -> Any:
        """Run a step's work and hand its task to the wait in the loop turn it ends in.

        A done callback would run one turn later, and wake the wait one turn after that:
        for a chain of quick steps that extra turn was a tenth of each step's cost.
        Decision: no eager start (a handler's first step run inside the launching turn).
        Emulating 3.12's eager tasks on 3.11 needs asyncio's private _enter_task/_leave_task
        and a hand-driven coroutine, and measured no faster here: W1 332 vs 329 us per
        step, medians of 40 interleaved rounds each (2026-11-29, load ~5).
        """
        try:
            return await work
        finally:
            task = asyncio.current_task()
            assert task is not None
            self._finished.append(task)
            self._wake()

    async def _wait(self) -> None:
        if not self._finished:  # steps that ended meanwhile need no wait
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
            self._waiter = waiter = self._running_loop().create_future()
            if timeout is not None:
                self._arm(timeout)
            await waiter
            self._waiter = None
        while self._finished:
            task = self._finished.popleft()
            run = self.tasks.pop(task, None)
            if run is not None:  # None: cancelled and forgotten by _cancel_task_of
                self._collect(task, run)

    def _arm(self, seconds: float) -> None:
        """Wake the wait within ``seconds``: one timer kept across waits, re-armed only when a
        sooner one is needed. A timeout per wait armed and cancelled a timer on every round
        of a chain; an early wake-up from a kept timer costs one extra pass of the loop."""
        loop = self._running_loop()
        when = loop.time() + seconds
        if self._timer is not None and self._timer.when() <= when:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(when, self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer = None
        self._wake()

    def _wake(self) -> None:
        """End the scheduler's current wait, if it is waiting."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    # -- activation ---------------------------------------------------------------------------

    def _activate(self, scope: Scope, step: CompiledStep) -> None:
        """All predecessors are final: run the step, or disable it (SPEC §1 activation policy)."""
        runs = scope.runs
        active = not step.predecessors
        for pred in step.predecessors:  # a loop, not any() of a generator: one frame less
            if runs[pred].resolved_ok:
                active = True
                break
        if active and step.branch is not None:
            cond = scope.runs[step.branch.condition]
            result = isinstance(cond.output, Mapping) and bool(cond.output.get("result"))
            active = cond.status == StepStatus.COMPLETED and result == step.branch.result
        run = self.new_run(scope, step, attempt=1, status=StepStatus.NOT_STARTED)
        if active and step.when is not None:
            try:
                active = truth(step.when.render(self.contexts.template(scope)))
            except TemplateError as exc:
                self._start_failed(run, f"when: {exc.message}")
                return
        if not active:
            run.status = StepStatus.DISABLED
            self.journal.touch(run)
            self.journal.event("step.disabled", run)
            self._finish(run)
            return
        self.start_attempt(run)

    def new_run(
        self,
        scope: Scope,
        step: CompiledStep,
        attempt: int,
        status: StepStatus,
        idempotency_key: str | None = None,
    ) -> StepExecution:
        """A new attempt of ``step`` in ``scope``. A first attempt's idempotency key is its
        own id (32 hex digits, unique like the id); every later attempt (a retry, a re-run
        after a crash) is given its predecessor's, read back from the row after a restart:
        one key for the step execution, whatever the attempt or process."""
        # Time-ordered: the insert appends to the primary-key index (runtime.ids).
        run_id = ordered_uuid()
        run = StepExecution(
            id=run_id,
            step=step,
            scope=scope,
            attempt=attempt,
            status=status,
            seq=next(self.step_seq),
            idempotency_key=idempotency_key or run_id.replace("-", ""),
        )
        scope.runs[step.id] = run
        self.journal.touch(run)
        return run

    def start_attempt(self, run: StepExecution) -> None:
        step = run.step
        now = self.clock.now()
        run.status = StepStatus.IN_PROGRESS
        run.started_at = now
        run.wake_at = None
        limit = _deadline(step)
        if limit is not None and run.due_at is None:
            run.due_at = now + limit
            self.add_timer(run.due_at, "due", run)
        journal = self.journal
        journal.touch(run)
        journal.state_name = step.id
        journal.event("step.started", run, at=now)
        if self.lifecycle.status is ExecutionStatus.AWAITING_USER_INPUT:
            self.resume_status()  # not when a person is still waited for (lifecycle)
        driver = self.drivers[step.step_type.kind]
        try:
            run.input_stored = False
            run.stored_input = None
            # A constant input renders without its context (building it is most of the
            # cost of a step's input), unless the kind reads the context itself.
            if step.input.is_constant and driver.renders_input_only:
                context = _NO_CONTEXT
            else:
                context = self.contexts.template(run.scope)
            data = driver.input(run, context)
            if step.step_type.secret_fields and self.workflow.secret_names:
                run.stored_input = stored_input(step, context)
        except TemplateError as exc:
            self.step_failed(run, f"input: {exc.message}", retryable=False, code="input")
            return
        except ValidationError as exc:
            message = "input: " + validation_message(exc)
            self.step_failed(run, message, retryable=False, code="input")
            return
        driver.start(run, data)

    def _start_failed(self, run: StepExecution, message: str) -> None:
        run.status = StepStatus.IN_PROGRESS
        run.started_at = self.clock.now()
        self.step_failed(run, message, retryable=False, code="input")  # its when: failed

    # -- running handlers ---------------------------------------------------------------------

    def run_inline(self, run: StepExecution, data: BaseModel) -> None:
        """Run a pure step's handler now, inside the round that records it."""
        try:
            handler = run.step.step_type.handler
            assert handler is not None
            result = handler(data, self.contexts.step(run))
        except StepError as exc:
            self.step_error(run, exc)
            return
        except Exception as exc:
            self.step_failed(run, describe(exc), retryable=False, code="internal")
            return
        self.step_succeeded(run, result)

    def step_context(self, run: StepExecution) -> StepContext:
        # Its heartbeat saver is made at its first ctx.heartbeat: few steps ever call it.
        return self.contexts.step(run, partial(self._heartbeat_saver, run))

    def _heartbeat_saver(self, run: StepExecution) -> Heartbeat:
        # The loop is known here (a handler's thread may ask): _launch read it.
        return Heartbeat(self._running_loop(), partial(self._save_heartbeat, run))

    def _save_heartbeat(self, run: StepExecution, details: Any) -> None:
        """Keep an attempt's heartbeat in its state, committed by the next round (woken
        now: a long step alone would commit nothing until it ends)."""
        if run.status != StepStatus.IN_PROGRESS or run.scope.runs.get(run.step.id) is not run:
            return  # the attempt ended (or was cut) before the throttled write came
        run.state = with_engine_part(run.state, **{HEARTBEAT_KEY: details})
        self.journal.touch(run)
        self._wake()

    def template(self, scope: Scope) -> dict[str, Any]:
        return self.contexts.template(scope)

    def _collect(self, task: asyncio.Future[Any], run: StepExecution) -> None:
        if run.status != StepStatus.IN_PROGRESS:
            return
        if task.cancelled():
            if getattr(task, "cancelling", lambda: 1)():  # this runner cancelled it
                return
            # Nobody cancelled the step: its own code let a CancelledError out (an inner
            # task a library cancelled). It was left InProgress with nothing to end it, and
            # the execution failed as "nothing left to run"; it is a failure of the attempt.
            message = "the step's code raised CancelledError (a task it awaited was cancelled)"
            self.step_failed(run, message, retryable=True, code="internal")
            return
        exc = task.exception()
        if exc is None:
            self.drivers[run.step.step_type.kind].task_done(run, task.result())
        elif isinstance(exc, StepError):
            self.step_error(run, exc)
        elif isinstance(exc, StepTimedOut):
            message = f"timed out after {exc.seconds:g}s"
            self.step_failed(run, message, retryable=True, code="timeout")
        else:
            # Its traceback, for the step's developer: kept with the attempt (its step logs,
            # `executions logs`), redacted (it may quote what the step held: a header made
            # from a secret); the process's log (a `run`'s console) says one line and where
            # the traceback is. The document keeps one line.
            # The header short (its repr may quote a whole body): the line limit of a step
            # log (steplogs.MAX_LINE) keeps the frames that follow it.
            header = shortened(repr(exc), 300)
            described = describe(exc)
            where = f"flowledger executions logs {self.contexts.info['id']} --step {run.step.id}"
            self.contexts.logger(run).raised(
                exc,
                f"step {run.step.path} raised {header}",
                f"step {run.step.path} raised {described} (traceback: {where})",
            )
            message = self.codec.redact(described)
            self.step_failed(run, message, retryable=True, code="internal")

    # -- outcomes -----------------------------------------------------------------------------

    def step_succeeded(self, run: StepExecution, result: Any) -> None:
        if isinstance(result, Suspend):
            self._park(run, result)
            return
        output: Any = None
        try:
            output = normalize_output(run.step, result)
            # Its spec first: a cached_property's first read takes a lock, and each step of
            # a chain is read once per run.
            if run.step.spec.output_schema is not None:
                # What later steps' references were checked against.
                declared = run.step.output_validator
                assert declared is not None
                problems = problem_lines(declared, output, "output")
                if problems:
                    message = "output does not match the step's output_schema: "
                    message += "; ".join(problems)
                    self.step_failed(run, message, retryable=False, code="output")
                    return
            offload = self.services.offload_output
            # A condition's result is read by the scheduler itself: it always stays inline.
            if offload is None or self.drivers[run.step.step_type.kind].keeps_output_inline:
                run.output, run.output_json = output, None
            else:
                run.output, run.output_json = offload(
                    self.id, run.id, run.step.id, output, self.codec
                )
            storable_text(run.output_json if run.output_json is not None else run.output)
        except ValidationError as exc:
            self.step_failed(
                run,
                "output does not match the step's output model: "
                + validation_message(exc, run.step.step_type.output_model),
                retryable=False,
                code="output",
            )
            return
        except (UnstorableError, NotJSONError) as exc:  # the step fails; the execution goes on
            run.output, run.output_json = None, None
            message = f"its output cannot be stored: {exc}"
            self.step_failed(run, message, retryable=False, code="output")
            return
        except (ValueError, TypeError) as exc:
            # Not JSON (bytes, a cycle, an object, a lone surrogate): had it reached the
            # commit, the runner would have stopped and the step run again and again.
            run.output, run.output_json = None, None
            # Found from the text (the common case pays no walk); then named by its place.
            where = None
            if isinstance(exc, UnicodeEncodeError) and output is not None:
                where = lone_surrogate(output, "output")
            if where is not None:
                message = f"its output cannot be stored: {where}"
            else:
                message = f"its output cannot be stored as JSON: {describe(exc)}"
            self.step_failed(run, message, retryable=False, code="output")
            return
        try:
            changed = [*_applied_before(run), *self._take_variable_changes(run)]
        except StepError as exc:  # its changes no longer fit the variables (Variables.apply_all)
            run.output, run.output_json = None, None
            self.step_failed(run, exc.message, retryable=exc.retryable, code=exc.code or "step")
            return
        if changed:  # kept with the step: a rerun that reuses it replays them
            run.state = with_engine_part(run.state, variables=changed)
        now = self.clock.now()
        run.status = StepStatus.COMPLETED
        run.completed_at = now
        run.suspended = False
        run.wake_at = None
        self.journal.touch(run)
        self.journal.event("step.completed", run, duration_detail(run), at=now)
        self._finish(run)

    @staticmethod
    def _take_variable_changes(run: StepExecution) -> list[list[Any]]:
        """The attempt's ``ctx.variables`` changes (those it made before it suspended
        too) reach the execution's variables, in this round's commit, now that it
        completed; a failed one's never do. Returns them as ``[name, op, value]``;
        StepError, and none applied, when they no longer fit."""
        changes = run.variable_changes
        if changes is None or not changes.ops:
            return []
        run.variable_changes = None
        made = [[name, op, value] for name, op, value in changes.ops]
        changes.commit()
        return made

    def _park(self, run: StepExecution, suspend: Suspend) -> None:
        """The handler returned Suspend. Its state is stored, so JSON must hold it as it
        is; the attempt's ``ctx.variables`` changes stay pending with it (stored in the
        same commit, so a restart while parked keeps them) until the attempt completes:
        a woken attempt that fails then changes nothing, as any failed attempt. Without
        ``until`` it waits for an input from outside (runtime.waits), the execution
        InProgress: before, nothing could wake it and the execution failed at once as
        "nothing left to run" (tour 23 F1)."""
        step_type = run.step.step_type
        if suspend.until is None and step_type.resume is None:
            message = (
                f"it returned Suspend(until=None), which waits for an input, but step type "
                f"'{step_type.name}' has no resume= to read it: give @step_type a "
                "resume=fn(input, ctx, state), or Suspend a time (until=...)"
            )
            self.step_failed(run, message, retryable=False, code="internal")
            return
        try:
            state = dict(storable(dict(suspend.state), "state"))
        except NotJSONError as exc:
            message = f"its Suspend state cannot be stored: {exc}"
            self.step_failed(run, message, retryable=False, code="internal")
            return
        before = run.state if run.suspended else None
        state.pop(ENGINE_KEY, None)  # the engine's alone (runtime.reserved)
        given = engine_part(before).get("input")
        if given is not None and state.get("input") is given:
            # A resume handing back the state it was given: the input that woke it is
            # not its own, so a later wake by time finds none.
            del state["input"]
        applied = _applied_before(run)
        changes, run.variable_changes = run.variable_changes, None
        if changes is not None:
            pending: list[Any] = [list(change) for change in changes.ops]
        else:  # no context was made for the attempt: what it parked with before stands
            pending = pending_in(run.state) if run.suspended else []
        # A timed wait takes an input too when a resume can read it (runtime.waits), but
        # not sys.delay's: a delay waits for its time.
        takes_input = suspend.until is None or (
            step_type.resume is not None and not step_type.name.startswith("sys.")
        )
        engine: dict[str, Any] = {}
        wait = parked_wait(before, takes_input=takes_input)
        if wait is not None:
            engine["wait"] = wait
        if pending or applied:
            engine["variables"] = parked(pending, applied)
        beat = heartbeat_details(run)
        if beat is not None:  # a later attempt still resumes from it
            engine[HEARTBEAT_KEY] = beat
        state[ENGINE_KEY] = engine
        self.suspend(run, suspend, state)
        if takes_input:
            self.inputs.wait_outside(run)

    def suspend(
        self, run: StepExecution, suspend: Suspend, state: dict[str, Any] | None = None
    ) -> None:
        """Park the step: it stays InProgress, with no handler running, until woken."""
        run.suspended = True
        run.wake_at = suspend.until
        run.state = dict(suspend.state) if state is None else state
        self.journal.touch(run)
        if suspend.until is not None:
            self.journal.event("step.suspended", run, {"until": iso(suspend.until)})
            self.add_timer(suspend.until, "wake", run)
        else:  # a person's (sys.wait_for_input), or the outside's (runtime.waits)
            self.journal.event("step.suspended", run, {"until": None, "waitsForInput": True})

    def wait_outside(self, run: StepExecution) -> None:
        self.inputs.wait_outside(run)

    def step_error(self, run: StepExecution, exc: StepError) -> None:
        """The step raised ``exc``: its failure, with the code it gave (``step`` if none)."""
        code, message = exc.code or "step", exc.message
        problem = error_code_problem(code)
        if problem is not None:  # refused, but the step's own failure is kept
            code, message = "step", f"{message} (its code {problem})"
        self.step_failed(
            run,
            message,
            retryable=exc.retryable,
            details=exc.details,
            retry_after=exc.retry_after,
            code=code,
        )

    def step_failed(
        self,
        run: StepExecution,
        message: str,
        *,
        retryable: bool,
        details: Any = None,
        retry_after: timedelta | None = None,
        code: str = "step",
    ) -> None:
        """Record the attempt's failure, with its ``code`` (SPEC's error document plus
        ``code``), and try it again when it is retryable and the retry policy takes it."""
        if details is not None:
            try:  # a handler's (StepError's): stored, NaN read null, a cycle stopped the run
                details = storable(details, "details")
            except NotJSONError as exc:
                message, details = f"{message} (its details cannot be stored: {exc})", None
        if retryable and retry_after is not None and run.step.spec.retry is None:
            # The hint is waited within the step's retry policy: without one it was dropped
            # without a word, and the step failed after its one attempt.
            message = (
                f"{message} (it asked to be tried again after {spoken(retry_after)}, but step "
                f"'{run.step.id}' has no retry policy: give it retry: to try it again)"
            )
        now = self.clock.now()
        if run.suspended:  # a wait it is in ends (its due time came)
            self.inputs.forget(run)
        run.status = StepStatus.FAILED
        run.failed_at = now
        run.suspended = False
        run.wake_at = None
        run.error = {"message": message, "stepId": run.step.id, "attempt": run.attempt}
        run.error["code"] = code
        if details is not None:
            run.error["details"] = details
        self.journal.touch(run)
        decision = retry_decision(run, now, retry_after, code, retryable=retryable)
        delay = decision.delay
        detail: dict[str, Any] = {"error": message, "code": code, "willRetry": delay is not None}
        if decision.reason is not None:  # the faces print it; they do not work it out
            detail["notRetried"] = decision.reason
        self.journal.event("step.failed", run, detail, at=now)
        if delay is not None:
            nxt = self.new_run(
                run.scope, run.step, run.attempt + 1, StepStatus.NOT_STARTED, run.idempotency_key
            )
            carry_heartbeat(run, nxt)
            nxt.due_at = run.due_at
            nxt.wake_at = now + delay
            self.journal.event(
                "step.retry_scheduled",
                nxt,
                {"wakeAt": iso(nxt.wake_at), "delayMs": int(delay.total_seconds() * 1000)},
                at=now,
            )
            self.add_timer(nxt.wake_at, "retry", nxt)
            return
        if run.step.spec.continue_on_error:
            self._finish(run)
        else:
            self.fail_scope(run.scope, run)

    def _finish(self, run: StepExecution) -> None:
        """A step reached a final state: release its successors, close its scope if done."""
        scope = run.scope
        scope.unfinished -= 1
        for nxt in run.step.successors:
            scope.pending[nxt] -= 1
            if scope.pending[nxt] == 0:
                self.ready.append((scope, scope.graph.steps[nxt]))
        if scope.unfinished == 0:
            self.scope_done(scope, run)

    def scope_done(self, scope: Scope, last: StepExecution | None = None) -> None:
        """Every step of ``scope`` is final; ``last``: the one whose end made it so."""
        scope.closed = True
        if scope.owner is None:
            self._complete_execution(last)
            return
        self.loops.iteration_done(scope)

    def fail_scope(self, scope: Scope, run: StepExecution) -> None:
        if scope.owner is None:
            self.journal.state_name = run.step.id  # the step that failed the execution
            self._fail_execution(run.error or {"message": "a step failed"})
            return
        self.loops.iteration_failed(scope, run)

    # -- timers -------------------------------------------------------------------------------

    def _timed_out(self) -> bool:
        """The workflow's timeout passed: what runs is cancelled, the execution fails."""
        deadline = self.deadline
        if deadline is None or self.status.terminal or self.clock.now() < deadline:
            return False
        error = timed_out(self.workflow, self.started_at)
        self._fail_execution(error, cancelled_because=error["message"])
        return True

    def _fire_due_timers(self) -> None:
        if not self.timers:
            return
        now = self.clock.now()
        while self.timers and self.timers[0][0] <= now and not self.status.terminal:
            _, _, kind, run = heapq.heappop(self.timers)
            if run.scope.closed:
                continue
            if kind == "retry" and run.status == StepStatus.NOT_STARTED:
                self.start_attempt(run)
            elif kind == "wake" and run.suspended and run.status == StepStatus.IN_PROGRESS:
                # Its wake_at as it parks now: an input woke it before (None), or it
                # parked again for a later time since this timer was set.
                if run.wake_at is None or run.wake_at > now:
                    continue
                self.inputs.forget(run)  # the time came first: an input now is too late
                self.journal.event("step.resumed", run)
                self.to_launch.append(run)
            elif kind == "due" and not run.terminal:
                self._cancel_task_of(run)
                if self.drivers[run.step.step_type.kind].due(run):
                    continue
                self.step_failed(run, _late_message(run.step), retryable=False, code="due")

    def add_timer(self, when: datetime, kind: TimerKind, run: StepExecution) -> None:
        heapq.heappush(self.timers, (when, next(self._timer_seq), kind, run))

    # -- the execution as a whole -------------------------------------------------------------

    def resume_status(self) -> None:
        """Back to InProgress once no person is waited for: an input taken or timed out,
        children moved on. Not while one still is (ExecutionLifecycle.await_people)."""
        if not self._awaits_people():
            self.lifecycle.resume()

    def _awaits_people(self) -> bool:
        children = self.children
        return self.inputs.waiting or (children.blocked_on_people and children.waiting)

    def another_wait(self) -> None:
        """A step began waiting for a person (announced now if the execution already
        awaits input; else when it parks)."""
        self.lifecycle.another_wait()

    def _complete_execution(self, last: StepExecution | None = None) -> None:
        self.lifecycle.resume()  # whatever ended the last wait, completing is from InProgress
        # currentStateName of a finished execution: the top-level step whose end ended it
        # (a loop, not the body step that started last: the journal's state_name is the
        # step started last, set per step at no more cost than a store; this is once).
        if last is not None and last.status == StepStatus.COMPLETED:
            self.journal.state_name = last.step.id
        output = None
        if self.workflow.output is not None:
            try:
                output = self.workflow.output.render(self.contexts.template(self.root))
                # Refused as a step's output is: stored, NaN read null and a lone
                # surrogate failed the commit that ends the execution.
                output = storable(output, "output")
            except TemplateError as exc:
                self._fail_execution({"message": f"output: {exc.message}"})
                return
            except NotJSONError as exc:
                self._fail_execution({"message": f"the workflow's output cannot be stored: {exc}"})
                return
        self.lifecycle.complete(output, no_action=self._no_action_taken())

    def _no_action_taken(self) -> bool:
        """A step whose kind marks "no action" completed outside any loop."""
        return any(
            run.status == StepStatus.COMPLETED
            and self.drivers[run.step.step_type.kind].marks_no_action
            for run in self.root.runs.values()
        )

    def _fail_execution(
        self, error: dict[str, Any], *, cancelled_because: str = "the execution failed"
    ) -> None:
        if self.status.terminal:
            return
        self._cancel_everything(cancelled_because)
        error = self.on_failure.start(error, self.journal, self.info, self.clock.now())
        self.lifecycle.fail(error)

    def cancel_execution(self, reason: str, *, by: str) -> None:
        """Stop everything (running handlers see cancellation; children are cancelled too)."""
        if self.status.terminal:
            return
        self._cancel_everything("the execution was cancelled")
        self.lifecycle.cancel(reason, by=by)

    def _cancel_everything(self, reason: str) -> None:
        scopes = [self.root, *self.loops.active_scopes()]
        for scope in scopes:
            for run in list(scope.runs.values()):
                self.cancel_run(run, reason)
            scope.closed = True
        self.timers = []
        self.to_launch = []
        self.ready.clear()

    def cancel_run(self, run: StepExecution, reason: str) -> None:
        if run.terminal:
            return
        self._cancel_task_of(run)
        if run.suspended:
            self.inputs.forget(run)
        self.drivers[run.step.step_type.kind].cancel(run, reason)
        run.status = StepStatus.CANCELLED
        run.failed_at = self.clock.now()
        run.error = {"message": reason, "stepId": run.step.id, "attempt": run.attempt}
        self.journal.touch(run)
        self.journal.event("step.cancelled", run, {"reason": reason})

    def _cancel_task_of(self, run: StepExecution) -> None:
        for task, owner in list(self.tasks.items()):
            if owner is run:
                task.cancel()
                del self.tasks[task]


def _timeout_is_deadline(step: CompiledStep) -> bool:
    """A structural step (a loop, children, a wait: one attempt, no handler whose run a
    timeout could bound) takes its ``timeout`` as its deadline, persisted like ``due``
    so a parked execution keeps it, when it comes before ``due``."""
    timeout, due = step.spec.timeout, step.spec.due
    return (
        timeout is not None and step.step_type.kind.structural and (due is None or timeout <= due)
    )


def _deadline(step: CompiledStep) -> timedelta | None:
    """How long the step may take from its start (``due``, or a structural timeout)."""
    return step.spec.timeout if _timeout_is_deadline(step) else step.spec.due


def _late_message(step: CompiledStep) -> str:
    if _timeout_is_deadline(step):
        assert step.spec.timeout is not None
        return f"timed out after {step.spec.timeout.total_seconds():g}s"
    return "did not finish before it was due"


def _applied_before(run: StepExecution) -> list[Any]:
    """The ``ctx.variables`` changes a parked attempt's earlier build applied when it
    suspended (runtime.attempts): kept with the step's record, never applied again."""
    return applied_in(run.state) if run.suspended else []
