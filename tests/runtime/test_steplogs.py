"""The step-log buffer and logger (runtime.steplogs) on their own."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flowledger.runtime.steplogs import MAX_LINE, StepLogBuffer, StepLogger

T = datetime(2026, 11, 29, tzinfo=UTC)


def logger(buffer: StepLogBuffer, threshold: int = logging.INFO) -> StepLogger:
    return StepLogger(logging.getLogger("test.steplogs"), {}, lambda: buffer, threshold, lambda: T)


def test_messages_render_like_logging_does_and_never_raise() -> None:
    buffer = StepLogBuffer()
    log = logger(buffer)
    log.info("%s and %d", "a", 2)
    log.info("%(who)s", {"who": "dict args"})
    log.info("too few %s %s", "args")  # logging would print an error; we keep the line
    log.warning(ValueError("an object"))
    log.debug("below the threshold")
    assert [(level, text) for _, level, text in buffer.drain()] == [
        ("INFO", "a and 2"),
        ("INFO", "dict args"),
        ("INFO", "too few %s %s ('args',)"),
        ("WARNING", "an object"),
    ]
    assert not buffer.pending and buffer.drain() == []


def test_a_long_line_is_cut_and_says_so() -> None:
    buffer = StepLogBuffer(limit=100_000)
    logger(buffer).info("x" * (MAX_LINE + 10))
    [(_, _, text)] = buffer.drain()
    assert text == "x" * MAX_LINE + "… (10 more characters cut)"


def test_past_the_budget_lines_are_counted_once_per_drain() -> None:
    buffer = StepLogBuffer(limit=10)
    log = logger(buffer)
    log.info("12345")
    log.info("123456")  # does not fit: dropped, and so is everything after it
    log.info("1")
    kept = buffer.drain()
    assert kept[0][2] == "12345"
    assert kept[1][1] == "WARNING" and kept[1][2].startswith("2 more log lines dropped")
    log.info("1")
    [note] = buffer.drain()
    assert note[2].startswith("1 more log lines dropped")
