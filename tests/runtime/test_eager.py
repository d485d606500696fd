"""Steps' tasks started eagerly (runtime.eager), and the scheduler's turns around them."""

from __future__ import annotations

import asyncio
import selectors
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from flowledger import Engine, StepContext, StepRegistry, step_type
from flowledger.runtime import runner
from flowledger.runtime.eager import start_task
from tests.runtime.support import latest


async def test_a_coroutine_that_never_suspends_is_done_when_started() -> None:
    loop = asyncio.get_running_loop()
    launcher = asyncio.current_task()
    seen: list[asyncio.Task[Any] | None] = []

    async def quick() -> int:
        seen.append(asyncio.current_task())
        return 7

    task = start_task(loop, quick(), "quick")
    assert task.done() and task.result() == 7
    assert seen == [task]  # inside, the task is the current one, not its launcher
    assert asyncio.current_task() is launcher  # and the launcher is again afterwards
    assert task.get_name() == "quick"


async def test_a_coroutine_that_suspends_goes_on_in_its_own_task() -> None:
    loop = asyncio.get_running_loop()
    launcher = asyncio.current_task()
    seen: list[asyncio.Task[Any] | None] = []
    gate = loop.create_future()

    async def waits() -> str:
        seen.append(asyncio.current_task())
        await gate
        seen.append(asyncio.current_task())
        return "through"

    task = start_task(loop, waits(), "waits")
    assert not task.done() and seen == [task]
    assert asyncio.current_task() is launcher
    gate.set_result(None)
    assert await task == "through"
    assert seen == [task, task]


async def test_a_timeout_inside_cancels_the_step_and_not_its_launcher() -> None:
    """asyncio.timeout cancels the task current when it was entered: entered in the
    eager stretch, that must be the step's task, or the launcher is cancelled."""
    loop = asyncio.get_running_loop()

    async def times_out() -> str:
        try:
            async with asyncio.timeout(0.01):
                await asyncio.sleep(30)
        except TimeoutError:
            return "timed out"
        return "slept"

    task = start_task(loop, times_out(), "times out")
    assert await task == "timed out"
    await asyncio.sleep(0.02)  # the launcher (this test) is not cancelled meanwhile
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0


async def test_an_exception_in_the_eager_stretch_stays_in_the_task() -> None:
    loop = asyncio.get_running_loop()

    async def fails() -> None:
        raise ValueError("bad input")

    task = start_task(loop, fails(), "fails")
    assert task.done()
    with pytest.raises(ValueError, match="bad input"):
        task.result()


async def test_a_task_factory_starts_tasks_its_own_way() -> None:
    loop = asyncio.get_running_loop()
    made: list[asyncio.Task[Any]] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        made.append(asyncio.Task(coro, loop=loop, **kwargs))
        return made[-1]

    async def quick() -> int:
        return 1

    loop.set_task_factory(factory)
    try:
        task = start_task(loop, quick(), "made")
        assert not task.done()  # started the ordinary way: at the loop's next turn
        assert await task == 1 and made == [task] and task.get_name() == "made"
    finally:
        loop.set_task_factory(None)


class _Value(BaseModel):
    value: int = 0


@step_type("eager.add_one")
async def _add_one(data: _Value, ctx: StepContext) -> dict[str, Any]:
    return {"value": data.value + 1}


@step_type("eager.bounded_wait")
async def _bounded_wait(data: _Value, ctx: StepContext) -> dict[str, Any]:
    try:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(30)
    except TimeoutError:
        return {"value": -1}
    return {"value": data.value}


def _chain(steps: int) -> str:
    lines = [f"  - {{id: s{i}, type: eager.add_one, input: {{value: {i}}}}}" for i in range(steps)]
    return "name: chain\nsteps:\n" + "\n".join(lines) + "\n"


class _CountingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """Counts the event loop's turns: each asks its selector once."""

    turns = 0

    def select(self, timeout: float | None = None) -> Any:
        self.turns += 1
        return super().select(timeout)


def _turns_per_extra_step(tmp_path: Path) -> float:
    """Loop turns one more quick step of a chain run alone costs (two chains' difference,
    so the run's own start and end cancel out)."""
    selector = _CountingSelector()
    registry = StepRegistry.with_builtins()
    registry.register(_add_one)

    async def turns_of_chains() -> list[int]:
        counts = []
        async with Engine(f"sqlite:///{tmp_path / 'eager.db'}", registry=registry) as engine:
            for steps in (10, 60):
                workflow = engine.load_text(_chain(steps))
                before = selector.turns
                doc = await engine.run(workflow)
                assert doc["runtimeStatus"] == "Completed"
                assert latest(doc, f"s{steps - 1}")["outputData"] == {"value": steps}
                counts.append(selector.turns - before)
        return counts

    with asyncio.Runner(loop_factory=lambda: asyncio.SelectorEventLoop(selector)) as run:
        short, long = run.run(turns_of_chains())
    return (long - short) / 50


def test_a_chain_of_quick_steps_run_alone_needs_no_loop_turn_a_step(tmp_path: Path) -> None:
    # Started as plain tasks each step took two turns: its task's, then the scheduler's.
    assert _turns_per_extra_step(tmp_path) < 0.2


def test_a_chain_of_quick_steps_lets_the_loop_turn_after_yield_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "YIELD_AFTER", 0.0)  # every round has waited long enough
    assert _turns_per_extra_step(tmp_path) >= 1


async def test_a_handlers_own_timeout_across_a_suspension_ends_only_its_wait(
    tmp_path: Path,
) -> None:
    registry = StepRegistry.with_builtins()
    registry.register(_bounded_wait)
    registry.register(_add_one)
    text = """
name: bounded
steps:
  - {id: wait, type: eager.bounded_wait, input: {value: 5}}
  - {id: after, type: eager.add_one, input: {value: "{{ steps.wait.output.value }}"}}
"""
    async with Engine(f"sqlite:///{tmp_path / 'bounded.db'}", registry=registry) as engine:
        doc = await engine.run(engine.load_text(text))
    assert doc["runtimeStatus"] == "Completed"
    assert latest(doc, "wait")["outputData"] == {"value": -1}
    assert latest(doc, "after")["outputData"] == {"value": 0}
