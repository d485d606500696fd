"""How `executions logs` prints a line (the reading itself: tests/app/test_step_logs.py)."""

from __future__ import annotations

import pytest

from flowledger.cli.logs import _print


def test_a_loop_bodys_line_says_its_iteration_as_an_event_line_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = {
        "id": 1,
        "at": "2026-12-01T10:00:00.000Z",
        "stepExecutionId": "s1",
        "stepId": "send",
        "attempt": 2,
        "loop": {"pages": 0, "each": 3},
        "level": "INFO",
        "message": "sent",
    }
    _print(line, as_json=False)
    _print({**line, "loop": {}}, as_json=False)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split(" ", 2)[2] == "send[pages 0][each 3]#2 INFO    sent", printed
    assert printed[1].split(" ", 2)[2] == "send#2 INFO    sent", printed
