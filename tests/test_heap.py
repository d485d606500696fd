"""A long-running command freezes its start-up heap (flowledger.heap); a library user's
process keeps its collector as it was."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from flowledger import heap
from flowledger.heap import freeze_heap

#: Runs the CLI in this interpreter and, as it exits, prints how many objects were frozen.
_COUNTING = (
    "import atexit, gc, sys\n"
    "atexit.register(lambda: print('frozen', gc.get_freeze_count(), flush=True))\n"
    "sys.argv = ['flowledger', *sys.argv[1:]]\n"
    "from flowledger.cli import main\n"
    "main()\n"
)


def test_freezing_moves_what_lives_out_of_the_collectors_sight() -> None:
    try:
        freeze_heap()
        assert gc.get_freeze_count() > 10_000  # modules, classes, this test run's objects
        assert gc.collect() == 0
    finally:
        gc.unfreeze()


def test_a_worker_freezes_its_heap_once_it_is_ready(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'w.db'}"
    worker = subprocess.Popen(
        [sys.executable, "-c", _COUNTING, "worker", "--db", db],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stderr is not None
        started = time.monotonic()
        line = ""
        while ", concurrency " not in line and time.monotonic() - started < 30:
            line = worker.stderr.readline()  # the start line comes just before the freeze
        assert ", concurrency " in line, line
        time.sleep(0.3)
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGKILL)
    assert worker.returncode == 0
    [frozen] = [int(line.split()[1]) for line in out.splitlines() if line.startswith("frozen")]
    assert frozen > 10_000


def test_an_engine_in_a_users_process_leaves_the_collector_alone(tmp_path: Path) -> None:
    code = (
        # Against the count the interpreter starts with (Python 3.12 freezes some objects
        # of its own before any code runs).
        "import gc\nbefore = gc.get_freeze_count()\n"
        "import asyncio\nfrom flowledger import Engine, Worker\n"
        "async def main():\n"
        f"    async with Engine('sqlite:///{tmp_path / 'e.db'}') as engine:\n"
        "        await engine.run(engine.load_text('name: one\\nsteps:\\n"
        "  - {id: a, type: sys.transform, input: {value: 1}}\\n'))\n"
        "asyncio.run(main())\nprint(gc.get_freeze_count() - before)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "0"


#: Runs the console command (``entry``) on a 1-step workflow and, as it exits, prints how
#: many collections ran during its start-up, whether the collector is on, what is frozen.
_STARTING = (
    "import atexit, gc, sys\n"
    "from flowledger import heap\n"
    "during = []\n"
    "gc.callbacks.append(lambda phase, info: heap._starting and phase == 'start' "
    "and during.append(info))\n"
    "atexit.register(lambda: print('start-up', len(during), gc.isenabled(), "
    "gc.get_freeze_count(), flush=True))\n"
    "sys.argv = ['flowledger', *sys.argv[1:]]\n"
    "from flowledger.cli import entry\n"
    "entry()\n"
)


def test_a_command_starts_without_collections_then_works_with_them(tmp_path: Path) -> None:
    workflow = tmp_path / "one.yaml"
    workflow.write_text("name: one\nsteps:\n  - {id: a, type: sys.transform, input: {value: 1}}\n")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _STARTING,
            "run",
            str(workflow),
            "--db",
            f"sqlite:///{tmp_path / 'r.db'}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    [line] = [line for line in done.stdout.splitlines() if line.startswith("start-up")]
    _, collections, enabled, frozen = line.split()
    assert collections == "0"  # ~185 before the pause
    assert enabled == "True"  # the run itself had its collector back
    assert int(frozen) > 10_000  # start-up's heap, out of its sight


def test_the_start_up_pause_leaves_an_applications_own_choice_alone() -> None:
    assert gc.isenabled()
    gc.disable()  # as an application might have
    try:
        heap.pause_start_up()
        heap.end_start_up()
        assert not gc.isenabled()
        assert gc.get_freeze_count() == 0
    finally:
        gc.enable()
    heap.end_start_up()  # without a pause: nothing to do
    assert gc.isenabled() and gc.get_freeze_count() == 0
