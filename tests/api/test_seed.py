"""The seed's runs resource and instance-state view, as the seed's own clients use them:
POST a run, poll it until it is COMPLETED, read its states. Shapes pinned by JSON Schema
(the seed's types: UUIDs, epoch-millisecond integers, booleans, no extra properties)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from flowledger.app import App, ListStates, RerunExecution, RetryExecution, SubmitInput
from flowledger.errors import InvalidInputError
from tests.api.conftest import Service, fresh_database
from tests.api.helpers import HELLO, error, push, unique
from tests.api.serve import Server, served
from tests.pg import BACKENDS

#: tests/api/serve.py's ``hello``, under a name of the test's own.
SEED_HELLO = """
name: {name}
steps:
  - {{id: greet, type: sys.transform, input: {{value: "hi {{{{ input.name }}}}"}}}}
"""

ID = {"type": "string", "minLength": 1}
TIME = {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"}
MAYBE_TIME = {"anyOf": [TIME, {"type": "null"}]}
RUN_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "workflowId", "jobRunId", "createdByUserId", "status",
                 "currentStateName", "createdAt", "updatedAt", "completedAt"],
    "properties": {
        "id": ID,
        "workflowId": ID,
        "jobRunId": {"anyOf": [ID, {"type": "null"}]},
        "createdByUserId": ID,
        "status": {"enum": ["PENDING", "IN_PROGRESS", "AWAITING_USER_INPUT", "COMPLETED",
                            "COMPLETED_WITH_NO_ACTION_TAKEN", "FAILED", "CANCELLED"]},
        "currentStateName": {"type": ["string", "null"]},
        "createdAt": TIME,
        "updatedAt": TIME,
        "completedAt": MAYBE_TIME,
    },
}  # fmt: skip
UUID = {"type": "string", "format": "uuid"}
EPOCH_MS = {"type": "integer", "minimum": 1_000_000_000_000}
STATE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "workflowInstanceId", "workflowInstanceExecutionId",
                 "workflowDefinitionId", "stage", "timestamp", "exception"],
    "properties": {
        "id": UUID,
        "workflowInstanceId": UUID,
        "workflowInstanceExecutionId": UUID,
        "workflowDefinitionId": UUID,
        "stage": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "startedAt", "endedAt", "tasks", "variables"],
            "properties": {
                "name": {"type": "string"},
                "startedAt": EPOCH_MS,
                "endedAt": {"anyOf": [EPOCH_MS, {"type": "null"}]},
                "tasks": {"type": "array", "items": UUID, "minItems": 1},
                "variables": {"type": "object"},
            },
        },
        "timestamp": EPOCH_MS,
        "exception": {"type": "boolean"},
    },
}  # fmt: skip
CHECKER = jsonschema.FormatChecker()


def check(schema: dict[str, Any], value: Any) -> None:
    jsonschema.validate(value, schema, format_checker=CHECKER)


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server for the module's tests (a start costs seconds): each reads only the
    runs it made, or a workflow of its own (test_paging_runs_uses_cursors)."""
    folder = tmp_path_factory.mktemp(f"seed-{request.param}")
    with (
        fresh_database(request, request.param, folder) as db_url,
        served(db_url, folder) as running,
    ):
        yield running


def poll(server: Server, run_id: str, until: set[str]) -> dict[str, Any]:
    """The seed's client loop: GET the run until its status is one of ``until``."""
    with server.client("viewer") as client:
        deadline = time.monotonic() + 60
        while True:
            run = client.get(f"/api/v1/workflow-runs/{run_id}").json()
            check(RUN_SCHEMA, run)
            if run["status"] in until or time.monotonic() > deadline:
                return dict(run)
            time.sleep(0.1)


def test_the_seeds_polling_loop_sees_a_run_complete(server: Server) -> None:
    with server.client() as client:
        created = client.post(
            "/api/v1/workflow-runs", json={"workflowId": "hello", "input": {"name": "Ada"}}
        )
        assert created.status_code == 201, created.text
        run = created.json()
        check(RUN_SCHEMA, run)
        assert run["workflowId"] == "hello"
        assert run["createdByUserId"] == "api-token:t-operator"
        assert run["status"] in {"PENDING", "IN_PROGRESS", "COMPLETED"}
    done = poll(server, run["id"], {"COMPLETED"})
    assert done["status"] == "COMPLETED"
    assert done["completedAt"] is not None
    with server.client("viewer") as client:
        page = client.get("/api/v1/workflow-runs", params={"limit": 1}).json()
        assert set(page) == {"items", "nextCursor"}
        assert [r["id"] for r in page["items"]] == [run["id"]]
        for item in page["items"]:
            check(RUN_SCHEMA, item)
        filtered = client.get("/api/v1/workflow-runs", params={"status": "FAILED"}).json()
        assert filtered["items"] == []
        assert client.get("/api/v1/workflow-runs", params={"status": "Done"}).status_code == 422
        assert client.get("/api/v1/workflow-runs/nope").status_code == 404
        # a viewer may read but not start
        refused = client.post("/api/v1/workflow-runs", json={"workflowId": "hello"})
        assert refused.status_code == 403


def test_paging_runs_uses_cursors(server: Server) -> None:
    with server.client("admin") as admin:  # a workflow of its own: the server is shared
        name = push(admin, SEED_HELLO)
    with server.client() as client:
        ids = [
            client.post("/api/v1/workflow-runs", json={"workflowId": name, "input": {}}).json()[
                "id"
            ]
            for _ in range(3)
        ]
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2, "workflowId": name}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/api/v1/workflow-runs", params=params).json()
            seen += [r["id"] for r in page["items"]]
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(ids) and len(seen) == 3
        unknown = client.post("/api/v1/workflow-runs", json={"workflowId": "nope"})
        assert unknown.status_code == 404


def test_states_are_the_seeds_instance_states(server: Server) -> None:
    with server.client() as client:
        run = client.post("/api/v1/workflow-runs", json={"workflowId": "ask"}).json()
    poll(server, run["id"], {"AWAITING_USER_INPUT"})

    async def answer() -> None:
        async with App(server.db_url) as app:
            await app.executions.submit_input(SubmitInput(id=run["id"], step="approve", data={}))

    asyncio.run(answer())
    assert poll(server, run["id"], {"COMPLETED"})["status"] == "COMPLETED"
    with server.client("viewer") as client:
        states = client.get(f"/api/v1/executions/{run['id']}/states").json()
        execution = client.get(f"/api/v1/workflow-runs/{run['id']}").json()
    assert [s["stage"]["name"] for s in states] == ["approve", "after"]
    for state in states:
        check(STATE_SCHEMA, state)
        assert state["workflowInstanceId"] == run["id"] == execution["id"]
        assert state["exception"] is False
        assert state["stage"]["startedAt"] <= state["stage"]["endedAt"] <= state["timestamp"]
    assert len({s["workflowInstanceExecutionId"] for s in states}) == 1  # one pass
    assert len({s["id"] for s in states}) == 2
    with server.client("viewer") as client:  # ids are stable
        again = client.get(f"/api/v1/executions/{run['id']}/states").json()
        assert client.get("/api/v1/executions/nope/states").status_code == 404
        # Paged with limit/cursor as every list; without them, the list as SPEC has it.
        paged, cursor = [], None
        for _ in range(3):
            asked = {"limit": 1, **({"cursor": cursor} if cursor else {})}
            answer = client.get(f"/api/v1/executions/{run['id']}/states", params=asked)
            assert answer.status_code == 200, answer.text
            assert set(answer.json()) == {"items", "nextCursor"}
            paged += answer.json()["items"]
            cursor = answer.json()["nextCursor"]
            if cursor is None:
                break
        bad = client.get(f"/api/v1/executions/{run['id']}/states", params={"cursor": "x"})
        assert bad.status_code == 400
    assert [s["id"] for s in again] == [s["id"] for s in states]
    assert paged == states


FAILING = """\
name: flaky
variables: {tries: 0, notes: [a]}
steps:
  - {id: count, type: sys.set_variable, input: {name: tries, op: increment, value: 1}}
  - {id: note, type: sys.set_variable, after: [count], input: {name: notes, op: append, value: b}}
  - {id: boom, type: sys.fail, after: [note], input: {message: "no"}}
"""


async def test_a_retry_is_a_new_pass(db_url: str) -> None:
    async with App(db_url) as app:
        workflow = app.engine.load_text(FAILING, "flaky.yaml")
        execution_id = await app.engine.start(workflow, {}, hold=True)
        await app.engine.drive(execution_id)
        await app.executions.retry(RetryExecution(id=execution_id, settle=True))
        states = (await app.seed.states(ListStates(id=execution_id))).items
        first_page = await app.seed.states(ListStates(id=execution_id, limit=3))
        rest = await app.seed.states(ListStates(id=execution_id, cursor=first_page.next_cursor))
        other = await app.engine.start(workflow, {}, hold=True)
        with pytest.raises(InvalidInputError):  # a cursor is of its execution
            await app.seed.states(ListStates(id=other, cursor=first_page.next_cursor))
    # Paged, the same records in the same order: the next page starts after the last.
    assert len(first_page.items) == 3 and first_page.next_cursor is not None
    assert [*first_page.items, *rest.items] == states and rest.next_cursor is None
    for state in states:
        check(STATE_SCHEMA, state)
    passes = list(dict.fromkeys(s["workflowInstanceExecutionId"] for s in states))
    assert len(passes) == 2
    first = [s for s in states if s["workflowInstanceExecutionId"] == passes[0]]
    assert [s["stage"]["name"] for s in first] == ["count", "note", "boom"]
    assert [s["exception"] for s in first] == [False, False, True]
    assert first[0]["stage"]["variables"] == {"tries": 1, "notes": ["a"]}
    # An append's output holds what it added; the stage shows the whole list after it.
    assert first[1]["stage"]["variables"] == {"tries": 1, "notes": ["a", "b"]}
    second = [s for s in states if s["workflowInstanceExecutionId"] == passes[1]]
    assert [s["stage"]["name"] for s in second] == ["boom"]
    assert second[0]["exception"] is True
    assert uuid.UUID(second[0]["id"]) != uuid.UUID(first[2]["id"])


async def test_a_rerun_s_states_start_from_its_reused_steps(db_url: str) -> None:
    """A rerun's stages started from the definition's initial variables, as if its reused
    steps had set nothing, and each reused step was a stage that never ended."""
    async with App(db_url) as app:
        workflow = app.engine.load_text(FAILING, "flaky.yaml")
        execution_id = await app.engine.start(workflow, {}, hold=True)
        await app.engine.drive(execution_id)
        again = await app.executions.rerun(
            RerunExecution(id=execution_id, from_step="boom", settle=True)
        )
        states = (await app.seed.states(ListStates(id=again["id"]))).items
    for state in states:
        check(STATE_SCHEMA, state)
    assert [s["stage"]["name"] for s in states] == ["count", "note", "boom"]
    assert all(s["stage"]["endedAt"] is not None for s in states)
    assert [s["exception"] for s in states] == [False, False, True]
    assert states[0]["stage"]["variables"] == {"tries": 1, "notes": ["a"]}
    assert states[2]["stage"]["variables"] == {"tries": 1, "notes": ["a", "b"]}


PLUGIN = """
from pydantic import BaseModel
from flowledger import StepContext, step_type

class Some(BaseModel):
    n: int = 0

@step_type("seedtest.double")
async def double(data: Some, ctx: StepContext) -> dict:
    return {"n": data.n * 2}
"""
WITH_CUSTOM = """\
name: custom
variables: {seen: 0}
steps:
  - {id: twice, type: seedtest.double, input: {n: 2}}
  - {id: keep, type: sys.set_variable, after: [twice], input: {name: seen, value: 4}}
"""


async def test_states_need_no_plugin(tmp_path: Path) -> None:
    """An API node without the workers' plugins answered 422 "unknown step type" for the
    states of any execution that used a custom step; the document and events worked."""
    (tmp_path / "seed_plugin.py").write_text(PLUGIN)
    url = f"sqlite:///{tmp_path / 's.db'}"
    async with App(url, plugins=[str(tmp_path / "seed_plugin.py")]) as worker:
        workflow = worker.engine.load_text(WITH_CUSTOM, "custom.yaml")
        done = await worker.engine.run(workflow)
        assert done["runtimeStatus"] == "Completed", done["error"]
        expected = (await worker.seed.states(ListStates(id=done["id"]))).items
    async with App(url) as api_node:
        states = (await api_node.seed.states(ListStates(id=done["id"]))).items
    assert states == expected
    assert [s["stage"]["name"] for s in states] == ["twice", "keep"]
    assert states[-1]["stage"]["variables"] == {"seen": 4}


def test_a_run_with_an_idempotency_key_starts_once(service: Service) -> None:
    """The key was ignored: two POSTs with one key started two runs (tour 22C F2). It is
    the start's key, in one key space with POST /workflows/{name}/executions."""
    with service.client("admin") as admin, service.client("operator") as http:
        name = push(admin, HELLO)
        key = {"Idempotency-Key": unique("run")}
        body = {"workflowId": name, "input": {"who": "Ada"}}
        first = http.post("/api/v1/workflow-runs", json=body, headers=key)
        again = http.post("/api/v1/workflow-runs", json=body, headers=key)
        assert (first.status_code, again.status_code) == (201, 201), again.text
        assert again.json()["id"] == first.json()["id"]
        check(RUN_SCHEMA, again.json())
        started = http.post(f"/api/v1/workflows/{name}/executions", json={"input": body["input"]},
                            headers=key)  # fmt: skip
        assert (started.status_code, started.json()["id"]) == (201, first.json()["id"])
        other = {**body, "input": {"who": "Bob"}}
        conflict = error(http.post("/api/v1/workflow-runs", json=other, headers=key), 409)
        assert "with another input" in conflict["message"]
        bad = error(
            http.post(
                "/api/v1/workflow-runs",
                json=body,
                headers={"Idempotency-Key": "é".encode("latin-1")},
            ),
            422,
        )
        assert bad["details"]["field_path"] == ["Idempotency-Key"]
        runs = http.get("/api/v1/workflow-runs", params={"workflowId": name}).json()["items"]
        assert [r["id"] for r in runs] == [first.json()["id"]]
