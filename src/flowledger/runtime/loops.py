"""``sys.loop`` (``StepKind.LOOP``): iterations as scopes of their own.

A loop over ``items`` runs its body once per item, ``concurrency`` at a time. A loop with
``until`` runs it one iteration after another: when an iteration ends, ``until`` is
rendered in that iteration's scope (its body steps read as this iteration's outputs,
``loop.<id>.index`` set, the rest of the store as any step sees it). True completes the
loop with ``{count, results}``; false starts the next iteration, in the same round.
``max_iterations`` bounds it: reaching it with ``until`` still false fails the step, and
a retry, which resumes the loop where it stopped, may run as many again.

The frame of an iteration (``loop.<id>``) holds ``previous``: the outputs of the
iteration before, by body step id (what ``results[index - 1]`` holds), so a cursor
read from one page's answer asks for the next. It is null in the first iteration, and
where iterations run side by side (``concurrency`` above 1: none comes before another).
An until loop has no ``items``: its frame's ``items`` and ``item`` are null.

Recovery rebuilds the iterations from their rows. A last iteration that had ended (the
round that ended it may have been committed without the one that starts the next: a
drain stops between them, and a round is bounded, runner.MAX_ROUND) has ``until``
rendered again on its stored outputs, so no iteration runs twice and none is skipped.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from flowledger.errors import TemplateError
from flowledger.runtime.datastore import iteration_view
from flowledger.runtime.ports import Restoring, Scheduler
from flowledger.runtime.state import LoopState, Scope, StepExecution, child_key
from flowledger.runtime.status import StepStatus
from flowledger.runtime.tasks import TaskDriver
from flowledger.steps.builtins import LoopInput
from flowledger.templates.convert import truth

#: Why the other iterations stop when one fails.
STOPPED = "the loop stopped because another iteration failed"
#: The loop step's ``state`` key: the first index its attempt ran (``LoopState.limit``).
FIRST_INDEX = "firstIndex"


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

    def input(self, run: StepExecution, context: dict[str, Any]) -> BaseModel:
        step = run.step
        data = step.input.render(context)  # without until (CompiledStep.iteration_end)
        field = step.step_type.iteration_end_field
        if step.iteration_end is not None and field is not None and isinstance(data, dict):
            # Stored as written: it is rendered after each iteration, not now.
            data = {**data, field: step.iteration_end.source}
        run.input = data
        return step.step_type.input_model.model_validate(data)

    def start(self, run: StepExecution, data: BaseModel) -> None:
        assert isinstance(data, LoopInput)
        loop = self._loop(run, data.items, data.concurrency)
        if loop.until is not None:
            # Kept with the step: a crash must not give the attempt its bound anew.
            run.state = {FIRST_INDEX: 0}
            loop.max_iterations = data.max_iterations or 0
            loop.limit = loop.max_iterations
        self.runs[run.id] = loop
        self.next_iterations(loop)

    def _loop(self, run: StepExecution, items: list[Any] | None, concurrency: int) -> LoopState:
        until = run.step.iteration_end
        if until is not None:
            return LoopState(run=run, items=None, concurrency=1, until=until)
        items = items or []
        return LoopState(run=run, items=items, concurrency=concurrency, results=[None] * len(items))

    def cancel(self, run: StepExecution, reason: str) -> None:
        loop = self.runs.pop(run.id, None)
        if loop is not None:  # its running iterations stop with it, for the same reason
            self.stop(loop, reason)

    def restore(self, run: StepExecution, restoring: Restoring) -> bool:
        data: dict[str, Any] = run.input if isinstance(run.input, dict) else {}
        items = data.get("items")
        loop = self._loop(
            run, list(items) if isinstance(items, list) else None, int(data.get("concurrency") or 1)
        )
        self.runs[run.id] = loop
        started = restoring.started_indexes(run)
        for index in started:
            # Not opened: recovery decides from the rows which of its steps are ready.
            scope = self.start_iteration(loop, index, open_scope=False)
            restoring.restore_scope(scope)
            if scope.unfinished == 0:
                scope.closed = True
                if loop.until is not None and index == started[-1]:
                    loop.ended = scope  # until decides what comes next (restored)
                else:
                    self._keep_results(loop, scope)
        loop.next_index = (started[-1] + 1) if started else 0
        if loop.until is not None:
            self._restore_limit(loop, data, started)
        self._restored.append(loop)  # after its inner loops: they move on first
        return True

    def _restore_limit(self, loop: LoopState, data: dict[str, Any], started: list[int]) -> None:
        """``max_iterations`` counts from the first index of the loop step's attempt: a
        crash keeps it (the step's state), a retry's new attempt starts a new count where
        it resumes (the ended iteration's next, else the unfinished one)."""
        run = loop.run
        first = (run.state or {}).get(FIRST_INDEX)
        if not isinstance(first, int):
            first = loop.next_index if loop.ended is not None or not started else started[-1]
            run.state = {**(run.state or {}), FIRST_INDEX: first}
            self.scheduler.journal.touch(run)
        loop.max_iterations = int(data.get("max_iterations") or 0)
        loop.limit = first + loop.max_iterations

    def restored(self) -> None:
        loops, self._restored = self._restored, []
        for loop in loops:
            ended, loop.ended = loop.ended, None
            if ended is not None:
                self.iteration_done(ended)
            else:
                self.next_iterations(loop)

    # -- iterations ---------------------------------------------------------------------------

    def next_iterations(self, loop: LoopState) -> None:
        if loop.failed or loop.run.status != StepStatus.IN_PROGRESS:
            return
        if loop.items is None:  # until: one at a time, the next once the last is judged
            if not loop.active:
                self._next_or_fail(loop)
            return
        while len(loop.active) < loop.concurrency and loop.next_index < len(loop.items):
            self.start_iteration(loop, loop.next_index)
            loop.next_index += 1
        if loop.done == len(loop.items):
            self._complete(loop)

    def _complete(self, loop: LoopState) -> None:
        self.runs.pop(loop.run.id, None)
        self.scheduler.step_succeeded(loop.run, {"count": loop.done, "results": loop.results})

    def _fail(self, loop: LoopState, message: str, code: str = "step") -> None:
        self.runs.pop(loop.run.id, None)
        self.stop(loop, STOPPED)
        self.scheduler.step_failed(loop.run, message, retryable=False, code=code)

    def _next_or_fail(self, loop: LoopState) -> None:
        """Start the until loop's next iteration, or fail it at ``max_iterations``."""
        if loop.next_index >= loop.limit:
            runs = loop.next_index - (loop.limit - loop.max_iterations)
            self._fail(
                loop,
                f"until was still false after {runs:,} iterations (max_iterations: "
                f"{loop.max_iterations:,}); a retry runs up to as many more",
            )
            return
        self.start_iteration(loop, loop.next_index)
        loop.next_index += 1

    def start_iteration(self, loop: LoopState, index: int, *, open_scope: bool = True) -> Scope:
        parent = loop.run.scope
        loop_id = loop.run.step.id
        body = loop.run.step.body
        assert body is not None
        previous = None
        if index > 0 and loop.concurrency == 1 and index - 1 < len(loop.results):
            read = self.scheduler.services.read_artifact
            previous = iteration_view(loop.results[index - 1], body, read)
        items = loop.items
        frame = {
            "loopName": loop_id,
            "items": items,
            "index": index,
            "item": items[index] if items is not None else None,
            "previous": previous,
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
        until = loop.until
        if until is None:
            self._keep_results(loop, scope)
            self.next_iterations(loop)
            return
        if loop.failed or loop.run.status != StepStatus.IN_PROGRESS:
            return
        try:
            # Before its runs are let go: the body's steps read as this iteration's.
            holds = truth(until.render(self.scheduler.template(scope)))
        except TemplateError as exc:
            self._keep_results(loop, scope)
            self._fail(loop, f"until, after iteration {scope.index}: {exc.message}")
            return
        self._keep_results(loop, scope)
        if holds:
            self._complete(loop)
        else:
            self._next_or_fail(loop)

    def _keep_results(self, loop: LoopState, scope: Scope) -> None:
        outputs = {
            sid: r.output if r.status == StepStatus.COMPLETED else None
            for sid, r in scope.runs.items()
        }
        if scope.index == len(loop.results):  # until: the list grows an iteration at a time
            loop.results.append(outputs)
        else:
            loop.results[scope.index] = outputs
        del loop.active[scope.index]
        loop.done += 1
        scope.runs = {}  # outputs now live in the loop's results; free the iteration

    def iteration_failed(self, scope: Scope, run: StepExecution) -> None:
        loop = scope.owner
        assert loop is not None
        error = run.error or {}
        message = error.get("message", "failed")
        # The body step's code (http.5xx, timeout): a catch by code on the loop sees the
        # kind of failure, not the loop's own.
        self._fail(
            loop,
            f"iteration {scope.index} failed at step '{run.step.id}': {message}",
            code=str(error.get("code") or "step"),
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
