"""The driver of ordinary steps (``StepKind.TASK``), and the base every driver builds on.

A task's handler turns input into output: pure handlers run inside the round that
records them, others as a task after the round's commit. Structural drivers
(loops, children, waits) subclass :class:`TaskDriver` and override only the hooks
where their kind differs — the scheduler owns the transitions, kinds fill hooks.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, ClassVar

from pydantic import BaseModel

from flowledger.runtime.handlers import invoke_handler
from flowledger.runtime.ports import Restoring, Scheduler
from flowledger.runtime.state import StepExecution


class TaskDriver:
    resumes_on_retry: ClassVar[bool] = False
    keeps_output_inline: ClassVar[bool] = False
    marks_no_action: ClassVar[bool] = False
    #: ``input`` reads the template context only to render the step's input (so a
    #: constant input needs none).
    renders_input_only: ClassVar[bool] = True

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def input(self, run: StepExecution, context: dict[str, Any]) -> BaseModel:
        step = run.step
        run.input = step.input.render(context)
        return step.step_type.input_model.model_validate(run.input)

    def start(self, run: StepExecution, data: BaseModel) -> None:
        if run.step.step_type.pure:
            self.scheduler.run_inline(run, data)
        else:
            run.validated = data
            self.scheduler.to_launch.append(run)

    def invoke(self, run: StepExecution) -> Coroutine[Any, Any, Any]:
        # The handler's coroutine itself becomes the task: no wrapper frame per step.
        return invoke_handler(run, self.scheduler.step_context(run))

    def task_done(self, run: StepExecution, result: Any) -> None:
        self.scheduler.step_succeeded(run, result)

    def due(self, run: StepExecution) -> bool:
        return False

    def cancel(self, run: StepExecution, reason: str) -> None:
        return None

    def restore(self, run: StepExecution, restoring: Restoring) -> bool:
        # A suspended task (sys.delay) keeps waiting for its wake timer, one parked for an
        # input (runtime.waits) for that input too; one that was running had its process
        # die under it.
        if run.suspended:
            self.scheduler.wait_outside(run)
        return run.suspended

    def restored(self) -> None:
        return None


class ConditionDriver(TaskDriver):
    """``StepKind.CONDITION``: a task whose ``result`` the scheduler reads for branches."""

    keeps_output_inline = True


class NoActionDriver(TaskDriver):
    """``StepKind.NO_ACTION``: a task; one completed outside loops marks the execution
    CompletedWithNoActionTaken (the scheduler looks when the execution completes)."""

    marks_no_action = True
