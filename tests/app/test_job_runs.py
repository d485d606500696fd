"""app.job_runs: who may name files in a job run, decided from the request; a job run
created once per idempotency key."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flowledger.app import (
    App,
    CreateJobRun,
    DriveJobRun,
    ListExecutions,
    ListJobRuns,
    PushWorkflows,
    WorkflowText,
)
from flowledger.errors import ConflictError, DefinitionError, InvalidInputError

LOCAL = """\
name: from-disk
steps:
  - {id: a, type: sys.transform, input: {value: 1}}
"""


async def test_a_job_run_given_as_text_names_pushed_workflows_only(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A definition in the current folder, extensionless, was loaded and run for a job
    run sent to the server."""
    (tmp_path / "localdef").write_text(LOCAL)
    monkeypatch.chdir(tmp_path)
    text = "name: j\nworkflows: [{workflow: localdef}]\n"
    with pytest.raises(DefinitionError) as caught:
        await app.job_runs.create(CreateJobRun(text=text))
    assert [p.format() for p in caught.value.problems] == [
        "<request>:2:24: workflows[0].workflow: there is no workflow named 'localdef'; "
        "push it first (flowledger workflows push FILE)"
    ]
    assert await app.engine.store.list_workflow_versions() == []

    # A local caller (the CLI) may name files, in a document as in a job file.
    created = await app.job_runs.create(CreateJobRun(text=text, read_files=True, hold=True))
    done = await app.job_runs.drive(DriveJobRun(id=created["id"]))
    assert (done["status"], done["runs"][0]["workflowName"]) == ("Completed", "from-disk")


def test_a_job_file_is_read_only_for_a_local_caller(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="read only for a local caller") as caught:
        CreateJobRun(file=str(tmp_path / "job.yaml"))
    assert caught.value.field_path == ("file",)
    assert CreateJobRun(file="job.yaml", read_files=True).read_files


async def test_a_job_run_with_an_idempotency_key_is_created_once(app: App) -> None:
    """POST /job-runs took no key: a client retrying after a timeout created a second
    job run (tour 22C F2). The same key answers the first one, also when the creates
    race; the same key with another job is refused, naming the job run it created."""
    await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=LOCAL)]))
    text = "name: j\nworkflows: [{workflow: from-disk, input: {n: 1}}]\n"
    keyed = CreateJobRun(text=text, idempotency_key="k-1")
    first = await app.job_runs.create(keyed)
    again = await app.job_runs.create(keyed)
    assert again["id"] == first["id"]
    raced = await asyncio.gather(
        *(
            app.job_runs.create(keyed.model_copy(update={"idempotency_key": "k-2"}))
            for _ in range(5)
        )
    )
    assert len({r["id"] for r in raced}) == 1
    for other in (
        text.replace("n: 1", "n: true"),  # JSON's true is not 1
        text.replace("name: j", "name: k"),
        text + "continue_on_failure: true\n",
    ):
        with pytest.raises(ConflictError) as caught:
            await app.job_runs.create(CreateJobRun(text=other, idempotency_key="k-1"))
        assert str(caught.value) == (
            f"the idempotency key 'k-1' created job run {first['id']} of another job (its "
            "name, continue_on_failure, or a workflow or its input differ); use a new key "
            "for a new job run"
        )
    listed = await app.job_runs.list(ListJobRuns())
    assert sorted(r["id"] for r in listed) == sorted({first["id"], raced[0]["id"]})
    executions = await app.executions.list(ListExecutions())
    assert len(executions.items) == 2  # one first workflow per job run, none twice


def test_a_held_job_run_takes_no_idempotency_key() -> None:
    with pytest.raises(InvalidInputError, match="is driven by its caller") as caught:
        CreateJobRun(text="name: j\nworkflows: []\n", hold=True, idempotency_key="k")
    assert caught.value.field_path == ("idempotencyKey",)
