"""A run here (`flowledger run`, Engine.run/drive) returns AwaitingUserInput only once
nothing but waits for people is left: branches that wait on a timer or a child go on
first (before, a delay's branch was left unrun behind another branch's question)."""

from __future__ import annotations

import asyncio

import pytest

from flowledger import Engine, StepRegistry
from flowledger.runtime import driving as driving_module
from flowledger.testing import VirtualClock
from tests.runtime.support import latest, yaml

PERSON_AND_DELAY = yaml(
    """
    name: person-and-delay
    variables: {after_nap: false}
    steps:
      - id: ask
        type: sys.wait_for_input
        after: []
        due: 2d
        input: {prompt: "Go on?"}
      - id: nap
        type: sys.delay
        after: []
        input: {duration: 1s}
      - id: mark
        type: sys.set_variable
        after: [nap]
        input: {name: after_nap, value: true}
    """
)


async def test_a_delay_beside_a_person_runs_before_the_run_returns(engine: Engine) -> None:
    doc = await engine.run(engine.load_text(PERSON_AND_DELAY))
    assert doc["runtimeStatus"] == "AwaitingUserInput"
    assert latest(doc, "nap")["status"] == "Completed"
    assert latest(doc, "mark")["status"] == "Completed"
    assert doc["variables"]["after_nap"] is True
    assert latest(doc, "ask")["status"] == "InProgress"  # its due time (2d) held nothing
    kinds = [e["kind"] for e in await engine.events(doc["id"])]
    assert kinds.count("execution.awaiting_input") == 1  # announced once, not per round


async def test_a_retry_back_off_beside_a_person_runs_before_the_run_returns(
    engine: Engine,
) -> None:
    text = yaml(
        """
        name: person-and-retry
        steps:
          - id: ask
            type: sys.wait_for_input
            after: []
            input: {prompt: "Go on?"}
          - id: flaky
            type: test.flaky
            after: []
            input: {fail_times: 1}
            retry: {max_attempts: 2, initial_delay: 1s}
        """
    )
    doc = await engine.run(engine.load_text(text))
    assert doc["runtimeStatus"] == "AwaitingUserInput"
    flaky = latest(doc, "flaky")
    assert (flaky["attempt"], flaky["status"]) == (2, "Completed")


async def test_a_running_child_beside_a_person_ends_before_the_run_returns(
    engine: Engine,
) -> None:
    child = yaml(
        """
        name: napper
        steps:
          - {id: nap, type: sys.delay, input: {duration: 1s}}
        output: done
        """
    )
    parent = yaml(
        """
        name: person-and-child
        steps:
          - id: ask
            type: sys.wait_for_input
            after: []
            input: {prompt: "Go on?"}
          - id: child
            type: sys.sub_workflow
            after: []
            input: {workflow: napper}
        """
    )
    await engine.push(engine.load_text(child))
    doc = await engine.run(engine.load_text(parent))
    assert doc["runtimeStatus"] == "AwaitingUserInput"
    step = latest(doc, "child")
    assert step["status"] == "Completed"
    [ran] = step["outputData"]["executions"]
    assert (ran["runtimeStatus"], ran["output"]) == ("Completed", "done")


async def test_a_child_s_delay_beside_its_own_question_runs_before_the_run_returns(
    db_url: str, registry: StepRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parent awaits input through its child as soon as the child asks; the child's
    other branch (a delay) ran on for CHILD_GRACE (10 s), then was cut. The grace is
    none here, so only a wait for the child shows; a virtual clock skips the two days."""
    monkeypatch.setattr(driving_module, "CHILD_GRACE", 0.0)
    child = yaml(
        """
        name: asker
        variables: {napped: false}
        steps:
          - {id: ask, type: sys.wait_for_input, after: [], input: {prompt: "Go on?"}}
          - {id: nap, type: sys.delay, after: [], input: {duration: 2d}}
          - {id: mark, type: sys.set_variable, input: {name: napped, value: true}}
        """
    )
    parent = "name: parent\nsteps: [{id: child, type: sys.sub_workflow, input: {workflow: asker}}]"
    clock = VirtualClock()
    async with Engine(db_url, registry=registry, clock=clock) as engine:
        await engine.push(engine.load_text(child))
        async with clock.skipping():
            doc = await asyncio.wait_for(engine.run(engine.load_text(parent)), 60)
        assert doc["runtimeStatus"] == "AwaitingUserInput"
        [pending] = doc["pendingInputs"]
        asker = await engine.get_execution(pending["executionId"])
    assert asker["runtimeStatus"] == "AwaitingUserInput"
    assert asker["variables"] == {"napped": True}
    assert latest(asker, "nap")["status"] == "Completed"
