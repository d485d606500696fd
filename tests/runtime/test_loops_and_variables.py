"""Loops (concurrency, nesting, isolation) and atomic variables."""

from __future__ import annotations

from tests.conftest import RunYaml
from tests.runtime.steps_for_tests import Recorder


async def test_loop_output_and_bounded_concurrency(run_yaml: RunYaml, recorder: Recorder) -> None:
    doc = await run_yaml(
        """
        name: loop
        steps:
          - id: each
            type: sys.loop
            input: {items: [1, 2, 3, 4, 5, 6, 7, 8], concurrency: 3}
            steps:
              - {id: work, type: test.slow, input: {seconds: 0.02, name: w}}
              - {id: double, type: sys.transform, input: {value: "{{ loop.each.item * 2 }}"}}
        output: "{{ steps.each.output }}"
        """
    )
    assert doc["runtimeStatus"] == "Completed"
    assert recorder.max_running == 3
    out = doc["output"]
    assert out["count"] == 8
    assert [r["double"] for r in out["results"]] == [2, 4, 6, 8, 10, 12, 14, 16]
    loops = sorted(s["loop"]["each"] for s in doc["steps"].values() if s["stepId"] == "double")
    assert loops == list(range(8))


async def test_nested_and_concurrent_loops_never_see_each_others_state(run_yaml: RunYaml) -> None:
    doc = await run_yaml(
        """
        name: nested
        steps:
          - id: outer
            type: sys.loop
            input: {items: [a, b, c], concurrency: 3}
            steps:
              - id: inner
                type: sys.loop
                input: {items: [0, 1, 2, 3], concurrency: 4}
                steps:
                  - {id: pause, type: test.slow, input: {seconds: 0.01}}
                  - id: tag
                    type: sys.transform
                    input: {value: "{{ loop.outer.item }}{{ loop.inner.item }}@{{ loop.outer.index }}.{{ loop.inner.index }}"}
        output: "{{ steps.outer.output.results | map(attribute='inner') | map(attribute='results') | list }}"
        """
    )
    assert doc["runtimeStatus"] == "Completed"
    tags = [[r["tag"] for r in results] for results in doc["output"]]
    assert tags == [[f"{o}{i}@{oi}.{i}" for i in range(4)] for oi, o in enumerate("abc")]


async def test_empty_loop_completes_with_no_results(run_yaml: RunYaml) -> None:
    doc = await run_yaml(
        """
        name: empty
        steps:
          - {id: each, type: sys.loop, input: {items: []}, steps: [{id: x, type: sys.no_action}]}
        output: "{{ steps.each.output }}"
        """
    )
    assert doc["output"] == {"count": 0, "results": []}


async def test_a_failing_iteration_fails_the_loop_and_the_execution(run_yaml: RunYaml) -> None:
    doc = await run_yaml(
        """
        name: loop_fail
        steps:
          - id: each
            type: sys.loop
            input: {items: [1, 2, 3], concurrency: 1}
            steps:
              - {id: check, type: sys.fail, when: "{{ loop.each.item == 2 }}", input: {message: "bad item"}}
        """
    )
    assert doc["runtimeStatus"] == "Failed"
    assert doc["error"]["message"] == "iteration 1 failed at step 'check': bad item"


async def test_variable_ops_are_atomic_under_concurrency(run_yaml: RunYaml) -> None:
    items = list(range(200))
    doc = await run_yaml(
        """
        name: counters
        variables: {total: 0, seen: [], by_key: {}}
        input_schema: {type: object, properties: {items: {type: array}}}
        steps:
          - id: each
            type: sys.loop
            input: {items: "{{ input['items'] }}", concurrency: 20}
            steps:
              - {id: pause, type: test.slow, input: {seconds: 0.001}}
              - {id: inc, type: sys.set_variable, input: {name: total, op: increment, value: 2}}
              - {id: add, type: sys.set_variable, input: {name: seen, op: append, value: "{{ loop.each.item }}"}}
              - {id: put, type: sys.set_variable, input: {name: by_key, op: merge, value: "{{ {'k' ~ loop.each.item: 1} }}"}}
          - {id: label, type: sys.set_variable, input: {name: label, value: done}}
        """,
        {"items": items},
    )
    assert doc["runtimeStatus"] == "Completed"
    v = doc["variables"]
    assert v["total"] == 400
    assert sorted(v["seen"]) == items
    assert len(v["by_key"]) == 200
    assert v["label"] == "done"
    # Each append's output holds the item it added, not the whole list: a loop collecting
    # n items stored 1+2+…+n of them (quadratic in memory and on disk).
    outputs = [s["outputData"] for s in doc["steps"].values() if s["stepId"] in ("add", "put")]
    assert sorted(o["value"] for o in outputs if o["op"] == "append") == items
    merged = [o["value"] for o in outputs if o["op"] == "merge"]
    assert len(merged) == 200 and {"k0": 1} in merged
    incs = [s["outputData"] for s in doc["steps"].values() if s["stepId"] == "inc"]
    assert max(o["value"] for o in incs) == 400  # increment: the new value, as before


async def test_increment_of_a_non_number_fails_clearly(run_yaml: RunYaml) -> None:
    doc = await run_yaml(
        """
        name: bad_inc
        steps:
          # set from the input: validate cannot know it is text (a literal is refused there)
          - {id: put, type: sys.set_variable, input: {name: name, value: "{{ input.who }}"}}
          - {id: inc, type: sys.set_variable, input: {name: name, op: increment}}
        """,
        {"who": "ada"},
    )
    assert doc["runtimeStatus"] == "Failed"
    assert "cannot increment variable 'name'" in doc["error"]["message"]


async def test_an_increment_that_overflows_fails_its_step_once_and_changes_nothing(
    run_yaml: RunYaml,
) -> None:
    """1e308 + 1e308 completed the step: the variable was stored as null but stayed inf
    in memory, so a later step read inf in an uninterrupted run and null in one resumed
    from the database, and the workflow's output said null."""
    doc = await run_yaml(
        """
        name: overflow
        variables: {f: 1.0e308}
        output: {f: "{{ variables.f }}"}
        steps:
          - id: v1
            type: sys.set_variable
            continue_on_error: true
            retry: {max_attempts: 3, initial_delay: 10ms}
            input: {name: f, op: increment, value: 1.0e308}
          - {id: show, type: sys.transform, input: {value: "{{ variables.f }}"}}
        """
    )
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    [v1] = [s for s in doc["steps"].values() if s["stepId"] == "v1"]  # not retried
    assert v1["status"] == "Failed" and v1["outputData"] is None
    assert v1["error"]["message"] == (
        "cannot increment variable 'f': the result is too large for a number JSON can hold"
    )
    [show] = [s for s in doc["steps"].values() if s["stepId"] == "show"]
    assert show["outputData"] == 1e308
    assert doc["variables"] == {"f": 1e308} and doc["output"] == {"f": 1e308}
