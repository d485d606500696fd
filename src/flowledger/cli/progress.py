"""Showing an execution's steps while it runs: a live table on a terminal, plain lines otherwise.

The live table is redrawn at a fixed rate by Rich's refresh thread, never per event: an
event only updates counters (O(1)), so a workflow of 6,000 loop iterations costs the
same to watch as to pipe, and the clock ticks while nothing commits (a long HTTP call
does not look like a hang). The refresh thread and the event loop share the state under
one lock.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from rich.console import Console
from rich.text import Text

from flowledger.cli.clock import time_of_day
from flowledger.cli.terminal import discard_output, visible
from flowledger.definition.compiled import CompiledGraph, CompiledWorkflow

if TYPE_CHECKING:  # the live table's parts load only when the output is a terminal
    from rich.console import Group

STATUS_STYLE = {
    "Completed": "green",
    "InProgress": "yellow",
    "NotStarted": "dim",
    "Disabled": "dim",
    "Failed": "red",
    "Cancelled": "magenta",
    "Waiting": "cyan",
}
#: The status a step execution has after each event kind (None: unchanged).
_STEP_KINDS = {
    "step.started": "InProgress",
    "step.resumed": "InProgress",
    "step.input_received": "InProgress",
    "step.completed": "Completed",
    "step.reused": "Completed",
    "step.failed": "Failed",
    "step.disabled": "Disabled",
    "step.cancelled": "Cancelled",
    "step.retry_scheduled": "Waiting",
    "step.awaiting_input": "Waiting",
    "step.suspended": "Waiting",
    "step.children_planned": "InProgress",
}
#: Statuses that keep a row in view however tall the table is.
_ACTIVE = ("InProgress", "Waiting", "Failed")
#: Redraws per second: cheap, and fast enough for a ticking clock.
REFRESH_PER_SECOND = 4


@dataclass(frozen=True)
class StepRow:
    step_id: str
    depth: int
    type_name: str
    max_attempts: int


def step_rows(workflow: CompiledWorkflow) -> list[StepRow]:
    """The workflow's steps in definition order, loop bodies indented under their loop."""
    rows: list[StepRow] = []

    def flatten(graph: CompiledGraph, depth: int) -> None:
        for step in graph.steps.values():
            retry = step.spec.retry
            rows.append(StepRow(step.id, depth, step.type_name, retry.max_attempts if retry else 1))
            if step.body is not None:
                flatten(step.body, depth + 1)

    flatten(workflow.graph, 0)
    return rows


class PlainProgress:
    """One line per step event, for logs and pipes.

    Another execution's lines name it, the same way for every command that prints them
    (``run``, ``watch``, the control verbs): ``child 1a2b3c4d`` for the executions the
    command's own started (at any depth), ``parent 1a2b3c4d`` for those above it that an
    answer to it carries on (``ancestors``). The command's own end (``execution.completed``
    …) is printed after the ends of the children seen running here: a child told to stop
    when its parent ended ends after it (tour 24: a child's line after the parent's end
    read as if the child outlived the run).

    When the reader goes away (``flowledger run … | head -3``) the rest of the output is
    dropped quietly (:attr:`closed`): writing is never what stops or fails an execution
    this process runs."""

    def __init__(
        self,
        console: Console,
        execution_id: str | None = None,
        ancestors: Iterable[str] = (),
    ) -> None:
        self.console = console
        self.execution_id: str | None = execution_id
        self.ancestors = frozenset(ancestors)
        #: Children seen starting and not ending yet; the own end waits for them.
        self._open: set[str] = set()
        self._held: list[str] = []
        #: The reader of the output went away; what follows is discarded.
        self.closed = False

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._release()  # whatever its children did, the own end is said

    def begin(self, execution_id: str) -> None:
        self.execution_id = execution_id
        self._write(f"execution {execution_id}\n")
        if not self.closed:  # the id at once, even while the first step runs long
            self._flush()

    def update(self, execution_id: str, events: list[dict[str, Any]]) -> None:
        # Plain text, straight to the stream: Rich's print costs ~80 us a line, which a
        # 5,000-iteration loop (20,000 events) would turn into seconds.
        # The data in it is shown, not sent (cli.terminal).
        if self.execution_id is None:
            self.execution_id = execution_id
        label = self.label(execution_id)
        lines = []
        for event in events:
            line = event_line(event, label) + "\n"
            if execution_id == self.execution_id and event["kind"] in _ENDS and self._open:
                self._held.append(line)
            else:
                lines.append(line)
        self._write(visible("".join(lines)))
        if label.startswith("child"):
            self._child_moved(execution_id, events)

    def label(self, execution_id: str) -> str:
        """What starts another execution's lines (empty for the command's own)."""
        if execution_id == self.execution_id:
            return ""
        relation = "parent" if execution_id in self.ancestors else "child"
        return f"{relation} {execution_id[:8]} "

    def _child_moved(self, execution_id: str, events: list[dict[str, Any]]) -> None:
        if any(event["kind"] in _ENDS for event in events):
            self._open.discard(execution_id)
            if not self._open:
                self._release()
        elif events:
            self._open.add(execution_id)

    def _release(self) -> None:
        held, self._held = self._held, []
        if held:
            self._write(visible("".join(held)))

    def _write(self, text: str) -> None:
        if self.closed:
            return
        try:
            self.console.file.write(text)
        except BrokenPipeError:
            self._close()

    def _flush(self) -> None:
        try:
            self.console.file.flush()
        except BrokenPipeError:
            self._close()

    def _close(self) -> None:
        self.closed = True
        discard_output(self.console)


def iteration_suffix(loops: Mapping[str, Any] | None) -> str:
    """Which loop iteration a body step's line is about, after its id: ``[each 3]``
    (``send[each 3]``), the same in events, logs and the timeline."""
    return "".join(f"[{name} {index}]" for name, index in (loops or {}).items())


def event_line(event: dict[str, Any], label: str = "") -> str:
    """``10:02:03.120 step.failed  enrich (attempt 2): answered 503 120ms``, with
    ``label`` (a child's) after the time; a loop body's step says its iteration
    (``send[each 3] (attempt 1)``)."""
    line = f"{time_of_day(event['at'])} {label}{event['kind']:<22}"
    if event["stepId"]:
        found = event.get("detail")  # which iteration: ``b[each 3]``
        where = iteration_suffix(found.get("loop") if isinstance(found, dict) else None)
        line += f" {event['stepId']}{where} (attempt {event['attempt']})"
    detail = event.get("detail") or {}
    if not isinstance(detail, dict):
        return line
    if detail.get("error"):
        # After a step, "enrich (attempt 2): …"; an execution's own event has no step to
        # follow, so the error starts in that column ("execution.failed  input.x …").
        line += f": {detail['error']}" if event["stepId"] else f" {detail['error']}"
    if "durationMs" in detail:
        line += f" {detail['durationMs']}ms"
    if isinstance(detail.get("reason"), str) and event["stepId"]:  # why it was stopped
        line += f": {detail['reason']}"
    if event["kind"] == "step.retry_scheduled" and detail.get("wakeAt"):
        line += f" at {detail['wakeAt']}"
    if isinstance(detail.get("notRetried"), str):  # decided and worded by the runtime
        line += f" (not retried: {detail['notRetried']})"
    return line


class LiveProgress:
    """A table of the workflow's steps with counts per status, redrawn at a fixed rate."""

    def __init__(
        self,
        console: Console,
        name: str,
        rows: Iterable[StepRow],
        *,
        execution_id: str | None = None,
        started_at: datetime | None = None,
    ) -> None:
        self.console = console
        self.name = name
        self.rows = list(rows)
        self._known = {row.step_id for row in self.rows}
        self.execution_id = execution_id
        self.status = "InProgress"
        self._started = started_at.timestamp() if started_at is not None else time.time()
        self._ended: float | None = None
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[str, str]] = {}  # step execution id -> (step, status)
        self._counts: dict[str, Counter[str]] = defaultdict(Counter)
        self._attempts: dict[str, int] = defaultdict(int)
        self._notes: dict[str, tuple[str, Any]] = {}  # step id -> what it waits for
        self._children: dict[str, int] = {}  # sub-workflow step -> children planned
        self._children_done: set[str] = set()  # child executions seen ending
        self._children_counted = 0  # or, watching from afar, how many ended (polled)
        from rich.live import Live

        self._live = Live(
            console=console,
            get_renderable=self._render,
            refresh_per_second=REFRESH_PER_SECOND,
            transient=False,
        )

    def __enter__(self) -> LiveProgress:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.refresh()
        self._live.__exit__(None, None, None)

    def begin(self, execution_id: str) -> None:
        with self._lock:
            self.execution_id = execution_id

    def update(self, execution_id: str, events: list[dict[str, Any]]) -> None:
        with self._lock:
            if self.execution_id is None:
                self.execution_id = execution_id
            if execution_id != self.execution_id:
                self._child_events(execution_id, events)
                return
            for event in events:
                self._apply(event)

    def _apply(self, event: dict[str, Any]) -> None:
        kind = event["kind"]
        if kind.startswith("execution."):
            status = event.get("status")
            if isinstance(status, str) and status != "NotStarted":
                self.status = status
            if kind in ("execution.completed", "execution.failed", "execution.cancelled"):
                self._ended = _timestamp(event["at"])
            return
        sid, step_id, status = event["stepExecutionId"], event["stepId"], _STEP_KINDS.get(kind)
        if sid is None or step_id is None or status is None:
            return
        if step_id not in self._known:  # a definition we could not load: rows as they come
            self._known.add(step_id)
            self.rows.append(StepRow(step_id, 0, "", 1))
        previous = self._latest.get(sid)
        if previous is not None:
            self._counts[step_id][previous[1]] -= 1
        self._latest[sid] = (step_id, status)
        self._counts[step_id][status] += 1
        self._attempts[step_id] = max(self._attempts[step_id], event["attempt"] or 0)
        found = event.get("detail")
        detail: dict[str, Any] = found if isinstance(found, dict) else {}
        if kind == "step.retry_scheduled":
            self._notes[step_id] = ("retry", (event["attempt"], _timestamp(detail.get("wakeAt"))))
        elif kind == "step.awaiting_input":
            self._notes[step_id] = ("input", None)
        elif kind == "step.suspended":
            self._notes[step_id] = ("sleep", _timestamp(detail.get("until")))
        elif kind == "step.children_planned":
            self._children[step_id] = int(detail.get("count") or 0)
        else:
            self._notes.pop(step_id, None)

    @property
    def waits_for_children(self) -> bool:
        """Whether a sub-workflow step is running (then `watch` counts its children)."""
        with self._lock:
            return any(
                _summary(self._counts.get(step_id, Counter())) in ("InProgress", "Waiting")
                for step_id in self._children
            )

    def children_ended(self, count: int) -> None:
        """How many child executions have ended, counted in the database."""
        with self._lock:
            self._children_counted = count

    def _child_events(self, execution_id: str, events: list[dict[str, Any]]) -> None:
        # Children run in this process (`run`): count each one that ends.
        if any(e["kind"] in _ENDS for e in events):
            self._children_done.add(execution_id)

    # -- drawing (the refresh thread) --------------------------------------------------------

    def _render(self) -> Group:
        with self._lock:
            return self._draw()

    def _draw(self) -> Group:
        from rich.console import Group
        from rich.table import Table

        now = time.time()
        elapsed = (self._ended or now) - self._started
        title = Text.assemble(
            (self.name, "bold"),
            "  ",
            (self.status, STATUS_STYLE.get(self.status, "")),
            f"  {_clock(elapsed)}",
            f"  id {self.execution_id}" if self.execution_id else "  starting…",
        )
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column, justify in _COLUMNS:
            table.add_column(column, justify=justify, style="dim" if column == "type" else None)
        shown, hidden = self._fit()
        for row in shown:
            counts = self._counts.get(row.step_id, Counter())
            status = _summary(counts)
            table.add_row(
                "  " * row.depth + row.step_id,
                row.type_name,
                Text(self._status_text(row, status, now), style=STATUS_STYLE.get(status, "")),
                str(counts["Completed"] or ""),
                str(counts["InProgress"] or ""),
                str(counts["Failed"] or ""),
                str(self._attempts.get(row.step_id) or ""),
            )
        parts: list[Any] = [title, table]
        if hidden:
            tally = ", ".join(f"{n} {_words(status)}" for status, n in hidden.most_common())
            parts.append(Text(f"… {sum(hidden.values())} more steps ({tally})", style="dim"))
        return Group(*parts)

    def _status_text(self, row: StepRow, status: str, now: float) -> str:
        note = self._notes.get(row.step_id)
        text = status
        if status == "Waiting" and note is not None:
            kind, data = note
            if kind == "retry":
                attempt, wake = data
                left = f" in {_clock(max(0.0, wake - now))}" if wake else ""
                text = f"retry {attempt}/{row.max_attempts}{left}"
            elif kind == "input":
                text = "waiting for input"
            elif kind == "sleep":
                text = f"sleeping, {_clock(max(0.0, data - now))} left" if data else "sleeping"
        planned = self._children.get(row.step_id)
        if planned and status in ("InProgress", "Waiting"):
            done = max(len(self._children_done), self._children_counted)
            text += (
                f", children {min(done, planned)}/{planned}" if done else f", {planned} children"
            )
        return text

    def _fit(self) -> tuple[list[StepRow], Counter[str]]:
        """The rows that fit the terminal: active and failed ones always, then the next
        ones to run, then finished ones; the rest collapse into a tally."""
        room = max(3, self.console.size.height - 4)  # title, header, tally, the cursor line
        if len(self.rows) <= room:
            return self.rows, Counter()
        statuses = [_summary(self._counts.get(row.step_id, Counter())) for row in self.rows]
        rank = {"InProgress": 0, "Waiting": 0, "Failed": 1, "NotStarted": 2}
        order = sorted(range(len(self.rows)), key=lambda i: (rank.get(statuses[i], 3), i))
        keep = set(order[:room])
        hidden: Counter[str] = Counter(statuses[i] for i in range(len(self.rows)) if i not in keep)
        return [row for i, row in enumerate(self.rows) if i in keep], hidden


_COLUMNS: tuple[tuple[str, Literal["left", "right"]], ...] = (
    ("step", "left"),
    ("type", "left"),
    ("status", "left"),
    ("done", "right"),
    ("running", "right"),
    ("failed", "right"),
    ("attempts", "right"),
)
_ENDS = ("execution.completed", "execution.failed", "execution.cancelled")


def _summary(counts: Counter[str]) -> str:
    # A step whose earlier attempt failed but whose retry completed shows as Completed.
    for status in ("InProgress", "Waiting", "Completed", "Failed", "Cancelled", "Disabled"):
        if counts[status] > 0:
            return status
    return "NotStarted"


def _words(status: str) -> str:
    """``NotStarted`` as ``not started``."""
    return "".join(f" {c.lower()}" if c.isupper() else c for c in status).strip()


def _timestamp(text: Any) -> float:
    """Seconds since the epoch of an ISO time (0.0 when there is none)."""
    if not isinstance(text, str):
        return 0.0
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _clock(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
