"""``join: first``: a step released by the first of its predecessors to complete, whose
race is then decided: what runs in it is cancelled, what has not started is disabled,
and a step that also feeds something else runs on (tour 25 M6: an OR join, a signal
that interrupts running work). On SQLite and PostgreSQL, across a restart too."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from typing import Any

import pytest
from pydantic import BaseModel

from flowledger import Engine, StepContext, StepError, StepRegistry, step_type
from tests.runtime.support import latest, running_worker, step_status, wait_until

OWNER = "test-process"


class Nothing(BaseModel):
    pass


@step_type("race.hang")
async def hang(data: Nothing, ctx: StepContext) -> dict[str, Any]:
    await asyncio.Event().wait()  # only a cancel ends it
    return {}


#: Calls of race.once_broken, by execution: its first fails, later ones pass.
CALLS: dict[str, int] = {}


@step_type("race.once_broken")
async def once_broken(data: Nothing, ctx: StepContext) -> dict[str, Any]:
    CALLS[ctx.execution_id] = CALLS.get(ctx.execution_id, 0) + 1
    if CALLS[ctx.execution_id] == 1:
        raise StepError("broken the first time", retryable=False)
    return {}


@pytest.fixture
def registry() -> StepRegistry:
    registry = StepRegistry.with_builtins()
    registry.register(hang)
    registry.register(once_broken)
    return registry


def _load(engine: Engine, text: str) -> Any:
    return engine.load_text(textwrap.dedent(text), "race.yaml")


async def _run(engine: Engine, text: str) -> dict[str, Any]:
    """Run to its end (or until only a person is waited for)."""
    return await engine.run(_load(engine, text))


async def _disabled_reasons(engine: Engine, execution_id: str) -> dict[str, Any]:
    return {
        e["stepId"]: (e["detail"] or {}).get("reason")
        for e in await engine.events(execution_id)
        if e["kind"] == "step.disabled"
    }


async def test_the_first_to_complete_releases_the_join_and_the_rest_of_the_race_is_stopped(
    engine: Engine,
) -> None:
    doc = await _run(
        engine,
        """
            name: race
            steps:
              - {id: fast, type: sys.delay, after: [], input: {duration: 100ms}}
              - {id: slow, type: race.hang, after: []}
              - {id: first_of_chain, type: race.hang, after: []}
              - {id: then_this, type: sys.transform, input: {value: 1}}
              - id: looping
                type: sys.loop
                after: []
                input: {items: [1, 2], concurrency: 2}
                steps: [{id: inner, type: race.hang}]
              - id: decide
                type: sys.transform
                after: [then_this, slow, looping, fast]  # the winner last: the rest had no run
                join: first
                input: {value: "{{ steps.fast.output.resumedAt is string }}"}
            output: "{{ steps.decide.output }}"
            """,
    )
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    assert doc["output"] is True
    # Running: cancelled, saying why. Not started: disabled when its turn came.
    slow = latest(doc, "slow")
    assert slow["status"] == "Cancelled"
    reason = "'fast' completed first, and 'decide' runs on it (join: first)"
    assert slow["error"]["message"] == reason
    assert step_status(doc, "first_of_chain") == "Cancelled"
    # A loop stops its iterations with it.
    assert step_status(doc, "looping") == "Cancelled"
    inner = [s["status"] for s in doc["steps"].values() if s["stepId"] == "inner"]
    assert inner == ["Cancelled", "Cancelled"]
    assert step_status(doc, "then_this") == "Disabled"
    # Disabled as any step whose predecessors did not complete is.
    assert await _disabled_reasons(engine, doc["id"]) == {"then_this": None}
    assert [s["attempt"] for s in doc["steps"].values() if s["stepId"] == "decide"] == [1]


async def test_a_rerun_after_a_decided_race_keeps_it_decided(engine: Engine) -> None:
    text = """
        name: rerun_race
        steps:
          - {id: fast, type: sys.delay, after: [], input: {duration: 50ms}}
          - {id: slow, type: race.hang, after: []}
          - {id: decide, type: sys.transform, after: [fast, slow], join: first,
             input: {value: "{{ steps.slow.status }}"}}
          - {id: after_it, type: sys.transform, input: {value: 2}}
        output: "{{ steps.decide.output }}"
        """
    doc = await _run(engine, text)
    assert doc["output"] == "Cancelled"
    for from_step in ("decide", "after_it"):
        rerun_id = await engine.rerun(doc["id"], from_step)
        again = await engine.drive(rerun_id)
        assert again["runtimeStatus"] == "Completed", (from_step, again["error"])
        assert again["output"] == "Cancelled"
        # The loser is the original's, copied: nothing raced again.
        assert [s["status"] for s in again["steps"].values() if s["stepId"] == "slow"] == [
            "Cancelled"
        ]
    # From the loser itself the race is run again, and decided again.
    rerun_id = await engine.rerun(doc["id"], "slow")
    again = await engine.drive(rerun_id)
    assert again["runtimeStatus"] == "Completed", again["error"]
    assert step_status(again, "slow") == "Cancelled"


async def test_a_child_that_loses_a_race_is_cancelled_with_its_step(engine: Engine) -> None:
    await engine.push(
        _load(
            engine,
            """
            name: slow_child
            steps:
              - {id: long, type: sys.delay, input: {duration: 1h}}
            """,
        )
    )
    execution_id = await engine.start(
        _load(
            engine,
            """
            name: child_or_timer
            steps:
              - {id: child, type: sys.sub_workflow, after: [], input: {workflow: slow_child}}
              - {id: timer, type: sys.delay, after: [], input: {duration: 200ms}}
              - {id: decide, type: sys.transform, after: [child, timer], join: first,
                 input: {value: "{{ steps.child.status }}"}}
            output: "{{ steps.decide.output }}"
            """,
        )
    )
    # Children run as a worker runs them (the engine drives the parent, its children too).
    async with running_worker(engine):
        doc = await wait_until(engine, execution_id, lambda d: d["runtimeStatus"] == "Completed")
        [child] = latest(doc, "child")["childWorkflowExecutions"]
        cancelled = await wait_until(
            engine, child["id"], lambda d: d["runtimeStatus"] == "Cancelled"
        )
    assert doc["output"] == "Cancelled"
    assert step_status(cancelled, "long") == "Cancelled"


async def test_a_retry_leaves_a_decided_race_decided(engine: Engine) -> None:
    """The execution failed after its race: the retry runs the failed step again, and
    not the question the race withdrew."""
    doc = await _run(
        engine,
        """
        name: retry_race
        steps:
          - {id: fast, type: sys.delay, after: [], input: {duration: 50ms}}
          - {id: ask, type: sys.wait_for_input, after: [], input: {prompt: "Go?"}}
          - {id: decide, type: sys.transform, after: [fast, ask], join: first,
             input: {value: 1}}
          - {id: then_fails, type: race.once_broken}
        """,
    )
    assert doc["runtimeStatus"] == "Failed"
    await engine.retry(doc["id"])
    again = await engine.drive(doc["id"])
    assert again["runtimeStatus"] == "Completed", again["error"]
    assert again["pendingInputs"] == []
    assert [s["status"] for s in again["steps"].values() if s["stepId"] == "ask"] == ["Cancelled"]


async def test_a_step_that_also_feeds_another_is_not_in_the_race(engine: Engine) -> None:
    doc = await _run(
        engine,
        """
            name: shared
            steps:
              - {id: fast, type: sys.transform, after: [], input: {value: 1}}
              - {id: nap, type: sys.delay, after: [], input: {duration: 200ms}}
              - {id: decide, type: sys.transform, after: [fast, nap], join: first, input: {value: 0}}
              - {id: later, type: sys.transform, after: [nap], input: {value: 2}}
            """,
    )
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    assert {s: step_status(doc, s) for s in ("fast", "nap", "decide", "later")} == {
        "fast": "Completed",
        "nap": "Completed",  # it feeds 'later' too: it ran on
        "decide": "Completed",
        "later": "Completed",
    }
    assert latest(doc, "decide")["completedAt"] < latest(doc, "nap")["completedAt"]


async def test_a_persons_answer_interrupts_the_work_it_races(engine: Engine) -> None:
    workflow = _load(
        engine,
        """
        name: interrupt
        steps:
          - {id: work, type: sys.delay, after: [], input: {duration: 1h}}
          - id: stop
            type: sys.wait_for_input
            after: []
            input: {prompt: "Stop the work?"}
          - {id: decide, type: sys.transform, after: [work, stop], join: first,
             input: {value: "{{ steps.stop.output }}"}}
        output: "{{ steps.decide.output }}"
        """,
    )
    execution_id = await engine.start(workflow)
    # Driven as a worker would: the hour-long timer keeps it going while a person is asked.
    driving = asyncio.create_task(engine.drive(execution_id))
    await wait_until(engine, execution_id, lambda d: d["runtimeStatus"] == "AwaitingUserInput")
    await engine.submit_input(execution_id, "stop", {"why": "not needed"})
    done = await asyncio.wait_for(driving, 20)
    assert done["runtimeStatus"] == "Completed", done["error"]
    assert done["output"] == {"why": "not needed"}
    assert step_status(done, "work") == "Cancelled"


async def test_work_that_ends_first_withdraws_the_question_it_raced(engine: Engine) -> None:
    doc = await _run(
        engine,
        """
            name: withdrawn
            steps:
              - {id: work, type: sys.delay, after: [], input: {duration: 300ms}}
              - {id: stop, type: sys.wait_for_input, after: [], input: {prompt: "Stop?"}}
              - {id: decide, type: sys.transform, after: [work, stop], join: first, input: {value: 0}}
            """,
    )
    if doc["runtimeStatus"] == "AwaitingUserInput":  # run returns while a person is asked
        doc = await engine.settle(doc["id"])
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    assert step_status(doc, "stop") == "Cancelled"
    assert doc["pendingInputs"] == []
    kinds = [e["kind"] for e in await engine.events(doc["id"])]
    assert kinds.index("execution.awaiting_input") < kinds.index("execution.resumed")


async def test_each_iteration_of_a_loop_decides_its_own_race(engine: Engine) -> None:
    doc = await _run(
        engine,
        """
            name: per_item
            steps:
              - id: each
                type: sys.loop
                input: {items: [1, 2, 3], concurrency: 3}
                steps:
                  - {id: fast, type: sys.delay, after: [], input: {duration: 50ms}}
                  - {id: slow, type: race.hang, after: []}
                  - {id: decide, type: sys.transform, after: [fast, slow], join: first,
                     input: {value: "{{ loop.each.item }}"}}
            """,
    )
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    by_step: dict[str, list[str]] = {}
    for step in doc["steps"].values():
        by_step.setdefault(step["stepId"], []).append(step["status"])
    assert by_step["decide"] == ["Completed"] * 3
    assert by_step["slow"] == ["Cancelled"] * 3


async def test_a_tolerated_failure_decides_nothing_the_first_answer_wins(
    engine: Engine,
) -> None:
    doc = await _run(
        engine,
        """
        name: providers
        steps:
          - {id: broken, type: sys.fail, after: [], continue_on_error: true,
             input: {message: down, code: Down}}
          - {id: answers, type: sys.delay, after: [], input: {duration: 100ms}}
          - {id: decide, type: sys.transform, after: [broken, answers], join: first,
             input: {value: "{{ steps.answers.status }}"}}
          - {id: late, type: sys.fail, after: [], continue_on_error: true,
             input: {message: "also down"}}
          - {id: last_resort, type: sys.transform, after: [late, broken], join: first,
             input: {value: "{{ steps.late.error.message }}"}}
        """,
    )
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    # 'broken' failed first, and 'decide' waited for the answer.
    assert latest(doc, "decide")["outputData"] == "Completed"
    # None completed: once both ended, it ran after their tolerated failures.
    assert latest(doc, "last_resort")["outputData"] == "also down"


async def test_a_join_whose_predecessors_all_are_disabled_is_disabled(engine: Engine) -> None:
    doc = await _run(
        engine,
        """
            name: none
            steps:
              - {id: a, type: sys.transform, after: [], when: false, input: {value: 1}}
              - {id: b, type: sys.transform, after: [], when: false, input: {value: 2}}
              - {id: decide, type: sys.transform, after: [a, b], join: first, input: {value: 3}}
            """,
    )
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    assert step_status(doc, "decide") == "Disabled"


async def test_a_decided_race_stays_decided_across_a_restart(
    db_url: str, registry: StepRegistry
) -> None:
    """'cut' had not started when the race was decided; its other predecessor, a durable
    delay, ends after a restart, and the rebuilt run still disables it."""
    text = """
        name: restart
        steps:
          - {id: fast, type: sys.transform, after: [], input: {value: 1}}
          - {id: nap, type: sys.delay, after: [], input: {duration: 600ms}}
          - {id: cut, type: sys.transform, after: [nap], input: {value: 2}}
          - {id: later, type: sys.transform, after: [nap], input: {value: 3}}
          - {id: decide, type: sys.transform, after: [fast, cut], join: first, input: {value: 4}}
        """
    async with Engine(db_url, registry=registry, owner=OWNER) as engine:
        execution_id = await engine.start(_load(engine, text))
        task = asyncio.create_task(engine.drive(execution_id))

        def decided(doc: dict[str, Any]) -> bool:
            return (
                step_status(doc, "decide") == "Completed"
                and step_status(doc, "nap") == "InProgress"
            )

        await wait_until(engine, execution_id, decided)
        task.cancel()  # what a crash looks like to the database: nothing more is written
        with contextlib.suppress(asyncio.CancelledError):
            await task
    async with Engine(db_url, registry=registry, owner=OWNER) as engine:
        doc = await engine.drive(execution_id)
        reasons = await _disabled_reasons(engine, execution_id)
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    assert {s: step_status(doc, s) for s in ("nap", "cut", "later", "decide")} == {
        "nap": "Completed",
        "cut": "Disabled",
        "later": "Completed",
        "decide": "Completed",
    }
    assert [s["attempt"] for s in doc["steps"].values() if s["stepId"] == "decide"] == [1]
    # Its predecessor completed: the race is why it did not run.
    assert reasons == {"cut": "the join: first it leads into ran first"}
