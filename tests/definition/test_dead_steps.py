"""Steps that can never run: every path to them passes a sys.fail (SPEC §1's graph rules:
a step runs only after a predecessor completed, and a sys.fail never completes)."""

from __future__ import annotations

import textwrap

import pytest

from flowledger.definition.strictness import stored_definitions
from tests.conftest import RunYaml, statuses
from tests.definition.test_compiler import compile_yaml, problems

GUARD_TRAP = """
name: guard-trap
input_schema: {type: object, properties: {n: {type: integer}}, required: [n]}
steps:
  - id: guard
    type: sys.fail
    when: "{{ input.n < 0 }}"
    input: {message: "n must not be negative"}
  - id: work
    type: sys.transform
    input: {value: "{{ input.n * 2 }}"}
output: {doubled: "{{ steps.work.output }}"}
"""


async def test_a_step_after_a_guarding_sys_fail_in_the_list_is_refused(
    run_yaml: RunYaml,
) -> None:
    [problem] = problems(GUARD_TRAP)
    assert problem == (
        "wf.yaml:9:5: step 'work': can never run: it comes after 'guard' in the list, a "
        "sys.fail step, which never completes (when it runs it fails the execution; when its "
        "when is false it is Disabled, and a step runs only after a predecessor completed). "
        "Give 'work' after: [] (what 'guard' runs after) so it does not wait for 'guard', or "
        "make the check a sys.condition with then: [work] and else: [guard]"
    )
    # What the rule stands on, as a version stored before it (compiled as then) runs.
    with stored_definitions():
        passed = await run_yaml(GUARD_TRAP, {"n": 3})
        stopped = await run_yaml(GUARD_TRAP, {"n": -1})
    assert passed["runtimeStatus"] == "Completed" and passed["output"] == {"doubled": None}
    assert statuses(passed) == {"guard": "Disabled", "work": "Disabled"}
    assert stopped["runtimeStatus"] == "Failed"


def test_an_after_that_names_only_a_sys_fail_is_refused_there_with_the_steps_it_takes_along() -> (
    None
):
    text = """
        name: explicit
        steps:
          - {id: prep, type: sys.transform, input: {value: 1}}
          - {id: guard, type: sys.fail, when: "{{ steps.prep.output > 5 }}"}
          - {id: work, type: sys.transform, after: [guard], input: {value: 2}}
          - {id: more, type: sys.transform, input: {value: 3}}
          - {id: last, type: sys.transform, after: [more], input: {value: 4}}
        """
    [problem] = problems(text)
    assert problem.startswith(
        "wf.yaml:6:44: step 'work': after: can never run: it runs after 'guard', a sys.fail step"
    )
    assert "; nor can 'more' and 'last', which run only after it." in problem
    assert "Give 'work' after: [prep] (what 'guard' runs after)" in problem


def test_a_step_after_two_sys_fail_steps_is_refused() -> None:
    text = """
        name: two
        steps:
          - {id: a, type: sys.fail, after: [], when: false}
          - {id: b, type: sys.fail, after: [], when: false}
          - {id: c, type: sys.no_action, after: [a, b]}
        """
    [problem] = problems(text)
    assert "step 'c': after: can never run: it runs after 'a' and 'b', sys.fail steps" in problem
    assert "make each check a sys.condition whose else is the failing step" in problem


def test_a_sys_fail_after_a_sys_fail_is_where_it_starts() -> None:
    text = """
        name: doubled
        steps:
          - {id: first, type: sys.fail, when: false}
          - {id: second, type: sys.fail, when: false}
          - {id: work, type: sys.no_action}
        """
    [problem] = problems(text)
    assert "step 'second': can never run: it comes after 'first'" in problem
    assert "nor can 'work'" in problem


def test_a_dead_step_in_a_loop_body_is_refused() -> None:
    text = """
        name: looped
        steps:
          - id: each
            type: sys.loop
            input: {items: [1, 2]}
            steps:
              - {id: check, type: sys.fail, when: "{{ loop.each.item > 1 }}"}
              - {id: use, type: sys.transform, input: {value: "{{ loop.each.item }}"}}
        """
    [problem] = problems(text)
    assert "step 'use': can never run: it comes after 'check' in the list" in problem


def test_a_join_waits_for_predecessors_of_which_one_is_dead_and_one_is_not() -> None:
    text = """
        name: joined
        steps:
          - {id: guard, type: sys.fail, after: [], when: false}
          - {id: dead, type: sys.no_action}
          - {id: live, type: sys.transform, after: [], input: {value: 1}}
          - {id: join, type: sys.transform, after: [dead, live], input: {value: 2}}
        """
    [problem] = problems(text)
    assert "step 'dead'" in problem and "join" not in problem


@pytest.mark.parametrize(
    "steps",
    [
        # The guard is the last step (examples/batch_child.yaml).
        """
          - {id: work, type: sys.transform, input: {value: 1}}
          - {id: guard, type: sys.fail, when: "{{ input.n < 0 }}"}
        """,
        # The step does not wait for the guard.
        """
          - {id: guard, type: sys.fail, when: "{{ input.n < 0 }}"}
          - {id: work, type: sys.transform, after: [], input: {value: 1}}
        """,
        # continue_on_error: the failed guard counts as done, its successors run.
        """
          - {id: guard, type: sys.fail, continue_on_error: true, when: "{{ input.n < 0 }}"}
          - {id: work, type: sys.transform, input: {value: 1}}
        """,
        # A join with a predecessor that completes runs.
        """
          - {id: guard, type: sys.fail, after: [], when: "{{ input.n < 0 }}"}
          - {id: other, type: sys.transform, after: [], input: {value: 1}}
          - {id: work, type: sys.transform, after: [guard, other], input: {value: 1}}
        """,
        # The check as a condition: the sys.fail is a branch, the rest follows the other.
        """
          - id: check
            type: sys.condition
            input: {expression: "{{ input.n >= 0 }}"}
            then: [work]
            else: [stop]
          - {id: stop, type: sys.fail, input: {message: negative}}
          - {id: work, type: sys.transform, input: {value: 1}}
          - {id: after_work, type: sys.transform, input: {value: 2}}
        """,
    ],
)
def test_shapes_where_every_step_can_run_compile(steps: str) -> None:
    head = "name: fine\ninput_schema: {type: object, properties: {n: {type: integer}}}\nsteps:"
    workflow = compile_yaml(head + textwrap.dedent(steps))
    assert "work" in workflow.steps
