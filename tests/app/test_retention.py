"""Pruning finished executions (app.retention, runtime.pruning): what goes, what stays."""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from flowledger import Engine
from flowledger.app import App, CreateJobRun, DriveJobRun, GetJobRun, PushWorkflows, WorkflowText
from flowledger.app.models import PruneExecutions
from flowledger.config import Settings
from flowledger.errors import InvalidInputError, NotFoundError
from flowledger.storage.schema import events, executions, step_executions
from flowledger.storage.schema_artifacts import artifacts
from flowledger.storage.schema_jobs import job_runs
from flowledger.storage.schema_ops import step_logs

BIG = """\
name: big
steps:
  - {id: s, type: sys.transform, input: {value: "{{ 'x' * 3000 }}"}}
"""
FAILING = """\
name: failing
steps:
  - {id: s, type: sys.fail, input: {message: broken}}
"""
WAITING = """\
name: waiting
steps:
  - {id: ask, type: sys.wait_for_input, input: {prompt: ok?, schema: {type: object}}}
"""
CHILD = """\
name: child
steps:
  - {id: s, type: sys.transform, input: {value: 1}}
"""
PARENT = """\
name: parent
steps:
  - {id: kids, type: sys.sub_workflow, input: {workflow: child}}
"""


@pytest.fixture
async def app(db_url: str, tmp_path: Path) -> AsyncIterator[App]:
    # Outputs over 1KiB become artifacts: the big workflow leaves a file to delete.
    settings = dataclasses.replace(
        Settings.from_env(), output_budget=1024, artifacts_dir=str(tmp_path / "files")
    )
    async with Engine(db_url, settings=settings) as engine, App(engine=engine) as application:
        yield application


async def run(app: App, text: str) -> dict[str, Any]:
    return await app.engine.run(app.engine.load_text(textwrap.dedent(text), "t.yaml"), {})


def later(app: App, days: int) -> None:
    """Move the engine's clock: what ended now is ``days`` old from there."""
    app.engine.clock.offset += timedelta(days=days)


async def prune(app: App, **kw: Any) -> dict[str, Any]:
    return dict(await app.retention.prune(PruneExecutions(**kw)))


def count(app: App, table: Any, execution_id: str) -> int:
    store: Any = app.engine.store
    with store.conn.begin():
        query = select(func.count()).select_from(table)
        column = table.c.id if table is executions else table.c.execution_id
        return int(store.conn.execute(query.where(column == execution_id)).scalar_one())


async def test_finished_executions_go_with_everything_they_hold(app: App) -> None:
    big = await run(app, BIG)
    failed = await run(app, FAILING)
    waiting = await run(app, WAITING)
    queued = await app.engine.start(app.engine.load_text(CHILD, "c.yaml"), {})
    assert (big["runtimeStatus"], failed["runtimeStatus"], waiting["runtimeStatus"]) == (
        "Completed",
        "Failed",
        "AwaitingUserInput",
    )
    files = Path(app.engine.artifacts.root) / big["id"]
    assert count(app, artifacts, big["id"]) == 1 and files.is_dir()

    assert (await prune(app, older_than="30d"))["executions"] == 0  # nothing is old yet
    later(app, 31)
    assert (await prune(app, older_than="30d", dry_run=True))["executions"] == 2
    done = await prune(app, older_than="30d")
    assert (done["executions"], done["artifactFolders"], done["dryRun"]) == (2, 1, False)
    for execution_id in (big["id"], failed["id"]):
        for table in (executions, step_executions, events, step_logs, artifacts):
            assert count(app, table, execution_id) == 0, table.name
    assert not files.exists()
    # Waiting for a person and queued: never touched, however old.
    assert await app.engine.store.get_execution(waiting["id"]) is not None
    assert await app.engine.store.get_execution(queued) is not None


async def test_only_the_statuses_asked_for(app: App) -> None:
    completed = await run(app, CHILD)
    failed = await run(app, FAILING)
    later(app, 2)
    done = await prune(app, older_than="1d", statuses=["Failed"])
    assert done["executions"] == 1
    assert await app.engine.store.get_execution(failed["id"]) is None
    assert await app.engine.store.get_execution(completed["id"]) is not None
    with pytest.raises(InvalidInputError, match="never pruned"):
        PruneExecutions(older_than="1d", statuses=["InProgress"])
    with pytest.raises(InvalidInputError, match="at least 1m"):
        PruneExecutions(older_than="5s")
    with pytest.raises(InvalidInputError):
        PruneExecutions(older_than="soon")


async def test_a_parent_goes_only_after_its_children(app: App) -> None:
    await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=CHILD)]))
    parent = await run(app, PARENT)
    assert parent["runtimeStatus"] == "Completed"
    [child_id] = [c["id"] for s in parent["steps"].values() for c in s["childWorkflowExecutions"]]
    store: Any = app.engine.store
    with store.conn.begin():  # as if the child still ran (a retry moved it back)
        store.conn.execute(
            update(executions)
            .where(executions.c.id == child_id)
            .values(runtime_status="InProgress")
        )
    later(app, 40)
    assert (await prune(app, older_than="30d", dry_run=True))["executions"] == 0
    assert (await prune(app, older_than="30d"))["executions"] == 0
    assert await store.get_execution(parent["id"]) is not None
    with store.conn.begin():
        store.conn.execute(
            update(executions).where(executions.c.id == child_id).values(runtime_status="Completed")
        )
    assert (await prune(app, older_than="30d", dry_run=True))["executions"] == 2
    done = await prune(app, older_than="30d", batch_size=1)
    assert (done["executions"], done["batches"]) == (2, 2)  # the child first, then the parent
    assert await store.get_execution(parent["id"]) is None


async def test_a_finished_child_stays_while_its_root_waits(app: App) -> None:
    """The first child completed long ago, the second waits for a person: the completed
    one was pruned from under its waiting parent (whose retry and output need it)."""
    await app.workflows.push(
        PushWorkflows(texts=[WorkflowText(text=CHILD), WorkflowText(text=WAITING)])
    )
    both = """\
name: both
steps:
  - {id: done, type: sys.sub_workflow, input: {workflow: child}}
  - {id: asks, type: sys.sub_workflow, input: {workflow: waiting}}
"""
    parent = await run(app, both)
    assert parent["runtimeStatus"] == "AwaitingUserInput"
    later(app, 40)
    assert (await prune(app, older_than="30d", dry_run=True))["executions"] == 0
    assert (await prune(app, older_than="30d"))["executions"] == 0
    store: Any = app.engine.store
    children = [c["id"] for s in parent["steps"].values() for c in s["childWorkflowExecutions"]]
    assert len(children) == 2
    for child in children:
        assert await store.get_execution(child) is not None


JOB = """\
name: two-steps
workflows:
  - {workflow: child}
  - {workflow: child}
"""


async def test_a_job_run_goes_whole_with_its_executions(app: App) -> None:
    """Pruning some of a job run's executions left it "Completed" while it reported its
    workflows as never started (executionId null)."""
    await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=CHILD, file="c.yaml")]))
    job = await app.job_runs.create(CreateJobRun(text=JOB, hold=True))
    done = await app.job_runs.drive(DriveJobRun(id=job["id"]))
    assert done["status"] == "Completed"
    first, second = (run["executionId"] for run in done["runs"])
    later(app, 2)
    # The second workflow ran long: it, and the job run, ended a moment ago.
    store: Any = app.engine.store
    now = app.engine.clock.now()
    with store.conn.begin():
        store.conn.execute(
            update(executions).where(executions.c.id == second).values(last_activity_at=now)
        )
        store.conn.execute(
            update(job_runs).where(job_runs.c.id == job["id"]).values(completed_at=now)
        )
    assert (await prune(app, older_than="1d"))["executions"] == 0  # not half of it
    assert (await app.job_runs.get(GetJobRun(id=job["id"])))["runs"][0]["executionId"] == first
    later(app, 2)
    assert (await prune(app, older_than="1d"))["executions"] == 2
    with pytest.raises(NotFoundError):
        await app.job_runs.get(GetJobRun(id=job["id"]))
