"""An async step that blocks the event loop: the process says so, and still stops.

The step blocks until a file exists, so each test decides when (or whether) the loop
runs again; waits are bounded generously and nothing asserts how fast anything is.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, TextIO

import pytest

from flowledger import Engine
from flowledger.worker.watchdog import EXIT_STUCK
from tests.conftest import REPO

pytestmark = [pytest.mark.e2e]

PLUGIN = str(Path(__file__).with_name("blocking_steps.py"))
WORKFLOW = """
name: blocker
steps:
  - {{id: hold, type: block.hold, timeout: 5s, input: {{until: "{until}"}}}}
"""
#: Generous for a loaded machine; the tests never wait this long when all is well.
PATIENCE = 60.0


def _environment(db_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "FLOWLEDGER_DB": db_url,
        "FLOWLEDGER_LOOP_STALL": "1s",
        "FLOWLEDGER_LOG_FORMAT": "json",
    }


def _lines(log: Path) -> list[dict[str, Any]]:
    text = log.read_text(errors="replace")
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _wait_for(log: Path, action: str) -> list[dict[str, Any]]:
    """The log's lines once one has ``action`` (or after PATIENCE: the caller asserts)."""
    deadline = time.monotonic() + PATIENCE
    while True:
        lines = _lines(log)
        if any(line["action"] == action for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def _with(lines: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [line for line in lines if line["action"] == action]


def _start(db_url: str, until: Path) -> str:
    async def go() -> str:
        async with Engine(db_url, plugins=[PLUGIN]) as engine:
            return await engine.start(engine.load_text(WORKFLOW.format(until=until)))

    return asyncio.run(go())


def _worker(db_url: str, log: TextIO, flowledger: str) -> subprocess.Popen[str]:
    command = [flowledger, "worker", "--plugin", PLUGIN, "--concurrency", "2"]
    return subprocess.Popen(
        command,
        cwd=REPO,
        env=_environment(db_url),
        stderr=log,
        stdout=subprocess.DEVNULL,
        text=True,
    )


def test_a_worker_blocked_by_a_step_warns_and_still_stops_at_sigterm(
    tmp_path: Path, forked_command: str
) -> None:
    """The worker is a process of its own forked from one that imported flowledger
    (forked_command): its loop, its watchdog and its SIGTERM, without a cold start."""
    db_url = f"sqlite:///{tmp_path / 'blocked.db'}"
    execution_id = _start(db_url, tmp_path / "never")
    log = tmp_path / "worker.log"
    with log.open("w") as stderr, _worker(db_url, stderr, forked_command) as worker:
        try:
            stalled = _with(_wait_for(log, "loop_stalled"), "loop_stalled")
            assert stalled, log.read_text()[-3000:]
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(timeout=PATIENCE)
        finally:
            if worker.poll() is None:
                worker.kill()
    assert code == EXIT_STUCK
    lines = _lines(log)
    warning = _with(lines, "loop_stalled")[0]
    assert warning["level"] == "WARNING"
    assert (warning["execution_id"], warning["step_id"]) == (execution_id, "hold")
    assert f"task 'step hold of execution {execution_id}'" in warning["message"]
    assert f"{PLUGIN}:" in warning["message"] and " in hold" in warning["message"]
    assert "make it a plain def" in warning["message"]
    assert len(_with(lines, "loop_stalled")) == 1  # one warning per stall
    [last] = _with(lines, "loop_stuck_exit")
    assert (last["level"], last["execution_id"]) == ("ERROR", execution_id)
    assert f"exiting with code {EXIT_STUCK} without draining" in last["message"]
    assert "other workers run their unfinished steps again" in last["message"]
    assert not _with(lines, "stop_worker")  # it could not drain


def test_run_says_when_the_loop_is_blocked_and_when_it_runs_again(
    tmp_path: Path, forked_command: str
) -> None:
    db_url = f"sqlite:///{tmp_path / 'run.db'}"
    release = tmp_path / "release"
    definition = tmp_path / "blocker.yaml"
    definition.write_text(WORKFLOW.format(until=release))
    log = tmp_path / "run.log"
    command = [forked_command, "run", str(definition), "--plugin", PLUGIN, "--json"]
    env = {**_environment(db_url), "FLOWLEDGER_LOG_FORMAT": "json"}
    with (
        log.open("w") as stderr,
        subprocess.Popen(
            command, cwd=REPO, env=env, stderr=stderr, stdout=subprocess.DEVNULL, text=True
        ) as run,
    ):
        try:
            assert _with(_wait_for(log, "loop_stalled"), "loop_stalled"), log.read_text()
            release.touch()  # the step returns: the loop runs again
            run.wait(timeout=PATIENCE)
        finally:
            if run.poll() is None:
                run.kill()
    lines = _lines(log)
    assert [line["action"] for line in lines] == ["loop_stalled", "loop_resumed"]
    assert "the event loop runs again, after a stall of about" in lines[1]["message"]
    stalled, resumed = lines
    assert resumed["execution_id"] == stalled["execution_id"] is not None
    assert resumed["step_id"] == stalled["step_id"] == "hold"
