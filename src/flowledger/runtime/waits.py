"""Steps waiting for a person (``sys.wait_for_input``, ``StepKind.WAIT_FOR_INPUT``):
begin, deliver, time out."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from flowledger.durations import parse_duration
from flowledger.runtime.ports import Restoring, Scheduler
from flowledger.runtime.state import StepExecution
from flowledger.runtime.status import StepStatus
from flowledger.runtime.tasks import TaskDriver
from flowledger.steps.base import Suspend
from flowledger.steps.human import INPUT_WAIT, input_problems
from flowledger.timeutil import iso

#: How a waiting step is parked (the marker documents.waits_for_input reads back).
_WAITING = Suspend(until=None, state={"wait": INPUT_WAIT})


class InputWaits(TaskDriver):
    def __init__(self, scheduler: Scheduler) -> None:
        super().__init__(scheduler)
        #: Waiting step runs by step execution id.
        self.runs: dict[str, StepExecution] = {}

    # -- driver hooks -------------------------------------------------------------------------

    def start(self, run: StepExecution, data: BaseModel) -> None:
        # The step has no handler: it parks at once, in the round that records its start.
        self.scheduler.suspend(run, _WAITING)
        self.begin(run)

    def due(self, run: StepExecution) -> bool:
        return self.timed_out(run)

    def cancel(self, run: StepExecution, reason: str) -> None:
        self.forget(run)

    def restore(self, run: StepExecution, restoring: Restoring) -> bool:
        if run.suspended:
            self.runs[run.id] = run
        return run.suspended

    # -- waiting ------------------------------------------------------------------------------

    def begin(self, run: StepExecution) -> None:
        """The step now waits; its own ``due`` (if earlier than the step-level one) is armed."""
        data = run.input if isinstance(run.input, dict) else {}
        if data.get("due") is not None:
            due_at = run.started_at or self.scheduler.clock.now()
            due_at = due_at + parse_duration(data["due"])
            if run.due_at is None or due_at < run.due_at:
                run.due_at = due_at
                self.scheduler.add_timer(due_at, "due", run)
        self.runs[run.id] = run
        self.scheduler.journal.touch(run)
        self.scheduler.journal.event(
            "step.awaiting_input",
            run,
            {
                "prompt": data.get("prompt"),
                "assignee": data.get("assignee"),
                "dueAt": iso(run.due_at) if run.due_at else None,
            },
        )
        self.scheduler.another_wait()

    @property
    def waiting(self) -> bool:
        return bool(self.runs)

    def deliver(self, payload: dict[str, Any]) -> None:
        """Data a person submitted (checked again: the schema is the step's, not the caller's)."""
        run = self.runs.get(str(payload.get("stepExecutionId")))
        detail = {"submittedBy": payload.get("submittedBy"), "submittedAt": payload.get("at")}
        if run is None or run.status != StepStatus.IN_PROGRESS:
            self.scheduler.journal.event(
                "step.input_ignored", None, {**detail, "reason": "the step is not waiting"}
            )
            return
        data = payload.get("data")
        schema = run.input.get("schema") if isinstance(run.input, dict) else None
        problems = input_problems(schema, data)
        if problems:
            self.scheduler.journal.event(
                "step.input_rejected", run, {**detail, "problems": problems}
            )
            return
        del self.runs[run.id]
        self.scheduler.journal.event("step.input_received", run, detail)
        self.scheduler.resume_status()
        self.scheduler.step_succeeded(run, data)

    def timed_out(self, run: StepExecution) -> bool:
        """Handle a waiting step's due time; False when the step is not a waiting one."""
        if self.runs.pop(run.id, None) is None:
            return False
        data = run.input if isinstance(run.input, dict) else {}
        self.scheduler.resume_status()
        on_timeout = data.get("on_timeout")
        if isinstance(on_timeout, dict):
            self.scheduler.journal.event("step.input_timed_out", run, {"tookDefault": True})
            self.scheduler.step_succeeded(run, on_timeout.get("default"))
        else:
            due = iso(run.due_at) if run.due_at else "its due time"
            self.scheduler.step_failed(
                run, f"no input arrived before it was due ({due})", retryable=False
            )
        return True

    def forget(self, run: StepExecution) -> None:
        self.runs.pop(run.id, None)
