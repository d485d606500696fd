"""A template that reads nothing is checked as the value it renders to (definition.constants)."""

from __future__ import annotations

import textwrap

import pytest

from flowledger import DefinitionError, StepRegistry
from flowledger.definition.compiler import load_workflow_text
from flowledger.definition.strictness import stored_definitions
from flowledger.templates import TemplateEngine


def compile_yaml(text: str):  # type: ignore[no-untyped-def]
    registry = StepRegistry.with_builtins()
    return load_workflow_text(textwrap.dedent(text), registry, TemplateEngine(), "wf.yaml")


def problems(text: str) -> list[str]:
    with pytest.raises(DefinitionError) as info:
        compile_yaml(text)
    return [p.format() for p in info.value.problems]


def _loop(fields: str) -> str:
    return f"""
        name: constants
        steps:
          - id: each
            input: {fields}
            type: sys.loop
            steps: [{{id: b, type: sys.no_action}}]
        """


@pytest.mark.parametrize(
    ("fields", "literal"),
    [
        ('{items: [1], concurrency: "{{ 0 }}"}', "{items: [1], concurrency: 0}"),
        ('{items: [1], concurrency: "{{ 2000 }}"}', "{items: [1], concurrency: 2000}"),
        (
            '{until: "{{ steps.b.output }}", max_iterations: "{{ -1 }}"}',
            '{until: "{{ steps.b.output }}", max_iterations: -1}',
        ),
        ('{items: "{{ 5 }}"}', "{items: 5}"),
        ('{items: [1], concurrency: "{{ 2 - 2 }}"}', "{items: [1], concurrency: 0}"),
        ('{items: [1], concurrency: "{{ true }}"}', "{items: [1], concurrency: true}"),
    ],
)
def test_a_template_that_reads_nothing_gets_the_message_of_its_literal(
    fields: str, literal: str
) -> None:
    """``concurrency: "{{ 0 }}"`` passed validate and failed the step when it ran; the
    literal 0 is refused. Same message, at the template's position."""
    found = problems(_loop(fields))
    assert [p.split(": ", 1)[1] for p in found] == [
        p.split(": ", 1)[1] for p in problems(_loop(literal))
    ]
    assert found[0].startswith("wf.yaml:5:"), found
    with stored_definitions():  # a new rule: a stored version compiles as before
        compile_yaml(_loop(fields))


def test_a_constant_meets_the_rules_between_fields_and_nested_values() -> None:
    found = problems(
        """
        name: constants
        steps:
          - id: each
            type: sys.loop
            input: {until: "{{ steps.b.output }}", max_iterations: 3, concurrency: "{{ 4 }}"}
            steps: [{id: b, type: sys.no_action}]
          - id: wait
            type: sys.delay
            input: {duration: "{{ 'soon' }}"}
          - id: get
            type: sys.http_request
            input: {url: "https://example.com/{{ input.p }}", ok_status: [200, "{{ 600 }}"]}
        """
    )
    assert len(found) == 3, found
    assert found[0].startswith("wf.yaml:6:76: step 'each': input.concurrency: a loop with")
    assert "concurrency must be 1, not 4" in found[0]
    assert found[1].startswith("wf.yaml:10:23: step 'wait': input.duration: \"soon\" is not")
    assert found[2] == "wf.yaml:13:72: step 'get': input.ok_status[1]: must be at most 599, not 600"


def test_templates_that_read_data_or_fit_stay_unchecked_until_the_run() -> None:
    wf = compile_yaml(
        """
        name: constants
        input_schema: {type: object, properties: {n: {type: integer}}}
        steps:
          - id: each
            type: sys.loop
            input: {items: "{{ range(3) | list }}", concurrency: "{{ input.n }}"}
            steps: [{id: b, type: sys.no_action}]
          - id: poll
            type: sys.loop
            input: {until: "{{ true }}", max_iterations: "{{ 1 + 1 }}"}
            steps: [{id: c, type: sys.no_action}]
          - {id: s, type: sys.set_variable, input: {name: v, value: "{{ 1 / 0 }}"}}
        """
    )
    assert wf.steps["each"].input.render({"input": {"n": 2}}) == {
        "items": [0, 1, 2],
        "concurrency": 2,
    }
    assert wf.steps["poll"].iteration_end is not None
