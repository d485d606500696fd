"""Rebuild a runner's state from the database alone, after a crash or in another process.

Rounds commit atomically, so the rows always describe a consistent moment: steps
recorded final stay final (never re-run), suspended steps keep waiting for their
timer, and a step recorded running had its process die under it — it is marked
failed and re-run with attempt + 1 (at-least-once, with a stable idempotency key).
What a step in progress goes on with is its kind's driver's to say (``restore``):
a loop rebuilds its iterations, a waiting step waits again.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

from flowledger.codec import loads
from flowledger.definition.compiled import CompiledStep
from flowledger.runtime.ports import Recoverable
from flowledger.runtime.state import Scope, StepExecution, child_key
from flowledger.runtime.status import StepStatus
from flowledger.steps.base import StepKind
from flowledger.storage.base import Row

CRASH_MESSAGE = "the process running this step stopped before the step finished"
#: A step that was running when its process died is re-run at most this often.
MAX_CRASH_RERUNS = 20


def restore(runner: Recoverable, rows: list[Row]) -> None:
    latest: dict[str, dict[str, Row]] = defaultdict(dict)  # loop_key -> step_path -> row
    for row in rows:
        by_path = latest[row["loop_key"]]
        seen = by_path.get(row["step_path"])
        if seen is None or row["attempt"] > seen["attempt"]:
            by_path[row["step_path"]] = row
    runner.step_seq = itertools.count(max((r["seq"] for r in rows), default=0) + 1)
    restorer = _Restorer(runner, latest)
    restorer.restore_scope(runner.root)
    for run in restorer.crashed:
        _rerun(runner, run)
    for driver in restorer.drivers:
        driver.restored()
    if runner.root.unfinished == 0 and not runner.root.closed:
        runner.scope_done(runner.root)


class _Restorer:
    """Rebuilds scopes from the newest rows (a :class:`~flowledger.runtime.ports.Restoring`)."""

    def __init__(self, runner: Recoverable, latest: dict[str, dict[str, Row]]) -> None:
        self.runner = runner
        self.latest = latest
        self.crashed: list[StepExecution] = []
        # Every kind's driver, once, in a fixed order: each moves its restored steps on.
        self.drivers = list(dict.fromkeys(runner.driver(kind) for kind in StepKind))

    def restore_scope(self, scope: Scope) -> None:
        runner = self.runner
        rows = self.latest.get(scope.key, {})
        for step in scope.graph.steps.values():
            row = rows.get(step.path)
            if row is None:
                continue
            run = _run_from_row(row, step, scope)
            scope.runs[step.id] = run
            if run.terminal:
                scope.unfinished -= 1
                for nxt in step.successors:
                    scope.pending[nxt] -= 1
            elif run.status == StepStatus.NOT_STARTED:
                runner.add_timer(run.wake_at or runner.clock.now(), "retry", run)
            elif runner.driver(step.step_type.kind).restore(run, self):
                if run.suspended and run.wake_at is not None:
                    runner.add_timer(run.wake_at, "wake", run)
            else:
                self.crashed.append(run)
            if run.due_at is not None and not run.terminal:
                runner.add_timer(run.due_at, "due", run)
        for sid in scope.graph.steps:
            if scope.pending[sid] == 0 and sid not in scope.runs:
                runner.queue(scope, sid)

    def started_indexes(self, run: StepExecution) -> list[int]:
        prefix = child_key(run.scope, run.step.id, 0)[: -len("0")]
        return sorted(
            int(key[len(prefix) :])
            for key in self.latest
            if key.startswith(prefix) and key[len(prefix) :].isdigit()
        )


def _rerun(runner: Recoverable, run: StepExecution) -> None:
    now = runner.clock.now()
    run.status = StepStatus.FAILED
    run.failed_at = now
    run.error = {"message": CRASH_MESSAGE, "stepId": run.step.id, "attempt": run.attempt}
    runner.journal.touch(run)
    runner.journal.event("step.failed", run, {"error": CRASH_MESSAGE, "willRetry": True})
    if run.attempt >= MAX_CRASH_RERUNS:
        runner.fail_scope(run.scope, run)
        return
    nxt = runner.new_run(
        run.scope, run.step, run.attempt + 1, StepStatus.NOT_STARTED, run.idempotency_key
    )
    nxt.due_at = run.due_at
    runner.start_attempt(nxt)


def _run_from_row(row: Row, step: CompiledStep, scope: Scope) -> StepExecution:
    state: Any = loads(row["state"])
    return StepExecution(
        id=row["id"],
        step=step,
        scope=scope,
        attempt=row["attempt"],
        status=StepStatus(row["status"]),
        seq=row["seq"],
        idempotency_key=row["idempotency_key"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        failed_at=row["failed_at"],
        due_at=row["due_at"],
        wake_at=row["wake_at"],
        suspended=bool(row["suspended"]),
        input=loads(row["input"]),
        output=loads(row["output"]),
        error=loads(row["error"]),
        state=state if isinstance(state, dict) else None,
        children=loads(row["children"]) or None,
        persisted=True,
        input_stored=True,
    )
