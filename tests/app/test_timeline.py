"""The timeline's rule (app.timeline), which the web and ``executions show --timeline``
both draw."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flowledger.app.timeline import BREAK_WIDTH, Wait, bars, drawn_until, waits

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


HOUR = 3_600_000


def _run(id: str, start: int, end: int | None, status: str = "Completed") -> dict[str, Any]:
    ended = _at(end) if end is not None else None
    return {
        "id": id,
        "stepId": "fetch",
        "status": status,
        "attempt": 1,
        "startedAt": _at(start),
        "completedAt": ended if status == "Completed" else None,
        "failedAt": ended if status == "Failed" else None,
        "loop": {},
    }


def test_a_long_idle_stretch_is_drawn_as_a_narrow_break() -> None:
    """A retry an hour after a one-second failure drew both attempts as slivers at the
    two ends of the drawing (on-call tour): the hour nothing ran is a marked break."""
    runs: Any = [_run("a1", 0, 1000, "Failed"), _run("a2", HOUR, HOUR + 1000)]
    over = {"runtimeStatus": "Completed", "completedAt": _at(HOUR + 1000)}
    drawn, span, breaks = bars(over, runs, {}, T0 + timedelta(days=1))
    assert span == HOUR + 1000
    half = (1000 - BREAK_WIDTH) / 2  # each second of work: half of what is left
    assert breaks == [{"x": half, "width": BREAK_WIDTH, "durationMs": HOUR - 1000}]
    assert [(b["x"], b["width"]) for b in drawn] == [(0.0, half), (half + BREAK_WIDTH, half)]
    assert [b["durationMs"] for b in drawn] == [1000, 1000]  # what the labels say: as ran


def test_short_idle_stretches_waits_and_a_late_end_are_drawn_as_they_are() -> None:
    runs: Any = [_run("a", 0, 5000), _run("b", 25_000, 30_000)]  # 20 s idle: to scale
    drawn, _, breaks = bars({"runtimeStatus": "Completed"}, runs, {}, T0)
    assert breaks == [] and drawn[1]["x"] == round(25_000 * 1000 / 30_000, 2)
    # An hour waiting for a person is no idle stretch: it is drawn as a wait.
    asked: Any = [_run("ask", 0, HOUR)]
    person = {"ask": [Wait("wait", T0 + timedelta(seconds=1), T0 + timedelta(hours=1))]}
    drawn, _, breaks = bars({"runtimeStatus": "Completed"}, asked, person, T0)
    assert breaks == [] and drawn[0]["waits"][0]["width"] > 990
    # Cancelled two hours after its last attempt ended: the break is at the end.
    cancelled = {"runtimeStatus": "Cancelled", "completedAt": _at(2 * HOUR)}
    one: Any = [_run("a", 0, 1000)]
    drawn, span, breaks = bars(cancelled, one, {}, T0)
    assert span == 2 * HOUR and drawn[0]["width"] == 1000 - BREAK_WIDTH
    assert breaks == [
        {"x": 1000 - BREAK_WIDTH, "width": BREAK_WIDTH, "durationMs": 2 * HOUR - 1000}
    ]
