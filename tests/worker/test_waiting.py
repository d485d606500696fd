"""An execution waiting for a person while timers move another branch on: one wait is
announced once (one ``execution.awaiting_input``, one delivery per subscription), the
status does not flip at each timer, and the execution stays claimable by any worker
(both databases, workers in this process sharing only the database)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest

from flowledger import Engine, StepRegistry
from flowledger.app import App
from flowledger.app.subscriptions import CreateSubscription, ListDeliveries
from flowledger.config import Settings
from flowledger.worker.worker import Worker, WorkerOptions
from tests.runtime.steps_for_tests import Recorder
from tests.worker.receiver import Receiver, receiver

FAST = WorkerOptions(
    concurrency=4, lease=timedelta(seconds=3), park_after=0.3, max_idle=0.05, drain_timeout=0.2
)

#: The tour's repro (a question beside a loop of short delays), then a step that the
#: first worker is stopped in, then a second question.
TYPING = """\
name: typing
steps:
  - {id: ask, type: sys.wait_for_input, after: [], input: {prompt: "note?"}}
  - id: ticker
    type: sys.loop
    after: []
    input: {items: [0, 1, 2, 3, 4, 5], concurrency: 1}
    steps:
      - {id: tick, type: sys.delay, input: {duration: 100ms}}
  - {id: held, type: test.slow, after: [ticker], input: {name: held, block_first: true, seconds: 0}}
  - {id: ask2, type: sys.wait_for_input, after: [held], input: {prompt: "again?"}}
"""


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as state:
        yield state


@pytest.fixture
async def engine(db_url: str, registry: StepRegistry) -> AsyncIterator[Engine]:
    settings = dataclasses.replace(Settings.from_env(), db_url=db_url)
    async with Engine(db_url, registry=registry, settings=settings) as eng:
        yield eng


async def _until(check: object, seconds: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await check():  # type: ignore[operator]
        assert loop.time() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.02)


async def test_one_question_is_announced_once_while_timers_move_another_branch(
    engine: Engine, hook: Receiver, recorder: Recorder
) -> None:
    """The tour: 6 timer wake-ups gave 6 ``execution.awaiting_input`` events (each a
    delivery) and 5 ``execution.resumed``, the status flipping each time."""
    app = App(engine=engine)
    sub = await app.subscriptions.create(
        CreateSubscription(url=hook.url, events=["execution.awaiting_input"])
    )
    execution_id = await engine.start(engine.load_text(TYPING, "typing.yaml"))
    seen: list[str] = []

    async def status() -> str:
        row = await engine.store.get_execution(execution_id)
        assert row is not None
        if not seen or seen[-1] != row["runtime_status"]:
            seen.append(row["runtime_status"])
        return str(row["runtime_status"])

    first = Worker(engine, FAST)
    task = asyncio.create_task(first.run())
    await _until(lambda: _called(recorder, "held"))  # the ticker is done; `held` runs
    row = await engine.store.get_execution(execution_id)
    assert row is not None and row["runtime_status"] == "AwaitingUserInput"
    # Should this process die now, its lease lapses and the row is claimable: an
    # AwaitingUserInput row is claimed once its wake_at has come (a claim clears it).
    assert row["lease_owner"] is not None and row["wake_at"] is not None
    assert row["wake_at"] <= engine.clock.now()
    first.stop()  # `held` never ends here: the drain gives up on it
    await task
    second = Worker(engine, FAST)
    task = asyncio.create_task(second.run())
    try:

        async def two_questions() -> bool:
            await status()
            doc = await engine.get_execution(execution_id)
            return len(doc["pendingInputs"]) == 2 and doc["runtimeStatus"] == "AwaitingUserInput"

        await _until(two_questions)
        kinds = Counter(e["kind"] for e in await engine.store.get_events(execution_id))
        # The first park, and the second question: nothing for the timers in between.
        assert kinds["execution.awaiting_input"] == 2
        assert kinds["execution.resumed"] == 0
        assert kinds["step.awaiting_input"] == 2
        deliveries = await app.subscriptions.deliveries(ListDeliveries(subscription_id=sub["id"]))
        assert [d["executionId"] for d in deliveries.items] == [execution_id] * 2
        assert "InProgress" not in seen[seen.index("AwaitingUserInput") :] if seen else True
        for step, data in (("ask", {"note": "a"}), ("ask2", {"note": "b"})):
            await engine.submit_input(execution_id, step, data)

        async def done() -> bool:
            return await status() == "Completed"

        await _until(done)
    finally:
        second.stop()
        await task
    events = await engine.store.get_events(execution_id)
    kinds = Counter(e["kind"] for e in events)
    # Back to InProgress once, when no person was waited for any more.
    assert kinds["execution.resumed"] == 1 and kinds["execution.awaiting_input"] == 2
    order = [e["kind"] for e in events if e["kind"].startswith("execution.")]
    assert order == [
        "execution.created",
        "execution.started",
        "execution.awaiting_input",
        "execution.awaiting_input",
        "execution.resumed",
        "execution.completed",
    ]
    assert recorder.calls["held"] == 2  # run again by the second worker


async def _called(recorder: Recorder, name: str) -> bool:
    return recorder.calls[name] > 0
