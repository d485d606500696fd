"""The one line `executions show` gives about an execution's step logs."""

from __future__ import annotations

from flowledger.cli.logs import logs_line


def test_the_summary_counts_levels_worst_first_and_says_how_to_see_them() -> None:
    assert logs_line("abc", {}, None) is None
    assert logs_line("abc", {"INFO": 5, "ERROR": 1}, None) == (
        "step logs: 6 lines (1 ERROR, 5 INFO); flowledger executions logs abc"
    )
