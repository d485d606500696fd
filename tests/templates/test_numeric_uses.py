"""Where an expression uses a read as a number, found from the text alone (the
definition checker refuses those whose read is a Decimal kept as text)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from flowledger.templates import Reference
from flowledger.templates.numeric_uses import NumericUse, Read
from tests.templates.support import ENGINE

A = Read(Reference("a", (), True))
B = Read(Reference("b", (), True))
XS_ITEM = Read(Reference("xs", (), True), ())
#: ``a`` reached through a conditional or ``default``: maybe not the value used.
MAYBE_A = Read(Reference("a", (), True), sure=False)


def uses(source: str) -> tuple[NumericUse, ...]:
    return ENGINE.compile(source).numeric_uses


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ a * 2 }}", [NumericUse(A, "arithmetic", operator="*", number=True)]),
        ("{{ -a }}", [NumericUse(A, "arithmetic", operator="unary -")]),
        ("{{ a >= 1 }}", [NumericUse(A, "comparison", number=True)]),
        ("{{ a is gt 1 }}", [NumericUse(A, "comparison", number=True)]),
        ("{{ a == 9.99 }}", [NumericUse(A, "==", number=True)]),
        ("{{ -1 != a }}", [NumericUse(A, "!=", number=True)]),
        ("{{ a is equalto 1 }}", [NumericUse(A, "==", number=True)]),
        ("{{ a == b }}", [NumericUse(A, "==", B), NumericUse(B, "==", A)]),
        ("{{ a in [1, 'x'] }}", [NumericUse(A, "in")]),
        ("{{ a not in [b] }}", [NumericUse(A, "not in", B), NumericUse(B, "not in", A)]),
        ("{{ 1 in xs }}", [NumericUse(XS_ITEM, "in")]),
        ("{{ a | round(1) }}", [NumericUse(A, "round")]),
        ("{{ a | d(0) | abs }}", [NumericUse(MAYBE_A, "abs")]),
        ("{{ (a if c else 1) | abs }}", [NumericUse(MAYBE_A, "abs")]),
        ("{{ [a, '10.5'] | max }}", [NumericUse(A, "max")]),
        ("{{ [a, 1] | sum }}", [NumericUse(A, "sum")]),
        (
            "{{ xs | sort }}",
            [NumericUse(Read(Reference("xs", (), True)), "sort"), NumericUse(XS_ITEM, "sort")],
        ),
        (
            "{{ xs | map(attribute='p.0') | list | sum }}",
            [NumericUse(Read(Reference("xs", (), True), ("p", 0)), "sum")],
        ),
        (
            "{{ [a] | sum(attribute='p') }}",
            [NumericUse(Read(Reference("a", ("p",), True)), "sum")],
        ),
        ("{{ (xs | first) * 2 }}", [NumericUse(XS_ITEM, "arithmetic", operator="*", number=True)]),
        ("{{ [a] | map('abs') | list }}", [NumericUse(A, "abs")]),
        ("{{ [a] | select('odd') | list }}", [NumericUse(A, "odd")]),
    ],
)
def test_a_read_used_as_a_number_is_found(source: str, expected: list[NumericUse]) -> None:
    assert list(uses(source)) == expected


@pytest.mark.parametrize(
    "source",
    [
        "{{ a == '9.99' }}",
        "{{ a in ['9.99'] }}",
        "{{ a | float == 9.99 }}",
        "{{ (a | int) in [1] }}",
        "{{ a | float | round }}",
        "{{ [a | float, 1] | sum }}",
        "{{ a | string }}",
        "{{ a | length > 1 }}",
        "{{ a ~ 'x' }}",
        "{{ [a] + [1] }}",
        "{{ a[k] * 2 }}",
        "{{ 'x' in a }}",
    ],
)
def test_a_read_used_as_text_or_converted_is_not(source: str) -> None:
    assert uses(source) == ()


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ 1 - a }}", [NumericUse(A, "arithmetic", None, "-", True)]),
        ("{{ -a }}", [NumericUse(A, "arithmetic", None, "unary -", False)]),
        (
            "{{ a + b }}",
            [NumericUse(A, "arithmetic", B, "+"), NumericUse(B, "arithmetic", A, "+")],
        ),
        ("{{ a < (b | int) }}", [NumericUse(A, "comparison", number=True)]),
        ("{{ 5 is gt a }}", [NumericUse(A, "comparison", number=True)]),
        ("{{ [a] | select('>', 5) | list }}", [NumericUse(A, "comparison", number=True)]),
        # Not surely a number: the conditional may give the text.
        ("{{ a + (1 if c else 'x') }}", [NumericUse(A, "arithmetic", operator="+")]),
        (
            "{{ a * b.c[0] }}",
            [
                NumericUse(A, "arithmetic", Read(Reference("b", ("c", 0), True)), "*"),
                NumericUse(Read(Reference("b", ("c", 0), True)), "arithmetic", A, "*"),
            ],
        ),
        # An equality's other side: surely a number, or maybe not the value compared.
        ("{{ a == (b | length) }}", [NumericUse(A, "==", number=True)]),
        ("{{ a == (5 if c else 'x') }}", [NumericUse(A, "==")]),
        (
            "{{ a == (b if c else 'x') }}",
            [
                NumericUse(A, "==", replace(B, sure=False)),
                NumericUse(replace(B, sure=False), "==", A),
            ],
        ),
        # The read may not be the value used.
        ("{{ (a if c else 0) - 1 }}", [NumericUse(MAYBE_A, "arithmetic", None, "-", True)]),
        ("{{ (a | default(0)) < 1 }}", [NumericUse(MAYBE_A, "comparison", number=True)]),
    ],
)
def test_what_stands_on_the_other_side_is_recorded_when_it_is_certain(
    source: str, expected: list[NumericUse]
) -> None:
    assert list(uses(source)) == expected
