"""Resource budgets for one render, and the checks that enforce them.

Every check runs *before* the allocation it guards whenever the size can be
predicted (repetition, joins, replacements, ranges, big integers). The
:class:`Meter` adds a second, per-render line of defence: many capped values
built in one expression (``[s*1000000, s*1000000, ...]``) still add up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flowledger.errors import TemplateLimitError


@dataclass(frozen=True)
class TemplateLimits:
    """Caps that keep a template from exhausting memory or CPU."""

    #: Any string produced: repetition, join, concatenation, rendered output.
    max_string_length: int = 1_048_576
    #: Any list produced: repetition, join inputs, batches, materialised iterators.
    max_collection_length: int = 100_000
    #: Items one ``range()`` may yield.
    max_range: int = 10_000
    #: Size of integers produced by ``*`` and ``**``.
    max_integer_bits: int = 4_096
    #: Sum of the sizes (characters or items) of everything one render produces.
    max_total_size: int = 16 * 1_048_576


class Meter:
    """Counts what one render has produced so far; one instance per render."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def charge(self, size: int) -> None:
        self.used += size
        if self.used > self.limit:
            raise TemplateLimitError(
                f"the template produces more than {self.limit:,} characters and items "
                "in total; it is too expensive to evaluate"
            )


def check_string(limits: TemplateLimits, length: int, what: str) -> None:
    if length > limits.max_string_length:
        raise TemplateLimitError(
            f"{what} would be {length:,} characters long; the limit is {limits.max_string_length:,}"
        )


def check_collection(limits: TemplateLimits, length: int, what: str) -> None:
    if length > limits.max_collection_length:
        raise TemplateLimitError(
            f"{what} would have {length:,} items; the limit is {limits.max_collection_length:,}"
        )


def check_sized(limits: TemplateLimits, value: object, length: int, what: str) -> None:
    """Check a predicted ``length`` with the cap that fits ``value``'s kind."""
    if isinstance(value, str):
        check_string(limits, length, what)
    else:
        check_collection(limits, length, what)


def check_bits(limits: TemplateLimits, bits: float) -> None:
    if bits > limits.max_integer_bits:
        raise TemplateLimitError(
            f"the result would be an integer of about {int(bits):,} bits; "
            f"the limit is {limits.max_integer_bits:,}"
        )


def check_finite(value: float) -> None:
    if not math.isfinite(value):
        raise TemplateLimitError("the result is too large for a number (float overflow)")
