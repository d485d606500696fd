"""When each step attempt ran and waited: the one rule that the web's timeline
(app.views) and ``executions show --timeline`` both draw.

- :func:`waits`: from the event history, each attempt's waits (a delay, a person,
  children: suspended until resumed or ended) and a retry's back-off (scheduled until
  the new attempt starts); a wait with no end yet is still going on.
- :func:`drawn_until`: where a drawing ends. An execution that is not over is drawn to
  *now*: a step waiting minutes for a person waits up to this moment, not up to the
  last event recorded.
- :func:`layout`: a drawing's time axis, with the long idle stretches (nothing running
  or waiting: a retry an hour after the failure) that are drawn as narrow breaks;
  :class:`Scale` places moments on it, for the web's width or the CLI's columns.
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
#: An idle stretch (no attempt running, none waiting) longer than GAP_MS and than
#: GAP_SHARE of the whole is drawn BREAK_WIDTH wide, a marked break: a retry an hour
#: after a one-second failure drew both bars as slivers at the drawing's two ends.
GAP_MS = 30_000
GAP_SHARE = 0.1
BREAK_WIDTH = 24.0
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


class TimelineBreak(TypedDict):
    """An idle stretch drawn narrow (not to scale)."""

    x: float
    width: float
    durationMs: int


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


@dataclass(frozen=True)
class Layout:
    """A drawing's time axis: from ``origin`` (the first start) to ``until``
    (:func:`drawn_until`), ``span`` ms apart, with the idle stretches drawn as breaks
    (``gaps``: ms since the origin, in order)."""

    origin: datetime
    until: datetime
    span: int
    gaps: tuple[tuple[int, int], ...]

    def ms(self, moment: datetime) -> int:
        return _ms(self.origin, moment)


def layout(
    execution: Mapping[str, Any],
    runs: Sequence[StepDocument],
    found: Mapping[str, Sequence[Wait]],
    now: datetime,
) -> Layout | None:
    """The time axis of a drawing of ``runs`` (those that started; None: none did) and
    their waits ``found``: what is idle (nothing running or waiting) and long enough to be
    a break (see GAP_MS). The web's bars and the CLI's chart both draw on it."""
    started = [run for run in runs if run["startedAt"]]
    if not started:
        return None
    stamps = [parse(r["startedAt"] or "") for r in started]
    stamps += [w.since for r in started for w in found.get(r["id"], ())]
    origin = min(stamps)
    ends = [parse(e) for r in started if (e := ended_at(r))]
    ends += [w.until for r in started for w in found.get(r["id"], ()) if w.until]
    until = drawn_until(execution, [*stamps, *ends], now)
    span = max(_ms(origin, until), 1)
    busy = [
        (_ms(origin, parse(r["startedAt"] or "")), _ms(origin, _stop(r, until))) for r in started
    ]
    busy += [
        (_ms(origin, w.since), _ms(origin, w.until or until))
        for r in started
        for w in found.get(r["id"], ())
    ]
    return Layout(origin, until, span, tuple(_gaps(busy, span)))


def bars(
    execution: Mapping[str, Any],
    runs: Sequence[StepDocument],
    found: Mapping[str, Sequence[Wait]],
    now: datetime,
) -> tuple[list[TimelineBar], int, list[TimelineBreak]]:
    """The web's bars of ``runs`` (those that started), the span they cover in ms, and
    the idle stretches drawn as breaks (see GAP_MS)."""
    frame = layout(execution, runs, found, now)
    if frame is None:
        return [], 0, []
    origin, until = frame.origin, frame.until
    scale = Scale(frame, TIMELINE_WIDTH, BREAK_WIDTH)
    drawn: list[TimelineBar] = []
    for run in runs:
        if not run["startedAt"]:
            continue
        began = parse(run["startedAt"])
        stop = _stop(run, until)
        spans: list[TimelineWait] = []
        for wait in found.get(run["id"], ()):
            start = _ms(origin, wait.since)
            length = _ms(wait.since, wait.until or until)
            spans.append(
                {
                    "kind": wait.kind,
                    "x": scale.x(start),
                    "width": max(scale.width(start, start + length), 1.0),
                    "durationMs": length,
                    "open": wait.until is None,
                }
            )
        first, last = _ms(origin, began), _ms(origin, stop)
        drawn.append(
            {
                "stepExecutionId": run["id"],
                "label": label(run),
                "status": run["status"],
                "attempt": run["attempt"],
                "startedAt": run["startedAt"],
                "durationMs": _ms(began, stop),
                "ended": ended_at(run) is not None,
                "x": scale.x(first),
                "width": max(scale.width(first, last), 2.0),
                "waits": spans,
            }
        )
    return drawn, frame.span, scale.breaks()


def _stop(run: StepDocument, until: datetime) -> datetime:
    end = ended_at(run)
    return parse(end) if end else until


def _gaps(busy: list[tuple[int, int]], span: int) -> list[tuple[int, int]]:
    """The idle stretches of ``[0, span]`` that ``busy`` leaves which are long enough to
    be drawn as breaks, in order."""
    longest = max(GAP_MS, GAP_SHARE * span)
    found: list[tuple[int, int]] = []
    reached = 0
    for start, stop in sorted(busy):
        if start - reached > longest:
            found.append((reached, start))
        reached = max(reached, stop)
    if span - reached > longest:
        found.append((reached, span))
    return found


class Scale:
    """Milliseconds since a layout's origin → units of a drawing ``width`` wide: linear,
    but for the layout's gaps, each ``break_width`` wide (the web's: TIMELINE_WIDTH and
    BREAK_WIDTH; the CLI's: its columns)."""

    def __init__(self, frame: Layout, width: float, break_width: float) -> None:
        self._gaps = frame.gaps
        self._frame = frame
        self._break = break_width
        kept = frame.span - sum(stop - start for start, stop in frame.gaps)
        self._unit = (width - break_width * len(frame.gaps)) / max(kept, 1)

    def position(self, ms: int) -> float:
        kept, drawn = ms, 0.0
        for start, stop in self._gaps:
            if start < ms:  # of a break it reaches into: its share of the break's width
                inside = min(stop, ms) - start
                kept -= inside
                drawn += self._break * inside / (stop - start)
        return drawn + kept * self._unit

    def at(self, moment: datetime) -> float:
        """Where ``moment`` is drawn."""
        return self.position(self._frame.ms(moment))

    def x(self, ms: int) -> float:
        return round(self.position(ms), 2)

    def width(self, start: int, stop: int) -> float:
        return round(self.x(stop) - self.x(start), 2)

    def breaks(self) -> list[TimelineBreak]:
        return [
            {"x": self.x(start), "width": self._break, "durationMs": stop - start}
            for start, stop in self._gaps
        ]


def label(run: StepDocument) -> str:
    """A step attempt's name: its step id, with the loop iterations it ran in."""
    loop = run.get("loop") or {}
    where = "".join(f"[{k}#{i}]" for k, i in loop.items())
    return f"{run['stepId']}{where}"


def _ms(since: datetime, until: datetime) -> int:
    return int((until - since).total_seconds() * 1000)
