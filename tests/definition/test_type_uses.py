"""A read whose type the checker knows (from ``input_schema``, an output model, a loop's
items) is refused before the run where that type surely fails or goes wrong: text, a
list or an object used as a number (``input.name - 1``, ``input.name * 2``) or
compared with one (``input.name == 5``, always false), text times text, and a
field given one bare read of a type it never takes (``items: "{{ input.n }}"`` with an
integer). Each refused form is shown to fail (or go wrong) at run time with a value of
its type; next to it, the same value used as its type allows, converted, or of a type
not known, stays allowed.
"""

from __future__ import annotations

import json
import textwrap
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from flowledger import DefinitionError, StepContext, StepRegistry, step_type
from flowledger.definition.compiler import load_workflow_text
from flowledger.definition.strictness import stored_definitions
from flowledger.errors import TemplateError
from flowledger.templates import TemplateEngine


class WordsInput(BaseModel):
    n: int = 1


class WordsOutput(BaseModel):
    words: list[str]
    prices: list[Decimal]
    label: str


@step_type("test.words")
async def words_step(data: WordsInput, ctx: StepContext) -> WordsOutput:
    return WordsOutput(words=["a", "b"], prices=[Decimal("9.99")], label="x")


def _registry() -> StepRegistry:
    registry = StepRegistry.with_builtins()
    registry.register(words_step)
    return registry


#: The input the workflows below declare, and a value of each type for the run.
INPUT_SCHEMA = {
    "type": "object",
    "properties": {
        "s": {"type": "string"},
        "n": {"type": "integer"},
        "flag": {"type": "boolean"},
        "o": {"type": "object"},
        "xs": {"type": "array", "items": {"type": "string"}},
        "nums": {"type": "array", "items": {"type": "integer"}},
        "ms": {"type": ["string", "null"]},
        "sn": {"anyOf": [{"type": "string"}, {"type": "number"}]},
        "u": {},
    },
}
SAMPLE = {
    "s": "ab",
    "n": 3,
    "flag": True,
    "o": {"a": 1},
    "xs": ["a", "b"],
    "nums": [1, 2],
    "ms": "ab",
    "sn": 2,
    "u": 1,
}


def _workflow(expression: str) -> str:
    """Step ``t`` evaluates ``expression``; ``c``'s output is typed (``evaluatedExpression``
    is text), ``u``'s is only known at run time."""
    value = json.dumps("{{ " + expression + " }}")
    return textwrap.dedent(
        f"""
        name: types
        input_schema: {json.dumps(INPUT_SCHEMA)}
        steps:
          - {{id: c, type: sys.condition, input: {{expression: "{{{{ input.n > 1 }}}}"}}}}
          - {{id: u, type: sys.transform, input: {{value: "{{{{ input.u }}}}"}}}}
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


def _evaluated(expression: str) -> Any:
    """``expression`` evaluated with :data:`SAMPLE` as the input."""
    context = {"input": SAMPLE, "steps": {"c": {"output": {"evaluatedExpression": "x"}}}}
    return TemplateEngine().compile("{{ " + expression + " }}").render(context)


FAILS = "would fail on it at run time"
REFUSED = [
    # text used as a number: fails at run time
    ("input.s - 1", "input.s is a string", f"'-' {FAILS}"),
    ("1 - input.s", "input.s is a string", f"'-' {FAILS}"),
    ("input.s / 2", "input.s is a string", f"'/' {FAILS}"),
    ("input.s // 2", "input.s is a string", f"'//' {FAILS}"),
    ("input.s % 2", "input.s is a string", f"'%' {FAILS}"),
    ("input.s ** 2", "input.s is a string", f"'**' {FAILS}"),
    ("-input.s", "input.s is a string", f"'-' before it {FAILS}"),
    ("input.s + 1", "input.s is a string", "'+' with a number would fail"),
    ("1.5 + input.s", "input.s is a string", "'+' with a number would fail"),
    ("input.s + input.n", "input.s is a string", "'+' with a number would fail"),
    ("input.s + (input.n | int)", "input.s is a string", "'+' with a number would fail"),
    ("input.s < 5", "input.s is a string", "ordering it against a number"),
    ("5 >= input.s", "input.s is a string", "ordering it against a number"),
    ("input.s > input.n", "input.s is a string", "ordering it against a number"),
    ("input.s is gt 5", "input.s is a string", "ordering it against a number"),
    ("[input.s] | select('>', 5) | list", "input.s is a string", "ordering it against"),
    ("input.s | round", "input.s is a string", f"'| round' {FAILS}"),
    ("input.s | abs", "input.s is a string", f"'| abs' {FAILS}"),
    ("input.s | sum", "input.s is a string", f"'| sum' {FAILS}"),
    ("[input.s, 1] | sum", "input.s is a string", f"'| sum' {FAILS}"),
    ("input.s is even", "input.s is a string", f"'is even' {FAILS}"),
    ("input.ms - 1", "input.ms is a string or null", f"'-' {FAILS}"),
    ("input.xs | sum", "each item of input.xs is a string", f"'| sum' {FAILS}"),
    ("(input.xs | first) - 1", "each item of input.xs is a string", f"'-' {FAILS}"),
    (
        "steps.c.output.evaluatedExpression - 1",
        "steps.c.output.evaluatedExpression is a string",
        f"'-' {FAILS}",
    ),
    # text times a number: repeats the text
    ("input.s * 2", "input.s is a string", "'*' with a number would repeat the text"),
    ("2 * input.s", "input.s is a string", "'*' with a number would repeat the text"),
    # a list or an object used as a number
    ("input.nums - 1", "input.nums is a list", f"'-' {FAILS}"),
    ("input.nums + 1", "input.nums is a list", "'+' with a number would fail"),
    ("input.nums < 3", "input.nums is a list", "ordering it against a number"),
    ("input.nums | round", "input.nums is a list", f"'| round' {FAILS}"),
    ("input.o - 1", "input.o is an object", f"'-' {FAILS}"),
    ("input.o + input.o", "input.o is an object", f"'+' {FAILS}"),
    ("input.o * 2", "input.o is an object", f"'*' {FAILS}"),
    ("input.o | abs", "input.o is an object", f"'| abs' {FAILS}"),
]


@pytest.mark.parametrize(("expression", "subject", "expected"), REFUSED)
def test_text_a_list_or_an_object_used_as_a_number_is_refused_before_the_run(
    expression: str, subject: str, expected: str
) -> None:
    (problem,) = _problems(_workflow(expression))
    assert "step 't': " in problem and "wf.yaml:" in problem, problem
    assert f"{subject}, so {expected}" in problem, problem
    if "is a string" in subject:
        assert "| int)" in problem or "| map('float') | list)" in problem, problem
    else:
        assert "use a number" in problem, problem
    # The refusal is right: with a value of its type, the expression fails at run time
    # (or, for text times a number, repeats the text).
    if "repeat" in expected:
        assert _evaluated(expression) == "abab"
    else:
        with pytest.raises(TemplateError):
            _evaluated(expression)
    with stored_definitions():  # a stored version that passed before still compiles
        _loads(_workflow(expression))


def test_the_message_names_the_read_what_fails_and_the_fix() -> None:
    (problem,) = _problems(_workflow("input.s * 2"))
    assert problem.endswith(
        "input.s is a string, so '*' with a number would repeat the text ('ab' * 2 is "
        "'abab'); convert it first, as (input.s | int) or (input.s | float)"
    ), problem
    (problem,) = _problems(_workflow("steps.c.output.evaluatedExpression - 1"))
    assert problem.endswith(
        "step 't': input.value: steps.c.output.evaluatedExpression is a string, so '-' "
        "would fail on it at run time; convert it first, as "
        "(steps.c.output.evaluatedExpression | int) or "
        "(steps.c.output.evaluatedExpression | float)"
    ), problem


#: Next to each refused use, the same value used as text, converted, or of unknown type.
ALLOWED = {
    "input.s + 1": [
        "input.s + 'x'",
        "input.s + input.s",
        "input.s ~ 1",
        "(input.s | int) + 1",
        "(input.s | length) + 1",
        "input.s + steps.u.output",  # of unknown type
        "input.u + 1",
        "input.sn + 1",  # a union that allows a number
        "input.flag + 1",  # a boolean is a number in Python
    ],
    "input.s * 2": ["(input.s | float) * 2", "input.nums * 2", "input.s * steps.u.output"],
    "input.s - 1": [
        "(input.s | int) - 1",
        "input.n - 1",
        "input.flag - 1",
        "(input.s if input.flag else 0) - 1",  # the text may not be the value used
        "(input.s | default(0)) - 1",
        "steps.u.output - 1",
    ],
    "input.s < 5": [
        "input.s < 'm'",
        "input.s < input.s",
        "(input.s | float) < 5",
        "input.s | length < 5",
        "input.s < steps.u.output",
    ],
    "input.s | round": ["input.s | float | round", "input.s | max", "input.s | length"],
    "input.xs | sum": ["input.xs | map('int') | sum", "input.nums | sum", "input.xs | max"],
    "input.nums + 1": ["input.nums + [1]", "input.nums + input.nums", "input.nums | sum + 1"],
    "input.o - 1": ["input.o.a - 1", "(input.o | length) - 1"],
}


@pytest.mark.parametrize(("refused", "allowed"), ALLOWED.items())
def test_the_same_value_used_as_its_type_or_converted_is_allowed(
    refused: str, allowed: list[str]
) -> None:
    assert len(_problems(_workflow(refused))) == 1
    for expression in allowed:
        _loads(_workflow(expression))


def test_a_use_said_twice_is_reported_once() -> None:
    (problem,) = _problems(_workflow("(input.s - 1) + (input.s - input.n)"))
    assert "input.s is a string, so '-' would fail" in problem, problem


def _loop_workflow(expression: str) -> str:
    value = json.dumps("{{ " + expression + " }}")
    return textwrap.dedent(
        f"""
        name: items
        steps:
          - {{id: w, type: test.words}}
          - id: each
            type: sys.loop
            after: [w]
            input: {{items: "{{{{ steps.w.output.words }}}}"}}
            steps:
              - {{id: b, type: sys.transform, input: {{value: {value}}}}}
          - id: each_price
            type: sys.loop
            after: [w]
            input: {{items: "{{{{ steps.w.output.prices }}}}"}}
            steps:
              - {{id: p, type: sys.transform, input: {{value: "{{{{ loop.each_price.item }}}}"}}}}
        """
    )


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("loop.each.item - 1", "loop.each.item is a string, so '-' would fail"),
        ("loop.each.item * 3", "loop.each.item is a string, so '*' with a number"),
        ("steps.w.output.label < 1", "steps.w.output.label is a string, so ordering it"),
    ],
)
def test_a_loop_item_or_an_output_of_text_used_as_a_number_is_refused(
    expression: str, expected: str
) -> None:
    (problem,) = _problems(_loop_workflow(expression))
    assert "step 'b': input.value: " + expected in problem, problem
    for allowed in ("loop.each.item ~ 1", "(loop.each.item | int) - 1", "loop.each.index - 1"):
        _loads(_loop_workflow(allowed))


def test_a_loop_item_that_is_a_decimal_used_as_a_number_is_refused() -> None:
    """``loop.<id>.item`` itself (not a field of it) was never checked as a Decimal."""
    text = _loop_workflow("loop.each.item").replace(
        '"{{ loop.each_price.item }}"', '"{{ loop.each_price.item * 2 }}"'
    )
    (problem,) = _problems(text)
    assert "step 'p': input.value: loop.each_price.item is a Decimal" in problem, problem
    _loads(text.replace("loop.each_price.item * 2", "(loop.each_price.item | float) * 2"))


# -- a field given one bare read of a type it never takes --------------------------------


def _step_workflow(step: str) -> str:
    return textwrap.dedent(
        f"""
        name: fields
        input_schema: {json.dumps(INPUT_SCHEMA)}
        steps:
          - {{id: c, type: sys.condition, input: {{expression: "{{{{ input.n > 1 }}}}"}}}}
          - {step}
        """
    )


#: A step type, its input with one bare read in ``field``, the read's words, what the
#: field takes, the fix, and the input the step would get at run time (with a value of
#: the read's type), which its input model refuses.
FIELD_REFUSED = [
    (
        "sys.loop",
        '{items: "{{ input.n }}"}',
        "items",
        "{{ input.n }} is an integer",
        "a list",
        "for a count, write {{ range(input.n) | list }}",
        {"items": 3},
    ),
    (
        "sys.loop",
        '{items: "{{ input.s }}"}',
        "items",
        "{{ input.s }} is a string",
        "a list",
        "{{ [input.s] }}",
        {"items": "ab"},
    ),
    (
        "sys.loop",
        '{items: [1], concurrency: "{{ input.flag }}"}',
        "concurrency",
        "{{ input.flag }} is a boolean",
        "a number",
        "{{ input.flag | int }}",
        {"items": [1], "concurrency": True},
    ),
    (
        "sys.sub_workflow",
        '{workflow: child, items: "{{ input.o }}"}',
        "items",
        "{{ input.o }} is an object",
        "a list",
        "{{ [input.o] }}",
        {"workflow": "child", "items": {"a": 1}},
    ),
    (
        "sys.delay",
        '{duration: "{{ steps.c.output.result }}"}',
        "duration",
        "{{ steps.c.output.result }} is a boolean",
        "a duration ('30s', or a number of seconds)",
        "read a duration",
        {"duration": True},
    ),
    (
        "sys.fail",
        '{message: "{{ input.n }}"}',
        "message",
        "{{ input.n }} is an integer",
        "text",
        '{{ input.n | string }}, or put it in text ("n={{ input.n }}")',
        {"message": 3},
    ),
    (
        "sys.create_entity",
        '{entity_type: T, payload: "{{ input.xs }}"}',
        "payload",
        "{{ input.xs }} is a list",
        "an object",
        "read an object here",
        {"entity_type": "T", "payload": ["a"]},
    ),
    (
        "sys.http_request",
        '{url: "http://h", follow_redirects: "{{ input.nums }}"}',
        "follow_redirects",
        "{{ input.nums }} is a list",
        "true or false",
        "read true or false here",
        {"url": "http://h", "follow_redirects": [1]},
    ),
]


def _step(type_name: str, given: str) -> str:
    body = ", steps: [{id: b, type: sys.no_action}]" if type_name == "sys.loop" else ""
    return f"{{id: x, type: {type_name}, after: [c], input: {given}{body}}}"


@pytest.mark.parametrize(
    ("type_name", "given", "field", "read", "takes", "fix", "at_run_time"), FIELD_REFUSED
)
def test_a_field_given_a_read_of_a_type_it_never_takes_is_refused(
    type_name: str,
    given: str,
    field: str,
    read: str,
    takes: str,
    fix: str,
    at_run_time: dict[str, Any],
) -> None:
    text = _step_workflow(_step(type_name, given))
    (problem,) = _problems(text)
    assert f"step 'x': input.{field}: {read}, but {field} takes {takes}, so the step" in problem
    assert fix in problem, problem
    # The refusal is right: the step's input model refuses what the read would give it.
    step = _registry().get(type_name)
    assert step is not None
    with pytest.raises(ValidationError):
        step.input_model.model_validate(at_run_time)
    with stored_definitions():
        _loads(text)


#: Next to a refused field, reads it may take (text may hold a number or a duration),
#: conversions, and reads of unknown type.
FIELD_ALLOWED = {
    ("sys.loop", '{items: "{{ input.n }}"}'): [
        '{items: "{{ range(input.n) | list }}"}',
        '{items: "{{ input.nums }}"}',
        '{items: "{{ input.u }}"}',
        '{items: "{{ input.o.rows }}"}',  # a field of an object of unknown shape
        '{items: [1], concurrency: "{{ input.s }}"}',  # text may hold a number ("5")
        '{items: [1], concurrency: "{{ input.n }}"}',
    ],
    ("sys.delay", '{duration: "{{ steps.c.output.result }}"}'): [
        '{duration: "{{ input.s }}"}',  # '30s'
        '{duration: "{{ input.n }}"}',  # seconds
        '{duration: "{{ input.sn }}"}',
    ],
    ("sys.fail", '{message: "{{ input.n }}"}'): [
        '{message: "n={{ input.n }}"}',
        '{message: "{{ input.n | string }}"}',
        '{message: "{{ input.ms }}"}',
    ],
    ("sys.create_entity", '{entity_type: T, payload: "{{ input.xs }}"}'): [
        '{entity_type: T, payload: "{{ input.o }}"}',
        '{entity_type: T, payload: "{{ steps.c.output }}"}',
    ],
    ("sys.http_request", '{url: "http://h", follow_redirects: "{{ input.nums }}"}'): [
        '{url: "http://h", follow_redirects: "{{ input.s }}"}',  # "true"
        '{url: "http://h", follow_redirects: "{{ input.n }}"}',  # 1
        '{url: "http://h", json: "{{ input.nums }}"}',
    ],
}


@pytest.mark.parametrize(("refused", "allowed"), FIELD_ALLOWED.items())
def test_a_field_given_a_read_it_may_take_is_allowed(
    refused: tuple[str, str], allowed: list[str]
) -> None:
    type_name, given = refused
    assert len(_problems(_step_workflow(_step(type_name, given)))) == 1
    for other in allowed:
        _loads(_step_workflow(_step(type_name, other)))


# -- sys.set_variable's increment, which adds numbers only --------------------------------


def _increment(value: str, op: str = "increment") -> str:
    return _step_workflow(
        f"{{id: x, type: sys.set_variable, input: {{name: total, op: {op}, value: {value}}}}}"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            '"{{ input.s }}"',
            "{{ input.s }} is a string, but op increment adds numbers only, so the step would "
            "fail at run time; convert it, as {{ input.s | int }} or {{ input.s | float }}",
        ),
        ('"{{ input.ms }}"', "{{ input.ms }} is a string or null, but op increment adds"),
        ('"{{ input.flag }}"', "for 1 or 0, write {{ input.flag | int }}"),
        ('"{{ input.nums }}"', "for its count, write {{ input.nums | length }}"),
        ('"{{ steps.c.output.evaluatedExpression }}"', "is a string, but op increment adds"),
        ('"n={{ input.n }}"', "'n={{ input.n }}' renders text, but op increment adds numbers"),
        # A literal that is not a number: SetVariableInput's (tests/definition/test_compiler).
    ],
)
def test_an_increment_by_a_value_that_is_not_a_number_is_refused(value: str, expected: str) -> None:
    """The value of an increment is not typed by the input model (``set`` takes
    anything): a value that is surely not a number passed validate and failed the step
    at run time (``cannot increment variable``)."""
    text = _increment(value)
    (problem,) = _problems(text)
    assert "step 'x': input.value: " in problem, problem
    assert expected in problem, problem
    with stored_definitions():
        _loads(text)


@pytest.mark.parametrize(
    "value",
    [
        '"{{ input.n }}"',
        '"{{ input.sn }}"',  # may be a number
        '"{{ input.u }}"',
        '"{{ input.s | int }}"',
        '"{{ input.o.count }}"',  # a field of an object of unknown shape
        "2.5",
        "null",  # adds 1
    ],
)
def test_an_increment_by_a_value_that_may_be_a_number_is_allowed(value: str) -> None:
    _loads(_increment(value))
    _loads(_increment('"{{ input.s }}"', op="set"))
    with stored_definitions():  # a templated op is refused in new ones (test_compiler)
        _loads(_increment('"{{ input.s }}"', op='"{{ input.s }}"'))


# -- text (a list, an object) compared with a number, or multiplied by text ---------------

MISMATCHED = [
    # always false (or, with '!=', always true): text never equals a number
    ("input.s == 5", "input.s is a string", "'==' compares text with a number, and text"),
    ("5 != input.s", "input.s is a string", "'!=' compares text with a number"),
    ("input.s == input.n", "input.s is a string", "'==' compares text with input.n, a number,"),
    ("input.n == input.s", "input.s is a string", "'==' compares text with input.n, a number,"),
    ("input.s == (input.xs | length)", "input.s is a string", "'==' compares text with a"),
    ("input.ms == 5", "input.ms is a string or null", "'==' compares text with a number"),
    ("input.s is eq 5", "input.s is a string", "'==' compares text with a number"),
    ("input.xs | select('eq', 5) | list", "each item of input.xs is a string", "'==' compares"),
    (
        "steps.c.output.evaluatedExpression == 1",
        "steps.c.output.evaluatedExpression is a string",
        "'==' compares text with a number",
    ),
    ("input.xs == 3", "input.xs is a list", "'==' compares a list with a number, which it"),
    ("input.o != 1", "input.o is an object", "'!=' compares an object with a number"),
    # fails at run time
    ("input.s * input.s", "input.s is a string", "'*' with input.s, a string, would fail"),
    ("input.s * input.xs", "input.s is a string", "'*' with input.xs, a list, would fail"),
    ("input.s + input.xs", "input.s is a string", "'+' with input.xs, a list, would fail"),
    ("input.nums * input.nums", "input.nums is a list", "'*' with input.nums, a list, would"),
]


@pytest.mark.parametrize(("expression", "subject", "expected"), MISMATCHED)
def test_text_compared_with_a_number_or_multiplied_by_text_is_refused(
    expression: str, subject: str, expected: str
) -> None:
    (problem,) = _problems(_workflow(expression))
    assert "step 't': " in problem, problem
    assert f"{subject}, so {expected}" in problem, problem
    # The refusal is right: with a value of its type, the comparison never holds (or
    # always does), and the product fails.
    if "compares" in expected:
        assert _evaluated(expression) in ("!=" in expression, [])
    else:
        with pytest.raises(TemplateError):
            _evaluated(expression)
    with stored_definitions():
        _loads(_workflow(expression))


def test_the_message_of_text_compared_with_a_number_names_both_fixes() -> None:
    (problem,) = _problems(_workflow("input.s == 5"))
    assert problem.endswith(
        "input.s is a string, so '==' compares text with a number, and text never equals a "
        "number ('5' == 5 is false); convert it first, as (input.s | int) or "
        "(input.s | float), or compare it with text ('5')"
    ), problem
    (problem,) = _problems(_workflow("input.s * input.s"))
    assert problem.endswith(
        "input.s is a string, so '*' with input.s, a string, would fail at run time "
        "('a' * 'b' is an error); convert it first, as (input.s | int) or (input.s | float)"
    ), problem


@pytest.mark.parametrize(
    "expression",
    [
        "input.s == '5'",
        "(input.s | int) == 5",
        "input.s == input.s",
        "input.s == steps.u.output",  # of unknown type
        "input.u == 5",
        "input.sn == 5",  # a union that allows a number
        "input.flag == 1",  # True == 1
        "input.n == 5",
        "input.s == (5 if input.flag else 'x')",  # the number may not be the value used
        "input.s == (input.n if input.flag else 'x')",
        "(input.s if input.flag else 5) == 5",  # nor the text
        "input.s + input.s",
        "input.nums + input.nums",
        "input.s * input.n",  # repeats: refused as such, not here (see REFUSED)
        "input.nums * 2",
        "input.s * steps.u.output",
    ],
)
def test_text_compared_with_text_or_a_value_of_unknown_type_is_allowed(expression: str) -> None:
    if expression == "input.s * input.n":
        (problem,) = _problems(_workflow(expression))
        assert "would repeat the text" in problem, problem
        return
    _loads(_workflow(expression))
