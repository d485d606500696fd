"""Instructions per W1 step under callgrind: deterministic where wall time is not.

W1 is a chain of async custom steps on SQLite (bench/compare.py). Two processes run
under ``valgrind --tool=callgrind``, each loading both a short and a long chain, warming
up, freezing Python's collector (so a full collection of the start-up heap does not land
in one count and not the other) and then driving one of the two chains, counted only
while it is started and driven, with the clock-driven writes off; the difference of
their totals over the difference of their lengths is what one more step costs, start-up
and loading cancelled out. Prints the total and its split by object file (the interpreter,
SQLite, libc, ...).

    .venv/bin/python bench/step_instructions.py           # 100 vs 300 steps
    .venv/bin/python bench/step_instructions.py 50 150

Needs valgrind (``callgrind_annotate`` with it). Takes a few minutes.
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from engine_bench import chain, noop

from flowledger import Engine, StepRegistry
from flowledger.runtime import inbox, journal, runner


async def _drive(steps: int, other: int) -> None:
    registry = StepRegistry.with_builtins()
    registry.register(noop)
    # What runs by the clock must not run: under callgrind the longer chain takes seconds
    # more, and a signal poll or lease renewal in one count and not the other is noise.
    inbox.POLL_INTERVAL = 3600.0
    # The execution's progress is written once a second of the clock: how many writes
    # land in a count would follow the machine's load (seen: 577k quiet, 595k loaded).
    journal.PROGRESS_EVERY = timedelta(days=1)
    # A scheduler lets the loop turn when 5 ms went by without one (runtime.runner): about
    # every 25 steps at full speed. Under callgrind a step takes some 50 times as long,
    # and the loop would turn at every step; 0.25 s keeps it to about as often.
    runner.YIELD_AFTER = 0.25
    with tempfile.TemporaryDirectory() as folder:
        database = f"sqlite:///{Path(folder) / 'w1.db'}"
        async with Engine(database, registry=registry, lease=timedelta(hours=1)) as engine:
            # Both chains are loaded in both processes: loading cancels out of the difference.
            workflow = engine.load_text(chain(steps, "bench.noop"))
            engine.load_text(chain(other, "bench.noop"))
            await engine.run(engine.load_text(chain(3, "bench.noop")))  # warm caches and rows
            gc.collect()
            gc.freeze()
            _instrument("on")  # counted: only the start and the drive of the chain
            execution_id = await engine.start(workflow)
            doc = await engine.drive(execution_id, document=False)
            _instrument("off")
            assert doc["runtimeStatus"] == "Completed", doc


def _instrument(state: str) -> None:
    """Switch callgrind's counting for this process (it starts off: ``--instr-atstart=no``),
    so start-up, loading and teardown are not counted, and run at full speed under load."""
    subprocess.run(
        ["callgrind_control", "--instr=" + state, str(os.getpid())],
        check=True,
        capture_output=True,
        timeout=600,
    )


def _callgrind(steps: int, other: int, folder: Path) -> tuple[int, dict[str, int]]:
    script = [__file__, f"--child={steps},{other}"]
    return count_instructions(script, folder / f"cg.{steps}", from_start=False)


def count_instructions(
    script: list[str], out: Path, *, from_start: bool = True
) -> tuple[int, dict[str, int]]:
    """Instructions of ``python *script`` under callgrind (every thread): the total and
    its split by object file. ``out``: where callgrind writes its file. ``from_start``
    False: nothing is counted until the script switches counting on (``_instrument``)."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    at_start = "--instr-atstart=" + ("yes" if from_start else "no")
    command = ["valgrind", "--tool=callgrind", at_start, f"--callgrind-out-file={out}"]
    subprocess.run(
        [*command, sys.executable, *script],
        check=True,
        env=env,
        capture_output=True,
    )
    report = subprocess.run(
        ["callgrind_annotate", "--threshold=100", str(out)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    total = 0
    by_object: dict[str, int] = defaultdict(int)
    for line in report.splitlines():
        match = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(PROGRAM TOTALS|.*\[(.*)\])\s*$", line)
        if match is None:
            continue
        count = int(match.group(1).replace(",", ""))
        if match.group(2) == "PROGRAM TOTALS":
            total = count
        elif match.group(3):
            by_object[Path(match.group(3)).name] += count
    return total, dict(by_object)


def main() -> None:
    args = sys.argv[1:]
    if args and args[0].startswith("--child="):
        steps, other = (int(n) for n in args[0].split("=", 1)[1].split(","))
        asyncio.run(_drive(steps, other))
        return
    short, long = (int(args[0]), int(args[1])) if len(args) == 2 else (100, 300)
    with tempfile.TemporaryDirectory() as folder, ThreadPoolExecutor(2) as pool:
        # The two counts are independent: side by side (instruction counts ignore the load).
        low_run = pool.submit(_callgrind, short, long, Path(folder))
        high_run = pool.submit(_callgrind, long, short, Path(folder))
        (low, low_objects), (high, high_objects) = low_run.result(), high_run.result()
    extra = long - short
    per_step = (high - low) / extra
    print(f"W1 instructions per step ({long} - {short} steps, callgrind): {per_step:,.0f}")
    print_split(low_objects, high_objects, extra)


def print_split(low: dict[str, int], high: dict[str, int], extra: int) -> None:
    """Per object file (the interpreter, SQLite, libc, ...), what one more of ``extra``
    steps costs: ``high`` minus ``low`` over ``extra``, the largest first."""
    for name in sorted(set(low) | set(high), key=lambda n: low.get(n, 0) - high.get(n, 0)):
        share = (high.get(name, 0) - low.get(name, 0)) / extra
        if abs(share) >= 1000:
            print(f"  {name:<48} {share:>10,.0f}")


if __name__ == "__main__":
    main()
