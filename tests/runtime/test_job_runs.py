"""Job runs on both databases: order, failure policy, status, and advancing after a crash."""

from __future__ import annotations

import asyncio
import subprocess
import textwrap
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from flowledger import Engine, StepRegistry
from flowledger.definition.jobs import JobFile, parse_job_text
from flowledger.errors import ConflictError, DefinitionError
from flowledger.runtime import control
from flowledger.runtime.job_runs import JobRuns
from flowledger.runtime.job_state import progress
from flowledger.runtime.orphans import this_host
from flowledger.runtime.status import ExecutionStatus
from flowledger.worker import job_advancer
from flowledger.worker.worker import Worker, WorkerOptions
from tests.raw_sql import run_sql

FAST = WorkerOptions(
    concurrency=4, lease=timedelta(seconds=3), park_after=0.3, max_idle=0.05, max_duty_wait=0.05
)

GREET = """
name: greet
input_schema: {type: object, properties: {who: {type: string}}, required: [who]}
output: {text: "{{ steps.say.output }}"}
steps:
  - {id: say, type: sys.transform, input: {value: "hi {{ input.who }}"}}
"""
BOOM = """
name: boom
steps:
  - {id: fail, type: sys.fail, input: {message: "it broke"}}
"""
NAP = """
name: nap
steps:
  - {id: nap, type: sys.delay, input: {duration: 300ms}}
"""
#: Fails until its entity type exists (no step type needs a plugin): the fix a retry
#: runs after, as a warehouse coming back up was in the tour.
NEEDS = """
name: needs
steps:
  - {id: put, type: sys.create_entity, input: {entity_type: Parcel, payload: {n: 1}}}
"""
ASK = """
name: ask
steps:
  - id: approve
    type: sys.wait_for_input
    input: {prompt: "go?", schema: {type: object}}
"""


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    for name, text in {
        "greet": GREET,
        "boom": BOOM,
        "nap": NAP,
        "ask": ASK,
        "needs": NEEDS,
    }.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    return tmp_path


def job(flows: Path, text: str) -> JobFile:
    return parse_job_text(textwrap.dedent(text), str(flows / "job.yaml"), flows, files=True)


async def wait_for(job_runs: JobRuns, job_run_id: str, *statuses: str) -> dict[str, Any]:
    """The job run's document once its advancer recorded one of ``statuses``."""
    for _ in range(1000):
        row = await job_runs.engine.store.get_job_run(job_run_id)
        if row and row["status"] in statuses:
            return await job_runs.get(job_run_id)
        await asyncio.sleep(0.02)
    raise AssertionError(f"job run never became {statuses}: {await job_runs.get(job_run_id)}")


@pytest.fixture
async def worker(engine: Engine) -> AsyncIterator[Worker]:
    """A worker on its own engine (its own connection and owner), as on another machine."""
    async with Engine(engine.db_url, registry=engine.registry) as other:
        running = Worker(other, FAST)
        task = asyncio.create_task(running.run())
        yield running
        running.stop()
        await task


async def test_workflows_run_in_order_linked_by_job_run_id(engine: Engine, flows: Path) -> None:
    job_runs = JobRuns(engine)
    job_run_id = await job_runs.create(
        job(
            flows,
            """
            name: twice
            workflows:
              - {workflow: greet.yaml, input: {who: Ada}}
              - {workflow: nap.yaml}
              - {workflow: greet.yaml, input: {who: Alan}}
            """,
        ),
        created_by="test",
        hold=True,
    )
    seen: list[int] = []
    doc = await job_runs.drive(job_run_id, on_run=lambda run: seen.append(run["index"]))
    assert seen == [0, 1, 2]
    assert doc["status"] == "Completed"
    assert doc["name"] == "twice" and doc["continueOnFailure"] is False
    assert doc["createdBy"] == "test"
    assert doc["startedAt"] and doc["completedAt"] and doc["createdAt"]
    assert [(r["workflowName"], r["runtimeStatus"]) for r in doc["runs"]] == [
        ("greet", "Completed"),
        ("nap", "Completed"),
        ("greet", "Completed"),
    ]
    assert doc["runs"][2]["input"] == {"who": "Alan"}
    executions = [await engine.get_execution(r["executionId"]) for r in doc["runs"]]
    assert [e["output"] for e in (executions[0], executions[2])] == [
        {"text": "hi Ada"},
        {"text": "hi Alan"},
    ]
    assert all(e["createdBy"] == f"job:{job_run_id}" for e in executions)
    # Each started after the one before it ended.
    assert executions[0]["completedAt"] <= executions[1]["startedAt"]
    assert executions[1]["completedAt"] <= executions[2]["startedAt"]
    rows = await engine.store.job_run_executions(job_run_id)
    assert {r["id"] for r in rows} == {r["executionId"] for r in doc["runs"]}
    assert await job_runs.resolve_id(job_run_id[:8]) == job_run_id
    assert [d["id"] for d in await job_runs.list_runs()] == [job_run_id]


async def test_the_first_failure_stops_the_run(engine: Engine, flows: Path) -> None:
    job_runs = JobRuns(engine)
    text = """
        name: stops
        workflows: [{workflow: nap.yaml}, {workflow: boom.yaml}, {workflow: nap.yaml}]
    """
    job_run_id = await job_runs.create(job(flows, text), hold=True)
    doc = await job_runs.drive(job_run_id)
    assert doc["status"] == "Failed"
    assert [r["runtimeStatus"] for r in doc["runs"]] == ["Completed", "Failed", None]
    assert doc["runs"][2]["executionId"] is None
    # Each run says why it failed, as its execution's document does.
    failed = await engine.get_execution(doc["runs"][1]["executionId"])
    assert [r["error"] for r in doc["runs"]] == [None, failed["error"], None]
    assert failed["error"]["stepId"] == "fail" and "it broke" in failed["error"]["message"]
    assert len(await engine.store.job_run_executions(job_run_id)) == 2


async def test_continue_on_failure_runs_everything_and_still_fails(
    engine: Engine, flows: Path
) -> None:
    job_runs = JobRuns(engine)
    text = """
        name: goes-on
        continue_on_failure: true
        workflows: [{workflow: boom.yaml}, {workflow: greet.yaml, input: {who: Bo}}]
    """
    job_run_id = await job_runs.create(job(flows, text), hold=True)
    doc = await job_runs.drive(job_run_id)
    assert doc["status"] == "Failed"
    assert [r["runtimeStatus"] for r in doc["runs"]] == ["Failed", "Completed"]


def test_status_aggregation() -> None:
    def run(status: str) -> dict[str, Any]:
        return {"id": status, "runtime_status": status}

    done, failed, cancelled = run("Completed"), run("Failed"), run("Cancelled")
    assert progress(2, False, {}).status == ExecutionStatus.NOT_STARTED
    assert progress(2, False, {0: done}).next_index == 1
    assert progress(2, False, {0: done, 1: run("CompletedWithNoActionTaken")}).status == "Completed"
    assert progress(2, False, {0: run("InProgress")}).waiting_on == "InProgress"
    assert progress(2, False, {0: run("AwaitingUserInput")}).status == "AwaitingUserInput"
    assert progress(2, False, {0: failed}).status == "Failed"
    assert progress(2, True, {0: failed}).next_index == 1
    assert progress(2, True, {0: failed, 1: done}).status == "Failed"
    # A cancel is a person stopping the run: it stops even with continue_on_failure.
    assert progress(2, True, {0: cancelled}) == progress(2, False, {0: cancelled})
    assert progress(2, True, {0: cancelled}).status == "Cancelled"


async def test_workflows_resolve_next_to_the_job_file_then_cwd_then_by_name(
    engine: Engine, flows: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = tmp_path / "cwd"
    here.mkdir()
    (here / "local.yaml").write_text(NAP.replace("name: nap", "name: local"))
    (here / "greet.yaml").write_text("this file must not be used: the job's folder wins")
    monkeypatch.chdir(here)
    await engine.push(engine.load_text(BOOM.replace("name: boom", "name: pushed")))
    text = """
        name: places
        continue_on_failure: true
        workflows:
          - {workflow: greet.yaml, input: {who: Cy}}
          - {workflow: local.yaml}
          - {workflow: pushed}
    """
    job_runs = JobRuns(engine)
    doc = await job_runs.drive(await job_runs.create(job(flows, text), hold=True))
    assert [r["workflowName"] for r in doc["runs"]] == ["greet", "local", "pushed"]
    assert [r["runtimeStatus"] for r in doc["runs"]] == ["Completed", "Completed", "Failed"]


async def test_a_bad_job_fails_before_anything_is_stored(engine: Engine, flows: Path) -> None:
    (flows / "broken.yaml").write_text("name: broken\nsteps:\n  - {id: a, type: sys.nope}\n")
    text = """
        name: bad
        workflows:
          - {workflow: greet.yaml, input: {who: 3}}
          - {workflow: greet.yaml}
          - {workflow: missing.yaml}
          - {workflow: no-such-name}
          - {workflow: broken.yaml}
          - {workflow: nap.yaml}
          - {workflow: broken.yaml}
    """
    with pytest.raises(DefinitionError) as caught:
        await JobRuns(engine).create(job(flows, text))
    lines = [p.format() for p in caught.value.problems]
    job_file = str(flows / "job.yaml")
    assert lines[0].startswith(f"{job_file}:4:35: workflows[0].input: the input does not match")
    assert "3 is not of type 'string'" in lines[0]
    assert lines[1].startswith(f"{job_file}:5:5: workflows[1].input: ")
    assert "'who' is a required property" in lines[1]
    assert lines[2] == (
        f"{job_file}:6:16: workflows[2].workflow: there is no definition file missing.yaml in "
        f"{flows} (the job file's folder) or in the current folder"
    )
    assert lines[3] == (
        f"{job_file}:7:16: workflows[3].workflow: 'no-such-name' is neither a definition file "
        "nor a pushed workflow name"
    )
    assert lines[4].startswith(f"{flows / 'broken.yaml'}:3:19: step 'a': type: unknown step type")
    assert lines[5].startswith(f"{job_file}:8:16: workflows[4].workflow: broken.yaml is not")
    # A file named twice has its own problems listed once.
    assert lines[6].startswith(f"{job_file}:10:16: workflows[6].workflow: broken.yaml is not")
    assert len(lines) == 7
    assert await engine.store.list_job_runs() == []
    assert await engine.store.list_workflow_versions() == []


async def test_a_worker_runs_a_job_run_nobody_drives(
    engine: Engine, flows: Path, worker: Worker
) -> None:
    job_runs = JobRuns(engine)
    text = """
        name: queued
        workflows: [{workflow: nap.yaml}, {workflow: greet.yaml, input: {who: Di}}]
    """
    job_run_id = await job_runs.create(job(flows, text))
    doc = await wait_for(job_runs, job_run_id, "Completed", "Failed")
    assert doc["status"] == "Completed"
    assert [r["runtimeStatus"] for r in doc["runs"]] == ["Completed", "Completed"]


async def test_a_job_run_for_the_workers_starts_its_first_workflow_at_once(
    engine: Engine, flows: Path
) -> None:
    """Its creation starts the first workflow (a start like any other, which wakes the
    workers), not the workers' next look at job runs."""
    job_runs = JobRuns(engine)
    text = """
        name: now
        workflows: [{workflow: greet.yaml, input: {who: Al}}, {workflow: nap.yaml}]
    """
    doc = await job_runs.get(await job_runs.create(job(flows, text)))
    assert doc["status"] == "InProgress"
    assert doc["startedAt"] is not None
    first, second = doc["runs"]
    assert first["runtimeStatus"] == "NotStarted"
    execution = await engine.store.get_execution(first["executionId"])
    assert execution is not None
    assert execution["lease_owner"] is None  # nobody holds it: any worker may take it
    assert second["executionId"] is None


async def test_the_worker_that_ends_a_workflow_starts_the_next_at_once(
    engine: Engine, flows: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not at its job-run duty's pace: with that pace at an hour, the three workflows
    still run one after another."""
    monkeypatch.setattr(job_advancer, "BUSY", 3600.0)
    monkeypatch.setattr(job_advancer, "IDLE", 3600.0)
    patient = replace(FAST, max_duty_wait=3600.0)
    async with Engine(engine.db_url, registry=engine.registry) as other:
        running = Worker(other, patient)
        task = asyncio.create_task(running.run())
        try:
            await asyncio.sleep(0.2)  # past the duties' first round
            job_runs = JobRuns(engine)
            text = """
                name: chain
                workflows:
                  - {workflow: greet.yaml, input: {who: A}}
                  - {workflow: greet.yaml, input: {who: B}}
                  - {workflow: greet.yaml, input: {who: C}}
            """
            job_run_id = await job_runs.create(job(flows, text))
            doc = await wait_for(job_runs, job_run_id, "Completed", "Failed")
        finally:
            running.stop()
            await task
    assert doc["status"] == "Completed"
    assert [r["runtimeStatus"] for r in doc["runs"]] == ["Completed"] * 3


async def test_a_killed_driver_is_continued_by_a_worker_exactly_once(
    db_url: str, registry: StepRegistry, flows: Path
) -> None:
    text = """
        name: crash
        workflows: [{workflow: nap.yaml}, {workflow: greet.yaml, input: {who: Ed}}]
    """
    lease = timedelta(milliseconds=400)
    async with Engine(db_url, registry=registry, lease=lease) as first:
        job_runs = JobRuns(first)
        job_run_id = await job_runs.create(job(flows, text), hold=True)

        class Killed(Exception):
            pass

        def die(run: dict[str, Any]) -> None:
            raise Killed

        with pytest.raises(Killed):  # the driver "dies" once the first workflow ended
            await job_runs.drive(job_run_id, on_run=die)
        # A kill releases nothing: the lease stays until it lapses.
        assert await first.store.acquire_job_run(job_run_id, first.owner, timedelta(hours=1))
    async with Engine(db_url, registry=registry) as second:
        job_runs = JobRuns(second)
        assert not await job_runs.advance(job_run_id)  # the lease has not lapsed yet
        # The hour passes: its end moved back, not waited for (a 1 s lease could end
        # before the line above on a loaded machine).
        ended = "UPDATE job_runs SET lease_expires_at = created_at WHERE id = :id"
        assert await asyncio.to_thread(run_sql, db_url, ended, id=job_run_id) == 1
        doc = await job_runs.get(job_run_id)
        assert [r["runtimeStatus"] for r in doc["runs"]] == ["Completed", None]
        worker = Worker(second, FAST)
        task = asyncio.create_task(worker.run())
        try:
            doc = await wait_for(job_runs, job_run_id, "Completed", "Failed")
        finally:
            worker.stop()
            await task
    assert [r["runtimeStatus"] for r in doc["runs"]] == ["Completed", "Completed"]
    async with Engine(db_url, registry=registry) as third:
        assert len(await third.store.job_run_executions(job_run_id)) == 2


async def test_a_second_engine_drives_on_after_a_killed_driver(
    db_url: str, registry: StepRegistry, flows: Path
) -> None:
    text = """
        name: crash
        workflows: [{workflow: greet.yaml, input: {who: Flo}}, {workflow: nap.yaml}]
    """
    # A process that died on this host: its owner name carries a pid that is gone.
    gone = _dead_pid()
    async with Engine(db_url, registry=registry) as engine:
        job_runs = JobRuns(engine)
        job_run_id = await job_runs.create(job(flows, text), hold=True)
        dead = f"{this_host()}:{gone}:dead"
        await engine.store.release_job_run(job_run_id, engine.owner)
        assert await engine.store.acquire_job_run(job_run_id, dead, timedelta(hours=1))
        # The dead holder's lease is taken at once, not after the hour.
        doc = await asyncio.wait_for(job_runs.drive(job_run_id), timeout=30)
    assert doc["status"] == "Completed"
    assert [r["runtimeStatus"] for r in doc["runs"]] == ["Completed", "Completed"]


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


async def test_a_driver_and_a_worker_never_start_an_item_twice(
    engine: Engine, flows: Path, worker: Worker
) -> None:
    text = """
        name: race
        workflows:
          - {workflow: nap.yaml}
          - {workflow: greet.yaml, input: {who: Gil}}
          - {workflow: nap.yaml}
          - {workflow: greet.yaml, input: {who: Hu}}
    """
    job_runs = JobRuns(engine, poll=0.02)
    # Created for the workers, driven here too: both advance it, and both run executions.
    job_run_id = await job_runs.create(job(flows, text))
    doc = await job_runs.drive(job_run_id)
    assert doc["status"] == "Completed"
    assert [r["runtimeStatus"] for r in doc["runs"]] == ["Completed"] * 4
    assert len(await engine.store.job_run_executions(job_run_id)) == 4


async def test_the_job_waits_for_input_then_goes_on(
    engine: Engine, flows: Path, worker: Worker
) -> None:
    job_runs = JobRuns(engine)
    text = """
        name: asks
        workflows: [{workflow: ask.yaml}, {workflow: greet.yaml, input: {who: Ida}}]
    """
    job_run_id = await job_runs.create(job(flows, text), hold=True)
    doc = await job_runs.drive(job_run_id)
    assert doc["status"] == "AwaitingUserInput"
    assert [r["runtimeStatus"] for r in doc["runs"]] == ["AwaitingUserInput", None]
    assert doc["completedAt"] is None
    await engine.submit_input(doc["runs"][0]["executionId"], "approve", {})
    doc = await wait_for(job_runs, job_run_id, "Completed", "Failed")
    assert [r["runtimeStatus"] for r in doc["runs"]] == ["Completed", "Completed"]


async def test_a_cancelled_execution_cancels_the_run(
    engine: Engine, flows: Path, worker: Worker
) -> None:
    job_runs = JobRuns(engine)
    text = """
        name: cancelled
        continue_on_failure: true
        workflows: [{workflow: ask.yaml}, {workflow: nap.yaml}]
    """
    job_run_id = await job_runs.create(job(flows, text), hold=True)
    doc = await job_runs.drive(job_run_id)
    await engine.cancel(doc["runs"][0]["executionId"], reason="not needed")
    doc = await wait_for(job_runs, job_run_id, "Cancelled", "Completed", "Failed")
    assert doc["status"] == "Cancelled"
    assert [r["runtimeStatus"] for r in doc["runs"]] == ["Cancelled", None]


async def test_cancelling_a_job_run_cancels_the_workflow_it_is_on(
    engine: Engine, flows: Path, worker: Worker
) -> None:
    from flowledger.errors import ConflictError

    job_runs = JobRuns(engine)
    text = """
        name: to-cancel
        continue_on_failure: true
        workflows: [{workflow: greet.yaml, input: {who: Al}}, {workflow: ask.yaml},
                    {workflow: nap.yaml}]
    """
    job_run_id = await job_runs.create(job(flows, text))  # the worker drives it
    for _ in range(1000):
        doc = await job_runs.get(job_run_id)
        if doc["status"] == "AwaitingUserInput":
            break
        await asyncio.sleep(0.02)
    asked = doc["runs"][1]["executionId"]
    assert await job_runs.cancel(job_run_id, by="ops") == asked
    doc = await wait_for(job_runs, job_run_id, "Cancelled", "Completed", "Failed")
    assert doc["status"] == "Cancelled"
    assert [r["runtimeStatus"] for r in doc["runs"]] == ["Completed", "Cancelled", None]
    with pytest.raises(ConflictError, match="already ended: Cancelled"):
        await job_runs.cancel(job_run_id)


# -- resuming a failed job run by retrying its failed workflow --------------------------------


async def test_retrying_the_failed_workflow_resumes_its_job_run_in_the_workers(
    engine: Engine, flows: Path, worker: Worker
) -> None:
    """The tour: the execution was retried to Completed, but its job run stayed Failed
    and its next workflows never ran."""
    job_runs = JobRuns(engine)
    text = """
        name: resumes
        workflows:
          - {workflow: greet.yaml, input: {who: Al}}
          - {workflow: needs.yaml}
          - {workflow: greet.yaml, input: {who: Bo}}
    """
    job_run_id = await job_runs.create(job(flows, text))  # the workers run it
    doc = await wait_for(job_runs, job_run_id, "Completed", "Failed")
    assert doc["status"] == "Failed"
    assert [r["runtimeStatus"] for r in doc["runs"]] == ["Completed", "Failed", None]
    failed = doc["runs"][1]["executionId"]
    # The document reads Failed from its executions as soon as one fails; the advancer
    # records it on the job run's row and lets go a moment later (CI on PostgreSQL read
    # the row InProgress, held): wait for that before asking what a refused retry leaves.
    for _ in range(1000):
        row = await engine.store.get_job_run(job_run_id)
        if row is not None and (row["status"], row["lease_owner"]) == ("Failed", None):
            break
        await asyncio.sleep(0.02)

    # A retry refused (another live process holds the execution) leaves it Failed.
    epoch = await engine.store.acquire_lease(failed, "elsewhere:1:x", timedelta(hours=1))
    assert epoch is not None
    with pytest.raises(ConflictError, match="being retried or run by someone else"):
        await JobRuns(engine).retry_execution(failed, by="python")
    row = await engine.store.get_job_run(job_run_id)
    assert row is not None and (row["status"], row["lease_owner"]) == ("Failed", None)
    assert row["completed_at"] is not None
    await engine.store.release_lease(failed, epoch)

    await engine.entities.create_type("Parcel")  # the fix
    await JobRuns(engine).retry_execution(
        failed, by="python"
    )  # as `executions retry` and the API's retry do
    reopened = await job_runs.get(job_run_id)  # open again (or finished by the worker)
    assert reopened["status"] in ("InProgress", "Completed"), reopened

    doc = await wait_for(job_runs, job_run_id, "Completed", "Failed")
    assert doc["status"] == "Completed"
    assert [r["runtimeStatus"] for r in doc["runs"]] == ["Completed"] * 3
    assert doc["runs"][1]["executionId"] == failed  # retried in place, not started anew
    assert doc["runs"][1]["error"] is None
    assert doc["completedAt"] is not None
    assert len(await engine.store.job_run_executions(job_run_id)) == 3


async def test_a_refused_retry_leaves_the_job_run_failed_before_another_advancer_looks(
    engine: Engine, flows: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flaky test above: the refused retry let go of the job run it had opened, then
    took it again to record it Failed; a worker's advancer that took it in between held
    it InProgress when the retry returned."""
    job_runs = JobRuns(engine)
    text = "name: refused\nworkflows: [{workflow: needs.yaml}, {workflow: nap.yaml}]\n"
    job_run_id = await job_runs.create(job(flows, text), hold=True)
    failed = (await job_runs.drive(job_run_id))["runs"][0]["executionId"]
    epoch = await engine.store.acquire_lease(failed, "elsewhere:1:x", timedelta(hours=1))
    assert epoch is not None
    release = engine.store.release_job_run
    took: list[bool] = []

    async with Engine(engine.db_url, registry=engine.registry) as other:  # a worker's

        async def advancer_looks_then(job_run_id: str, owner: str) -> None:
            await release(job_run_id, owner)  # its first move: take the job run
            took.append(await other.store.acquire_job_run(job_run_id, other.owner, other.lease))

        monkeypatch.setattr(engine.store, "release_job_run", advancer_looks_then)
        with pytest.raises(ConflictError, match="being retried or run by someone else"):
            await JobRuns(engine).retry_execution(failed, by="python")
        monkeypatch.undo()
        row = await engine.store.get_job_run(job_run_id)
        assert row is not None and (row["status"], row["lease_owner"]) == ("Failed", None)
        assert took == [False]  # it found the job run ended: nothing to hold


async def test_jobs_retry_retries_the_failed_workflow_and_drives_the_rest_here(
    engine: Engine, flows: Path
) -> None:
    job_runs = JobRuns(engine)
    text = """
        name: redrive
        workflows: [{workflow: needs.yaml}, {workflow: greet.yaml, input: {who: Cy}}]
    """
    job_run_id = await job_runs.create(job(flows, text), hold=True)
    doc = await job_runs.drive(job_run_id)
    assert [r["runtimeStatus"] for r in doc["runs"]] == ["Failed", None]
    await engine.entities.create_type("Parcel")

    assert await job_runs.retry(job_run_id, by="ops") == [doc["runs"][0]["executionId"]]
    seen: list[int] = []
    doc = await job_runs.drive(job_run_id, on_run=lambda run: seen.append(run["index"]))
    assert doc["status"] == "Completed"
    assert seen == [0, 1]
    assert [r["runtimeStatus"] for r in doc["runs"]] == ["Completed", "Completed"]
    events = await engine.events(doc["runs"][0]["executionId"])
    [retried] = [e for e in events if e["kind"] == "execution.retried"]
    assert retried["detail"]["by"] == "ops"

    with pytest.raises(ConflictError, match="is Completed: only a Failed job run is retried"):
        await job_runs.retry(job_run_id)


async def test_a_retry_with_continue_on_failure_runs_only_the_failed_workflows_again(
    engine: Engine, flows: Path
) -> None:
    job_runs = JobRuns(engine)
    text = """
        name: all-of-them
        continue_on_failure: true
        workflows: [{workflow: needs.yaml}, {workflow: greet.yaml, input: {who: Di}}]
    """
    job_run_id = await job_runs.create(job(flows, text), hold=True)
    doc = await job_runs.drive(job_run_id)
    assert [r["runtimeStatus"] for r in doc["runs"]] == ["Failed", "Completed"]
    await engine.entities.create_type("Parcel")
    await job_runs.retry(job_run_id)
    doc = await job_runs.drive(job_run_id)
    assert doc["status"] == "Completed"
    assert len(await engine.store.job_run_executions(job_run_id)) == 2


async def test_a_cancelled_job_run_stays_cancelled_when_a_failed_workflow_is_retried(
    engine: Engine, flows: Path, worker: Worker
) -> None:
    job_runs = JobRuns(engine)
    text = """
        name: stopped
        continue_on_failure: true
        workflows: [{workflow: boom.yaml}, {workflow: ask.yaml}, {workflow: nap.yaml}]
    """
    job_run_id = await job_runs.create(job(flows, text), hold=True)
    doc = await job_runs.drive(job_run_id)
    await engine.cancel(doc["runs"][1]["executionId"], reason="not needed")
    doc = await wait_for(job_runs, job_run_id, "Cancelled")
    with pytest.raises(ConflictError, match="is Cancelled: a cancelled job run stays stopped"):
        await job_runs.retry(job_run_id)
    await JobRuns(engine).retry_execution(
        doc["runs"][0]["executionId"], by="python"
    )  # the execution alone: allowed
    row = await engine.store.get_job_run(job_run_id)
    assert row is not None and row["status"] == "Cancelled"


async def test_an_end_recorded_while_the_retry_commits_does_not_stop_the_job_run(
    engine: Engine, flows: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen through the API: the advancer read the failed execution, the retry committed,
    then the advancer recorded the job run Failed, and it never went on."""
    job_runs = JobRuns(engine)
    text = "name: racy\nworkflows: [{workflow: needs.yaml}, {workflow: nap.yaml}]\n"
    job_run_id = await job_runs.create(job(flows, text), hold=True)
    doc = await job_runs.drive(job_run_id)
    failed = doc["runs"][0]["executionId"]
    await engine.entities.create_type("Parcel")
    # As it is between the execution's end and its advancer's record of it.
    not_yet = "UPDATE job_runs SET status = 'InProgress', completed_at = NULL WHERE id = :id"
    assert await asyncio.to_thread(run_sql, engine.db_url, not_yet, id=job_run_id) == 1
    retry = control.retry

    async with Engine(engine.db_url, registry=engine.registry) as other:  # a worker's

        async def advancer_first(*args: Any) -> Any:  # its record lands before the commit
            assert await JobRuns(other).advance(job_run_id) is False
            assert (await job_runs.get(job_run_id))["status"] == "Failed"
            return await retry(*args)

        monkeypatch.setattr(control, "retry", advancer_first)
        await JobRuns(engine).retry_execution(failed, by="python")
        monkeypatch.setattr(control, "retry", retry)
        assert (await job_runs.get(job_run_id))["status"] == "InProgress"
        assert (await job_runs.drive(job_run_id))["status"] == "Completed"

        # An advancer that read the failure before the commit and writes after it: while
        # the retried execution runs, and after it completed.
        (flows / "crate.yaml").write_text(NEEDS.replace("Parcel", "Crate"))
        job_run_id = await job_runs.create(job(flows, text.replace("needs", "crate")), hold=True)
        doc = await job_runs.drive(job_run_id)
        failed = doc["runs"][0]["executionId"]
        assert await asyncio.to_thread(run_sql, engine.db_url, not_yet, id=job_run_id) == 1
        await engine.entities.create_type("Crate")
        await JobRuns(engine).retry_execution(failed, by="python")
        store = other.store
        assert await store.acquire_job_run(job_run_id, other.owner, timedelta(minutes=1))
        stale = {"started": False, "completed": True, "failed": [failed]}
        assert not await store.record_job_run_status(job_run_id, other.owner, "Failed", **stale)
        assert (await engine.settle(failed))["runtimeStatus"] == "Completed"
        assert not await store.record_job_run_status(job_run_id, other.owner, "Failed", **stale)
        await store.release_job_run(job_run_id, other.owner)
        assert (await job_runs.drive(job_run_id))["status"] == "Completed"


# -- a cancel between two workflows ----------------------------------------------------------


async def test_a_cancel_between_two_workflows_ends_the_job_run_before_the_next_starts(
    engine: Engine, flows: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel that came once the job run's workflow had completed, before the next one
    started, found nothing to cancel and looked again until the next one had started:
    the job run went on meanwhile. The cancel is recorded at once, and the start of the
    next workflow, already under way here (its advance recorded), checks it in its own
    write. Another process cancels inside that window: the hook runs it there."""
    job_runs = JobRuns(engine)
    text = """
        name: stopped-between
        workflows: [{workflow: greet.yaml, input: {who: Al}}, {workflow: nap.yaml},
                    {workflow: greet.yaml, input: {who: Bo}}]
    """
    job_run_id = await job_runs.create(job(flows, text), hold=True)
    start = engine.start
    answers: list[str | None] = []

    async def cancelled_first(workflow: Any, *args: Any, **kwargs: Any) -> str:
        if workflow.name == "nap":
            async with Engine(engine.db_url, registry=engine.registry) as elsewhere:
                answers.append(await JobRuns(elsewhere, poll=0.01).cancel(job_run_id))
        return await start(workflow, *args, **kwargs)

    monkeypatch.setattr(engine, "start", cancelled_first)
    doc = await job_runs.drive(job_run_id)
    assert answers == [None]  # nothing was running: nothing to cancel
    assert doc["status"] == "Cancelled"
    assert [r["runtimeStatus"] for r in doc["runs"]] == ["Completed", None, None]
    row = await engine.store.get_job_run(job_run_id)
    assert row is not None and row["status"] == "Cancelled" and row["completed_at"]
    with pytest.raises(ConflictError, match="already ended: Cancelled"):
        await job_runs.cancel(job_run_id)


async def test_a_job_run_cancelled_before_it_started_never_starts(
    engine: Engine, flows: Path
) -> None:
    """A job run created to be driven later and cancelled first: the cancel looked for a
    workflow to cancel 40 times, 10 s, and failed; it is recorded Cancelled at once."""
    job_runs = JobRuns(engine)
    text = "name: never\nworkflows: [{workflow: greet.yaml, input: {who: Al}}]\n"
    job_run_id = await job_runs.create(job(flows, text), hold=True)
    assert await job_runs.cancel(job_run_id, by="ops") is None
    doc = await job_runs.drive(job_run_id)
    assert doc["status"] == "Cancelled"
    assert [r["executionId"] for r in doc["runs"]] == [None]
