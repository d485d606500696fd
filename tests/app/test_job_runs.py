"""app.job_runs: who may name files in a job run, decided from the request."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowledger.app import App, CreateJobRun, DriveJobRun
from flowledger.errors import DefinitionError, InvalidInputError

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
