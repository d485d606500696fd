"""Memory (issue 10, target 7): RSS of one in-process worker across many executions.

Enqueues batches of 3-step executions and lets one in-process worker run them, printing the
process's resident set after each batch: it should stay flat (no growth per execution).
The 10,000-item loop's peak RSS is in ``bench/engine_bench.py loop_10k``.

    .venv/bin/python bench/memory_bench.py              # 10 batches of 2,000
    .venv/bin/python bench/memory_bench.py 20 5000
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

from engine_bench import chain, noop

from flowledger import Engine, StepRegistry, Worker, WorkerOptions


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


async def main(batches: int, size: int) -> None:
    registry = StepRegistry.with_builtins()
    registry.register(noop)
    with tempfile.TemporaryDirectory() as folder:
        async with Engine(f"sqlite:///{Path(folder) / 'mem.db'}", registry=registry) as engine:
            workflow = engine.load_text(chain(3, "bench.noop"))
            worker = Worker(engine, WorkerOptions(concurrency=50, max_idle=0.01))
            running = asyncio.create_task(worker.run())
            done = 0
            print(f"{'executions':>10} {'RSS MB':>8} {'s/batch':>8}")
            for _ in range(batches):
                start = time.perf_counter()
                for _ in range(size):
                    await engine.start(workflow)
                done += size
                while worker.completed < done:
                    await asyncio.sleep(0.01)
                gc.collect()
                print(f"{done:>10} {rss_mb():8.1f} {time.perf_counter() - start:8.2f}", flush=True)
            worker.stop()
            await running


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    asyncio.run(main(*(args or [10, 2000])))
