"""The one-line form of an event that `run`, `watch` and `executions events` print."""

from __future__ import annotations

from typing import Any

from flowledger.cli.progress import event_line


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


def test_an_execution_event_gives_its_error_in_the_step_column() -> None:
    line = event_line(_event("execution.failed", None, {"error": "input.x does not exist"}))
    assert line == "10:02:03.120 execution.failed       input.x does not exist"
    assert event_line(_event("execution.completed", None, {})).rstrip().endswith("completed")


def test_a_loop_body_s_step_says_its_iteration() -> None:
    line = event_line(
        _event("step.completed", "cell", {"durationMs": 3, "loop": {"rows": 1, "cells": 2}})
    )
    assert line.endswith("step.completed         cell[rows 1][cells 2] (attempt 2) 3ms"), line
