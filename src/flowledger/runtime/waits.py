"""Steps waiting for input: a person's (``sys.wait_for_input``, ``StepKind.WAIT_FOR_INPUT``):
begin, deliver, time out; and the outside's, a custom step parked by ``Suspend`` until
``Engine.submit_input`` wakes it (a callback: a job submitted elsewhere, its webhook).

A custom step takes an input while parked by ``Suspend(until=None)``, and while parked by
``Suspend(until=t)`` when its type has a ``resume`` (the built-in ``sys.delay`` waits for
its time only): the first to come, the input or the time, wakes it. The engine's part of
its state (runtime.reserved) keeps ``{"outside": n}`` under ``"wait"`` while it waits (n:
the waits of this attempt that ended before), and once an input woke it ``{"woke": n + 1}``
with the data under ``"input"``, which its ``resume`` reads as ``state["input"]``; a time
that woke it changes nothing there, so its resume finds no ``"input"`` but the handler's
own. Its status stays InProgress, and so does the execution's: no person is asked
(AwaitingUserInput is for people, SPEC §4). ``run``/``drive``/``settle`` wait for the
input as for a ``sys.delay``; a worker parks the execution, and the input's signal makes
it claimable again.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from flowledger.codec import loads
from flowledger.durations import parse_duration
from flowledger.runtime.ports import Restoring, Scheduler
from flowledger.runtime.reserved import engine_part, with_engine_part
from flowledger.runtime.state import StepExecution
from flowledger.runtime.status import StepStatus
from flowledger.runtime.tasks import TaskDriver
from flowledger.steps.base import Suspend
from flowledger.steps.human import INPUT_WAIT, input_problems
from flowledger.timeutil import iso

#: How a waiting step is parked; its state is the marker documents.waits_for_input reads.
_WAITING = Suspend(until=None)


class InputWaits(TaskDriver):
    def __init__(self, scheduler: Scheduler) -> None:
        super().__init__(scheduler)
        #: Waiting step runs by step execution id.
        self.runs: dict[str, StepExecution] = {}
        #: Custom steps parked until an input comes from outside, by step execution id.
        self.outside: dict[str, StepExecution] = {}

    # -- driver hooks -------------------------------------------------------------------------

    def start(self, run: StepExecution, data: BaseModel) -> None:
        # The step has no handler: it parks at once, in the round that records its start.
        self.scheduler.suspend(run, _WAITING, {"wait": INPUT_WAIT})
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
        """A person is waited for."""
        return bool(self.runs)

    def wait_outside(self, run: StepExecution) -> None:
        """``run`` is parked (its state marked by :func:`parked_wait`), or was found so
        by recovery: when it takes an input it waits for one, or, when one woke it and
        its resume was cut (a restart), resumes again with that input."""
        if run.wake_at is None and taken_by(run.state) is not None:
            self.scheduler.to_launch.append(run)
        elif waits_outside(run.state) is not None:
            self.outside[run.id] = run

    def deliver(self, payload: dict[str, Any]) -> None:
        """Data a person submitted (checked again: the schema is the step's, not the caller's),
        or an input for a step parked for the outside."""
        step_execution_id = str(payload.get("stepExecutionId"))
        if step_execution_id in self.outside:
            self._wake(self.outside[step_execution_id], payload)
            return
        run = self.runs.get(step_execution_id)
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
                run, f"no input arrived before it was due ({due})", retryable=False, code="due"
            )
        return True

    def _wake(self, run: StepExecution, payload: Mapping[str, Any]) -> None:
        """An input for a step parked for the outside: its resume runs with it (after this
        round's commit, which records the input with the step: a restart resumes it)."""
        detail = {"submittedBy": payload.get("submittedBy"), "submittedAt": payload.get("at")}
        taken = waits_outside(run.state)
        if run.status != StepStatus.IN_PROGRESS or taken != payload.get("wait"):
            reason = "the step is not waiting"  # an answer to an earlier wait of it
            self.scheduler.journal.event("step.input_ignored", run, {**detail, "reason": reason})
            return
        assert taken is not None
        del self.outside[run.id]
        wait = {"woke": taken + 1}
        run.state = with_engine_part(run.state, wait=wait, input=payload.get("data"))
        # Woken before its time (a timed wait): the time is no longer waited for (its
        # timer finds no wake_at, Activation.fire_due_timers), nor kept on the row.
        run.wake_at = None
        self.scheduler.journal.touch(run)
        self.scheduler.journal.event("step.input_received", run, detail)
        self.scheduler.to_launch.append(run)

    def forget(self, run: StepExecution) -> None:
        self.runs.pop(run.id, None)
        self.outside.pop(run.id, None)


# -- a custom step parked for the outside ---------------------------------------------------


def parked_wait(before: Any, *, takes_input: bool) -> dict[str, int] | None:
    """The ``"wait"`` of the engine's part of a step's state as it parks: waiting for an
    input from outside, or, parked for a time only, the count of inputs it took, if any.
    ``before``: the step's state until now (a woken attempt that parks again counts on;
    one a time woke from a wait for input too, so the next wait's input is its own)."""
    taken = taken_by(before)
    if taken is None:
        ended = waits_outside(before)  # a time ended that wait
        taken = 0 if ended is None else ended + 1
    if takes_input:
        return {"outside": taken}
    return {"woke": taken} if taken else None


def waits_outside(state: Any) -> int | None:
    """How many waits of the step ended before, when its state waits for an input."""
    wait = engine_part(state).get("wait")
    if isinstance(wait, Mapping) and isinstance(wait.get("outside"), int):
        return int(wait["outside"])
    return None


def taken_by(state: Any) -> int | None:
    """How many waits of the step ended before the input that woke it, plus one (None:
    no input woke it, or it waits for one)."""
    wait = engine_part(state).get("wait")
    if isinstance(wait, Mapping) and isinstance(wait.get("woke"), int):
        return int(wait["woke"])
    return None


def outside_wait_of(row: Mapping[str, Any]) -> int | None:
    """A step execution row parked for an input from outside (with a time or without):
    the waits of its attempt that ended before."""
    if row["status"] != StepStatus.IN_PROGRESS or not row["suspended"]:
        return None
    return waits_outside(loads(row["state"]))


def input_signal_id(step_execution_id: str, taken: int) -> str:
    """The id of the input signal that wakes a step parked for the outside, ``taken``
    of whose waits ended before: one per wait, so a wait takes the first answer sent
    only (a webhook delivered twice wakes it once), and a later wait of it one of its own."""
    return str(uuid.uuid5(uuid.UUID(step_execution_id), f"input/{taken}"))
