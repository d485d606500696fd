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

from collections.abc import Sequence

from flowledger.definition.graph import GraphShape, Report, topological
from flowledger.definition.models import StepSpec
from flowledger.errors import Path


def first_joins(steps: Sequence[StepSpec]) -> set[str]:
    return {step.id for step in steps if step.join == "first"}


def report_lone_races(
    steps: Sequence[StepSpec], base: Path, shape: GraphShape, report: Report
) -> None:
    """A ``join: first`` needs two predecessors to race: with one it is an ordinary step."""
    for i, step in enumerate(steps):
        if step.join != "first" or step.id not in shape.predecessors:
            continue
        preds = shape.predecessors[step.id]
        if len(preds) < 2:
            after = f"only after '{preds[0]}'" if preds else "after no step"
            report(
                f"join: first has nothing to race: the step runs {after}; list two or more "
                "steps in its after (the first to complete releases it)",
                (*base, i, "join"),
                step.id,
            )


def races(shape: GraphShape, joins: set[str]) -> dict[str, tuple[str, ...]]:
    """Each first join's race: the steps every path from which leads into it (before it,
    and nowhere else), found in one pass from the last step back; in list order, so what
    is cancelled is recorded in the same order every time."""
    if not joins:
        return {}
    order = topological(shape)
    found: dict[str, tuple[str, ...]] = {}
    for join in joins:
        members: set[str] = set()
        for sid in reversed(order):
            nexts = shape.successors[sid]
            if sid != join and nexts and all(n == join or n in members for n in nexts):
                members.add(sid)
        found[join] = tuple(sid for sid in shape.order if sid in members)  # in list order
    return found
