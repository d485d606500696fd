"""What the read models (app.views and the modules it draws on) read alike of an
execution's step attempts: their order, how long one ran, whether one belongs to the
chosen loop iterations, and how many ended ones a page lists."""

from __future__ import annotations

from collections.abc import Mapping

from flowledger.app.timeline import ended_at, parse
from flowledger.types import StepDocument

#: Ended attempts listed (with their timeline bars and data store entries): the latest.
#: Keeps the page of a long graph small (a 3,000-step chain's was 7 MB, 2 s to render,
#: re-sent on each live change): name a step to see its attempts.
SHOWN_ATTEMPTS = 100


def run_order(run: StepDocument) -> tuple[bool, str, int]:
    """Sort key: started first, oldest first, then by attempt."""
    return (run["startedAt"] is None, run["startedAt"] or "", run["attempt"])


def run_duration(run: StepDocument) -> int | None:
    """How long the attempt ran, in ms (None: not started, or not ended)."""
    start, end = run["startedAt"], ended_at(run)
    if start is None or end is None:
        return None
    return int((parse(end) - parse(start)).total_seconds() * 1000)


def selected(run: StepDocument, chosen: Mapping[str, int]) -> bool:
    """The run belongs to the chosen iteration of every loop around it."""
    return all(chosen.get(k, i) == i for k, i in (run.get("loop") or {}).items())
