"""An increment, append or merge to a variable whose kind the definition knows, and that kind does not
take it, is refused before the run (definition.variable_kinds)."""

from __future__ import annotations

import textwrap

import pytest
from pydantic import BaseModel

from flowledger import DefinitionError, StepContext, StepRegistry, step_type
from flowledger.definition.compiler import load_workflow_text
from flowledger.definition.strictness import stored_definitions
from flowledger.templates import TemplateEngine


class NoInput(BaseModel):
    pass


@step_type("acme.touch")
async def touch(data: NoInput, ctx: StepContext) -> None:
    return None


def compile_yaml(text: str):  # type: ignore[no-untyped-def]
    registry = StepRegistry.with_builtins()
    registry.register(touch)
    return load_workflow_text(textwrap.dedent(text), registry, TemplateEngine(), "wf.yaml")


def problems(text: str) -> list[str]:
    with pytest.raises(DefinitionError) as info:
        compile_yaml(text)
    return [p.format() for p in info.value.problems]


def test_an_append_to_a_declared_number_and_a_merge_into_a_list_are_refused() -> None:
    """They failed at run time: "cannot append to variable 'c': it holds int, not a list"."""
    text = """
        name: kinds
        variables: {c: 0, xs: [], o: {}}
        steps:
          - {id: a, type: sys.set_variable, input: {name: c, op: append, value: 1}}
          - {id: b, type: sys.set_variable, input: {name: xs, op: merge, value: {k: 1}}}
          - {id: d, type: sys.set_variable, input: {name: o, op: append, value: 1}}
          - {id: e, type: sys.set_variable, input: {name: c, op: increment}}
          - {id: f, type: sys.set_variable, input: {name: xs, op: append, value: 2}}
          - {id: g, type: sys.set_variable, input: {name: o, op: merge, value: {k: 1}}}
        """
    found = problems(text)
    assert found == [
        "wf.yaml:5:58: step 'a': input.op append adds to a list, but variable 'c' holds a "
        "number here (its default under 'variables:' is a number, and no step sets it), so the "
        "step would fail at run time; to append to it, start it as [] (variables: {c: []})",
        "wf.yaml:6:59: step 'b': input.op merge joins objects, but variable 'xs' holds a "
        "list here (its default under 'variables:' is a list, and no step sets it), so the step "
        "would fail at run time; to merge into it, start it as {} (variables: {xs: {}})",
        "wf.yaml:7:58: step 'd': input.op append adds to a list, but variable 'o' holds an "
        "object here (its default under 'variables:' is an object, and no step sets it), so "
        "the step would fail at run time; to append to it, start it as [] (variables: {o: []})",
    ]
    with stored_definitions():  # a new rule: a stored version compiles as before
        compile_yaml(text)


def test_an_increment_of_declared_text_a_list_and_an_object_is_refused() -> None:
    """They failed at run time: "cannot increment variable 't': it holds str and the value
    is int; both must be numbers"."""
    text = """
        name: kinds
        variables: {t: ada, xs: [], o: {}, b: true, n: 0}
        steps:
          - {id: a, type: sys.set_variable, input: {name: t, op: increment}}
          - {id: b, type: sys.set_variable, input: {name: xs, op: increment, value: 1}}
          - {id: c, type: sys.set_variable, input: {name: o, op: increment, value: 2}}
          - {id: d, type: sys.set_variable, input: {name: b, op: increment}}
          - {id: e, type: sys.set_variable, input: {name: n, op: increment, value: 2.5}}
          - {id: f, type: sys.set_variable, input: {name: s, value: "x"}}
          - {id: g, type: sys.set_variable, after: [f], input: {name: s, op: increment}}
        """
    found = problems(text)
    assert found == [
        "wf.yaml:5:58: step 'a': input.op increment adds to a number, but variable 't' holds "
        "text here (its default under 'variables:' is text, and no step sets it), so the step "
        "would fail at run time; to increment it, start it as 0 (variables: {t: 0})",
        "wf.yaml:6:59: step 'b': input.op increment adds to a number, but variable 'xs' holds "
        "a list here (its default under 'variables:' is a list, and no step sets it), so the "
        "step would fail at run time; to increment it, start it as 0 (variables: {xs: 0})",
        "wf.yaml:7:58: step 'c': input.op increment adds to a number, but variable 'o' holds "
        "an object here (its default under 'variables:' is an object, and no step sets it), "
        "so the step would fail at run time; to increment it, start it as 0 (variables: {o: 0})",
        "wf.yaml:8:58: step 'd': input.op increment adds to a number, but variable 'b' holds "
        "a boolean here (its default under 'variables:' is a boolean, and no step sets it), "
        "so the step would fail at run time; to increment it, start it as 0 (variables: {b: 0})",
        "wf.yaml:11:70: step 'g': input.op increment adds to a number, but variable 's' holds "
        "text here (step 'f' sets it before this step runs, and every step that sets it sets "
        "text), so the step would fail at run time; to increment it, start it as 0 "
        "(variables: {s: 0}) and set it only to numbers",
    ]
    with stored_definitions():  # a new rule: a stored version compiles as before
        compile_yaml(text)


def test_a_variable_set_to_one_kind_before_the_change_on_every_way_is_known() -> None:
    found = problems(
        """
        name: kinds
        variables: {t: "a"}
        steps:
          - {id: a, type: sys.set_variable, input: {name: n, value: 5}}
          - {id: check, type: sys.condition, input: {expression: true}, then: [b], else: [c]}
          - {id: b, type: sys.set_variable, input: {name: t, value: "b"}}
          - {id: c, type: sys.no_action}
          - id: each
            type: sys.loop
            after: [b, c]
            input: {items: [1, 2]}
            steps:
              - {id: m, type: sys.set_variable, input: {name: n, op: merge, value: {k: 1}}}
              - {id: u, type: sys.set_variable, input: {name: t, op: append, value: 1}}
        """
    )
    assert len(found) == 2, found
    assert found[0].startswith("wf.yaml:14:62: step 'm': input.op merge joins objects, but")
    assert (
        "variable 'n' holds a number here (step 'a' sets it before this step runs, and every"
        in (found[0])
    )
    assert "variable 't' holds text here (its default under 'variables:' is text, and" in found[1]


@pytest.mark.parametrize(
    "steps",
    [
        # not declared, and set after the append or on one branch only: null may be there
        """
          - {id: a, type: sys.set_variable, input: {name: n, op: append, value: 1}}
          - {id: b, type: sys.set_variable, input: {name: n, value: 5}}
        """,
        """
          - {id: check, type: sys.condition, input: {expression: true}, then: [b], else: [c]}
          - {id: b, type: sys.set_variable, input: {name: n, value: 5}}
          - {id: c, type: sys.no_action}
          - {id: d, after: [b, c], type: sys.set_variable, input: {name: n, op: append, value: 1}}
        """,
        # set to two kinds, or to a value not known before the run
        """
          - {id: a, type: sys.set_variable, input: {name: c, value: []}}
          - {id: b, type: sys.set_variable, input: {name: c, op: append, value: 1}}
        """,
        """
          - {id: a, type: sys.set_variable, input: {name: c, value: "{{ input.v }}"}}
          - {id: b, type: sys.set_variable, input: {name: c, op: append, value: 1}}
        """,
        # a custom step may change any variable (ctx.variables)
        """
          - {id: a, type: acme.touch}
          - {id: b, type: sys.set_variable, input: {name: c, op: append, value: 1}}
        """,
        # declared null: becomes a list, an object or a number
        """
          - {id: a, type: sys.set_variable, input: {name: z, op: append, value: 1}}
          - {id: b, type: sys.set_variable, input: {name: z2, op: merge, value: {k: 1}}}
          - {id: d, type: sys.set_variable, input: {name: z3, op: increment}}
        """,
        # set to text on one branch only, or to a value not known before the run
        """
          - {id: check, type: sys.condition, input: {expression: true}, then: [b], else: [c]}
          - {id: b, type: sys.set_variable, input: {name: t, value: "x"}}
          - {id: c, type: sys.no_action}
          - {id: d, after: [b, c], type: sys.set_variable, input: {name: t, op: increment}}
        """,
        """
          - {id: a, type: sys.set_variable, input: {name: t, value: "{{ input.v }}"}}
          - {id: b, type: sys.set_variable, input: {name: t, op: increment}}
        """,
    ],
)
def test_a_variable_whose_kind_is_not_known_there_passes(steps: str) -> None:
    compile_yaml(
        f"""
        name: kinds
        variables: {{c: 0, z: null, z2: null, z3: null}}
        steps:{textwrap.indent(textwrap.dedent(steps), " " * 8)}
        """
    )


def test_a_variable_set_on_each_branch_by_another_step_is_known_there() -> None:
    """Every way to the append passes a step that sets a number, not the same step."""
    (found,) = problems(
        """
        name: kinds
        steps:
          - {id: check, type: sys.condition, input: {expression: true}, then: [b], else: [c]}
          - {id: b, type: sys.set_variable, input: {name: n, value: 5}}
          - {id: c, type: sys.set_variable, input: {name: n, value: 6}}
          - {id: d, after: [b, c], type: sys.set_variable, input: {name: n, op: append, value: 1}}
        """
    )
    assert "variable 'n' holds a number here (a step that sets it runs on every way before" in found
