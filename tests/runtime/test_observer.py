"""The observer seam: events in commit order, attempts, claims, takeovers; never breaking."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

import pytest

from flowledger import Engine, StepRegistry
from flowledger.runtime.observer import (
    BaseObserver,
    Claim,
    CommittedEvents,
    ExecutionFinished,
    Observer,
    StepAttempt,
    Takeover,
)
from tests.runtime.steps_for_tests import Recorder
from tests.runtime.support import running_worker, wait_for_status, yaml


class Recording(BaseObserver):
    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def events_committed(self, batch: CommittedEvents) -> None:
        self.seen.append(("events", batch))

    def step_attempt_started(self, attempt: StepAttempt) -> None:
        self.seen.append(("started", attempt))

    def step_attempt_finished(self, attempt: StepAttempt) -> None:
        self.seen.append(("finished", attempt))

    def execution_finished(self, finished: ExecutionFinished) -> None:
        self.seen.append(("ended", finished))

    def execution_claimed(self, claim: Claim) -> None:
        self.seen.append(("claimed", claim))

    def lease_taken_over(self, takeover: Takeover) -> None:
        self.seen.append(("takeover", takeover))

    def of(self, kind: str) -> list[Any]:
        return [payload for seen_kind, payload in self.seen if seen_kind == kind]


class Raising(BaseObserver):
    def __init__(self) -> None:
        self.calls = 0

    def events_committed(self, batch: CommittedEvents) -> None:
        self.calls += 1
        raise RuntimeError("observer bug")

    def step_attempt_finished(self, attempt: StepAttempt) -> None:
        raise RuntimeError("another observer bug")


FLAKY = yaml(
    """
    name: flaky
    steps:
      - id: shaky
        type: test.flaky
        input: {fail_times: 1, name: shaky}
        retry: {max_attempts: 2, backoff: fixed, initial_delay: 5ms, jitter: false}
      - {id: after, type: sys.transform, input: {value: 1}}
    """
)


def test_the_base_observer_is_an_observer() -> None:
    observer: Observer = BaseObserver()  # mypy checks it matches the Protocol
    observer.execution_claimed(Claim("e", "me", 1))


async def test_events_attempts_and_the_end_in_commit_order(engine: Engine) -> None:
    recording = Recording()
    engine.add_observer(recording)
    doc = await engine.run(engine.load_text(FLAKY))
    assert doc["runtimeStatus"] == "Completed", doc["error"]

    # Every committed event, once, in seq order, as the stored history has them.
    batches = recording.of("events")
    assert {b.execution_id for b in batches} == {doc["id"]}
    seen = [e for b in batches for e in b.events]
    stored = await engine.events(doc["id"])
    assert seen == [e for e in stored if e["kind"] != "execution.created"]
    assert [e["seq"] for e in seen] == sorted(e["seq"] for e in seen)

    started = recording.of("started")
    finished = recording.of("finished")
    assert [(a.step_id, a.attempt, a.status) for a in started] == [
        ("shaky", 1, "InProgress"),
        ("shaky", 2, "InProgress"),
        ("after", 1, "InProgress"),
    ]
    assert [(a.step_id, a.attempt, a.status, a.will_retry) for a in finished] == [
        ("shaky", 1, "Failed", True),
        ("shaky", 2, "Completed", False),
        ("after", 1, "Completed", False),
    ]
    assert finished[0].error == "attempt 1 failed on purpose"
    assert all(a.duration is not None and a.duration >= 0 for a in finished)
    # An attempt's start is told before its end, and the end of the execution last.
    order = [(k, getattr(p, "step_id", None)) for k, p in recording.seen if k != "events"]
    assert order.index(("started", "shaky")) < order.index(("finished", "shaky"))
    assert recording.seen[-1] == ("ended", ExecutionFinished(doc["id"], "Completed", ANY_TIME))

    [claim] = recording.of("claimed")
    assert claim == Claim(doc["id"], engine.owner, claim.epoch)
    assert recording.of("takeover") == []  # it was created held by this engine


class _AnyTime:
    def __eq__(self, other: object) -> bool:
        return other is not None

    def __hash__(self) -> int:
        return 0


ANY_TIME: Any = _AnyTime()


async def test_an_observer_that_raises_breaks_nothing(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    raising, recording = Raising(), Recording()
    engine.add_observer(raising)
    engine.add_observer(recording)
    calls: list[str] = []
    engine.on_events(lambda execution_id, events: calls.append(execution_id))
    with caplog.at_level(logging.ERROR, logger="flowledger.runtime.observer"):
        doc = await engine.run(engine.load_text(FLAKY))
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    assert raising.calls > 1  # called every time, though it raised each time
    assert recording.of("ended")  # the observers after it were told everything
    assert calls and set(calls) == {doc["id"]}  # on_events is an observer like the others
    failures = [r for r in caplog.records if r.name == "flowledger.runtime.observer"]
    # Logged once per observer and callback, with the execution it was about.
    assert len(failures) == 2
    assert {r.execution_id for r in failures} == {doc["id"]}  # type: ignore[attr-defined]
    assert all(r.action == "observe" for r in failures)  # type: ignore[attr-defined]


async def test_a_failing_on_events_callback_is_named_with_its_error(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """The log line said ``observer <...EventCallbackObserver object at 0x...> failed``:
    neither the callback nor what it raised (tour 23 F15)."""

    def forward_to_queue(execution_id: str, events: list[dict[str, Any]]) -> None:
        raise ConnectionError("queue is down")

    engine.on_events(forward_to_queue)
    with caplog.at_level(logging.ERROR, logger="flowledger.runtime.observer"):
        doc = await engine.run(engine.load_text(FLAKY))
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    [failure] = [r for r in caplog.records if r.name == "flowledger.runtime.observer"]
    assert failure.getMessage() == (
        "observer on_events callback tests.runtime.test_observer."
        "test_a_failing_on_events_callback_is_named_with_its_error.<locals>.forward_to_queue "
        "failed in events_committed: ConnectionError: queue is down "
        "(ignored; further failures are not logged)"
    )


async def test_drive_reports_taking_over_a_lapsed_lease(
    db_url: str, registry: StepRegistry
) -> None:
    recording = Recording()
    async with Engine(db_url, registry=registry, observers=[recording]) as engine:
        workflow = engine.load_text(FLAKY.replace("fail_times: 1", "fail_times: 0"))
        execution_id = await engine.start(workflow)
        ghost = await engine.store.acquire_lease(execution_id, "ghost:1:dead", timedelta(0))
        assert ghost is not None
        await asyncio.sleep(0.05)  # its lease has lapsed
        doc = await engine.drive(execution_id)
    assert doc["runtimeStatus"] == "Completed"
    [claim] = recording.of("claimed")
    assert claim.execution_id == execution_id and claim.epoch == ghost + 1
    assert recording.of("takeover") == [Takeover(execution_id, "ghost:1:dead", engine.owner)]


async def test_a_worker_reports_claims_and_takeovers(
    db_url: str, registry: StepRegistry, recorder: Recorder
) -> None:
    text = yaml(
        """
        name: takeover
        steps:
          - {id: work, type: test.slow, input: {seconds: 0, name: work, block_first: true}}
        """
    )
    second = yaml(
        """
        name: plain
        steps: [{id: only, type: sys.transform, input: {value: 1}}]
        """
    )
    lease = timedelta(seconds=1)
    async with Engine(db_url, registry=registry, lease=lease, owner="first:1:x") as first:
        execution_id = await first.start(first.load_text(text))
        epoch = await first.store.acquire_lease(execution_id, first.owner, lease)
        assert epoch is not None
        dying = asyncio.create_task(first.run_owned(execution_id))
        while recorder.calls["work"] == 0:  # its start is committed; then the process "dies"
            await asyncio.sleep(0.01)
        dying.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await dying
    recording = Recording()
    async with Engine(db_url, registry=registry, lease=lease, observers=[recording]) as engine:
        plain_id = await engine.start(engine.load_text(second))
        async with running_worker(engine):
            await wait_for_status(engine, plain_id, "Completed")
            doc = await wait_for_status(engine, execution_id, "Completed")
    assert sorted(s["attempt"] for s in doc["steps"].values()) == [1, 2]
    claimed = {c.execution_id for c in recording.of("claimed")}
    assert claimed == {plain_id, execution_id}
    assert all(c.owner == engine.owner for c in recording.of("claimed"))
    # The first attempt was left in flight by a holder that stopped: a takeover, once.
    assert recording.of("takeover") == [Takeover(execution_id, None, engine.owner)]
    crashed = [a for a in recording.of("finished") if a.execution_id == execution_id]
    assert [(a.attempt, a.status, a.will_retry) for a in crashed] == [
        (1, "Failed", True),
        (2, "Completed", False),
    ]
    assert crashed[0].duration is None  # its start was seen by the process that died


NESTED = """
name: nested
steps:
  - id: rows
    type: sys.loop
    input: {items: [1, 2]}
    steps:
      - id: cells
        type: sys.loop
        input: {items: [1, 2, 3]}
        steps:
          - {id: cell, type: sys.transform, input: {value: "{{ loop.cells.item }}"}}
"""


async def test_a_loop_body_s_events_say_their_iteration(engine: Engine) -> None:
    """The same step id repeats once per iteration: its events could not be told apart
    but by their step execution ids."""
    recording = Recording()
    engine.add_observer(recording)
    doc = await engine.run(engine.load_text(NESTED))
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    stored = await engine.events(doc["id"])
    seen = [e for b in recording.of("events") for e in b.events]
    assert seen == [e for e in stored if e["kind"] != "execution.created"]  # live as stored
    started = [e for e in stored if e["kind"] == "step.started"]
    cells = [e["detail"]["loop"] for e in started if e["stepId"] == "cell"]
    assert sorted(c["rows"] * 3 + c["cells"] for c in cells) == list(range(6))
    assert all(set(c) == {"rows", "cells"} for c in cells)
    [outer] = [e for e in started if e["stepId"] == "rows"]
    assert outer["detail"] is None  # at the top level: nothing added
    inner = {e["detail"]["loop"]["rows"] for e in started if e["stepId"] == "cells"}
    assert inner == {0, 1}
    done = [e for e in stored if e["kind"] == "step.completed" and e["stepId"] == "cell"]
    assert all(set(e["detail"]) == {"durationMs", "loop"} for e in done)
