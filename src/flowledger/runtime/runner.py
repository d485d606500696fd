"""The scheduler of one execution: rounds of (activate ready steps → commit → run handlers).

One coroutine owns an execution while it holds the lease. Each round applies
every finished handler, activates the steps that became ready (pure steps run
inline, inside the round), commits all of it in one transaction, and only then
launches the handlers of steps with side effects — so a crash at any point
either loses nothing or re-runs a step that had not been recorded as done.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from flowledger.codec import Codec
from flowledger.definition.compiled import CompiledStep, CompiledWorkflow
from flowledger.errors import StepError, TemplateError
from flowledger.runtime.children import ChildWaits, Spawn
from flowledger.runtime.handlers import (
    describe,
    duration_detail,
    invoke_handler,
    normalize_output,
    retry_delay,
    validation_message,
)
from flowledger.runtime.inbox import Inbox
from flowledger.runtime.lifecycle import ExecutionLifecycle
from flowledger.runtime.loops import LoopDriver
from flowledger.runtime.services import Services
from flowledger.runtime.state import Scope, StepRun
from flowledger.runtime.status import ExecutionStatus, StepStatus
from flowledger.runtime.waits import InputWaits
from flowledger.steps.base import Suspend
from flowledger.steps.builtins import LoopInput
from flowledger.steps.human import INPUT_WAIT
from flowledger.storage.base import NEVER
from flowledger.timeutil import iso

log = logging.getLogger(__name__)

#: Activations per round before committing, so one round's batch stays bounded.
MAX_ROUND = 2000
#: A step that was running when its process died is re-run at most this often.
MAX_CRASH_RERUNS = 20


class ExecutionRunner(ExecutionLifecycle):
    """Drives one execution it holds the lease of; see the module docstring."""

    def __init__(
        self,
        services: Services,
        workflow: CompiledWorkflow,
        execution: Mapping[str, Any],
        epoch: int,
        codec: Codec | None = None,
    ) -> None:
        super().__init__(services, workflow, execution, epoch, codec)
        self.loops = LoopDriver(self)
        self.inputs = InputWaits(self)
        self.children = ChildWaits(self)
        self.inbox = Inbox(self)

    # -- the main loop ------------------------------------------------------------------------

    def poke(self) -> None:
        """Look for signals now (this process knows it just sent one)."""
        self.inbox.poke()
        self._wakeup.set()

    def drain(self) -> None:
        """Stop starting work: finish and record what is running, then return (SIGTERM)."""
        self.draining = True
        self._wakeup.set()

    async def run(self, park_after: float | None = None) -> ExecutionStatus:
        """Drive the execution until it is terminal, drained, or parked.

        With ``park_after``, an execution whose only pending work is a timer further
        away than that many seconds returns early with ``parked_until`` set, so the
        caller can release it and let any worker pick it up when the timer is due.
        """
        self.inline_children = park_after is None
        try:
            if self.signals_waiting:
                await self.inbox.take()  # a cancel may have come before the start
            else:
                self.inbox.checked()
            if self.status == ExecutionStatus.NOT_STARTED:
                self._begin()
            while True:
                if self.inbox.due() and not self.status.terminal:
                    await self.inbox.take()
                if not self.draining:
                    self._advance()
                await self.journal.commit()
                await self._report_children()
                if self.status.terminal:
                    return self.status
                if self.ready and not self.draining:
                    continue
                self._launch()  # what was recorded as started must run, drain or not
                if self.draining and not self.tasks:
                    return self.status
                if self._only_outside_waits():
                    if self.inputs.waiting or self.children.blocked_on_people:
                        self._await_people()
                        await self.journal.commit()
                        self.parked_until = self.timers[0][0] if self.timers else NEVER
                        return self.status
                    if park_after is not None and not self._timer_within(park_after):
                        self.parked_until = self.timers[0][0] if self.timers else NEVER
                        return self.status
                if park_after is not None and self._should_park(park_after):
                    self.parked_until = self.timers[0][0]
                    return self.status
                await self._wait()
        finally:
            for task in self.tasks:
                task.cancel()
            if self.tasks:
                await asyncio.gather(*self.tasks, return_exceptions=True)

    def _only_outside_waits(self) -> bool:
        """Nothing runs here: every unfinished step waits for a person or for children."""
        busy = self.tasks or self.ready or self.to_launch or self._finished
        return not busy and (self.inputs.waiting or self.children.waiting)

    def _timer_within(self, seconds: float) -> bool:
        if not self.timers:
            return False
        return (self.timers[0][0] - self.clock.now()).total_seconds() <= seconds

    async def _report_children(self) -> None:
        started = self.children.started
        if not started:
            return
        self.children.started = []
        if self.on_children is not None and self.inline_children:
            self.on_children(started)
        else:
            await self.services.store.notify_work()

    def _should_park(self, park_after: float) -> bool:
        if self.tasks or self.ready or not self.timers:
            return False
        return (self.timers[0][0] - self.clock.now()).total_seconds() > park_after

    def _begin(self) -> None:
        now = self.clock.now()
        self.started_at = now
        self.info["startedAt"] = iso(now)
        self._set_status(ExecutionStatus.IN_PROGRESS, started_at=now)
        self.journal.event("execution.started", at=now)
        self.open_scope(self.root)

    def open_scope(self, scope: Scope) -> None:
        for step in scope.graph.roots():
            self.ready.append((scope, step))

    def _advance(self) -> None:
        budget = MAX_ROUND
        while self.ready and budget > 0 and not self.status.terminal:
            scope, step = self.ready.popleft()
            if not scope.closed:
                self._activate(scope, step)
            budget -= 1
        self._fire_due_timers()

    def _launch(self) -> None:
        for run in self.to_launch:
            if run.status == StepStatus.IN_PROGRESS:
                task = asyncio.create_task(self._invoke(run), name=f"step {run.step.path}")
                task.add_done_callback(self._on_task_done)
                self.tasks[task] = run
        self.to_launch = []

    def _on_task_done(self, task: asyncio.Task[Any]) -> None:
        self._finished.append(task)
        self._wakeup.set()

    async def _wait(self) -> None:
        timeout: float | None = self.inbox.seconds_to_next()
        if self.timers:
            next_timer = (self.timers[0][0] - self.clock.now()).total_seconds()
            timeout = max(0.0, min(self.inbox.seconds_to_next(), next_timer))
        if self.draining:
            timeout = None  # timers belong to whoever owns the execution next
        idle = not self.tasks and not self._finished and not self.timers
        if idle and not self.draining and not self.children.waiting and not self.inputs.waiting:
            self._fail_execution(
                {"message": "the execution has nothing left to run but is not finished"}
            )
            return
        if not self._finished:
            self._wakeup.clear()  # drain() sets it again to cut the wait short
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()
        while self._finished:
            task = self._finished.popleft()
            run = self.tasks.pop(task, None)
            if run is not None:  # None: cancelled and forgotten by _cancel_task_of
                self._collect(task, run)

    # -- activation ---------------------------------------------------------------------------

    def _activate(self, scope: Scope, step: CompiledStep) -> None:
        """All predecessors are final: run the step, or disable it (SPEC §1 activation policy)."""
        preds = [scope.runs[p] for p in step.predecessors]
        active = not preds or any(p.resolved_ok for p in preds)
        if active and step.branch is not None:
            cond = scope.runs[step.branch.condition]
            result = isinstance(cond.output, Mapping) and bool(cond.output.get("result"))
            active = cond.status == StepStatus.COMPLETED and result == step.branch.result
        run = self.new_run(scope, step, attempt=1, status=StepStatus.NOT_STARTED)
        if active and step.when is not None:
            try:
                active = bool(step.when.render(self._context(scope)))
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
        self, scope: Scope, step: CompiledStep, attempt: int, status: StepStatus
    ) -> StepRun:
        run = StepRun(
            id=str(uuid.uuid4()),
            step=step,
            scope=scope,
            attempt=attempt,
            status=status,
            seq=next(self.step_seq),
            idempotency_key=self._idempotency_key(scope, step),
        )
        scope.runs[step.id] = run
        self.journal.touch(run)
        return run

    def _idempotency_key(self, scope: Scope, step: CompiledStep) -> str:
        # Same execution, step and iteration → same key, whatever the attempt or process.
        raw = f"{self.id}/{step.path}/{scope.key}".encode()
        return hashlib.sha256(raw).hexdigest()[:32]

    def start_attempt(self, run: StepRun) -> None:
        step = run.step
        now = self.clock.now()
        run.status = StepStatus.IN_PROGRESS
        run.started_at = now
        run.wake_at = None
        if step.spec.due is not None and run.due_at is None:
            run.due_at = now + step.spec.due
            self.add_timer(run.due_at, "due", run)
        self.journal.touch(run)
        self.journal.set_execution(current_state_name=step.id)
        self.journal.event("step.started", run, at=now)
        self.resume_status()
        try:
            if step.type_name == "sys.sub_workflow":
                run.input = self.children.render_input(step, self._context(run.scope))
            else:
                run.input = step.input.render(self._context(run.scope))
            run.input_stored = False
            data = step.step_type.input_model.model_validate(
                {k: v for k, v in run.input.items() if k != "inputs"}
                if step.type_name == "sys.sub_workflow"
                else run.input
            )
        except TemplateError as exc:
            self.step_failed(run, f"input: {exc.message}", retryable=False)
            return
        except ValidationError as exc:
            self.step_failed(run, "input: " + validation_message(exc), retryable=False)
            return
        if step.type_name == "sys.loop":
            assert isinstance(data, LoopInput)
            self.loops.start(run, data)
        elif step.step_type.pure:
            self._run_inline(run, data)
        else:
            self.to_launch.append(run)

    def _start_failed(self, run: StepRun, message: str) -> None:
        run.status = StepStatus.IN_PROGRESS
        run.started_at = self.clock.now()
        self.step_failed(run, message, retryable=False)

    # -- running handlers ---------------------------------------------------------------------

    def _run_inline(self, run: StepRun, data: BaseModel) -> None:
        try:
            result = run.step.step_type.handler(data, self._step_context(run))
        except StepError as exc:
            self.step_failed(run, exc.message, retryable=exc.retryable)
            return
        except Exception as exc:
            self.step_failed(run, describe(exc), retryable=False)
            return
        self.step_succeeded(run, result)

    async def _invoke(self, run: StepRun) -> Any:
        if run.step.type_name == "sys.sub_workflow":
            return await self.children.prepare(run)
        return await invoke_handler(run, self._step_context(run))

    def _collect(self, task: asyncio.Task[Any], run: StepRun) -> None:
        if run.status != StepStatus.IN_PROGRESS or task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            self.step_succeeded(run, task.result())
        elif isinstance(exc, StepError):
            self.step_failed(run, exc.message, retryable=exc.retryable, details=exc.details)
        elif isinstance(exc, TimeoutError):
            timeout = run.step.spec.timeout
            seconds = timeout.total_seconds() if timeout else 0
            self.step_failed(run, f"timed out after {seconds:g}s", retryable=True)
        else:
            self.logger.warning("step %s raised %r", run.step.path, exc)
            self.step_failed(run, describe(exc), retryable=True)

    # -- outcomes -----------------------------------------------------------------------------

    def step_succeeded(self, run: StepRun, result: Any) -> None:
        if isinstance(result, Suspend):
            self._suspend(run, result)
            return
        if isinstance(result, Spawn):
            self.children.spawn(run, result)
            return
        try:
            output = normalize_output(run.step, result)
        except ValidationError as exc:
            self.step_failed(
                run,
                "output does not match the step's output model: " + validation_message(exc),
                retryable=False,
            )
            return
        offload = self.services.offload_output
        # A condition's result is read by the scheduler itself: it always stays inline.
        if offload is None or run.step.type_name == "sys.condition":
            run.output = output
        else:
            run.output, run.output_json = offload(self.id, run.id, run.step.id, output, self.codec)
        now = self.clock.now()
        run.status = StepStatus.COMPLETED
        run.completed_at = now
        run.suspended = False
        run.wake_at = None
        self.journal.touch(run)
        self.journal.event("step.completed", run, duration_detail(run), at=now)
        if run.step.type_name == "sys.no_action" and not run.scope.key:
            self.no_action = True
        self._finish(run)

    def _suspend(self, run: StepRun, suspend: Suspend) -> None:
        run.suspended = True
        run.wake_at = suspend.until
        run.state = dict(suspend.state)
        self.journal.touch(run)
        self.journal.event(
            "step.suspended", run, {"until": iso(suspend.until) if suspend.until else None}
        )
        if suspend.until is not None:
            self.add_timer(suspend.until, "wake", run)
        if suspend.state.get("wait") == INPUT_WAIT:
            self.inputs.begin(run)

    def step_failed(
        self, run: StepRun, message: str, *, retryable: bool, details: Any = None
    ) -> None:
        now = self.clock.now()
        run.status = StepStatus.FAILED
        run.failed_at = now
        run.suspended = False
        run.wake_at = None
        run.error = {"message": message, "stepId": run.step.id, "attempt": run.attempt}
        if details is not None:
            run.error["details"] = details
        self.journal.touch(run)
        delay = retry_delay(run, self.clock.now()) if retryable else None
        self.journal.event(
            "step.failed", run, {"error": message, "willRetry": delay is not None}, at=now
        )
        if delay is not None:
            nxt = self.new_run(run.scope, run.step, run.attempt + 1, StepStatus.NOT_STARTED)
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

    def _finish(self, run: StepRun) -> None:
        """A step reached a final state: release its successors, close its scope if done."""
        scope = run.scope
        scope.unfinished -= 1
        for nxt in run.step.successors:
            scope.pending[nxt] -= 1
            if scope.pending[nxt] == 0:
                self.ready.append((scope, scope.graph.steps[nxt]))
        if scope.unfinished == 0:
            self.scope_done(scope)

    def scope_done(self, scope: Scope) -> None:
        scope.closed = True
        if scope.owner is None:
            self._complete_execution()
            return
        self.loops.iteration_done(scope)

    def fail_scope(self, scope: Scope, run: StepRun) -> None:
        if scope.owner is None:
            self._fail_execution(run.error or {"message": "a step failed"})
            return
        self.loops.iteration_failed(scope, run)

    # -- timers -------------------------------------------------------------------------------

    def _fire_due_timers(self) -> None:
        now = self.clock.now()
        while self.timers and self.timers[0][0] <= now and not self.status.terminal:
            _, _, kind, run = heapq.heappop(self.timers)
            if run.scope.closed:
                continue
            if kind == "retry" and run.status == StepStatus.NOT_STARTED:
                self.start_attempt(run)
            elif kind == "wake" and run.suspended and run.status == StepStatus.IN_PROGRESS:
                self.journal.event("step.resumed", run)
                self.to_launch.append(run)
            elif kind == "due" and not run.terminal:
                self._cancel_task_of(run)
                if self.inputs.timed_out(run):
                    continue
                if self.children.is_waiting(run):
                    self.children.cancel_children(run, "the sub-workflow step was due")
                self.step_failed(run, "did not finish before it was due", retryable=False)
