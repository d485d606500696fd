"""What a large trigger payload costs each step: a 100-step chain of async custom steps,
started with triggers of growing size, per-step cost and its ratio to an empty trigger.

Every step updates its execution's row (the state it is in, the event counter, the last
activity), and that row also holds the trigger, the context and the variables. SQLite
rewrites a whole row on UPDATE, so on SQLite the trigger's size is paid at every step;
PostgreSQL keeps an unchanged large (TOASTed) value where it is.

    .venv/bin/python bench/payload_bench.py          # SQLite
    .venv/bin/python bench/payload_bench.py --pg     # and a throwaway PostgreSQL cluster
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from engine_bench import chain, registry

from flowledger import Engine

STEPS = 100
SIZES = (0, 10_000, 100_000, 900_000)
ROUNDS = 3


async def per_step(url: str, size: int) -> float:
    async with Engine(url, registry=registry()) as engine:
        workflow = engine.load_text(chain(STEPS, "bench.noop"))
        await engine.run(engine.load_text(chain(3, "bench.noop")))  # warm caches and rows
        trigger = {"blob": "x" * size}
        start = time.perf_counter()
        execution_id = await engine.start(workflow, trigger=trigger)
        doc = await engine.drive(execution_id, document=False)
        elapsed = time.perf_counter() - start
        assert doc["runtimeStatus"] == "Completed", doc
    return elapsed / STEPS


async def measure(name: str, urls: dict[int, list[str]]) -> None:
    results: dict[int, list[float]] = {size: [] for size in SIZES}
    for round_ in range(ROUNDS):
        for size in SIZES:  # sizes interleaved within each round
            results[size].append(await per_step(urls[size][round_], size))
    base = statistics.median(results[0])
    print(f"{name}: {STEPS}-step chain, {ROUNDS} interleaved rounds, medians")
    for size in SIZES:
        cost = statistics.median(results[size])
        print(f"  trigger {size:>9,} bytes   {cost * 1e6:7.0f} us/step   {cost / base:5.1f}x")


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        sqlite = {
            size: [f"sqlite:///{Path(folder) / f'p{size}-{r}.db'}" for r in range(ROUNDS)]
            for size in SIZES
        }
        await measure("SQLite (WAL, synchronous=NORMAL)", sqlite)
    if "--pg" not in sys.argv:
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.pg import Cluster, find_bindir  # the same throwaway cluster the tests use

    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL's initdb is not installed")
    cluster = Cluster(bindir, durable=True)
    try:
        cluster.start()
        pg = {
            size: [cluster.url(cluster.create_database()) for _ in range(ROUNDS)] for size in SIZES
        }
        await measure("PostgreSQL (fsync=on)", pg)
    finally:
        cluster.stop()


if __name__ == "__main__":
    asyncio.run(main())
