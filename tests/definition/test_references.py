"""The reference checker on what a loop renders when an iteration ends (``until``) and
on ``loop.<id>.previous``: every read checked like any other, with the file position."""

from __future__ import annotations

import textwrap

import pytest

from flowledger import DefinitionError, StepRegistry
from flowledger.definition.compiler import load_workflow_text
from flowledger.definition.strictness import stored_definitions
from flowledger.templates import TemplateEngine

WORKFLOW = """\
name: poll
input_schema: {{type: object, properties: {{job: {{type: string}}}}}}
variables: {{tries: 0}}
steps:
  - {{id: start, type: sys.transform, input: {{value: {{id: "{{{{ input.job }}}}"}}}}}}
  - id: poll
    type: sys.loop
    input:
      until: "{until}"
      max_iterations: 5
    steps:
      - {{id: ask, type: sys.transform, input: {{value: {{state: done, next: null}}}}}}
      - {{id: count, type: sys.set_variable, input: {{name: tries, op: increment}}}}
      - id: inner
        type: sys.loop
        input: {{items: [1, 2]}}
        steps:
          - {{id: deep, type: sys.transform, input: {{value: 1}}}}
  - {{id: later, type: sys.transform, input: {{value: 1}}}}
"""


def _problems(until: str) -> list[str]:
    text = textwrap.dedent(WORKFLOW.format(until=until))
    try:
        load_workflow_text(text, StepRegistry.with_builtins(), TemplateEngine(), "wf.yaml")
    except DefinitionError as exc:
        return [p.format() for p in exc.problems]
    return []


@pytest.mark.parametrize(
    "until",
    [
        # the body's steps (this iteration's outputs), and all the loop step sees
        "{{ steps.ask.output.state == 'done' }}",
        "{{ steps.count.output.value >= 3 or variables.tries > 4 }}",
        "{{ steps.start.output.id and loop.poll.index > 1 and input.job }}",
        "{{ steps.inner.output.count == 2 }}",
        "{{ loop.poll.previous and loop.poll.previous.ask.next == steps.ask.output.next }}",
        "{{ loop.poll.previous.inner.results[0].deep == 1 }}",
    ],
)
def test_until_reads_the_body_and_what_the_loop_step_sees(until: str) -> None:
    assert _problems(until) == []


@pytest.mark.parametrize(
    ("until", "expected"),
    [
        ("{{ steps.ghost.output }}", "steps.ghost names no step of this workflow"),
        ("{{ steps.ask.output.stat }}", "steps.ask.output has no field 'stat'"),
        ("{{ steps.ask.oput }}", "steps.ask has no field 'oput'"),
        ("{{ steps.later.output }}", "'later' does not run before this step"),
        ("{{ steps.poll.output.count > 3 }}", "'poll' is the loop this is evaluated in"),
        ("{{ steps.deep.output }}", "'deep' runs inside loop 'inner'"),
        ("{{ variables.trys }}", "variables.trys does not exist"),
        ("{{ loop.other.index }}", "not inside a loop named 'other'"),
        ("{{ loop.poll.idx }}", "loop.poll has no field 'idx'"),
        ("{{ loop.poll.item.x }}", "loop.poll.item is always null"),
        ("{{ loop.poll.items }}", "loop.poll.items is always null"),
        ("{{ loop.poll.previous.ghost }}", "'ghost' is not a step of the body of loop 'poll'"),
        ("{{ loop.poll.previous.deep }}", "'deep' is not a step of the body of loop 'poll'"),
        ("{{ loop.poll.previous.ask.nxt }}", "loop.poll.previous.ask has no field 'nxt'"),
        ("{{ loop.poll.previous.count.name.x }}", "loop.poll.previous.count.name is a string"),
        ("{{ steps.ask.output.state - 1 }}", "steps.ask.output.state is a string"),
        ("{{ loop.poll.previous.ask.state * 2 > 1 }}", "loop.poll.previous.ask.state is a string"),
    ],
)
def test_until_refuses_what_cannot_resolve_where_it_is_written(until: str, expected: str) -> None:
    found = _problems(until)
    assert len(found) == 1, found
    assert found[0].startswith("wf.yaml:9:") and "step 'poll': input.until: " in found[0], found
    assert expected in found[0], found


def test_previous_is_read_inside_the_body_and_refused_where_it_is_always_null() -> None:
    text = textwrap.dedent(
        """\
        name: previous
        steps:
          - id: pages
            type: sys.loop
            input: {items: [1, 2, 3]}
            steps:
              - {id: page, type: sys.transform, input: {value: {next: 1}}}
              - {id: use, type: sys.transform, input: {value: "{{ loop.pages.previous.page.next }}"}}
          - id: wide
            type: sys.loop
            input: {items: [1, 2, 3], concurrency: 3}
            steps:
              - {id: w, type: sys.transform, input: {value: "{{ loop.wide.previous }}"}}
          - id: children
            type: sys.sub_workflow
            input: {workflow: x, items: [1], input: {p: "{{ loop.children.previous }}"}}
          - id: bad
            type: sys.loop
            input: {items: [1]}
            steps:
              - {id: p, type: sys.transform, input: {value: 1}}
              - {id: b, type: sys.transform, input: {value: "{{ loop.bad.previous.p.x }}"}}
        """
    )
    with pytest.raises(DefinitionError) as info:
        load_workflow_text(text, StepRegistry.with_builtins(), TemplateEngine(), "wf.yaml")
    found = [p.format() for p in info.value.problems]
    assert len(found) == 3, found
    assert "wf.yaml:13:" in found[0] and "loop.wide.previous is always null" in found[0]
    assert "runs 3 iterations at a time" in found[0]
    assert "wf.yaml:16:" in found[1] and "loop.children has no field 'previous'" in found[1]
    assert "wf.yaml:22:" in found[2] and "loop.bad.previous.p is a number" in found[2]


def test_previous_is_refused_where_a_constant_template_runs_iterations_side_by_side() -> None:
    """``concurrency: "{{ 4 }}"`` is 4 before the run (definition.constants): the rule
    read only a literal, and let a read that is always null pass."""
    text = textwrap.dedent(
        """\
        name: previous
        steps:
          - id: wide
            type: sys.loop
            input: {items: [1, 2, 3], concurrency: "{{ 2 * 2 }}"}
            steps:
              - {id: w, type: sys.transform, input: {value: "{{ loop.wide.previous }}"}}
          - id: given
            type: sys.loop
            input: {items: [1, 2, 3], concurrency: "{{ input.n }}"}
            steps:
              - {id: g, type: sys.transform, input: {value: "{{ loop.given.previous }}"}}
        """
    )
    with pytest.raises(DefinitionError) as info:
        load_workflow_text(text, StepRegistry.with_builtins(), TemplateEngine(), "wf.yaml")
    found = [p.format() for p in info.value.problems]
    assert len(found) == 1, found  # the input's concurrency is not known before the run
    assert found[0].startswith("wf.yaml:7:") and "loop.wide.previous is always null" in found[0]
    assert "runs 4 iterations at a time" in found[0]
    with stored_definitions():  # a new rule: a stored version compiles as before
        load_workflow_text(text, StepRegistry.with_builtins(), TemplateEngine(), "wf.yaml")


CHILDREN = """\
name: batch
input_schema: {type: object, properties: {names: {type: array, items: {type: string}}}}
steps:
  - id: outer
    type: sys.loop
    input: {items: [1, 2]}
    steps:
      - id: each
        type: sys.sub_workflow
        when: "WHEN"
        input:
          workflow: "WORKFLOW"
          items: "{{ input.names }}"
          concurrency: "CONCURRENCY"
          input: {name: "{{ loop.each.item }}", at: "{{ loop.each.index }}", o: "{{ loop.outer.item }}"}
  - id: one
    type: sys.sub_workflow
    input: {workflow: child, input: {name: "ONE"}}
"""


def _children(**given: str) -> list[str]:
    fields = {"WHEN": "{{ true }}", "WORKFLOW": "child", "CONCURRENCY": "2", "ONE": "x", **given}
    text = CHILDREN
    for key, value in fields.items():
        text = text.replace(key, value)
    try:
        load_workflow_text(text, StepRegistry.with_builtins(), TemplateEngine(), "wf.yaml")
    except DefinitionError as exc:
        return [p.format() for p in exc.problems]
    return []


def test_a_sub_workflow_with_items_reads_its_frame_in_its_child_input() -> None:
    assert _children() == []


@pytest.mark.parametrize(
    ("given", "line", "expected"),
    [
        (
            {"WORKFLOW": "{{ 'child' if loop.each.index else 'x' }}"},
            12,
            "input.workflow: loop.each",
        ),
        ({"WHEN": "{{ loop.each.index >= 0 }}"}, 10, "when: loop.each"),
        ({"CONCURRENCY": "{{ loop.each.index + 1 }}"}, 14, "input.concurrency: loop.each"),
    ],
)
def test_a_sub_workflow_frame_is_refused_outside_its_child_input(
    given: dict[str, str], line: int, expected: str
) -> None:
    # The run renders these once for the whole step, with no loop.<its id>: it failed
    # with "loop has no field 'each'".
    found = _children(**given)
    assert len(found) == 1, found
    assert found[0].startswith(f"wf.yaml:{line}:") and expected in found[0], found
    assert "set only in the child input ('input') of 'each', once per item" in found[0]


def test_a_sub_workflow_without_items_has_no_frame() -> None:
    found = _children(ONE="{{ loop.one.item }}")
    assert len(found) == 1, found
    assert (
        found[0].startswith("wf.yaml:18:")
        and "input.input.name: loop.one does not exist" in found[0]
    )
    assert "'one' has no 'items', so it starts one child" in found[0]
    # A stored version was accepted so: it still compiles (definition.strictness).
    given = {"WHEN": "{{ loop.each.index >= 0 }}", "ONE": "{{ loop.one.item }}"}
    with stored_definitions():
        assert _children(**given) == []
