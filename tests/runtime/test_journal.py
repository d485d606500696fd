"""The journal's rows: what a round writes, and what observers are told of it."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flowledger import Engine, StepRegistry
from flowledger.codec import Codec
from flowledger.runtime import journal
from flowledger.timeutil import Clock
from tests.runtime.steps_for_tests import Recorder

CHAIN = """
name: chain
steps:
  - {id: a, type: test.echo, input: {value: 1}}
  - {id: b, type: test.echo, input: {value: "{{ steps.a.output.value }}"}}
"""


async def test_the_last_activity_is_the_instant_of_the_last_event(engine: Engine) -> None:
    doc = await engine.run(engine.load_text(CHAIN))
    assert doc["runtimeStatus"] == "Completed"
    row = await engine.store.get_execution(doc["id"])
    events = await engine.store.get_events(doc["id"])
    assert row is not None and events
    # The same instant, not a later clock read at the commit.
    assert row["last_activity_at"] == events[-1]["at"]


LONG_CHAIN = "name: long\nsteps:\n" + "".join(
    f"  - {{id: s{i}, type: test.echo, input: {{value: {i}}}}}\n" for i in range(30)
)

BLOCKED = """
name: blocked
steps:
  - {id: first, type: test.echo, input: {value: 1}}
  - {id: held, type: test.slow, input: {name: held, block_first: true}}
"""


def _count_row_updates(db_url: str) -> sqlite3.Connection:
    """A trigger on the SQLite file that counts UPDATEs of execution rows."""
    conn = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("CREATE TABLE row_updates (n INTEGER NOT NULL)")
    conn.execute("INSERT INTO row_updates VALUES (0)")
    conn.execute(
        "CREATE TRIGGER count_row_updates AFTER UPDATE ON executions "
        "BEGIN UPDATE row_updates SET n = n + 1; END"
    )
    return conn


async def test_rounds_that_only_move_steps_leave_the_execution_row_alone(
    tmp_path: Path, registry: StepRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On SQLite, where a row's UPDATE rewrites all of it (the rule is the journal's, the
    # counting trigger SQLite's).
    monkeypatch.setattr(journal, "PROGRESS_EVERY", timedelta(hours=1))  # no timed write
    db_url = f"sqlite:///{tmp_path / 'rows.db'}"
    async with Engine(db_url, registry=registry) as engine:
        execution_id = await engine.start(engine.load_text(LONG_CHAIN))
        conn = _count_row_updates(db_url)
        try:
            doc = await engine.drive(execution_id)
            (updates,) = conn.execute("SELECT n FROM row_updates").fetchone()
        finally:
            conn.close()
        row = await engine.store.get_execution(execution_id)
        events = await engine.store.get_events(execution_id)
    assert doc["runtimeStatus"] == "Completed" and len(doc["steps"]) == 30
    # The lease's claim, the start (InProgress), and the end (Completed, which releases
    # the lease in the same UPDATE): 30 rounds of steps wrote none of their own.
    assert updates == 3, updates
    # What was written last is exact: the last event, the last step, its instant.
    assert row is not None
    assert row["event_seq"] == events[-1]["seq"] == len(events)
    assert row["current_state_name"] == "s29"
    assert row["last_activity_at"] == events[-1]["at"]


@pytest.mark.parametrize(
    ("source", "status", "name"),
    [
        # A loop last: its body step started last, the loop itself ended the execution.
        (
            "name: l\nsteps:\n  - {id: a, type: test.echo, input: {value: 1}}\n"
            "  - id: lp\n    type: sys.loop\n    input: {items: [1, 2, 3], concurrency: 2}\n"
            "    steps:\n      - {id: body, type: test.echo, input: {value: 2}}\n",
            "Completed",
            "lp",
        ),
        # Two branches: the long one started first and ends last.
        (
            "name: b\nsteps:\n  - {id: slow, type: sys.delay, after: [], input: {duration: 200ms}}\n"
            "  - {id: quick, type: test.echo, after: [], input: {value: 1}}\n",
            "Completed",
            "slow",
        ),
        # A failure while a step started later runs: the step that failed the execution.
        (
            "name: f\nsteps:\n  - {id: boom, type: test.crash, after: [], retry: {max_attempts: 1}}\n"
            "  - {id: other, type: test.slow, after: [], input: {name: o, seconds: 5}}\n",
            "Failed",
            "boom",
        ),
    ],
)
async def test_a_finished_execution_names_the_step_that_ended_it(
    engine: Engine, source: str, status: str, name: str
) -> None:
    """currentStateName of a finished 1,200-item loop was its body step (the step started
    last), though the loop was the step that finished last."""
    doc = await engine.run(engine.load_text(source))
    assert (doc["runtimeStatus"], doc["currentStateName"]) == (status, name)
    row = await engine.store.get_execution(doc["id"])
    assert row is not None and row["current_state_name"] == name


async def test_a_running_execution_shows_its_progress_within_about_a_second(
    engine: Engine,
) -> None:
    execution_id = await engine.start(engine.load_text(BLOCKED))
    task = asyncio.create_task(engine.drive(execution_id))
    try:
        for _ in range(500):  # the scheduler wakes once a second while its steps run
            row = await engine.store.get_execution(execution_id)
            assert row is not None
            if row["current_state_name"] == "held":
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the row never showed the step that runs")
        events = await engine.store.get_events(execution_id)
        assert row["event_seq"] == events[-1]["seq"]
        assert events[-1]["kind"] == "step.started" and events[-1]["step_id"] == "held"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_runner_taking_over_numbers_events_on_from_the_events(
    db_url: str, registry: StepRegistry, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The row's counter lags its events when the process stops (no timed write here).
    monkeypatch.setattr(journal, "PROGRESS_EVERY", timedelta(hours=1))
    async with Engine(db_url, registry=registry, owner="gone") as engine:
        execution_id = await engine.start(engine.load_text(BLOCKED))
        task = asyncio.create_task(engine.drive(execution_id))
        for _ in range(500):
            kinds = [(e["kind"], e["step_id"]) for e in await engine.store.get_events(execution_id)]
            # Its handler was called too (it blocks there): else the rerun's would block.
            if ("step.started", "held") in kinds and recorder.calls["held"] >= 1:
                break
            await asyncio.sleep(0.01)
        task.cancel()  # a crash, as the database sees it: the writes just stop
        with contextlib.suppress(asyncio.CancelledError):
            await task
        row = await engine.store.get_execution(execution_id)
        assert row is not None
        lagging = row["event_seq"]
        assert lagging < await engine.store.last_event_seq(execution_id)
    async with Engine(db_url, registry=registry, owner="gone") as engine:
        doc = await engine.drive(execution_id)
        events = await engine.store.get_events(execution_id)
    assert doc["runtimeStatus"] == "Completed"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


async def test_a_successor_starts_at_the_instant_its_predecessor_completed(
    engine: Engine,
) -> None:
    """One clock read serves a completion and the start it releases in the same round."""
    doc = await engine.run(engine.load_text(CHAIN))
    assert doc["runtimeStatus"] == "Completed"
    rows = {r["step_id"]: r for r in await engine.store.get_step_executions(doc["id"])}
    assert rows["b"]["started_at"] == rows["a"]["completed_at"]
    assert rows["a"]["started_at"] < rows["a"]["completed_at"] <= rows["b"]["completed_at"]
    at = {(e["kind"], e["step_id"]): e["at"] for e in await engine.store.get_events(doc["id"])}
    assert at[("step.started", "b")] == at[("step.completed", "a")]


async def test_a_completion_instant_serves_one_start_and_never_a_later_round(
    engine: Engine,
) -> None:
    own = journal.Journal(engine.store, Codec(), "e", 1, 0, Clock())
    now = datetime.now(UTC)
    own.completed(now)
    assert own.take_completion() is now
    assert own.take_completion() is None  # the next start reads the clock
    own.completed(now)
    await own.commit()  # the round ends (here with nothing to write)
    assert own.take_completion() is None
    own.completed(now)
    own.forget_completion()  # the round awaits a read of its signals
    assert own.take_completion() is None
