"""A Decimal output is stored as text to keep its digits ("9.99"): wherever an
expression uses it as a number, the checker refuses it before the run, naming it and
the conversion; where it is used as text, it stays allowed.

Each refused expression passed validation and then answered wrongly (``price == 9.99``
false, ``[price, '10.5'] | max`` "9.99") or failed at run time (``price | round(1)``).
"""

from __future__ import annotations

import json
import re
import textwrap
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

from flowledger import DefinitionError, Engine, StepContext, StepRegistry, step_type
from flowledger.definition.compiler import load_workflow_text
from flowledger.definition.strictness import stored_definitions
from flowledger.templates import TemplateEngine


class Line(BaseModel):
    sku: str
    price: Decimal


class PriceInput(BaseModel):
    n: int = 1


class PriceOutput(BaseModel):
    price: Decimal
    list_price: Decimal
    discount: Decimal | None = None
    prices: list[Decimal]
    lines: list[Line]
    count: int
    label: str


@step_type("test.decimal_price")
async def price_step(data: PriceInput, ctx: StepContext) -> PriceOutput:
    return PriceOutput(
        price=Decimal("9.99"),
        list_price=Decimal("9.99"),
        prices=[Decimal("9.99"), Decimal("10.5")],
        lines=[Line(sku="A", price=Decimal("9.99")), Line(sku="B", price=Decimal("10.5"))],
        count=2,
        label="9.99",
    )


def _registry() -> StepRegistry:
    registry = StepRegistry.with_builtins()
    registry.register(price_step)
    return registry


def _workflow(expression: str) -> str:
    """Step ``c`` outputs Decimals (``$c.`` stands for ``steps.c.output.``); ``u``'s
    output is only known at run time."""
    value = json.dumps("{{ " + expression.replace("$c.", "steps.c.output.") + " }}")
    return textwrap.dedent(
        f"""
        name: dec
        steps:
          - {{id: c, type: test.decimal_price}}
          - {{id: u, type: sys.transform, input: {{value: "{{{{ steps.c.output.count }}}}"}}}}
          - id: t
            type: sys.transform
            after: [c, u]
            input: {{value: {value}}}
        """
    )


def _problems(text: str) -> list[str]:
    with pytest.raises(DefinitionError) as info:
        load_workflow_text(text, _registry(), TemplateEngine(), "wf.yaml")
    return [p.format() for p in info.value.problems]


def _loads(text: str) -> None:
    load_workflow_text(text, _registry(), TemplateEngine(), "wf.yaml")


REFUSED = [
    # equality and membership against a number: silently false (or true)
    ("$c.price == 9.99", "$c.price", "'==' compares text with a number"),
    ("$c.price != -1", "$c.price", "'!=' compares text with a number"),
    ("9.99 == $c.price", "$c.price", "'==' compares text with a number"),
    ("$c.price in [9.99]", "$c.price", "'in' compares text with a number"),
    ("$c.price not in [1, 2]", "$c.price", "'not in' compares text with a number"),
    ("$c.price is eq 9.99", "$c.price", "'==' compares text with a number"),
    ("$c.price is in [9.99]", "$c.price", "'in' compares text with a number"),
    ("$c.discount == 0", "discount", "'==' compares text with a number"),
    (
        "$c.price == $c.count",
        "$c.price",
        "'==' compares text with $c.count, a number,",
    ),
    ("$c.price in [$c.count]", "$c.price", "compares text with $c.count"),
    ("9.99 in $c.prices", "each item of", "'in' compares text with a number"),
    ("[$c.price] | select('eq', 9.99) | list", "$c.price", "'==' compares text with a number"),
    # ordering of text: "9.99" is above "10.5"
    ("[$c.price, '10.5'] | max", "$c.price", "'| max' would order it as text"),
    ("[$c.price, '10.5'] | sort", "$c.price", "'| sort' would order it as text"),
    ("$c.prices | max", "each item of", "'| max' would order it as text"),
    ("$c.lines | sort(attribute='price')", "the price of each item of", "'| sort'"),
    ("[$c.prices | first, 1] | min", "each item of", "'| min'"),
    ("[$c.price] | select('>', 5) | list", "$c.price", "arithmetic or a comparison"),
    ("$c.lines | selectattr('price', 'gt', 5) | list", "the price of", "comparison"),
    # numeric filters and tests: failed at run time
    ("$c.price | round(1)", "$c.price", "'| round' would fail on the text"),
    ("$c.price | abs", "$c.price", "'| abs' would fail on the text"),
    ("[$c.price, 1] | sum", "$c.price", "'| sum' would fail on the text"),
    ("$c.prices | sum", "each item of", "'| sum' would fail on the text"),
    ("$c.lines | sum(attribute='price')", "the price of", "'| sum'"),
    ("$c.lines | map(attribute='price') | sum", "the price of", "'| sum'"),
    ("[$c.price] | map('round') | list", "$c.price", "'| round' would fail on the text"),
    ("$c.price is even", "$c.price", "'is even' would fail on the text"),
    ("$c.price | default(0) | abs", "$c.price", "'| abs' would fail on the text"),
    ("($c.price if $c.count else 0) | round", "$c.price", "'| round'"),
]


@pytest.mark.parametrize(("expression", "subject", "expected"), REFUSED)
def test_a_decimal_used_as_a_number_is_refused_before_the_run(
    expression: str, subject: str, expected: str
) -> None:
    (problem,) = _problems(_workflow(expression))
    subject, expected = (t.replace("$c.", "steps.c.output.") for t in (subject, expected))
    assert "step 't': input.value: " in problem, problem
    assert " is a Decimal, which is stored as text to keep its digits, so " in problem
    assert subject in problem.split(" is a Decimal")[0], problem
    assert expected in problem, problem
    assert "| float)" in problem or "| map('float') | list)" in problem, problem
    with stored_definitions():  # a stored version that passed before still compiles
        _loads(_workflow(expression))


def test_the_message_names_the_read_and_both_fixes() -> None:
    (problem,) = _problems(_workflow("$c.price == 9.99"))
    assert problem.endswith(
        "steps.c.output.price is a Decimal, which is stored as text to keep its digits, so "
        "'==' compares text with a number, and text never equals a number ('9.99' == 9.99 is "
        "false); convert it first, as (steps.c.output.price | float), or compare it with "
        "text ('9.99')"
    ), problem
    (problem,) = _problems(_workflow("$c.lines | map(attribute='price') | sum"))
    assert problem.endswith(
        "the price of each item of steps.c.output.lines is a Decimal, which is stored as text "
        "to keep its digits, so '| sum' would fail on the text; convert them first, as "
        "(steps.c.output.lines | map(attribute='price') | map('float') | list)"
    ), problem


#: Next to each refused use, the same value used as text, converted, or of unknown type.
ALLOWED = {
    "$c.price == 9.99": [
        "$c.price == '9.99'",
        "$c.price != '0'",
        "$c.price == $c.list_price",  # two Decimals: both text
        "$c.price == $c.label",
        "$c.price | float == 9.99",
        "$c.count == 2",
        "steps.u.output == 9.99",  # of unknown type: allowed, as before
        "$c.price == steps.u.output",
    ],
    "$c.price in [9.99]": [
        "$c.price in ['9.99', '10.5']",
        "$c.price in $c.prices",
        "($c.price | float) in [9.99]",
        "$c.price in steps.u.output",
    ],
    "$c.price | round(1)": [
        "$c.price | float | round(1)",
        "$c.price | int",
        "$c.price | string",
        "$c.price | length",
        "$c.price ~ ' EUR'",
    ],
    "[$c.price, 1] | sum": ["[$c.price | float, 1] | sum", "[steps.u.output, 1] | sum"],
    "$c.prices | max": ["$c.prices | map('float') | max", "$c.prices | length"],
}


@pytest.mark.parametrize(("refused", "allowed"), ALLOWED.items())
def test_a_decimal_used_as_text_or_converted_is_allowed(refused: str, allowed: list[str]) -> None:
    assert len(_problems(_workflow(refused))) == 1
    for expression in allowed:
        _loads(_workflow(expression))


@pytest.mark.parametrize(
    ("refused", "fixed", "expected"),
    [
        ("$c.price == 9.99", "{fix} == 9.99", True),
        ("$c.price in [9.99]", "{fix} in [9.99]", True),
        ("$c.price | round(1)", "{fix} | round(1)", 10.0),
        ("[$c.price, '10.5'] | max", "[{fix}, 10.5] | max", 10.5),
        ("$c.prices | max", "{fix} | max", 10.5),
        ("$c.lines | map(attribute='price') | min", "{fix} | min", 9.99),
    ],
)
async def test_the_conversion_the_message_suggests_gives_the_number_meant(
    refused: str, fixed: str, expected: Any
) -> None:
    (problem,) = _problems(_workflow(refused))
    fix = re.search(r"convert (?:it|them) first, as (\(.*?\))(?:, or |$)", problem)
    assert fix is not None, problem
    async with Engine("sqlite://", registry=_registry()) as engine:
        doc = await engine.run(engine.load_text(_workflow(fixed.format(fix=fix.group(1)))))
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    steps: dict[str, Any] = {s["stepId"]: s for s in doc["steps"].values()}
    assert steps["t"]["outputData"] == expected


def test_a_decimal_compared_with_a_number_in_when_and_in_a_condition_is_refused() -> None:
    text = textwrap.dedent(
        """
        name: dec_when
        steps:
          - {id: c, type: test.decimal_price}
          - {id: w, type: sys.no_action, after: [c], when: "{{ steps.c.output.price == 9.99 }}"}
          - id: check
            type: sys.condition
            after: [c]
            input: {expression: "{{ steps.c.output.price in [9.99, 10] }}"}
            then: [w]
        """
    )
    problems = _problems(text)
    assert len(problems) == 2, problems
    assert "step 'w': when: steps.c.output.price is a Decimal" in problems[0], problems
    assert "'==' compares text with a number" in problems[0]
    assert "step 'check': input.expression: steps.c.output.price is a Decimal" in problems[1]
    assert "'in' compares text with a number" in problems[1]


def test_a_decimal_reached_through_a_loop_item_is_refused() -> None:
    text = textwrap.dedent(
        """
        name: dec_loop
        steps:
          - {id: c, type: test.decimal_price}
          - id: each
            type: sys.loop
            after: [c]
            input: {items: "{{ steps.c.output.lines }}"}
            steps:
              - {id: b, type: sys.transform, input: {value: "{{ loop.each.item.price == 9.99 }}"}}
              - {id: ok, type: sys.transform, input: {value: "{{ loop.each.item.price == '9.99' }}"}}
        """
    )
    (problem,) = _problems(text)
    assert "step 'b': input.value: loop.each.item.price is a Decimal" in problem, problem


def _increment(value: str) -> str:
    return textwrap.dedent(
        f"""
        name: dec_total
        variables: {{total: 0}}
        steps:
          - {{id: c, type: test.decimal_price}}
          - {{id: add, type: sys.set_variable, input: {{name: total, op: increment, value: "{value}"}}}}
        """
    )


async def test_a_decimal_as_an_increments_value_is_refused_before_the_run() -> None:
    """It passed validate, and the step failed at run time: the Decimal is text."""
    text = _increment("{{ steps.c.output.price }}")
    (problem,) = _problems(text)
    assert problem.endswith(
        "step 'add': input.value: {{ steps.c.output.price }} is a Decimal, stored as text to "
        "keep its digits, but op increment adds numbers only, so the step would fail at run "
        "time; convert it, as {{ steps.c.output.price | float }}"
    ), problem
    async with Engine("sqlite://", registry=_registry()) as engine:
        with stored_definitions():  # a stored version compiles as before, and fails so
            stored = engine.load_text(text)
        doc = await engine.run(stored)
        assert doc["runtimeStatus"] == "Failed"
        assert doc["error"]["message"] == (
            "input: increment takes a number as its value, not '9.99'"
        ), doc["error"]
        fixed = await engine.run(engine.load_text(_increment("{{ steps.c.output.price | float }}")))
    assert fixed["runtimeStatus"] == "Completed", fixed["error"]
    assert fixed["variables"]["total"] == 9.99


def _input_workflow(expression: str) -> str:
    """The workflow's input declares Decimals as text (``format: decimal``)."""
    value = json.dumps("{{ " + expression + " }}")
    return textwrap.dedent(
        f"""
        name: dec_input
        input_schema:
          type: object
          properties:
            price: {{type: string, format: decimal}}
            discount: {{anyOf: [{{type: string, format: decimal}}, {{type: "null"}}]}}
            lines:
              type: array
              items: {{type: object, properties: {{price: {{type: string, format: decimal}}}}}}
            n: {{type: integer}}
        steps:
          - {{id: t, type: sys.transform, input: {{value: {value}}}}}
        """
    )


@pytest.mark.parametrize(
    ("expression", "subject", "expected"),
    [
        ("input.price * 2", "input.price", "arithmetic or a comparison would work on the text"),
        ("input.price + input.n", "input.price", "arithmetic or a comparison"),
        ("input.price == 9.99", "input.price", "'==' compares text with a number"),
        ("input.discount > 0", "input.discount", "arithmetic or a comparison"),
        ("input.price | round(1)", "input.price", "'| round' would fail on the text"),
        ("input.lines | sum(attribute='price')", "the price of each item of input.lines", "sum"),
    ],
)
def test_an_input_declared_a_decimal_is_refused_where_used_as_a_number(
    expression: str, subject: str, expected: str
) -> None:
    """``format: decimal`` in input_schema was ignored: ``input.price * 2`` passed, and
    repeated the text ("9.999.99") when it ran. It is read as a Decimal output is."""
    (problem,) = _problems(_input_workflow(expression))
    assert problem.startswith("wf.yaml:13:49: ") and "step 't': input.value: " in problem, problem
    assert f"{subject} is a Decimal, which is stored as text to keep its digits, so " in problem
    assert expected in problem, problem
    for allowed in ("input.price | float * 2", "input.price == '9.99'", "input.n * 2"):
        _loads(_input_workflow(allowed))
    with stored_definitions():  # a stored version that passed before still compiles
        _loads(_input_workflow(expression))
