"""``sys.loop``: iterations as scopes of their own, started with bounded concurrency."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowledger.runtime.state import LoopRun, Scope, StepRun, child_key
from flowledger.runtime.status import StepStatus
from flowledger.steps.builtins import LoopInput

if TYPE_CHECKING:
    from flowledger.runtime.runner import ExecutionRunner


class LoopDriver:
    def __init__(self, runner: ExecutionRunner) -> None:
        self.runner = runner
        #: Running loops by the step execution id of their loop step.
        self.runs: dict[str, LoopRun] = {}

    def start(self, run: StepRun, data: LoopInput) -> None:
        loop = LoopRun(run=run, items=data.items, concurrency=data.concurrency)
        loop.results = [None] * len(data.items)
        self.runs[run.id] = loop
        self.next_iterations(loop)

    def next_iterations(self, loop: LoopRun) -> None:
        if loop.failed or loop.run.status != StepStatus.IN_PROGRESS:
            return
        while len(loop.active) < loop.concurrency and loop.next_index < len(loop.items):
            self.start_iteration(loop, loop.next_index)
            loop.next_index += 1
        if loop.done == len(loop.items):
            self.runs.pop(loop.run.id, None)
            self.runner.step_succeeded(
                loop.run, {"count": len(loop.items), "results": loop.results}
            )

    def start_iteration(self, loop: LoopRun, index: int) -> Scope:
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
        self.runner.open_scope(scope)
        return scope

    def iteration_done(self, scope: Scope) -> None:
        loop = scope.owner
        assert loop is not None
        loop.results[scope.index] = {
            sid: r.output if r.status == StepStatus.COMPLETED else None
            for sid, r in scope.runs.items()
        }
        del loop.active[scope.index]
        loop.done += 1
        scope.runs = {}  # outputs now live in the loop's results; free the iteration
        self.next_iterations(loop)

    def iteration_failed(self, scope: Scope, run: StepRun) -> None:
        loop = scope.owner
        assert loop is not None
        message = (run.error or {}).get("message", "failed")
        self.stop(loop)
        self.runner.step_failed(
            loop.run,
            f"iteration {scope.index} failed at step '{run.step.id}': {message}",
            retryable=False,
        )

    def stop(self, loop: LoopRun) -> None:
        loop.failed = True
        for scope in list(loop.active.values()):
            self.close_scope(scope, "the loop stopped because another iteration failed")

    def close_scope(self, scope: Scope, reason: str) -> None:
        scope.closed = True
        for run in scope.runs.values():
            if run.status in (StepStatus.IN_PROGRESS, StepStatus.NOT_STARTED):
                if run.step.type_name == "sys.loop" and run.id in self.runs:
                    self.stop(self.runs.pop(run.id))
                self.runner.cancel_run(run, reason)

    def active_scopes(self) -> list[Scope]:
        return [s for loop in self.runs.values() for s in loop.active.values()]
