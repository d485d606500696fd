"""How one execution's steps are set going: activation (run or disabled, SPEC §1),
each attempt's start with its input, a pure handler run inline, a handler's context,
and what a due timer starts (a retry, a parked step's wake, a late step's failure).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Mapping
from datetime import timedelta
from functools import partial
from typing import Any

from pydantic import BaseModel, ValidationError

from flowledger.definition.compiled import CompiledStep, CompiledWorkflow
from flowledger.errors import StepError, TemplateError
from flowledger.runtime.contexts import StepContexts
from flowledger.runtime.datastore import stored_input
from flowledger.runtime.drivers import driver_of
from flowledger.runtime.ending import ExecutionEnd
from flowledger.runtime.handlers import describe, validation_message
from flowledger.runtime.heartbeats import HEARTBEAT_KEY, Heartbeat
from flowledger.runtime.ids import ordered_uuid
from flowledger.runtime.journal import Journal
from flowledger.runtime.lifecycle import ExecutionLifecycle
from flowledger.runtime.outcomes import Outcomes
from flowledger.runtime.ports import Driver
from flowledger.runtime.reserved import with_engine_part
from flowledger.runtime.state import Scope, StepExecution
from flowledger.runtime.status import ExecutionStatus, StepStatus
from flowledger.runtime.waits import InputWaits
from flowledger.runtime.wakes import Wakes
from flowledger.steps.base import StepContext, StepKind
from flowledger.templates.convert import truth
from flowledger.timeutil import Clock

#: The template context of a constant input: nothing reads it (``start_attempt``).
_NO_CONTEXT: dict[str, Any] = {}


class Activation:
    """Starts the steps and attempts of one execution."""

    def __init__(
        self,
        workflow: CompiledWorkflow,
        clock: Clock,
        journal: Journal,
        lifecycle: ExecutionLifecycle,
        contexts: StepContexts,
        drivers: dict[StepKind, Driver],
        *,
        outcomes: Outcomes,
        ending: ExecutionEnd,
        wakes: Wakes,
        to_launch: list[StepExecution],
    ) -> None:
        """``to_launch``: the runner's steps whose handlers run after the round's commit."""
        self.workflow = workflow
        self.clock = clock
        self.journal = journal
        self.lifecycle = lifecycle
        self.contexts = contexts
        self.drivers = drivers
        self.inputs = driver_of(drivers, InputWaits)
        self.outcomes = outcomes
        self.ending = ending
        self.wakes = wakes
        #: The wakes' heap itself (emptied in place, never replaced): read every round.
        self.timers = wakes.timers
        self.to_launch = to_launch
        #: The next step execution's number (recovery sets it past the stored ones).
        self.step_seq = itertools.count(1)

    def activate(self, scope: Scope, step: CompiledStep) -> None:
        """All predecessors are final: run the step, or disable it (SPEC §1 activation policy)."""
        runs = scope.runs
        active = not step.predecessors
        try:
            for pred in step.predecessors:  # a loop, not any() of a generator: one frame less
                if runs[pred].resolved_ok:
                    active = True
                    break
        except KeyError:  # a join: first, released before one of them started
            active = any(p in runs and runs[p].resolved_ok for p in step.predecessors)
        if active and step.branch is not None:
            cond = scope.runs[step.branch.condition]
            result = isinstance(cond.output, Mapping) and bool(cond.output.get("result"))
            active = cond.status == StepStatus.COMPLETED and result == step.branch.result
        cut = scope.cut
        race_lost = active and cut is not None and step.id in cut
        if race_lost:
            active = False  # a join: first it led into was released first (definition.races)
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
            why = {"reason": "the join: first it leads into ran first"} if race_lost else None
            self.journal.event("step.disabled", run, why)
            self.outcomes.finish(run)
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
        # Positional, in the dataclass's field order: seven keywords matched against its
        # 27 parameters cost more than the rest of the call (each step of a chain makes one).
        run = StepExecution(
            run_id,  # id
            step,  # step
            scope,  # scope
            attempt,  # attempt
            status,  # status
            next(self.step_seq),  # seq
            idempotency_key or run_id.replace("-", ""),  # idempotency_key
        )
        scope.runs[step.id] = run
        self.journal.touch(run)
        return run

    def start_attempt(self, run: StepExecution) -> None:
        step = run.step
        # Right after a completion in this round (a chain's successor): that instant.
        now = self.journal.take_completion() or self.clock.now()
        run.status = StepStatus.IN_PROGRESS
        run.started_at = now
        run.wake_at = None
        limit = _deadline(step)
        if limit is not None and run.due_at is None:
            run.due_at = now + limit
            self.wakes.add_timer(run.due_at, "due", run)
        journal = self.journal
        journal.touch(run)
        journal.state_name = step.id
        journal.event("step.started", run, at=now)
        if self.lifecycle.status is ExecutionStatus.AWAITING_USER_INPUT:
            self.ending.resume_status()  # not when a person is still waited for (lifecycle)
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
            self.outcomes.step_failed(run, f"input: {exc.message}", retryable=False, code="input")
            return
        except ValidationError as exc:
            message = "input: " + validation_message(exc)
            self.outcomes.step_failed(run, message, retryable=False, code="input")
            return
        driver.start(run, data)

    def _start_failed(self, run: StepExecution, message: str) -> None:
        run.status = StepStatus.IN_PROGRESS
        run.started_at = self.clock.now()
        self.outcomes.step_failed(run, message, retryable=False, code="input")  # its when: failed

    # -- running handlers ---------------------------------------------------------------------

    def run_inline(self, run: StepExecution, data: BaseModel) -> None:
        """Run a pure step's handler now, inside the round that records it."""
        try:
            handler = run.step.step_type.handler
            assert handler is not None
            result = handler(data, self.contexts.step(run))
        except StepError as exc:
            self.outcomes.step_error(run, exc)
            return
        except Exception as exc:
            self.outcomes.step_failed(run, describe(exc), retryable=False, code="internal")
            return
        self.outcomes.step_succeeded(run, result)

    def step_context(self, run: StepExecution) -> StepContext:
        # Its heartbeat saver is made at its first ctx.heartbeat: few steps ever call it.
        return self.contexts.step(run, partial(self._heartbeat_saver, run))

    def _heartbeat_saver(self, run: StepExecution) -> Heartbeat:
        # The loop is known here (a handler's thread may ask): _launch read it.
        return Heartbeat(self.wakes.running_loop(), partial(self._save_heartbeat, run))

    def _save_heartbeat(self, run: StepExecution, details: Any) -> None:
        """Keep an attempt's heartbeat in its state, committed by the next round (woken
        now: a long step alone would commit nothing until it ends)."""
        if run.status != StepStatus.IN_PROGRESS or run.scope.runs.get(run.step.id) is not run:
            return  # the attempt ended (or was cut) before the throttled write came
        run.state = with_engine_part(run.state, **{HEARTBEAT_KEY: details})
        self.journal.touch(run)
        self.wakes.wake()

    def template(self, scope: Scope) -> dict[str, Any]:
        return self.contexts.template(scope)

    def fire_due_timers(self) -> None:
        timers = self.timers
        if not timers:
            return
        now = self.clock.now()
        while timers and timers[0][0] <= now and not self.lifecycle.status.terminal:
            _, _, kind, run = heapq.heappop(timers)
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
                self.ending.cancel_task_of(run)
                if self.drivers[run.step.step_type.kind].due(run):
                    continue
                self.outcomes.step_failed(run, _late_message(run.step), retryable=False, code="due")


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
