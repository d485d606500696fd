"""runtime.eager: a step's first step runs at once, yet everything sees one task throughout."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest

from flowledger.runtime.eager import start_eagerly

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="caller's")


class Ends:
    def __init__(self) -> None:
        self.tasks: list[asyncio.Future[Any]] = []
        self.seen = asyncio.Event()

    def __call__(self, task: asyncio.Future[Any]) -> None:
        self.tasks.append(task)
        self.seen.set()


async def test_work_that_returns_at_once_is_answered_by_a_done_future_in_its_own_task() -> None:
    caller = asyncio.current_task()
    inside: list[object] = []

    async def work() -> int:
        inside.append(asyncio.current_task())
        VAR.set("the step's")
        return 42

    ends = Ends()
    running = start_eagerly(work(), "step a", ends)
    assert running.done() and running.result() == 42
    assert inside[0] is not None and inside[0] is not caller
    assert asyncio.current_task() is caller  # handed back
    assert VAR.get() == "caller's"  # the step's context is its own
    await asyncio.sleep(0)
    assert ends.tasks == []  # nothing to tell: the done future was the answer


async def test_work_that_waits_goes_on_in_the_same_task_and_tells_the_turn_it_ends() -> None:
    tasks: list[object] = []
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def work() -> str:
        tasks.append(asyncio.current_task())
        VAR.set("the step's")
        got = await gate
        tasks.append(asyncio.current_task())
        return got + " " + VAR.get()

    ends = Ends()
    running = start_eagerly(work(), "step b", ends)
    assert not running.done()
    assert isinstance(running, asyncio.Task) and running.get_name() == "step b"
    gate.set_result("opened")
    await ends.seen.wait()
    assert ends.tasks == [running]
    assert await running == "opened the step's"
    assert tasks == [running, running]
    assert VAR.get() == "caller's"


async def test_a_timeout_entered_in_the_first_step_cancels_the_step_not_the_caller() -> None:
    async def work() -> None:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(10)

    ends = Ends()
    running = start_eagerly(work(), "step c", ends)
    await ends.seen.wait()
    with pytest.raises(TimeoutError):
        await running


async def test_an_error_in_the_first_step_is_the_done_futures() -> None:
    async def work() -> None:
        raise ValueError("bad input")

    running = start_eagerly(work(), "step d", Ends())
    assert running.done()
    assert isinstance(running.exception(), ValueError)


@pytest.mark.parametrize("before_its_first_turn", [True, False])
async def test_cancelling_the_task_reaches_the_work_where_it_waits(
    before_its_first_turn: bool,
) -> None:
    seen: list[str] = []

    async def work() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    ends = Ends()
    running = start_eagerly(work(), "step e", ends)
    if not before_its_first_turn:
        await asyncio.sleep(0)
    running.cancel()
    await ends.seen.wait()
    assert seen == ["cancelled"]
    assert ends.tasks == [running]
    with pytest.raises(asyncio.CancelledError):
        await running
