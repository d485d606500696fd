"""tolerated_failures: a count or a percentage of the children, rounded down."""

from __future__ import annotations

import pytest

from flowledger.steps.tolerance import parse_tolerance, tolerated_count


@pytest.mark.parametrize(
    ("given", "children", "tolerated"),
    [
        (None, 10, 0),
        (3, 10, 3),
        ("3", 10, 3),
        ("10%", 25, 2),  # 3 of 25 would be 12%
        ("12.5%", 8, 1),
        (" 50 % ", 3, 1),
        ("0%", 100, 0),
        ("100%", 7, 7),
        ("10%", 30, 3),  # exact: no float rounding below the boundary
    ],
)
def test_tolerated_count(given: object, children: int, tolerated: int) -> None:
    assert tolerated_count(parse_tolerance(given), children) == tolerated


@pytest.mark.parametrize(
    ("given", "said"),
    [
        (-1, "must be at least 0, not -1"),
        ("150%", "at most 100%, not '150%'"),
        ("-5%", "a count of children (3) or a percentage of them"),
        ("lots", "a count of children (3) or a percentage of them"),
        (2.5, "a count of children (3) or a percentage of them"),
        (True, "not True"),
    ],
)
def test_a_tolerance_that_is_not_one_is_refused(given: object, said: str) -> None:
    with pytest.raises(ValueError, match="tolerated_failures") as caught:
        parse_tolerance(given)
    assert said in str(caught.value)
