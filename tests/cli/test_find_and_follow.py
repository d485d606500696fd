"""Find executions (filters, totals, pages, prefixes), follow them from another process
(`events --follow`, `watch`), read them (`show` compact, `--all`, `--timeline`), and
never create a database by reading one."""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import subprocess
import textwrap
import time
from datetime import timedelta
from pathlib import Path
from typing import IO

import pytest

from flowledger.app import (
    App,
    PushWorkflows,
    RetryExecution,
    RunExecution,
    SubmitInput,
    WorkflowText,
)
from tests.cli.clifast_forkserver import kill_hard
from tests.cli.conftest import Cli
from tests.conftest import REPO
from tests.inprocess import run_in_process

pytestmark = pytest.mark.e2e

HELLO = ("run", "examples/hello.yaml", "--input", '{"name": "Ada"}', "--json")


def _run_id(cli: Cli, *args: str) -> str:
    result = cli(*args)
    assert result.returncode in (0, 1), result.stderr
    return str(json.loads(result.stdout)["id"])


def test_list_filters_counts_and_pages(cli: Cli) -> None:
    for index in range(3):
        _run_id(cli, *HELLO, "--correlation-id", f"order-{index}")
    started = cli("start", "examples/hello.yaml", "--input", '{"name": "Bo"}')
    assert started.returncode == 0, started.stderr

    first = cli("executions", "list", "--limit", "3", TZ="UTC")
    assert first.returncode == 0, first.stderr
    more = re.search(r"^3 of 4; --cursor (\S+) for more$", first.stdout, re.M)
    assert more, first.stdout
    assert " UTC " in first.stdout  # times name their zone
    rest = cli("executions", "list", "--limit", "3", "--cursor", more.group(1))
    assert "the last 1 of 4" in rest.stdout, rest.stdout
    # --json: stdout the array, the footer with the cursor on stderr (a script pages).
    page = cli("executions", "list", "--limit", "3", "--json")
    assert len(json.loads(page.stdout)) == 3
    cursor = re.search(r"^3 of 4; --cursor (\S+) for more$", page.stderr, re.M)
    assert cursor, page.stderr
    last = cli("executions", "list", "--limit", "3", "--json", "--cursor", cursor.group(1))
    assert len(json.loads(last.stdout)) == 1 and last.stderr == "", last.stderr

    def ids(*filters: str) -> list[str]:
        found = cli("executions", "list", "--json", *filters)
        assert found.returncode == 0, found.stderr
        return [doc["id"] for doc in json.loads(found.stdout)]

    assert len(ids("--created-by", "cli:start")) == 1
    assert len(ids("--created-by", "cli:run")) == 3
    assert len(ids("--correlation-id", "order-1")) == 1
    assert len(ids("--since", "1h")) == 4
    assert ids("--until", "1h") == []
    assert len(ids("--since", "2020-01-01T00:00:00Z", "--status", "NotStarted")) == 1
    bad = cli("executions", "list", "--since", "yesterday-ish")
    assert bad.returncode == 2
    assert "--since 'yesterday-ish' is neither a time" in bad.stderr


def test_list_takes_id_prefixes_for_parent_and_job(cli: Cli) -> None:
    assert cli("workflows", "push", "examples/batch_child.yaml").returncode == 0
    orders = '{"orders": [{"id": "a", "total": 120}, {"id": "b", "total": 75}]}'
    parent = _run_id(cli, "run", "examples/batch_parent.yaml", "--input", orders, "--json")
    children = cli("executions", "list", "--parent", parent[:8], "--json")
    assert children.returncode == 0, children.stderr
    assert {doc["parentWorkflowExecutionId"] for doc in json.loads(children.stdout)} == {parent}
    assert len(json.loads(children.stdout)) == 2

    job = cli("jobs", "run", "examples/nightly_job.yaml", "--json")
    assert job.returncode == 0, job.stderr
    job_id = json.loads(job.stdout)["id"]
    of_job = cli("executions", "list", "--job", job_id[:6], "--json")
    assert of_job.returncode == 0, of_job.stderr
    assert [doc["jobRunId"] for doc in json.loads(of_job.stdout)] == [job_id, job_id]
    unknown = cli("executions", "list", "--parent", "zzzz")
    assert unknown.returncode == 1
    assert "no execution has an id starting with 'zzzz'" in unknown.stderr


LOOP = """
name: many
steps:
  - id: each
    type: sys.loop
    input: {items: "{{ range(60) | list }}", concurrency: 10}
    steps:
      - {id: square, type: sys.transform, input: {value: "{{ loop.each.item ** 2 }}"}}
  - {id: after_loop, type: sys.transform, after: [each], input: {value: done}}
"""

FLAKY = """
name: flaky
steps:
  - id: call
    type: sys.http_request
    input: {method: GET, url: "http://127.0.0.1:9/nothing-listens"}
    retry: {max_attempts: 3, backoff: fixed, initial_delay: 200ms, jitter: false}
"""


def test_show_sums_big_loops_up_and_draws_a_timeline(cli: Cli, tmp_path: Path) -> None:
    workflow = tmp_path / "many.yaml"
    workflow.write_text(LOOP)
    execution = _run_id(cli, "run", str(workflow), "--json")

    compact = cli("executions", "show", execution[:8])
    assert compact.returncode == 0, compact.stderr
    assert re.search(r"square \(loop body\)\s+sys\.transform\s+60\s+60 Completed", compact.stdout)
    assert "62 step executions; 60 of loop bodies summed up per step" in compact.stdout
    assert len(compact.stdout.splitlines()) < 20
    assert re.search(r"ended: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \w+", compact.stdout)

    every = cli("executions", "show", execution, "--all")
    rows = [line for line in every.stdout.splitlines() if line.startswith("square ")]
    assert len(rows) == 60
    assert re.search(
        r"^step\s+loop\s+type\s+status\s+attempt\s+started\s+ended\s+took", every.stdout, re.M
    )

    flaky = tmp_path / "flaky.yaml"
    flaky.write_text(FLAKY)
    failed = _run_id(cli, "run", str(flaky), "--json")
    timeline = cli("executions", "show", failed, "--timeline")
    assert timeline.returncode == 0, timeline.stderr
    [row] = [line for line in timeline.stdout.splitlines() if line.startswith("call")]
    assert row.count("x") >= 3 and "·" in row, row  # three failed attempts, waits between
    assert "3 times (attempt 3)" in row
    assert "· waiting to retry" in timeline.stdout

    # A loop body's rows name their iteration as events and logs do (it read squareeach[0]).
    per_iteration = cli("executions", "show", execution, "--timeline", "--all")
    assert per_iteration.returncode == 0, per_iteration.stderr
    assert re.search(r"^square\[\w+ 0\] +\|", per_iteration.stdout, re.M), per_iteration.stdout


LATE = """\
name: late
steps:
  - {id: ask, type: sys.wait_for_input, input: {prompt: "go on?"}}
  - {id: fail, type: sys.fail, after: [ask], input: {message: not yet}}
"""


def test_the_timeline_draws_a_wait_to_scale_and_the_idle_hour_before_a_retry_narrow(
    cli: Cli, db_url: str
) -> None:
    """``--timeline`` was linear while the web drew an idle stretch narrow: an hour
    waited for a person and the idle hour before a late retry took half the chart each.
    Now both draw app.timeline's axis: the wait (not idle: someone was asked) to scale,
    the idle hour as a marked break. A real execution; its hours are the engine clock's
    (moved on, not waited for)."""

    async def late() -> str:
        async with App(db_url) as app:
            await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=LATE)]))
            doc = await app.executions.run(RunExecution(workflow="late"))
            assert doc["runtimeStatus"] == "AwaitingUserInput"
            app.engine.clock.offset = timedelta(hours=1)  # answered an hour later
            await app.executions.submit_input(
                SubmitInput(id=doc["id"], step="ask", data={}, settle=True)
            )
            app.engine.clock.offset = timedelta(hours=2)  # retried an hour after it failed
            retried = await app.executions.retry(RetryExecution(id=doc["id"], settle=True))
            assert retried.execution["runtimeStatus"] == "Failed"
            return doc["id"]

    execution = asyncio.run(late())
    shown = cli("executions", "show", execution, "--timeline")
    assert shown.returncode == 0, shown.stderr
    rows = {line.split("|")[0].strip(): line.split("|") for line in shown.stdout.splitlines()}
    assert rows["ask"][1].count("░") >= 40, rows["ask"]  # the hour it waited: to scale
    assert rows["fail"][2] == " 2 times (attempt 2)"
    idle = rows["(idle)"]
    assert re.fullmatch(r" +≈{2} *", idle[1]) and len(idle[1]) == 50, idle
    assert re.fullmatch(r" (59m5\ds|1h00m) idle, drawn narrow", idle[2]), idle
    assert "≈ idle, not to scale" in shown.stdout


WAITS = """
name: waits
steps:
  - {id: first, type: sys.transform, input: {value: 1}}
  - {id: pause, type: sys.delay, after: [first], input: {duration: 1s}}
  - {id: last, type: sys.transform, after: [pause], input: {value: 2}}
"""


def test_events_follow_and_watch_a_worker_in_another_process(
    cli: Cli, db_url: str, tmp_path: Path, forked_command: str
) -> None:
    workflow = tmp_path / "waits.yaml"
    workflow.write_text(WAITS)
    started = cli("start", str(workflow))
    assert started.returncode == 0, started.stderr
    execution = started.stdout.strip()
    env = {**os.environ, "FLOWLEDGER_DB": db_url, "COLUMNS": "200"}

    def follow(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [forked_command, "executions", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env,
        )

    events = follow("events", execution[:8], "--follow", "--json")
    watch = follow("watch", execution)
    worker = subprocess.Popen(
        [forked_command, "worker"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
        env=env,
    )
    try:
        out, err = events.communicate(timeout=60)
        assert events.returncode == 0, err
        kinds = [json.loads(line)["kind"] for line in out.splitlines()]
        assert kinds[0] == "execution.created"
        assert kinds[-1] == "execution.completed"
        seqs = [json.loads(line)["seq"] for line in out.splitlines()]
        assert seqs == list(range(1, len(seqs) + 1))  # gap-free, no repeats
        watched, err = watch.communicate(timeout=60)
        assert watch.returncode == 0, err
        assert "step.completed         last (attempt 1)" in watched
        assert "Completed  waits v1" in watched and execution in watched
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        for process in (events, watch):
            if process.poll() is None:
                process.kill()

    history = cli("executions", "events", execution)
    assert re.search(r"^\s+1 \S+ execution\.created", history.stdout, re.M), history.stdout


def _missing_db_commands() -> list[tuple[str, ...]]:
    return [
        ("executions", "list"),
        ("executions", "show", "abc"),
        ("executions", "events", "abc"),
        ("executions", "watch", "abc"),
        ("executions", "cancel", "abc"),
        ("executions", "artifacts", "abc"),
        ("workflows", "list"),
        ("jobs", "list"),
        ("jobs", "show", "abc"),
        ("entities", "types", "list"),
        ("entities", "list", "Lead"),
        ("tokens", "list"),
    ]


@pytest.mark.parametrize("command", _missing_db_commands(), ids=" ".join)
def test_reading_never_creates_a_database(command: tuple[str, ...], tmp_path: Path) -> None:
    # In this process (tests/inprocess.py): what it leaves in the folder is the subject.
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWLEDGER_")}
    result = run_in_process(command, env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    where = tmp_path.resolve() / "flowledger.db"
    assert f"no database at {where} (set --db or FLOWLEDGER_DB)" in result.stderr
    assert list(tmp_path.iterdir()) == []  # no file, no artifacts folder


def test_run_says_which_database_it_writes_to(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWLEDGER_")}
    workflow = tmp_path / "one.yaml"
    workflow.write_text("name: one\nsteps:\n  - {id: a, type: sys.no_action}\n")
    result = run_in_process(["run", str(workflow)], env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("database: ") == 1
    assert f"database: sqlite:///{tmp_path.resolve() / 'flowledger.db'}" in result.stderr


def test_user_text_is_never_read_as_markup(cli: Cli, tmp_path: Path) -> None:
    assert cli("db", "upgrade").returncode == 0
    odd = cli("executions", "show", "[/]")
    assert odd.returncode == 1
    assert "[/]" in odd.stderr and "Traceback" not in odd.stderr
    workflow = tmp_path / "markup.yaml"
    workflow.write_text(
        textwrap.dedent(
            """
            name: markup
            steps:
              - {id: a, type: sys.transform, input: {value: "[link=http://x]hi[/link] [bold]b"}}
            """
        )
    )
    execution = _run_id(cli, "run", str(workflow), "--json", "--correlation-id", "[red]x[/]")
    shown = cli("executions", "show", execution)
    assert shown.returncode == 0, shown.stderr
    assert "[link=http://x]hi[/link] [bold]b" in shown.stdout
    listed = cli("executions", "list")
    assert "[red]x[/]" in listed.stdout


def test_every_command_shows_a_step_at_the_same_local_time(cli: Cli) -> None:
    """run, events and logs printed UTC without naming it, while show printed local
    time: one step read 02:31:50 in one command and 21:31:50 in another."""
    zone = {"TZ": "America/New_York"}
    ran = cli(*[arg for arg in HELLO if arg != "--json"], **zone)
    assert ran.returncode == 0, ran.stderr
    doc = json.loads(cli("executions", "list", "--json", "--limit", "1").stdout)[0]
    shown = cli("executions", "show", doc["id"], **zone).stdout
    events = cli("executions", "events", doc["id"], **zone).stdout
    [completed] = [e for e in events.splitlines() if "execution.completed" in e]
    local = completed.split()[1]  # "   9 21:31:50.706 execution.completed"
    utc = doc["completedAt"][11:23]
    assert local != utc  # New York is never on UTC
    assert local[:8] in shown  # show's own local times
    assert local in ran.stdout + ran.stderr  # the live lines, piped


NAPS = """
name: naps
steps:
  - {id: first, type: sys.transform, input: {value: 1}}
  - {id: nap, type: sys.delay, input: {duration: 2s}}
"""


def _line_within(stream: IO[str], seconds: float) -> str:
    """The next line of a child process's pipe, or "" when none comes in time."""
    ready, _, _ = select.select([stream], [], [], seconds)
    return stream.readline() if ready else ""


def test_watch_says_when_no_process_runs_the_execution(
    cli: Cli, db_url: str, tmp_path: Path, forked_command: str
) -> None:
    """Tour 24: `watch` of what a killed `run` left InProgress waited forever without a
    word. It says so at once, and who would carry it on; it watches on, and follows the
    worker that then takes it over to its end. `list` and `show` mark it too."""
    workflow = tmp_path / "naps.yaml"
    workflow.write_text(NAPS)
    env = {**os.environ, "FLOWLEDGER_DB": db_url, "COLUMNS": "200"}
    run = subprocess.Popen(
        [forked_command, "run", str(workflow), "--json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        napping: list[str] = []
        while not napping and time.monotonic() < deadline:
            time.sleep(0.1)
            listed = json.loads(cli("executions", "list", "--json").stdout or "[]")
            napping = [d["id"] for d in listed if d["currentStateName"] == "nap"]
    finally:
        kill_hard(run)  # dead and reaped when it returns
    [execution] = napping
    listed = cli("executions", "list")
    assert "InProgress, held by no process" in listed.stdout, listed.stdout
    shown = cli("executions", "show", execution)
    assert "runner:   held by no process; `flowledger worker` takes it over" in shown.stdout
    watch = subprocess.Popen(
        [forked_command, "executions", "watch", execution],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env,
    )  # fmt: skip
    worker = None
    try:
        assert watch.stderr is not None
        said = _line_within(watch.stderr, 20)
        assert said.startswith(f"no process is running execution {execution}; it was held by"), said
        assert "`flowledger worker` takes it over, as does the next `flowledger run`" in said
        assert watch.poll() is None  # watching on
        worker = subprocess.Popen(
            [forked_command, "worker"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, env=env,
        )  # fmt: skip
        watched, _ = watch.communicate(timeout=60)
        assert watch.returncode == 0
        assert "Completed  naps v1" in watched, watched
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        if watch.poll() is None:
            watch.kill()
