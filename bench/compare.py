"""flowledger beside DBOS Transact and the bare commit floor, interleaved in one run.

Workloads (trivial steps, so the time is the engine's), each on a fresh SQLite file in WAL:

- W1: a 200-step chain of async custom steps (one durable commit per step, no batching);
- W2: a 200-way fan-out of async custom steps and a join;
- W3: 200 executions x 3 steps, started one after another. DBOS runs each workflow as it
  is started. flowledger's W3 starts them all, then an in-process worker runs them (the
  issue's shape: the worker takes them in batches); the row under it has the worker
  already running while the starts arrive (DBOS's shape, and a service's: little is
  batched across executions), against the same DBOS figure.

Rounds alternate A B A B (flowledger, then DBOS, per workload) so machine load hits both
alike; the bare SQLite WAL commit (insert + update, bench/floor.py) and a W1 round's own
statements through the same bare driver (bench/floor.py) are measured in every round.
Prints the median per-step cost of each, DBOS / flowledger, flowledger / floor, and W1
over its round's SQL; and beside them the process CPU per step of each engine (both run
in this process; every thread counts), whose ratio a loaded machine moves far less than
the wall's: under contention an engine that is bound by its CPU waits for a core at every
step, one bound by waits loses less.
DBOS runs when installed: ``pip install -e '.[bench]'``.

    .venv/bin/python bench/compare.py        # 3 rounds
    .venv/bin/python bench/compare.py 5
    .venv/bin/python bench/compare.py --pg 3 # W1 and W3 on a throwaway PostgreSQL cluster

With ``--pg`` it also times W3's 200 starts alone, bare (bench/floor.py), handed to the
database three ways (through a thread, on the calling thread, from an event loop): they
come one after another, each a durable commit its caller waits for, so DBOS over that
floor is the most any engine could be ahead of DBOS on this shape, on this machine, at
this load.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from engine_bench import (
    CPU_PER_STEP,
    EXECUTIONS,
    chain,
    fan_out,
    registry,
    worker_w3,
    worker_w3_during_starts,
)
from floor import START_WAYS, pg_start_seconds, sqlite_commit_seconds, w1_round_seconds

from flowledger import Engine

WIDTH = 200
Measure = Callable[[Path], Awaitable[float]]


# -- flowledger -------------------------------------------------------------------------------


async def _flowledger_one(folder: Path, text: str, steps: int) -> float:
    return await _flowledger_one_at(f"sqlite:///{folder / 'fl.db'}", text, steps)


async def _flowledger_one_at(url: str, text: str, steps: int) -> float:
    async with Engine(url, registry=registry()) as engine:
        workflow = engine.load_text(text)
        await engine.run(engine.load_text(chain(3, "bench.noop")))  # warm caches and rows
        start, cpu = time.perf_counter(), time.process_time()
        execution_id = await engine.start(workflow)
        doc = await engine.drive(execution_id, document=False)
        elapsed = time.perf_counter() - start
        CPU_PER_STEP.append((time.process_time() - cpu) / steps)
        assert doc["runtimeStatus"] == "Completed", doc
    return elapsed / steps


async def flowledger_w1(folder: Path) -> float:
    return await _flowledger_one(folder, chain(WIDTH, "bench.noop"), WIDTH)


async def flowledger_w1_at(url: str) -> float:
    return await _flowledger_one_at(url, chain(WIDTH, "bench.noop"), WIDTH)


async def flowledger_w2(folder: Path) -> float:
    return await _flowledger_one(folder, fan_out(WIDTH, "bench.noop"), WIDTH + 2)


async def flowledger_w3(folder: Path) -> float:
    return await worker_w3(f"sqlite:///{folder / 'fl.db'}")


async def flowledger_w3_during_starts(folder: Path) -> float:
    return await worker_w3_during_starts(f"sqlite:///{folder / 'fl.db'}")


# -- DBOS Transact ----------------------------------------------------------------------------


#: A workload on a database URL (PostgreSQL).
AtUrl = Callable[[str], Awaitable[float]]


def _dbos_measures() -> tuple[dict[str, Measure], dict[str, AtUrl]] | None:
    """W1-W3 on a SQLite file in a folder, and W1 and W3 on a system database URL."""
    try:
        from dbos import DBOS
    except ImportError:
        return None

    @DBOS.step()
    async def add_one(x: int) -> int:
        return x + 1

    @DBOS.workflow()
    async def dbos_chain(n: int) -> int:
        x = 0
        for _ in range(n):
            x = await add_one(x)
        return x

    @DBOS.workflow()
    async def dbos_fan(n: int) -> int:
        start = await add_one(0)
        results = await asyncio.gather(*(add_one(start + i) for i in range(n)))
        return await add_one(sum(results))

    async def launched(folder: Path, body: Callable[[], Awaitable[int]]) -> float:
        path = folder / "dbos.db"
        with sqlite3.connect(path) as conn:  # DBOS's fastest SQLite form: WAL
            conn.execute("PRAGMA journal_mode=WAL")
        return await launched_at(f"sqlite:///{path}", body)

    async def launched_at(url: str, body: Callable[[], Awaitable[int]]) -> float:
        DBOS(config={"name": "bench", "system_database_url": url, "log_level": "WARNING"})
        DBOS.launch()
        try:
            await dbos_chain(3)  # warm up
            start, cpu = time.perf_counter(), time.process_time()
            steps = await body()
            CPU_PER_STEP.append((time.process_time() - cpu) / steps)
            return (time.perf_counter() - start) / steps
        finally:
            DBOS.destroy(destroy_registry=False)

    async def w1_body() -> int:
        await dbos_chain(WIDTH)
        return WIDTH

    async def w1(folder: Path) -> float:
        return await launched(folder, w1_body)

    async def w1_at(url: str) -> float:
        return await launched_at(url, w1_body)

    async def w2(folder: Path) -> float:
        async def body() -> int:
            await dbos_fan(WIDTH)
            return WIDTH + 2

        return await launched(folder, body)

    async def w3_body() -> int:
        handles = [await DBOS.start_workflow_async(dbos_chain, 3) for _ in range(EXECUTIONS)]
        for handle in handles:
            await handle.get_result()
        return EXECUTIONS * 3

    async def w3(folder: Path) -> float:
        return await launched(folder, w3_body)

    async def w3_at(url: str) -> float:
        return await launched_at(url, w3_body)

    return {"W1": w1, "W2": w2, "W3": w3}, {"W1": w1_at, "W3": w3_at}


# -- the run ----------------------------------------------------------------------------------


async def _timed(measure: Measure) -> float:
    with tempfile.TemporaryDirectory() as folder:
        return await measure(Path(folder))


async def main_pg(rounds: int) -> None:
    """W1 and W3 on PostgreSQL: a throwaway local cluster with default durability
    (fsync=on, synchronous_commit=on), a fresh database for each measure, rounds
    interleaved."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.pg import Cluster, find_bindir  # the same throwaway cluster the tests use

    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL's initdb is not installed")
    dbos = _dbos_measures()
    ours_at: dict[str, AtUrl] = {
        "W3": worker_w3,
        "W3s": worker_w3_during_starts,
        "W1": flowledger_w1_at,
    }
    ours: dict[str, list[float]] = {name: [] for name in ours_at}
    theirs: dict[str, list[float]] = {name: [] for name in ours_at}
    cpu: dict[tuple[str, str], list[float]] = defaultdict(list)
    starts: list[dict[str, float]] = []
    cluster = Cluster(bindir, durable=True)
    try:
        cluster.start()
        for _ in range(rounds):
            with ThreadPoolExecutor(1) as thread:  # it runs an engine of its own
                url = cluster.url(cluster.create_database())
                starts.append(thread.submit(pg_start_seconds, url, EXECUTIONS).result())
            for name, measure in ours_at.items():
                ours[name].append(await measure(cluster.url(cluster.create_database())))
                cpu[(name, "fl")].append(CPU_PER_STEP[-1])
                if dbos is not None and name in dbos[1]:
                    at = dbos[1][name]
                    theirs[name].append(await at(cluster.url(cluster.create_database())))
                    cpu[(name, "dbos")].append(CPU_PER_STEP[-1])
    finally:
        cluster.stop()
    theirs["W3s"], cpu[("W3s", "dbos")] = theirs["W3"], cpu[("W3", "dbos")]  # one DBOS shape
    print(f"{rounds} interleaved rounds, medians (fsync=on, synchronous_commit=on)")
    labels = {
        "W1": f"W1 {WIDTH}-step chain",
        "W3": f"W3 {EXECUTIONS} executions x 3 steps",
        "W3s": "  ... worker during the starts",
    }
    for name in ("W1", "W3", "W3s"):
        fl = statistics.median(ours[name])
        line = (
            f"{labels[name] + ', PostgreSQL':<42} {fl * 1e6:8.0f} us"
            f" (client CPU {statistics.median(cpu[(name, 'fl')]) * 1e6:.0f} us)"
        )
        if theirs[name]:
            other = statistics.median(theirs[name])
            dbos_cpu = statistics.median(cpu[(name, "dbos")]) * 1e6
            line += (
                f"   DBOS {other * 1e6:8.0f} us (client CPU {dbos_cpu:.0f} us)"
                f"   DBOS/fl {other / fl:.1f}"
            )
        print(line)
    # W3's starts come one after another: their bare commits bound what any engine can do.
    print(f"W3's {EXECUTIONS} starts alone, bare (two rows, one pipelined durable commit each):")
    for how in START_WAYS:
        bare = statistics.median(s[how] for s in starts) / 3  # a start per 3 steps
        floor = f"  {how:<22} {bare * 1e6:6.0f} us per W3 step"
        if theirs["W3"]:
            floor += f"   DBOS/that {statistics.median(theirs['W3']) / bare:.1f}"
        print(floor, flush=True)


async def main(rounds: int) -> None:
    ours: dict[str, Measure] = {
        "W1": flowledger_w1,
        "W2": flowledger_w2,
        "W3": flowledger_w3,
        "W3s": flowledger_w3_during_starts,
    }
    dbos = _dbos_measures()
    results: dict[str, dict[str, list[float]]] = {
        w: {"fl": [], "dbos": [], "fl_cpu": [], "dbos_cpu": []} for w in ours
    }
    floors: list[float] = []
    round_floors: list[float] = []
    for _ in range(rounds):
        floors.append(sqlite_commit_seconds(500))
        # On a thread of its own (it runs its own loop; DBOS replaces this loop's executor).
        with ThreadPoolExecutor(1) as thread:
            round_floors.append(thread.submit(w1_round_seconds, 500).result())
        for workload, measure in ours.items():
            results[workload]["fl"].append(await _timed(measure))
            results[workload]["fl_cpu"].append(CPU_PER_STEP[-1])
            if dbos is not None and workload in dbos[0]:
                results[workload]["dbos"].append(await _timed(dbos[0][workload]))
                results[workload]["dbos_cpu"].append(CPU_PER_STEP[-1])
    # DBOS has one W3 shape (each workflow runs as it is started); both rows compare to it.
    results["W3s"]["dbos"], results["W3s"]["dbos_cpu"] = (
        results["W3"]["dbos"],
        results["W3"]["dbos_cpu"],
    )
    floor = statistics.median(floors)
    round_floor = statistics.median(round_floors)
    versions = ", ".join(
        f"{name} {_version(name)}" for name in ("flowledger", "sqlalchemy", "pydantic", "dbos")
    )
    print(f"Python {sys.version.split()[0]}; {versions}; {rounds} interleaved rounds, medians")
    print(f"bare SQLite WAL commit (insert + update): {floor * 1e6:.1f} us")
    print(
        f"a W1 round's own SQL, bare driver: {round_floor * 1e6:.1f} us "
        f"({round_floor / floor:.1f}x the bare commit)"
    )
    print(
        f"{'workload':<44} {'flowledger':>11} {'x floor':>8} {'DBOS':>11} {'DBOS/fl':>8}"
        f" {'CPU: fl':>9} {'DBOS':>9} {'DBOS/fl':>8}"
    )
    titles = {
        "W1": f"W1 {WIDTH}-step chain, async custom steps",
        "W2": f"W2 {WIDTH}-way fan-out + join, async custom",
        "W3": f"W3 {EXECUTIONS} executions x 3 steps",
        "W3s": "  ... worker running during the starts",
    }
    for workload, title in titles.items():
        fl = statistics.median(results[workload]["fl"])
        line = f"{title:<44} {fl * 1e6:8.0f} us {fl / floor:8.1f}"
        fl_cpu = statistics.median(results[workload]["fl_cpu"])
        if results[workload]["dbos"]:
            other = statistics.median(results[workload]["dbos"])
            other_cpu = statistics.median(results[workload]["dbos_cpu"])
            line += f" {other * 1e6:8.0f} us {other / fl:8.1f}"
            line += f" {fl_cpu * 1e6:6.0f} us {other_cpu * 1e6:6.0f} us {other_cpu / fl_cpu:8.1f}"
        print(line, flush=True)
    w1 = statistics.median(results["W1"]["fl"])
    print(f"W1 over its round's own SQL: {w1 / round_floor:.1f}x (the rest is the engine's Python)")


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _run() -> None:
    args = [a for a in sys.argv[1:] if a != "--pg"]
    rounds = int(args[0]) if args else 3
    asyncio.run(main_pg(rounds) if "--pg" in sys.argv else main(rounds))


if __name__ == "__main__":
    _run()
