"""``join: first``: a step that runs when the first of its predecessors completes, and
what it cancels then.

A join waits for every predecessor by default (SPEC §1). With ``join: first`` it is
released by the first predecessor that completes, and the race is decided: every step
whose paths all lead into the join (its *race*) and that has not ended is cancelled if
it runs, and disabled if it has not started. The losing branch of "an answer or a
timer", or of two providers asked at once, stops there; a step that also feeds
something else is not in the race and runs on. A failure under ``continue_on_error``
decides nothing (the first answer wins, not the first error): when no predecessor
completes, the join is activated once all have ended, as any join is (it runs after a
tolerated failure, and is Disabled when all were skipped).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from flowledger.definition.compiled import CompiledStep
from flowledger.definition.graph import GraphShape, Report, topological
from flowledger.definition.models import StepSpec
from flowledger.errors import Path


def first_joins(steps: Sequence[StepSpec]) -> set[str]:
    return {step.id for step in steps if step.join == "first"}


def report_lone_races(
    steps: Sequence[StepSpec], base: Path, shape: GraphShape, report: Report
) -> None:
    """A ``join: first`` needs two predecessors to race (with one it is an ordinary
    step), and none of them may be the condition whose branch it is."""
    for i, step in enumerate(steps):
        if step.join != "first" or step.id not in shape.predecessors:
            continue
        preds = shape.predecessors[step.id]
        branch = shape.branches.get(step.id)
        if branch is not None:
            report(
                f"join: first cannot be on a then/else branch of '{branch.condition}': the "
                "branch runs only once its condition has; race the steps before the "
                "condition instead",
                (*base, i, "join"),
                step.id,
            )
        elif len(preds) < 2:
            after = f"only after '{preds[0]}'" if preds else "after no step"
            report(
                f"join: first has nothing to race: the step runs {after}; list two or more "
                "steps in its after (the first to complete releases it)",
                (*base, i, "join"),
                step.id,
            )


def post_dominated(shape: GraphShape, joins: set[str]) -> dict[str, tuple[str, ...]]:
    """The post-dominator tree of a graph with a ``join: first``, as each step's children:
    the steps whose every path leads through it first (``{}`` without such a join).

    A join's race is its subtree (:func:`race_of`): every path from a member leads into
    the join. One pass from the last step back, each step's immediate post-dominator the
    nearest common one of its successors' (Cooper, Harvey and Kennedy's intersection):
    near-linear, where checking every join against every step took seconds for a
    definition with a thousand joins."""
    if not joins:
        return {}
    order = topological(shape)  # a cycle's steps are left out: they are refused anyway
    position = {sid: i for i, sid in enumerate(order)}
    ipdom: dict[str, str | None] = {}

    def common(a: str | None, b: str | None) -> str | None:
        # A post-dominator comes after what it post-dominates: walk up from the earlier.
        while a != b:
            if a is None or b is None:
                return None  # only the end of the graph is common to both
            if position[a] < position[b]:
                a = ipdom[a]
            else:
                b = ipdom[b]
        return a

    for sid in reversed(order):
        nexts = [n for n in shape.successors[sid] if n in position]
        found: str | None = nexts[0] if nexts else None
        for other in nexts[1:]:
            found = common(found, other)
        ipdom[sid] = found
    children: dict[str, list[str]] = {}
    for sid in shape.order:  # list order: a race is cancelled in the same order every time
        parent = ipdom.get(sid)
        if parent is not None:
            children.setdefault(parent, []).append(sid)
    return {sid: tuple(below) for sid, below in children.items()}


def race_of(join: CompiledStep, steps: Mapping[str, CompiledStep]) -> list[str]:
    """The join's race: the steps its post-dominator subtree holds, depth first."""
    race: list[str] = []
    stack = list(reversed(join.post_dominated))
    while stack:
        sid = stack.pop()
        race.append(sid)
        stack.extend(reversed(steps[sid].post_dominated))
    return race
