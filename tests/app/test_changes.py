"""The change hub: long polls wake when an execution's events commit, here or in another
process (SQLite: the events table tailed; PostgreSQL: LISTEN/NOTIFY).

The hub's own safety re-check (``RECHECK``) is pushed past the test's wait bound, so a
wait that returns settled was woken by a change, not by a timer. No wall-clock asserts.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import flowledger.app.execution_reads as execution_reads
from flowledger.app import App, CancelExecution, GetExecution, StartExecution, SubmitInput
from flowledger.config import Limits
from flowledger.errors import TooManyError
from flowledger.storage.live import Change, _parse

FLOWLEDGER = str(Path(sys.executable).parent / "flowledger")

ASK = """\
name: ask
steps:
  - id: approve
    type: sys.wait_for_input
    input:
      prompt: ok?
      schema: {type: object}
  - {id: after, type: sys.transform, input: {value: 1}}
"""


@pytest.fixture(autouse=True)
def _no_safety_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(execution_reads, "RECHECK", 120.0)


@pytest.fixture
def ask_file(tmp_path: Path) -> str:
    path = tmp_path / "ask.yaml"
    path.write_text(ASK)
    return str(path)


async def _waiting(app: App, count: int = 1) -> None:
    while app.changes.watching < count:
        await asyncio.sleep(0.01)


async def test_a_wait_wakes_when_this_process_finishes_the_execution(
    app: App, hello_file: str
) -> None:
    doc = await app.executions.start(
        StartExecution(workflow=hello_file, allow_file=True, input={"name": "A"})
    )
    waiter = asyncio.create_task(app.executions.get(GetExecution(id=doc["id"], wait=30)))
    await _waiting(app)
    await app.engine.drive(doc["id"])
    done = await waiter
    assert done["runtimeStatus"] == "Completed"
    assert done["steps"]  # the full document, steps included
    assert app.changes.watching == 0


async def test_a_wait_returns_early_on_awaiting_input(app: App, ask_file: str) -> None:
    doc = await app.executions.start(StartExecution(workflow=ask_file, allow_file=True))
    waiter = asyncio.create_task(app.executions.get(GetExecution(id=doc["id"], wait=30)))
    await _waiting(app)
    await app.engine.drive(doc["id"])
    assert (await waiter)["runtimeStatus"] == "AwaitingUserInput"


async def test_a_wait_that_times_out_returns_the_current_document(
    app: App, hello_file: str
) -> None:
    doc = await app.executions.start(StartExecution(workflow=hello_file, allow_file=True))
    waited = await app.executions.get(GetExecution(id=doc["id"], wait=0.2))
    assert waited["runtimeStatus"] == "NotStarted"
    assert waited["id"] == doc["id"]


async def test_a_stopping_server_answers_its_long_polls_at_once(app: App, hello_file: str) -> None:
    """SIGTERM ended the event streams, but a long poll (``?wait=`` up to 60 s) held the
    server's shutdown until its wait was over. Ending the waits answers it as things are;
    a wait asked for after that does not wait."""
    doc = await app.executions.start(StartExecution(workflow=hello_file, allow_file=True))
    waiter = asyncio.create_task(app.executions.get(GetExecution(id=doc["id"], wait=30)))
    await _waiting(app)
    app.end_waits()
    async with asyncio.timeout(10):  # a bound against hanging (RECHECK is 120 s here)
        assert (await waiter)["runtimeStatus"] == "NotStarted"
        later = await app.executions.get(GetExecution(id=doc["id"], wait=30))
    assert later["runtimeStatus"] == "NotStarted"
    assert app.changes.watching == 0


async def test_waits_per_caller_are_limited(app: App, hello_file: str) -> None:
    app.slots.limits = Limits(max_waits=1)
    doc = await app.executions.start(
        StartExecution(workflow=hello_file, allow_file=True, input={"name": "C"})
    )
    first = asyncio.create_task(app.executions.get(GetExecution(id=doc["id"], wait=30, caller="t")))
    await _waiting(app)
    with pytest.raises(TooManyError, match="FLOWLEDGER_MAX_WAITS=1") as caught:
        await app.executions.get(GetExecution(id=doc["id"], wait=30, caller="t"))
    assert caught.value.limit == 1
    # another caller, and a settled answer, are not refused
    other = asyncio.create_task(app.executions.get(GetExecution(id=doc["id"], wait=30, caller="u")))
    await _waiting(app, 2)
    await app.engine.drive(doc["id"])
    assert (await first)["runtimeStatus"] == (await other)["runtimeStatus"] == "Completed"
    await app.executions.get(GetExecution(id=doc["id"], wait=30, caller="t"))


@pytest.fixture
def worker_env(db_url: str) -> dict[str, str]:
    return {**os.environ, "FLOWLEDGER_DB": db_url, "FLOWLEDGER_LOG_LEVEL": "WARNING"}


async def test_a_wait_wakes_when_a_worker_in_another_process_finishes(
    app: App, hello_file: str, db_url: str, worker_env: dict[str, str]
) -> None:
    doc = await app.executions.start(
        StartExecution(workflow=hello_file, allow_file=True, input={"name": "B"})
    )
    waiter = asyncio.create_task(app.executions.get(GetExecution(id=doc["id"], wait=60)))
    await _waiting(app)
    worker = subprocess.Popen(
        [FLOWLEDGER, "worker", "--db", db_url],
        env=worker_env,
        stderr=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        done = await waiter
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert done["runtimeStatus"] == "Completed"


async def test_the_all_executions_subscription_hears_every_change(
    app: App, hello_file: str
) -> None:
    with app.changes.subscribe() as everything:
        doc = await app.executions.start(
            StartExecution(workflow=hello_file, allow_file=True, input={"name": "D"})
        )
        await app.engine.drive(doc["id"])
        heard = await everything.wait(5)
    assert {c.execution_id for c in heard} == {doc["id"]}
    assert heard[0].first_seq == 1
    assert max(c.last_seq for c in heard) > 1


def test_payloads_parse() -> None:
    assert _parse("abc 2 5") == Change("abc", 2, 5)
    assert _parse("abc") == Change("abc", 0, 0)
    assert _parse("") is None


async def test_a_wait_after_input_was_sent_waits_for_the_result(app: App, ask_file: str) -> None:
    doc = await app.executions.start(StartExecution(workflow=ask_file, allow_file=True))
    await app.engine.drive(doc["id"])  # now AwaitingUserInput
    await app.executions.submit_input(SubmitInput(id=doc["id"], step="approve", data={}))
    waiter = asyncio.create_task(app.executions.get(GetExecution(id=doc["id"], wait=30)))
    await _waiting(app)  # the input is not acted on yet: not "waiting for people"
    await app.engine.drive(doc["id"])
    assert (await waiter)["runtimeStatus"] == "Completed"


async def test_a_control_verb_answers_the_state_after_it_or_says_it_is_pending(
    app: App, ask_file: str
) -> None:
    """A cancel (or an input) not settled here answered the document as it was before it
    (AwaitingUserInput after a cancel that worked): it waits up to ``wait`` for the
    execution to act on it, and says ``pendingSignals`` when nobody has yet."""
    doc = await app.executions.start(StartExecution(workflow=ask_file, allow_file=True))
    await app.engine.drive(doc["id"])  # now AwaitingUserInput, and nobody runs it
    given = SubmitInput(id=doc["id"], step="approve", data={}, wait=0.2)
    pending = await app.executions.submit_input(given)
    assert pending["runtimeStatus"] == "AwaitingUserInput" and pending["pendingSignals"] == 1
    # Acted on while the verb waits (a worker here or elsewhere): the state after it.
    waiter = asyncio.create_task(app.executions.cancel(CancelExecution(id=doc["id"], wait=30)))
    await _waiting(app)
    await app.engine.drive(doc["id"])  # takes both signals at once: the cancel wins
    answer = await waiter
    assert answer["runtimeStatus"] == "Cancelled" and "pendingSignals" not in answer
