"""`executions cancel` of executions whose worker died, or froze (tour 18A, F2 and F3):
a real worker process holds them, and is killed or stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flowledger.runtime.inbox import POLL_INTERVAL
from tests.cli.clifast_forkserver import kill_hard
from tests.cli.conftest import FLOWLEDGER, Cli
from tests.cli.freezing import freeze_between_writes
from tests.conftest import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.both_databases]

NAP_PLUGIN = """
import asyncio
from pathlib import Path
from pydantic import BaseModel
from flowledger import StepContext, step_type


class Nap(BaseModel):
    seconds: float
    started: str


@step_type("t.nap")
async def nap(data: Nap, ctx: StepContext) -> dict:
    Path(data.started).mkdir(exist_ok=True)
    (Path(data.started) / ctx.execution_id).touch()
    await asyncio.sleep(data.seconds)
    return {"slept": data.seconds}
"""

NAP = """
name: {name}
steps:
  - {{id: nap, type: t.nap, input: {{seconds: 120, started: "{started}"}}}}
  - {{id: after, type: sys.no_action}}
"""

PARENT = """
name: parent
steps:
  - id: kids
    type: sys.sub_workflow
    input: {workflow: kid, items: [1, 2], concurrency: 2}
"""


@pytest.fixture
def setup(cli: Cli, tmp_path: Path) -> tuple[Path, Path]:
    plugin = tmp_path / "nap_steps.py"
    plugin.write_text(NAP_PLUGIN)
    return plugin, tmp_path / "started"


@pytest.fixture
def worker(
    db_url: str, tmp_path: Path, forked_command: str
) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Starts a worker: a cold process, or with ``forked=True`` a fork of one that imported
    flowledger (forked_command: no cold start's ~0.9 s of CPU; killed with kill_hard).
    A worker frozen with SIGSTOP, or left unreaped, is a cold one: neither passes on."""
    started: list[subprocess.Popen[bytes]] = []

    def start(plugin: Path, forked: bool = False) -> subprocess.Popen[bytes]:
        env = {**os.environ, "FLOWLEDGER_DB": db_url}
        command = forked_command if forked else FLOWLEDGER
        with (tmp_path / "worker.log").open("ab") as log:
            process = subprocess.Popen(
                [command, "worker", "--plugin", str(plugin)],
                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.kill()
            process.wait(timeout=30)


def _until(what: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _doc(cli: Cli, execution_id: str) -> dict:  # type: ignore[type-arg]
    shown = cli("executions", "show", execution_id, "--json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)  # type: ignore[no-any-return]


def _start_napping(cli: Cli, setup: tuple[Path, Path], tmp_path: Path) -> str:
    plugin, started = setup
    flow = tmp_path / "nap.yaml"
    flow.write_text(NAP.format(name="nap", started=started))
    result = cli("start", str(flow), "--plugin", str(plugin))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_cancel_takes_over_an_execution_whose_worker_was_killed(
    cli: Cli,
    setup: tuple[Path, Path],
    tmp_path: Path,
    worker: Callable[..., subprocess.Popen[bytes]],
) -> None:
    """Before: it watched the dead worker's execution for ~31 s, then exited 1 with it
    still InProgress, and with no worker coming the cancel never took effect."""
    plugin, started = setup
    execution_id = _start_napping(cli, setup, tmp_path)
    holder = worker(plugin, forked=True)
    _until(lambda: (started / execution_id).exists())
    kill_hard(holder)
    result = cli("executions", "cancel", execution_id, "--plugin", str(plugin), "--reason", "x")
    assert result.returncode == 0, result.stdout + result.stderr
    doc = _doc(cli, execution_id)
    assert doc["runtimeStatus"] == "Cancelled"
    assert doc["error"]["message"] == "cancelled: x"


def test_cancel_of_an_execution_a_live_process_holds_is_recorded_and_left_to_it(
    cli: Cli,
    setup: tuple[Path, Path],
    tmp_path: Path,
    db_url: str,
    worker: Callable[..., subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A frozen (SIGSTOP) worker is alive and holds its lease: the command does not take
    the execution from it; it says the cancel is recorded, exit 4, and the worker, once it
    runs again, cancels it. Before: a 30 s wait, then exit 1 as if it had failed. The
    watch is 2 s here, not the default 5 s: a frozen holder answers neither."""
    monkeypatch.setattr("flowledger.runtime.control.HOLDER_LOOKS", 2.0 / POLL_INTERVAL)
    plugin, started = setup
    execution_id = _start_napping(cli, setup, tmp_path)
    holder = worker(plugin)
    _until(lambda: (started / execution_id).exists())
    freeze_between_writes(holder, db_url)
    try:
        result = cli("executions", "cancel", execution_id, "--plugin", str(plugin))
    finally:
        holder.send_signal(signal.SIGCONT)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "in another process that holds it, and that process cancels it" in result.stdout
    _until(lambda: _doc(cli, execution_id)["runtimeStatus"] == "Cancelled")


def _start_parent(cli: Cli, setup: tuple[Path, Path], tmp_path: Path) -> str:
    """A parent of two napping children (``kid``), started for a worker; its id."""
    plugin, started = setup
    kid = tmp_path / "kid.yaml"
    kid.write_text(NAP.format(name="kid", started=started))
    pushed = cli("workflows", "push", str(kid), "--plugin", str(plugin))
    assert pushed.returncode == 0, pushed.stderr
    parent = tmp_path / "parent.yaml"
    parent.write_text(PARENT)
    result = cli("start", str(parent), "--plugin", str(plugin))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _children(cli: Cli, parent_id: str) -> list[str]:
    listed = cli("executions", "list", "--parent", parent_id, "--json")
    assert listed.returncode == 0, listed.stderr
    children = json.loads(listed.stdout)
    items = children["items"] if isinstance(children, dict) else children
    return [c["runtimeStatus"] for c in items]


def test_cancelling_a_parent_takes_over_its_children_held_by_a_killed_worker(
    cli: Cli,
    setup: tuple[Path, Path],
    tmp_path: Path,
    worker: Callable[..., subprocess.Popen[bytes]],
) -> None:
    """Before: `Cancelled`, exit 0, while its children stayed InProgress in the dead worker
    until another worker came."""
    plugin, started = setup
    parent_id = _start_parent(cli, setup, tmp_path)
    holder = worker(plugin, forked=True)
    _until(lambda: started.exists() and len(list(started.iterdir())) == 2)
    kill_hard(holder)
    result = cli("executions", "cancel", parent_id, "--plugin", str(plugin))
    assert result.returncode == 0, result.stdout + result.stderr
    assert _children(cli, parent_id) == ["Cancelled", "Cancelled"]
    assert _doc(cli, parent_id)["runtimeStatus"] == "Cancelled"


def test_cancelling_a_parent_without_its_children_s_plugin_says_so_in_a_line(
    cli: Cli,
    setup: tuple[Path, Path],
    tmp_path: Path,
    worker: Callable[..., subprocess.Popen[bytes]],
) -> None:
    """The children need a plugin the command was not given: their cancel is applied
    all the same (stand-ins), and the parent's run here, which could not drive them, says
    so in one line each. Before: a traceback of MissingStepTypesError per child."""
    plugin, started = setup
    parent_id = _start_parent(cli, setup, tmp_path)
    holder = worker(plugin, forked=True)
    _until(lambda: started.exists() and len(list(started.iterdir())) == 2)
    kill_hard(holder)
    result = cli("executions", "cancel", parent_id)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "is left" not in result.stderr  # a warning that contradicted the cancel
    assert _children(cli, parent_id) == ["Cancelled", "Cancelled"]


#: Waits made long in the tests below: a command that waited for one of them would take
#: a minute, one that waits for none of them takes seconds.
LONG_WAIT = 60.0
#: The cancel's own lease (FLOWLEDGER_LEASE), so that a parent's run here rechecks a child
#: another process holds after LONG_WAIT (half its lease), not before.
LONG_LEASE = "120s"


@pytest.fixture
def long_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The control verbs' watch of a live holder, and a parent's grace for the children
    its run here drives, both LONG_WAIT (the command runs in this process: tests/cli)."""
    monkeypatch.setattr("flowledger.runtime.control.HOLDER_LOOKS", LONG_WAIT / POLL_INTERVAL)
    monkeypatch.setattr("flowledger.runtime.driving.CHILD_GRACE", LONG_WAIT)


def test_cancelling_a_parent_takes_over_children_of_a_killed_worker_not_yet_reaped(
    cli: Cli,
    setup: tuple[Path, Path],
    tmp_path: Path,
    worker: Callable[..., subprocess.Popen[bytes]],
    long_waits: None,
) -> None:
    """Tour 19, F7: the killed worker's pid lingered a moment as a zombie (an orphan's
    reaper comes by late), so the parent's run here found the children's holder alive,
    then waited for those children for its grace (10 s) before the command took them over
    (~11 s, where a lone execution took 1.5 s). Now a holder that has ended is known gone
    though not reaped yet (runtime.orphans), the parent's end does not wait on children
    another process holds, and the command takes each one over as soon as its holder is
    known gone, well within the watch."""
    plugin, started = setup
    parent_id = _start_parent(cli, setup, tmp_path)
    holder = worker(plugin)
    _until(lambda: started.exists() and len(list(started.iterdir())) == 2)
    holder.kill()  # not reaped yet: its pid still answers, as a zombie's does
    reaper = threading.Timer(1.0, holder.wait)
    reaper.start()
    begun = time.monotonic()
    try:
        result = cli(
            "executions", "cancel", parent_id, "--plugin", str(plugin), FLOWLEDGER_LEASE=LONG_LEASE
        )
    finally:
        reaper.join()
    took = time.monotonic() - begun
    assert result.returncode == 0, result.stdout + result.stderr
    assert _children(cli, parent_id) == ["Cancelled", "Cancelled"]
    assert took < LONG_WAIT / 2, f"the cancel waited {took:.1f} s"


def test_cancelling_a_parent_whose_children_a_live_worker_holds_watches_once(
    cli: Cli,
    setup: tuple[Path, Path],
    tmp_path: Path,
    db_url: str,
    worker: Callable[..., subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tour 19, F7: with the children's worker frozen (SIGSTOP), the command exited 4 after
    15.9 s: its parent's run waited 10 s for them, then the command watched them 5 s more.
    Now the whole tree is watched once, for the documented watch (2 s here), and the
    parent's end waits for none of the children another process holds (its grace for
    them LONG_WAIT here)."""
    monkeypatch.setattr("flowledger.runtime.control.HOLDER_LOOKS", 2.0 / POLL_INTERVAL)
    monkeypatch.setattr("flowledger.runtime.driving.CHILD_GRACE", LONG_WAIT)
    plugin, started = setup
    parent_id = _start_parent(cli, setup, tmp_path)
    holder = worker(plugin)
    _until(lambda: started.exists() and len(list(started.iterdir())) == 2)
    freeze_between_writes(holder, db_url)
    begun = time.monotonic()
    try:
        result = cli(
            "executions", "cancel", parent_id, "--plugin", str(plugin), FLOWLEDGER_LEASE=LONG_LEASE
        )
    finally:
        holder.send_signal(signal.SIGCONT)
    took = time.monotonic() - begun
    assert result.returncode == 4, result.stdout + result.stderr
    assert "2 of its child executions still run in other processes" in result.stdout
    assert took < LONG_WAIT / 2, f"the cancel waited {took:.1f} s"
    _until(lambda: _children(cli, parent_id) == ["Cancelled", "Cancelled"])
