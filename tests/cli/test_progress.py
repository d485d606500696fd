"""The one-line form of an event that `run`, `watch` and `executions events` print."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from flowledger.cli.progress import PlainProgress, event_line


def _event(kind: str, step: str | None, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "at": "2026-01-01T10:02:03.120000Z",
        "kind": kind,
        "stepId": step,
        "attempt": 2 if step else None,
        "detail": detail,
    }


def test_a_step_event_names_its_step_then_what_went_wrong() -> None:
    line = event_line(_event("step.failed", "enrich", {"error": "answered 503"}))
    assert line == "10:02:03.120 step.failed            enrich (attempt 2): answered 503"


def test_a_failed_step_that_is_not_retried_says_why() -> None:
    detail = {"error": "gateway said no", "notRetried": "code CardDeclined is not in retry.codes"}
    line = event_line(_event("step.failed", "charge", detail))
    assert line.endswith(
        "charge (attempt 2): gateway said no (not retried: code CardDeclined is not in retry.codes)"
    )


def test_a_stopped_step_says_why() -> None:
    reason = "'answer' completed first, and 'decide' runs on it (join: first)"
    line = event_line(_event("step.cancelled", "work", {"reason": reason}))
    assert line.endswith(f"work (attempt 2): {reason}")
    # An execution's own reason is its event's, not a step's.
    cancelled = event_line(_event("execution.cancelled", None, {"reason": "no", "by": "ada"}))
    assert cancelled.rstrip().endswith("execution.cancelled")


def test_an_execution_event_gives_its_error_in_the_step_column() -> None:
    line = event_line(_event("execution.failed", None, {"error": "input.x does not exist"}))
    assert line == "10:02:03.120 execution.failed       input.x does not exist"
    assert event_line(_event("execution.completed", None, {})).rstrip().endswith("completed")


def test_a_loop_body_s_step_says_its_iteration() -> None:
    line = event_line(
        _event("step.completed", "cell", {"durationMs": 3, "loop": {"rows": 1, "cells": 2}})
    )
    assert line.endswith("step.completed         cell[rows 1][cells 2] (attempt 2) 3ms"), line


def _lines(console: Console) -> list[str]:
    file = console.file
    assert isinstance(file, io.StringIO)
    return [line.split(" ", 1)[1] for line in file.getvalue().splitlines()]


def _plain(**kwargs: Any) -> tuple[PlainProgress, Console]:
    console = Console(file=io.StringIO(), width=200)
    return PlainProgress(console, "own-0000-1", **kwargs), console


def test_other_executions_are_children_or_parents_as_run_names_them() -> None:
    """Tour 24: `retry` labelled children `execution 1a2b3c4d`, `run` `child 1a2b3c4d`."""
    progress, console = _plain(ancestors=["up-00000-1"])
    with progress:
        progress.update("own-0000-1", [_event("step.started", "ask", {})])
        progress.update("kid-0000-1", [_event("execution.started", None, {})])
        progress.update("up-00000-1", [_event("step.completed", "kids", {})])
    lines = _lines(console)
    assert lines[0].startswith("step.started")
    assert lines[1].startswith("child kid-0000 execution.started")
    assert lines[2].startswith("parent up-00000 step.completed")


def test_its_own_end_is_said_after_the_ends_of_its_children() -> None:
    """Tour 24: a child told to stop when its parent ended printed its end after the
    parent's, as if it outlived the run."""
    progress, console = _plain()
    with progress:
        progress.update("kid-0000-1", [_event("execution.started", None, {})])
        progress.update("own-0000-1", [_event("execution.failed", None, {"error": "n is 2"})])
        progress.update("kid-0000-1", [_event("execution.cancelled", None, {})])
        progress.update("kid-0000-2", [_event("execution.started", None, {})])
    lines = _lines(console)
    assert lines[0].startswith("child kid-0000 execution.started")
    assert lines[1].startswith("child kid-0000 execution.cancelled")
    assert lines[2].startswith("execution.failed")
    assert lines[3].startswith("child kid-0000 execution.started")  # after it: said as it came
    progress, console = _plain()
    with progress:  # a child that never ends here: the end is said when the output ends
        progress.update("kid-0000-1", [_event("execution.started", None, {})])
        progress.update("own-0000-1", [_event("execution.completed", None, {})])
        assert _lines(console) == [_lines(console)[0]]
    assert _lines(console)[1].startswith("execution.completed")
