"""Binary operators with their results' sizes checked before they are computed.

The sandbox routes every arithmetic operator here. ``'a' * 10**9`` and
``2 ** 2 ** 28`` are refused from the operands' sizes, so nothing is
allocated; float overflow (``1e308 * 10``) becomes an error instead of ``inf``.
Jinja has no shift operators, so ``<<`` cannot appear in a template.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

from flowledger.errors import TemplateSecurityError
from flowledger.templates.limits import (
    Meter,
    TemplateLimits,
    check_bits,
    check_finite,
    check_sized,
)

OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
}

_SEQUENCES = (str, list, tuple)


def _is_int(value: object) -> bool:
    return isinstance(value, int)  # bool included: True * 'a' repeats too


def _check_multiply(limits: TemplateLimits, meter: Meter, left: Any, right: Any) -> None:
    if isinstance(left, _SEQUENCES) and _is_int(right):
        _check_repeat(limits, meter, left, right)
    elif isinstance(right, _SEQUENCES) and _is_int(left):
        _check_repeat(limits, meter, right, left)
    elif _is_int(left) and _is_int(right):
        check_bits(limits, abs(left).bit_length() + abs(right).bit_length())


def _check_repeat(limits: TemplateLimits, meter: Meter, sequence: Any, times: int) -> None:
    """``seq * n`` costs n times the *real* size of seq (its items' items too): charged
    before it is built, so ``[[0]*100000]*100000`` fails at once instead of spinning."""
    times = max(times, 0)
    check_sized(limits, sequence, len(sequence) * times, "the repeated value")
    if not isinstance(sequence, str):
        meter.charge(meter.measure(sequence) * times)


def _check_power(limits: TemplateLimits, base: Any, exponent: Any) -> None:
    if not (_is_int(base) and _is_int(exponent)) or exponent <= 0 or abs(base) <= 1:
        return  # floats overflow loudly and are caught; small cases are cheap
    check_bits(limits, exponent * math.log2(abs(base)))


def _check_add(limits: TemplateLimits, meter: Meter, left: Any, right: Any) -> None:
    for kind in _SEQUENCES:
        if isinstance(left, kind) and isinstance(right, kind):
            check_sized(limits, left, len(left) + len(right), "the joined value")
            if kind is not str:
                meter.charge(meter.measure(left) + meter.measure(right))
            return


def apply_binop(limits: TemplateLimits, meter: Meter, symbol: str, left: Any, right: Any) -> Any:
    """Evaluate ``left <symbol> right`` under the limits."""
    if symbol == "*":
        _check_multiply(limits, meter, left, right)
    elif symbol == "**":
        _check_power(limits, left, right)
    elif symbol == "+":
        _check_add(limits, meter, left, right)
    elif symbol == "%" and isinstance(left, str | bytes):
        raise TemplateSecurityError(
            "'%' string formatting is not supported in templates; "
            "build text with '~' or with filters such as 'join', 'replace', 'round'"
        )
    result = OPERATORS[symbol](left, right)
    kind = type(result)
    if kind is float:
        if not math.isfinite(result):
            _check_overflow(left, right, result)
    elif kind is int and symbol in ("*", "**"):
        check_bits(limits, result.bit_length())  # the estimate above is approximate
    elif kind is str:
        meter.charge(len(result))  # lists and tuples were charged their real size above
    return result


def _check_overflow(left: Any, right: Any, result: float) -> None:
    """``inf`` from finite operands is an overflow; ``inf`` from data passes through."""
    for operand in (left, right):
        if isinstance(operand, float) and not math.isfinite(operand):
            return
    check_finite(result)
