"""How one execution as a whole moves: completed, failed, cancelled, or back from
waiting for people. Its ExecutionLifecycle records each move; this decides them and
stops what still runs (the steps' tasks, timers and waits) when the execution ends.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from flowledger.definition.compiled import CompiledStep, CompiledWorkflow
from flowledger.errors import TemplateError
from flowledger.jsonvalues import NotJSONError, storable
from flowledger.runtime.children import ChildWaits
from flowledger.runtime.contexts import StepContexts
from flowledger.runtime.drivers import driver_of
from flowledger.runtime.failure_handlers import FailureHandler
from flowledger.runtime.journal import Journal
from flowledger.runtime.lifecycle import ExecutionLifecycle
from flowledger.runtime.loops import LoopDriver
from flowledger.runtime.ports import Driver
from flowledger.runtime.state import Scope, StepExecution
from flowledger.runtime.status import StepStatus
from flowledger.runtime.waits import InputWaits
from flowledger.runtime.wakes import Wakes
from flowledger.steps.base import StepKind
from flowledger.timeutil import Clock


class ExecutionEnd:
    """The end (or the resumption) of one execution; the runner's parts it stops are
    shared with it, not copied."""

    def __init__(
        self,
        workflow: CompiledWorkflow,
        root: Scope,
        lifecycle: ExecutionLifecycle,
        journal: Journal,
        clock: Clock,
        contexts: StepContexts,
        on_failure: FailureHandler,
        drivers: dict[StepKind, Driver],
        *,
        tasks: dict[asyncio.Future[Any], StepExecution],
        wakes: Wakes,
        to_launch: list[StepExecution],
        ready: deque[tuple[Scope, CompiledStep]],
    ) -> None:
        """``tasks``, ``wakes``, ``to_launch``, ``ready``: the runner's own, which an end
        empties."""
        self.workflow = workflow
        self.root = root
        self.lifecycle = lifecycle
        self.journal = journal
        self.clock = clock
        self.contexts = contexts
        self.on_failure = on_failure
        self.drivers = drivers
        self.loops = driver_of(drivers, LoopDriver)
        self.inputs = driver_of(drivers, InputWaits)
        self.children = driver_of(drivers, ChildWaits)
        self.tasks = tasks
        self.wakes = wakes
        self.to_launch = to_launch
        self.ready = ready

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

    def complete_execution(self, last: StepExecution | None = None) -> None:
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
                self.fail_execution({"message": f"output: {exc.message}"})
                return
            except NotJSONError as exc:
                self.fail_execution({"message": f"the workflow's output cannot be stored: {exc}"})
                return
        self.lifecycle.complete(output, no_action=self._no_action_taken())

    def _no_action_taken(self) -> bool:
        """A step whose kind marks "no action" completed outside any loop."""
        return any(
            run.status == StepStatus.COMPLETED
            and self.drivers[run.step.step_type.kind].marks_no_action
            for run in self.root.runs.values()
        )

    def fail_execution(
        self, error: dict[str, Any], *, cancelled_because: str = "the execution failed"
    ) -> None:
        if self.lifecycle.status.terminal:
            return
        self._cancel_everything(cancelled_because)
        error = self.on_failure.start(error, self.journal, self.contexts.info, self.clock.now())
        self.lifecycle.fail(error)

    def cancel_execution(self, reason: str, *, by: str) -> None:
        """Stop everything (running handlers see cancellation; children are cancelled too)."""
        if self.lifecycle.status.terminal:
            return
        self._cancel_everything("the execution was cancelled")
        self.lifecycle.cancel(reason, by=by)

    def _cancel_everything(self, reason: str) -> None:
        scopes = [self.root, *self.loops.active_scopes()]
        for scope in scopes:
            for run in list(scope.runs.values()):
                self.cancel_run(run, reason)
            scope.closed = True
        self.wakes.timers.clear()
        self.to_launch.clear()
        self.ready.clear()

    def cancel_run(self, run: StepExecution, reason: str) -> None:
        if run.terminal:
            return
        self.cancel_task_of(run)
        if run.suspended:
            self.inputs.forget(run)
        self.drivers[run.step.step_type.kind].cancel(run, reason)
        run.status = StepStatus.CANCELLED
        run.failed_at = self.clock.now()
        run.error = {"message": reason, "stepId": run.step.id, "attempt": run.attempt}
        self.journal.touch(run)
        self.journal.event("step.cancelled", run, {"reason": reason})

    def cancel_task_of(self, run: StepExecution) -> None:
        for task, owner in list(self.tasks.items()):
            if owner is run:
                task.cancel()
                del self.tasks[task]
