"""``tolerated_failures`` of a ``sys.sub_workflow`` fan-out: how many children may fail.

Step Functions' Map has ToleratedFailureCount and ToleratedFailurePercentage; here one
field takes either: a count (``3``) or a percentage of the children (``"10%"``). The
step fails, cancelling the rest, as soon as one more child fails than it tolerates.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")
_COUNT = re.compile(r"\d+")
_SHAPE = 'a count of children (3) or a percentage of them ("10%")'


def parse_tolerance(value: Any) -> int | str | None:
    """The field's value as stored: a count, or a percentage as ``"<number>%"``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"tolerated_failures is {_SHAPE}, not {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"tolerated_failures must be at least 0, not {value}")
        return value
    text = value.strip()
    if _COUNT.fullmatch(text):
        return int(text)
    percent = _PERCENT.fullmatch(text)
    if percent is None:
        raise ValueError(f"tolerated_failures is {_SHAPE}, not {value!r}")
    if Decimal(percent.group(1)) > 100:
        raise ValueError(f"tolerated_failures is a percentage of at most 100%, not {value!r}")
    return f"{percent.group(1)}%"


def tolerated_count(tolerance: int | str | None, children: int) -> int:
    """How many of ``children`` may fail: a percentage tolerates the failures that stay
    within it (10% of 25 children: 2; a third would be 12%)."""
    if tolerance is None:
        return 0
    if isinstance(tolerance, int):
        return tolerance
    return int(Decimal(tolerance.removesuffix("%")) * children // 100)
