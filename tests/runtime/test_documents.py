"""The execution, step and event documents of SPEC §4, field by field, in Python and the CLI.

The schemas below are the contract: every SPEC field present (``null``, never missing),
the exact key sets (SPEC fields plus the documented extensions), value types, and
timestamps as ISO-8601 UTC with milliseconds and ``Z``. ``childWorkflowExecutions`` is
a list of ``{"id": ...}`` objects; a bare string fails the schema.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from flowledger import Engine
from tests.conftest import REPO
from tests.inprocess import run_in_process
from tests.runtime.support import yaml

TIMESTAMP = {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"}
MAYBE_TIMESTAMP = {"anyOf": [TIMESTAMP, {"type": "null"}]}
ID = {"type": "string", "minLength": 1}
MAYBE_ID = {"type": ["string", "null"]}
STEP_STATUS = {"enum": ["NotStarted", "InProgress", "Completed", "Disabled", "Failed", "Cancelled"]}
EXECUTION_STATUS = {
    "enum": [
        "NotStarted",
        "InProgress",
        "AwaitingUserInput",
        "Completed",
        "CompletedWithNoActionTaken",
        "Failed",
        "Cancelled",
    ]
}
ERROR = {"anyOf": [{"type": "null"}, {"type": "object", "required": ["message"]}]}


def _closed(properties: dict[str, Any]) -> dict[str, Any]:
    """An object with exactly these keys, all required."""
    return {
        "type": "object",
        "properties": properties,
        "required": sorted(properties),
        "additionalProperties": False,
    }


STEP_SCHEMA = _closed(
    {
        "id": ID,
        "type": {"type": "string"},
        "stepId": {"type": "string"},
        "status": STEP_STATUS,
        "attempt": {"type": "integer", "minimum": 1},
        "startedAt": MAYBE_TIMESTAMP,
        "completedAt": MAYBE_TIMESTAMP,
        "failedAt": MAYBE_TIMESTAMP,
        "dueAt": MAYBE_TIMESTAMP,
        "outputData": {},
        "error": ERROR,
        "loop": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
        "childWorkflowExecutions": {"type": "array", "items": _closed({"id": ID})},
        "inputData": {},  # extension: the rendered input
    }
)

_EXECUTION_FIELDS: dict[str, Any] = {
    "id": ID,
    "correlationId": ID,
    "parentWorkflowExecutionId": MAYBE_ID,
    "rootWorkflowExecutionId": MAYBE_ID,
    "workflowTemplateVersionId": ID,
    "workflowName": {"type": "string"},
    "workflowVersion": {"type": "integer", "minimum": 1},
    "runtimeStatus": EXECUTION_STATUS,
    "currentStateName": {"type": ["string", "null"]},
    "startedAt": MAYBE_TIMESTAMP,
    "completedAt": MAYBE_TIMESTAMP,
    "failedAt": MAYBE_TIMESTAMP,
    "lastActivityAt": TIMESTAMP,
    "createdBy": {"type": "string"},
    "context": {"type": "object"},
    "trigger": {"type": "object", "required": ["type"]},
    "input": {},  # extension: the trigger's arguments or body (templates' ``input``)
    "variables": {"type": "object"},
    "output": {},
    "error": ERROR,
    "rerunOf": MAYBE_ID,  # extension
    "jobRunId": MAYBE_ID,  # extension
    "createdAt": TIMESTAMP,  # extension
}
#: As a list shows it (no steps).
EXECUTION_SUMMARY_SCHEMA = _closed(_EXECUTION_FIELDS)
#: As ``get_execution`` and ``executions show --json`` show it.
EXECUTION_SCHEMA = _closed(
    {
        **_EXECUTION_FIELDS,
        "steps": {"type": "object", "additionalProperties": STEP_SCHEMA},
        "pendingInputs": {"type": "array"},  # extension
    }
)
EVENT_SCHEMA = _closed(
    {
        "seq": {"type": "integer", "minimum": 1},
        "at": TIMESTAMP,
        "kind": {"type": "string", "pattern": r"^(execution|step)\.[a-z_]+$"},
        "stepExecutionId": MAYBE_ID,
        "stepId": {"type": ["string", "null"]},
        "attempt": {"type": ["integer", "null"], "minimum": 1},
        "status": {"anyOf": [STEP_STATUS, EXECUTION_STATUS, {"type": "null"}]},
        "detail": {"type": ["object", "null"]},
    }
)

CHILD = yaml(
    """
    name: doc_child
    steps:
      - {id: double, type: sys.transform, input: {value: "{{ input.n * 2 }}"}}
    output: "{{ steps.double.output }}"
    """
)
PARENT = yaml(
    """
    name: doc_parent
    steps:
      - id: each
        type: sys.loop
        input: {items: [1, 2]}
        steps:
          - {id: add, type: sys.set_variable, input: {name: total, op: increment, value: 1}}
      - id: fan
        type: sys.sub_workflow
        input: {workflow: doc_child, items: [1, 2, 3], input: {n: "{{ loop.fan.item }}"}}
      - id: skipped
        type: sys.no_action
        when: "{{ false }}"
    variables: {total: 0}
    output: "{{ variables.total }}"
    """
)


def check(schema: dict[str, Any], document: Any) -> None:
    problems = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in Draft202012Validator(schema).iter_errors(document)
    ]
    assert not problems, problems


def check_execution(doc: dict[str, Any]) -> None:
    check(EXECUTION_SCHEMA, doc)
    fan = next(s for s in doc["steps"].values() if s["stepId"] == "fan")
    assert len(fan["childWorkflowExecutions"]) == 3
    assert {s["stepId"] for s in doc["steps"].values() if s["loop"] == {"each": 1}} == {"add"}


def test_the_schema_refuses_bare_child_ids() -> None:
    step = {
        "id": "s1",
        "type": "sys.sub_workflow",
        "stepId": "fan",
        "status": "Completed",
        "attempt": 1,
        "startedAt": "2026-11-22T10:00:00.000Z",
        "completedAt": "2026-11-22T10:00:01.000Z",
        "failedAt": None,
        "dueAt": None,
        "outputData": {},
        "error": None,
        "loop": {},
        "childWorkflowExecutions": [{"id": "c1"}],
        "inputData": {},
    }
    check(STEP_SCHEMA, step)
    with pytest.raises(AssertionError):
        check(STEP_SCHEMA, {**step, "childWorkflowExecutions": ["c1"]})
    with pytest.raises(AssertionError):
        check(STEP_SCHEMA, {**step, "startedAt": "2026-11-22T10:00:00+00:00"})
    with pytest.raises(AssertionError):
        check(STEP_SCHEMA, {k: v for k, v in step.items() if k != "dueAt"})


async def test_documents_match_spec_section_4(engine: Engine) -> None:
    await engine.push(engine.load_text(CHILD))
    doc = await engine.run(engine.load_text(PARENT))
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    check_execution(doc)
    fan = next(s for s in doc["steps"].values() if s["stepId"] == "fan")
    children = {c["id"] for c in fan["childWorkflowExecutions"]}
    for child_id in children:
        child = await engine.get_execution(child_id)
        check(EXECUTION_SCHEMA, child)
        assert child["parentWorkflowExecutionId"] == doc["id"]
    assert children == {e["id"] for e in fan["outputData"]["executions"]}
    for summary in await engine.list_executions():
        check(EXECUTION_SUMMARY_SCHEMA, summary)

    events = await engine.events(doc["id"])
    for event in events:
        check(EVENT_SCHEMA, event)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    by_kind = {e["kind"]: e for e in events}
    # Execution transitions carry the status they move to; step events the step's.
    assert by_kind["execution.created"]["status"] == "NotStarted"
    assert by_kind["execution.started"]["status"] == "InProgress"
    assert by_kind["execution.completed"]["status"] == "Completed"
    assert by_kind["step.completed"]["status"] == "Completed"
    assert by_kind["step.disabled"]["status"] == "Disabled"
    assert by_kind["step.started"]["attempt"] == 1


def test_cli_show_json_has_the_same_shapes(tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text(CHILD)
    (tmp_path / "parent.yaml").write_text(PARENT)
    env = {**os.environ, "FLOWLEDGER_DB": f"sqlite:///{tmp_path / 'cli.db'}"}

    def cli(*args: str) -> str:
        # In this process (tests/inprocess.py): the documents are the subject, not the
        # process; three cold starts took most of this file's time.
        done = run_in_process(args, env=env, cwd=REPO)
        assert done.returncode == 0, done.stderr
        return done.stdout

    cli("workflows", "push", str(tmp_path / "child.yaml"))
    ran = json.loads(cli("run", str(tmp_path / "parent.yaml"), "--json"))
    check_execution(ran)
    shown = json.loads(cli("executions", "show", ran["id"], "--json"))
    check_execution(shown)
    assert shown["steps"] == ran["steps"]
