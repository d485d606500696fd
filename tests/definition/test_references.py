"""The reference checker on what a loop renders when an iteration ends (``until``) and
on ``loop.<id>.previous``: every read checked like any other, with the file position."""

from __future__ import annotations

import textwrap

import pytest

from flowledger import DefinitionError, StepRegistry
from flowledger.definition.compiler import load_workflow_text
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
