"""What a large trigger payload costs: chains of async custom steps started with triggers
of growing size; a 100- and a 400-step chain tell what each step pays (and its ratio to
an empty trigger) from what each execution pays once (its start, lease, first and last
writes of the row).

The execution's row holds the trigger, the context and the variables, and SQLite rewrites
a whole row on UPDATE. Until 2026-11-29 every step updated that row (its state, event
counter, last activity), so on SQLite the trigger's size was paid at every step (4.8x per
step at 900 KB); now a round that only moves steps leaves the row alone (runtime.journal),
and this bench shows what is left. PostgreSQL keeps an unchanged large (TOASTed) value
where it is either way.

    .venv/bin/python bench/payload_bench.py          # SQLite, 3 rounds
    .venv/bin/python bench/payload_bench.py --pg 5   # and a throwaway PostgreSQL cluster
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from engine_bench import chain, registry

from flowledger import Engine

#: Two chain lengths: the difference is what each step pays, the rest each execution.
SHORT, LONG = 100, 400
SIZES = (0, 10_000, 100_000, 900_000)
#: Interleaved rounds (a number on the command line sets it).
ROUNDS = next((int(a) for a in sys.argv[1:] if a.isdigit()), 3)


async def elapsed(url: str, size: int, steps: int) -> float:
    """Seconds from start to end of one ``steps``-step chain with a ``size``-byte trigger."""
    async with Engine(url, registry=registry()) as engine:
        workflow = engine.load_text(chain(steps, "bench.noop"))
        await engine.run(engine.load_text(chain(3, "bench.noop")))  # warm caches and rows
        trigger = {"blob": "x" * size}
        start = time.perf_counter()
        execution_id = await engine.start(workflow, trigger=trigger)
        doc = await engine.drive(execution_id, document=False)
        seconds = time.perf_counter() - start
        assert doc["runtimeStatus"] == "Completed", doc
    return seconds


async def measure(name: str, urls: dict[tuple[int, int], list[str]]) -> None:
    runs: dict[tuple[int, int], list[float]] = {key: [] for key in urls}
    for round_ in range(ROUNDS):
        for key in urls:  # sizes and lengths interleaved within each round
            runs[key].append(await elapsed(urls[key][round_], *key))
    print(f"{name}: {SHORT}- and {LONG}-step chains, {ROUNDS} interleaved rounds, medians")
    print(f"  {'trigger':>17}  {'per step':>10}  {'x empty':>7}  {'per execution':>13}")
    base = None
    for size in SIZES:
        short = statistics.median(runs[size, SHORT])
        long = statistics.median(runs[size, LONG])
        step = (long - short) / (LONG - SHORT)
        fixed = short - SHORT * step
        base = base or step
        print(
            f"  {size:>11,} bytes  {step * 1e6:7.0f} us  {step / base:6.1f}x  "
            f"{fixed * 1e3:10.1f} ms"
        )


def _urls(make: Callable[[int, int, int], str]) -> dict[tuple[int, int], list[str]]:
    return {
        (size, steps): [make(size, steps, r) for r in range(ROUNDS)]
        for size in SIZES
        for steps in (SHORT, LONG)
    }


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        sqlite = _urls(
            lambda size, steps, r: f"sqlite:///{Path(folder) / f'p{size}-{steps}-{r}.db'}"
        )
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
        pg = _urls(lambda *_: cluster.url(cluster.create_database()))
        await measure("PostgreSQL (fsync=on)", pg)
    finally:
        cluster.stop()


if __name__ == "__main__":
    asyncio.run(main())
