"""An execution's input (its trigger) that holds a secret's value is stored redacted, like
every other copy of it; the process that has the input as it was sent runs with it.

Before, variables, step rows, events and outputs held ``***secrets.API_KEY***`` while the
execution's ``trigger.arguments`` kept the value in clear, in the row and the document.
A placeholder is never turned back into the value (a caller could send one to have it
filled in), so a process that reads the input from the database reads the placeholder,
as it reads a variable.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from flowledger import Engine, StepContext, StepRegistry, step_type
from flowledger.codec import placeholder
from tests.runtime.support import running_worker, wait_for_status, yaml

SECRET = "sk-live-SUPERSECRET-abcdef123456"
SENT = f"pre {SECRET} post"
STORED = f"pre {placeholder('API_KEY')} post"

#: What each ``test.see_input`` step read from ``input.tag``, in order.
SEEN: list[Any] = []


class SeeInput(BaseModel):
    token: str = ""
    tag: Any = None


@step_type("test.see_input", secret_fields=["token"])
async def see_input(data: SeeInput, ctx: StepContext) -> dict[str, Any]:
    SEEN.append(data.tag)
    return {"ok": True}


#: Sends the secret (so it is declared) and reads the input, before and after a wait.
TAGGED = yaml(
    """
    name: tagged
    steps:
      - {id: first, type: test.see_input, input: {token: "{{ secrets.API_KEY }}", tag: "{{ input.tag }}"}}
      - {id: ask, type: sys.wait_for_input, input: {prompt: go?}}
      - {id: later, type: test.see_input, input: {tag: "{{ input.tag }}"}}
    """
)


@pytest.fixture(autouse=True)
def _opened(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("FLOWLEDGER_SECRET_API_KEY", SECRET)
    SEEN.clear()
    yield
    SEEN.clear()


@pytest.fixture
def registry() -> StepRegistry:
    registry = StepRegistry.with_builtins()
    registry.register(see_input)
    return registry


async def _stored_trigger(engine: Engine, execution_id: str) -> dict[str, Any]:
    row = await engine.store.get_execution(execution_id)
    assert row is not None
    trigger: dict[str, Any] = json.loads(row["trigger"])
    return trigger


async def _nowhere_in_clear(engine: Engine, execution_id: str) -> None:
    doc = await engine.get_execution(execution_id)
    events = await engine.events(execution_id)
    assert SECRET not in json.dumps([doc, events, await engine.list_executions()])


async def test_a_run_stores_its_input_redacted_and_runs_with_it_as_sent(
    db_url: str, registry: StepRegistry
) -> None:
    async with Engine(db_url, registry=registry) as first:
        doc = await first.run(first.load_text(TAGGED), {"tag": SENT, "n": 1})
        assert doc["runtimeStatus"] == "AwaitingUserInput", doc["error"]
        assert doc["trigger"]["arguments"] == {"tag": STORED, "n": 1}
        assert (await _stored_trigger(first, doc["id"]))["arguments"] == {"tag": STORED, "n": 1}
        await _nowhere_in_clear(first, doc["id"])
    assert SEEN == [SENT]
    # Resumed by another process (a restart): it reads the stored input, as it reads
    # the variables, with the placeholder where the value was.
    async with Engine(db_url, registry=registry) as second:
        await second.submit_input(doc["id"], "ask", {"ok": True})
        done = await second.settle(doc["id"])
        assert done["runtimeStatus"] == "Completed", done["error"]
        await _nowhere_in_clear(second, doc["id"])
    assert SEEN == [SENT, STORED]


async def test_a_queued_start_stores_its_input_redacted_at_once(
    db_url: str, registry: StepRegistry
) -> None:
    async with Engine(db_url, registry=registry) as engine:
        execution_id = await engine.start(engine.load_text(TAGGED), {"tag": SENT})
        assert (await _stored_trigger(engine, execution_id))["arguments"] == {"tag": STORED}
        await _nowhere_in_clear(engine, execution_id)
        async with running_worker(engine):
            await wait_for_status(engine, execution_id, "AwaitingUserInput")
    assert SEEN == [STORED]  # the worker read it from the database


async def test_a_start_that_cannot_read_the_secret_is_redacted_by_its_first_round(
    db_url: str, registry: StepRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The start's process stores the input as sent; the runner that reads the secrets
    stores it redacted in its first round, and runs with it as it was sent."""
    monkeypatch.delenv("FLOWLEDGER_SECRET_API_KEY")
    async with Engine(db_url, registry=registry) as engine:
        execution_id = await engine.start(engine.load_text(TAGGED), {"tag": SENT})
        assert (await _stored_trigger(engine, execution_id))["arguments"] == {"tag": SENT}
        monkeypatch.setenv("FLOWLEDGER_SECRET_API_KEY", SECRET)
        doc = await engine.drive(execution_id)
        assert doc["runtimeStatus"] == "AwaitingUserInput", doc["error"]
        assert (await _stored_trigger(engine, execution_id))["arguments"] == {"tag": STORED}
        await _nowhere_in_clear(engine, execution_id)
    assert SEEN == [SENT]


async def test_a_child_s_input_is_redacted_by_its_parent_s_secrets(
    db_url: str, registry: StepRegistry
) -> None:
    """The child declares no secret: the parent, which writes its row, redacts it."""
    async with Engine(db_url, registry=registry) as engine:
        child = yaml(
            """
            name: child
            steps:
              - {id: read, type: test.see_input, input: {tag: "{{ input.tag }}"}}
            """
        )
        await engine.push(engine.load_text(child))
        parent = yaml(
            """
            name: parent
            steps:
              - {id: send, type: test.see_input, input: {token: "{{ secrets.API_KEY }}"}}
              - {id: sub, type: sys.sub_workflow, input: {workflow: child, input: {tag: "{{ input.tag }}"}}}
            """
        )
        doc = await engine.run(engine.load_text(parent), {"tag": SENT})
        assert doc["runtimeStatus"] == "Completed", doc["error"]
        [child_id] = [e["id"] for e in await engine.list_executions() if e["id"] != doc["id"]]
        assert (await _stored_trigger(engine, child_id))["arguments"] == {"tag": STORED}
        for execution_id in (doc["id"], child_id):
            await _nowhere_in_clear(engine, execution_id)
    assert SEEN == [None, STORED]  # the child reads its input from its row
