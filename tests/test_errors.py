"""The exception tree's own rules."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flowledger.errors import StepError


@pytest.mark.parametrize("hint", [float("nan"), float("inf"), -1, 10**30, "soon", True])
def test_a_bad_retry_after_is_no_hint_and_keeps_the_message(hint: object) -> None:
    """NaN, an infinity or a string replaced the step's message with a ValueError."""
    error = StepError("slow down", retry_after=hint)  # type: ignore[arg-type]
    assert (error.message, error.retry_after) == ("slow down", None)


def test_a_usable_retry_after_is_a_wait() -> None:
    assert StepError("x", retry_after=2.5).retry_after == timedelta(seconds=2.5)
    assert StepError("x", retry_after=timedelta(minutes=1)).retry_after == timedelta(minutes=1)
