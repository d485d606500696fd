"""The text timeline of ``executions show --timeline``, drawn from a made-up document so
every moment is known (the CLI tests draw real runs, whose timing varies)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console

from flowledger.app.execution_reads import Runner
from flowledger.cli.render import (
    TIMELINE_WIDTH,
    execution_detail,
    failed_periods,
    held_by,
    pending_inputs,
    runner_note,
    summary,
    timeline,
)
from flowledger.cli.terminal import SafeConsole
from flowledger.runtime.refusals import Refusal

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _at(ms: float) -> str:
    return (T0 + timedelta(milliseconds=ms)).isoformat()


def _attempt(number: int, began: float, ended: float, status: str) -> dict[str, Any]:
    return {
        "id": f"se-{number}",
        "stepId": "call",
        "loop": {},
        "attempt": number,
        "status": status,
        "startedAt": _at(began),
        "completedAt": _at(ended) if status == "Completed" else None,
        "failedAt": _at(ended) if status == "Failed" else None,
    }


def _row(doc: dict[str, Any]) -> str:
    console = Console(width=200, record=True, color_system=None)
    with console.capture() as captured:
        timeline(console, doc)
    [row] = [line for line in captured.get().splitlines() if line.startswith("call")]
    return row


def test_attempts_shorter_than_a_cell_keep_their_mark_beside_the_waits() -> None:
    # Three 1 ms failures 200 ms apart: each ends in the cell it began in.
    attempts = [_attempt(n, (n - 1) * 201, (n - 1) * 201 + 1, "Failed") for n in (1, 2, 3)]
    doc = {
        "id": "e1",
        "runtimeStatus": "Failed",
        "failedAt": _at(403),
        "steps": {str(i): a for i, a in enumerate(attempts)},
    }
    row = _row(doc)
    bar = row.split("|")[1]
    assert len(bar) == TIMELINE_WIDTH
    assert len(re.findall("x+", bar)) == 3 and bar[0] == "x" and bar[-1] == "x", row
    assert set(bar[1:-1]) <= {"·", "x"} and "·" in bar, row
    assert row.endswith("3 times (attempt 3)")


def test_a_retry_that_succeeded_after_a_long_failure() -> None:
    attempts = [_attempt(1, 0, 300, "Failed"), _attempt(2, 500, 1000, "Completed")]
    doc = {
        "id": "e2",
        "runtimeStatus": "Completed",
        "completedAt": _at(1000),
        "steps": {str(i): a for i, a in enumerate(attempts)},
    }
    bar = _row(doc).split("|")[1]
    assert bar == "x" * 16 + "·" * 9 + "█" * 25, bar


def test_the_header_s_bar_lines_up_with_the_rows_and_the_legend_names_what_is_drawn() -> None:
    """The header's | stood one column right of the rows'; the legend named "-" (the
    execution stood failed until retried) for an execution that failed and stays so."""
    doc = {
        "id": "e5",
        "runtimeStatus": "Failed",
        "failedAt": _at(300),
        "steps": {"0": _attempt(1, 0, 300, "Failed")},
    }
    console = Console(width=200, record=True, color_system=None)
    with console.capture() as captured:
        timeline(console, doc, events=[{"kind": "execution.failed", "at": _at(300)}])
    lines = captured.get().splitlines()
    header, row = lines[1], next(line for line in lines if line.startswith("call"))
    assert header.index("|") == row.index("|"), (header, row)
    assert "-" not in row.split("|")[1] and "until retried" not in lines[-1], lines


def test_the_submit_command_names_the_iteration_when_a_step_waits_in_several() -> None:
    item = {"executionId": "e1", "stepId": "ask", "prompt": "ok?", "schema": None}
    waiting = [
        {**item, "stepExecutionId": "s1"},
        {**item, "stepExecutionId": "s2"},
        {**item, "stepId": "alone", "stepExecutionId": "s3"},
    ]
    console = Console(width=200, record=True, color_system=None)
    pending_inputs(console, waiting, None)
    commands = [
        line.split("submit: ")[1]
        for line in console.export_text().splitlines()
        if "submit:" in line
    ]
    assert commands == [
        "flowledger executions input e1 s1 --data '{}'",
        "flowledger executions input e1 s2 --data '{}'",
        "flowledger executions input e1 alone --data '{}'",
    ]


def test_the_time_an_execution_stood_failed_is_not_a_retry_s_wait() -> None:
    """A step failed, the execution stood Failed until someone retried it: that period
    is drawn as such, not as the back-off before an automatic retry."""
    attempts = [_attempt(1, 0, 100, "Failed"), _attempt(2, 900, 1000, "Completed")]
    doc = {
        "id": "e3",
        "runtimeStatus": "Completed",
        "completedAt": _at(1000),
        "steps": {str(i): a for i, a in enumerate(attempts)},
    }
    events = [
        {"kind": "step.failed", "at": _at(100)},
        {"kind": "execution.failed", "at": _at(100)},
        {"kind": "execution.retried", "at": _at(900)},
    ]
    console = Console(width=200, record=True, color_system=None)
    with console.capture() as captured:
        timeline(console, doc, events=events)
    [row] = [line for line in captured.get().splitlines() if line.startswith("call")]
    assert row.split("|")[1] == "x" * 6 + "-" * 39 + "█" * 5, row
    assert "- execution failed until retried" in captured.get()
    assert failed_periods(events[:2]) == [(T0 + timedelta(milliseconds=100), None)]


def test_the_time_a_step_waited_for_a_person_is_drawn_as_a_wait() -> None:
    """A step that waited 900 ms of its 1,000 for an answer was drawn running throughout;
    the legend's ░ was never used."""
    asked = {**_attempt(1, 0, 1000, "Completed"), "id": "se-1"}
    doc = {
        "id": "e4",
        "runtimeStatus": "Completed",
        "completedAt": _at(1000),
        "steps": {"se-1": asked},
    }
    events = [
        {"kind": "step.started", "at": _at(0), "stepExecutionId": "se-1"},
        {"kind": "step.suspended", "at": _at(100), "stepExecutionId": "se-1"},
        {"kind": "step.awaiting_input", "at": _at(100), "stepExecutionId": "se-1"},
        {"kind": "step.input_received", "at": _at(950), "stepExecutionId": "se-1"},
        {"kind": "step.completed", "at": _at(1000), "stepExecutionId": "se-1"},
    ]
    console = Console(width=200, record=True, color_system=None)
    with console.capture() as captured:
        timeline(console, doc, events=events)
    [row] = [line for line in captured.get().splitlines() if line.startswith("call")]
    assert row.split("|")[1] == "█" * 6 + "░" * 42 + "█" * 2, row


HOUR = 3_600_000


def test_an_idle_hour_before_a_late_retry_is_a_narrow_marked_break() -> None:
    """The chart was linear: a retry an hour after a one-second failure drew the two
    attempts as a cell at each end, an hour of ``-`` between (the web had drawn that
    hour narrow since the on-call tour). Now both draw app.timeline's axis: the idle
    hour is BREAK_COLUMNS wide, and a row of its own marks it and says how long."""
    attempts = [_attempt(1, 0, 1000, "Failed"), _attempt(2, HOUR, HOUR + 1000, "Completed")]
    doc = {
        "id": "e7",
        "runtimeStatus": "Completed",
        "completedAt": _at(HOUR + 1000),
        "steps": {str(i): a for i, a in enumerate(attempts)},
    }
    events = [
        {"kind": "execution.failed", "at": _at(1000)},
        {"kind": "execution.retried", "at": _at(HOUR)},
    ]
    console = Console(width=200, record=True, color_system=None)
    with console.capture() as captured:
        timeline(console, doc, events=events)
    lines = captured.get().splitlines()
    [row] = [line for line in lines if line.startswith("call")]
    [idle] = [line for line in lines if line.startswith("(idle)")]
    # Each second of work: half of the 48 columns the break leaves.
    assert row.split("|")[1] == "x" * 25 + "-" + "█" * 24, row
    assert idle.split("|")[1] == " " * 24 + "≈≈" + " " * 24, idle
    assert idle.split("|")[2] == " 59m59s idle, drawn narrow"
    assert row.index("|") == idle.index("|") == lines[1].index("|")
    assert "≈ idle, not to scale" in lines[-1]
    # A short stretch (under GAP_MS) stays to scale, with no break row.
    doc["steps"] = {"0": _attempt(1, 0, 300, "Failed"), "1": _attempt(2, 500, 1000, "Completed")}
    doc["completedAt"] = _at(1000)
    with console.capture() as captured:
        timeline(console, doc)
    assert "(idle)" not in captured.get() and "≈" not in captured.get()


def test_a_summary_shows_the_control_characters_of_an_error_as_the_event_lines_do() -> None:
    """Rich's Text dropped a BEL (and CR, BS) from the error line that the event lines of
    the same run showed as ␇."""
    doc = {
        "id": "e6",
        "workflowName": "w",
        "workflowVersion": 1,
        "runtimeStatus": "Failed",
        "startedAt": _at(0),
        "failedAt": _at(10),
        "error": {"message": "bad\x07bell\rand \u202eevil", "stepId": "boom", "attempt": 1},
    }
    console = SafeConsole(width=200, record=True, color_system=None)
    with console.capture() as captured:
        summary(console, doc)
    assert "error: step 'boom' (attempt 1): bad␇bell␍and \\u202eevil" in captured.get()


def test_show_says_a_cancel_no_worker_acted_on_yet() -> None:
    """The document carried pendingSignals, but ``executions show`` printed nothing of a
    recorded cancel (tour 21)."""
    doc: dict[str, Any] = {
        "id": "e1",
        "runtimeStatus": "NotStarted",
        "workflowName": "w",
        "workflowVersion": 1,
        "steps": {},
    }
    for pending, said in ((1, "pending:  1 cancel or input recorded"), (0, None)):
        console = Console(width=200, record=True, color_system=None)
        execution_detail(console, {**doc, "pendingSignals": pending} if pending else doc)
        text = console.export_text()
        assert (said in text) if said else ("pending:" not in text), text


def test_a_queued_execution_a_worker_refused_says_which_step_types_no_worker_has() -> None:
    refusal = Refusal(("travel.book", "travel.cancel"), "box~b00t~42:4242:abc", T0)
    words = (
        "no running worker has step types travel.book, travel.cancel "
        "(worker box:4242 refused it at "
    )
    for state in ("queued", "orphaned"):
        runner = Runner(state, refusal=refusal)  # type: ignore[arg-type]
        assert words in (held_by(runner, None) or ""), held_by(runner, None)
        note = runner_note(runner, "e1", None) or ""
        assert words in note and "--plugin" in note, note
    assert held_by(Runner("queued"), None) == "runner:   none yet (queued for a worker)"
