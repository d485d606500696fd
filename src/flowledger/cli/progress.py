"""Showing an execution's steps while it runs: a live table on a terminal, plain lines otherwise."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from flowledger.definition.compiled import CompiledGraph, CompiledWorkflow

STATUS_STYLE = {
    "Completed": "green",
    "InProgress": "yellow",
    "NotStarted": "dim",
    "Disabled": "dim",
    "Failed": "red",
    "Cancelled": "magenta",
}
_STEP_KINDS = {
    "step.started": "InProgress",
    "step.completed": "Completed",
    "step.failed": "Failed",
    "step.disabled": "Disabled",
    "step.cancelled": "Cancelled",
    "step.retry_scheduled": "NotStarted",
}


class PlainProgress:
    """One line per step event, for logs and pipes."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, execution_id: str, events: list[dict[str, Any]]) -> None:
        for event in events:
            line = f"{event['at'][11:23]} {event['kind']:<22}"
            if event["stepId"]:
                line += f" {event['stepId']} (attempt {event['attempt']})"
            detail = event.get("detail") or {}
            if detail.get("error"):
                line += f": {detail['error']}"
            if "durationMs" in detail:
                line += f" {detail['durationMs']}ms"
            self.console.print(line, markup=False, highlight=False)


class LiveProgress:
    """A table of the workflow's steps, with counts per status, redrawn as events commit."""

    def __init__(self, console: Console, workflow: CompiledWorkflow) -> None:
        self.console = console
        self.workflow = workflow
        self.rows: list[tuple[str, int]] = []
        self._flatten(workflow.graph, 0)
        self.latest: dict[str, str] = {}  # step execution id -> status
        self.step_of: dict[str, str] = {}  # step execution id -> step id
        self.attempts: dict[str, int] = defaultdict(int)
        self.started = time.monotonic()
        self.status = "InProgress"
        self._live = Live(self._render(), console=console, refresh_per_second=12, transient=False)

    def _flatten(self, graph: CompiledGraph, depth: int) -> None:
        for step in graph.steps.values():
            self.rows.append((step.id, depth))
            if step.body is not None:
                self._flatten(step.body, depth + 1)

    def __enter__(self) -> LiveProgress:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.update(self._render())
        self._live.__exit__(None, None, None)

    def update(self, execution_id: str, events: list[dict[str, Any]]) -> None:
        for event in events:
            sid = event["stepExecutionId"]
            if sid and event["kind"] in _STEP_KINDS:
                self.latest[sid] = _STEP_KINDS[event["kind"]]
                self.step_of[sid] = event["stepId"]
                self.attempts[event["stepId"]] = max(
                    self.attempts[event["stepId"]], event["attempt"] or 0
                )
            elif event["kind"].startswith("execution."):
                self.status = event["kind"].split(".", 1)[1].capitalize()
        self._live.update(self._render())

    def _render(self) -> Group:
        counts: dict[str, Counter[str]] = defaultdict(Counter)
        for sid, status in self.latest.items():
            counts[self.step_of[sid]][status] += 1
        table = Table(box=None, pad_edge=False, header_style="bold")
        table.add_column("step")
        table.add_column("type", style="dim")
        table.add_column("status")
        table.add_column("done", justify="right")
        table.add_column("running", justify="right")
        table.add_column("failed", justify="right")
        table.add_column("attempts", justify="right")
        for step_id, depth in self.rows:
            step = self.workflow.steps[step_id]
            c = counts.get(step_id, Counter())
            status = _summary(c)
            table.add_row(
                "  " * depth + step_id,
                step.type_name,
                Text(status, style=STATUS_STYLE.get(status, "")),
                str(c["Completed"] or ""),
                str(c["InProgress"] or ""),
                str(c["Failed"] or ""),
                str(self.attempts.get(step_id) or ""),
            )
        elapsed = time.monotonic() - self.started
        title = Text(f"{self.workflow.name}  {elapsed:.1f}s", style="bold")
        return Group(title, table)


def _summary(counts: Counter[str]) -> str:
    # A step whose earlier attempt failed but whose retry completed shows as Completed.
    for status in ("InProgress", "Completed", "Failed", "Cancelled", "Disabled", "NotStarted"):
        if counts[status]:
            return status
    return "NotStarted"
