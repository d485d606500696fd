"""The cyclic garbage collector under a worker: what an execution leaves to it, and the
pauses it takes (issue 10; flowledger.heap, runtime.runner).

An in-process worker runs N executions of 3 steps (bench/compare.py's W3), with the
start-up heap frozen as ``flowledger worker`` and ``flowledger serve`` freeze it, and
without. Every collection is timed through ``gc.callbacks``; prints the share of the run
spent collecting, the number of collections (full ones apart) and the longest pause,
the loop stopped meanwhile. Then the objects one execution leaves for the collector
(found with ``gc.DEBUG_SAVEALL``), by type.

    .venv/bin/python bench/gc_pauses.py            # 3 rounds of 3,000 executions
    .venv/bin/python bench/gc_pauses.py 3 1000
"""

from __future__ import annotations

import asyncio
import collections
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

from engine_bench import W3_STEPS, registry, run_by_worker

from flowledger import Engine
from flowledger.heap import freeze_heap

#: (generation, seconds) of each collection since the last clear.
PAUSES: list[tuple[int, float]] = []
_started = [0.0]


def _timed(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        PAUSES.append((info["generation"], time.perf_counter() - _started[0]))


async def _worker_run(folder: Path, n: int, frozen: bool) -> float:
    async with Engine(f"sqlite:///{folder / f'gc{frozen}{n}.db'}", registry=registry()) as engine:
        workflow = engine.load_text(W3_STEPS)
        await engine.run(workflow)
        if frozen:
            freeze_heap()
        PAUSES.clear()
        start = time.perf_counter()
        await run_by_worker(engine, workflow, n)
        elapsed = time.perf_counter() - start
        if frozen:
            gc.unfreeze()
        return elapsed


async def _garbage_per_execution(folder: Path, n: int) -> tuple[float, collections.Counter[str]]:
    async with Engine(f"sqlite:///{folder / 'garbage.db'}", registry=registry()) as engine:
        workflow = engine.load_text(W3_STEPS)
        await run_by_worker(engine, workflow, 20)
        freeze_heap()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            await run_by_worker(engine, workflow, n)
            gc.collect()
        finally:
            gc.set_debug(0)
            gc.unfreeze()
    kinds = collections.Counter(type(o).__qualname__ for o in gc.garbage)
    count = len(gc.garbage) / n
    gc.garbage.clear()
    return count, kinds


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    gc.callbacks.append(_timed)
    rows: dict[str, list[tuple[float, float, int, int, float]]] = {"as is": [], "frozen": []}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(rounds):
            for name in rows:
                elapsed = asyncio.run(_worker_run(Path(folder), n, name == "frozen"))
                spent = sum(p for _, p in PAUSES)
                full = sum(1 for g, _ in PAUSES if g == 2)
                longest = max((p for _, p in PAUSES), default=0.0)
                rows[name].append((elapsed / (n * 3), spent / elapsed, len(PAUSES), full, longest))
        gc.callbacks.remove(_timed)
        count, kinds = asyncio.run(_garbage_per_execution(Path(folder), 200))
    print(f"an in-process worker, {n} executions x 3 steps, SQLite; {rounds} rounds, medians")
    print(f"{'start-up heap':<14} {'us/step':>8} {'in gc':>7} {'collections':>12} {'full':>5} "
          f"{'longest pause':>14}")  # fmt: skip
    for name, found in rows.items():
        step, share, many, full, longest = (statistics.median(c) for c in zip(*found, strict=True))
        print(f"{name:<14} {step * 1e6:8.0f} {share * 100:6.1f}% {many:12.0f} {full:5.0f} "
              f"{longest * 1000:11.1f} ms")  # fmt: skip
    print(f"left to the cyclic collector: {count:.1f} objects an execution")
    for kind, many in kinds.most_common(8):
        print(f"  {many / 200:6.2f} {kind}")


if __name__ == "__main__":
    main()
