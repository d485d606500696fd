"""The timeline's rule (app.timeline), which the web and ``executions show --timeline``
both draw."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flowledger.app.timeline import Wait, drawn_until, waits

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _at(ms: int) -> str:
    return (T0 + timedelta(milliseconds=ms)).isoformat().replace("+00:00", "Z")


def _event(kind: str, ms: int, attempt: str | None = "se-1") -> dict[str, Any]:
    return {"kind": kind, "at": _at(ms), "stepExecutionId": attempt}


def test_waits_of_a_person_of_children_and_of_a_retry() -> None:
    found = waits(
        [
            _event("step.started", 0),
            _event("step.suspended", 10),
            _event("step.awaiting_input", 10),  # the same wait, not a second
            _event("step.input_received", 900),
            _event("step.completed", 950),
            _event("step.started", 0, "se-2"),
            _event("step.children_planned", 20, "se-2"),  # its children still run
            _event("step.retry_scheduled", 30, "se-3"),
            _event("step.started", 80, "se-3"),
            _event("execution.awaiting_input", 100, None),
        ]
    )
    ms = timedelta(milliseconds=1)
    assert found == {
        "se-1": [Wait("wait", T0 + 10 * ms, T0 + 900 * ms)],
        "se-2": [Wait("wait", T0 + 20 * ms, None)],
        "se-3": [Wait("backoff", T0 + 30 * ms, T0 + 80 * ms)],
    }


def test_an_execution_not_over_is_drawn_to_now() -> None:
    now = T0 + timedelta(minutes=5)
    recorded = [T0, T0 + timedelta(milliseconds=55)]
    assert drawn_until({"runtimeStatus": "AwaitingUserInput"}, recorded, now) == now
    assert drawn_until({"runtimeStatus": "InProgress"}, recorded, T0) == recorded[-1]
    over = {"runtimeStatus": "Completed", "completedAt": _at(60)}
    assert drawn_until(over, recorded, now) == T0 + timedelta(milliseconds=60)
