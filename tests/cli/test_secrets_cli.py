"""Secrets across real processes: a run that waits, resumed by ``executions input`` in a
second process, or handed to a ``flowledger worker``; the server echoes the secret back
raw, URL-encoded and base64; one step saves the echo as an artifact. The value must be
absent from the database file, the artifacts folder, every document the command prints,
and the stdout and stderr (logs at INFO included) of every process.

The processes that hold the secret while they work (the `run` that waits, the `input`
that resumes it, the workers) are real; the commands that only read what was stored
(`show`, `list`, `artifacts`) and the `start`/`input --detach` that only write a row run
in this process (tests/inprocess.py), their stdout and stderr checked all the same."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flowledger.codec import spellings
from tests.cli.clifast_forkserver import HARD_KILL
from tests.inprocess import run_in_process
from tests.steps.http_server import serve

pytestmark = pytest.mark.e2e

SECRET = 'sëcret"Value-4711'


@pytest.fixture
def base_url() -> Iterator[str]:
    with serve() as url:
        yield url


def _workflow(base: str) -> str:
    return f"""
name: secret-echo
steps:
  - {{id: wait, type: sys.wait_for_input, input: {{prompt: go?}}}}
  - id: call
    type: sys.http_request
    input:
      method: POST
      url: "{base}/echo?k={{{{ secrets.API_KEY|urlencode }}}}"
      headers: {{X-Api-Key: "{{{{ secrets.API_KEY|urlencode }}}}"}}
      body: "{{{{ secrets.API_KEY }}}}"
  - id: spelled
    type: sys.http_request
    input: {{method: POST, url: "{base}/encode", body: "{{{{ secrets.API_KEY }}}}"}}
  - id: saved
    type: sys.http_request
    input:
      method: POST
      url: "{base}/encode"
      body: "{{{{ secrets.API_KEY }}}}"
      save_as: artifact
      artifact_name: echo.json
"""


class Processes:
    """Commands as processes of their own (``flowledger``: the ``forked_command``
    fixture, without a cold start each), and in this one (``command``)."""

    def __init__(self, folder: Path, flowledger: str) -> None:
        self.folder = folder
        self.flowledger = flowledger
        self.env = {
            **os.environ,
            "FLOWLEDGER_DB": f"sqlite:///{folder / 'flow.db'}",
            "FLOWLEDGER_SECRET_API_KEY": SECRET,
            "FLOWLEDGER_HTTP_ALLOW": "*",
            "FLOWLEDGER_LOG_LEVEL": "DEBUG",
            "COLUMNS": "200",
        }
        self.outputs: list[str] = []

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.flowledger, *args],
            capture_output=True,
            text=True,
            cwd=self.folder,
            env=self.env,
            timeout=60,
            check=False,
        )
        self.outputs += [result.stdout, result.stderr]
        return result

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The same command run in this process, its outputs checked as a process's."""
        result = run_in_process(args, env=self.env, cwd=self.folder)
        self.outputs += [result.stdout, result.stderr]
        return result

    def status(self, execution_id: str) -> str:
        shown = self.command("executions", "show", execution_id, "--json")
        return str(json.loads(shown.stdout)["runtimeStatus"])

    def stored(self, query: str, *args: str) -> list[tuple[object, ...]]:
        """Rows read straight from the database file: cheap enough to poll."""
        with sqlite3.connect(self.folder / "flow.db") as db:
            return db.execute(query, args).fetchall()

    def leaks(self) -> list[str]:
        needles = spellings(SECRET)
        found = [
            f"output #{i}" for i, text in enumerate(self.outputs) if any(n in text for n in needles)
        ]
        for path in self.folder.rglob("*"):
            if path.is_file() and any(n.encode() in path.read_bytes() for n in needles):
                found.append(str(path))
        return found


@pytest.fixture
def procs(tmp_path: Path, base_url: str, forked_command: str) -> Processes:
    (tmp_path / "flow.yaml").write_text(_workflow(base_url), encoding="utf-8")
    return Processes(tmp_path, forked_command)


def _started(procs: Processes) -> str:
    first = procs.run("run", "flow.yaml", "--json")
    assert first.returncode == 3, first.stderr  # awaiting input
    return str(json.loads(first.stdout)["id"])


def _every_document(procs: Processes, execution_id: str) -> None:
    shown = procs.command("executions", "show", execution_id, "--json")
    procs.command("executions", "list", "--json")
    procs.command("executions", "artifacts", execution_id)
    steps = {s["stepId"]: s for s in json.loads(shown.stdout)["steps"].values()}
    # The server did echo it, in every spelling: each one is stored as the reference.
    echoed = steps["spelled"]["outputData"]["body"]
    assert set(echoed.values()) == {"***secrets.API_KEY***"}, echoed
    assert steps["call"]["outputData"]["body"]["headers"]["x-api-key"] == "***secrets.API_KEY***"


def test_resumed_in_another_process(procs: Processes) -> None:
    execution_id = _started(procs)
    second = procs.run("executions", "input", execution_id, "wait", "--data", "{}")
    assert second.returncode == 0, second.stderr
    assert procs.status(execution_id) == "Completed"
    _every_document(procs, execution_id)
    assert procs.leaks() == []


def _worker(procs: Processes) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [procs.flowledger, "worker", "--lease", "1s"],
        cwd=procs.folder,
        env=procs.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _until(procs: Processes, done: Callable[[], bool]) -> None:
    for _ in range(1200):  # polls what is stored; the workers' pace sets how long
        if done():
            return
        time.sleep(0.05)


def _finished(procs: Processes, execution_id: str) -> bool:
    query = "select runtime_status from executions where id = ?"
    [(status,)] = procs.stored(query, execution_id)
    return status in ("Completed", "Failed")


def _stop(procs: Processes, worker: subprocess.Popen[str], sig: int = signal.SIGTERM) -> None:
    worker.send_signal(HARD_KILL if sig == signal.SIGKILL else sig)  # a fork's SIGKILL
    out, err = worker.communicate(timeout=60)
    procs.outputs += [out, err]


def _worker_until(procs: Processes, done: Callable[[], bool], sig: int = signal.SIGTERM) -> None:
    """Run a worker until ``done()``, then stop it with ``sig`` (SIGKILL: it dies as is)."""
    worker = _worker(procs)
    try:
        _until(procs, done)
    finally:
        _stop(procs, worker, sig)


def test_finished_by_a_worker(procs: Processes) -> None:
    execution_id = _started(procs)
    detached = procs.command(
        "executions", "input", execution_id, "wait", "--data", "{}", "--detach"
    )
    assert detached.returncode == 0, detached.stderr
    _worker_until(procs, lambda: _finished(procs, execution_id))
    assert procs.status(execution_id) == "Completed"
    _every_document(procs, execution_id)
    assert procs.leaks() == []


def test_taken_over_from_a_killed_worker(procs: Processes, base_url: str) -> None:
    """Worker A sends the secret and is killed mid-request; worker B takes the execution
    over when A's lease lapses, sends it again and stores the echoes."""
    key = "'{{ secrets.API_KEY|urlencode }}'"  # header values are ASCII
    slow = (
        "  - id: slow\n    type: sys.http_request\n"
        f"    input: {{url: '{base_url}/slow?s=2', headers: {{X-Api-Key: {key}}}}}\n"
    )
    text = _workflow(base_url).replace(
        "  - {id: wait, type: sys.wait_for_input, input: {prompt: go?}}\n", slow
    )
    (procs.folder / "flow.yaml").write_text(text, encoding="utf-8")
    started = procs.command("start", "flow.yaml")
    assert started.returncode == 0, started.stderr
    execution_id = started.stdout.split()[-1]

    def slow_started() -> bool:
        query = "select 1 from step_executions where execution_id = ? and step_id = 'slow'"
        return bool(procs.stored(query, execution_id))

    _worker_until(procs, slow_started, signal.SIGKILL)
    _worker_until(procs, lambda: _finished(procs, execution_id))
    assert procs.status(execution_id) == "Completed"
    attempts = "select attempt from step_executions where execution_id = ? and step_id = 'slow'"
    assert sorted(procs.stored(attempts, execution_id)) == [(1,), (2,)]  # B re-ran it
    _every_document(procs, execution_id)
    assert procs.leaks() == []
