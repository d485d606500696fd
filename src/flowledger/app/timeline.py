"""When each step attempt ran and waited: the one rule that the web's timeline
(app.views) and ``executions show --timeline`` both draw.

- :func:`waits`: from the event history, each attempt's waits (a delay, a person,
  children: suspended until resumed or ended) and a retry's back-off (scheduled until
  the new attempt starts); a wait with no end yet is still going on.
- :func:`drawn_until`: where a drawing ends. An execution that is not over is drawn to
  *now*: a step waiting minutes for a person waits up to this moment, not up to the
  last event recorded.
- :func:`bars`: the web's bars, in SVG units.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from typing_extensions import TypedDict

from flowledger.runtime.status import ExecutionStatus
from flowledger.types import StepDocument

#: Width of the web's timeline drawing, in SVG user units.
TIMELINE_WIDTH = 1000
#: The events that start a wait, and what kind of wait.
WAIT_STARTS = {
    "step.suspended": "wait",
    "step.awaiting_input": "wait",
    "step.children_planned": "wait",
    "step.retry_scheduled": "backoff",
}
#: The events that end one (a back-off ends when its attempt starts).
WAIT_ENDS = frozenset(
    {"step.resumed", "step.input_received", "step.input_timed_out", "step.started",
     "step.completed", "step.failed", "step.cancelled"}
)  # fmt: skip


@dataclass(frozen=True)
class Wait:
    #: ``wait`` (a delay, a person, children: suspended until resumed) or ``backoff``
    #: (a retry's delay before this attempt started).
    kind: str
    since: datetime
    #: None: still waiting.
    until: datetime | None


class TimelineWait(TypedDict):
    kind: str
    x: float
    width: float
    durationMs: int
    #: Still going on (drawn up to now).
    open: bool


class TimelineBar(TypedDict):
    stepExecutionId: str
    label: str
    status: str
    attempt: int
    startedAt: str
    #: How long it ran: to its end, or to now while it has none.
    durationMs: int
    #: Whether it has ended (else ``durationMs`` is "so far").
    ended: bool
    x: float
    width: float
    waits: list[TimelineWait]


def parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def ended_at(doc: Mapping[str, Any]) -> str | None:
    """When a step attempt or an execution ended (None: not yet)."""
    value = doc.get("completedAt") or doc.get("failedAt")
    return str(value) if value else None


def waits(events: Iterable[Mapping[str, Any]]) -> dict[str, list[Wait]]:
    """Step execution id → its waits, oldest first. A second start while one is open
    (a suspension, then the question it asks) is the same wait."""
    found: dict[str, list[Wait]] = {}
    for event in events:
        attempt = event.get("stepExecutionId")
        if attempt is None:
            continue
        periods = found.get(attempt, [])
        still = bool(periods) and periods[-1].until is None
        kind = event["kind"]
        if kind in WAIT_STARTS and not still:
            found[attempt] = [*periods, Wait(WAIT_STARTS[kind], parse(event["at"]), None)]
        elif kind in WAIT_ENDS and still:
            periods[-1] = replace(periods[-1], until=parse(event["at"]))
    return found


def drawn_until(
    execution: Mapping[str, Any], recorded: Iterable[datetime], now: datetime
) -> datetime:
    """Where the drawing of ``execution`` ends: at its last recorded moment once it is
    over, else at ``now`` (the application's clock), whatever was recorded last."""
    last = max(recorded, default=now)
    if ExecutionStatus(execution["runtimeStatus"]).terminal:
        end = ended_at(execution)
        return max(last, parse(end)) if end else last
    return max(last, now)


def bars(
    execution: Mapping[str, Any],
    runs: Sequence[StepDocument],
    found: Mapping[str, Sequence[Wait]],
    now: datetime,
) -> tuple[list[TimelineBar], int]:
    """The web's bars of ``runs`` (those that started) and the span they cover, in ms."""
    started = [run for run in runs if run["startedAt"]]
    if not started:
        return [], 0
    stamps = [parse(r["startedAt"] or "") for r in started]
    stamps += [w.since for r in started for w in found.get(r["id"], ())]
    origin = min(stamps)
    ends = [parse(e) for r in started if (e := ended_at(r))]
    ends += [w.until for r in started for w in found.get(r["id"], ()) if w.until]
    until = drawn_until(execution, [*stamps, *ends], now)
    span = max(_ms(origin, until), 1)

    def scale(ms: int) -> float:
        return round(ms * TIMELINE_WIDTH / span, 2)

    drawn: list[TimelineBar] = []
    for run in started:
        began = parse(run["startedAt"] or "")
        end = ended_at(run)
        stop = parse(end) if end else until
        spans: list[TimelineWait] = []
        for wait in found.get(run["id"], ()):
            start = _ms(origin, wait.since)
            length = _ms(wait.since, wait.until or until)
            spans.append(
                {
                    "kind": wait.kind,
                    "x": scale(start),
                    "width": max(scale(length), 1.0),
                    "durationMs": length,
                    "open": wait.until is None,
                }
            )
        drawn.append(
            {
                "stepExecutionId": run["id"],
                "label": label(run),
                "status": run["status"],
                "attempt": run["attempt"],
                "startedAt": run["startedAt"] or "",
                "durationMs": _ms(began, stop),
                "ended": end is not None,
                "x": scale(_ms(origin, began)),
                "width": max(scale(_ms(began, stop)), 2.0),
                "waits": spans,
            }
        )
    return drawn, span


def label(run: StepDocument) -> str:
    """A step attempt's name: its step id, with the loop iterations it ran in."""
    loop = run.get("loop") or {}
    where = "".join(f"[{k}#{i}]" for k, i in loop.items())
    return f"{run['stepId']}{where}"


def _ms(since: datetime, until: datetime) -> int:
    return int((until - since).total_seconds() * 1000)
