"""A rerun of a killed `flowledger run` resumes the execution it left (tour 24, item 2a):
with the same workflow version, input and correlation id, each step's side effect
happens once; `--new`, or another input, starts another execution as well."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from flowledger import Engine
from tests.cli.clifast_forkserver import kill_hard
from tests.cli.polls import first_step_completed, until_documents
from tests.conftest import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PLUGIN = str(Path(__file__).with_name("crash_steps.py"))


def _definition(tmp_path: Path, ledger: Path) -> Path:
    """A side effect, a durable delay (the run is killed in it), another side effect."""
    path = tmp_path / "etl.yaml"
    path.write_text(
        "name: etl\nsteps:\n"
        f"  - {{id: first, type: crash.work, input: {{ms: 10, ledger: '{ledger}'}}}}\n"
        "  - {id: nap, type: sys.delay, input: {duration: 2s}}\n"
        f"  - {{id: last, type: crash.work, input: {{ms: 10, ledger: '{ledger}'}}}}\n"
    )
    return path


def _command(flowledger: str, definition: Path, db_url: str, batch: int, *more: str) -> list[str]:
    """``flowledger run``, by the ``forked_command`` fixture: a process of its own, killed
    with ``kill_hard``, without a cold start's ~0.9 s of CPU."""
    return [
        flowledger, "run", str(definition), "--db", db_url, "--plugin", PLUGIN, "--json",
        "--input", json.dumps({"batch": batch}), *more,
    ]  # fmt: skip


async def _documents(db_url: str) -> list[dict[str, Any]]:
    async with Engine(db_url, plugins=[PLUGIN]) as engine:
        return [await engine.get_execution(d["id"]) for d in await engine.list_executions()]


def _kill_after_first(command: list[str], db_url: str) -> str:
    """Start `run`, kill -9 it in its delay (once 'first' is recorded); the execution id."""
    killed = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        until_documents(db_url, PLUGIN, first_step_completed, seconds=30)
    finally:
        kill_hard(killed)  # dead and reaped when it returns
    (doc,) = asyncio.run(_documents(db_url))
    assert doc["runtimeStatus"] == "InProgress"
    return str(doc["id"])


def _effects(ledger: Path) -> Counter[str]:
    """How many times each step's side effect happened, by its idempotency key."""
    return Counter(line.split()[0] for line in ledger.read_text().splitlines())


def _again(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_rerun_of_a_killed_run_resumes_its_execution(
    tmp_path: Path, db_url: str, forked_command: str
) -> None:
    ledger = tmp_path / "ledger.txt"
    command = _command(forked_command, _definition(tmp_path, ledger), db_url, 1)
    orphan = _kill_after_first(command, db_url)

    again = _again(command)

    assert again.returncode == 0, again.stderr
    assert (
        f"resuming execution {orphan} of etl, left unfinished by a stopped run; "
        "--new starts another"
    ) in again.stderr
    assert json.loads(again.stdout)["id"] == orphan  # it shows the execution it resumed
    (doc,) = asyncio.run(_documents(db_url))  # and started none
    assert (doc["id"], doc["runtimeStatus"]) == (orphan, "Completed")
    effects = _effects(ledger)
    assert len(effects) == 2 and set(effects.values()) == {1}, effects  # first, last: once


def test_run_new_starts_another_after_finishing_the_killed_one(
    tmp_path: Path, db_url: str, forked_command: str
) -> None:
    ledger = tmp_path / "ledger.txt"
    command = _command(forked_command, _definition(tmp_path, ledger), db_url, 1)
    orphan = _kill_after_first(command, db_url)

    again = _again([*command, "--new"])

    assert again.returncode == 0, again.stderr
    assert f"finishing execution {orphan} of etl" in again.stderr
    assert "resuming" not in again.stderr
    new = json.loads(again.stdout)["id"]
    assert new != orphan
    docs = {d["id"]: d["runtimeStatus"] for d in asyncio.run(_documents(db_url))}
    assert docs == {orphan: "Completed", new: "Completed"}
    effects = _effects(ledger)
    assert len(effects) == 4 and set(effects.values()) == {1}, effects  # two executions' steps


def test_what_a_run_with_another_input_left_is_finished_first_then_the_same_resumed(
    tmp_path: Path, db_url: str, forked_command: str
) -> None:
    ledger = tmp_path / "ledger.txt"
    definition = _definition(tmp_path, ledger)
    command = _command(forked_command, definition, db_url, 1)
    orphan = _kill_after_first(command, db_url)
    other = asyncio.run(_left_by_a_run(db_url, definition, {"batch": 2}))

    again = _again(command)

    assert again.returncode == 0, again.stderr
    finishing = again.stderr.index(f"finishing execution {other} of etl")
    assert finishing < again.stderr.index(f"resuming execution {orphan} of etl")
    assert json.loads(again.stdout)["id"] == orphan
    docs = {d["id"]: d["runtimeStatus"] for d in asyncio.run(_documents(db_url))}
    assert docs == {orphan: "Completed", other: "Completed"}  # and none started
    effects = _effects(ledger)
    assert len(effects) == 4 and set(effects.values()) == {1}, effects


async def _left_by_a_run(db_url: str, definition: Path, given: dict[str, Any]) -> str:
    """An execution as a `run` stopped before its first step leaves it (released)."""
    async with Engine(db_url, plugins=[PLUGIN]) as engine:
        return await engine.start(engine.load(definition), given, created_by="cli:run")
