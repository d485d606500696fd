"""SPEC §1 graph rules as the scheduler runs them."""

from __future__ import annotations

from tests.conftest import RunYaml, statuses


async def test_list_order_then_after_fan_out_and_join(run_yaml: RunYaml) -> None:
    doc = await run_yaml(
        """
        name: fan
        steps:
          - {id: a, type: sys.transform, input: {value: 1}}
          - {id: b, type: sys.transform, after: [a], input: {value: "{{ steps.a.output + 1 }}"}}
          - {id: c, type: sys.transform, after: [a], input: {value: "{{ steps.a.output + 2 }}"}}
          - {id: join, type: sys.transform, after: [b, c], input: {value: "{{ steps.b.output + steps.c.output }}"}}
        output: "{{ steps.join.output }}"
        """
    )
    assert doc["runtimeStatus"] == "Completed"
    assert doc["output"] == 5
    assert set(statuses(doc).values()) == {"Completed"}


async def test_skipped_branches_propagate_and_a_join_still_runs(run_yaml: RunYaml) -> None:
    doc = await run_yaml(
        """
        name: branches
        steps:
          - {id: check, type: sys.condition, input: {expression: "{{ 2 > 3 }}"}, then: [big], else: [small]}
          - {id: big, type: sys.transform, input: {value: big}}
          - {id: after_big, type: sys.transform, input: {value: still big}}
          - {id: small, type: sys.transform, input: {value: small}}
          - {id: join, type: sys.transform, after: [after_big, small], input: {value: joined}}
        """
    )
    s = statuses(doc)
    assert s == {
        "check": "Completed",
        "big": "Disabled",
        "after_big": "Disabled",
        "small": "Completed",
        "join": "Completed",
    }
    check = next(v for v in doc["steps"].values() if v["stepId"] == "check")
    assert check["outputData"] == {"result": False, "evaluatedExpression": "{{ 2 > 3 }}"}


async def test_when_false_disables_the_step_and_its_only_successor(run_yaml: RunYaml) -> None:
    doc = await run_yaml(
        """
        name: when
        steps:
          - {id: a, type: sys.transform, input: {value: 1}}
          - {id: b, type: sys.transform, when: "{{ steps.a.output == 2 }}", input: {value: 2}}
          - {id: c, type: sys.transform, input: {value: 3}}
        """
    )
    assert statuses(doc) == {"a": "Completed", "b": "Disabled", "c": "Disabled"}
    assert doc["runtimeStatus"] == "Completed"


async def test_the_text_false_is_false(run_yaml: RunYaml) -> None:
    """A boolean that came through text (here the input) decides as the boolean, in a
    ``when``, in ``sys.condition`` and in the ``bool`` filter; so does a literal."""
    doc = await run_yaml(
        """
        name: text-booleans
        steps:
          - {id: check, type: sys.condition, input: {expression: "{{ input.send }}"}, then: [send], else: [skip]}
          - {id: send, type: sys.transform, input: {value: sent}}
          - {id: skip, type: sys.transform, input: {value: skipped}}
          - {id: by_when, type: sys.transform, after: [], when: "{{ input.send }}", input: {value: 1}}
          - {id: literal, type: sys.transform, after: [], when: " False ", input: {value: 1}}
          - {id: upper, type: sys.transform, after: [], when: "TRUE", input: {value: 1}}
          - {id: text, type: sys.transform, after: [], when: "{{ input.name }}", input: {value: 1}}
          - {id: filter, type: sys.transform, after: [], input: {value: "{{ [input.send | bool, 'True' | bool, 'x' | bool, '' | bool] }}"}}
        """,
        {"send": "false", "name": "Ada"},
    )
    assert statuses(doc) == {
        "check": "Completed",
        "send": "Disabled",
        "skip": "Completed",
        "by_when": "Disabled",
        "literal": "Disabled",
        "upper": "Completed",
        "text": "Completed",  # any other text holds, as in Jinja
        "filter": "Completed",
    }
    outputs = {v["stepId"]: v["outputData"] for v in doc["steps"].values()}
    assert outputs["check"]["result"] is False
    assert outputs["filter"] == [False, True, True, False]


async def test_continue_on_error_lets_the_flow_go_on(run_yaml: RunYaml) -> None:
    doc = await run_yaml(
        """
        name: tolerant
        steps:
          - {id: optional, type: sys.fail, continue_on_error: true, input: {message: nope}}
          - {id: next, type: sys.transform, input: {value: "{{ steps.optional.status }}"}}
        output: "{{ steps.next.output }}"
        """
    )
    assert doc["runtimeStatus"] == "Completed"
    assert doc["output"] == "Failed"


async def test_a_failure_fails_the_execution_and_cancels_running_siblings(
    run_yaml: RunYaml,
) -> None:
    doc = await run_yaml(
        """
        name: failing
        steps:
          - {id: slow, type: test.slow, after: [], input: {seconds: 30, name: sibling}}
          - {id: boom, type: sys.fail, after: [], input: {message: "stop everything"}}
          - {id: never, type: sys.no_action, after: [slow, boom]}
        """
    )
    assert doc["runtimeStatus"] == "Failed"
    assert doc["error"]["message"] == "stop everything"
    assert doc["failedAt"] is not None
    s = statuses(doc)
    assert s["slow"] == "Cancelled" and s["boom"] == "Failed" and "never" not in s


async def test_no_action_ends_completed_with_no_action_taken(run_yaml: RunYaml) -> None:
    doc = await run_yaml(
        """
        name: idle
        steps:
          - {id: check, type: sys.condition, input: {expression: false}, then: [work], else: [idle]}
          - {id: work, type: sys.transform, input: {value: 1}}
          - {id: idle, type: sys.no_action, input: {reason: nothing new}}
        """
    )
    assert doc["runtimeStatus"] == "CompletedWithNoActionTaken"
    idle = next(v for v in doc["steps"].values() if v["stepId"] == "idle")
    assert idle["outputData"] == {"reason": "nothing new"}


async def test_sync_custom_handlers_run_off_the_event_loop(run_yaml: RunYaml) -> None:
    doc = await run_yaml(
        """
        name: sync
        steps:
          - {id: s, type: test.sync_echo, input: {value: 7}}
        output: "{{ steps.s.output }}"
        """
    )
    assert doc["output"] == {"value": 7, "thread": "worker"}
