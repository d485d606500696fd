"""``sys.loop`` (``StepKind.LOOP``): iterations as scopes of their own, with bounded concurrency."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from flowledger.runtime.ports import Restoring, Scheduler
from flowledger.runtime.state import LoopState, Scope, StepExecution, child_key
from flowledger.runtime.status import StepStatus
from flowledger.runtime.tasks import TaskDriver
from flowledger.steps.builtins import LoopInput

#: Why the other iterations stop when one fails.
STOPPED = "the loop stopped because another iteration failed"


class LoopDriver(TaskDriver):
    # A retried loop goes on from its stored iterations; finished ones keep their outputs.
    resumes_on_retry = True

    def __init__(self, scheduler: Scheduler) -> None:
        super().__init__(scheduler)
        #: Running loops by the step execution id of their loop step.
        self.runs: dict[str, LoopState] = {}
        #: Loops rebuilt by recovery, moved on once every crashed step is re-run.
        self._restored: list[LoopState] = []

    # -- driver hooks -------------------------------------------------------------------------

    def start(self, run: StepExecution, data: BaseModel) -> None:
        assert isinstance(data, LoopInput)
        loop = LoopState(run=run, items=data.items, concurrency=data.concurrency)
        loop.results = [None] * len(data.items)
        self.runs[run.id] = loop
        self.next_iterations(loop)

    def cancel(self, run: StepExecution, reason: str) -> None:
        loop = self.runs.pop(run.id, None)
        if loop is not None:  # its running iterations stop with it, for the same reason
            self.stop(loop, reason)

    def restore(self, run: StepExecution, restoring: Restoring) -> bool:
        data: dict[str, Any] = run.input if isinstance(run.input, dict) else {}
        items = list(data.get("items") or [])
        loop = LoopState(run=run, items=items, concurrency=int(data.get("concurrency") or 1))
        loop.results = [None] * len(items)
        self.runs[run.id] = loop
        started = restoring.started_indexes(run)
        for index in started:
            # Not opened: recovery decides from the rows which of its steps are ready.
            scope = self.start_iteration(loop, index, open_scope=False)
            restoring.restore_scope(scope)
            if scope.unfinished == 0:
                scope.closed = True
                self._keep_results(loop, scope)
        loop.next_index = (started[-1] + 1) if started else 0
        self._restored.append(loop)  # after its inner loops: they move on first
        return True

    def restored(self) -> None:
        loops, self._restored = self._restored, []
        for loop in loops:
            self.next_iterations(loop)

    # -- iterations ---------------------------------------------------------------------------

    def next_iterations(self, loop: LoopState) -> None:
        if loop.failed or loop.run.status != StepStatus.IN_PROGRESS:
            return
        while len(loop.active) < loop.concurrency and loop.next_index < len(loop.items):
            self.start_iteration(loop, loop.next_index)
            loop.next_index += 1
        if loop.done == len(loop.items):
            self.runs.pop(loop.run.id, None)
            self.scheduler.step_succeeded(
                loop.run, {"count": len(loop.items), "results": loop.results}
            )

    def start_iteration(self, loop: LoopState, index: int, *, open_scope: bool = True) -> Scope:
        parent = loop.run.scope
        loop_id = loop.run.step.id
        body = loop.run.step.body
        assert body is not None
        frame = {
            "loopName": loop_id,
            "items": loop.items,
            "index": index,
            "item": loop.items[index],
        }
        scope = Scope(
            key=child_key(parent, loop_id, index),
            graph=body,
            parent=parent,
            loops={**parent.loops, loop_id: frame},
            owner=loop,
            index=index,
        )
        loop.active[index] = scope
        if open_scope:
            self.scheduler.open_scope(scope)
        return scope

    def iteration_done(self, scope: Scope) -> None:
        loop = scope.owner
        assert loop is not None
        self._keep_results(loop, scope)
        self.next_iterations(loop)

    def _keep_results(self, loop: LoopState, scope: Scope) -> None:
        loop.results[scope.index] = {
            sid: r.output if r.status == StepStatus.COMPLETED else None
            for sid, r in scope.runs.items()
        }
        del loop.active[scope.index]
        loop.done += 1
        scope.runs = {}  # outputs now live in the loop's results; free the iteration

    def iteration_failed(self, scope: Scope, run: StepExecution) -> None:
        loop = scope.owner
        assert loop is not None
        message = (run.error or {}).get("message", "failed")
        self.stop(loop, STOPPED)
        self.scheduler.step_failed(
            loop.run,
            f"iteration {scope.index} failed at step '{run.step.id}': {message}",
            retryable=False,
        )

    def stop(self, loop: LoopState, reason: str) -> None:
        loop.failed = True
        for scope in list(loop.active.values()):
            self.close_scope(scope, reason)

    def close_scope(self, scope: Scope, reason: str) -> None:
        scope.closed = True
        for run in scope.runs.values():
            if run.status in (StepStatus.IN_PROGRESS, StepStatus.NOT_STARTED):
                # A loop among them stops its own iterations (its cancel hook).
                self.scheduler.cancel_run(run, reason)

    def active_scopes(self) -> list[Scope]:
        return [s for loop in self.runs.values() for s in loop.active.values()]
