"""The exception tree's own rules."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flowledger.errors import Problem, StepError


@pytest.mark.parametrize("hint", [float("nan"), float("inf"), -1, 10**30, "soon", True])
def test_a_bad_retry_after_is_no_hint_and_keeps_the_message(hint: object) -> None:
    """NaN, an infinity or a string replaced the step's message with a ValueError."""
    error = StepError("slow down", retry_after=hint)  # type: ignore[arg-type]
    assert (error.message, error.retry_after) == ("slow down", None)


def test_a_usable_retry_after_is_a_wait() -> None:
    assert StepError("x", retry_after=2.5).retry_after == timedelta(seconds=2.5)
    assert StepError("x", retry_after=timedelta(minutes=1)).retry_after == timedelta(minutes=1)


def _line(message: str, *path: str | int) -> str:
    problem = Problem(message, "wf.yaml", 10, 25, "cond", ("steps", 0, *path))
    return problem.format()


def test_a_message_that_opens_with_a_read_keeps_the_field_path() -> None:
    """``input.s is a string`` opened like a place inside ``input``, and the field it
    was found in (``input.expression``) was dropped."""
    assert _line("input.s is a string, so '-' fails", "input", "expression") == (
        "wf.yaml:10:25: step 'cond': input.expression: input.s is a string, so '-' fails"
    )
    assert _line("input.t is not declared in input_schema", "input", "value", "text") == (
        "wf.yaml:10:25: step 'cond': input.value.text: input.t is not declared in input_schema"
    )


@pytest.mark.parametrize(
    ("message", "path", "line"),
    [
        (
            "input.expression must be one template",
            ("input", "expression"),
            "input.expression must be one template",
        ),
        ("'value' is required", ("input", "value"), "input.value is required"),
        ("retry has no effect on sys.fail", ("retry",), "retry has no effect on sys.fail"),
        ("input.value.url is not a URL", ("input", "value"), "input.value.url is not a URL"),
        ("input.value is required", ("input",), "input.value is required"),
        ("must be positive", ("retry", "max_attempts"), "retry.max_attempts: must be positive"),
    ],
)
def test_a_message_says_its_field_path_once(message: str, path: tuple[str, ...], line: str) -> None:
    assert _line(message, *path) == f"wf.yaml:10:25: step 'cond': {line}"
