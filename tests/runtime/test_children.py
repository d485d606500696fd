"""runtime.children: a parent that waits for people through its children (both databases,
a worker in this process sharing only the database)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from pydantic import BaseModel

from flowledger import Engine, StepContext, step_type
from flowledger.app import App
from flowledger.app.subscriptions import CreateSubscription
from flowledger.runtime import inbox
from tests.runtime.support import running_worker, wait_until, yaml

ASKS_TWICE = yaml(
    """
    name: asks-twice
    steps:
      - {id: first, type: sys.wait_for_input, input: {prompt: "one?"}}
      - {id: second, type: sys.wait_for_input, input: {prompt: "two?"}}
    output: "{{ steps.second.output }}"
    """
)
PARENT = yaml(
    """
    name: asks-twice-parent
    steps:
      - {id: kid, type: sys.sub_workflow, input: {workflow: asks-twice}}
    output: "{{ steps.kid.output.executions[0].output }}"
    """
)


async def test_a_childs_second_question_is_announced_by_its_parent_as_the_first_was(
    engine: Engine,
) -> None:
    """The child resumed after its first answer without telling the parent, which stayed
    AwaitingUserInput: the child's second question moved nothing in the parent, so it had
    no second ``execution.awaiting_input`` and no second delivery."""
    app = App(engine=engine)
    sub = await app.subscriptions.create(
        CreateSubscription(
            url="http://127.0.0.1:9/hook",
            events=["execution.awaiting_input"],
            workflow="asks-twice-parent",
        )
    )
    await engine.push(engine.load_text(ASKS_TWICE))

    async def announced(parent_id: str) -> tuple[int, int]:
        kinds = Counter(e["kind"] for e in await engine.store.get_events(parent_id))
        sent = await engine.store.list_deliveries(sub["id"], 100)
        return kinds["execution.awaiting_input"], len(sent)

    async def history(execution_id: str) -> list[tuple[str, Any]]:
        return [(e["kind"], e["detail"]) for e in await engine.store.get_events(execution_id)]

    async with running_worker(engine):
        parent_id = await engine.start(engine.load_text(PARENT))
        for number, step in enumerate(("first", "second"), start=1):
            for _ in range(500):
                doc = await engine.get_execution(parent_id)
                asks = [p["stepId"] for p in doc["pendingInputs"]]
                asking = doc["runtimeStatus"] == "AwaitingUserInput" and asks == [step]
                if asking and await announced(parent_id) == (number, number):
                    break
                await asyncio.sleep(0.02)
            assert doc["runtimeStatus"] == "AwaitingUserInput" and asks == [step], doc
            # The event and its delivery are written in the commit of the status.
            assert await announced(parent_id) == (number, number), await history(parent_id)
            [pending] = doc["pendingInputs"]
            await engine.submit_input(pending["executionId"], step, {"n": number})
        done = await wait_until(engine, parent_id, lambda d: d["runtimeStatus"] == "Completed")
    assert done["output"] == {"n": 2}
    assert await announced(parent_id) == (2, 2), await history(parent_id)  # none twice


MIDDLE = yaml(
    """
    name: asks-twice-middle
    steps:
      - {id: inner, type: sys.sub_workflow, input: {workflow: asks-twice}}
    output: "{{ steps.inner.output.executions[0].output }}"
    """
)


async def test_a_grandchilds_second_question_read_at_once_with_its_answer_is_announced(
    engine: Engine,
) -> None:
    """Each parent takes the grandchild's resume and its next question in one look (no
    worker: each is settled here in turn), so none moves through InProgress: each
    announces the new question as a further wait, and tells its own parent."""
    await engine.push(engine.load_text(ASKS_TWICE))
    await engine.push(engine.load_text(MIDDLE))
    top = await engine.run(engine.load_text(PARENT.replace("asks-twice}", "asks-twice-middle}")))
    assert top["runtimeStatus"] == "AwaitingUserInput"
    [pending] = top["pendingInputs"]
    grandchild = pending["executionId"]
    middle = (await engine.get_execution(grandchild))["parentWorkflowExecutionId"]

    async def announcements(execution_id: str) -> int:
        events = await engine.store.get_events(execution_id)
        return sum(e["kind"] == "execution.awaiting_input" for e in events)

    await engine.submit_input(grandchild, "first", {"n": 1})
    assert (await engine.settle(grandchild))["runtimeStatus"] == "AwaitingUserInput"
    for execution_id in (middle, top["id"]):
        assert (await engine.settle(execution_id))["runtimeStatus"] == "AwaitingUserInput"
        assert await announcements(execution_id) == 2
    [pending] = (await engine.get_execution(top["id"]))["pendingInputs"]
    assert (pending["executionId"], pending["stepId"]) == (grandchild, "second")

    await engine.submit_input(grandchild, "second", {"n": 2})
    assert (await engine.settle(grandchild))["runtimeStatus"] == "Completed"
    done = await engine.get_execution(top["id"])  # settled with the child that ended
    assert (done["runtimeStatus"], done["output"]) == ("Completed", {"n": 2})
    assert [await announcements(e) for e in (grandchild, middle, top["id"])] == [2, 2, 2]


async def test_a_parent_acts_once_on_each_signal_of_its_child(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parent taken up while awaiting input took its signals, then looked again before
    the round that consumes them was committed (a child it ran here had ended: a poke),
    read the same signals and acted on each twice: the child's second question announced
    twice (1 in 13 runs), ``signals_taken`` past ``signals_sent``. No pause between two
    looks here, so the second look always comes before that commit."""
    await engine.push(engine.load_text(ASKS_TWICE))
    parent = await engine.run(engine.load_text(PARENT))
    [pending] = parent["pendingInputs"]
    await engine.submit_input(pending["executionId"], "first", {"n": 1})
    assert (await engine.settle(pending["executionId"]))["runtimeStatus"] == "AwaitingUserInput"
    monkeypatch.setattr(inbox, "CHILD_POLL_INTERVAL", 0.0)
    assert (await engine.settle(parent["id"]))["runtimeStatus"] == "AwaitingUserInput"
    row = await engine.store.get_execution(parent["id"])
    assert row is not None and row["signals_taken"] == row["signals_sent"]
    events = await engine.store.get_events(parent["id"])
    assert sum(e["kind"] == "execution.awaiting_input" for e in events) == 2


class _Gate:
    """Holds a step until the test opens it (test.held's steps)."""

    entered = asyncio.Event()
    opened = asyncio.Event()


class _Nothing(BaseModel):
    pass


@step_type("test.held")
async def _held(data: _Nothing, ctx: StepContext) -> dict[str, Any]:
    _Gate.entered.set()
    await _Gate.opened.wait()
    return {}


ASKS_TWICE_HELD = yaml(
    """
    name: asks-twice-held
    steps:
      - {id: first, type: sys.wait_for_input, input: {prompt: "one?"}}
      - {id: hold, type: test.held}
      - {id: second, type: sys.wait_for_input, input: {prompt: "two?"}}
    """
)
ASKS_BESIDE_ITS_CHILD = yaml(
    """
    name: asks-beside-its-child
    steps:
      - {id: own, type: sys.wait_for_input, input: {prompt: "yours?"}}
      - {id: kid, type: sys.sub_workflow, after: [], input: {workflow: asks-twice-held}}
    """
)


async def test_a_childs_next_question_is_announced_though_its_resume_was_read_apart(
    engine: Engine,
) -> None:
    """A parent awaits input for a question of its own and one of its child's; the child
    is answered and asks again. The parent stays AwaitingUserInput throughout (its own
    question still waits), reads the child's resume in one look and its new question in
    the next: that question should be announced (one more ``execution.awaiting_input``,
    one more delivery), as ``another_wait`` announces a further question of its own."""
    _Gate.entered, _Gate.opened = asyncio.Event(), asyncio.Event()
    engine.registry.register(_held)
    await engine.push(engine.load_text(ASKS_TWICE_HELD))
    parent = await engine.run(engine.load_text(ASKS_BESIDE_ITS_CHILD))
    assert parent["runtimeStatus"] == "AwaitingUserInput"
    [first] = [p["executionId"] for p in parent["pendingInputs"] if p["stepId"] == "first"]

    async def announcements() -> int:
        events = await engine.store.get_events(parent["id"])
        return sum(e["kind"] == "execution.awaiting_input" for e in events)

    async def signals() -> tuple[int, int]:
        row = await engine.store.get_execution(parent["id"])
        assert row is not None
        return int(row["signals_sent"]), int(row["signals_taken"])

    # Its own question's, and the child's unless the child asked before that one was
    # announced (one announcement then covered both).
    before = await announcements()
    assert before in (1, 2)
    await engine.submit_input(first, "first", {})
    child = asyncio.create_task(engine.settle(first))
    async with asyncio.timeout(20):  # bounds against hanging, not speed claims
        await _Gate.entered.wait()  # the child resumed (its parent told) and is held
        sent, taken = await signals()
        assert sent == taken + 1  # the resume, not read yet
        settling = asyncio.create_task(engine.settle(parent["id"]))
        while (await signals())[1] < sent:  # the parent took the resume in a look of its own
            await asyncio.sleep(0.01)
        assert await announcements() == before  # its own question still waits: nothing new
        _Gate.opened.set()  # the child asks its second question
        assert (await child)["runtimeStatus"] == "AwaitingUserInput"
        doc = await settling
    assert doc["runtimeStatus"] == "AwaitingUserInput"
    assert sorted(p["stepId"] for p in doc["pendingInputs"]) == ["own", "second"]
    assert await announcements() == before + 1
