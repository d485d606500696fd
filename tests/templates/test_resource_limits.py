"""Exhaustion payloads are refused before they allocate; Python errors come out as ours."""

from __future__ import annotations

from typing import Any

import pytest

from flowledger.errors import (
    TemplateError,
    TemplateLimitError,
    TemplateReferenceError,
    TemplateSecurityError,
)
from flowledger.templates import TemplateEngine, TemplateLimits
from tests.templates.support import ENGINE, data_store

Lim, Sec = TemplateLimitError, TemplateSecurityError
MIB = "'a' * 1000000"

EXHAUSTION: list[tuple[str, type[TemplateError]]] = [
    ("{{ 'a' * 10**9 }}", Lim),
    ("{{ 10**9 * 'a' }}", Lim),
    ("{{ [1] * 10**9 }}", Lim),
    ("{{ (1,) * 10**9 }}", Lim),
    ("{{ 2 ** (2 ** 28) }}", Lim),
    ("{{ 10 ** 100000 }}", Lim),
    ("{{ (2 ** 4000) * (2 ** 4000) }}", Lim),
    ("{{ range(10**9) }}", Lim),
    ("{{ range(2 ** 4000) }}", Lim),
    ("{{ range(99999)|map('string')|join }}", Lim),
    ("{{ range(10000)|map('string')|join('x' * 1000) }}", Lim),
    ("{{ ([" + MIB + "] * 2)|join }}", Lim),
    ("{{ '%0999999999d' % 1 }}", Sec),
    ("{{ '%s' % 'x' }}", Sec),
    ("{{ 'x'|replace('x', 'x' * 1000000)|replace('x', 'x' * 1000000) }}", Lim),
    ("{{ ('x' * 1000000)|replace('', 'yy') }}", Lim),
    ("{{ 1e308 * 10 }}", Lim),
    ("{{ 1e308 + 1e308 }}", Lim),
    ("{{ 1e308 / 1e-308 }}", Lim),
    ("{{ 1.5 ** 100000 }}", Lim),
    ("{{ '1e999'|float }}", Lim),
    ("{{ ((" + MIB + ") ~ (" + MIB + ")) * 2 }}", Lim),
    ("{{ (" + MIB + ") + (" + MIB + ") }}", Lim),
    ("{{ [" + ", ".join([MIB] * 20) + "] }}", Lim),  # each fits; together too much
    ("{{ [1]|batch(10**9, 'x')|list }}", Lim),
    ("{{ [1]|slice(10**9)|list }}", Lim),
    ("{{ 1.5|round(10**9, 'ceil') }}", Lim),
    ("{{ ('a,' * 500000).split(',') }}", Lim),
    ("{{ (" + MIB + ")|list }}", Lim),
    ("{{ variables.big|upper }}", Lim),
    ("big: {{ variables.big }}", Lim),
    ("{{ variables.big|tojson }}", Lim),
    ("{{ " + "(" * 300 + "1" + ")" * 300 + " }}", Lim),
    ("{{ 9" + "9" * 5000 + " }}", Lim),
    ("{{ " + "9" * 1300 + " }}", Lim),
    # Shared references are charged their real size, before they are built or walked.
    ("{{ [[0] * 100000] * 100000 }}", Lim),
    ("{{ ([[0] * 100000] * 100000)|tojson }}", Lim),
    ("{{ ([[0] * 100000] * 100000)|string }}", Lim),
    ("{{ 'x' ~ [[0] * 100000] * 100000 }}", Lim),
    ("{{ [['a' * 1000000] * 16] * 100 }}", Lim),
    ("{{ [['a' * 1000000] * 16] * 20 }}", Lim),
    ("{{ [[0] * 100000] * 160 }}", Lim),  # within the budget, over the rendered cap
    ("{{ ([[0] * 100000] * 160)|select }}", Lim),
    ("{{ ([[0] * 100000] * 160)|sort }}", Lim),
    ("{{ [[0] * 100000] + [[0] * 100000] * 100 }}", Lim),
    ("{{ {'a': [[0] * 100000] * 100}|urlencode }}", Lim),
    ("{{ [1]|batch(100000, fill_with=[0] * 100000)|list }}", TemplateError),
    ("{{ 1" + "|abs" * 5000 + " }}", Lim),
    # Steps taken item by item in Python are counted: a render holds the loop briefly.
    ("{{ (range(10000)|list * 10)" + "|map('abs')" * 11 + "|list }}", Lim),
    ("{{ " + " + ".join(["1"] * 20000) + " }}", Lim),
    # title works word by word in Python: three of these held the loop for a second.
    ("{{ [" + ", ".join(["('a ' * 500000)|title|length"] * 3) + "] }}", Lim),
    # A complex number has no JSON form: its repr was stored as text.
    ("{{ (-1) ** 0.5 }}", TemplateError),
    # A long integer counts its digits, not one item: this was 12 million characters.
    ("{{ [2 ** 4000] * 10000 }}", Lim),
    ("{{ {'a': [2 ** 4000] * 900} }}", Lim),
    ("{{ [[2 ** 4000] * 900] }}", Lim),
    ("{{ ([2 ** 4000] * 13000)|join(',') }}", Lim),
    # Flat expressions have no depth but cost to parse and compile, token by token:
    # 400 KB of comparisons took 11 s of a server's CPU to push.
    ("{{ " + " < ".join(["1"] * 11000) + " }}", Lim),
    ("{{ [" + ",".join(["1"] * 11000) + "] }}", Lim),
]


@pytest.fixture
def context() -> dict[str, Any]:
    store = data_store()
    store["variables"]["big"] = "a" * 2_000_000
    return store


def test_at_least_ten_exhaustion_payloads() -> None:
    assert len(EXHAUSTION) >= 10


@pytest.mark.parametrize(("payload", "expected"), EXHAUSTION)
def test_exhaustion_is_refused(
    payload: str, expected: type[TemplateError], context: dict[str, Any]
) -> None:
    with pytest.raises(expected):
        ENGINE.compile(payload).render(context)


def test_values_up_to_the_limits_are_fine() -> None:
    store = data_store()
    assert len(ENGINE.compile("{{ 'a' * 1048576 }}").render(store)) == 1_048_576
    assert len(ENGINE.compile("{{ range(10000)|list }}").render(store)) == 10_000
    assert ENGINE.compile("{{ 2 ** 4095 }}").render(store) == 2**4095
    assert ENGINE.compile("{{ [2 ** 4000] * 800 }}").render(store) == [2**4000] * 800
    # Spaces between tokens are not counted: 18,001 tokens and 8,999 spaces fit.
    assert len(ENGINE.compile("{{ [" + ", ".join(["1"] * 9000) + "] }}").render(store)) == 9000


def test_limits_are_configurable() -> None:
    engine = TemplateEngine(TemplateLimits(max_string_length=30, max_range=5))
    assert engine.compile("{{ 'a' * 30 }}").render({}) == "a" * 30
    with pytest.raises(TemplateLimitError, match="the limit is 30"):
        engine.compile("{{ 'a' * 31 }}").render({})
    with pytest.raises(TemplateLimitError, match="range"):
        engine.compile("{{ range(6) }}").render({})
    with pytest.raises(TemplateLimitError, match="rendered text"):
        engine.compile("{{ 'a' * 16 }}{{ 'b' * 16 }}").render({})
    with pytest.raises(TemplateLimitError, match="template is 31 characters"):
        engine.compile("{{ 'a' }}" + " " * 22)


def test_limit_message_quotes_the_failing_expression() -> None:
    with pytest.raises(TemplateLimitError) as caught:
        ENGINE.compile("ok {{ 1 }} then {{ 'a' * 10**9 }}").render({})
    assert caught.value.message.startswith("template error in \"{{ 'a' * 10**9 }}\": ")
    assert caught.value.source == "ok {{ 1 }} then {{ 'a' * 10**9 }}"


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ("{{ 1 / 0 }}", "division by zero"),
        ("{{ 1 // 0 }}", "division by zero"),
        ("{{ 'a' + 1 }}", "can only concatenate"),
        ("{{ 'x'|int }}", "cannot convert a string to an integer"),
        ("{{ none|float }}", "cannot convert null to a number"),
        ("{{ [1, 2][::0] }}", "slice step cannot be zero"),
        ("{{ range('a') }}", "cannot be interpreted as an integer"),
        ("{{ [1, 'a']|sort }}", "not supported between"),
        ("{{ 1 is divisibleby 0 }}", "division by zero"),
        ("{{ [1]|batch(0) }}", "at least 1"),
        ("{{ x.lower }}", "evaluates to a function"),
    ],
)
def test_python_errors_become_template_errors(payload: str, words: str) -> None:
    store = data_store()
    store["x"] = "abc"
    with pytest.raises(TemplateError) as caught:
        ENGINE.compile(payload).render(store)
    assert type(caught.value) in (TemplateError, TemplateLimitError)
    assert words in caught.value.message
    assert caught.value.message.startswith(f'template error in "{payload}"')


def test_empty_sequence_first_is_a_reference_error() -> None:
    with pytest.raises(TemplateReferenceError, match="sequence was empty"):
        ENGINE.compile("{{ []|first }}").render({})


def test_flatten_checks_the_result_against_the_collection_cap_before_building_it() -> None:
    engine = TemplateEngine(TemplateLimits(max_collection_length=10))
    assert engine.compile("{{ [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10]]|flatten }}").render({}) == list(
        range(1, 11)
    )
    with pytest.raises(TemplateLimitError, match="the result of 'flatten' would have 11 items"):
        engine.compile("{{ [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10, 11]]|flatten }}").render({})
