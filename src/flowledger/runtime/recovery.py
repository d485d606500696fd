"""Rebuild a runner's state from the database alone, after a crash or in another process.

Rounds commit atomically, so the rows always describe a consistent moment: steps
recorded final stay final (never re-run), suspended steps keep waiting for their
timer, and a step recorded running had its process die under it — it is marked
failed and re-run with attempt + 1 (at-least-once, with a stable idempotency key).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

from flowledger.codec import loads
from flowledger.definition.compiled import CompiledStep
from flowledger.runtime.runner import MAX_CRASH_RERUNS, ExecutionRunner
from flowledger.runtime.state import LoopRun, Scope, StepRun, child_key
from flowledger.runtime.status import StepStatus
from flowledger.steps.human import INPUT_WAIT
from flowledger.steps.subworkflow import CHILDREN_WAIT
from flowledger.storage.base import Row

CRASH_MESSAGE = "the process running this step stopped before the step finished"


def restore(runner: ExecutionRunner, rows: list[Row]) -> None:
    latest: dict[str, dict[str, Row]] = defaultdict(dict)  # loop_key -> step_path -> row
    for row in rows:
        by_path = latest[row["loop_key"]]
        seen = by_path.get(row["step_path"])
        if seen is None or row["attempt"] > seen["attempt"]:
            by_path[row["step_path"]] = row
    runner.step_seq = itertools.count(max((r["seq"] for r in rows), default=0) + 1)
    crashed: list[StepRun] = []
    loops: list[LoopRun] = []
    _restore_scope(runner, runner.root, latest, crashed, loops)
    for run in crashed:
        _rerun(runner, run)
    for loop in loops:
        runner.loops.next_iterations(loop)
    if runner.root.unfinished == 0 and not runner.root.closed:
        runner.scope_done(runner.root)


def _restore_scope(
    runner: ExecutionRunner,
    scope: Scope,
    latest: dict[str, dict[str, Row]],
    crashed: list[StepRun],
    loops: list[LoopRun],
) -> None:
    rows = latest.get(scope.key, {})
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
        elif step.type_name == "sys.loop":
            loops.append(_restore_loop(runner, run, latest, crashed, loops))
        elif run.suspended:
            if run.wake_at is not None:
                runner.add_timer(run.wake_at, "wake", run)
            wait = (run.state or {}).get("wait")
            if wait == INPUT_WAIT:
                runner.inputs.restore(run)
            elif wait == CHILDREN_WAIT:
                runner.children.restore(run)
        else:
            crashed.append(run)
        if run.due_at is not None and not run.terminal:
            runner.add_timer(run.due_at, "due", run)
    for sid, step in scope.graph.steps.items():
        if scope.pending[sid] == 0 and sid not in scope.runs:
            runner.ready.append((scope, step))


def _restore_loop(
    runner: ExecutionRunner,
    run: StepRun,
    latest: dict[str, dict[str, Row]],
    crashed: list[StepRun],
    loops: list[LoopRun],
) -> LoopRun:
    data = run.input if isinstance(run.input, dict) else {}
    items = list(data.get("items") or [])
    loop = LoopRun(run=run, items=items, concurrency=int(data.get("concurrency") or 1))
    loop.results = [None] * len(items)
    runner.loops.runs[run.id] = loop
    prefix = child_key(run.scope, run.step.id, 0)[: -len("0")]
    started = sorted(
        int(key[len(prefix) :])
        for key in latest
        if key.startswith(prefix) and key[len(prefix) :].isdigit()
    )
    for index in started:
        scope = runner.loops.start_iteration(loop, index)
        runner.ready = type(runner.ready)(
            entry for entry in runner.ready if entry[0] is not scope
        )  # roots were queued by start_iteration; restore decides readiness itself
        _restore_scope(runner, scope, latest, crashed, loops)
        if scope.unfinished == 0:
            scope.closed = True
            loop.results[index] = {
                sid: r.output if r.status == StepStatus.COMPLETED else None
                for sid, r in scope.runs.items()
            }
            del loop.active[index]
            loop.done += 1
            scope.runs = {}
    loop.next_index = (started[-1] + 1) if started else 0
    return loop


def _rerun(runner: ExecutionRunner, run: StepRun) -> None:
    now = runner.clock.now()
    run.status = StepStatus.FAILED
    run.failed_at = now
    run.error = {"message": CRASH_MESSAGE, "stepId": run.step.id, "attempt": run.attempt}
    runner.journal.touch(run)
    runner.journal.event("step.failed", run, {"error": CRASH_MESSAGE, "willRetry": True})
    if run.attempt >= MAX_CRASH_RERUNS:
        runner.fail_scope(run.scope, run)
        return
    nxt = runner.new_run(run.scope, run.step, run.attempt + 1, StepStatus.NOT_STARTED)
    nxt.due_at = run.due_at
    runner.start_attempt(nxt)


def _run_from_row(row: Row, step: CompiledStep, scope: Scope) -> StepRun:
    state: Any = loads(row["state"])
    return StepRun(
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
