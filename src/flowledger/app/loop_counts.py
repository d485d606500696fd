"""How far an execution's loops got, from its step attempts: how many items each
iterates (the iteration selectors' range, the graph's ``done/total``) and how many
iterations have ended, in the loop iterations chosen around them."""

from __future__ import annotations

from collections.abc import Mapping

from flowledger.app.step_runs import run_order, selected
from flowledger.definition.compiled import CompiledStep, CompiledWorkflow
from flowledger.types import ExecutionDocument, StepDocument

TERMINAL_STEP = frozenset({"Completed", "Failed", "Disabled", "Cancelled"})


def iteration_counts(
    doc: ExecutionDocument, workflow: CompiledWorkflow, chosen: Mapping[str, int]
) -> dict[str, int]:
    """Loop id → how many iterations one can choose of it, in the ``chosen`` iterations
    of the loops around it (the most of any, where those are not chosen)."""
    runs = sorted(doc["steps"].values(), key=run_order)
    return loop_totals(workflow, runs, chosen)[1]


def loop_totals(
    workflow: CompiledWorkflow,
    runs: list[StepDocument],
    chosen: Mapping[str, int] | None = None,
) -> tuple[dict[str, int], dict[str, int]]:
    """Loop id → how many items it iterates: its latest run's, summed over the runs of
    a nested loop (one per iteration of the loops around it) that the ``chosen``
    iterations select; and loop id → the most items one of those runs iterates (the
    indexes one can choose). A loop with ``until`` has no items: until it ends, its
    count is of the iterations it started."""
    started = _iterations_started(workflow, runs)
    latest: dict[tuple[str, tuple[tuple[str, int], ...]], int] = {}
    for run in runs:  # oldest first: a later attempt replaces an earlier one
        step = workflow.steps.get(run["stepId"])
        if step is None or step.body is None or not selected(run, chosen or {}):
            continue
        items = (run.get("inputData") or {}).get("items")
        output = run["outputData"]
        where = (step.id, tuple(sorted((run.get("loop") or {}).items())))
        if isinstance(items, list):
            latest[where] = len(items)
        elif isinstance(output, dict) and isinstance(output.get("count"), int):
            latest[where] = output["count"]
        elif where in started:
            latest[where] = started[where]
    totals: dict[str, int] = {}
    widest: dict[str, int] = {}
    for (loop_id, _), count in latest.items():
        totals[loop_id] = totals.get(loop_id, 0) + count
        widest[loop_id] = max(widest.get(loop_id, 0), count)
    return totals, widest


def _iterations_started(
    workflow: CompiledWorkflow, runs: list[StepDocument]
) -> dict[tuple[str, tuple[tuple[str, int], ...]], int]:
    """(loop id, the indexes of the loops around it) → how many of its iterations have
    step executions."""
    started: dict[tuple[str, tuple[tuple[str, int], ...]], int] = {}
    for run in runs:
        indexes = run.get("loop") or {}
        for loop_id, index in indexes.items():
            step = workflow.steps.get(loop_id)
            if step is None:
                continue
            around = tuple(sorted((k, i) for k, i in indexes.items() if k in step.scope))
            started[(loop_id, around)] = max(started.get((loop_id, around), 0), index + 1)
    return started


def iterations_done(loop: CompiledStep, runs: list[StepDocument], chosen: Mapping[str, int]) -> int:
    """Iterations of ``loop`` whose body steps have all ended: of every run of a nested
    loop the ``chosen`` iterations select (an iteration is its index with those of the
    loops around it)."""
    assert loop.body is not None
    around = (*loop.scope, loop.id)
    outside = {k: i for k, i in chosen.items() if k in loop.scope}  # not its own, nor inner
    state: dict[tuple[int, ...], bool] = {}
    for run in runs:
        indexes = run.get("loop") or {}
        if loop.id not in indexes or run["stepId"] not in loop.body.steps:
            continue
        if not selected(run, outside):
            continue
        key = tuple(indexes.get(name, -1) for name in around)
        state[key] = state.get(key, True) and run["status"] in TERMINAL_STEP
    return sum(state.values())
