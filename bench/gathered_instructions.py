"""Instructions per step of many executions gathered on one engine, under callgrind.

The shapes of ``bench/engine_bench.py --gathered`` (3 async no-op steps an execution,
SQLite): ``asyncio.gather`` of ``run``, of ``start`` then ``drive`` (with and without
the document) and the in-process worker. Two processes run each shape under
``valgrind --tool=callgrind`` (every thread counted), one with a few executions and one
with more; both warm up and freeze Python's collector first (a full collection of the
start-up heap must not land in one count and not the other), and what runs by the clock
(the signal poll, the lease renewal) is off. The difference of their totals over the
difference of their steps is what one more step costs, start-up cancelled out. Callgrind
runs threads one at a time: thread hops cost nothing here (wall-clock benches see them).

    .venv/bin/python bench/gathered_instructions.py                 # every shape, 30 vs 90
    .venv/bin/python bench/gathered_instructions.py run drive-doc   # some of them
    .venv/bin/python bench/gathered_instructions.py --few=30 --many=90 run

Needs valgrind (``callgrind_annotate`` with it). Takes minutes.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from engine_bench import W3_STEPS, Shape, gather_runs, gather_start_drive, registry, run_by_worker
from step_instructions import count_instructions, print_split

from flowledger import Engine
from flowledger.runtime import inbox

STEPS = 3  # per execution (W3_STEPS)


SHAPES: dict[str, Shape] = {
    "run": gather_runs,
    "drive": gather_start_drive,
    "drive-doc": lambda e, w, n: gather_start_drive(e, w, n, document=True),
    "worker": run_by_worker,
}


async def _child(shape: str, n: int) -> None:
    inbox.POLL_INTERVAL = 3600.0  # no clock-driven signal polls in one count and not the other
    with tempfile.TemporaryDirectory() as folder:
        database = f"sqlite:///{Path(folder) / 'w3.db'}"
        async with Engine(database, registry=registry(), lease=timedelta(hours=1)) as engine:
            workflow = engine.load_text(W3_STEPS)
            await SHAPES[shape](engine, workflow, 5)  # warm caches, rows and code paths
            gc.collect()
            gc.freeze()
            await SHAPES[shape](engine, workflow, n)


def main() -> None:
    args = sys.argv[1:]
    if args and args[0].startswith("--child="):
        shape, n = args[0].split("=", 1)[1].split(",")
        asyncio.run(_child(shape, int(n)))
        return
    options = dict(a[2:].split("=", 1) for a in args if a.startswith("--"))
    few, many = int(options.get("few", 30)), int(options.get("many", 90))
    shapes = [a for a in args if not a.startswith("--")] or list(SHAPES)
    with tempfile.TemporaryDirectory() as folder, ThreadPoolExecutor(2) as pool:
        for shape in shapes:
            # The two counts are independent: side by side (instruction counts ignore load).
            counts = [
                pool.submit(
                    count_instructions, [__file__, f"--child={shape},{n}"], Path(folder) / f"{n}"
                )
                for n in (few, many)
            ]
            (low, low_objects), (high, high_objects) = (c.result() for c in counts)
            extra = (many - few) * STEPS
            print(f"{shape:<10} instructions per step ({many} - {few} executions): "
                  f"{(high - low) / extra:,.0f}", flush=True)  # fmt: skip
            print_split(low_objects, high_objects, extra)


if __name__ == "__main__":
    main()
