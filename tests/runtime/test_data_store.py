"""The data store: names of SPEC §3, the execution document of §4, events, secrets, injection."""

from __future__ import annotations

import pytest

from flowledger import Engine, InputError
from tests.conftest import RunYaml

EXECUTION_KEYS = {
    "id",
    "correlationId",
    "parentWorkflowExecutionId",
    "rootWorkflowExecutionId",
    "workflowTemplateVersionId",
    "workflowName",
    "workflowVersion",
    "runtimeStatus",
    "currentStateName",
    "startedAt",
    "completedAt",
    "failedAt",
    "lastActivityAt",
    "createdBy",
    "context",
    "trigger",
    "variables",
    "output",
    "error",
    "steps",
}
STEP_KEYS = {
    "id",
    "type",
    "stepId",
    "status",
    "attempt",
    "startedAt",
    "completedAt",
    "failedAt",
    "dueAt",
    "outputData",
    "error",
    "loop",
    "childWorkflowExecutions",
}


async def test_every_template_name_resolves(run_yaml: RunYaml) -> None:
    doc = await run_yaml(
        """
        name: names
        context: {team: sales}
        variables: {n: 1}
        input_schema: {type: object, properties: {who: {type: string}}}
        steps:
          - {id: a, type: sys.transform, input: {value: {x: 1}}}
          - id: b
            type: sys.transform
            input:
              value:
                trigger_type: "{{ trigger.type }}"
                who: "{{ input.who }}"
                args: "{{ trigger.arguments.who }}"
                x: "{{ steps.a.output.x }}"
                seed: "{{ __steps__.a.outputData.x }}"
                node: "{{ steps.a.nodeId }}/{{ steps.a.status }}"
                n: "{{ variables.n }}"
                team: "{{ context.team }}/{{ __context__.team }}"
                wf: "{{ execution.workflowName }} v{{ execution.workflowVersion }}"
                same_id: "{{ execution.id == execution.correlationId }}"
        output: "{{ steps.b.output }}"
        """,
        {"who": "ada"},
    )
    assert doc["output"] == {
        "trigger_type": "function",
        "who": "ada",
        "args": "ada",
        "x": 1,
        "seed": 1,
        "node": "a/Completed",
        "n": 1,
        "team": "sales/sales",
        "wf": "names v1",
        "same_id": True,
    }


async def test_data_is_never_evaluated_as_a_template(run_yaml: RunYaml) -> None:
    doc = await run_yaml(
        """
        name: injection
        steps:
          - {id: evil, type: test.echo, input: {value: "{{ '{{ 7*7 }}' }}"}}
          - {id: use, type: sys.transform, input: {value: "got {{ steps.evil.output.value }}"}}
        output: "{{ steps.use.output }}"
        """
    )
    assert doc["output"] == "got {{ 7*7 }}"


async def test_execution_document_has_the_spec_shape(run_yaml: RunYaml) -> None:
    doc = await run_yaml(
        """
        name: shape
        steps:
          - {id: each, type: sys.loop, input: {items: [1]}, steps: [{id: x, type: sys.transform, input: {value: 1}}]}
        """
    )
    # SPEC §4's fields, plus this engine's additions (rerun lineage, job runs, open
    # questions, the input templates read as `input`).
    added = {"createdAt", "rerunOf", "jobRunId", "pendingInputs", "input"}
    assert set(doc) == EXECUTION_KEYS | added
    for step in doc["steps"].values():
        assert set(step) >= STEP_KEYS
        assert step["startedAt"].endswith("Z") and len(step["startedAt"]) == 24
    body = next(s for s in doc["steps"].values() if s["stepId"] == "x")
    assert body["loop"] == {"each": 0}
    assert doc["createdBy"] == "python"
    assert doc["trigger"] == {"type": "function", "arguments": {}}


async def test_event_history_is_ordered_and_gap_free(run_yaml: RunYaml, engine: Engine) -> None:
    doc = await run_yaml(
        """
        name: history
        steps:
          - {id: a, type: test.flaky, input: {fail_times: 1}, retry: {max_attempts: 2, initial_delay: 5ms}}
          - {id: b, type: sys.condition, input: {expression: false}, then: [c]}
          - {id: c, type: sys.no_action}
        """
    )
    events = await engine.events(doc["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "execution.created" and kinds[1] == "execution.started"
    assert kinds[-1] == "execution.completed"
    assert {
        "step.started",
        "step.completed",
        "step.failed",
        "step.retry_scheduled",
        "step.disabled",
    } <= set(kinds)
    assert set(events[0]) == {
        "seq",
        "at",
        "kind",
        "stepExecutionId",
        "stepId",
        "attempt",
        "status",
        "detail",
    }


async def test_input_is_validated_against_the_input_schema(engine: Engine) -> None:
    workflow = engine.load_text(
        "name: typed\ninput_schema: {type: object, properties: {n: {type: integer}}, required: [n]}\n"
        "steps: [{id: a, type: sys.no_action}]\n"
    )
    with pytest.raises(InputError, match=r"input\.n: 'x' is not of type 'integer'"):
        await engine.run(workflow, {"n": "x"})
    with pytest.raises(InputError, match="'n' is a required property"):
        await engine.run(workflow, {})
    assert await engine.list_executions() == []  # nothing half-written


async def test_pushing_the_same_definition_keeps_its_version(engine: Engine) -> None:
    text = "name: versions\nsteps: [{id: a, type: sys.no_action}]\n"
    first = await engine.run(engine.load_text(text))
    again = await engine.run(engine.load_text(text))
    changed = await engine.run(
        engine.load_text(text.replace("no_action", "no_action, input: {reason: x}"))
    )
    assert first["workflowVersion"] == again["workflowVersion"] == 1
    assert changed["workflowVersion"] == 2


async def test_a_finished_execution_cannot_be_moved_back(engine: Engine) -> None:
    from flowledger import ExecutionStatus, FlowledgerError
    from flowledger.runtime.runner import ExecutionRunner

    doc = await engine.run(engine.load_text("name: done\nsteps: [{id: a, type: sys.no_action}]\n"))
    row = await engine.store.get_execution(doc["id"])
    assert row is not None
    workflow = engine.load_text("name: done\nsteps: [{id: a, type: sys.no_action}]\n")
    assert engine._services is not None
    runner = ExecutionRunner(engine._services, workflow, row, int(row["lease_epoch"]))
    with pytest.raises(FlowledgerError, match="cannot move from CompletedWithNoActionTaken"):
        runner.lifecycle.set_status(ExecutionStatus.IN_PROGRESS)
