"""Save and reload: stop the engine mid-execution, rebuild from the database, finish the same."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import textwrap
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from flowledger import Engine, StepRegistry
from flowledger.config import ConfigError, Settings
from flowledger.runtime import recovery
from flowledger.runtime.recovery import CRASH_MESSAGE
from tests.conftest import statuses
from tests.runtime.steps_for_tests import Recorder

OWNER = "test-process"


async def _until(
    engine: Engine, execution_id: str, check: Callable[[dict[str, Any]], bool]
) -> None:
    for _ in range(500):
        doc = await engine.get_execution(execution_id)
        if check(doc):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the execution never reached the expected state")


async def _stop(task: asyncio.Task[Any]) -> None:
    """What a crash looks like to the database: the process just stops writing."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _interrupt(
    db_url: str,
    registry: StepRegistry,
    text: str,
    check: Callable[[dict[str, Any]], bool],
    *,
    after_event: str | None = None,
) -> str:
    """Start an execution, let it run until ``check`` holds (and, when given, an event of
    kind ``after_event`` is in its history), then stop the process cold."""
    async with Engine(db_url, registry=registry, owner=OWNER) as engine:
        execution_id = await engine.start(engine.load_text(text))
        task = asyncio.create_task(engine.drive(execution_id))
        await _until(engine, execution_id, check)
        if after_event is not None:
            await _until_event(engine, execution_id, after_event)
        await _stop(task)
    return execution_id


async def _until_event(engine: Engine, execution_id: str, kind: str) -> None:
    for _ in range(500):
        if any(e["kind"] == kind for e in await engine.events(execution_id)):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {kind} event was ever committed")


def _step(doc: dict[str, Any], step_id: str) -> list[dict[str, Any]]:
    return sorted(
        (s for s in doc["steps"].values() if s["stepId"] == step_id), key=lambda s: s["attempt"]
    )


async def test_a_durable_delay_survives_a_restart_and_nothing_reruns(
    db_url: str, registry: StepRegistry, recorder: Recorder
) -> None:
    text = textwrap.dedent(
        """
        name: sleeper
        steps:
          - {id: first, type: test.flaky, input: {name: first}}
          - {id: nap, type: sys.delay, input: {duration: 400ms}}
          - {id: second, type: test.flaky, input: {name: second}}
        """
    )
    execution_id = await _interrupt(
        db_url,
        registry,
        text,
        lambda d: any(
            s["stepId"] == "nap" and s["status"] == "InProgress" for s in d["steps"].values()
        ),
        # A delay's start and its suspension are two commits: a stop between them would
        # (rightly) run the delay again, which is not what this test is about.
        after_event="step.suspended",
    )
    async with Engine(db_url, registry=registry, owner=OWNER) as engine:
        doc = await engine.drive(execution_id)
    assert doc["runtimeStatus"] == "Completed"
    assert recorder.calls == {"first": 1, "second": 1}
    nap = _step(doc, "nap")
    assert len(nap) == 1 and nap[0]["attempt"] == 1
    assert nap[0]["outputData"]["resumedAt"] >= nap[0]["startedAt"]


async def test_a_step_in_flight_at_a_crash_reruns_with_the_next_attempt(
    db_url: str, registry: StepRegistry, recorder: Recorder
) -> None:
    text = textwrap.dedent(
        """
        name: inflight
        steps:
          - {id: before, type: test.flaky, input: {name: before}}
          - {id: work, type: test.slow, input: {name: work, block_first: true}}
        output: "{{ steps.work.output.attempt }}"
        """
    )
    execution_id = await _interrupt(
        db_url,
        registry,
        text,
        # The handler was called (it blocks there), not only its start committed: else the
        # rerun's call would be the first, and block for good.
        lambda d: (
            recorder.calls["work"] >= 1
            and any(
                s["stepId"] == "work" and s["status"] == "InProgress" for s in d["steps"].values()
            )
        ),
    )
    async with Engine(db_url, registry=registry, owner=OWNER) as engine:
        doc = await engine.drive(execution_id)
        events = await engine.events(execution_id)
    assert doc["runtimeStatus"] == "Completed"
    assert doc["output"] == 2
    work = _step(doc, "work")
    assert [(s["attempt"], s["status"]) for s in work] == [(1, "Failed"), (2, "Completed")]
    assert work[0]["error"]["message"] == CRASH_MESSAGE
    assert recorder.calls["before"] == 1
    assert len(set(recorder.keys["work"])) == 1  # same idempotency key after the crash
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


async def test_a_loop_interrupted_midway_finishes_every_item_once(
    db_url: str, registry: StepRegistry, recorder: Recorder
) -> None:
    text = textwrap.dedent(
        """
        name: loop_restart
        variables: {total: 0}
        steps:
          - id: each
            type: sys.loop
            input: {items: [0, 1, 2, 3, 4, 5], concurrency: 2}
            steps:
              - {id: work, type: test.slow, input: {name: "w{{ loop.each.item }}", seconds: 0.01, block_first: "{{ loop.each.item == 3 }}"}}
              - {id: add, type: sys.set_variable, input: {name: total, op: increment, value: "{{ loop.each.item }}"}}
        output: "{{ steps.each.output.results | map(attribute='work') | map(attribute='value') | list }}"
        """
    )
    execution_id = await _interrupt(
        db_url,
        registry,
        text,
        lambda d: (
            recorder.calls["w3"] >= 1  # its handler blocks (see the test above)
            and any(
                s["stepId"] == "work" and s["loop"] == {"each": 3} and s["status"] == "InProgress"
                for s in d["steps"].values()
            )
        ),
    )
    async with Engine(db_url, registry=registry, owner=OWNER) as engine:
        doc = await engine.drive(execution_id)
    assert doc["runtimeStatus"] == "Completed"
    assert doc["output"] == [f"w{i}" for i in range(6)]
    assert doc["variables"]["total"] == 15  # each increment recorded exactly once
    adds = [s for s in doc["steps"].values() if s["stepId"] == "add"]
    assert sorted(s["loop"]["each"] for s in adds) == list(range(6))
    for i in range(6):
        rows = [
            s for s in doc["steps"].values() if s["stepId"] == "work" and s["loop"] == {"each": i}
        ]
        # At-least-once: a handler runs again only when its earlier attempt was cut by the crash
        # (an attempt whose start was committed just before the crash may never have called it).
        crashed = [r for r in rows if r["status"] == "Failed"]
        assert all(r["error"]["message"] == CRASH_MESSAGE for r in crashed)
        assert len(rows) - len(crashed) == 1
        assert 1 <= recorder.calls[f"w{i}"] <= len(rows)
    assert recorder.calls["w3"] == 2
    assert statuses(doc)["each"] == "Completed"


async def test_a_step_cut_again_and_again_is_failed_after_waits_that_grow(
    db_url: str, registry: StepRegistry, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step that takes its process down each time (a segfault, an out-of-memory kill)
    took down every worker that claimed its execution, for ever: now each re-run waits
    longer, and the fifth cut fails the step."""
    monkeypatch.setattr(
        recovery, "CRASH_BACKOFF", tuple(timedelta(milliseconds=ms) for ms in (0, 10, 20, 40))
    )
    text = "name: poison\nsteps: [{id: p, type: test.slow, input: {name: p, seconds: 3600}}]\n"

    def attempt_running(n: int) -> Callable[[dict[str, Any]], bool]:
        # Its handler called too: an attempt's start is committed before its handler runs,
        # and a cut between the two (a loaded machine) left one call short of five.
        return lambda d: (
            recorder.calls["p"] >= n
            and any(s["attempt"] == n and s["status"] == "InProgress" for s in d["steps"].values())
        )

    execution_id = await _interrupt(db_url, registry, text, attempt_running(1))
    for cut in range(1, recovery.MAX_CRASHES):
        async with Engine(db_url, registry=registry, owner=OWNER) as engine:
            task = asyncio.create_task(engine.drive(execution_id))
            await _until(engine, execution_id, attempt_running(cut + 1))
            await _stop(task)
    async with Engine(db_url, registry=registry, owner=OWNER) as engine:
        doc = await engine.drive(execution_id)
        events = await engine.events(execution_id)
    assert doc["runtimeStatus"] == "Failed"
    attempts = _step(doc, "p")
    assert [(s["attempt"], s["status"]) for s in attempts] == [(n, "Failed") for n in range(1, 6)]
    assert all(s["error"]["message"].startswith(CRASH_MESSAGE) for s in attempts)
    assert "5 times: it is not run again" in doc["error"]["message"]
    assert recorder.calls["p"] == 5
    waits = [e["detail"]["delayMs"] for e in events if e["kind"] == "step.retry_scheduled"]
    assert len(waits) == 3 and waits == sorted(waits)  # the first re-run went at once


async def test_how_many_cuts_fail_a_step_is_a_setting_and_the_error_says_how_to_go_on(
    db_url: str, registry: StepRegistry, recorder: Recorder
) -> None:
    """A well-behaved step whose processes were killed from outside (a crash loop of
    something else, deploys) was failed after five cuts, the error blaming the step.
    FLOWLEDGER_MAX_STEP_CUTS sets the budget, and the error says both causes and that
    ``executions retry`` runs it again."""
    text = "name: cut\nsteps: [{id: p, type: test.slow, input: {name: p, seconds: 3600}}]\n"
    settings = dataclasses.replace(Settings.from_env({}), max_step_cuts=2)

    def attempt_running(n: int) -> Callable[[dict[str, Any]], bool]:
        return lambda d: (
            recorder.calls["p"] >= n
            and any(s["attempt"] == n and s["status"] == "InProgress" for s in d["steps"].values())
        )

    execution_id = await _interrupt(db_url, registry, text, attempt_running(1))
    async with Engine(db_url, registry=registry, owner=OWNER, settings=settings) as engine:
        task = asyncio.create_task(engine.drive(execution_id))
        await _until(engine, execution_id, attempt_running(2))  # the first cut: again
        await _stop(task)
    async with Engine(db_url, registry=registry, owner=OWNER, settings=settings) as engine:
        doc = await engine.drive(execution_id)
    assert doc["runtimeStatus"] == "Failed"
    said = doc["error"]["message"]
    assert "2 times: it is not run again" in said
    assert "stopped from outside" in said and "flowledger executions retry" in said
    assert Settings.from_env({"FLOWLEDGER_MAX_STEP_CUTS": "0"}).max_step_cuts == 0
    with pytest.raises(ConfigError, match="FLOWLEDGER_MAX_STEP_CUTS must be a whole number"):
        Settings.from_env({"FLOWLEDGER_MAX_STEP_CUTS": "-1"})


async def test_the_document_rebuilds_from_the_database_alone(
    db_url: str, registry: StepRegistry
) -> None:
    text = "name: rebuild\nsteps: [{id: a, type: sys.transform, input: {value: 1}}]\n"
    async with Engine(db_url, registry=registry) as engine:
        doc = await engine.run(engine.load_text(text))
    async with Engine(db_url, registry=registry) as engine:
        assert await engine.get_execution(doc["id"]) == doc


async def test_a_retry_backoff_survives_a_restart(
    db_url: str, registry: StepRegistry, recorder: Recorder
) -> None:
    text = textwrap.dedent(
        """
        name: backoff
        steps:
          - id: flaky
            type: test.flaky
            input: {fail_times: 1, name: flaky}
            retry: {max_attempts: 2, backoff: fixed, initial_delay: 600ms, jitter: false}
        """
    )
    execution_id = await _interrupt(
        db_url,
        registry,
        text,
        lambda d: any(
            s["stepId"] == "flaky" and s["attempt"] == 2 and s["status"] == "NotStarted"
            for s in d["steps"].values()
        ),
    )
    async with Engine(db_url, registry=registry, owner=OWNER) as engine:
        doc = await engine.drive(execution_id)
        events = await engine.events(execution_id)
    assert doc["runtimeStatus"] == "Completed"
    assert recorder.calls["flaky"] == 2
    scheduled = next(e for e in events if e["kind"] == "step.retry_scheduled")
    second = _step(doc, "flaky")[1]
    # The second attempt waited for the backoff recorded before the restart, not a new one.
    assert second["startedAt"] >= scheduled["detail"]["wakeAt"]


async def test_a_no_action_before_a_restart_still_ends_the_execution_without_action(
    db_url: str, registry: StepRegistry
) -> None:
    # The scheduler asks the completed steps' kinds when the execution completes, so a
    # sys.no_action that completed before the restart still counts (it used to be a flag
    # set in memory, lost with the process).
    text = textwrap.dedent(
        """
        name: idle_then_nap
        steps:
          - {id: idle, type: sys.no_action, input: {reason: nothing new}}
          - {id: nap, type: sys.delay, input: {duration: 2s}}
        """
    )
    # 2 s, not 300 ms: on a loaded machine the delay ended before the poll saw it waiting.
    execution_id = await _interrupt(
        db_url,
        registry,
        text,
        lambda d: any(
            s["stepId"] == "nap" and s["status"] == "InProgress" for s in d["steps"].values()
        ),
        after_event="step.suspended",
    )
    async with Engine(db_url, registry=registry, owner=OWNER) as engine:
        doc = await engine.drive(execution_id)
    assert doc["runtimeStatus"] == "CompletedWithNoActionTaken"
