"""`flowledger jobs` through the real command, including a kill in the middle of a job run."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from flowledger import Engine
from flowledger.runtime.job_runs import JobRuns
from tests.cli.clifast_forkserver import kill_hard
from tests.cli.conftest import Cli
from tests.conftest import REPO

pytestmark = pytest.mark.e2e

NAP = "name: nap\nsteps:\n  - {id: nap, type: sys.delay, input: {duration: 300ms}}\n"
BOOM = "name: boom\nsteps:\n  - {id: fail, type: sys.fail, input: {message: it broke}}\n"
GREET = """
name: greet
input_schema: {type: object, properties: {who: {type: string}}, required: [who]}
steps:
  - {id: say, type: sys.transform, input: {value: "hi {{ input.who }}"}}
"""

#: Fails until its entity type exists: the fix a retry runs after (no plugin needed).
NEEDS = """
name: needs
steps:
  - {id: put, type: sys.create_entity, input: {entity_type: Parcel, payload: {n: 1}}}
"""


def write_flows(folder: Path) -> None:
    for name, text in {"nap": NAP, "boom": BOOM, "greet": GREET, "needs": NEEDS}.items():
        (folder / f"{name}.yaml").write_text(text)


def test_jobs_run_shows_each_workflow_and_jobs_show_reads_it_back(cli: Cli) -> None:
    result = cli("jobs", "run", "examples/nightly_job.yaml")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("job run ") and "(nightly-demo, 2 workflows)" in lines[0]
    assert lines[1].startswith("[1/2] hello v1  Completed  execution ")
    assert lines[2].startswith("[2/2] order-pipeline v1  Completed  execution ")
    assert lines[3].startswith("Completed  job nightly-demo  2/2 workflows ended  id ")

    [listed] = json.loads(cli("jobs", "list", "--json").stdout)
    shown = cli("jobs", "show", listed["id"][:8], "--json")
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc == listed
    assert doc["status"] == "Completed" and doc["createdBy"] == "cli:jobs"
    assert [r["workflowName"] for r in doc["runs"]] == ["hello", "order-pipeline"]
    last = doc["runs"][1]
    execution = json.loads(cli("executions", "show", last["executionId"], "--json").stdout)
    assert execution["runtimeStatus"] == "Completed"
    assert execution["trigger"]["arguments"] == last["input"]

    text = cli("jobs", "show", doc["id"])
    assert text.returncode == 0, text.stderr
    assert all(run["executionId"] in text.stdout for run in doc["runs"])


def test_a_failed_job_run_exits_1_with_json(cli: Cli, tmp_path: Path) -> None:
    write_flows(tmp_path)
    job = tmp_path / "job.yaml"
    job.write_text("name: fails\nworkflows: [{workflow: boom.yaml}, {workflow: nap.yaml}]\n")
    result = cli("jobs", "run", str(job), "--json")
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)  # only JSON on stdout
    assert doc["status"] == "Failed"
    assert [r["runtimeStatus"] for r in doc["runs"]] == ["Failed", None]
    assert "it broke" in doc["runs"][0]["error"]["message"]


def test_a_failed_job_run_says_why(cli: Cli, tmp_path: Path) -> None:
    write_flows(tmp_path)
    job = tmp_path / "job.yaml"
    job.write_text("name: fails\nworkflows: [{workflow: nap.yaml}, {workflow: boom.yaml}]\n")
    result = cli("jobs", "run", str(job))
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[2].startswith("[2/2] boom v1  Failed  execution ")
    assert lines[3] == "  error: step 'fail' (attempt 1): it broke"
    job_run_id = lines[-1].rsplit(" ", 1)[-1]
    shown = cli("jobs", "show", job_run_id)
    assert shown.returncode == 0, shown.stderr
    assert "error of #2: step 'fail' (attempt 1): it broke" in shown.stdout
    assert "error of #1" not in shown.stdout


def test_a_bad_job_file_exits_2_and_runs_nothing(cli: Cli, tmp_path: Path) -> None:
    write_flows(tmp_path)
    job = tmp_path / "job.yaml"
    job.write_text(
        "name: bad\nworkflows:\n"
        "  - {workflow: nap.yaml}\n"
        "  - {workflow: greet.yaml, input: {who: 7}}\n"
        "  - {workflow: nowhere}\n"
    )
    result = cli("jobs", "run", str(job))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{job}:4:35: workflows[1].input: the input does not match greet's input_schema: "
        "input.who: 7 is not of type 'string'",
        f"{job}:5:16: workflows[2].workflow: 'nowhere' is neither a definition file nor a "
        "pushed workflow name",
    ]
    assert "Traceback" not in result.stderr
    assert json.loads(cli("jobs", "list", "--json").stdout) == []

    job.write_text("name: bad\nworkflows: {workflow: nap.yaml}\n")
    result = cli("jobs", "run", str(job))
    assert result.returncode == 2
    assert result.stderr.startswith(f"{job}:2:12: workflows: must be a list, not {{")


def test_show_of_an_unknown_id_says_so(cli: Cli) -> None:
    assert cli("db", "upgrade").returncode == 0
    result = cli("jobs", "show", "nope")
    assert result.returncode == 1
    assert "no job run has an id starting with 'nope'" in result.stderr


async def _job_runs(db_url: str) -> list[dict[str, Any]]:
    async with Engine(db_url) as engine:
        return await JobRuns(engine).list_runs()


async def _execution_count(db_url: str, job_run_id: str) -> int:
    async with Engine(db_url) as engine:
        return len(await engine.store.job_run_executions(job_run_id))


def _poll(db_url: str, done: Any, seconds: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    while True:
        docs = asyncio.run(_job_runs(db_url))
        if (docs and done(docs[0])) or time.monotonic() > deadline:
            return docs
        time.sleep(0.05)


@pytest.mark.slow
def test_a_killed_jobs_run_is_finished_by_a_worker_exactly_once(
    db_url: str, tmp_path: Path, forked_command: str
) -> None:
    write_flows(tmp_path)
    job = tmp_path / "job.yaml"
    job.write_text(
        "name: survives\nworkflows:\n"
        "  - {workflow: nap.yaml}\n"
        "  - {workflow: greet.yaml, input: {who: Kim}}\n"
        "  - {workflow: nap.yaml}\n"
    )
    env = {**os.environ, "FLOWLEDGER_LEASE": "1s"}
    log = (tmp_path / "log.txt").open("ab")
    driver = subprocess.Popen(
        [forked_command, "jobs", "run", str(job), "--db", db_url],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        # Kill it once the first workflow ended: between two workflows, or in the second.
        _poll(db_url, lambda d: d["runs"][0]["runtimeStatus"] == "Completed")
    finally:
        kill_hard(driver)  # dead and reaped when it returns
    worker = subprocess.Popen(
        [forked_command, "worker", "--db", db_url, "--lease", "1s"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        [doc] = _poll(db_url, lambda d: d["status"] in ("Completed", "Failed"))
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        log.close()
    assert doc["status"] == "Completed", (tmp_path / "log.txt").read_text()[-3000:]
    assert [r["runtimeStatus"] for r in doc["runs"]] == ["Completed"] * 3
    assert asyncio.run(_execution_count(db_url, doc["id"])) == 3  # each started exactly once


def test_jobs_cancel_ends_a_waiting_job_run(cli: Cli, tmp_path: Path) -> None:
    job_file = tmp_path / "waits.yaml"
    job_file.write_text(
        "name: waits\nworkflows:\n"
        "  - {workflow: " + str(REPO / "examples/approval.yaml") + ", input: {leads: 1}}\n"
        "  - {workflow: " + str(REPO / "examples/hello.yaml") + ", input: {name: Ann}}\n"
    )
    waiting = cli("jobs", "run", str(job_file), "--json")
    assert waiting.returncode == 3, waiting.stderr  # the first workflow asks a person
    job_run_id = json.loads(waiting.stdout)["id"]
    cancelled = cli("jobs", "cancel", job_run_id[:8], "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    doc = json.loads(cancelled.stdout)
    assert doc["status"] == "Cancelled"
    assert [r["runtimeStatus"] for r in doc["runs"]] == ["Cancelled", None]
    again = cli("jobs", "cancel", job_run_id)
    assert again.returncode == 1 and "already ended: Cancelled" in again.stderr


def test_an_answer_given_from_the_command_line_moves_its_job_run_on(
    cli: Cli, tmp_path: Path
) -> None:
    """The execution completed, but its job run did not start its next workflow until a
    worker looked."""
    job_file = tmp_path / "asks.yaml"
    job_file.write_text(
        "name: asks\nworkflows:\n"
        "  - {workflow: " + str(REPO / "examples/approval.yaml") + ", input: {leads: 1}}\n"
        "  - {workflow: " + str(REPO / "examples/hello.yaml") + ", input: {name: Ann}}\n"
    )
    waiting = cli("jobs", "run", str(job_file), "--json")
    assert waiting.returncode == 3, waiting.stderr
    shown = json.loads(waiting.stdout)
    first = shown["runs"][0]["executionId"]
    answered = cli("executions", "input", first, "approve", "--data", '{"approved": true}')
    assert answered.returncode == 0, answered.stderr
    after = json.loads(cli("jobs", "show", shown["id"], "--json").stdout)
    assert [r["runtimeStatus"] for r in after["runs"]] == ["Completed", "NotStarted"]


def _failed_job(cli: Cli, tmp_path: Path) -> dict[str, Any]:
    """A job run that failed at its first workflow, whose fix is then made."""
    write_flows(tmp_path)
    job = tmp_path / "job.yaml"
    job.write_text(
        "name: nightly\nworkflows:\n"
        "  - {workflow: needs.yaml}\n"
        "  - {workflow: greet.yaml, input: {who: Kim}}\n"
    )
    failed = cli("jobs", "run", str(job), "--json")
    assert failed.returncode == 1, failed.stderr
    doc: dict[str, Any] = json.loads(failed.stdout)
    assert [r["runtimeStatus"] for r in doc["runs"]] == ["Failed", None]
    assert cli("entities", "types", "create", "Parcel").returncode == 0
    return doc


def test_jobs_retry_resumes_a_failed_job_run_from_its_failed_workflow(
    cli: Cli, db_url: str, tmp_path: Path
) -> None:
    """A job run stayed Failed with no way on but a new run, which repeated what had
    completed (tour 20b F4)."""
    doc = _failed_job(cli, tmp_path)
    first = doc["runs"][0]["executionId"]
    retried = cli("jobs", "retry", doc["id"][:8])
    assert retried.returncode == 0, retried.stderr
    lines = retried.stdout.splitlines()
    assert lines[0] == f"job run {doc['id']} (nightly): retrying #1 needs"
    assert lines[1] == f"[1/2] needs v1  Completed  execution {first}"
    assert lines[2].startswith("[2/2] greet v1  Completed  execution ")
    assert lines[3] == f"Completed  job nightly  2/2 workflows ended  id {doc['id']}"

    shown = json.loads(cli("jobs", "show", doc["id"], "--json").stdout)
    assert shown["status"] == "Completed" and shown["completedAt"] is not None
    assert shown["runs"][0]["executionId"] == first  # in place: not run anew
    assert asyncio.run(_execution_count(db_url, doc["id"])) == 2

    again = cli("jobs", "retry", doc["id"])
    assert again.returncode == 1
    assert again.stderr.strip() == (
        f"error: job run {doc['id']} is Completed: only a Failed job run is retried"
    )


def test_a_rerun_of_a_job_runs_execution_says_it_is_outside_the_job_run(
    cli: Cli, tmp_path: Path
) -> None:
    """A rerun of a job run's failed workflow completed, and nothing said that the job
    run stayed Failed: it is a new execution of its own, and now the command says so,
    and how to resume the job run."""
    doc = _failed_job(cli, tmp_path)
    first = doc["runs"][0]["executionId"]
    rerun = cli("executions", "rerun", first, "--from", "put", "--json")
    assert rerun.returncode == 0, rerun.stderr
    new = json.loads(rerun.stdout)
    assert (new["rerunOf"], new["jobRunId"], new["runtimeStatus"]) == (first, None, "Completed")
    assert rerun.stderr.strip() == (
        f"note: the rerun {new['id']} is not part of job run {doc['id']}, which its original "
        f"{first} belongs to: the job run neither waits for it nor goes on after it; to "
        f"resume a Failed job run, retry it instead (`flowledger jobs retry {doc['id']}`)"
    )
    shown = json.loads(cli("jobs", "show", doc["id"], "--json").stdout)
    assert shown["status"] == "Failed" and shown["runs"][0]["executionId"] == first
    plain = cli("executions", "rerun", first, "--from", "put")
    assert plain.returncode == 0, plain.stderr
    assert f"is not part of job run {doc['id']}" in plain.stderr


@pytest.mark.slow
def test_executions_retry_of_the_failed_workflow_lets_a_worker_carry_the_job_run_on(
    cli: Cli, db_url: str, tmp_path: Path, forked_command: str
) -> None:
    """The tour's path: the execution retried to Completed left its job run Failed, and
    the next workflow never started."""
    doc = _failed_job(cli, tmp_path)
    first = doc["runs"][0]["executionId"]
    retried = cli("executions", "retry", first)
    assert retried.returncode == 0, retried.stderr
    shown = json.loads(cli("jobs", "show", doc["id"], "--json").stdout)
    assert shown["status"] == "InProgress"  # open again, its next workflow queued
    assert [r["runtimeStatus"] for r in shown["runs"]] == ["Completed", "NotStarted"]

    log = (tmp_path / "worker.log").open("ab")
    worker = subprocess.Popen(
        [forked_command, "worker", "--db", db_url], cwd=REPO, stdout=log, stderr=log
    )
    try:
        [done] = _poll(db_url, lambda d: d["status"] in ("Completed", "Failed"))
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        log.close()
    assert done["status"] == "Completed", (tmp_path / "worker.log").read_text()[-3000:]
    assert [r["runtimeStatus"] for r in done["runs"]] == ["Completed", "Completed"]
