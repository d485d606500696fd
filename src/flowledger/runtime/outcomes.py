"""What becomes of one execution's step attempts: succeeded, parked, failed (and retried),
and what a step's end releases: its successors, its scope's end.

A handler's end reaches here from runtime.runner (a task's result) or a step's driver;
the step's row and events are written to the journal, committed with the round.
"""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from flowledger.codec import Codec, UnstorableError
from flowledger.definition.compiled import CompiledStep
from flowledger.definition.races import race_of
from flowledger.durations import spoken
from flowledger.errors import StepError, error_code_problem
from flowledger.jsonvalues import NotJSONError, lone_surrogate, storable
from flowledger.runtime.attempts import applied_in, parked, pending_in
from flowledger.runtime.contexts import StepContexts
from flowledger.runtime.drivers import driver_of
from flowledger.runtime.ending import ExecutionEnd
from flowledger.runtime.handlers import (
    HeartbeatTimedOut,
    StepTimedOut,
    describe,
    duration_detail,
    normalize_output,
    retry_decision,
    shortened,
    storable_text,
    validation_message,
)
from flowledger.runtime.heartbeats import HEARTBEAT_KEY, carry_heartbeat, heartbeat_details
from flowledger.runtime.journal import Journal
from flowledger.runtime.loops import LoopDriver
from flowledger.runtime.ports import AttemptMaker, Driver
from flowledger.runtime.reserved import ENGINE_KEY, engine_part, with_engine_part
from flowledger.runtime.services import Services
from flowledger.runtime.state import Scope, StepExecution
from flowledger.runtime.status import StepStatus
from flowledger.runtime.waits import InputWaits, parked_wait
from flowledger.runtime.wakes import Wakes
from flowledger.schema_check import problem_lines
from flowledger.steps.base import StepKind, Suspend
from flowledger.timeutil import Clock, iso


class Outcomes:
    """The outcomes of one execution's step attempts."""

    def __init__(
        self,
        services: Services,
        codec: Codec,
        journal: Journal,
        contexts: StepContexts,
        drivers: dict[StepKind, Driver],
        *,
        retries: AttemptMaker,
        wakes: Wakes,
        ending: ExecutionEnd,
        ready: deque[tuple[Scope, CompiledStep]],
    ) -> None:
        """``ready``: the runner's queue of steps to activate, that a step's end feeds."""
        self.id: str = contexts.info["id"]
        self.services = services
        self.codec = codec
        self.clock: Clock = services.clock
        self.journal = journal
        self.contexts = contexts
        self.drivers = drivers
        self.loops = driver_of(drivers, LoopDriver)
        self.inputs = driver_of(drivers, InputWaits)
        self.retries = retries
        self.wakes = wakes
        self.ending = ending
        self.ready = ready

    def collect(self, task: asyncio.Future[Any], run: StepExecution) -> None:
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
        elif isinstance(exc, HeartbeatTimedOut):
            # Below ``timeout``: a retry policy listing ``timeout`` takes it too.
            self.step_failed(run, str(exc), retryable=True, code="timeout.heartbeat")
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
        self.journal.completed(now)
        self.finish(run)

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
            self.wakes.add_timer(suspend.until, "wake", run)
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
            nxt = self.retries.new_run(
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
            self.wakes.add_timer(nxt.wake_at, "retry", nxt)
            return
        if run.step.spec.continue_on_error:
            self.finish(run)
        else:
            self.fail_scope(run.scope, run)

    def finish(self, run: StepExecution) -> None:
        """A step reached a final state: release its successors, close its scope if done."""
        scope = run.scope
        scope.unfinished -= 1
        step = run.step
        for nxt in step.released:
            scope.pending[nxt] -= 1
            if scope.pending[nxt] == 0:
                self.ready.append((scope, scope.graph.steps[nxt]))
        if step.raced:
            self._race(run)
        if scope.unfinished == 0:
            self.scope_done(scope, run)

    def _race(self, run: StepExecution) -> None:
        """``run`` ended before a ``join: first`` step: the first to complete releases it
        and decides its race (definition.races). One that did not complete only counts,
        a failure under ``continue_on_error`` too (the first answer wins, not the first
        error): when all have ended so, the join is activated as any join is."""
        scope = run.scope
        for join_id in run.step.raced:
            if scope.pending[join_id] == 0:
                continue  # released already: the race was decided
            if run.status != StepStatus.COMPLETED:
                scope.pending[join_id] -= 1
                if scope.pending[join_id] == 0:  # none completed: activation decides
                    self.ready.append((scope, scope.graph.steps[join_id]))
                continue
            scope.pending[join_id] = 0
            join = scope.graph.steps[join_id]
            self.ready.append((scope, join))
            self._decide(scope, join, run)

    def _decide(self, scope: Scope, join: CompiledStep, winner: StepExecution) -> None:
        """Cancel the race's running steps, and cut those that have not started."""
        reason = f"'{winner.step.id}' completed first, and '{join.id}' runs on it (join: first)"
        race = race_of(join, scope.graph.steps)
        scope.cut_off(sid for sid in race if sid not in scope.runs)
        losers = [scope.runs[s] for s in race if s in scope.runs and not scope.runs[s].terminal]
        for run in losers:
            self.ending.cancel_run(run, reason)
            self.finish(run)
        if losers:
            self.ending.resume_status()  # a losing wait no longer waits for a person

    def scope_done(self, scope: Scope, last: StepExecution | None = None) -> None:
        """Every step of ``scope`` is final; ``last``: the one whose end made it so."""
        scope.closed = True
        if scope.owner is None:
            self.ending.complete_execution(last)
            return
        self.loops.iteration_done(scope)

    def fail_scope(self, scope: Scope, run: StepExecution) -> None:
        if scope.owner is None:
            self.journal.state_name = run.step.id  # the step that failed the execution
            self.ending.fail_execution(run.error or {"message": "a step failed"})
            return
        self.loops.iteration_failed(scope, run)


def _applied_before(run: StepExecution) -> list[Any]:
    """The ``ctx.variables`` changes a parked attempt's earlier build applied when it
    suspended (runtime.attempts): kept with the step's record, never applied again."""
    return applied_in(run.state) if run.suspended else []
