"""The worker's operations: one log line per execution it runs and lets go, and the
retention duty that prunes finished executions on a schedule."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
from datetime import timedelta

import pytest

from flowledger import Engine, StepRegistry
from flowledger.config import Settings
from flowledger.errors import StorageError
from flowledger.storage import migrations
from flowledger.worker.duties import EVERY, RetentionDuty
from flowledger.worker.worker import Worker, WorkerOptions
from tests.revisions import set_revision

FAST = WorkerOptions(concurrency=2, lease=timedelta(seconds=3), park_after=0.3, max_idle=0.05)
QUICK = "name: quick\nsteps: [{id: a, type: sys.transform, input: {value: 1}}]\n"


async def _run_until_one_ends(engine: Engine) -> None:
    """A worker on ``engine`` until it has ended one execution, then stopped."""
    worker = Worker(engine, FAST)
    task = asyncio.create_task(worker.run())
    async with asyncio.timeout(20):
        while worker.completed < 1:
            await asyncio.sleep(0.01)
    worker.stop()
    await task


async def test_the_worker_logs_each_execution_it_starts_and_finishes(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flowledger.worker.worker")
    async with Engine(db_url) as engine:
        execution_id = await engine.start(engine.load_text(QUICK))
        await _run_until_one_ends(engine)
    mine = [r for r in caplog.records if getattr(r, "execution_id", None) == execution_id]
    assert [(r.getMessage().split(": ", 1)[1].split(" ")[0], r.status) for r in mine] == [  # type: ignore[attr-defined]
        ("running", "running"),
        ("Completed", "Completed"),
    ]
    start, end = mine
    assert start.getMessage() == f"execution {execution_id} of quick: running (NotStarted)"
    assert end.workflow == "quick"  # type: ignore[attr-defined]
    assert isinstance(end.duration_ms, int) and end.duration_ms >= 0  # type: ignore[attr-defined]
    assert f"execution {execution_id} of quick: Completed after " in end.getMessage()


async def test_the_retention_duty_prunes_what_is_older_than_the_setting(db_url: str) -> None:
    settings = dataclasses.replace(Settings.from_env(), retention=timedelta(days=7))
    async with Engine(db_url, settings=settings) as engine:
        old = await engine.run(engine.load_text(QUICK), {})
        assert any(isinstance(d, RetentionDuty) for d in Worker(engine).duties)
        duty = RetentionDuty(engine, timedelta(days=7))
        assert await duty.run_once() == EVERY  # nothing old enough: back in a while
        assert await engine.store.get_execution(old["id"]) is not None
        engine.clock.offset += timedelta(days=8)
        fresh = await engine.run(engine.load_text(QUICK), {})
        assert await duty.run_once() == EVERY
        assert await engine.store.get_execution(old["id"]) is None
        assert await engine.store.get_execution(fresh["id"]) is not None


async def test_without_the_setting_no_worker_prunes(db_url: str) -> None:
    async with Engine(db_url, settings=Settings.from_env()) as engine:
        assert not any(isinstance(d, RetentionDuty) for d in Worker(engine).duties)


class _Flaky:
    """A duty (the worker's Protocol) that fails its first ``failing`` rounds with
    ``error``, as every duty does while the database is down."""

    name = "flaky"
    paced = False

    def __init__(self, failing: int, error: Exception | None = None) -> None:
        self.failing = failing
        self.error = error or ConnectionError("connection refused\nthe server is down")
        self.calls: list[float] = []

    async def run_once(self) -> float:
        self.calls.append(asyncio.get_running_loop().time())
        if len(self.calls) <= self.failing:
            raise self.error
        return 3600.0


async def _run_duty(db_url: str, duty: _Flaky) -> list[float]:
    """The worker's duty loop with ``duty`` alone, until it has worked once again."""
    async with Engine(db_url) as engine:
        worker = Worker(engine, dataclasses.replace(FAST, max_duty_wait=0.05))
        worker.duties = [duty]
        duties = asyncio.create_task(worker._run_duties())
        async with asyncio.timeout(20):
            while len(duty.calls) <= duty.failing:
                await asyncio.sleep(0.01)
        duties.cancel()
        await asyncio.gather(duties, return_exceptions=True)
    return duty.calls


async def test_a_failing_duty_backs_off_and_logs_its_traceback_once(
    db_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It said "trying again in 5s" and tried every second (the duty pace capped the
    delay), each time with a whole traceback."""
    monkeypatch.setattr("flowledger.worker.worker.DUTY_RETRY_FIRST", 0.1)
    caplog.set_level(logging.INFO, logger="flowledger.worker.worker")
    calls = await _run_duty(db_url, _Flaky(failing=3))
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.4, gaps  # doubling
    said = [r for r in caplog.records if "duty flaky" in r.getMessage()]
    assert [r.exc_info is not None for r in said] == [True, False, False, False]
    assert "failed again (2 in a row: ConnectionError: connection refused)" in said[1].getMessage()
    assert "works again after 3 failures" in said[3].getMessage()


async def test_a_duty_that_meets_a_database_down_says_so_in_a_line(
    db_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PostgreSQL restart wrote a traceback for each of the six duties of every worker;
    the database's condition is said in words, as a runner's is."""
    monkeypatch.setattr("flowledger.worker.worker.DUTY_RETRY_FIRST", 0.05)
    caplog.set_level(logging.INFO, logger="flowledger.worker.worker")
    down = StorageError("the database does not answer: connection refused")
    await _run_duty(db_url, _Flaky(failing=2, error=down))
    said = [r for r in caplog.records if "duty flaky" in r.getMessage()]
    assert [r.exc_info is not None for r in said] == [False, False, False]
    assert "duty flaky failed (StorageError: the database does not answer" in said[0].getMessage()


async def test_a_dead_holder_s_executions_are_freed_at_once_on_its_host(db_url: str) -> None:
    """A killed `flowledger run` held its execution until the lease lapsed (30 s), even
    with an idle worker on the same machine. A dead pid on this host frees it now; an
    owner of another machine that bears the same host name is left to its lease."""
    import socket
    import subprocess

    from flowledger.runtime.orphans import this_host
    from flowledger.worker.duties import DeadHoldersDuty

    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: no process has its pid now
    async with Engine(db_url) as engine:
        dead_here = await engine.start(engine.load_text(QUICK))
        elsewhere = await engine.start(engine.load_text(QUICK))
        lease = timedelta(minutes=5)
        assert await engine.store.acquire_lease(dead_here, f"{this_host()}:{gone.pid}:x", lease)
        twin = f"{socket.gethostname()}:{gone.pid}:y"  # same name, another machine's pid
        assert await engine.store.acquire_lease(elsewhere, twin, lease)
        freed: list[bool] = []
        duty = DeadHoldersDuty(engine, lambda: freed.append(True))
        await duty.run_once()
        assert freed == [True]
        rows = {i: await engine.store.get_execution(i) for i in (dead_here, elsewhere)}
        assert rows[dead_here]["lease_owner"] is None  # type: ignore[index]
        assert rows[elsewhere]["lease_owner"] == twin  # type: ignore[index]
        await _run_until_one_ends(engine)
        done = await engine.get_execution(dead_here)
        assert done["runtimeStatus"] == "Completed"


async def test_an_execution_a_worker_cannot_run_waits_before_it_is_tried_again(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A run that failed unexpectedly was handed back at once, and workers took it again
    and failed in a tight loop (thousands of log lines a second). Here the worker's plugin
    no longer takes the input the workflow was pushed with (its model changed since): a
    failure of its own, not a plugin it lacks (tests/worker/test_missing_plugins.py)."""
    caplog.set_level(logging.ERROR, logger="flowledger.worker.worker")
    text = "name: plug-only\nsteps:\n  - {id: a, type: acme.elsewhere, input: {n: 1}}\n"
    registry, newer = _a_plugin_whose_model_changed("acme.elsewhere")
    async with Engine(db_url, registry=registry) as with_plugin:
        execution_id = await with_plugin.start(with_plugin.load_text(text))
    async with Engine(db_url, registry=newer) as engine:  # a worker with its newer model
        await _two_tries_a_second_apart(engine, execution_id, caplog)
        row = await engine.store.get_execution(execution_id)
    assert row is not None and row["runtime_status"] != "Completed"


async def test_an_answered_execution_a_worker_cannot_run_waits_too(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The same, for an execution that waited for a person and was answered: the input's
    unconsumed signal made the park release it at once, every time (hundreds of claims
    and errors in half a second)."""
    caplog.set_level(logging.ERROR, logger="flowledger.worker.worker")
    text = (
        "name: answered\nsteps:\n"
        "  - {id: ask, type: sys.wait_for_input, input: {prompt: ok?}}\n"
        "  - {id: a, type: acme.after, input: {n: 1}}\n"
    )
    registry, newer = _a_plugin_whose_model_changed("acme.after")
    async with Engine(db_url, registry=registry) as with_plugin:
        execution_id = await with_plugin.start(with_plugin.load_text(text))
        doc = await with_plugin.drive(execution_id)
        assert doc["runtimeStatus"] == "AwaitingUserInput"
        await with_plugin.submit_input(execution_id, "ask", {"ok": True})
    async with Engine(db_url, registry=newer) as engine:
        await _two_tries_a_second_apart(engine, execution_id, caplog)


async def _two_tries_a_second_apart(
    engine: Engine, execution_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker on ``engine`` until it has failed to run the execution twice: the first
    failure says it waits 1 s, and the second comes no sooner (it was hundreds of tries in
    that time) and says 2 s. Waiting on the second failure, not a fixed 2.5 s, ends the
    test as soon as the back-off has shown itself."""
    worker = Worker(engine, FAST)
    task = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(60):
            while len(tries := _tries(caplog, execution_id)) < 2:
                await asyncio.sleep(0.01)
    finally:
        worker.stop()
        await task
    first, second = tries[:2]
    assert "it is tried again in 1s" in first.getMessage(), tries
    assert "it is tried again in 2s" in second.getMessage(), tries
    # The log's clock is the wall clock, the back-off's the monotonic one: a little slack.
    assert second.created - first.created >= 0.95, tries


def _tries(caplog: pytest.LogCaptureFixture, execution_id: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if execution_id in r.getMessage()]


def _a_plugin_whose_model_changed(name: str) -> tuple[StepRegistry, StepRegistry]:
    """Registries with the step type ``name`` as pushed (input ``{n}``) and as a newer
    plugin has it (``{count}``, required): a workflow pushed with the first does not
    compile with the second."""
    from pydantic import BaseModel

    from flowledger import StepContext, step_type

    class In(BaseModel):
        n: int = 0

    class Changed(BaseModel):
        count: int

    @step_type(name)
    async def as_pushed(data: In, ctx: StepContext) -> dict[str, int]:
        return {"n": data.n}

    @step_type(name)
    async def changed(data: Changed, ctx: StepContext) -> dict[str, int]:
        return {"n": data.count}

    registry, newer = StepRegistry.with_builtins(), StepRegistry.with_builtins()
    registry.register(as_pushed)
    newer.register(changed)
    return registry, newer


async def test_a_worker_stops_when_a_newer_build_migrates_its_database(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker left on the old build by a rolling upgrade went on claiming and writing
    rows of the old shape into the new schema, saying nothing. It now stops, and says why
    (the command exits non-zero with it)."""
    caplog.set_level(logging.ERROR, logger="flowledger.worker.worker")
    async with Engine(db_url) as engine:
        waiting = await engine.start(engine.load_text(QUICK))
        set_revision(db_url, "9999")
        worker = Worker(engine, FAST)
        async with asyncio.timeout(20):
            await worker.run()  # returns by itself
        assert worker.stopped_because is not None
        assert "revision 9999" in worker.stopped_because
        assert any("stopping: " in r.getMessage() for r in caplog.records)
        set_revision(db_url, migrations.HEAD)
        assert (await engine.store.get_execution(waiting)) is not None


async def test_paced_duties_keep_their_own_pace(db_url: str) -> None:
    """The duty loop capped every delay at ``max_duty_wait`` (1 s): the retention duty,
    which asks for five minutes, ran every second."""
    async with Engine(db_url) as engine:
        worker = Worker(engine, dataclasses.replace(FAST, max_duty_wait=0.05))
        paced = _Flaky(failing=0)
        paced.paced = True
        unpaced = _Flaky(failing=0)
        worker.duties = [paced, unpaced]
        duties = asyncio.create_task(worker._run_duties())
        async with asyncio.timeout(20):
            while len(unpaced.calls) < 4:
                await asyncio.sleep(0.01)
        duties.cancel()
        await asyncio.gather(duties, return_exceptions=True)
    assert len(paced.calls) == 1
