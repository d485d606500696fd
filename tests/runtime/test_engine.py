"""Engine's own rules that no other runtime module owns."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flowledger import (
    CompiledWorkflow,
    Engine,
    EngineClosedError,
    ExecutionQuery,
    ExecutionStatus,
    InvalidInputError,
    NotFoundError,
    Worker,
    WorkerOptions,
)
from flowledger.runtime.creation import Lineage
from flowledger.storage import open_store

HELLO = "name: hello\nsteps: [{id: a, type: sys.no_action}]\n"


async def test_locate_reads_a_file_only_when_asked(engine: Engine, tmp_path: Path) -> None:
    """``locate`` took a name that matched an existing file as that file, unless every
    service path remembered ``stored_only``: a caller's workflow name read as a server
    file. A file is now an opt-in (``allow_file``), a name the default."""
    path = tmp_path / "hello.yaml"
    path.write_text(HELLO)
    for find in (engine.locate, engine.find_workflow):
        with pytest.raises(NotFoundError, match=r"there is no workflow named .*hello\.yaml"):
            await find(str(path))
    found = await engine.locate(str(path), allow_file=True)
    assert isinstance(found, CompiledWorkflow) and found.name == "hello"
    assert (await engine.find_workflow(str(path), allow_file=True)).name == "hello"
    await engine.push(found)
    assert (await engine.find_workflow("hello")).name == "hello"  # a name, as before


NOT_OPEN = "the engine is not open; use 'async with Engine(...)'"
#: Public members that work on an Engine that is not open: they touch no database.
WITHOUT_A_DATABASE = {"open", "close", "load", "load_text", "add_observer", "on_events"}


def _uses(
    engine: Engine, workflow: CompiledWorkflow, execution_id: str, version_id: str
) -> dict[str, Callable[[], Any]]:
    """A call of every public member of Engine that needs it open."""
    row = {"id": execution_id}

    async def work() -> None:
        raise AssertionError("a closed engine took up a claim")

    return {
        "store": lambda: engine.store,
        "http": lambda: engine.http,
        "entities": lambda: engine.entities,
        "artifacts": lambda: engine.artifacts,
        "register": lambda: engine.register(workflow),
        "push": lambda: engine.push(workflow),
        "find_workflow": lambda: engine.find_workflow("hello"),
        "locate": lambda: engine.locate("hello"),
        "resolve_workflow": lambda: engine.resolve_workflow("hello"),
        "resolve_child": lambda: engine.resolve_child("hello"),
        "resolve_version": lambda: engine.resolve_version("hello"),
        "workflow_for_version": lambda: engine.workflow_for_version(version_id),
        "workflow_to_read": lambda: engine.workflow_to_read(version_id),
        "workflow_version": lambda: engine.workflow_version(version_id),
        "live_workflows": lambda: engine.live_workflows("triggers"),
        "start": lambda: engine.start(workflow),
        "start_keyed": lambda: engine.start_keyed(workflow, {}, Lineage(trigger_key="k")),
        "start_document": lambda: engine.start_document(workflow),
        "start_once": lambda: engine.start_once(workflow, {}, "key"),
        "drive": lambda: engine.drive(execution_id),
        "take_up": lambda: engine.take_up(execution_id, 1, work),
        "worker_started": lambda: engine.worker_started(lambda: None),
        "run_owned": lambda: engine.run_owned(execution_id),
        "submit_input": lambda: engine.submit_input(execution_id, "a", {}),
        "cancel": lambda: engine.cancel(execution_id),
        "retry": lambda: engine.retry(execution_id),
        "rerun": lambda: engine.rerun(execution_id, "a"),
        "pending_inputs": lambda: engine.pending_inputs(execution_id),
        "settle": lambda: engine.settle(execution_id),
        "apply_cancel": lambda: engine.apply_cancel(execution_id),
        "run": lambda: engine.run(workflow),
        "get_execution": lambda: engine.get_execution(execution_id),
        "document": lambda: engine.document(row, []),
        "list_executions": lambda: engine.list_executions(),
        "events": lambda: engine.events(execution_id),
    }


async def test_an_engine_that_is_not_open_says_so_alike_everywhere(tmp_path: Path) -> None:
    """Tour 23 F11: before open ``entities`` was an AttributeError and ``http`` a
    StorageError; after close ``entities`` answered (its calls failed with "the store is
    closed") and the cached ``register``/``workflow_for_version`` answered too."""
    engine = Engine(f"sqlite:///{tmp_path / 'flow.db'}")
    workflow = engine.load_text(HELLO)
    missing = "00000000-0000-4000-8000-000000000000"
    public = {name for name in dir(Engine) if not name.startswith("_")}
    assert set(_uses(engine, workflow, missing, missing)) == public - WITHOUT_A_DATABASE
    for when in ("before open", "after close"):
        if when == "after close":
            async with engine:
                doc = await engine.run(workflow)
                await engine.push(workflow)
            uses = _uses(engine, workflow, doc["id"], doc["workflowTemplateVersionId"])
        else:
            uses = _uses(engine, workflow, missing, missing)
        for name, use in uses.items():
            with pytest.raises(EngineClosedError) as raised:
                await _answer(use)
            assert str(raised.value) == NOT_OPEN, (when, name)


async def _answer(use: Callable[[], Any]) -> Any:
    answer = use()
    return await answer if inspect.isawaitable(answer) else answer


async def test_an_in_memory_engine_keeps_artifacts_in_a_folder_it_removes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tour 23 F8: ``Engine("sqlite://")`` (the README's test recipe) wrote its artifacts
    to ./flowledger-artifacts and left them there: a test suite's landed in the
    repository. Its artifacts go where its database goes: away when it closes."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLOWLEDGER_ARTIFACTS", raising=False)
    monkeypatch.setenv("FLOWLEDGER_OUTPUT_BUDGET", "1024")
    big = "name: big\nsteps: [{id: a, type: sys.transform, input: {value: \"{{ 'x' * 3000 }}\"}}]\n"
    async with Engine("sqlite://") as engine:
        doc = await engine.run(engine.load_text(big))
        assert doc["runtimeStatus"] == "Completed", doc["error"]
        [kept] = await engine.artifacts.for_execution(doc["id"])
        root = engine.artifacts.root
        assert (root / doc["id"] / kept["id"]).is_file()
    assert not root.exists()
    assert list(tmp_path.iterdir()) == []


async def test_opening_leaves_the_event_loop_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tour 23 F14: open made the store on the loop (the driver's import, SQLAlchemy's
    engine, the file's checks: 0.13-0.35 s with nothing else running). Made on a thread,
    the loop runs other tasks meanwhile: one sets an event that the making waits for."""
    ran = threading.Event()
    waited: list[bool] = []

    def making(*args: Any, **kwargs: Any) -> Any:
        waited.append(ran.wait(timeout=2))  # on the loop, nothing could set it
        return open_store(*args, **kwargs)

    monkeypatch.setattr("flowledger.runtime.engine.open_store", making)

    async def other_work() -> None:
        ran.set()

    engine = Engine(f"sqlite:///{tmp_path / 'flow.db'}")
    task = asyncio.create_task(other_work())
    async with engine:
        await task
    assert waited == [True]


async def test_opening_and_closing_leave_no_thread_behind(tmp_path: Path) -> None:
    """Engine.open made the store with asyncio.to_thread: the loop's default executor,
    made for it, kept an idle thread for the loop's life, in an application that embeds
    the engine and never used that executor (an in-memory engine's close too)."""
    before = set(threading.enumerate())
    for url in (f"sqlite:///{tmp_path / 'flow.db'}", "sqlite://"):
        async with Engine(url) as engine:
            await engine.run(engine.load_text(HELLO))
    assert set(threading.enumerate()) == before
    assert asyncio.get_running_loop()._default_executor is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("bad", "refusal"),
    [("\ud800", "holds a lone surrogate"), ("\x00", "must not contain NUL")],
    ids=["lone surrogate", "NUL"],
)
async def test_unstorable_text_in_a_start_s_arguments_is_refused_naming_the_argument(
    engine: Engine, bad: str, refusal: str
) -> None:
    """Tour 23: a lone surrogate reached the database, whose refusal came out as a
    StorageError ("the database refused a start"); so did a NUL on PostgreSQL, which
    SQLite stored. Refused before anything is stored, as the input is, on both."""
    workflow = engine.load_text(HELLO)
    starts: list[tuple[Callable[[], Any], str]] = [
        (lambda: engine.start(workflow, correlation_id=bad), "correlation_id"),
        (lambda: engine.run(workflow, correlation_id=f"order-{bad}"), "correlation_id"),
        (lambda: engine.start_document(workflow, created_by=bad), "created_by"),
        (lambda: engine.start_once(workflow, {}, f"key-{bad}"), "key"),
        (lambda: engine.start_keyed(workflow, {}, Lineage(trigger_key=bad)), "trigger_key"),
    ]
    for start, argument in starts:
        with pytest.raises(InvalidInputError, match=f"^{argument}: {refusal}"):
            await start()
    assert await engine.list_executions() == []


async def test_an_execution_id_with_a_lone_surrogate_is_not_found(engine: Engine) -> None:
    """No stored id holds one (UTF-8 has no form for it): it raised the driver's raw
    UnicodeEncodeError from every method that takes an execution id."""
    bad = "\ud800"
    calls: list[Callable[[], Any]] = [
        lambda: engine.get_execution(bad),
        lambda: engine.events(bad),
        lambda: engine.drive(bad),
        lambda: engine.settle(bad),
        lambda: engine.apply_cancel(bad),
        lambda: engine.cancel(bad),
        lambda: engine.retry(bad),
        lambda: engine.rerun(bad, "a"),
        lambda: engine.submit_input(bad, "a", {}),
        lambda: engine.pending_inputs(bad),
    ]
    for call in calls:
        with pytest.raises(NotFoundError, match=r"^execution \\ud800 does not exist$"):
            await call()


async def test_a_query_takes_the_statuses_there_are_only(engine: Engine) -> None:
    """ExecutionQuery.status was typed ``str`` and took any text: a typo matched nothing,
    without a word. Now the enum or its value; anything else is refused, naming them."""
    with pytest.raises(
        InvalidInputError,
        match=r"^status: 'Complete' is not an execution status; use one of NotStarted, In",
    ):
        ExecutionQuery(status="Complete")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"^status: 'Done' is not an execution status"):
        ExecutionQuery(status=("Completed", "Done"))  # type: ignore[arg-type]
    done = await engine.run(engine.load_text(HELLO))
    for status in (
        "CompletedWithNoActionTaken",
        ExecutionStatus.COMPLETED_NO_ACTION,
        ("Failed", ExecutionStatus.COMPLETED_NO_ACTION),
    ):
        found = await engine.list_executions(ExecutionQuery(status=status))
        assert [doc["id"] for doc in found] == [done["id"]], status
    assert await engine.list_executions(ExecutionQuery(status=ExecutionStatus.FAILED)) == []


WAITS = "name: waits\nsteps: [{id: d, type: sys.delay, input: {duration: 30s}}]\n"


async def test_close_stops_a_worker_running_on_it_and_gives_its_runs_back(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Tour 23: Engine.close under a running Worker closed the store beneath it; the
    worker went on for ever, logging "cannot claim work (the store is closed)" and its
    duties' failures every few seconds. Now close stops it as its stop() does and waits
    for it: its runs are given back (their leases released) and its run() returns."""
    engine = Engine(db_url, owner="closing")
    await engine.open()
    workflow = engine.load_text(WAITS)
    started = [await engine.start(workflow) for _ in range(2)]
    # Held while their timer is near (park_after), as a worker holds a short wait.
    worker = Worker(engine, WorkerOptions(park_after=120.0, max_idle=0.05))
    running = asyncio.create_task(worker.run())
    for _ in range(1000):
        events = [await engine.events(execution_id) for execution_id in started]
        if all(any(e["kind"] == "step.suspended" for e in kinds) for kinds in events):
            break
        await asyncio.sleep(0.01)
    assert set(worker.active) == set(started)
    with caplog.at_level(logging.WARNING):
        await asyncio.wait_for(engine.close(grace=1.0), 20)
        await asyncio.wait_for(running, 5)  # before, it never returned
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert worker.stopped_because is None
    async with Engine(db_url) as again:
        for execution_id in started:
            row = await again.store.get_execution(execution_id)
            assert row is not None and row["lease_owner"] is None
            assert row["runtime_status"] == "InProgress"
